//! A source that misbehaves, one way at a time (the harness's scripted [`Hostile`] server,
//! the one stand-in among the test servers: no real server misbehaves on demand), copied to
//! a real Dovecot. Every wait ends within its bound, memory stays flat whatever a literal
//! announces, a protocol violation is reported once rather than retried like a lost
//! connection, a wrong answer is never written to the destination, and nothing a server
//! names reaches the output unescaped.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use mailshift::engine::Engine;
use mailshift::imap::conn::{Connector, Side};
use mailshift::imap::report::MailboxReport;
use mailshift::spec::ManifestDuration;
use mailshift::store::StateDir;
use mailshift_harness::hostile::Message;
use mailshift_harness::{Dovecot, Hostile, Misbehaviour};

/// How long the source may stay silent in these tests.
const TIMEOUT: Duration = Duration::from_secs(1);

fn corpus() -> Vec<Message> {
    (1..=3)
        .map(|uid| Message {
            uid,
            body: message(&format!("m{uid}"), &format!("message {uid}"), "hello\r\n"),
        })
        .collect()
}

struct Case {
    source: Hostile,
    dst: Dovecot,
    _state: tempfile::TempDir,
    engine: Arc<Engine>,
}

fn case(name: &str, m: Misbehaviour) -> Result<Case> {
    case_with(name, m, TIMEOUT)
}

/// A case whose source may stay silent for `timeout`.
fn case_with(name: &str, m: Misbehaviour, timeout: Duration) -> Result<Case> {
    let source = Hostile::start(m, USER, PASSWORD, corpus())?;
    let dst = dovecot(name).start()?;
    let state = tempfile::tempdir()?;
    let mut src_endpoint = endpoint(source.port());
    src_endpoint.timeout = Some(ManifestDuration(timeout));
    let src = Connector::new(Side::Source, &src_endpoint, None)?;
    let dest = Connector::new(Side::Destination, &endpoint(dst.imap_port()), None)?;
    let store = Arc::new(StateDir::at(state.path()));
    let engine = Arc::new(Engine::new(src, dest, None, store).with_options(test_options()));
    Ok(Case {
        source,
        dst,
        _state: state,
        engine,
    })
}

impl Case {
    /// A sync, and how long it took.
    fn sync(&self) -> (MailboxReport, Duration) {
        let start = Instant::now();
        let report = runtime().block_on(self.engine.sync_mailbox(&account()));
        (report, start.elapsed())
    }

    /// Every message on the destination, all folders.
    fn destination(&self) -> Result<Vec<Msg>> {
        let mut all = Vec::new();
        for (name, _) in folders(&self.dst)? {
            all.extend(messages(&self.dst, &name)?);
        }
        Ok(all)
    }
}

/// A case for the command line: the scripted source, a Dovecot destination, and a
/// directory holding `m.yaml` (migration `hostile`) between them.
fn cli_case(name: &str, m: Misbehaviour) -> Result<(Hostile, Dovecot, tempfile::TempDir)> {
    let source = Hostile::start(m, USER, PASSWORD, corpus())?;
    let dst = dovecot(name).start()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest("hostile", source.port(), dst.imap_port(), ""),
    )?;
    Ok((source, dst, dir))
}

/// Peak resident memory of this test process, from /proc.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn the_control_case_copies_everything() -> Result<()> {
    let c = case("hostile-none", Misbehaviour::None)?;
    let (report, _) = c.sync();
    assert!(report.is_perfect(), "{report:#?}");
    let mut subjects: Vec<String> = c.destination()?.iter().map(Msg::subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["message 1", "message 2", "message 3"]);
    Ok(())
}

#[test]
fn a_server_silent_in_any_phase_is_given_up_within_its_bounds() -> Result<()> {
    for (m, phase) in [
        (Misbehaviour::SilentGreeting, "waiting for the greeting"),
        (
            Misbehaviour::SilentPreLoginCapability,
            "capabilities before login",
        ),
        (Misbehaviour::SilentLogin, "logging in"),
        (
            Misbehaviour::SilentPostLoginCapability,
            "capabilities after login",
        ),
        (Misbehaviour::SilentList, "no response within 1s"),
    ] {
        let c = case("hostile-silent", m.clone())?;
        let (report, took) = c.sync();
        let error = report.error.clone().unwrap_or_default();
        assert!(error.contains(phase), "{m:?}: {error}");
        assert!(
            error.contains("gave up after 3 attempts that timed out"),
            "{m:?}: {error}"
        );
        // Three attempts of one second each, and the backoff between them.
        assert!(took < Duration::from_secs(12), "{m:?}: {took:?}");
        assert!(c.destination()?.is_empty(), "{m:?}");
    }
    Ok(())
}

#[test]
fn an_endless_flood_of_untagged_responses_ends_the_command() -> Result<()> {
    let c = case("hostile-flood", Misbehaviour::FloodAfterExamine)?;
    let (report, took) = c.sync();
    let text = format!("{report:?}");
    assert!(
        text.contains("untagged responses without completing")
            || text.contains("the bound on one command"),
        "{text}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(c.destination()?.is_empty());
    Ok(())
}

#[test]
fn a_huge_literal_is_refused_before_it_is_allocated() -> Result<()> {
    let c = case("hostile-literal", Misbehaviour::HugeLiteral(400_000_000))?;
    let (report, took) = c.sync();
    let text = format!("{report:?}");
    assert!(
        text.contains("announced a literal of 400000000 bytes"),
        "{text}"
    );
    // Not retried: the same answer would come again.
    assert!(!text.contains("gave up after"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let peak = peak_rss_bytes();
    assert!(peak < 200 << 20, "peak RSS {peak} bytes");
    assert!(c.destination()?.is_empty());
    Ok(())
}

#[test]
fn a_line_without_end_is_refused_at_its_cap() -> Result<()> {
    // A patient timeout: the cap, not the silence, must end it (an unfinished line is no
    // response, and on a loaded machine the line may take a while to reach its cap).
    let c = case_with(
        "hostile-line",
        Misbehaviour::EndlessLine,
        Duration::from_secs(60),
    )?;
    let (report, took) = c.sync();
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("line longer than 256 KiB"), "{error}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    Ok(())
}

#[test]
fn an_unparsable_answer_is_reported_once_in_a_short_excerpt() -> Result<()> {
    let c = case("hostile-garbage", Misbehaviour::Garbage)?;
    let (report, _) = c.sync();
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("cannot be parsed"), "{error}");
    assert!(error.len() < 600, "{} bytes: {error}", error.len());
    assert!(
        !error.chars().any(|c| c.is_control()),
        "control characters in {error:?}"
    );
    // One attempt: a parser error is not a lost connection. (A first copy logs a second
    // connection in beside the first one, which lists nothing.)
    let lists = c
        .source
        .commands()
        .iter()
        .filter(|line| {
            line.split(' ')
                .nth(1)
                .is_some_and(|v| v.eq_ignore_ascii_case("LIST"))
        })
        .count();
    assert_eq!(lists, 1, "{error}");
    assert!(c.source.logins() <= 2, "{error}");
    Ok(())
}

#[test]
fn answers_that_do_not_match_the_question_never_reach_the_destination() -> Result<()> {
    for (m, reason) in [
        (Misbehaviour::WrongUids, "which was not asked for"),
        (Misbehaviour::DuplicateUid, "different bodies"),
        (Misbehaviour::ShortBodies, "whose RFC822.SIZE is"),
        (Misbehaviour::WrongMessageIds, "is not the one listed"),
    ] {
        let c = case("hostile-answers", m.clone())?;
        let (report, _) = c.sync();
        assert!(!report.is_perfect(), "{m:?}");
        let inbox = report
            .folders
            .iter()
            .find(|f| f.source == "INBOX")
            .expect("INBOX reported");
        let text = format!("{report:?}");
        assert!(text.contains(reason), "{m:?}: {text}");
        // Every listed message is accounted for as refused (asked for again next run).
        assert_eq!(inbox.refused.len(), 3, "{m:?}: {text}");
        assert!(c.destination()?.is_empty(), "{m:?}");
    }

    // One message too many: the three asked for are copied, the extra is not (a warning in
    // the log; nothing of the mailbox's is lost).
    let c = case("hostile-extra", Misbehaviour::ExtraUid)?;
    let (report, _) = c.sync();
    assert!(report.is_perfect(), "{report:#?}");
    let mut subjects: Vec<String> = c.destination()?.iter().map(Msg::subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["message 1", "message 2", "message 3"]);
    Ok(())
}

#[test]
fn a_login_cut_off_twice_is_not_tried_a_third_time() -> Result<()> {
    let c = case("hostile-drop", Misbehaviour::DropAtLogin)?;
    let (report, _) = c.sync();
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("not sending the password again"), "{error}");
    assert_eq!(c.source.logins(), 2, "{error}");
    Ok(())
}

#[test]
fn folder_names_with_control_characters_are_printed_escaped() -> Result<()> {
    let (_source, _dst, dir) = cli_case("hostile-names", Misbehaviour::ControlCharacterName)?;
    for args in [
        &["sync", "-f", "m.yaml"][..],
        &["folders", "-f", "m.yaml"][..],
    ] {
        let out = mailshift(dir.path(), args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(!text.contains('\u{1b}'), "{args:?} {what}: ESC printed raw");
            assert!(
                !text
                    .lines()
                    .any(|l| l.trim_start().starts_with("sync: perfect")),
                "{args:?} {what}: a forged line:\n{text}"
            );
        }
        assert!(
            stdout.contains("evil\\r\\nsync: perfect\\u{1b}[2J"),
            "{args:?}:\n{stdout}\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn two_folders_whose_names_read_the_same_both_appear() -> Result<()> {
    let c = case("hostile-collide", Misbehaviour::CollidingNames)?;
    let (report, _) = c.sync();
    let names: Vec<&str> = report.folders.iter().map(|f| f.source.as_str()).collect();
    assert!(
        names.contains(&"été") && names.contains(&"été (2)"),
        "{report:#?}"
    );
    // The one spelled in modified UTF-7 is copied; the raw UTF-8 one cannot be named in a
    // quoted string and says so, with its messages counted, not lost without a word.
    let first = report.folders.iter().find(|f| f.source == "été").unwrap();
    assert_eq!(first.copied, 3, "{first:#?}");
    let second = report
        .folders
        .iter()
        .find(|f| f.source == "été (2)")
        .unwrap();
    assert!(second.copied == 3 || second.error.is_some(), "{second:#?}");
    assert!(!report.is_perfect() || second.copied == 3);

    let out = runtime().block_on(c.engine.folder_mapping(&account()))?;
    let text = out.to_string();
    assert!(
        text.contains("the source lists `été` and `&AOk-t&AOk-`, whose names read the same"),
        "{text}"
    );
    Ok(())
}

#[test]
fn apply_ends_at_its_timeout_whatever_the_server_does() -> Result<()> {
    // Silent on LIST, with the default 3-minute response timeout: only --timeout ends it.
    let (_source, _dst, dir) = cli_case("hostile-apply", Misbehaviour::SilentList)?;
    for args in [
        &["apply", "-f", "m.yaml", "--timeout", "2s"][..],
        &["apply", "-f", "m.yaml", "--no-wait", "--timeout", "2s"][..],
    ] {
        let start = Instant::now();
        let out = mailshift(dir.path(), args);
        let took = start.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stdout}");
        assert!(
            stdout.contains("hostile: stopped after 2s (--timeout); run apply again to resume"),
            "{args:?}: {stdout}"
        );
        assert!(took < Duration::from_secs(10), "{args:?}: {took:?}");
    }
    Ok(())
}

/// Whatever a source answers, message by message (right, under another UID, twice, short,
/// with another identity, left out, with an intruder): nothing wrong reaches the
/// destination, nothing twice, every listed message is copied or reported, and a report
/// that says perfect means an exact copy. (Found: a message left out of the answer was
/// taken for one expunged meanwhile, and the run reported perfect.)
#[test]
fn whatever_the_source_answers_a_perfect_report_means_an_exact_copy() -> Result<()> {
    use mailshift::accounts::{Account, Login};
    use mailshift::spec::Secret;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let dst = dovecot("hostile-prop").start()?;
    let corpus: Vec<Message> = (1..=12)
        .map(|uid| Message {
            uid,
            body: message(
                &format!("p{uid}"),
                &format!("prop {uid}"),
                &"line\r\n".repeat(uid as usize),
            ),
        })
        .collect();
    let by_id: std::collections::HashMap<String, Vec<u8>> = corpus
        .iter()
        .map(|m| (format!("p{}@test", m.uid), m.body.clone()))
        .collect();
    let case = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::prelude::any::<u64>(), |seed| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let user = format!("prop{n}@example.com");
        let fail = |e: anyhow::Error| TestCaseError::fail(format!("{e:#}"));
        dst.add_user(&user, PASSWORD).map_err(fail)?;
        let source = Hostile::start(Misbehaviour::Random(seed), &user, PASSWORD, corpus.clone())
            .map_err(fail)?;
        let mut src_endpoint = endpoint(source.port());
        src_endpoint.timeout = Some(ManifestDuration(TIMEOUT));
        let state = tempfile::tempdir().map_err(|e| fail(e.into()))?;
        let engine = Engine::new(
            Connector::new(Side::Source, &src_endpoint, None).map_err(|e| fail(e.into()))?,
            Connector::new(Side::Destination, &endpoint(dst.imap_port()), None)
                .map_err(|e| fail(e.into()))?,
            None,
            Arc::new(StateDir::at(state.path())),
        )
        .with_options(test_options());
        let login = || Login::Password {
            user: user.clone(),
            password: Secret::new(PASSWORD),
        };
        let account = Account {
            address: user.clone(),
            source: login(),
            destination: login(),
        };
        let report = runtime().block_on(engine.sync_mailbox(&account));

        let on_destination = inbox_bodies(dst.imap_port(), &user).map_err(fail)?;
        let mut ids = std::collections::HashSet::new();
        for body in &on_destination {
            let id = message_id(body);
            proptest::prop_assert!(ids.insert(id.clone()), "seed {seed}: {id} twice");
            proptest::prop_assert_eq!(
                by_id.get(&id),
                Some(body),
                "seed {}: {} on the destination is not the source's",
                seed,
                id
            );
        }
        // Nothing listed goes unaccounted for: copied, or reported refused.
        let refused: usize = report.folders.iter().map(|f| f.refused.len()).sum();
        proptest::prop_assert_eq!(
            ids.len() + refused,
            corpus.len(),
            "seed {}: {:#?}",
            seed,
            report
        );
        if report.is_perfect() {
            proptest::prop_assert_eq!(
                ids.len(),
                corpus.len(),
                "seed {}: perfect, yet {} of {} copied: {:#?}",
                seed,
                ids.len(),
                corpus.len(),
                report
            );
        }
        Ok(())
    });
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Every message of a user's INBOX on the destination, as stored.
fn inbox_bodies(port: u16, user: &str) -> Result<Vec<Vec<u8>>> {
    let mut imap = mailshift_harness::client::Imap::login(port, user, PASSWORD)?;
    imap.command("EXAMINE INBOX")?;
    let bodies = imap
        .command("UID FETCH 1:* (BODY.PEEK[])")?
        .into_iter()
        .filter(|r| r.text.contains(" FETCH "))
        .filter_map(|r| r.literals.into_iter().next())
        .collect();
    imap.logout();
    Ok(bodies)
}

fn message_id(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: <"))
        .and_then(|l| l.strip_suffix('>'))
        .unwrap_or_default()
        .to_owned()
}

/// A provider that throttles (Office 365's answer, with its suggested wait) is waited out
/// as it asks, more times than failures would be tolerated, and the copy ends exact.
#[test]
fn a_throttling_source_is_waited_out_as_it_asks_not_counted_as_failing() -> Result<()> {
    let times = 15;
    assert!(times > test_options().retry.attempts as usize);
    let c = case(
        "hostile-throttled",
        Misbehaviour::Throttled {
            times,
            backoff_ms: 40,
        },
    )?;
    let (report, took) = c.sync();
    assert!(report.is_perfect(), "{report:#?}");
    let mut subjects: Vec<String> = c.destination()?.iter().map(Msg::subject).collect();
    subjects.sort();
    assert_eq!(subjects, ["message 1", "message 2", "message 3"]);
    assert!(
        took >= Duration::from_millis(40 * times as u64),
        "the suggested waits were kept: {took:?}"
    );
    let fetches = c
        .source
        .commands()
        .iter()
        .filter(|l| l.contains("BODY.PEEK[]"))
        .count();
    assert!(fetches > times, "{fetches} body fetches");
    Ok(())
}
