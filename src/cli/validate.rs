//! `mailshift validate PATH...`

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

use super::Output;
use mailshift::manifest::{Finding, LoadOptions, Severity, load_path};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files, directories (searched for .yaml/.yml) or `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Treat warnings about unsafe practice (inline secret values) as errors.
    #[arg(long)]
    strict: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: Output,
}

/// The machine-readable report.
#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    files: usize,
    migrations: usize,
    errors: usize,
    warnings: usize,
    findings: &'a [Finding],
}

pub fn run(args: &Args) -> ExitCode {
    let opts = LoadOptions {
        strict: args.strict,
    };
    let loaded: Vec<_> = args.paths.iter().flat_map(|p| load_path(p, opts)).collect();
    let findings: Vec<Finding> = loaded.iter().flat_map(|l| l.findings.clone()).collect();
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let report = Report {
        valid: count(Severity::Error) == 0,
        files: loaded.len(),
        migrations: loaded.iter().map(|l| l.migrations.len()).sum(),
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        findings: &findings,
    };
    let mut out = std::io::stdout().lock();
    let written = match args.output {
        Output::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
        Output::Yaml => serde_yaml::to_string(&report)
            .map_err(std::io::Error::other)
            .and_then(|s| write!(out, "{s}")),
        Output::Text => write_text(&mut out, &report),
    };
    if written.is_err() {
        return ExitCode::FAILURE;
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write_text(out: &mut impl Write, r: &Report<'_>) -> std::io::Result<()> {
    for f in r.findings {
        writeln!(out, "{f}")?;
    }
    out.flush()?;
    // The summary is for people; scripts read the exit status or --output json.
    if std::io::stderr().is_terminal() || !r.findings.is_empty() {
        eprintln!(
            "{} file(s), {} valid MailMigration(s), {} error(s), {} warning(s)",
            r.files, r.migrations, r.errors, r.warnings
        );
    }
    Ok(())
}
