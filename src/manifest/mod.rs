//! Reading manifests: YAML files with one or more documents, checked against the schema and
//! the semantic rules, every finding tied to a file, line, column and field.
//!
//! `validate`, `plan`, `apply` and the rest all load manifests through [`load_file`], so a
//! mistake is reported the same way whichever command meets it first.

mod load;
mod positions;
mod schema;

pub use load::{LoadOptions, Loaded, load_file, load_path, load_text};
pub use positions::{Path, Pos, PositionIndex, Seg, index_documents};

use serde::Serialize;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Information, such as a document of another kind that was skipped.
    Note,
    /// Allowed, but probably not what was meant (an inline secret, plain-text IMAP).
    Warning,
    /// The manifest cannot be used.
    Error,
}

/// One thing wrong (or worth knowing) about a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field, e.g. `spec.mailboxes[2].address`.
    pub path: String,
    pub severity: Severity,
    pub message: String,
}

impl std::fmt::Display for Finding {
    /// `FILE:LINE:COLUMN: spec.path: message`, with `warning:`/`note:` before non-errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file, self.line, self.column, self.path
        )?;
        match self.severity {
            Severity::Error => {}
            Severity::Warning => f.write_str("warning: ")?,
            Severity::Note => f.write_str("note: ")?,
        }
        f.write_str(&self.message)
    }
}

/// A finding about a path of a spec, before it is placed in a file. Produced by checks that
/// know the types but not the text (see [`crate::spec::semantic`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub path: Path,
    pub severity: Severity,
    pub message: String,
    /// Point at the field's key rather than its value (an unknown or misplaced field).
    pub at_key: bool,
}

impl Issue {
    pub fn error(path: Path, message: impl Into<String>) -> Self {
        Issue {
            path,
            severity: Severity::Error,
            message: message.into(),
            at_key: false,
        }
    }

    /// The same issue, shown at the field's name instead of its value.
    pub fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    pub fn warning(path: Path, message: impl Into<String>) -> Self {
        Issue {
            path,
            severity: Severity::Warning,
            message: message.into(),
            at_key: false,
        }
    }
}

/// Manifests that could not be loaded, with every finding that explains why.
#[derive(Debug, thiserror::Error)]
#[error("{}", render_errors(.0))]
pub struct InvalidManifest(pub Vec<Finding>);

fn render_errors(findings: &[Finding]) -> String {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    format!("invalid manifest:\n{}", errors.join("\n"))
}
