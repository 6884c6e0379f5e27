//! The raw command/response layer under [`super::session`]: tagged commands sent through
//! async-imap's `run_command`, every response read with its parser (imap-proto) and handed
//! to the caller, so that pipelining, response codes (APPENDUID, PERMANENTFLAGS,
//! HIGHESTMODSEQ) and extensions (CONDSTORE) are ours to use. Nothing here parses IMAP by
//! hand, and commands come encoded from [`super::command`].

use tokio::time::Instant;

use chrono::{DateTime, FixedOffset};
use imap_proto::rfc4315::UidSetMember;
use imap_proto::{Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::command::Command;
use super::conn::Connection;

/// Untagged responses that carry no answer to the command (EXISTS, RECENT, EXPUNGE, a
/// status without a code) one command may bring before the server counts as flooding. Far
/// more than a folder emptied by someone else during a pass would cause.
const MAX_UNSOLICITED: u32 = 1_000_000;

/// An IMAP operation failed. `Refused` is the server's NO or BAD for one command or item
/// (report it and go on); `Io`/`Protocol` mean the connection is gone or unusable
/// (reconnect and retry).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("{what}: refused by the server: {reason}")]
    Refused { what: String, reason: String },
    #[error("{what}: connection lost: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
    /// The server asks to slow down (`[THROTTLED]`, `[UNAVAILABLE]`, Office 365's
    /// "Request is throttled"): not a failure, the command is tried again after `wait` (as
    /// the server suggested, when it did).
    #[error("{what}: throttled by the server: {reason}")]
    Throttled {
        what: String,
        reason: String,
        wait: Option<std::time::Duration>,
    },
    /// A daily budget of `limits` is spent: the copy stops here, not failed, and goes on
    /// once the budget has room.
    #[error(transparent)]
    Paused(crate::limits::Pause),
}

/// A refusal of `what` as an error: [`ImapError::Throttled`] when it asks to slow down.
pub fn refused(what: &str, reason: String) -> ImapError {
    if super::throttle::provider_limit(&reason) {
        let wait = super::throttle::PROVIDER_LIMIT_PAUSE;
        return ImapError::Paused(crate::spec::Pause {
            until: chrono::Utc::now()
                + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::hours(1)),
            what: format!(
                "the provider's own transfer limit (\"{}\", to {what})",
                crate::text::excerpt(&reason, 200)
            ),
        });
    }
    match super::throttle::hint(&reason) {
        Some(wait) => ImapError::Throttled {
            what: what.to_owned(),
            reason,
            wait,
        },
        None => ImapError::Refused {
            what: what.to_owned(),
            reason,
        },
    }
}

impl From<super::command::Unsendable> for ImapError {
    fn from(e: super::command::Unsendable) -> Self {
        ImapError::Refused {
            what: format!("folder name {:?}", e.0),
            reason: "contains a character that cannot be sent in a quoted string".into(),
        }
    }
}

impl ImapError {
    pub(crate) fn from_imap(what: impl Into<String>, e: async_imap::error::Error) -> Self {
        let what = what.into();
        match e {
            async_imap::error::Error::No(reason) | async_imap::error::Error::Bad(reason) => {
                ImapError::Refused { what, reason }
            }
            async_imap::error::Error::ConnectionLost => ImapError::Io {
                what,
                error: std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "closed"),
            },
            async_imap::error::Error::Io(error) => ImapError::io(what, error),
            other => ImapError::Protocol {
                what,
                reason: crate::text::excerpt(&other.to_string(), 200),
            },
        }
    }

    /// An I/O error, or the protocol violation it carries (see [`super::conn::io_fault`]).
    pub(crate) fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        let what = what.into();
        match super::conn::io_fault(error) {
            super::conn::IoFault::Network(error) => ImapError::Io { what, error },
            super::conn::IoFault::Violation(reason) => ImapError::Protocol { what, reason },
        }
    }

    /// The attempt ends here: the connection cannot be used any more (reconnect, or give
    /// up for a violation), or the server asked to slow down (reconnect after the wait).
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            ImapError::Io { .. } | ImapError::Protocol { .. } | ImapError::Throttled { .. }
        )
    }

    /// Lost to the network or the server going away, so worth another attempt; a server
    /// that answered what cannot be parsed or broke the limits would do it again.
    pub fn is_transient(&self) -> bool {
        matches!(self, ImapError::Io { .. } | ImapError::Throttled { .. })
    }

    /// The server asked to slow down: `Some(wait)` (as it suggested, if it did).
    pub fn throttled(&self) -> Option<Option<std::time::Duration>> {
        match self {
            ImapError::Throttled { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// A daily budget is spent ([`ImapError::Paused`]).
    pub fn paused(&self) -> Option<&crate::limits::Pause> {
        match self {
            ImapError::Paused(p) => Some(p),
            _ => None,
        }
    }

    /// The server stopped answering (or never completed a command).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ImapError::Io { error, .. } if error.kind() == std::io::ErrorKind::TimedOut)
    }
}

/// What the tagged OK of a command carried that callers use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// `[APPENDUID uidvalidity uids]` (RFC 4315): the UIDs of the appended messages, in
    /// order (several after a MULTIAPPEND).
    pub append_uid: Option<(u32, Vec<u32>)>,
}

/// How a command ended, when the caller wants to see a NO rather than get an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    Ok(Done),
    /// NO or BAD, with the server's text (response code included).
    Refused(String),
}

/// Sends `command` with a fresh tag; returns the tag.
pub async fn send(
    conn: &mut Connection,
    command: &Command<'_>,
    what: &str,
) -> Result<String, ImapError> {
    let id = conn
        .session
        .run_command(&command.line())
        .await
        .map_err(|e| ImapError::from_imap(what, e))?;
    Ok(id.0)
}

/// Writes raw bytes (a literal) to the connection, without flushing.
pub async fn write_raw(conn: &mut Connection, bytes: &[u8], what: &str) -> Result<(), ImapError> {
    conn.session
        .get_mut()
        .write_all(bytes)
        .await
        .map_err(|e| ImapError::io(what, e))
}

pub async fn flush(conn: &mut Connection, what: &str) -> Result<(), ImapError> {
    conn.session
        .get_mut()
        .flush()
        .await
        .map_err(|e| ImapError::io(what, e))
}

/// One event while waiting for a tagged completion.
pub enum Event<'a, 'r> {
    /// An untagged response or a continuation request.
    Untagged(&'a Response<'r>),
    /// The completion of a tag other than the awaited one (pipelined commands).
    Other {
        tag: &'a str,
        completion: Completion,
    },
}

/// Reads responses until the tagged completion of `tag`, handing every other response to
/// `on`. Completions of other tags (pipelined commands) are handed over too.
pub async fn finish(
    conn: &mut Connection,
    tag: &str,
    what: &str,
    mut on: impl FnMut(Event<'_, '_>),
) -> Result<Completion, ImapError> {
    let deadline = deadline(conn);
    let mut unsolicited = 0u32;
    loop {
        let step = next(conn, what, deadline, |resp| match resp {
            Response::Done {
                tag: t,
                status,
                outcome,
            } => {
                let completion = completion(status, outcome.code.as_ref(), &outcome.information);
                if t.0 == tag {
                    return Ok(Some(completion));
                }
                on(Event::Other {
                    tag: &t.0,
                    completion,
                });
                Ok(None)
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => Err(bye(what, outcome.information.as_deref())),
            other => {
                if is_unsolicited(other) {
                    unsolicited += 1;
                    if unsolicited > MAX_UNSOLICITED {
                        return Err(ImapError::Protocol {
                            what: what.to_owned(),
                            reason: format!(
                                "the server sent more than {MAX_UNSOLICITED} untagged responses without completing the command"
                            ),
                        });
                    }
                }
                on(Event::Untagged(other));
                Ok(None)
            }
        })
        .await??;
        if let Some(c) = step {
            return Ok(c);
        }
    }
}

/// The server is closing the connection; no tagged answer will come.
pub fn bye(what: &str, text: Option<&str>) -> ImapError {
    ImapError::io(
        what,
        std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            format!("the server said BYE: {}", text.unwrap_or("")),
        ),
    )
}

/// Like [`finish`], but a NO or BAD is an error ([`ImapError::Refused`]).
pub async fn finish_ok(
    conn: &mut Connection,
    tag: &str,
    what: &str,
    on: impl FnMut(Event<'_, '_>),
) -> Result<Done, ImapError> {
    match finish(conn, tag, what, on).await? {
        Completion::Ok(done) => Ok(done),
        Completion::Refused(reason) => Err(refused(what, reason)),
    }
}

/// Runs one command to completion, handing untagged responses to `on`.
pub async fn run(
    conn: &mut Connection,
    command: &Command<'_>,
    what: &str,
    mut on: impl FnMut(&Response<'_>),
) -> Result<Done, ImapError> {
    let tag = send(conn, command, what).await?;
    finish_ok(conn, &tag, what, |ev| {
        if let Event::Untagged(r) = ev {
            on(r);
        }
    })
    .await
}

/// When an exchange starting now must be complete (see [`super::conn::Timeouts`]).
pub fn deadline(conn: &Connection) -> Instant {
    Instant::now() + conn.timeouts.exchange
}

/// Responses that answer nothing: state the server reports on its own.
fn is_unsolicited(r: &Response<'_>) -> bool {
    use imap_proto::MailboxDatum;
    match r {
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => true,
        Response::Expunge(_) => true,
        Response::Data { outcome, .. } => outcome.code.is_none(),
        _ => false,
    }
}

/// Reads the next response (within the response timeout, and before `deadline`, the end of
/// the whole exchange) and hands it to `f`.
pub async fn next<T>(
    conn: &mut Connection,
    what: &str,
    deadline: Instant,
    f: impl FnOnce(&Response<'_>) -> T,
) -> Result<T, ImapError> {
    let silence = conn.timeouts.response;
    let wait = silence.min(deadline.saturating_duration_since(Instant::now()));
    match tokio::time::timeout(wait, conn.session.read_response()).await {
        Err(_) => Err(ImapError::io(
            what,
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                if wait < silence {
                    format!(
                        "no completion within {:?} (the bound on one command)",
                        conn.timeouts.exchange
                    )
                } else {
                    format!("no response within {silence:?}")
                },
            ),
        )),
        Ok(Err(e)) => Err(ImapError::io(what, e)),
        Ok(Ok(None)) => Err(ImapError::io(
            what,
            std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the server closed the connection",
            ),
        )),
        Ok(Ok(Some(r))) => Ok(f(r.parsed())),
    }
}

fn completion(
    status: &Status,
    code: Option<&ResponseCode<'_>>,
    information: &Option<std::borrow::Cow<'_, str>>,
) -> Completion {
    match status {
        Status::Ok => {
            let mut done = Done::default();
            if let Some(ResponseCode::AppendUid(validity, set)) = code {
                let mut uids = Vec::new();
                for m in set {
                    match m {
                        UidSetMember::Uid(u) => uids.push(*u),
                        // A range lists UIDs in the order the messages were given; a range
                        // too large to be real is ignored rather than expanded.
                        UidSetMember::UidRange(r)
                            if r.end().saturating_sub(*r.start()) < 1_000_000 =>
                        {
                            uids.extend(r.clone());
                        }
                        UidSetMember::UidRange(_) => return Completion::Ok(done),
                    }
                }
                done.append_uid = Some((*validity, uids));
            }
            Completion::Ok(done)
        }
        _ => {
            let text = information.as_deref().unwrap_or("").trim();
            Completion::Refused(match code {
                Some(c) => format!("[{}] {text}", code_name(c)),
                None if text.is_empty() => format!("{status:?}"),
                None => text.to_owned(),
            })
        }
    }
}

fn code_name(c: &ResponseCode<'_>) -> String {
    let debug = format!("{c:?}");
    debug
        .split(['(', ' '])
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// Parses an INTERNALDATE as servers send it (`" 7-Mar-2019 08:09:10 +0530"`).
pub fn parse_imap_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    DateTime::parse_from_str(s, "%d-%b-%Y %H:%M:%S %z").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_answers_are_told_apart_with_their_suggested_wait() {
        use std::time::Duration;
        assert_eq!(
            crate::imap::throttle::hint(
                "Request is throttled. Suggested Backoff Time: 1234 milliseconds"
            ),
            Some(Some(Duration::from_millis(1234)))
        );
        assert_eq!(
            crate::imap::throttle::hint("[THROTTLED] slow down"),
            Some(None)
        );
        // An implementation limit (Dovecot: a message over its size limit) is a refusal;
        // at login the same code means too many connections.
        assert_eq!(
            crate::imap::throttle::hint(
                "[LIMIT] Mail size is larger than the maximum size allowed by server configuration"
            ),
            None
        );
        assert!(crate::imap::throttle::login_hint(
            "[LIMIT] too many connections"
        ));
        assert!(!crate::imap::throttle::login_hint(
            "[AUTHENTICATIONFAILED] Authentication failed."
        ));
        assert_eq!(
            crate::imap::throttle::hint("Too many simultaneous connections. (Failure)"),
            Some(None)
        );
        assert_eq!(
            crate::imap::throttle::hint("[OVERQUOTA] mailbox full"),
            None
        );
        assert_eq!(crate::imap::throttle::hint("Message too large"), None);
        assert!(matches!(
            refused("FETCH", "[THROTTLED] wait".into()),
            ImapError::Throttled { wait: None, .. }
        ));
        assert!(matches!(
            refused("FETCH", "no such message".into()),
            ImapError::Refused { .. }
        ));
    }

    #[test]
    fn dates_follow_rfc_3501() {
        let d = DateTime::parse_from_rfc3339("2019-03-07T08:09:10+05:30").unwrap();
        assert_eq!(parse_imap_date(" 7-Mar-2019 08:09:10 +0530"), Some(d));
        assert_eq!(parse_imap_date("07-Mar-2019 08:09:10 +0530"), Some(d));
        assert_eq!(parse_imap_date("garbage"), None);
    }
}
