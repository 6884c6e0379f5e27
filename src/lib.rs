//! mailshift: move a domain's email between servers as declared state.
//!
//! The manifest ([`spec`]) declares what should be true; [`plan`] computes the smallest next
//! steps from what was observed; the [`imap`] engine copies and verifies mailboxes.

pub mod accounts;
pub mod address;
pub mod controller;
pub mod crd;
pub mod dav;
pub mod directory;
pub mod dns;
pub mod engine;
pub mod files;
pub mod https;
pub mod imap;
pub mod limits;
pub mod manifest;
pub mod oauth;
pub mod plan;
pub mod reconcile;
pub mod routing;
pub mod secrets;
pub mod sieve;
pub mod sources;
pub mod spec;
pub mod store;
pub mod text;
pub mod tls;
