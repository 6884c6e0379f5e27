//! mailshift: move a domain's email between servers as declared state.
//!
//! The manifest ([`spec`]) declares what should be true; later parts observe the servers,
//! plan the smallest next step and apply it.

pub mod cli;
pub mod crd;
pub mod imap;
pub mod manifest;
pub mod plan;
pub mod spec;
