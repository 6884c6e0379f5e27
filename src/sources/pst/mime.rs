//! A PST message rebuilt as RFC 5322: what the destination's IMAP server takes.
//!
//! A PST keeps a message as properties, not as its original bytes: the internet headers it
//! arrived with (when it arrived by SMTP), the bodies (plain text, HTML, RTF) and the
//! attachments. The message is put back together as its header block (the transport
//! headers less their MIME fields, or headers made from the properties for mail that was
//! never sent, drafts and sent items among them) and a MIME body of its own. Everything is
//! a function of the message's content: the same message is rebuilt to the same bytes on
//! every run, boundaries included, so a re-sync finds it copied and a copy is exact.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A sender or recipient.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    /// The SMTP address; `None` for an Exchange-only one (an X.500 DN).
    pub address: Option<String>,
}

/// A message as its properties give it.
#[derive(Clone, Debug, Default)]
pub struct PstMessage {
    /// The internet headers it arrived with.
    pub transport_headers: Option<String>,
    pub subject: Option<String>,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    /// When it was sent (else delivered).
    pub date: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    /// UTF-8.
    pub text: Option<String>,
    /// In `html_charset`.
    pub html: Option<Vec<u8>>,
    pub html_charset: Option<&'static str>,
    /// Decompressed RTF, kept only where there is neither text nor HTML.
    pub rtf: Option<Vec<u8>>,
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub filename: Option<String>,
    pub mime_type: Option<String>,
    pub content_id: Option<String>,
    pub body: AttachmentBody,
}

#[derive(Clone, Debug)]
pub enum AttachmentBody {
    Data(Vec<u8>),
    /// An attached message (forwarded as an attachment), rebuilt the same way.
    Message(Box<PstMessage>),
}

/// The MIME fields of the original header block: the body below is a new one.
const MIME_FIELDS: [&str; 4] = [
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
];

/// The message's bytes, CRLF line endings.
pub fn rfc5322(m: &PstMessage) -> Vec<u8> {
    let body = Part::of_message(m);
    let mut out = Vec::new();
    match &m.transport_headers {
        Some(h) if !h.trim().is_empty() => {
            let kept = without_mime_fields(h);
            out.extend_from_slice(kept.as_bytes());
            if let Some(id) = &m.message_id
                && !has_field(&kept, "message-id")
            {
                header(&mut out, "Message-ID", id);
            }
        }
        _ => made_headers(m, &mut out),
    }
    header(&mut out, "MIME-Version", "1.0");
    body.write(&mut out);
    out
}

fn made_headers(m: &PstMessage, out: &mut Vec<u8>) {
    if let Some(d) = m.date {
        header(out, "Date", &d.to_rfc2822());
    }
    if let Some(f) = &m.from {
        header(out, "From", &mailbox(f));
    }
    for (name, list) in [("To", &m.to), ("Cc", &m.cc), ("Bcc", &m.bcc)] {
        if !list.is_empty() {
            let joined: Vec<String> = list.iter().map(mailbox).collect();
            header(out, name, &joined.join(", "));
        }
    }
    if let Some(s) = &m.subject {
        header(out, "Subject", &encoded_words(s));
    }
    for (name, v) in [
        ("Message-ID", &m.message_id),
        ("In-Reply-To", &m.in_reply_to),
        ("References", &m.references),
    ] {
        if let Some(v) = v {
            header(out, name, v);
        }
    }
}

/// `name` and value, folded nowhere: the values made here are single tokens or lists that
/// servers take at any length (RFC 5322's 998-octet limit is kept by truncating nothing
/// longer in practice than a subject).
fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.replace(['\r', '\n'], " ").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `"Name" <address>`; a name without an SMTP address is an empty group (RFC 6854), which
/// says who without inventing an address.
fn mailbox(m: &Mailbox) -> String {
    let name = m.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match (name, m.address.as_deref()) {
        (Some(n), Some(a)) if n != a => format!("{} <{a}>", phrase(n)),
        (_, Some(a)) => format!("<{a}>"),
        (Some(n), None) => format!("{}:;", phrase(n)),
        (None, None) => "undisclosed-recipients:;".into(),
    }
}

fn phrase(s: &str) -> String {
    if !s.is_ascii() {
        return encoded_words(s);
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c))
    {
        return s.to_owned();
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// RFC 2047 `=?UTF-8?B?...?=` words for non-ASCII text, split on character boundaries so
/// that each word stays under 76 characters.
fn encoded_words(s: &str) -> String {
    if s.is_ascii() {
        return s.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The header block with its MIME fields (and their continuation lines) taken out, CRLF
/// line endings, no blank line.
fn without_mime_fields(headers: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in headers.lines() {
        if line.trim().is_empty() {
            // The end of the block (Exchange keeps a blank line or two after it).
            break;
        }
        let continued = line.starts_with([' ', '\t']);
        if !continued {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            skipping = MIME_FIELDS.contains(&name.as_str());
        }
        if !skipping {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

fn has_field(headers: &str, name: &str) -> bool {
    headers.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

/// A MIME entity: its header fields after Content-Type, and its body.
struct Part {
    content_type: String,
    fields: Vec<(String, String)>,
    body: PartBody,
}

enum PartBody {
    Leaf(Vec<u8>),
    Multi(Vec<Part>),
}

impl Part {
    fn of_message(m: &PstMessage) -> Part {
        let mut bodies = Vec::new();
        if let Some(t) = &m.text {
            bodies.push(Part::text("text/plain; charset=utf-8", t.as_bytes()));
        }
        if let Some(h) = &m.html {
            let ct = match m.html_charset {
                Some(cs) => format!("text/html; charset={cs}"),
                None => "text/html".into(),
            };
            bodies.push(Part::text(&ct, h));
        }
        if bodies.is_empty()
            && let Some(r) = &m.rtf
        {
            bodies.push(Part::text("text/rtf", r));
        }
        let main = match bodies.len() {
            0 => Part::text("text/plain; charset=utf-8", b""),
            1 => bodies.remove(0),
            _ => Part::multi("multipart/alternative", bodies),
        };
        if m.attachments.is_empty() {
            return main;
        }
        let mut parts = vec![main];
        parts.extend(m.attachments.iter().map(Part::attachment));
        Part::multi("multipart/mixed", parts)
    }

    fn text(content_type: &str, bytes: &[u8]) -> Part {
        Part {
            content_type: content_type.to_owned(),
            fields: vec![(
                "Content-Transfer-Encoding".into(),
                "quoted-printable".into(),
            )],
            body: PartBody::Leaf(quoted_printable(bytes)),
        }
    }

    fn multi(content_type: &str, parts: Vec<Part>) -> Part {
        Part {
            content_type: content_type.to_owned(),
            fields: Vec::new(),
            body: PartBody::Multi(parts),
        }
    }

    fn attachment(a: &Attachment) -> Part {
        let mut fields = Vec::new();
        let disposition = match &a.filename {
            Some(f) => format!("attachment; filename=\"{}\"", param(f)),
            None => "attachment".into(),
        };
        match &a.body {
            AttachmentBody::Message(m) => {
                fields.push(("Content-Disposition".into(), disposition));
                Part {
                    content_type: "message/rfc822".into(),
                    fields,
                    // Encoded as a whole message is: 7bit/8bit lines as they are.
                    body: PartBody::Leaf(rfc5322(m)),
                }
            }
            AttachmentBody::Data(data) => {
                let mut content_type = a
                    .mime_type
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| t.contains('/') && t.is_ascii() && !t.contains(['\r', '\n']))
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                if let Some(f) = &a.filename {
                    content_type.push_str(&format!("; name=\"{}\"", param(f)));
                }
                fields.push(("Content-Transfer-Encoding".into(), "base64".into()));
                fields.push(("Content-Disposition".into(), disposition));
                if let Some(id) = &a.content_id {
                    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
                    if !id.is_empty() && id.is_ascii() {
                        fields.push(("Content-ID".into(), format!("<{id}>")));
                    }
                }
                Part {
                    content_type,
                    fields,
                    body: PartBody::Leaf(base64_lines(data)),
                }
            }
        }
    }

    /// Writes the entity: its fields, a blank line, its body. A multipart's boundary is a
    /// digest of what it encloses, so the same content always gets the same boundary; it
    /// starts with `=_`, which neither quoted-printable nor base64 can produce, so it cannot
    /// occur in an encoded part.
    fn write(&self, out: &mut Vec<u8>) {
        match &self.body {
            PartBody::Leaf(bytes) => {
                write_fields(out, &self.content_type, &self.fields);
                out.extend_from_slice(bytes);
            }
            PartBody::Multi(parts) => {
                let mut inner: Vec<Vec<u8>> = Vec::new();
                let mut digest = Sha256::new();
                for p in parts {
                    let mut b = Vec::new();
                    p.write(&mut b);
                    digest.update((b.len() as u64).to_be_bytes());
                    digest.update(&b);
                    inner.push(b);
                }
                let hex: String = digest.finalize()[..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let boundary = format!("=_mailshift_{hex}");
                let ct = format!("{}; boundary=\"{boundary}\"", self.content_type);
                write_fields(out, &ct, &self.fields);
                for b in inner {
                    out.extend_from_slice(b"--");
                    out.extend_from_slice(boundary.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&b);
                    if !b.ends_with(b"\r\n") {
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out.extend_from_slice(b"--");
                out.extend_from_slice(boundary.as_bytes());
                out.extend_from_slice(b"--\r\n");
            }
        }
    }
}

fn write_fields(out: &mut Vec<u8>, content_type: &str, fields: &[(String, String)]) {
    header(out, "Content-Type", content_type);
    for (n, v) in fields {
        header(out, n, v);
    }
    out.extend_from_slice(b"\r\n");
}

/// A filename as a quoted parameter: RFC 2231 would be exact, but RFC 2047 words in quotes
/// are what mail clients write and read for non-ASCII names.
fn param(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    encoded_words(&clean)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Base64 in lines of 76.
fn base64_lines(data: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * 2 + 2);
    for line in text.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045): line breaks kept as CRLF, lines soft-broken under 76.
fn quoted_printable(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let normalized = bytes.split(|&b| b == b'\n').collect::<Vec<_>>();
    let last = normalized.len() - 1;
    for (i, raw) in normalized.iter().enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut width = 0;
        for (j, &b) in line.iter().enumerate() {
            let trailing_space = (b == b' ' || b == b'\t') && j == line.len() - 1;
            let literal = (b == b' ' || b == b'\t' || (33..=126).contains(&b))
                && b != b'='
                && !trailing_space;
            let len = if literal { 1 } else { 3 };
            if width + len > 75 {
                out.extend_from_slice(b"=\r\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            width += len;
        }
        if i < last {
            out.extend_from_slice(b"\r\n");
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The charset name of a Windows codepage (PR_INTERNET_CPID), for the HTML body.
pub fn charset(codepage: u32) -> Option<&'static str> {
    Some(match codepage {
        65001 => "utf-8",
        20127 => "us-ascii",
        1250 => "windows-1250",
        1251 => "windows-1251",
        1252 => "windows-1252",
        1253 => "windows-1253",
        1254 => "windows-1254",
        1255 => "windows-1255",
        1256 => "windows-1256",
        1257 => "windows-1257",
        1258 => "windows-1258",
        28591 => "iso-8859-1",
        28592 => "iso-8859-2",
        28595 => "iso-8859-5",
        28597 => "iso-8859-7",
        28599 => "iso-8859-9",
        28605 => "iso-8859-15",
        20866 => "koi8-r",
        21866 => "koi8-u",
        932 => "shift_jis",
        50220..=50222 => "iso-2022-jp",
        51932 => "euc-jp",
        936 => "gbk",
        54936 => "gb18030",
        950 => "big5",
        949 | 51949 => "euc-kr",
        874 => "windows-874",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> PstMessage {
        PstMessage {
            subject: Some("Grüße aus Köln".into()),
            from: Some(Mailbox {
                name: Some("Lokay, Michelle".into()),
                address: Some("michelle.lokay@enron.com".into()),
            }),
            to: vec![Mailbox {
                name: Some("Exchange Only".into()),
                address: None,
            }],
            date: DateTime::from_timestamp(998_607_391, 0),
            message_id: Some("<a@b>".into()),
            text: Some("line one\nline two = 2\n".into()),
            html: Some(b"<p>caf\xe9</p>".to_vec()),
            html_charset: charset(1252),
            attachments: vec![Attachment {
                filename: Some("report.pdf".into()),
                mime_type: Some("application/pdf".into()),
                content_id: None,
                body: AttachmentBody::Data(vec![0, 1, 2, 255]),
            }],
            ..PstMessage::default()
        }
    }

    #[test]
    fn made_headers_and_a_mime_body_that_mail_parsers_read_back() {
        let bytes = rfc5322(&message());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("Date: Thu, 23 Aug 2001 22:56:31 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains("From: \"Lokay, Michelle\" <michelle.lokay@enron.com>\r\n"));
        assert!(
            text.contains("To: \"Exchange Only\":;\r\n")
                || text.contains("To: Exchange Only:;\r\n")
        );
        assert!(text.contains("Subject: =?UTF-8?B?"), "{text}");
        assert!(text.contains("Message-ID: <a@b>\r\n"));
        assert!(text.contains("multipart/mixed; boundary=\"=_mailshift_"));
        assert!(text.contains("multipart/alternative; boundary=\"=_mailshift_"));
        assert!(text.contains("line two =3D 2\r\n"));
        assert!(text.contains("text/html; charset=windows-1252"));
        assert!(text.contains("<p>caf=E9</p>"));
        assert!(text.contains("AAEC/w==\r\n"));
        assert!(!text.contains("\n\n") && !text.replace("\r\n", "").contains('\n'));
        // Every boundary line opened is closed.
        let opened: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("--"))
            .filter(|l| !l.ends_with("--"))
            .collect();
        for b in opened {
            assert!(text.contains(&format!("--{b}--")), "{b} not closed");
        }
    }

    #[test]
    fn the_same_message_is_the_same_bytes_and_another_body_another_boundary() {
        let a = rfc5322(&message());
        assert_eq!(a, rfc5322(&message()));
        let mut other = message();
        other.text = Some("something else".into());
        let b = rfc5322(&other);
        let boundary = |m: &[u8]| {
            let t = String::from_utf8_lossy(m).into_owned();
            let at = t.find("boundary=\"").unwrap() + 10;
            t[at..at + 36].to_owned()
        };
        assert_ne!(boundary(&a), boundary(&b));
    }

    #[test]
    fn transport_headers_keep_everything_but_their_mime_fields() {
        let mut m = message();
        m.transport_headers = Some(
            "Received: from x\r\n\tby y\r\nMessage-ID: <orig@x>\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"old\"\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n\r\n\r\n"
                .into(),
        );
        let text = String::from_utf8(rfc5322(&m)).unwrap();
        assert!(text.starts_with("Received: from x\r\n\tby y\r\nMessage-ID: <orig@x>\r\nSubject: Hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_mailshift_"), "{text}");
        assert!(!text.contains("old"));
        assert_eq!(text.matches("Message-ID").count(), 1);
    }

    #[test]
    fn quoted_printable_breaks_long_lines_and_encodes_what_must_be() {
        let long = "x".repeat(200) + " \n=_\tend \n";
        let qp = quoted_printable(long.as_bytes());
        let text = String::from_utf8(qp).unwrap();
        for line in text.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
        assert!(text.contains("=20\r\n=3D_\tend=20\r\n"), "{text}");
        assert!(!text.contains("=_"));
    }

    #[test]
    fn an_attached_message_is_rebuilt_inside() {
        let mut outer = message();
        outer.attachments = vec![Attachment {
            filename: Some("fwd.msg".into()),
            mime_type: None,
            content_id: None,
            body: AttachmentBody::Message(Box::new(message())),
        }];
        let text = String::from_utf8(rfc5322(&outer)).unwrap();
        assert!(text.contains("Content-Type: message/rfc822\r\n"));
        assert_eq!(text.matches("Message-ID: <a@b>").count(), 2);
    }
}
