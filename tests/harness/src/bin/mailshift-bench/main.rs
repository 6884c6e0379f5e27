//! mailshift's benchmark: the same corpus copied between two private Dovecots by
//! mailshift, by mbsync (isync) and by `doveadm backup` with the imapc backend.
//!
//! Run it through `scripts/bench.sh` (which builds the release binaries first). It is never
//! part of the test suite: numbers are measured and reported here, not asserted.
//!
//! ```text
//! mailshift-bench corpus [--seed N] [--messages N] [--sizes realistic|small] [--out DIR]
//! mailshift-bench run [--seed N] [--messages N] [--scale 500,2000,5000]
//!                     [--scale-sizes realistic|small] [--tools mailshift,mbsync,doveadm]
//!                     [--mailshift PATH] [--repeat N] [--resync-runs N] [--out DIR] [--dest-fsync never]
//!                     [--timeout SECS] [--rtt 0,50,100 [--rate-mbit 100]]
//! mailshift-bench serve [--seed N] [--messages N] [--folders standard|single]
//! ```
//!
//! With `--rtt`, every case is run once per round-trip time, the tools reaching the source
//! through a [`SlowLink`] (the delay made in user space, half the RTT each way, and the
//! rate limited to `--rate-mbit` each way); the destination stays local, as when copying
//! from a remote provider to a server next to the tool.
//!
//! `serve` starts a loaded source and an empty destination, prints their ports and waits
//! until stdin closes: for profiling a tool by hand against the benchmark's servers.

mod measure;
mod reconcile;
mod snapshot;
mod tools;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mailshift_harness::corpus::{Corpus, CorpusSpec, SizeProfile, append_corpus, write_maildir};
use mailshift_harness::{Dovecot, SlowLink};

use measure::{Measured, ServerCpu};
use snapshot::{Comparison, Snapshot};
use tools::{Tool, ToolKind};

const PASSWORD: &str = "bench-pw";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("corpus") => corpus_cmd(&Opts::parse(&args[1..])),
        Some("run") => run_cmd(&Opts::parse(&args[1..])),
        Some("serve") => serve_cmd(&Opts::parse(&args[1..])),
        Some("loop") => reconcile::loop_cmd(&Opts::parse(&args[1..])),
        _ => {
            eprintln!("usage: mailshift-bench corpus|run|loop [options]  (see scripts/bench.sh)");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("mailshift-bench: {e:#}");
        std::process::exit(1);
    }
}

/// `--key value` options.
struct Opts(BTreeMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut m = BTreeMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.strip_prefix("--") {
                Some(k) => {
                    let v = it.next().cloned().unwrap_or_default();
                    m.insert(k.to_string(), v);
                }
                None => {
                    eprintln!("mailshift-bench: unexpected argument {a:?}");
                    std::process::exit(2);
                }
            }
        }
        Opts(m)
    }

    fn str(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn num(&self, k: &str, default: u64) -> Result<u64> {
        match self.0.get(k) {
            Some(v) => v.parse().with_context(|| format!("--{k} {v}")),
            None => Ok(default),
        }
    }

    fn list(&self, k: &str, default: &str) -> Vec<String> {
        self.str(k, default)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Prints the corpus' shape; with `--out DIR` also writes every message as an .eml file.
fn corpus_cmd(o: &Opts) -> Result<()> {
    let seed = o.num("seed", 42)?;
    let n = o.num("messages", 3000)? as usize;
    let mut spec = CorpusSpec::standard(seed, n);
    spec.sizes = SizeProfile::parse(&o.str("sizes", "realistic"))?;
    let corpus = spec.generate();
    let started = Instant::now();
    let mut sizes: Vec<usize> = Vec::with_capacity(n);
    let out = o.0.get("out").map(PathBuf::from);
    for (i, m) in corpus.messages.iter().enumerate() {
        let bytes = m.render();
        sizes.push(bytes.len());
        if let Some(dir) = &out {
            let d = dir.join(corpus.folders[m.folder].replace('/', "__"));
            fs::create_dir_all(&d)?;
            fs::write(d.join(format!("{i:06}.eml")), &bytes)?;
        }
    }
    let render_s = started.elapsed().as_secs_f64();
    print!("{}", describe_corpus(&corpus, &sizes));
    println!("rendered in {render_s:.2} s");
    Ok(())
}

fn describe_corpus(corpus: &Corpus, sizes: &[usize]) -> String {
    let mut s = String::new();
    let total: u64 = sizes.iter().map(|&x| x as u64).sum();
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let _ = writeln!(
        s,
        "{} messages, {:.1} MB; size min {} B, median {} B, p90 {} B, p99 {} B, max {} B",
        sizes.len(),
        mb(total),
        sorted.first().copied().unwrap_or(0),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        sorted.last().copied().unwrap_or(0)
    );
    let dups = corpus
        .messages
        .iter()
        .filter(|m| m.duplicate_of.is_some())
        .count();
    let no_id = corpus.messages.iter().filter(|m| !m.has_message_id).count();
    let _ = writeln!(
        s,
        "{dups} exact duplicates, {no_id} without Message-ID; folders:"
    );
    for (f, c) in corpus.counts() {
        let _ = writeln!(s, "  {c:>6}  {f}");
    }
    s
}

/// For the bench's Dovecots: the imap process of a million-message Maildir folder needs more
/// than the default 256 MB of address space (it is killed for it, and the tools see a
/// connection closed).
const BIG_FOLDERS: &str = "default_vsz_limit = 4G";

/// One-folder corpora of at least this many messages are written as Maildir files rather
/// than APPENDed.
const WRITTEN_AS_FILES: usize = 200_000;

/// The uid and gid Dovecot reads mail as (`mail_uid = dovecot` in the harness).
fn dovecot_owner() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = std::process::Command::new("id")
            .args([flag, "dovecot"])
            .output()?;
        anyhow::ensure!(out.status.success(), "id {flag} dovecot failed");
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// Starts a loaded source and an empty destination and waits until stdin closes: for
/// profiling a tool by hand against the same servers the benchmark uses.
fn serve_cmd(o: &Opts) -> Result<()> {
    let seed = o.num("seed", 42)?;
    let n = o.num("messages", 3000)? as usize;
    let single = o.str("folders", "standard") == "single";
    let spec = if single {
        CorpusSpec::single_folder(seed, n)
    } else {
        CorpusSpec::standard(seed, n)
    };
    let user = "bench";
    let source = Dovecot::builder()
        .name("bench-source")
        .user(user, PASSWORD)
        .extra_config(&format!("mail_fsync = never\n{BIG_FOLDERS}"))
        .start()?;
    let corpus = spec.generate();
    let stats = append_corpus(
        source.imap_port(),
        user,
        PASSWORD,
        source.separator(),
        &corpus,
        2,
    )?;
    let dest = Dovecot::builder()
        .name("bench-dest")
        .user(user, PASSWORD)
        .extra_config(&format!(
            "mail_fsync = {}\n{BIG_FOLDERS}",
            o.str("dest-fsync", "never")
        ))
        .start()?;
    println!(
        "source: 127.0.0.1:{} ({}; {} messages, {:.1} MB)\ndestination: 127.0.0.1:{} ({})\nuser {user}, password {PASSWORD}\nclose stdin (Ctrl-D) to stop",
        source.imap_port(),
        source.config_path().display(),
        stats.messages,
        mb(stats.bytes),
        dest.imap_port(),
        dest.config_path().display(),
    );
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    Ok(())
}

/// One corpus loaded into the source under its own user.
#[derive(Clone)]
struct Case {
    name: String,
    /// Reached through a slow link of this round-trip time (ms) and rate (bytes/s).
    link: Option<(u64, u64)>,
    user: String,
    messages: usize,
    bytes: u64,
    source: Snapshot,
}

/// The result of one tool on one case.
struct Outcome {
    tool: String,
    case: String,
    full: Option<Measured>,
    /// The median of this repetition's no-change runs.
    resync: Option<Measured>,
    /// Every no-change run.
    resyncs: Vec<Measured>,
    verify: String,
    verify_ok: bool,
    note: String,
}

fn run_cmd(o: &Opts) -> Result<()> {
    let seed = o.num("seed", 42)?;
    let messages = o.num("messages", 3000)? as usize;
    let scale: Vec<usize> = o
        .list("scale", "500,2000,5000")
        .iter()
        .map(|s| s.parse().with_context(|| format!("--scale {s}")))
        .collect::<Result<_>>()?;
    let scale_sizes = SizeProfile::parse(&o.str("scale-sizes", "realistic"))?;
    let repeat = o.num("repeat", 3)?.max(1) as usize;
    let timeout = o.num("timeout", 1800)?;
    let resync_runs = o.num("resync-runs", 3)? as usize;
    let out_dir = PathBuf::from(o.str("out", "target/bench"));
    let dest_fsync = o.str("dest-fsync", "never");
    let mailshift_bin = PathBuf::from(o.str("mailshift", "target/release/mailshift"));
    let mut tools: Vec<Tool> = Vec::new();
    for t in o.list("tools", "mailshift,mbsync,doveadm") {
        tools.push(Tool::new(match t.as_str() {
            "mailshift" => ToolKind::Mailshift(
                fs::canonicalize(&mailshift_bin).unwrap_or(mailshift_bin.clone()),
            ),
            "mbsync" => ToolKind::Mbsync,
            "doveadm" => ToolKind::DoveadmBackup,
            other => bail!("unknown tool {other:?} (mailshift, mbsync, doveadm)"),
        }));
    }
    fs::create_dir_all(&out_dir)?;
    let out_dir = fs::canonicalize(&out_dir)?;
    let work = out_dir.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;

    let mut report = String::new();
    let mut machine = measure::machine_info(&tools);
    let started = Instant::now();
    let (pressure0, load0) = (measure::cpu_pressure(), measure::load_average());
    eprintln!("{machine}");

    // The source: one user per case, all loaded up front.
    let mut specs: Vec<(String, String, CorpusSpec)> = vec![];
    if messages > 0 {
        specs.push((
            format!("full ({messages} msgs, 9 folders)"),
            "bench".into(),
            CorpusSpec::standard(seed, messages),
        ));
    }
    for &n in &scale {
        let mut spec = CorpusSpec::single_folder(seed.wrapping_add(n as u64), n);
        spec.sizes = scale_sizes;
        specs.push((format!("scale {n}"), format!("scale{n}"), spec));
    }
    let mut builder = Dovecot::builder()
        .name("bench-source")
        .extra_config(&format!("mail_fsync = never\n{BIG_FOLDERS}"));
    for (_, user, _) in &specs {
        builder = builder.user(user, PASSWORD);
    }
    let source = builder.start().context("starting the source Dovecot")?;
    let mut cases: Vec<Case> = Vec::new();
    for (name, user, spec) in &specs {
        let corpus = spec.generate();
        let started = Instant::now();
        // Past this size APPEND takes longer than the tools (a million messages: over 16
        // minutes, and the source's imap process reset the connection after 600,000), so
        // the corpus is written into the source's Maildir as files.
        let as_files = spec.folders.len() == 1 && spec.messages >= WRITTEN_AS_FILES;
        let stats = if as_files {
            let root = source.mail_dir().join(user).join("Maildir");
            write_maildir(&root, &corpus, source.separator(), Some(dovecot_owner()?))
        } else {
            append_corpus(
                source.imap_port(),
                user,
                PASSWORD,
                source.separator(),
                &corpus,
                2,
            )
        }
        .with_context(|| format!("loading {name}"))?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} {name}: {} messages, {:.1} MB in {secs:.1} s ({:.0} msg/s, {:.1} MB/s)",
            if as_files { "wrote" } else { "loaded" },
            stats.messages,
            mb(stats.bytes),
            stats.messages as f64 / secs,
            mb(stats.bytes) / secs
        );
        let snap = Snapshot::take(&source, user)?;
        let expected = corpus.counts();
        for (folder, &n) in &expected {
            let got = snap.folders.get(folder).map_or(0, |f| f.count);
            if got != n {
                bail!("source {user}: folder {folder} has {got} messages, corpus has {n}");
            }
        }
        cases.push(Case {
            name: name.clone(),
            link: None,
            user: user.clone(),
            messages: stats.messages,
            bytes: stats.bytes,
            source: snap,
        });
    }
    // A first corpus description for the report.
    if let Some((_, _, spec)) = specs.first() {
        let corpus = spec.generate();
        let sizes: Vec<usize> = corpus.messages.iter().map(|m| m.render().len()).collect();
        let _ = writeln!(report, "### Corpus (`{}`)\n", specs[0].0);
        let _ = writeln!(report, "```text\n{}```\n", describe_corpus(&corpus, &sizes));
    }

    // The WAN case: each case again at each round-trip time.
    let rtts: Vec<u64> = o
        .list("rtt", "")
        .iter()
        .map(|s| s.parse().with_context(|| format!("--rtt {s}")))
        .collect::<Result<_>>()?;
    let rate_mbit = o.num("rate-mbit", 100)?;
    if !rtts.is_empty() {
        let rate = rate_mbit * 1_000_000 / 8;
        cases = cases
            .iter()
            .flat_map(|c| {
                rtts.iter().map(move |&rtt| Case {
                    name: if rate == 0 {
                        format!("{}, RTT {rtt} ms", c.name)
                    } else {
                        format!("{}, RTT {rtt} ms, {rate_mbit} Mbit/s", c.name)
                    },
                    link: Some((rtt, rate)),
                    ..c.clone()
                })
            })
            .collect();
    }

    let mut outcomes: Vec<Outcome> = Vec::new();
    for case in &cases {
        for rep in 0..repeat {
            // Rotate the order so no tool always goes first (cold caches) or last.
            let n = tools.len();
            for k in 0..n {
                let tool = &tools[(k + rep) % n];
                let outcome = run_tool(
                    tool,
                    case,
                    &source,
                    &work,
                    &dest_fsync,
                    timeout,
                    resync_runs,
                )?;
                eprintln!("{}", outcome_line(&outcome));
                outcomes.push(outcome);
            }
        }
    }

    let _ = writeln!(report, "{}", tables(&cases, &tools, &outcomes, repeat));
    let pct = |p: Option<f64>| p.map_or("?".into(), |p| format!("{p:.0} %"));
    let _ = writeln!(
        machine,
        "other load: 1-min load average {load0:.1} at start, {:.1} at end; CPU pressure (some, avg300) {} at start, {} at end\nbenchmark duration: {:.0} s (corpus seed {seed})",
        measure::load_average(),
        pct(pressure0),
        pct(measure::cpu_pressure()),
        started.elapsed().as_secs_f64(),
    );
    let _ = writeln!(report, "### Machine\n\n```text\n{machine}```");
    let md = out_dir.join("results.md");
    fs::write(&md, &report)?;
    fs::write(out_dir.join("results.tsv"), tsv(&outcomes))?;
    println!("{report}");
    eprintln!("written: {} and results.tsv", md.display());
    Ok(())
}

fn outcome_line(o: &Outcome) -> String {
    let f = |m: &Option<Measured>| {
        m.as_ref().map_or("-".to_string(), |m| {
            format!(
                "{:.2} s, {:.1} MB RSS",
                m.wall,
                m.max_rss_kb as f64 / 1024.0
            )
        })
    };
    format!(
        "[{}] {}: full {} | re-sync {} | {}{}",
        o.case,
        o.tool,
        f(&o.full),
        f(&o.resync),
        o.verify,
        if o.note.is_empty() {
            String::new()
        } else {
            format!(" | {}", o.note)
        }
    )
}

fn run_tool(
    tool: &Tool,
    case: &Case,
    source: &Dovecot,
    work: &Path,
    dest_fsync: &str,
    timeout: u64,
    resync_runs: usize,
) -> Result<Outcome> {
    let mut outcome = Outcome {
        tool: tool.name().to_string(),
        case: case.name.clone(),
        full: None,
        resync: None,
        resyncs: Vec::new(),
        verify: String::new(),
        verify_ok: false,
        note: String::new(),
    };
    if let Err(why) = tool.available() {
        outcome.verify = "not run".into();
        outcome.note = why;
        return Ok(outcome);
    }
    let dest = Dovecot::builder()
        .name(&format!("bench-dest-{}", tool.slug()))
        .user(&case.user, PASSWORD)
        .extra_config(&format!("mail_fsync = {dest_fsync}\n{BIG_FOLDERS}"))
        .start()
        .context("starting a destination Dovecot")?;
    // A fresh directory per run: tools' state (mbsync's SyncState, mailshift's caches)
    // belongs to this destination only.
    let dir = work.join(format!("{}-{}", tool.slug(), case.user));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    // How the report names it: relative to the output directory.
    let shown = dir
        .strip_prefix(work.parent().unwrap_or(work))
        .unwrap_or(&dir)
        .to_path_buf();
    // Kept for the full copy and the re-syncs alike: every run of this repetition sees
    // the same link.
    let link = match case.link {
        Some((rtt, rate)) => Some(SlowLink::start(
            source.imap_port(),
            std::time::Duration::from_micros(rtt * 500),
            rate,
        )?),
        None => None,
    };
    let ctx = tools::Ctx {
        source_port: link.as_ref().map_or(source.imap_port(), SlowLink::port),
        dest: &dest,
        user: &case.user,
        password: PASSWORD,
        dir: &dir,
    };
    tool.prepare(&ctx)?;
    let source_cpu = ServerCpu::of(source)?;
    let dest_cpu = ServerCpu::of(&dest)?;
    let timed = |log: &str| -> Result<Measured> {
        let (s0, d0) = (source_cpu.reaped_seconds(), dest_cpu.reaped_seconds());
        let load = measure::load_average();
        let mut m = measure::run(tool.command(&ctx), &dir.join(log), timeout)?;
        m.source_cpu = source_cpu.reaped_seconds() - s0;
        m.dest_cpu = dest_cpu.reaped_seconds() - d0;
        m.load = load;
        Ok(m)
    };
    let full = timed("full.log")?;
    let after_full = Snapshot::take(&dest, &case.user)?;
    let mut resyncs = Vec::new();
    for k in 0..resync_runs.max(1) {
        resyncs.push(timed(&format!("resync{}.log", k + 1))?);
    }
    let after_resync = Snapshot::take(&dest, &case.user)?;
    let mut notes = Vec::new();
    if !full.success {
        notes.push(format!(
            "full run failed ({}), see {}",
            full.status,
            shown.join("full.log").display()
        ));
    }
    if let Some(failed) = resyncs.iter().find(|m| !m.success) {
        notes.push(format!(
            "re-sync failed ({}), see {}",
            failed.status,
            shown.display()
        ));
    }
    let cmp = Comparison::new(&case.source, &after_full);
    outcome.verify_ok = cmp.messages_equal();
    outcome.verify = cmp.summary();
    let changed = Comparison::new(&after_full, &after_resync);
    if !changed.identical() {
        notes.push(format!(
            "the re-sync changed the destination: {}",
            changed.summary()
        ));
    }
    if !cmp.details().is_empty() {
        fs::write(dir.join("verify.txt"), cmp.details())?;
        notes.push(format!("details: {}", shown.join("verify.txt").display()));
    }
    outcome.note = notes.join("; ");
    outcome.full = Some(full);
    outcome.resync = median(resyncs.iter());
    outcome.resyncs = resyncs;
    dest.stop()?;
    Ok(outcome)
}

/// Median by wall time of the runs of one tool on one case.
fn median<'a>(runs: impl Iterator<Item = &'a Measured>) -> Option<Measured> {
    let mut v: Vec<&Measured> = runs.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    // The lower median: with an even count, the faster of the middle two (noise only
    // ever adds time).
    let mid = v[(v.len() - 1) / 2];
    let rss = v.iter().map(|m| m.max_rss_kb).max().unwrap_or(0);
    Some(Measured {
        max_rss_kb: rss,
        ..mid.clone()
    })
}

struct Row {
    full: Option<Measured>,
    resync: Option<Measured>,
    /// (min, max) wall seconds over the repetitions.
    full_range: Option<(f64, f64)>,
    resync_range: Option<(f64, f64)>,
    verify: String,
    verify_ok: bool,
    note: String,
}

fn rows(case: &Case, tool: &Tool, outcomes: &[Outcome]) -> Row {
    let mine: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.case == case.name && o.tool == tool.name())
        .collect();
    let range = |f: fn(&Outcome) -> Vec<&Measured>| {
        let walls: Vec<f64> = mine.iter().flat_map(|o| f(o)).map(|m| m.wall).collect();
        (walls.len() > 1).then(|| {
            (
                walls.iter().copied().fold(f64::INFINITY, f64::min),
                walls.iter().copied().fold(0.0, f64::max),
            )
        })
    };
    Row {
        full: median(mine.iter().filter_map(|o| o.full.as_ref())),
        resync: median(mine.iter().flat_map(|o| o.resyncs.iter())),
        full_range: range(|o| o.full.iter().collect()),
        resync_range: range(|o| o.resyncs.iter().collect()),
        verify: mine.first().map_or(String::new(), |o| o.verify.clone()),
        verify_ok: mine.iter().all(|o| o.verify_ok),
        note: {
            let mut notes: Vec<&str> = Vec::new();
            for n in mine.iter().flat_map(|o| o.note.split("; ")) {
                if !n.is_empty() && !notes.contains(&n) {
                    notes.push(n);
                }
            }
            notes.join("; ")
        },
    }
}

fn tables(cases: &[Case], tools: &[Tool], outcomes: &[Outcome], repeat: usize) -> String {
    let mut s = String::new();
    let fmt_s = |m: &Option<Measured>, range: Option<(f64, f64)>| {
        m.as_ref().map_or("–".into(), |m| match range {
            Some((lo, hi)) => format!("{:.2} ({lo:.2}–{hi:.2})", m.wall),
            None => format!("{:.2}", m.wall),
        })
    };
    let fmt_rss = |m: &Option<Measured>| {
        m.as_ref().map_or("–".into(), |m| {
            format!("{:.1}", m.max_rss_kb as f64 / 1024.0)
        })
    };
    let fmt_cpu = |m: &Option<Measured>| {
        m.as_ref().map_or("–".into(), |m| {
            format!(
                "{:.2} / {:.2} / {:.2}",
                m.user + m.sys,
                m.source_cpu,
                m.dest_cpu
            )
        })
    };
    if repeat > 1 {
        let _ = writeln!(
            s,
            "Full copies: median of {repeat} runs, each into a fresh destination, min–max in parentheses; no-change re-syncs: median of all re-sync runs. Rates use the median; peak RSS is the maximum over all runs; CPU (the tool's, and the source's and destination's Dovecot processes') and load (1-minute load average at the start) are those of the median run.\n"
        );
    }
    for case in cases {
        let _ = writeln!(
            s,
            "### {}: {} messages, {:.1} MB\n",
            case.name,
            case.messages,
            mb(case.bytes)
        );
        let _ = writeln!(
            s,
            "| tool | full copy (s) | msg/s | MB/s | peak RSS (MB) | CPU s: tool / source / dest | load | no-change re-sync (s) | re-sync RSS (MB) | result |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
        let mut by_tool: BTreeMap<String, Row> = BTreeMap::new();
        for tool in tools {
            let r = rows(case, tool, outcomes);
            let (mps, mbps) = r.full.as_ref().map_or(("–".into(), "–".into()), |m| {
                (
                    format!("{:.0}", case.messages as f64 / m.wall),
                    format!("{:.1}", mb(case.bytes) / m.wall),
                )
            });
            let result = if r.full.is_none() {
                format!("not run: {}", r.note)
            } else if r.note.is_empty() {
                r.verify.clone()
            } else {
                format!("{} ({})", r.verify, r.note)
            };
            let _ = writeln!(
                s,
                "| {} | {} | {mps} | {mbps} | {} | {} | {} | {} | {} | {} |",
                tool.name(),
                fmt_s(&r.full, r.full_range),
                fmt_rss(&r.full),
                fmt_cpu(&r.full),
                r.full
                    .as_ref()
                    .map_or("–".into(), |m| format!("{:.1}", m.load)),
                fmt_s(&r.resync, r.resync_range),
                fmt_rss(&r.resync),
                result.replace('|', "\\|"),
            );
            by_tool.insert(tool.name().to_string(), r);
        }
        let _ = writeln!(s);
        // mailshift's ratios to each peer.
        if let Some(ms) = by_tool.get("mailshift").filter(|r| r.full.is_some()) {
            let _ = writeln!(
                s,
                "| mailshift vs | throughput (×, >1 = faster) | peak RSS (×, <1 = smaller) | no-change re-sync time (×, <1 = faster) |"
            );
            let _ = writeln!(s, "|---|--:|--:|--:|");
            for (name, peer) in &by_tool {
                if name == "mailshift" || peer.full.is_none() {
                    continue;
                }
                let (a, b) = (
                    ms.full.as_ref().expect("ran"),
                    peer.full.as_ref().expect("ran"),
                );
                let (ra, rb) = (ms.resync.as_ref(), peer.resync.as_ref());
                let _ = writeln!(
                    s,
                    "| {name} | {:.2} | {:.2} | {} |",
                    b.wall / a.wall,
                    a.max_rss_kb as f64 / b.max_rss_kb.max(1) as f64,
                    match (ra, rb) {
                        (Some(x), Some(y)) => format!("{:.2}", x.wall / y.wall.max(1e-3)),
                        _ => "–".into(),
                    }
                );
            }
            let _ = writeln!(s);
            if let (Some(mbsync), Some(a)) = (
                by_tool.get("mbsync").and_then(|r| r.full.as_ref()),
                ms.full.as_ref(),
            ) {
                let tp = mbsync.wall / a.wall;
                let rs = match (
                    ms.resync.as_ref(),
                    by_tool.get("mbsync").and_then(|r| r.resync.as_ref()),
                ) {
                    (Some(x), Some(y)) => x.wall / y.wall.max(1e-3),
                    _ => f64::NAN,
                };
                let rss = a.max_rss_kb as f64 / 1024.0;
                let _ = writeln!(
                    s,
                    "Targets: throughput ≥ 1.5× mbsync: **{:.2}× {}**; no-change re-sync ≤ 2× mbsync: **{:.2}× {}**; peak RSS {:.1} MB{}.\n",
                    tp,
                    if tp >= 1.5 { "met" } else { "missed" },
                    rs,
                    if rs <= 2.0 { "met" } else { "missed" },
                    rss,
                    if case.messages >= 5000 {
                        if rss < 64.0 {
                            " (< 64 MB: met)"
                        } else {
                            " (< 64 MB: missed)"
                        }
                    } else {
                        ""
                    }
                );
            }
            let _ = ms.verify_ok;
        }
    }
    // The WAN case at a glance: one line per round-trip time.
    let wan: Vec<&Case> = cases.iter().filter(|c| c.link.is_some()).collect();
    if !wan.is_empty() {
        let _ = writeln!(
            s,
            "### Across a slow link\n\nFull copy and no-change re-sync in seconds (medians); in parentheses, the share of the link's rate the full copy used (mailbox bytes ÷ (rate × time)).\n"
        );
        let mut head = String::from("| case | RTT |");
        let mut sep = String::from("|---|--:|");
        for tool in tools {
            let _ = write!(head, " {} full | {} re-sync |", tool.name(), tool.name());
            sep.push_str("--:|--:|");
        }
        let has_mbsync = tools.iter().any(|t| t.name() == "mbsync");
        if has_mbsync && tools.iter().any(|t| t.name() == "mailshift") {
            head.push_str(" mailshift vs mbsync (×) |");
            sep.push_str("--:|");
        }
        let _ = writeln!(s, "{head}\n{sep}");
        for case in wan {
            let (rtt, rate) = case.link.expect("filtered");
            let base = case.name.split(", RTT").next().unwrap_or(&case.name);
            let _ = write!(s, "| {base} | {rtt} ms |");
            let mut walls: BTreeMap<&str, f64> = BTreeMap::new();
            for tool in tools {
                let r = rows(case, tool, outcomes);
                match &r.full {
                    Some(m) if rate > 0 => {
                        let used = case.bytes as f64 / (rate as f64 * m.wall) * 100.0;
                        let _ = write!(s, " {:.2} ({used:.0} %) |", m.wall);
                    }
                    Some(m) => {
                        let _ = write!(s, " {:.2} |", m.wall);
                    }
                    None => s.push_str(" – |"),
                }
                match &r.resync {
                    Some(m) => {
                        let _ = write!(s, " {:.2} |", m.wall);
                    }
                    None => s.push_str(" – |"),
                }
                if let Some(m) = &r.full {
                    walls.insert(tool.name(), m.wall);
                }
            }
            if has_mbsync && tools.iter().any(|t| t.name() == "mailshift") {
                match (walls.get("mailshift"), walls.get("mbsync")) {
                    (Some(a), Some(b)) => {
                        let _ = write!(s, " {:.2} |", b / a);
                    }
                    _ => s.push_str(" – |"),
                }
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
    }
    // Scaling summary: cost against mailbox size, one line per tool.
    let scale: Vec<&Case> = cases
        .iter()
        .filter(|c| c.name.starts_with("scale"))
        .collect();
    if scale.len() > 1 {
        let _ = writeln!(s, "### Scaling (one folder)\n");
        let mut head = String::from("| tool | metric |");
        let mut sep = String::from("|---|---|");
        for c in &scale {
            let _ = write!(head, " {} msgs ({:.0} MB) |", c.messages, mb(c.bytes));
            sep.push_str("--:|");
        }
        let _ = writeln!(s, "{head}\n{sep}");
        for tool in tools {
            let rs: Vec<Row> = scale.iter().map(|c| rows(c, tool, outcomes)).collect();
            if rs.iter().all(|r| r.full.is_none()) {
                continue;
            }
            type Metric = fn(&Case, &Row) -> String;
            let metrics: [(&str, Metric); 4] = [
                ("full copy (s)", |_, r| {
                    r.full
                        .as_ref()
                        .map_or("–".into(), |m| format!("{:.2}", m.wall))
                }),
                ("msg/s", |c, r| {
                    r.full.as_ref().map_or("–".into(), |m| {
                        format!("{:.0}", c.messages as f64 / m.wall)
                    })
                }),
                ("peak RSS (MB)", |_, r| {
                    r.full.as_ref().map_or("–".into(), |m| {
                        format!("{:.1}", m.max_rss_kb as f64 / 1024.0)
                    })
                }),
                ("no-change re-sync (s)", |_, r| {
                    r.resync
                        .as_ref()
                        .map_or("–".into(), |m| format!("{:.3}", m.wall))
                }),
            ];
            for (label, f) in metrics {
                let _ = write!(s, "| {} | {label} |", tool.name());
                for (c, r) in scale.iter().zip(&rs) {
                    let _ = write!(s, " {} |", f(c, r));
                }
                let _ = writeln!(s);
            }
        }
        let _ = writeln!(s);
    }
    s
}

fn tsv(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "case\ttool\tfull_wall_s\tfull_user_s\tfull_sys_s\tfull_rss_kb\tfull_source_cpu_s\tfull_dest_cpu_s\tload\tresync_wall_s\tresync_rss_kb\tresync_source_cpu_s\tresync_dest_cpu_s\tverified\tverify\tnote\n",
    );
    for o in outcomes {
        let g =
            |m: &Option<Measured>, f: fn(&Measured) -> String| m.as_ref().map_or(String::new(), f);
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            o.case,
            o.tool,
            g(&o.full, |m| format!("{:.3}", m.wall)),
            g(&o.full, |m| format!("{:.3}", m.user)),
            g(&o.full, |m| format!("{:.3}", m.sys)),
            g(&o.full, |m| m.max_rss_kb.to_string()),
            g(&o.full, |m| format!("{:.2}", m.source_cpu)),
            g(&o.full, |m| format!("{:.2}", m.dest_cpu)),
            g(&o.full, |m| format!("{:.2}", m.load)),
            g(&o.resync, |m| format!("{:.3}", m.wall)),
            g(&o.resync, |m| m.max_rss_kb.to_string()),
            g(&o.resync, |m| format!("{:.2}", m.source_cpu)),
            g(&o.resync, |m| format!("{:.2}", m.dest_cpu)),
            o.verify_ok,
            o.verify,
            o.note.replace(['\t', '\n'], " ")
        );
    }
    s
}
