//! The mail engine as the controller's reconcile loop sees it: the real one, except that a
//! copy carried out by a Job is reported to the loop as that Job's outcome. The loop then
//! records it exactly as its own copy (sync state, verification due, failures in a row,
//! stall) without the controller copying anything itself.

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};

use crate::accounts::Account;
use crate::plan::ProbeState;
use crate::reconcile::{LoginCheck, MailEngine, Synced, Verified};
use crate::secrets::Resolver;
use crate::spec::{Probe, Transfer};

/// `inner`, with the outcome of finished copy Jobs standing in for `sync` while set.
pub struct Fanned<E> {
    pub inner: E,
    /// `Some(Ok)`: the Jobs copying these mailboxes succeeded; `Some(Err)`: one failed,
    /// for this reason. Set just around `Reconciler::execute`.
    pub(super) outcome: Option<Result<(), String>>,
    /// How far each copy Job has come, as its log last said (see [`super::progress`]).
    pub(super) jobs_progress: Vec<Transfer>,
}

impl<E> Fanned<E> {
    pub fn new(inner: E) -> Self {
        Fanned {
            inner,
            outcome: None,
            jobs_progress: Vec::new(),
        }
    }
}

impl<E: MailEngine> MailEngine for Fanned<E> {
    fn transfer(&self, now: DateTime<Utc>) -> Option<Transfer> {
        let own = self.inner.transfer(now);
        let all: Vec<Transfer> = own.into_iter().chain(self.jobs_progress.clone()).collect();
        crate::reconcile::progress::combine(None, &all, now)
    }

    fn check_logins(&self, account: &Account) -> impl Future<Output = LoginCheck> + Send {
        self.inner.check_logins(account)
    }

    async fn sync(&self, accounts: &[Account]) -> Result<Vec<(String, Synced)>> {
        match &self.outcome {
            None => self.inner.sync(accounts).await,
            // A Job's success is not proof of a complete copy: counts are unknown here, and
            // the loop verifies the mailboxes against the servers next.
            Some(Ok(())) => Ok(accounts
                .iter()
                .map(|a| (a.address.clone(), Synced::default()))
                .collect()),
            Some(Err(why)) => Err(anyhow!("{why}")),
        }
    }

    fn verify(&self, account: &Account) -> impl Future<Output = Result<Verified>> + Send {
        self.inner.verify(account)
    }

    fn probe(
        &self,
        probe: &Probe,
        account: &Account,
        resolver: &Resolver,
    ) -> impl Future<Output = ProbeState> + Send {
        self.inner.probe(probe, account, resolver)
    }
}
