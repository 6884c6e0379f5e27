//! `mailshift validate` end to end: every broken fixture is reported at the exact line,
//! column and field its `expect:` comments name, and nothing else is.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn mailshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mailshift runs")
}

/// (severity, line, column, path) of one expected or reported finding.
type Key = (String, usize, usize, String);

/// Read `# expect: PATH @TOKEN (fragment)` (also `warn:` and `note:`) comments: each names a
/// finding on its own line whose column is where TOKEN starts.
fn expectations(text: &str) -> (BTreeSet<Key>, Vec<(Key, String)>) {
    let mut keys = BTreeSet::new();
    let mut fragments = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(hash) = line.find("# ") else {
            continue;
        };
        let code = &line[..hash];
        for part in line[hash + 2..].split(" ; ") {
            let part = part.trim();
            let (sev, rest) = match part.split_once(": ") {
                Some(("expect", r)) => ("error", r),
                Some(("warn", r)) => ("warning", r),
                Some(("note", r)) => ("note", r),
                _ => continue,
            };
            let (path, rest) = rest
                .split_once(" @")
                .expect("expect: PATH @TOKEN (fragment)");
            let (token, fragment) = rest.split_once(" (").expect("a (fragment)");
            let fragment = fragment.strip_suffix(')').expect("fragment ends with )");
            let col = code
                .find(token)
                .unwrap_or_else(|| panic!("token {token:?} not on line {}", n + 1));
            let key = (sev.to_owned(), n + 1, col + 1, path.to_owned());
            keys.insert(key.clone());
            fragments.push((key, fragment.to_owned()));
        }
    }
    (keys, fragments)
}

fn reported(json: &Value) -> Vec<(Key, String)> {
    json["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                (
                    f["severity"].as_str().unwrap().to_owned(),
                    f["line"].as_u64().unwrap() as usize,
                    f["column"].as_u64().unwrap() as usize,
                    f["path"].as_str().unwrap().to_owned(),
                ),
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn broken_manifests_are_pinpointed_by_file_line_column_and_field() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "fixtures present");
    for file in files {
        let rel = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
        let rel = rel.to_str().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let (expected, fragments) = expectations(&text);
        assert!(!expected.is_empty(), "{rel} has expectations");
        let out = mailshift(&["validate", "--output", "json", rel]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{rel}: invalid manifests exit 1"
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["valid"], Value::Bool(false));
        let got = reported(&json);
        let got_keys: BTreeSet<Key> = got.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            got_keys, expected,
            "{rel}: reported findings differ from the expect: comments\nreported: {got:#?}"
        );
        for (key, fragment) in fragments {
            let msg = &got.iter().find(|(k, _)| *k == key).unwrap().1;
            assert!(
                msg.contains(&fragment),
                "{rel}:{}: message {msg:?} lacks {fragment:?}",
                key.1
            );
        }
        for f in json["findings"].as_array().unwrap() {
            assert_eq!(f["file"], Value::String(rel.to_owned()));
        }
    }
}

#[test]
fn text_output_is_one_line_per_finding_in_compiler_style() {
    let out = mailshift(&["validate", "tests/fixtures/invalid/semantic-errors.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(
            "tests/fixtures/invalid/semantic-errors.yaml:15:16: spec.mailboxes[1].address: `ALICE@Example.com` is listed twice"
        ),
        "{stdout}"
    );
    for line in stdout.lines() {
        let mut parts = line.splitn(5, ':');
        let (file, l, c) = (parts.next(), parts.next(), parts.next());
        assert!(file.unwrap().ends_with(".yaml"), "{line}");
        assert!(l.unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(c.unwrap().parse::<usize>().is_ok(), "{line}");
    }
}

#[test]
fn examples_are_valid_even_with_strict() {
    for args in [
        &["validate", "examples/"][..],
        &["validate", "--strict", "examples/"][..],
    ] {
        let out = mailshift(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(out.stdout.is_empty(), "no findings for valid examples");
    }
    let out = mailshift(&["validate", "--output", "json", "examples/"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], Value::Bool(true));
    assert!(json["migrations"].as_u64().unwrap() >= 3);
}

const INLINE: &str = "apiVersion: mailshift.io/v1alpha1
kind: MailMigration
metadata: { name: inline }
spec:
  source: { imap: { host: 127.0.0.1, tls: none } }
  destination: { imap: { host: 127.0.0.1, tls: none } }
  mailboxes:
    - address: a@example.com
      sourcePassword: { value: pw1 }
      destinationPassword: { env: B }
";

fn validate_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.as_bytes().to_vec();
    // A reader that stops at its limit closes the pipe early: that is not a failure here.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

#[test]
fn inline_secrets_warn_and_fail_only_with_strict() {
    let lenient = validate_stdin(&["validate", "-"], INLINE);
    assert_eq!(lenient.status.code(), Some(0));
    let text = String::from_utf8(lenient.stdout).unwrap();
    assert!(
        text.starts_with(
            "<stdin>:9:32: spec.mailboxes[0].sourcePassword.value: warning: inline secret"
        ),
        "{text}"
    );
    assert!(!text.contains("pw1"), "the secret itself is never printed");
    let strict = validate_stdin(&["validate", "--strict", "-"], INLINE);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn yaml_output_and_missing_files() {
    let out = mailshift(&["validate", "--output", "yaml", "examples/"]);
    assert_eq!(out.status.code(), Some(0));
    let y: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(y["valid"], serde_yaml::Value::Bool(true));

    let out = mailshift(&["validate", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("no/such/file.yaml:1:1: (file): cannot read"),
        "{text}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = mailshift(&["validate", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// A minimal valid manifest, with `extra` appended to its spec.
fn minimal(kind: &str, extra: &str) -> String {
    format!(
        "apiVersion: mailshift.io/v1alpha1
kind: {kind}
metadata:
  name: m
spec:
  source:
    imap: {{ host: old.example.com }}
  destination:
    imap: {{ host: new.example.com }}
{extra}"
    )
}

#[test]
fn a_byte_order_mark_is_accepted_and_a_misspelled_kind_is_an_error() {
    let with_bom = format!(
        "\u{feff}{}",
        minimal(
            "MailMigration",
            "  mailboxes:\n    - address: a@example.com\n      sourcePassword: { env: A }\n      destinationPassword: { env: B }\n"
        )
    );
    let out = validate_stdin(&["validate", "-"], &with_bom);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = validate_stdin(&["validate", "-"], &minimal("MailMigratoin", ""));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "<stdin>:2:7: kind: unknown kind `MailMigratoin`: did you mean `MailMigration`?"
        ),
        "{text}"
    );
    // Another tool's document in the same file is still skipped with a note.
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    let out = validate_stdin(&["validate", "-"], other);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("note: skipped: a ConfigMap"), "{text}");
}

#[test]
fn oversized_or_deeply_nested_manifests_are_refused_quickly_with_a_line() {
    let deep = format!(
        "{}x: {}{}\n",
        minimal("MailMigration", ""),
        "[".repeat(5_000_000),
        "]".repeat(5_000_000)
    );
    let wide_line = format!(
        "# {}\n{}",
        "x".repeat(300_000),
        minimal("MailMigration", "")
    );
    let nested = format!(
        "{}  x: {}1{}\n",
        minimal("MailMigration", ""),
        "[".repeat(100),
        "]".repeat(100)
    );
    for (name, input, message) in [
        ("10 MB", deep, "larger than 4096 KiB"),
        (
            "a long line",
            wide_line,
            "1:1: (file): line 1 is longer than 256 KiB",
        ),
        (
            "100 levels",
            nested,
            "10:1: (file): collections nested deeper than 64 levels at line 10",
        ),
    ] {
        let start = std::time::Instant::now();
        let out = validate_stdin(&["validate", "-"], &input);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains(message), "{name}: {text}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{name}"
        );
    }
}

#[test]
fn a_device_or_fifo_named_as_a_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for file in ["/dev/zero", fifo.to_str().unwrap()] {
        let manifest = minimal(
            "MailMigration",
            &format!("  mailboxesFrom: {{ file: {file} }}\n"),
        );
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, manifest).unwrap();
        let start = std::time::Instant::now();
        let out = mailshift(&["validate", path.to_str().unwrap()]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{file}: {text}");
        assert!(text.contains("not a regular file"), "{file}: {text}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{file}"
        );
    }
}
