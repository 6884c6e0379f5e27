//! Whether a server's refusal asks to slow down (hosted providers' throttling), and for how
//! long when it says. Text only: the connection layer (a throttled login) and the command
//! layer (a throttled command) both ask.

/// Whether a refusal asks to slow down, and for how long when the server says (Office
/// 365: `Suggested Backoff Time: 1234 milliseconds`). `None`: not a throttling answer.
///
/// RFC 5530's `[LIMIT]` is not one of them: on a command it names an implementation limit
/// (Dovecot refuses a message over its size limit with it), which waiting does not lift;
/// only at login, where it means too many connections, is it ([`login_hint`]).
pub fn hint(reason: &str) -> Option<Option<std::time::Duration>> {
    let upper = reason.to_ascii_uppercase();
    let throttled = ["[THROTTLED]", "[UNAVAILABLE]", "REQUEST IS THROTTLED"]
        .iter()
        .any(|s| upper.contains(s))
        || upper.contains("TOO MANY SIMULTANEOUS CONNECTIONS");
    if !throttled {
        return None;
    }
    let wait = upper
        .split_once("SUGGESTED BACKOFF TIME:")
        .and_then(|(_, rest)| {
            let n: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            n.parse::<u64>().ok()
        })
        .map(std::time::Duration::from_millis);
    Some(wait)
}

/// [`hint`] for a refused login, where `[LIMIT]` (too many connections) and a bare
/// `UNAVAILABLE` also mean "later", not "wrong password".
pub fn login_hint(reason: &str) -> bool {
    let upper = reason.to_ascii_uppercase();
    hint(reason).is_some() || upper.contains("[LIMIT]") || upper.contains("UNAVAILABLE")
}

/// How long a copy pauses when the provider says its own volume limit is spent, without
/// saying until when (Gmail restores access within a day): long enough not to knock every
/// few minutes, short enough not to lose most of a day.
pub const PROVIDER_LIMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Whether a refusal says the account's own transfer volume is spent (Gmail: `[OVERQUOTA]
/// Account exceeded command or bandwidth limits`), as opposed to a full mailbox (also
/// `[OVERQUOTA]`, RFC 5530), which refuses the one message.
pub fn provider_limit(reason: &str) -> bool {
    let upper = reason.to_ascii_uppercase();
    upper.contains("BANDWIDTH LIMIT") || upper.contains("EXCEEDED COMMAND OR BANDWIDTH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_bandwidth_is_told_from_a_full_mailbox() {
        assert!(provider_limit(
            "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
        ));
        assert!(!provider_limit(
            "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
        ));
        assert_eq!(hint("[OVERQUOTA] Quota exceeded"), None);
    }
}
