//! The `MailMigration` manifest: typed spec and status, defaults, and the semantic checks
//! that a schema cannot express.

mod duration;
mod secret;
pub mod semantic;
mod status;
mod types;

pub use duration::{DURATION_PATTERN, DurationError, ManifestDuration};
pub use secret::{Secret, SecretKeySelector, SecretRef};
pub use status::{Condition, ConditionStatus, MailMigrationStatus, MailboxCounts, Phase};
pub use types::*;

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "mailshift.io/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "MailMigration";
