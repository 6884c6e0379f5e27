//! A deterministic, real-world-shaped mailbox corpus, and a fast IMAP loader for it.
//!
//! The same seed and parameters always give the same folders, the same message bytes, the
//! same flags and the same INTERNALDATEs, on any machine. Messages are described by small
//! [`MessageMeta`] records and rendered on demand ([`MessageMeta::render`]), so a corpus of
//! hundreds of megabytes never sits in memory.
//!
//! What it contains (see [`CorpusSpec::standard`]):
//!
//! * sizes from about 1 KB to several MB: most messages small, a tail of large attachments
//!   ([`SizeProfile::Realistic`]);
//! * plain text (8bit UTF-8 or quoted-printable), `multipart/alternative` (text + HTML) and
//!   `multipart/mixed` with base64 attachments, some with non-ASCII file names (RFC 2231);
//! * RFC 2047 encoded-word subjects and display names in several languages;
//! * `\Seen`, `\Answered`, `\Flagged`, `\Draft` and keywords (`$Forwarded`, `$Label1`...);
//! * INTERNALDATEs spread over years, ascending within a folder (mostly; as on real servers);
//! * folders with non-ASCII names (`Отправленные`, `Hộp thư đến/Dự án`, `Projects/R&D`);
//! * a few messages without Message-ID and some exact duplicates in the same folder.
//!
//! [`append_corpus`] loads it into a server with pipelined `APPEND` (LITERAL+, and
//! MULTIAPPEND groups where offered), which keeps INTERNALDATE, flags and keywords, over a
//! few parallel connections.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// SplitMix64: tiny, fast, and the same on every platform. Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for sub-stream `stream` of `seed` (independent of the order in which
    /// streams are used).
    pub fn derive(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `[lo, hi)`: as many values between 1 and 10 KB as between 10 and 100.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(lo, hi - 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fills `buf` with pseudo-random bytes (incompressible, like JPEG or PDF payloads).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// How message sizes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeProfile {
    /// 71 % 1–10 KB, 22 % 10–100 KB, 6 % 100 KB–1 MB, 1 % 1–5 MB (log-uniform within each
    /// band): mean about 60 KB, median about 5 KB, like a typical office mailbox.
    Realistic,
    /// Only 1–10 KB text messages: isolates the per-message cost.
    Small,
}

impl SizeProfile {
    fn draw(self, rng: &mut Rng) -> usize {
        let bands: &[(f64, u64, u64)] = match self {
            SizeProfile::Realistic => &[
                (0.71, 1_000, 10_000),
                (0.22, 10_000, 100_000),
                (0.06, 100_000, 1_000_000),
                (0.01, 1_000_000, 5_000_000),
            ],
            SizeProfile::Small => &[(1.0, 1_000, 10_000)],
        };
        let mut x = rng.unit();
        for &(p, lo, hi) in bands {
            if x < p {
                return rng.log_uniform(lo, hi) as usize;
            }
            x -= p;
        }
        let &(_, lo, hi) = bands.last().expect("bands");
        rng.log_uniform(lo, hi) as usize
    }

    pub fn parse(s: &str) -> Result<SizeProfile> {
        match s {
            "realistic" => Ok(SizeProfile::Realistic),
            "small" => Ok(SizeProfile::Small),
            _ => bail!("unknown size profile {s:?} (realistic | small)"),
        }
    }
}

/// A folder of the corpus: its name with `/` between levels (UTF-8), and its share of the
/// messages.
#[derive(Debug, Clone)]
pub struct FolderSpec {
    pub name: String,
    pub weight: u32,
}

/// Parameters of a corpus. Same parameters, same corpus.
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    pub seed: u64,
    pub messages: usize,
    pub folders: Vec<FolderSpec>,
    pub sizes: SizeProfile,
    /// Share of messages that are exact copies of an earlier message in the same folder.
    pub duplicate_rate: f64,
    /// Share of messages without a Message-ID header.
    pub missing_message_id_rate: f64,
    /// INTERNALDATEs fall in `[from, to)` (Unix seconds).
    pub dates: (i64, i64),
}

impl CorpusSpec {
    /// The standard multi-folder corpus: INBOX, Sent, Drafts, Archive levels, and folders
    /// with Russian, Vietnamese and `&`-containing names, with the realistic size mix.
    pub fn standard(seed: u64, messages: usize) -> CorpusSpec {
        let folders = [
            ("INBOX", 40),
            ("Sent", 12),
            ("Drafts", 2),
            ("Archive/2019", 10),
            ("Archive/2020", 8),
            ("Отправленные", 8),
            ("Hộp thư đến", 4),
            ("Hộp thư đến/Dự án", 8),
            ("Projects/R&D Ünïcødé", 8),
        ];
        CorpusSpec {
            seed,
            messages,
            folders: folders
                .iter()
                .map(|&(name, weight)| FolderSpec {
                    name: name.into(),
                    weight,
                })
                .collect(),
            sizes: SizeProfile::Realistic,
            duplicate_rate: 0.01,
            missing_message_id_rate: 0.005,
            // 2011-01-01 .. 2026-01-01
            dates: (1_293_840_000, 1_767_225_600),
        }
    }

    /// One INBOX of `messages` messages (for scaling runs).
    pub fn single_folder(seed: u64, messages: usize) -> CorpusSpec {
        CorpusSpec {
            folders: vec![FolderSpec {
                name: "INBOX".into(),
                weight: 1,
            }],
            ..CorpusSpec::standard(seed, messages)
        }
    }

    /// Draws every message's metadata (cheap; bodies are rendered later).
    pub fn generate(&self) -> Corpus {
        let mut rng = Rng::derive(self.seed, 0x00C0_4B05);
        let total_weight: u64 = self.folders.iter().map(|f| u64::from(f.weight)).sum();
        // Exact, deterministic split of the message count by weight (largest remainder).
        let mut counts: Vec<usize> = self
            .folders
            .iter()
            .map(|f| (self.messages as u64 * u64::from(f.weight) / total_weight.max(1)) as usize)
            .collect();
        let mut assigned: usize = counts.iter().sum();
        let mut i = 0;
        while assigned < self.messages {
            let k = i % counts.len();
            counts[k] += 1;
            assigned += 1;
            i += 1;
        }

        let mut messages: Vec<MessageMeta> = Vec::with_capacity(self.messages);
        let (from, to) = self.dates;
        for (folder, &n) in counts.iter().enumerate() {
            let first = messages.len();
            let is_drafts = self.folders[folder].name == "Drafts";
            let is_sent =
                self.folders[folder].name == "Sent" || self.folders[folder].name == "Отправленные";
            for k in 0..n {
                let body_seed = rng.next_u64();
                // Ascending dates with jitter: messages arrive in order, mostly.
                let span = (to - from) as f64;
                let base = from as f64 + span * (k as f64 + rng.unit()) / n.max(1) as f64;
                let jitter = (rng.unit() - 0.5) * 3.0 * 86_400.0;
                let date = (base + jitter).clamp(from as f64, (to - 1) as f64) as i64;
                let tz = *rng.pick(&[0i32, 60, 120, 180, 420, -300, -420, 330]);
                let age = (date - from) as f64 / span;
                let flags = draw_flags(&mut rng, is_drafts, is_sent, age);
                if k > 0 && rng.chance(self.duplicate_rate) {
                    let original = first + rng.below(k as u64) as usize;
                    let mut dup: MessageMeta = messages[original].clone();
                    dup.flags = flags;
                    dup.duplicate_of = Some(original);
                    messages.push(dup);
                    continue;
                }
                messages.push(MessageMeta {
                    folder,
                    body_seed,
                    size: self.sizes.draw(&mut rng),
                    flags,
                    internal_date: date,
                    tz_minutes: tz,
                    has_message_id: !rng.chance(self.missing_message_id_rate),
                    duplicate_of: None,
                });
            }
        }
        Corpus {
            folders: self.folders.iter().map(|f| f.name.clone()).collect(),
            messages,
        }
    }
}

fn draw_flags(rng: &mut Rng, drafts: bool, sent: bool, age: f64) -> Vec<&'static str> {
    let mut flags = Vec::new();
    // Older mail is more likely read.
    if sent || rng.chance(0.55 + 0.4 * (1.0 - age)) {
        flags.push("\\Seen");
    }
    if !sent && rng.chance(0.15) {
        flags.push("\\Answered");
    }
    if rng.chance(0.05) {
        flags.push("\\Flagged");
    }
    if drafts {
        flags.push("\\Draft");
    }
    for (kw, p) in [
        ("$Forwarded", 0.05),
        ("$MDNSent", 0.02),
        ("$NotJunk", 0.03),
        ("$Label1", 0.04),
        ("$Label3", 0.02),
        ("Work", 0.03),
        ("Personal", 0.02),
    ] {
        if rng.chance(p) {
            flags.push(kw);
        }
    }
    flags
}

/// A generated corpus: folder names (UTF-8, `/` between levels) and message records.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub folders: Vec<String>,
    pub messages: Vec<MessageMeta>,
}

impl Corpus {
    /// Messages per folder name.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m: BTreeMap<String, usize> = self.folders.iter().map(|f| (f.clone(), 0)).collect();
        for msg in &self.messages {
            *m.get_mut(&self.folders[msg.folder]).expect("folder") += 1;
        }
        m
    }
}

/// One message of a [`Corpus`]. Two records with the same `body_seed`, `size`, dates and
/// `has_message_id` render to the same bytes (that is how duplicates are made).
#[derive(Debug, Clone)]
pub struct MessageMeta {
    /// Index into [`Corpus::folders`].
    pub folder: usize,
    pub body_seed: u64,
    /// Target size in bytes; the rendered message is within a few hundred bytes of it
    /// (never below about 1 KB).
    pub size: usize,
    /// System flags and keywords, as IMAP atoms.
    pub flags: Vec<&'static str>,
    /// INTERNALDATE, Unix seconds.
    pub internal_date: i64,
    /// The time zone of INTERNALDATE and of the Date header, minutes east of UTC.
    pub tz_minutes: i32,
    pub has_message_id: bool,
    /// The index of the message this one duplicates, if it is a duplicate.
    pub duplicate_of: Option<usize>,
}

impl MessageMeta {
    /// The IMAP INTERNALDATE string, e.g. `"05-Mar-2019 14:02:11 +0100"`.
    pub fn imap_date(&self) -> String {
        let local = self.internal_date + i64::from(self.tz_minutes) * 60;
        let (y, mo, d, h, mi, s) = civil(local);
        format!(
            "{d:02}-{}-{y:04} {h:02}:{mi:02}:{s:02} {}",
            MONTHS[mo as usize - 1],
            tz_string(self.tz_minutes)
        )
    }

    /// The flag list for APPEND, e.g. `(\Seen $Forwarded)`.
    pub fn flag_list(&self) -> String {
        format!("({})", self.flags.join(" "))
    }

    /// The message bytes (CRLF line ends).
    pub fn render(&self) -> Vec<u8> {
        render(self)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// (year, month, day, hour, minute, second) of Unix time `t` (proleptic Gregorian).
fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

fn tz_string(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

/// RFC 5322 date, e.g. `Tue, 05 Mar 2019 14:02:11 +0100`.
fn rfc5322_date(t: i64, tz_minutes: i32) -> String {
    let local = t + i64::from(tz_minutes) * 60;
    let (y, mo, d, h, mi, s) = civil(local);
    let wd = WEEKDAYS[local.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} {}",
        MONTHS[mo as usize - 1],
        tz_string(tz_minutes)
    )
}

#[derive(Clone, Copy)]
enum Lang {
    En,
    De,
    Ru,
    Vi,
}

const WORDS_EN: &[&str] = &[
    "the",
    "meeting",
    "project",
    "report",
    "budget",
    "please",
    "review",
    "attached",
    "thanks",
    "schedule",
    "next",
    "week",
    "update",
    "invoice",
    "contract",
    "team",
    "question",
    "about",
    "deadline",
    "draft",
    "customer",
    "release",
    "server",
    "migration",
    "and",
    "for",
    "with",
    "we",
    "will",
    "should",
    "could",
    "tomorrow",
    "quarter",
    "numbers",
    "figures",
    "notes",
];
const WORDS_DE: &[&str] = &[
    "Besprechung",
    "Projekt",
    "Bericht",
    "bitte",
    "prüfen",
    "Anhang",
    "danke",
    "nächste",
    "Woche",
    "Rechnung",
    "Vertrag",
    "Frage",
    "über",
    "Frist",
    "Entwurf",
    "Kunde",
    "Grüße",
    "und",
    "für",
    "mit",
    "wir",
    "morgen",
    "Quartal",
    "Zahlen",
    "größer",
    "Straße",
];
const WORDS_RU: &[&str] = &[
    "встреча",
    "проект",
    "отчёт",
    "бюджет",
    "пожалуйста",
    "посмотрите",
    "вложение",
    "спасибо",
    "следующей",
    "неделе",
    "счёт",
    "договор",
    "вопрос",
    "срок",
    "черновик",
    "клиент",
    "и",
    "для",
    "с",
    "мы",
    "завтра",
    "квартал",
    "цифры",
    "сервер",
    "переезд",
];
const WORDS_VI: &[&str] = &[
    "cuộc", "họp", "dự", "án", "báo", "cáo", "ngân", "sách", "vui", "lòng", "xem", "tệp", "đính",
    "kèm", "cảm", "ơn", "tuần", "tới", "hóa", "đơn", "hợp", "đồng", "câu", "hỏi", "hạn", "chót",
    "khách", "hàng", "và", "cho", "với", "chúng", "tôi", "ngày", "mai",
];
const NAMES: &[(&str, &str)] = &[
    ("Alice Martin", "alice@example.com"),
    ("Bob Smith", "bob@example.org"),
    ("Jürgen Größmann", "juergen@example.de"),
    ("Zoë Ångström", "zoe@example.se"),
    ("Андрей Петров", "andrey@example.ru"),
    ("Мария Иванова", "maria@example.ru"),
    ("Nguyễn Văn Minh", "minh@example.vn"),
    ("Trần Thị Hồng", "hong@example.vn"),
    ("François Lefèvre", "francois@example.fr"),
    ("Support Team", "support@shop.example.net"),
];
const ATTACHMENTS: &[(&str, &str)] = &[
    ("report-Q3.pdf", "application/pdf"),
    ("photo.jpg", "image/jpeg"),
    (
        "Отчёт за квартал.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("ảnh chụp màn hình.png", "image/png"),
    (
        "Präsentation.pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("contract signed.pdf", "application/pdf"),
    ("archive.zip", "application/zip"),
    ("scan_0001.tiff", "image/tiff"),
];

fn words(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::En => WORDS_EN,
        Lang::De => WORDS_DE,
        Lang::Ru => WORDS_RU,
        Lang::Vi => WORDS_VI,
    }
}

fn sentence(rng: &mut Rng, lang: Lang, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        let w: &&str = rng.pick(words(lang));
        s.push_str(w);
    }
    s
}

/// Text of about `bytes` bytes, in lines of at most ~72 bytes, CRLF line ends.
fn text(rng: &mut Rng, lang: Lang, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 80);
    let mut line = String::new();
    while out.len() + line.len() < bytes {
        let w = rng.pick(words(lang));
        if line.len() + w.len() + 1 > 72 {
            out.push_str(&line);
            out.push_str(if rng.chance(0.15) {
                ".\r\n\r\n"
            } else {
                "\r\n"
            });
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// Text whose encoding by `encode` is about `budget` bytes: (text, encoded).
fn fitted(
    rng: &mut Rng,
    lang: Lang,
    budget: usize,
    encode: impl Fn(&str) -> String,
) -> (String, String) {
    let t = text(rng, lang, budget);
    let e = encode(&t);
    if e.len() <= budget + budget / 8 {
        return (t, e);
    }
    let t = text(rng, lang, budget * budget / e.len());
    let e = encode(&t);
    (t, e)
}

/// RFC 2047 `B` encoding of a header value, folded into encoded-words of at most 75
/// characters; ASCII-only values are returned as they are.
fn encoded_words(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::new();
    let mut chunk = String::new();
    let flush = |chunk: &mut String, out: &mut String| {
        if !chunk.is_empty() {
            if !out.is_empty() {
                out.push_str("\r\n ");
            }
            let _ = write!(out, "=?UTF-8?B?{}?=", crate::base64(chunk.as_bytes()));
            chunk.clear();
        }
    };
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            flush(&mut chunk, &mut out);
        }
        chunk.push(c);
    }
    flush(&mut chunk, &mut out);
    out
}

/// RFC 2047 `Q` encoding (for display names), one encoded-word.
fn q_word(s: &str) -> String {
    if s.is_ascii() {
        return format!("\"{s}\"");
    }
    let mut out = String::from("=?utf-8?q?");
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => out.push(b as char),
            _ => {
                let _ = write!(out, "={b:02X}");
            }
        }
    }
    out.push_str("?=");
    out
}

/// Quoted-printable (RFC 2045) of CRLF text, soft line breaks at 76.
fn quoted_printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for line in s.split("\r\n") {
        let mut col = 0;
        for &b in line.as_bytes() {
            let enc = if (b == b' ' || b.is_ascii_graphic()) && b != b'=' {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if col + enc.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
        out.push_str("\r\n");
    }
    out.truncate(out.len() - 2);
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 of `data` in lines of 76 characters, each ending in CRLF.
fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    for line in data.chunks(57) {
        for c in line.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                out.push(if i <= c.len() {
                    B64[(n >> (18 - 6 * i) & 63) as usize]
                } else {
                    b'='
                });
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Percent-encoding for an RFC 2231 parameter value.
fn rfc2231(s: &str) -> String {
    let mut out = String::from("UTF-8''");
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn render(m: &MessageMeta) -> Vec<u8> {
    let mut rng = Rng::new(m.body_seed);
    let lang = *rng.pick(&[Lang::En, Lang::En, Lang::En, Lang::De, Lang::Ru, Lang::Vi]);
    let from = *rng.pick(NAMES);
    let to = *rng.pick(NAMES);
    let mut h = String::with_capacity(1500);
    let date = m.internal_date - rng.range(5, 600) as i64;
    let relay = rng.range(1, 250);
    let _ = write!(
        h,
        "Return-Path: <{}>\r\n\
         Received: from mx{relay}.example.net (mx{relay}.example.net [192.0.2.{relay}])\r\n\
         \tby mail.example.com with ESMTPS id {:012X}\r\n\
         \tfor <{}>; {}\r\n",
        from.1,
        rng.next_u64() & 0xFFFF_FFFF_FFFF,
        to.1,
        rfc5322_date(m.internal_date, m.tz_minutes)
    );
    let _ = write!(
        h,
        "Date: {}\r\nFrom: {} <{}>\r\nTo: {} <{}>\r\n",
        rfc5322_date(date, m.tz_minutes),
        q_word(from.0),
        from.1,
        q_word(to.0),
        to.1
    );
    if rng.chance(0.2) {
        let cc = rng.pick(NAMES);
        let _ = write!(h, "Cc: {} <{}>\r\n", q_word(cc.0), cc.1);
    }
    let n_words = rng.range(2, 9) as usize;
    let mut subject = sentence(&mut rng, lang, n_words);
    if rng.chance(0.3) {
        subject.insert_str(0, "Re: ");
    }
    let _ = write!(h, "Subject: {}\r\n", encoded_words(&subject));
    if m.has_message_id {
        let _ = write!(
            h,
            "Message-ID: <{:016x}.{}@{}>\r\n",
            m.body_seed,
            m.internal_date,
            from.1.split('@').nth(1).unwrap_or("example.com")
        );
    }
    if subject.starts_with("Re: ") {
        let _ = write!(h, "In-Reply-To: <{:016x}@example.net>\r\n", rng.next_u64());
    }
    if rng.chance(0.4) {
        h.push_str("User-Agent: Mozilla/5.0 Thunderbird/115.3.1\r\n");
    }
    h.push_str("MIME-Version: 1.0\r\n");

    let target = m.size.saturating_sub(h.len() + 200).max(200);
    let mut body: Vec<u8> = Vec::with_capacity(target + 2048);
    let boundary = format!("=_mailshift_{:016x}", rng.next_u64());
    if m.size < 10_000 {
        let kind = rng.below(10);
        if kind < 3 {
            let (t, _) = fitted(&mut rng, lang, target, |t| t.to_string());
            h.push_str(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            );
            body.extend_from_slice(t.as_bytes());
        } else if kind < 6 {
            let (_, qp) = fitted(&mut rng, lang, target, quoted_printable);
            h.push_str(
                "Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n",
            );
            body.extend_from_slice(qp.as_bytes());
            body.extend_from_slice(b"\r\n");
        } else {
            let _ = write!(
                h,
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n"
            );
            let (_, both) = fitted(&mut rng, lang, target, |t| {
                let html = format!(
                    "<html><body><p>{}</p></body></html>\r\n",
                    t.replace("\r\n\r\n", "</p>\r\n<p>")
                );
                format!(
                    "This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n\
                     Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                     {}\r\n--{boundary}\r\n\
                     Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                     {}\r\n--{boundary}--\r\n",
                    quoted_printable(t),
                    quoted_printable(&html),
                )
            });
            body.extend_from_slice(both.as_bytes());
        }
    } else {
        let _ = write!(
            h,
            "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n"
        );
        let len = rng.range(500, 4000) as usize;
        let t = text(&mut rng, lang, len);
        let _ = write!(
            body_string(&mut body),
            "This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{t}\r\n"
        );
        let n_att = if m.size > 200_000 && rng.chance(0.3) {
            2
        } else {
            1
        };
        let remaining = target.saturating_sub(body.len() + 300 * n_att);
        for i in 0..n_att {
            let (name, ctype) = *rng.pick(ATTACHMENTS);
            let encoded_len = remaining / n_att;
            let raw_len = (encoded_len * 57 / 78).max(16);
            let mut raw = vec![0u8; raw_len];
            rng.fill(&mut raw);
            let disposition = if name.is_ascii() {
                format!("attachment; filename=\"{name}\"")
            } else {
                format!("attachment;\r\n filename*={}", rfc2231(name))
            };
            let _ = write!(
                body_string(&mut body),
                "--{boundary}\r\nContent-Type: {ctype};\r\n name=\"{}\"\r\n\
                 Content-Disposition: {disposition}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                encoded_words(name).replace("\r\n ", " "),
            );
            base64_lines(&raw, &mut body);
            let _ = i;
        }
        let _ = write!(body_string(&mut body), "--{boundary}--\r\n");
    }
    let mut out = h.into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// A `fmt::Write` view of a byte buffer.
fn body_string(buf: &mut Vec<u8>) -> ByteWriter<'_> {
    ByteWriter(buf)
}

struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Modified UTF-7 (RFC 3501 §5.1.3) of a mailbox name, as IMAP puts it on the wire.
pub fn mutf7_encode(name: &str) -> String {
    const ALPHA: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for c in bytes.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=c.len() {
                out.push(ALPHA[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What [`append_corpus`] loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStats {
    pub messages: usize,
    /// Bytes of message data (sum of RFC822.SIZE).
    pub bytes: u64,
}

/// Writes the corpus straight into a Maildir tree at `root` (a user's `~/Maildir`), as
/// Dovecot's `maildir:` storage keeps it, for corpora too large to APPEND in reasonable
/// time (a million messages). `delimiter` picks the layout: `.` for Maildir++ (`.Sent`),
/// `/` for `LAYOUT=fs`. Each message is written to `tmp/` and renamed into `cur/`, so that
/// a running server never sees a partial file; its name carries the size (`S=`, `W=`: the
/// rendered bytes are CRLF, so both are the file's length) and its flags (`:2,` with
/// system flags, then keyword letters listed in `dovecot-keywords`), and its mtime is the
/// INTERNALDATE, which is where Dovecot reads it from (the time zone is the server's then).
/// The files are handed to `owner` (uid, gid), the user the server reads mail as.
pub fn write_maildir(
    root: &std::path::Path,
    corpus: &Corpus,
    delimiter: char,
    owner: Option<(u32, u32)>,
) -> Result<LoadStats> {
    use std::os::unix::fs::chown;
    let dir_of = |folder: &str| -> std::path::PathBuf {
        if folder.eq_ignore_ascii_case("INBOX") {
            return root.to_path_buf();
        }
        let levels: Vec<String> = folder.split('/').map(mutf7_encode).collect();
        match delimiter {
            '/' => levels.iter().fold(root.to_path_buf(), |p, l| p.join(l)),
            d => root.join(format!(".{}", levels.join(&d.to_string()))),
        }
    };
    let mut stats = LoadStats::default();
    let mut subscriptions = String::new();
    for (index, folder) in corpus.folders.iter().enumerate() {
        let dir = dir_of(folder);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        if dir != root {
            std::fs::write(dir.join("maildirfolder"), "")?;
            subscriptions.push_str(&format!(
                "{}\n",
                mutf7_encode(&folder.replace('/', &delimiter.to_string()))
            ));
        }
        // Keywords get letters in order of first use, as Dovecot would assign them.
        let mut keywords: Vec<&str> = Vec::new();
        for (i, m) in corpus
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.folder == index)
        {
            let bytes = m.render();
            let mut system: Vec<char> = Vec::new();
            let mut letters: Vec<char> = Vec::new();
            for f in &m.flags {
                match *f {
                    "\\Draft" => system.push('D'),
                    "\\Flagged" => system.push('F'),
                    "\\Answered" => system.push('R'),
                    "\\Seen" => system.push('S'),
                    "\\Deleted" => system.push('T'),
                    kw => {
                        let k = match keywords.iter().position(|k| *k == kw) {
                            Some(k) => k,
                            None => {
                                ensure!(keywords.len() < 26, "more than 26 keywords in {folder}");
                                keywords.push(kw);
                                keywords.len() - 1
                            }
                        };
                        letters.push((b'a' + k as u8) as char);
                    }
                }
            }
            system.sort_unstable();
            letters.sort_unstable();
            let flags: String = system.into_iter().chain(letters).collect();
            let base = format!(
                "{}.M{i}P1.bench,S={len},W={len}",
                m.internal_date,
                len = bytes.len()
            );
            let tmp = dir.join("tmp").join(&base);
            let file = std::fs::File::create(&tmp)?;
            {
                let mut w = BufWriter::new(&file);
                w.write_all(&bytes)?;
                w.flush()?;
            }
            let mtime = std::time::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(m.internal_date.max(0)).unwrap_or(0));
            file.set_modified(mtime)?;
            drop(file);
            let cur = dir.join("cur").join(format!("{base}:2,{flags}"));
            if let Some((uid, gid)) = owner {
                chown(&tmp, Some(uid), Some(gid))?;
            }
            std::fs::rename(&tmp, &cur)?;
            stats.messages += 1;
            stats.bytes += bytes.len() as u64;
        }
        if !keywords.is_empty() {
            let list: String = keywords
                .iter()
                .enumerate()
                .map(|(k, kw)| format!("{k} {kw}\n"))
                .collect();
            std::fs::write(dir.join("dovecot-keywords"), list)?;
        }
    }
    if !subscriptions.is_empty() {
        std::fs::write(root.join("subscriptions"), subscriptions)?;
    }
    if let Some((uid, gid)) = owner {
        chown_tree(root, uid, gid)?;
    }
    ensure!(
        stats.messages == corpus.messages.len(),
        "wrote {} of {} messages",
        stats.messages,
        corpus.messages.len()
    );
    Ok(stats)
}

/// Hands every directory and file under `root` that is not a message in `cur/` (those
/// were handed over one by one) to `uid`:`gid`.
fn chown_tree(root: &std::path::Path, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::chown;
    chown(root, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if path.file_name().is_some_and(|n| n == "cur") {
                chown(&path, Some(uid), Some(gid))?;
            } else {
                chown_tree(&path, uid, gid)?;
            }
        } else {
            chown(&path, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

/// Creates the corpus' folders (subscribed) in `user`'s account on the IMAP server at
/// `127.0.0.1:port` and APPENDs every message with its flags and INTERNALDATE, in corpus
/// order within each folder, over `connections` parallel connections (folders are split
/// between them). Uses LITERAL+ so APPENDs are pipelined without waiting for
/// continuations. `delimiter` is the server's hierarchy delimiter.
pub fn append_corpus(
    port: u16,
    user: &str,
    password: &str,
    delimiter: char,
    corpus: &Corpus,
    connections: usize,
) -> Result<LoadStats> {
    let names: Vec<String> = corpus
        .folders
        .iter()
        .map(|f| mutf7_encode(&f.replace('/', &delimiter.to_string())))
        .collect();
    // Create folders (and their parents) first, on one connection.
    {
        let mut conn = Conn::login(port, user, password)?;
        let mut all = std::collections::BTreeSet::new();
        for f in &corpus.folders {
            let levels: Vec<&str> = f.split('/').collect();
            for depth in 1..=levels.len() {
                all.insert(levels[..depth].join("/"));
            }
        }
        for f in all {
            if f.eq_ignore_ascii_case("INBOX") {
                continue;
            }
            let name = quoted(&mutf7_encode(&f.replace('/', &delimiter.to_string())));
            conn.simple(&format!("CREATE {name}"), true)?;
            conn.simple(&format!("SUBSCRIBE {name}"), false)?;
        }
        conn.simple("LOGOUT", false)?;
    }

    let connections = connections.clamp(1, corpus.folders.len().max(1));
    // Balance folders over connections by message count, largest first.
    let counts: Vec<usize> = (0..corpus.folders.len())
        .map(|f| corpus.messages.iter().filter(|m| m.folder == f).count())
        .collect();
    let mut order: Vec<usize> = (0..corpus.folders.len()).collect();
    order.sort_by_key(|&f| std::cmp::Reverse(counts[f]));
    let mut groups: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); connections];
    for f in order {
        let g = groups.iter_mut().min_by_key(|g| g.0).expect("a group");
        g.0 += counts[f];
        g.1.push(f);
    }
    let results: Vec<Result<LoadStats>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|(_, folders)| {
                let names = &names;
                s.spawn(move || {
                    let msgs: Vec<&MessageMeta> = corpus
                        .messages
                        .iter()
                        .filter(|m| folders.contains(&m.folder))
                        .collect();
                    append_pipelined(port, user, password, names, &msgs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("loader thread panicked")))
            .collect()
    });
    let mut total = LoadStats::default();
    for r in results {
        let r = r?;
        total.messages += r.messages;
        total.bytes += r.bytes;
    }
    ensure!(
        total.messages == corpus.messages.len(),
        "loaded {} of {} messages",
        total.messages,
        corpus.messages.len()
    );
    Ok(total)
}

fn append_pipelined(
    port: u16,
    user: &str,
    password: &str,
    names: &[String],
    msgs: &[&MessageMeta],
) -> Result<LoadStats> {
    let conn = Conn::login(port, user, password)?;
    let has = |cap: &str| conn.caps.iter().any(|c| c.eq_ignore_ascii_case(cap));
    ensure!(
        has("LITERAL+"),
        "server does not offer LITERAL+ (capabilities: {:?})",
        conn.caps
    );
    // MULTIAPPEND (RFC 3502) stores a group in one transaction: several times faster.
    let (group_messages, group_bytes) = if has("MULTIAPPEND") {
        (50, 8_000_000)
    } else {
        (1, 0)
    };
    let Conn {
        mut reader, writer, ..
    } = conn;
    std::thread::scope(|s| -> Result<LoadStats> {
        // Reader: every APPEND must be answered OK, up to the LOGOUT's answer.
        let read = s.spawn(move || -> Result<()> {
            let mut ok = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    bail!("server closed the connection after {ok} APPENDs");
                }
                if line.starts_with('*') || line.starts_with('+') {
                    continue;
                }
                let mut parts = line.splitn(3, ' ');
                let (tag, status) = (parts.next(), parts.next());
                if tag == Some("Z") {
                    return Ok(());
                }
                ensure!(status == Some("OK"), "APPEND failed: {}", line.trim_end());
                ok += 1;
            }
        });
        let mut w = BufWriter::with_capacity(256 * 1024, writer);
        let mut stats = LoadStats::default();
        let mut group: Option<(usize, usize, u64)> = None; // (folder, messages, bytes)
        for (i, m) in msgs.iter().enumerate() {
            let bytes = m.render();
            let len = bytes.len() as u64;
            let continues = group.is_some_and(|(folder, n, size)| {
                folder == m.folder && n < group_messages && size + len <= group_bytes
            });
            if continues {
                let g = group.as_mut().expect("open group");
                g.1 += 1;
                g.2 += len;
            } else {
                if group.is_some() {
                    w.write_all(b"\r\n")?;
                }
                write!(w, "L{i} APPEND {}", quoted(&names[m.folder]))?;
                group = Some((m.folder, 1, len));
            }
            write!(
                w,
                " {} \"{}\" {{{}+}}\r\n",
                m.flag_list(),
                m.imap_date(),
                bytes.len()
            )?;
            w.write_all(&bytes)?;
            stats.messages += 1;
            stats.bytes += len;
        }
        if group.is_some() {
            w.write_all(b"\r\n")?;
        }
        w.write_all(b"Z LOGOUT\r\n")?;
        w.flush()?;
        read.join()
            .unwrap_or_else(|_| bail!("reader thread panicked"))?;
        Ok(stats)
    })
}

/// A minimal synchronous IMAP connection for set-up commands.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    caps: Vec<String>,
    tag: u32,
}

impl Conn {
    fn login(port: u16, user: &str, password: &str) -> Result<Conn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(64 * 1024, stream),
            caps: Vec::new(),
            tag: 0,
        };
        let mut greeting = String::new();
        conn.reader.read_line(&mut greeting)?;
        ensure!(greeting.starts_with("* OK"), "greeting: {greeting}");
        let lines = conn.simple(
            &format!("LOGIN {} {}", quoted(user), quoted(password)),
            true,
        )?;
        let lines = if lines.iter().any(|l| l.contains("CAPABILITY")) {
            lines
        } else {
            conn.simple("CAPABILITY", true)?
        };
        for l in lines {
            if let Some(rest) = l.split("CAPABILITY ").nth(1) {
                conn.caps = rest
                    .trim_end_matches(['\r', '\n', ']'])
                    .split([' ', ']'])
                    .map(str::to_string)
                    .collect();
            }
        }
        Ok(conn)
    }

    /// Sends a command and reads up to its tagged answer; returns all lines read.
    fn simple(&mut self, command: &str, must_succeed: bool) -> Result<Vec<String>> {
        self.tag += 1;
        let tag = format!("C{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())?;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed during {command}");
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                if must_succeed && !rest.starts_with("OK") {
                    bail!("{command}: {}", line.trim_end());
                }
                lines.push(line);
                return Ok(lines);
            }
            lines.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_examples() {
        assert_eq!(mutf7_encode("INBOX"), "INBOX");
        assert_eq!(mutf7_encode("R&D"), "R&-D");
        assert_eq!(
            mutf7_encode("Projects.R&D Ünïcødé"),
            "Projects.R&-D &ANw-n&AO8-c&APg-d&AOk-"
        );
        assert_eq!(
            mutf7_encode("Отправленные"),
            "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"
        );
        assert_eq!(mutf7_encode("Hộp thư đến"), "H&Htk-p th&AbA- &AREevw-n");
    }

    #[test]
    fn dates() {
        let m = MessageMeta {
            folder: 0,
            body_seed: 1,
            size: 2000,
            flags: vec![],
            internal_date: 1_551_794_531, // 2019-03-05 14:02:11 UTC
            tz_minutes: 60,
            has_message_id: true,
            duplicate_of: None,
        };
        assert_eq!(m.imap_date(), "05-Mar-2019 15:02:11 +0100");
        assert_eq!(
            rfc5322_date(1_551_794_531, -300),
            "Tue, 05 Mar 2019 09:02:11 -0500"
        );
    }

    #[test]
    fn deterministic_and_shaped() {
        let a = CorpusSpec::standard(7, 400).generate();
        let b = CorpusSpec::standard(7, 400).generate();
        assert_eq!(a.messages.len(), 400);
        for (x, y) in a.messages.iter().zip(&b.messages).take(50) {
            assert_eq!(x.render(), y.render());
            assert_eq!(x.flags, y.flags);
        }
        for m in a.messages.iter().take(50) {
            let r = m.render();
            assert!(
                r.len() + 1500 >= m.size && r.len() <= m.size + 1500,
                "{} vs {}",
                r.len(),
                m.size
            );
            assert!(
                !r.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
                "bare LF"
            );
        }
        assert!(a.messages.iter().any(|m| m.duplicate_of.is_some()));
    }
}
