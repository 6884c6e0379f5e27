//! `mailshift apply -f FILE`: run the loop until the servers match the manifest.
//!
//! Each turn of the loop ([`Reconciler::turn`]) observes what is due, plans, and carries
//! out what may run now (different mailboxes side by side, up to `sync.concurrency`). Time
//! gates are waited out with a visible countdown (or, with `--no-wait`, the command exits 3
//! so a scheduler can come back later). Ctrl-C stops cleanly: every step is
//! idempotent and the state is written crash-safely, so a re-run resumes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::logging::LogFormat;
use super::target::Selection;
use mailshift::plan::Progress;
use mailshift::reconcile::{MailEngine, Reconciler};

/// Exit status when stopping at a gate that cannot be waited out here.
const EXIT_GATE: u8 = 3;
/// While waiting for a time gate, observe again this often: the world may change.
const REOBSERVE: Duration = Duration::from_secs(300);
/// How long to wait before re-checking something outside mailshift's hands (propagation,
/// a copy running elsewhere); the facts a gate waits on are observed again then.
const RECHECK: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Selection,
    /// Do not wait at time gates: exit 3 with the instant the next gate opens.
    #[arg(long)]
    no_wait: bool,
    /// Stop after this long (e.g. `10m`, `2h`), wherever the migration is, with exit 3;
    /// running apply again resumes. With `--no-wait` the default is 1h, so that a scheduled
    /// run always ends; otherwise apply runs until the migration converges or stops.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// How the outcome is printed: text, or one JSON object per migration on a line of its
    /// own (`opensAt`: when to come back, RFC 3339), or YAML documents.
    #[arg(short, long, value_enum, default_value_t)]
    output: super::Output,
}

/// The outcome of one migration's run, for `-o json|yaml`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome<'a> {
    migration: &'a str,
    /// `converged`, `gate`, `stalled`, `interrupted` or `timedOut`.
    outcome: &'static str,
    message: String,
    /// When the gate it stopped at opens: the instant to come back.
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_at: Option<DateTime<Utc>>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<mailshift::spec::ManifestDuration>()
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

/// The bound on one `apply --no-wait` when no `--timeout` is given.
const NO_WAIT_TIMEOUT: Duration = Duration::from_secs(3600);

enum Stop {
    Converged,
    Gate {
        why: String,
        opens_at: Option<DateTime<Utc>>,
    },
    Stalled(String),
    Interrupted,
    TimedOut(Duration),
}

pub async fn run(args: &Args, log_format: LogFormat) -> Result<ExitCode> {
    let (bars, observer) = super::progress::setup(log_format);
    let mut worst = ExitCode::SUCCESS;
    let bound = args.timeout.or(args.no_wait.then_some(NO_WAIT_TIMEOUT));
    // One bound for the whole run, however many migrations it has.
    let deadline = bound.map(|b| tokio::time::Instant::now() + b);
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    for t in args.target.resolve()? {
        let name = t.name().to_owned();
        let mut r = t.reconciler(observer.clone())?;
        let stop = tokio::select! {
            s = drive(&mut r, args.no_wait, args.output == super::Output::Text, bars.as_ref()) => s?,
            _ = tokio::signal::ctrl_c() => Stop::Interrupted,
            _ = &mut expired => Stop::TimedOut(bound.unwrap_or_default()),
        };
        let (outcome, message, opens_at, code) = match stop {
            Stop::Converged => (
                "converged",
                "converged: the servers match the manifest".to_owned(),
                None,
                None,
            ),
            Stop::Gate { why, opens_at } => {
                ("gate", format!("stopped at a gate: {why}"), opens_at, None)
            }
            Stop::Stalled(why) => (
                "stalled",
                format!("stalled: {why}"),
                None,
                Some(ExitCode::FAILURE),
            ),
            Stop::Interrupted => (
                "interrupted",
                "interrupted; run apply again to resume".to_owned(),
                None,
                Some(ExitCode::from(130)),
            ),
            Stop::TimedOut(after) => (
                "timedOut",
                format!(
                    "stopped after {} (--timeout); run apply again to resume",
                    mailshift::spec::ManifestDuration(after)
                ),
                None,
                Some(ExitCode::from(EXIT_GATE)),
            ),
        };
        let record = Outcome {
            migration: &name,
            outcome,
            message,
            opens_at,
        };
        match args.output {
            super::Output::Text => outln!("{name}: {}", record.message),
            // One line per migration, so that a scheduler reads it with one `jq`.
            super::Output::Json => outln!("{}", serde_json::to_string(&record)?),
            super::Output::Yaml => out!("---\n{}", serde_yaml::to_string(&record)?),
        }
        if outcome == "gate" {
            worst = ExitCode::from(EXIT_GATE);
        }
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Ok(worst)
}

async fn drive<E: MailEngine>(
    r: &mut Reconciler<E>,
    no_wait: bool,
    show_plan: bool,
    bars: Option<&MultiProgress>,
) -> Result<Stop> {
    // Running apply again is how a person says "try again": stalled steps get their
    // attempts back.
    r.retry_stalled()?;
    // A turn that may carry out nothing only observes and plans.
    let mut turn = r.turn(|_| false).await?;
    loop {
        let plan = &turn.pass.plan;
        match plan.progress() {
            Progress::Converged => return Ok(Stop::Converged),
            Progress::Suspended => {
                if show_plan {
                    outln!("{plan}");
                }
                return Ok(Stop::Gate {
                    why: "spec.suspend is true: nothing is applied until it is lifted".into(),
                    opens_at: None,
                });
            }
            Progress::ObserveOnly => {
                if show_plan {
                    outln!("{plan}");
                }
                return Ok(Stop::Gate {
                    why: "policy is observe: the plan is shown, nothing is applied".into(),
                    opens_at: None,
                });
            }
            Progress::Ready => {
                let spinner = spinner(bars, &running(plan, r));
                turn = r.turn(|_| true).await?;
                spinner.finish_and_clear();
                for done in &turn.done {
                    if let Err(f) = &done.result {
                        let step = &done.step;
                        if f.stalled && mailshift::dns::PERSONS_REASONS.contains(&f.reason.as_str())
                        {
                            eprintln!(
                                "`{step}` failed: {}; not tried again until the credentials are fixed",
                                f.message
                            );
                        } else if f.stalled {
                            eprintln!(
                                "`{step}` failed {} times: {}; not tried again",
                                f.count, f.message
                            );
                        } else {
                            let wait = Reconciler::<E>::backoff(f.count);
                            eprintln!(
                                "`{step}` failed (attempt {}): {}; retrying in {}s",
                                f.count,
                                f.message,
                                wait.as_secs()
                            );
                        }
                    }
                }
                continue;
            }
            Progress::Recheck => tokio::time::sleep(RECHECK).await,
            Progress::WaitUntil { at } => {
                let why = plan
                    .steps
                    .iter()
                    .flat_map(|s| &s.gates)
                    .find_map(|g| g.opens_at().filter(|t| *t == at).map(|_| g.to_string()))
                    .unwrap_or_else(|| "a time gate".into());
                if no_wait {
                    return Ok(Stop::Gate {
                        why: format!("{why}; opens at {}", at.to_rfc3339()),
                        opens_at: Some(at),
                    });
                }
                let until = at.min(Utc::now() + REOBSERVE);
                countdown(bars, until, &why).await;
            }
            Progress::Blocked { reasons } => {
                if let Some(f) = r.failure().filter(|f| {
                    f.stalled && mailshift::dns::PERSONS_REASONS.contains(&f.reason.as_str())
                }) {
                    return Ok(Stop::Gate {
                        why: format!("`{}` needs a person: {}", f.step, f.message),
                        opens_at: None,
                    });
                }
                if let Some(f) = r.failure().filter(|f| f.stalled) {
                    return Ok(Stop::Stalled(format!(
                        "`{}` failed {} times: {}",
                        f.step, f.count, f.message
                    )));
                }
                return Ok(Stop::Gate {
                    why: reasons.join("; "),
                    opens_at: None,
                });
            }
        }
        turn = r.turn(|_| false).await?;
    }
}

/// What the next turn carries out, for the spinner.
fn running<E: MailEngine>(plan: &mailshift::plan::Plan, r: &Reconciler<E>) -> String {
    let batch = plan.batch(r.concurrency(), |_| true);
    match batch.as_slice() {
        [one] => one.step.to_string(),
        _ => format!(
            "copying and verifying mailboxes, up to {} at once",
            r.concurrency()
        ),
    }
}

fn spinner(bars: Option<&MultiProgress>, msg: &str) -> ProgressBar {
    let Some(bars) = bars else {
        return ProgressBar::hidden();
    };
    let pb = bars.add(ProgressBar::new_spinner());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Wait until `at`, showing the time left on a terminal.
async fn countdown(bars: Option<&MultiProgress>, at: DateTime<Utc>, why: &str) {
    let Ok(total) = (at - Utc::now()).to_std() else {
        return;
    };
    let Some(bars) = bars else {
        tracing::info!(until = %at.to_rfc3339(), reason = why, "waiting");
        tokio::time::sleep(total).await;
        return;
    };
    let pb = bars.add(ProgressBar::new(total.as_secs().max(1)));
    pb.set_style(
        ProgressStyle::with_template("waiting: {msg} [{bar:30}] {eta} left")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(why.to_owned());
    let start = tokio::time::Instant::now();
    while start.elapsed() < total {
        pb.set_position(start.elapsed().as_secs());
        tokio::time::sleep(Duration::from_millis(500).min(total.saturating_sub(start.elapsed())))
            .await;
    }
    pb.finish_and_clear();
}
