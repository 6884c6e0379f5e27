//! What both API paths (the crate's providers in [`super::api`], Route 53's change batches in
//! [`super::route53`]) share: the record-set change a step asks for, the check that the set
//! read right before writing is still the one the step was planned from, and records
//! compared and described by what they say.

use hickory_proto::rr::{Name, RData, RecordType};

use super::error::DnsError;
use super::observe::txt_text;

/// One record set to replace: it must still hold `expected`, and then holds `records`.
#[derive(Clone, Debug)]
pub(super) struct Change {
    pub owner: Name,
    pub rtype: RecordType,
    pub expected: Vec<RData>,
    pub ttl: u32,
    pub records: Vec<RData>,
}

/// Nothing, when the set read now is the one `c` was planned from; `ZoneChanged` otherwise.
pub(super) fn still_expected(
    server: &str,
    record: &str,
    now: &[RData],
    c: &Change,
) -> Result<(), DnsError> {
    if same_set(now, &c.expected) {
        return Ok(());
    }
    Err(DnsError::ZoneChanged {
        server: server.to_owned(),
        record: record.to_owned(),
        expected: describe(&c.expected),
        found: describe(now),
    })
}

/// `records` in a provider's form, or which one it cannot take.
pub(super) fn convert<T>(
    records: &[RData],
    f: impl Fn(&RData) -> Result<T, String>,
    record: &str,
) -> Result<Vec<T>, DnsError> {
    records
        .iter()
        .map(f)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|detail| DnsError::InvalidRecord {
            record: record.to_owned(),
            detail,
        })
}

/// `text` (an API's or the crate's words) cut short, with every credential cut out.
pub(super) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = crate::text::excerpt(text, 300).to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

pub(super) fn show(name: &Name) -> String {
    crate::address::Domain::of(&name.to_ascii()).into()
}

/// A record compared by what it says: host names without case or trailing dot, TXT as
/// its joined text (APIs split and quote long TXT records each their own way).
fn canonical(r: &RData) -> String {
    match r {
        RData::MX(m) => format!("MX {} {}", m.preference, host(&m.exchange)),
        RData::SRV(s) => format!(
            "SRV {} {} {} {}",
            s.priority,
            s.weight,
            s.port,
            host(&s.target)
        ),
        RData::TXT(_) => format!("TXT {}", txt_text(r).unwrap_or_default()),
        other => other.to_string(),
    }
}

fn host(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn same_set(a: &[RData], b: &[RData]) -> bool {
    let key = |s: &[RData]| {
        let mut v: Vec<String> = s.iter().map(canonical).collect();
        v.sort();
        v.dedup();
        v
    };
    key(a) == key(b)
}

pub(super) fn describe(set: &[RData]) -> String {
    if set.is_empty() {
        return "no records".into();
    }
    let mut v: Vec<String> = set.iter().map(canonical).collect();
    v.sort();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::rdata::{MX, TXT};

    use super::*;

    #[test]
    fn records_compare_by_what_they_say() {
        let mx = |p, h: &str| RData::MX(MX::new(p, super::super::observe::fqdn(h).unwrap()));
        assert!(same_set(
            &[mx(10, "Mail.Example.net."), mx(20, "b.example.net")],
            &[mx(20, "b.example.net."), mx(10, "mail.example.net")],
        ));
        assert!(!same_set(
            &[mx(10, "a.example.net")],
            &[mx(20, "a.example.net")]
        ));
        assert!(!same_set(&[mx(10, "a.example.net")], &[]));
        let long = "v=spf1 ".to_owned() + &"ip4:192.0.2.1 ".repeat(30) + "-all";
        let split = super::super::update::txt_rdata_for_tests(&long);
        let whole = RData::TXT(TXT::new(vec![long.clone()]));
        assert!(same_set(&[split], &[whole]));
    }

    #[test]
    fn credentials_are_cut_out_of_error_texts() {
        let secrets = vec!["tok-123456".to_owned(), "ab".to_owned()];
        let text = redact("HTTP 400: bad token tok-123456 in {\"ab\": 1}", &secrets);
        assert!(!text.contains("tok-123456"), "{text}");
        assert!(text.contains("<redacted>") && text.contains("ab"), "{text}");
    }
}
