//! IMAP support: mailbox-name encoding ([`mutf7`]), the table of localized default folder
//! names ([`folder_names`]), and the pure core of the copy engine: folder mapping
//! ([`folders`]), message identity ([`identity`]), per-folder comparison ([`diff`]), the sync
//! cache and its shortcuts ([`cache`]) and the verify/sync report ([`report`]). Nothing in
//! these modules does I/O.

pub mod cache;
pub mod diff;
pub mod folder_names;
pub mod folders;
pub mod identity;
pub mod mutf7;
pub mod report;
