//! Milestones: the instants only mailshift can know, because no server remembers them (when
//! the TTL was lowered and what it was, when the final sync finished, when MX moved...).
//! They live in [`MailMigrationStatus`] so that a restart, or the controller on another
//! node, counts the time gates from the same instants.

use crate::plan::{DnsChange, MailStep, OwnStep, RelayChange};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::step::Step;
use crate::spec::MailMigrationStatus;

/// When each stage of the migration happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Milestones {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_lowered_at: Option<DateTime<Utc>>,
    /// The MX TTL before lowering: resolvers may hold the old answer this long.
    #[serde(rename = "oldTTL", default, skip_serializing_if = "Option::is_none")]
    pub old_ttl: Option<u32>,
    /// Found lowered rather than lowered by mailshift.
    #[serde(
        rename = "ttlFoundLowered",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ttl_found_lowered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_synced_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_on_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_switched_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_synced_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl Milestones {
    /// The milestones a stored status carries.
    pub fn from_status(status: &MailMigrationStatus) -> Self {
        Milestones {
            ttl_lowered_at: status.ttl_lowered_at,
            old_ttl: status.old_ttl,
            ttl_found_lowered: status.ttl_found_lowered,
            final_synced_at: status.final_synced_at,
            gateway_on_at: status.gateway_on_at,
            mx_switched_at: status.mx_switched_at,
            delta_synced_at: status.delta_synced_at,
            completed_at: status.completed_at,
        }
    }

    /// Copies the milestones into a status.
    pub fn write_to(&self, status: &mut MailMigrationStatus) {
        status.ttl_lowered_at = self.ttl_lowered_at;
        status.old_ttl = self.old_ttl;
        status.ttl_found_lowered = self.ttl_found_lowered;
        status.final_synced_at = self.final_synced_at;
        status.gateway_on_at = self.gateway_on_at;
        status.mx_switched_at = self.mx_switched_at;
        status.delta_synced_at = self.delta_synced_at;
        status.completed_at = self.completed_at;
    }

    /// The instant the old TTL has fully passed since the lowering, if it was lowered.
    pub fn old_ttl_expires_at(&self) -> Option<DateTime<Utc>> {
        let at = self.ttl_lowered_at?;
        let ttl = TimeDelta::seconds(i64::from(self.old_ttl.unwrap_or(0)));
        Some(
            at.checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// Records what `step`, which has just succeeded at `now`, changed. The executor calls
    /// this after each step; steps that record nothing leave the milestones as they are.
    pub fn record(&mut self, step: &Step, now: DateTime<Utc>) {
        match step {
            Step::Dns(DnsChange::LowerTtl { from_ttl, .. }) => {
                // With several domains lowered one after another, the switch must wait for
                // the latest expiry of any of them: keep the later of the two deadlines.
                let mine = now
                    .checked_add_signed(TimeDelta::seconds(i64::from(from_ttl.unwrap_or(0))))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                let deadline = match self.old_ttl_expires_at() {
                    Some(earlier) if earlier > mine => earlier,
                    _ => mine,
                };
                let wait = (deadline - now).num_seconds().clamp(0, i64::from(u32::MAX));
                self.ttl_lowered_at = Some(now);
                self.old_ttl = Some(u32::try_from(wait).unwrap_or(u32::MAX));
            }
            Step::Mail(MailStep::FinalSync { .. }) => self.final_synced_at = Some(now),
            Step::Relay(RelayChange::GatewayOn { .. }) => self.gateway_on_at = Some(now),
            Step::Dns(DnsChange::SwitchMx { .. }) => self.mx_switched_at = Some(now),
            Step::Mail(MailStep::DeltaSync { .. }) => self.delta_synced_at = Some(now),
            Step::Own(OwnStep::MarkComplete) => self.completed_at = Some(now),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn lower(from: u32) -> Step {
        Step::Dns(DnsChange::LowerTtl {
            zone: "example.com".into(),
            name: "example.com".into(),
            from_ttl: Some(from),
            to_ttl: 300,
        })
    }

    #[test]
    fn lowering_twice_keeps_the_later_deadline() {
        let mut m = Milestones::default();
        m.record(&lower(86400), t("2026-01-01T00:00:00Z"));
        m.record(&lower(300), t("2026-01-01T01:00:00Z"));
        assert_eq!(m.old_ttl_expires_at(), Some(t("2026-01-02T00:00:00Z")));
        m.record(&lower(90000), t("2026-01-01T02:00:00Z"));
        assert_eq!(m.old_ttl_expires_at(), Some(t("2026-01-02T03:00:00Z")));
    }

    #[test]
    fn status_round_trip() {
        let m = Milestones {
            ttl_lowered_at: Some(t("2026-01-01T00:00:00Z")),
            old_ttl: Some(3600),
            completed_at: Some(t("2026-01-09T00:00:00Z")),
            ..Milestones::default()
        };
        let mut s = MailMigrationStatus::default();
        m.write_to(&mut s);
        assert_eq!(Milestones::from_status(&s), m);
    }
}
