//! Planning: from what is ([`World`]) to what the manifest declares, as ordered
//! [`Step`]s behind [`Gate`]s. See "The loop" in the design: observe fills a `World`,
//! [`plan`] computes a [`Plan`] (pure: no I/O, no clock, no sockets; `now` is an argument),
//! the executor carries out [`Plan::next`] through an adapter and records its
//! [`Milestones`], and [`derive_status`] turns it all into the stored status.
//!
//! - [`world`]: the observed state, shaped after the adapters that fill it.
//! - [`step`]: one change, what it touches and why.
//! - [`gate`]: a closed condition in front of a step: an instant or a fact.
//! - [`window`]: the weekly cutover window in a time zone.
//! - [`planner`]: the careful admin's timeline, policies, MX first (documented there).
//! - [`output`]: the plan, its text and its versioned JSON.
//! - [`status`]: conditions, counts, next step, waiting-until.

pub mod gate;
pub mod milestones;
pub mod output;
pub mod planner;
pub mod status;
pub mod step;
mod view;
pub mod window;
pub mod world;

pub use gate::{Gate, TimeReason, Waiting};
pub use milestones::Milestones;
pub use output::{
    Execution, PLAN_FORMAT_VERSION, Plan, PlanDocument, PlannedStep, Progress, StepDocument,
};
pub use planner::plan;
pub use status::derive_status;
pub use step::{
    Access, AccountsStep, Adapter, DavStep, DnsChange, ForwardingChange, MailStep, OwnStep,
    ProbeStep, RelayChange, Resource, Side, SieveStep, Step, Touch,
};
pub use window::CutoverWindow;
pub use world::{
    Account, AccountRefusal, Answer, BesideMail, DavCompared, DavMissing, DavObserved, DavState,
    DirectoryState, DnsState, Failure, ForwardingSides, InFlight, Login, MailboxList, MailboxState,
    NameState, NameserverAnswer, ProbeState, Records, RelayState, SieveRefusal, SieveState,
    SwitchState, SyncState, Verification, World,
};
