//! NAMESPACE (RFC 2342): where a server keeps the user's own folders (`INBOX.` on Courier
//! and many cPanel hosts, nothing on Dovecot's defaults).
//!
//! The personal prefix decides where new folders go on a destination: a fresh Courier-style
//! mailbox that holds only INBOX gives no hint in its LIST, and creating `Sent` there instead
//! of `INBOX.Sent` fails. async-imap's parser (imap-proto) does not know the NAMESPACE
//! response and, meeting one, leaves the stream unusable; so the command is sent on the raw
//! stream right after login, while nothing else is in flight, and its answer is split into
//! messages by imap-codec's [`Fragmentizer`] and decoded by imap-codec. Bytes are read one at a
//! time so that not a byte past the tagged completion is taken from async-imap.

use super::command::Command;
use std::time::Duration;

use imap_codec::ResponseCodec;
use imap_codec::fragmentizer::Fragmentizer;
use imap_codec::imap_types::core::IString;
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::response::{Data, Response, Status, StatusKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::folders::{ForeignNamespace, NamespaceKind};
use super::mutf7;

/// Our own tag: async-imap numbers its tags, so this one cannot collide.
const TAG: &str = "msns";
/// A NAMESPACE answer is a few hundred bytes; anything past this is not one.
const MAX_MESSAGE: u32 = 64 * 1024;
/// Bytes read in all before giving up on a server that never completes the command.
const MAX_TOTAL: usize = 1024 * 1024;

/// The user's own namespace: folder names start with `prefix` (decoded from modified UTF-7,
/// ending with the delimiter when it has one) and use `delimiter` between levels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Personal {
    pub prefix: String,
    pub delimiter: Option<char>,
}

/// What came back from a NAMESPACE command. Empty when the command completed but said
/// nothing usable (NIL namespaces, NO, or an answer imap-codec could not decode): the
/// personal prefix is then guessed from LIST.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The personal namespace (the first one, as RFC 2342 asks clients to use by default).
    pub personal: Option<Personal>,
    /// Every other users' and shared namespace: folders there are not the user's own.
    pub foreign: Vec<ForeignNamespace>,
}

/// Sends NAMESPACE on `stream` and reads up to and including its tagged completion.
/// Errors are I/O errors: the connection is then unusable.
pub async fn query<S>(stream: &mut S, timeout: Duration) -> std::io::Result<Answer>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(format!("{TAG} {}\r\n", Command::Namespace.line()).as_bytes())
        .await?;
    stream.flush().await?;
    match tokio::time::timeout(timeout, read_answer(stream)).await {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("NAMESPACE: no answer within {timeout:?}"),
        )),
    }
}

async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Answer> {
    let mut fragments = Fragmentizer::new(MAX_MESSAGE);
    let mut found = None;
    let mut total = 0usize;
    loop {
        if fragments.progress().is_none() {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during NAMESPACE",
                ));
            }
            total += 1;
            if total > MAX_TOTAL {
                return Err(std::io::Error::other(
                    "NAMESPACE: the server sent more than 1 MiB without completing the command",
                ));
            }
            fragments.enqueue_bytes(&byte);
            continue;
        }
        if !fragments.is_message_complete() {
            continue;
        }
        match fragments.decode_message(&ResponseCodec::default()) {
            Ok(Response::Data(Data::Namespace {
                personal,
                other,
                shared,
            })) => {
                let foreign = other
                    .iter()
                    .map(|n| (n, NamespaceKind::OtherUsers))
                    .chain(shared.iter().map(|n| (n, NamespaceKind::Shared)))
                    .map(|(n, kind)| ForeignNamespace {
                        prefix: prefix(n),
                        kind,
                    })
                    .collect();
                found = Some(Answer {
                    personal: first_personal(&personal),
                    foreign,
                });
            }
            Ok(Response::Status(Status::Tagged(t))) if t.tag.inner() == TAG => {
                return Ok(match (t.body.kind, found) {
                    (StatusKind::Ok, Some(a)) => a,
                    _ => Answer::default(),
                });
            }
            Ok(Response::Status(Status::Bye(_))) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the server said BYE during NAMESPACE",
                ));
            }
            Ok(_) => {}
            // A message imap-codec cannot decode is skipped whole (the fragmentizer knows
            // where it ends, literals included). Our own completion may be one (`msns OK`
            // without the text RFC 3501 asks for): a server sends NAMESPACE data only for a
            // command it carried out, so what it sent stands.
            Err(_) => {
                if fragments.decode_tag().is_some_and(|t| t.inner() == TAG) {
                    return Ok(found.unwrap_or_default());
                }
            }
        }
    }
}

fn first_personal(list: &[Namespace<'_>]) -> Option<Personal> {
    let first = list.first()?;
    Some(Personal {
        prefix: prefix(first),
        delimiter: first.delimiter.as_ref().map(|d| d.inner()),
    })
}

fn prefix(n: &Namespace<'_>) -> String {
    let raw = match &n.prefix {
        IString::Literal(l) => String::from_utf8_lossy(l.data()).into_owned(),
        IString::Quoted(q) => q.inner().to_owned(),
    };
    // A prefix that is not valid modified UTF-7 is kept as spelled, like folder names.
    mutf7::decode(&raw).unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `NAMESPACE` with `reply` and records what the client sent; `reply` is followed
    /// by bytes that belong to the next command and must stay unread.
    async fn ask(reply: &str) -> (std::io::Result<Answer>, Vec<u8>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let reply = format!("{reply}NEXT\r\n");
        let server_side = async move {
            let mut got = vec![0u8; "msns NAMESPACE\r\n".len()];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(reply.as_bytes()).await.unwrap();
            (server, got)
        };
        let (answer, (_server, got)) =
            tokio::join!(query(&mut client, Duration::from_secs(5)), server_side);
        let mut rest = [0u8; 6];
        client.read_exact(&mut rest).await.unwrap();
        (answer, got, rest.to_vec())
    }

    #[tokio::test]
    async fn courier_style_prefix_and_delimiter() {
        let (answer, sent, rest) =
            ask("* NAMESPACE ((\"INBOX.\" \".\")) NIL ((\"#shared.\" \".\"))\r\nmsns OK done\r\n")
                .await;
        assert_eq!(sent, b"msns NAMESPACE\r\n");
        assert_eq!(
            answer.unwrap(),
            Answer {
                personal: Some(Personal {
                    prefix: "INBOX.".into(),
                    delimiter: Some('.'),
                }),
                foreign: vec![ForeignNamespace {
                    prefix: "#shared.".into(),
                    kind: NamespaceKind::Shared,
                }],
            }
        );
        assert_eq!(rest, b"NEXT\r\n", "nothing past the completion is read");
    }

    #[tokio::test]
    async fn dovecot_default_has_an_empty_prefix() {
        let (answer, ..) = ask("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nmsns OK Namespace completed (0.001 + 0.000 secs).\r\n").await;
        assert_eq!(
            answer.unwrap().personal,
            Some(Personal {
                prefix: String::new(),
                delimiter: Some('/'),
            })
        );
    }

    #[tokio::test]
    async fn literal_and_modified_utf7_prefixes_are_decoded() {
        // "Boîte" in modified UTF-7, sent as a literal, with an untagged notice before it and
        // a completion without text.
        let (answer, _, rest) = ask(
            "* OK [ALERT] maintenance tonight\r\n* NAMESPACE (({9}\r\nBo&AO4-te \".\")) NIL NIL\r\nmsns OK\r\n",
        )
        .await;
        assert_eq!(
            answer.unwrap().personal,
            Some(Personal {
                prefix: "Boîte".into(),
                delimiter: Some('.'),
            })
        );
        assert_eq!(rest, b"NEXT\r\n");
    }

    #[tokio::test]
    async fn nil_refused_or_garbled_answers_fall_back_to_guessing() {
        for reply in [
            "* NAMESPACE NIL NIL NIL\r\nmsns OK\r\n",
            "msns NO not here\r\n",
            "msns BAD unknown command\r\n",
            "* NAMESPACE ((\"INBOX.\" \".\") garbage\r\nmsns OK\r\n",
        ] {
            let (answer, _, rest) = ask(reply).await;
            assert_eq!(answer.unwrap(), Answer::default(), "{reply:?}");
            assert_eq!(rest, b"NEXT\r\n", "{reply:?}");
        }
    }

    #[tokio::test]
    async fn other_users_and_shared_namespaces_are_kept() {
        let (answer, ..) = ask(
            "* NAMESPACE ((\"\" \"/\")) ((\"Other Users/\" \"/\")) ((\"Shared Folders/\" \"/\")(\"public/\" \"/\"))\r\nmsns OK\r\n",
        )
        .await;
        let foreign: Vec<(String, NamespaceKind)> = answer
            .unwrap()
            .foreign
            .into_iter()
            .map(|n| (n.prefix, n.kind))
            .collect();
        assert_eq!(
            foreign,
            [
                ("Other Users/".to_owned(), NamespaceKind::OtherUsers),
                ("Shared Folders/".to_owned(), NamespaceKind::Shared),
                ("public/".to_owned(), NamespaceKind::Shared),
            ]
        );
    }

    #[tokio::test]
    async fn bye_or_closed_connection_is_an_error() {
        let (answer, ..) = ask("* BYE shutting down\r\n").await;
        assert!(answer.is_err());
        let (mut client, server) = tokio::io::duplex(64);
        drop(server);
        assert!(query(&mut client, Duration::from_secs(5)).await.is_err());
    }
}
