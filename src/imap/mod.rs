//! IMAP: connections ([`conn`]), the raw command layer ([`proto`]) and sessions
//! ([`session`]) that do the I/O; the copy engine ([`engine`]) that syncs and verifies
//! mailboxes with them; and its pure decisions: folder mapping ([`folders`]), message
//! identity ([`identity`]), multiset comparison ([`diff`]), re-sync shortcuts ([`cache`]) and
//! reports ([`report`]). Names are encoded with [`mutf7`]; localized default folders come
//! from [`folder_names`].

pub mod binary;
pub mod cache;
pub mod command;
pub mod conn;
pub mod diff;
pub mod flags;
pub mod folder_names;
pub mod folders;
pub mod gmail;
pub mod guard;
pub mod identity;
pub mod in_flight;
pub mod mutf7;
pub mod namespace;
pub mod pairs;
pub mod progress;
pub mod proto;
pub mod report;
pub mod session;
pub mod status;
pub mod throttle;
pub mod tls_sniff;
pub mod uid_map;
