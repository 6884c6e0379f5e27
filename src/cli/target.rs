//! The one configuration every command that acts on migrations resolves its arguments into:
//! which manifests (`-f FILE|DIR|-`, `--manifest-env VAR`), which migrations in them
//! (`--name`), where their state lives (`--state`), and for each migration the secrets
//! resolver and state directory that follow from where its manifest was read. Resolved once
//! here, so that no command works out a state directory or a secret's base path itself.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use mailshift::engine::Observer;
use mailshift::manifest::{LoadOptions, Loaded, Severity, load_path, load_text};
use mailshift::reconcile::Reconciler;
use mailshift::reconcile::imap::ImapEngine;
use mailshift::secrets::Resolver;
use mailshift::spec::MailMigration;
use mailshift::store::StateDir;

/// Which manifests and which migrations in them.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// Manifest file(s) or directories of them (`-` for standard input).
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "manifest_env",
        value_name = "MANIFEST"
    )]
    pub files: Vec<String>,
    /// Read the manifest from this environment variable instead of a file. The controller's
    /// copy Jobs get theirs this way: a Job has no stdin and no API access to read the
    /// resource.
    #[arg(long, value_name = "VAR", conflicts_with = "files")]
    pub manifest_env: Option<String>,
    /// Only the MailMigration with this `metadata.name` (repeat for several; default: every
    /// one in the manifests).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// State directory: DIR/<name>/ (default: .mailshift/<name>/ next to the manifest).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

/// One migration with everything its manifest's place decides.
#[derive(Debug, Clone)]
pub struct Target {
    pub migration: MailMigration,
    /// Where the manifest was read (`-` or `$VAR` for standard input or the environment).
    pub manifest: PathBuf,
    pub state: StateDir,
    /// Secrets referenced by path are read relative to the manifest.
    pub resolver: Resolver,
}

impl Target {
    pub fn name(&self) -> &str {
        self.migration.name()
    }

    /// The reconcile loop of this migration, with real IMAP connections.
    pub fn reconciler(&self, observer: Arc<dyn Observer>) -> Result<Reconciler<ImapEngine>> {
        let (engine, accounts) = ImapEngine::prepare_with(
            &self.migration,
            &self.resolver,
            self.state.clone(),
            observer,
        )
        .with_context(|| format!("migration {}", self.name()))?;
        Ok(
            Reconciler::new(self.migration.clone(), accounts, self.state.clone(), engine)?
                .with_resolver(self.resolver.clone()),
        )
    }
}

impl Selection {
    /// The migrations asked for, in manifest order. An invalid manifest is an error listing
    /// every finding by file, line and field; warnings are logged; a `--name` that matches
    /// nothing is an error.
    pub fn resolve(&self) -> Result<Vec<Target>> {
        let mut sources: Vec<Vec<Loaded>> = Vec::new();
        if let Some(var) = &self.manifest_env {
            let text = std::env::var(var)
                .with_context(|| format!("reading the manifest from environment variable {var}"))?;
            sources.push(vec![load_text(
                &format!("${var}"),
                &text,
                LoadOptions::default(),
            )]);
        }
        for file in &self.files {
            sources.push(load_path(file, LoadOptions::default()));
        }
        let mut names_seen = vec![false; self.names.len()];
        let mut targets = Vec::new();
        for loaded in sources.into_iter().flatten() {
            for f in loaded
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Warning)
            {
                tracing::warn!(finding = %f, "manifest");
            }
            let manifest = PathBuf::from(&loaded.file);
            for migration in loaded.into_result()? {
                if !self.names.is_empty() {
                    match self.names.iter().position(|n| n == migration.name()) {
                        Some(i) => names_seen[i] = true,
                        None => continue,
                    }
                }
                targets.push(Target {
                    state: StateDir::for_migration(
                        &manifest,
                        self.state.as_deref(),
                        migration.name(),
                    ),
                    resolver: Resolver::for_manifest(&manifest),
                    manifest: manifest.clone(),
                    migration,
                });
            }
        }
        if let Some(i) = names_seen.iter().position(|seen| !seen) {
            bail!("no MailMigration named {} in the manifests", self.names[i]);
        }
        if targets.is_empty() {
            bail!("no MailMigration in the manifests");
        }
        Ok(targets)
    }
}
