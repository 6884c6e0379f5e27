//! Loading the migrations a command acts on: `-f FILE [--name NAME] [--state DIR]`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::imap::engine::Observer;
use crate::manifest::{LoadOptions, load_file};
use crate::reconcile::Reconciler;
use crate::reconcile::imap::ImapEngine;
use crate::spec::MailMigration;
use crate::store::StateDir;

/// Which manifest and which migrations in it.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The manifest (YAML, one or more MailMigration documents).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Only the migration with this metadata.name (default: every one in the file).
    #[arg(long)]
    pub name: Option<String>,
    /// State directory (default: .mailshift/ next to the manifest).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

impl TargetArgs {
    /// The migrations of the manifest; an invalid manifest is an error listing every
    /// finding by file, line and field.
    pub fn migrations(&self) -> Result<Vec<MailMigration>> {
        let path = self.file.to_string_lossy();
        let all = load_file(&path, LoadOptions::default()).into_result()?;
        let chosen: Vec<MailMigration> = all
            .into_iter()
            .filter(|m| {
                self.name
                    .as_deref()
                    .is_none_or(|n| m.metadata.name.as_deref() == Some(n))
            })
            .collect();
        if chosen.is_empty() {
            match &self.name {
                Some(n) => bail!("{path}: no MailMigration named {n}"),
                None => bail!("{path}: no MailMigration in the file"),
            }
        }
        Ok(chosen)
    }

    pub fn state_dir(&self, migration: &MailMigration) -> StateDir {
        StateDir::for_migration(&self.file, self.state.as_deref(), &name_of(migration))
    }

    /// The reconcile loop of one migration, with real IMAP connections.
    pub fn reconciler(
        &self,
        migration: MailMigration,
        observer: Arc<dyn Observer>,
    ) -> Result<Reconciler<ImapEngine>> {
        let (engine, accounts) =
            ImapEngine::prepare(&migration, &self.file, self.state.as_deref(), observer)
                .with_context(|| format!("migration {}", name_of(&migration)))?;
        let state = self.state_dir(&migration);
        Ok(Reconciler::new(migration, accounts, state, engine)?
            .with_resolver(crate::secrets::Resolver::for_manifest(&self.file)))
    }
}

pub fn name_of(m: &MailMigration) -> String {
    m.name().to_owned()
}
