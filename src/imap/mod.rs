//! IMAP: connections ([`conn`]), mailbox-name encoding ([`mutf7`]) and the table of
//! localized default folder names ([`folder_names`]) used to map a source's folders onto roles.

pub mod conn;
pub mod folder_names;
pub mod mutf7;
pub mod session;
