//! Whether a server's refusal asks to slow down (hosted providers' throttling), and for how
//! long when it says. Text only: the connection layer (a throttled login) and the command
//! layer (a throttled command) both ask.

/// Whether a refusal asks to slow down, and for how long when the server says (Office
/// 365: `Suggested Backoff Time: 1234 milliseconds`). `None`: not a throttling answer.
pub fn hint(reason: &str) -> Option<Option<std::time::Duration>> {
    let upper = reason.to_ascii_uppercase();
    let throttled = [
        "[THROTTLED]",
        "[LIMIT]",
        "[UNAVAILABLE]",
        "REQUEST IS THROTTLED",
    ]
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
