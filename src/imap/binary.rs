//! Messages with NUL bytes, copied exactly with BINARY (RFC 3516).
//!
//! IMAP literals may not carry NUL, so a server that stores a message holding NULs has to
//! change it to answer `BODY[]`: Dovecot sends each NUL as 0x80. `BINARY.PEEK[]` gives the
//! stored bytes in a literal8 (`~{n}`), and an APPEND with a literal8 stores them. async-imap's
//! parser (imap-proto) does not know literal8, so the command is sent on the raw stream while
//! nothing else is in flight (right after a completed FETCH) and its answer is framed by
//! imap-codec's [`Fragmentizer`] and decoded by imap-codec, as NAMESPACE is.
//!
//! Only messages whose `BODY[]` holds a 0x80 that is not part of a UTF-8 character are asked
//! for again, and the answer replaces `BODY[]` only when it is the same message with NULs
//! where `BODY[]` had 0x80: for a whole message `BINARY[]` may also undo a
//! Content-Transfer-Encoding, which would not be the message as stored.

use super::command::{Command, FetchItems, UidSet};
use std::time::Duration;

use imap_codec::ResponseCodec;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::core::{NString, NString8};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response, Status, StatusKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Our own tag: async-imap numbers its tags, so this one cannot collide.
const TAG: &str = "msbn";

/// Whether `body` (as `BODY[]` gave it) may be a message whose NULs the server replaced by
/// 0x80: a 0x80 byte that is not inside a valid UTF-8 character.
pub fn may_hide_nuls(body: &[u8]) -> bool {
    body.utf8_chunks().any(|c| c.invalid().contains(&0x80))
}

/// Whether `binary` is `body` with NULs where `body` has 0x80, and nothing else changed.
pub fn restores_nuls(body: &[u8], binary: &[u8]) -> bool {
    body.len() == binary.len()
        && binary.contains(&0)
        && body
            .iter()
            .zip(binary)
            .all(|(&b, &n)| b == n || (b == 0x80 && n == 0))
}

/// Whether a message needs a literal8 to be appended as it is.
pub fn needs_literal8(body: &[u8]) -> bool {
    body.contains(&0)
}

/// `UID FETCH uid (UID BINARY.PEEK[])` on the raw `stream`, up to and including its tagged
/// completion: the stored bytes, or `None` when the server would not give them (NO, e.g.
/// `[UNKNOWN-CTE]`) or sent something else. A literal larger than `limit` bytes ends the
/// exchange with an error, as does silence longer than `timeout`. Errors are I/O errors: the
/// connection is then unusable.
pub async fn fetch<S>(
    stream: &mut S,
    uid: u32,
    limit: u32,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let command = Command::UidFetch {
        set: &UidSet::of(&[uid]),
        items: FetchItems::Binary,
        changed_since: None,
    };
    stream
        .write_all(format!("{TAG} {}\r\n", command.line()).as_bytes())
        .await?;
    stream.flush().await?;
    match tokio::time::timeout(timeout, read_answer(stream, uid, limit)).await {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "BINARY FETCH: no answer within {}",
                humantime::format_duration(timeout)
            ),
        )),
    }
}

async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    uid: u32,
    limit: u32,
) -> std::io::Result<Option<Vec<u8>>> {
    // A line or literal past the limit is refused by the fragmentizer's bound; the literal
    // itself is checked before it is read.
    let mut fragments = Fragmentizer::new(limit.saturating_add(64 * 1024));
    let mut found = None;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match fragments.progress() {
            None => {
                // Lines byte by byte, so that not a byte past the completion is taken from
                // async-imap; literals whole, once announced.
                let mut byte = [0u8; 1];
                if stream.read(&mut byte).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during a BINARY FETCH",
                    ));
                }
                fragments.enqueue_bytes(&byte);
                continue;
            }
            Some(FragmentInfo::Line {
                announcement: Some(a),
                ..
            }) => {
                if a.length > limit {
                    return Err(std::io::Error::other(format!(
                        "BINARY FETCH: the server announced {} bytes for a message listed at most {limit}",
                        a.length
                    )));
                }
                let mut left = a.length as usize;
                while left > 0 {
                    let n = left.min(chunk.len());
                    stream.read_exact(&mut chunk[..n]).await?;
                    fragments.enqueue_bytes(&chunk[..n]);
                    left -= n;
                }
            }
            Some(_) => {}
        }
        if !fragments.is_message_complete() {
            continue;
        }
        match fragments.decode_message(&ResponseCodec::default()) {
            Ok(Response::Data(Data::Fetch { items, .. })) => {
                let mut this_uid = None;
                let mut bytes = None;
                for item in items.into_iter() {
                    match item {
                        MessageDataItem::Uid(u) => this_uid = Some(u.get()),
                        MessageDataItem::Binary { section, value } if section.is_empty() => {
                            bytes = match value {
                                NString8::Literal8(l) => Some(l.data.into_owned()),
                                NString8::NString(NString(Some(s))) => Some(s.as_ref().to_vec()),
                                NString8::NString(NString(None)) => None,
                            };
                        }
                        _ => {}
                    }
                }
                if this_uid == Some(uid) && bytes.is_some() {
                    found = bytes;
                }
            }
            Ok(Response::Status(Status::Tagged(t))) if t.tag.inner() == TAG => {
                return Ok(match t.body.kind {
                    StatusKind::Ok => found,
                    _ => None,
                });
            }
            Ok(Response::Status(Status::Bye(_))) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the server said BYE during a BINARY FETCH",
                ));
            }
            Ok(_) => {}
            // A message imap-codec cannot decode is skipped whole; our own completion may be
            // one (an OK without text): the message is then not taken from BINARY.
            Err(_) => {
                if fragments.decode_tag().is_some_and(|t| t.inner() == TAG) {
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stray_0x80_suggests_nuls() {
        assert!(!may_hide_nuls(b"plain ascii"));
        // "…" and "À" in UTF-8 carry 0x80 as a continuation byte.
        assert!(!may_hide_nuls("wait… À".as_bytes()));
        assert!(may_hide_nuls(b"a\x80b"));
        assert!(may_hide_nuls(b"\xc3\x80 then a\x80b"));
    }

    #[test]
    fn restoration_is_nuls_for_0x80_and_nothing_else() {
        assert!(restores_nuls(b"a\x80b\x80", b"a\0b\x80"));
        assert!(
            !restores_nuls(b"a\x80b", b"a\x80b"),
            "no NUL: nothing to restore"
        );
        assert!(!restores_nuls(b"a\x80b", b"a\0c"), "another byte changed");
        assert!(!restores_nuls(b"a\x80b", b"a\0"), "length differs");
        assert!(
            !restores_nuls(b"aGVsbG8=", b"a\0llo"),
            "a decoded transfer encoding"
        );
    }

    /// Answers the BINARY FETCH with `reply` followed by bytes of the next command, which
    /// must stay unread.
    async fn ask(reply: Vec<u8>, limit: u32) -> (std::io::Result<Option<Vec<u8>>>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let mut reply = reply;
        reply.extend_from_slice(b"NEXT\r\n");
        let server_side = async move {
            let expected = b"msbn UID FETCH 7 (UID BINARY.PEEK[])\r\n";
            let mut got = vec![0u8; expected.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, expected);
            server.write_all(&reply).await.unwrap();
            server
        };
        let (answer, _server) = tokio::join!(
            fetch(&mut client, 7, limit, Duration::from_secs(5)),
            server_side
        );
        let mut rest = [0u8; 6];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"NEXT\r\n", "nothing past the completion is read");
        (answer, rest.to_vec())
    }

    #[tokio::test]
    async fn a_literal8_answer_gives_the_stored_bytes() {
        let mut reply = b"* 3 FETCH (UID 7 BINARY[] ~{5}\r\na\0b\r\n)\r\n".to_vec();
        reply.extend_from_slice(b"* 4 EXISTS\r\nmsbn OK done\r\n");
        let (answer, _) = ask(reply, 100).await;
        assert_eq!(answer.unwrap().as_deref(), Some(&b"a\0b\r\n"[..]));
    }

    #[tokio::test]
    async fn another_uid_a_refusal_or_a_huge_literal_give_nothing() {
        let reply = b"* 3 FETCH (UID 8 BINARY[] ~{3}\r\na\0b)\r\nmsbn OK done\r\n".to_vec();
        assert_eq!(ask(reply, 100).await.0.unwrap(), None);

        let reply = b"msbn NO [UNKNOWN-CTE] cannot\r\n".to_vec();
        assert_eq!(ask(reply, 100).await.0.unwrap(), None);

        let (mut client, mut server) = tokio::io::duplex(4096);
        let server_side = async move {
            let mut got = [0u8; 10];
            server.read_exact(&mut got).await.unwrap();
            server
                .write_all(b"* 3 FETCH (UID 7 BINARY[] ~{400000000}\r\n")
                .await
                .unwrap();
            server
        };
        let (answer, _server) = tokio::join!(
            fetch(&mut client, 7, 1000, Duration::from_secs(5)),
            server_side
        );
        let err = answer.unwrap_err().to_string();
        assert!(err.contains("announced 400000000 bytes"), "{err}");
    }
}
