//! `mailshift plan -f FILE`: what would happen next, in plain words. Reads the servers,
//! writes nothing.

use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use super::target::Selection;
use mailshift::plan::PlanDocument;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Selection,
    /// Output format (`json` and `yaml` carry a versioned plan document).
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    plan: PlanDocument,
}

/// Exit 0 when nothing is left to do, 2 when changes are pending, 1 on error.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut entries = Vec::new();
    let mut pending = false;
    for t in args.target.resolve()? {
        let name = t.name().to_owned();
        let mut r = t.reconciler(std::sync::Arc::new(mailshift::engine::Silent))?;
        let pass = r.pass(chrono::Utc::now(), false).await?;
        pending |= !pass.plan.is_empty();
        match args.output {
            Output::Text => outln!("MailMigration {name}:\n{}", pass.plan),
            _ => entries.push(Entry {
                name,
                plan: pass.plan.document(),
            }),
        }
    }
    super::print_structured(args.output, &entries)?;
    Ok(if pending {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
