//! What the executor records between passes, next to the status in the state directory (or
//! in the resource's status): each mailbox's last sync and verification, the steps failing
//! in a row, and the generation of the spec. The type is the status's [`Records`].
//!
//! These are records of what mailshift did and saw, used to fill the parts of the `World`
//! that would be too costly to observe on every pass (a full verification). They never
//! decide what to copy: the engine compares the servers for that.

use crate::address::Address;
use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::plan::Verification;
use crate::spec::MailMigrationSpec;
pub use crate::spec::{LoopRecords as Records, MailboxRecord};
use crate::store::StateDir;

impl Records {
    pub fn load(state: &StateDir) -> Result<Self> {
        Ok(state.load_json("records.json")?.unwrap_or_default())
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.save_json("records.json", self)
    }

    /// Bring the records to `spec`: a changed spec is a new generation, and verifications
    /// made against the old one no longer prove anything (a folder may now be excluded, a
    /// rename changed where mail lands), so they are dropped and redone.
    pub fn adopt(&mut self, spec: &MailMigrationSpec) -> bool {
        let hash = spec_hash(spec);
        if hash == self.spec_hash {
            return false;
        }
        self.spec_hash = hash;
        self.generation += 1;
        for r in self.mailboxes.values_mut() {
            r.verification = Verification::NotVerified;
        }
        // A new spec may have fixed what failed: every step gets its attempts again.
        self.failures.clear();
        true
    }

    pub fn mailbox(&self, address: &str) -> MailboxRecord {
        self.mailboxes
            .get(&Address::of(address))
            .cloned()
            .unwrap_or_default()
    }

    pub fn mailbox_mut(&mut self, address: &str) -> &mut MailboxRecord {
        self.mailboxes.entry(Address::of(address)).or_default()
    }
}

/// Where the records are kept: the state directory (`records.json`) for the CLI; for the
/// controller, the resource's status, so that a restarted or failed-over controller does not
/// copy and verify every mailbox again.
pub trait RecordsStore: Send + Sync {
    fn load_records(&self) -> Result<Records>;
    fn save_records(&self, records: &Records) -> Result<()>;
}

impl RecordsStore for StateDir {
    fn load_records(&self) -> Result<Records> {
        Records::load(self)
    }

    fn save_records(&self, records: &Records) -> Result<()> {
        records.save(self)
    }
}

/// Records held in memory by a host that persists them itself (the controller, in status).
#[derive(Debug, Default)]
pub struct MemoryRecords(std::sync::Mutex<Records>);

impl MemoryRecords {
    pub fn new(records: Records) -> Self {
        MemoryRecords(std::sync::Mutex::new(records))
    }

    pub fn get(&self) -> Records {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl RecordsStore for MemoryRecords {
    fn load_records(&self) -> Result<Records> {
        Ok(self.get())
    }

    fn save_records(&self, records: &Records) -> Result<()> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = records.clone();
        Ok(())
    }
}

fn spec_hash(spec: &MailMigrationSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every mailbox to show: the manifest's inline ones in their order, then any other that
/// `records` hold (from `mailboxesFrom`, or no longer listed), by their keys.
pub fn listed(
    spec: &MailMigrationSpec,
    records: &std::collections::BTreeMap<Address, crate::spec::MailboxRecord>,
) -> Vec<Address> {
    let mut listed: Vec<Address> = spec
        .mailboxes
        .iter()
        .map(|m| Address::of(&m.address))
        .collect();
    for a in records.keys() {
        if !listed.contains(a) {
            listed.push(a.clone());
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> MailMigrationSpec {
        let y = format!(
            "source: {{ imap: {{ host: a }} }}\ndestination: {{ imap: {{ host: b }} }}\nmailboxes: [{{ address: a@b.c }}]\n{extra}"
        );
        let v: serde_json::Value = serde_yaml::from_str(&y).unwrap();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_changed_spec_is_a_new_generation_and_drops_verifications() {
        let mut r = Records::default();
        assert!(r.adopt(&spec("")));
        assert_eq!(r.generation, 1);
        r.mailbox_mut("A@b.c").verification = Verification::Equal {
            at: chrono::Utc::now(),
            messages: 3,
            arrived: 0,
        };
        assert!(!r.adopt(&spec("")), "same spec, same generation");
        assert!(matches!(
            r.mailbox("a@b.c").verification,
            Verification::Equal { .. }
        ));
        assert!(r.adopt(&spec("folders: { exclude: [Junk] }")));
        assert_eq!(r.generation, 2);
        assert_eq!(r.mailbox("a@b.c").verification, Verification::NotVerified);
    }
}
