//! `mailshift folders -f MANIFEST [--mailbox ADDR]`: where every source folder would go, and
//! why, before anything is copied.
//!
//! For each mailbox it logs in to both servers, lists their folders (LIST and LSUB only:
//! nothing is opened, created or written on either side) and prints the mapping a sync would
//! follow ([`mailshift::imap::folders::folder_table`]): the source language (detected or
//! forced), the destination's language, then each source folder with its destination and
//! the rule that decided it (INBOX, SPECIAL-USE, a localized default name, a rename, an
//! exclude...), merges, folders to create, and unused rename/exclude rules.
//!
//! Exit status: 0 when every mailbox was mapped, 1 when one could not be (connection,
//! login, or two source folders that would land in one destination folder without being
//! defaults of one role), 2 when nothing could be run (invalid manifest, unknown mailbox).

use std::process::ExitCode;
use std::sync::Arc;

use serde::Serialize;

use super::logging::{self, LogFormat};
use super::sync::{Args, prepare_to_run};
use super::{Ended, Output};
use mailshift::engine::Silent;
use mailshift::imap::folder_names::Lang;
use mailshift::imap::folders::{FolderPlan, FolderTable, LanguageChoice, Reason};
use mailshift::imap::report::ReportKind;

/// One mailbox's mapping, as printed with `--output json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MailboxFolders {
    migration: String,
    mailbox: String,
    /// `None` when the mailbox could not be mapped (see `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    source_language: Option<SourceLanguage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_language: Option<String>,
    folders: Vec<FolderView>,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceLanguage {
    /// The language whose default names are recognized (English ones always are); `None`:
    /// English only.
    language: Option<String>,
    /// `detected`, `undetected`, `forced` (`sourceLanguage` names it) or `unknown`
    /// (`sourceLanguage` names a language the table does not have).
    how: &'static str,
    /// Other languages that explain the same names the same way (detection only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    equivalent: Vec<String>,
    /// `sourceLanguage` as written, for `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    requested: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FolderView {
    source: String,
    /// `None`: not copied.
    destination: Option<String>,
    /// The folder's own role (SPECIAL-USE or default name).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    /// The rule that decided: `inbox`, `special-use`, `default-name`, `under-default`,
    /// `renamed`, `under-renamed`, `excluded`, `excluded-role`, `not-selectable`, `kept`.
    rule: &'static str,
    /// The same, in words.
    why: String,
    create: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    special_use: Option<&'static str>,
    subscribe: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

pub fn run(args: &Args, log_format: LogFormat) -> Result<ExitCode, Ended> {
    logging::init(log_format, None);
    let (prepared, runtime) = prepare_to_run(args, ReportKind::Verify, Arc::new(Silent))?;
    let mut all = Vec::new();
    let mut text = String::new();
    for p in prepared.iter().map(|r| &r.prepared) {
        for account in &p.accounts {
            let result = runtime.block_on(p.engine.folder_mapping(account));
            if let Err(e) = &result {
                tracing::error!(mailbox = %account.address, error = %e, "cannot map folders");
            }
            if args.output == Output::Text {
                text.push_str(&format!(
                    "MailMigration {}, mailbox {}:\n",
                    p.name, account.address
                ));
                match &result {
                    Ok(table) => text.push_str(&table.to_string()),
                    Err(e) => text.push_str(&format!(
                        "  error: {}\n",
                        mailshift::text::printable(&e.to_string())
                    )),
                }
            }
            all.push(view(&p.name, &account.address, result));
        }
    }
    let failed = all.iter().any(|m| m.error.is_some());
    match args.output {
        Output::Text => out!("{text}"),
        other => super::print_structured(other, &all)?,
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn view(
    migration: &str,
    mailbox: &str,
    result: Result<FolderTable, impl std::fmt::Display>,
) -> MailboxFolders {
    let table = match result {
        Ok(t) => t,
        Err(e) => {
            return MailboxFolders {
                migration: migration.to_owned(),
                mailbox: mailbox.to_owned(),
                source_language: None,
                destination_language: None,
                folders: vec![],
                warnings: vec![],
                error: Some(e.to_string()),
            };
        }
    };
    let source_language = match &table.source_language {
        LanguageChoice::Detected { lang, equivalent } => SourceLanguage {
            language: Some(lang.to_string()),
            how: "detected",
            equivalent: equivalent.iter().map(Lang::to_string).collect(),
            requested: None,
        },
        LanguageChoice::Undetected => SourceLanguage {
            language: None,
            how: "undetected",
            equivalent: vec![],
            requested: None,
        },
        LanguageChoice::Forced(l) => SourceLanguage {
            language: Some(l.to_string()),
            how: "forced",
            equivalent: vec![],
            requested: None,
        },
        LanguageChoice::Unknown(t) => SourceLanguage {
            language: None,
            how: "unknown",
            equivalent: vec![],
            requested: Some(t.clone()),
        },
    };
    // The warnings are the Display's last lines; keep their wording in one place.
    let warnings = table
        .to_string()
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_owned)
        .collect();
    MailboxFolders {
        migration: migration.to_owned(),
        mailbox: mailbox.to_owned(),
        source_language: Some(source_language),
        destination_language: Some(
            table
                .destination_language
                .unwrap_or(Lang::ENGLISH)
                .to_string(),
        ),
        folders: table.plans.iter().map(folder_view).collect(),
        warnings,
        error: None,
    }
}

fn folder_view(p: &FolderPlan) -> FolderView {
    let rule = match &p.reason {
        Reason::Inbox => "inbox",
        Reason::SpecialUse { .. } => "special-use",
        Reason::DefaultName { .. } => "default-name",
        Reason::UnderDefault { .. } => "under-default",
        Reason::Renamed { .. } => "renamed",
        Reason::UnderRenamed { .. } => "under-renamed",
        Reason::Excluded { .. } => "excluded",
        Reason::ExcludedRole { .. } => "excluded-role",
        Reason::NotSelectable { .. } => "not-selectable",
        Reason::NotPersonal { .. } => "not-personal",
        Reason::GmailView { .. } => "gmail-view",
        Reason::GmailLabelAsKeyword => "gmail-label-as-keyword",
        Reason::GmailDestinationView { .. } => "gmail-destination-view",
        Reason::Kept => "kept",
    };
    FolderView {
        source: p.source.clone(),
        destination: p.dest.clone(),
        role: p.role.map(|r| r.to_string()),
        rule,
        why: p.reason.to_string(),
        create: p.create,
        special_use: p.special_use.and_then(|r| r.special_use()),
        subscribe: p.subscribe,
        notes: p.notes.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailshift::imap::folders::{FolderList, ListedFolder, folder_table};

    fn list(prefix: &str, delim: char, names: &[(&str, &[&str])]) -> FolderList {
        FolderList {
            delimiter: Some(delim),
            prefix: prefix.into(),
            folders: names
                .iter()
                .map(|(n, a)| ListedFolder::new(n, a, true))
                .collect(),
            foreign: Vec::new(),
            create_special_use: true,
            refused: Vec::new(),
            gmail: false,
        }
    }

    #[test]
    fn json_view_of_a_localized_mailbox() {
        let src = list(
            "INBOX.",
            '.',
            &[
                ("INBOX", &[]),
                ("INBOX.Gesendete Elemente", &[]),
                ("INBOX.Entwürfe", &[]),
                ("INBOX.Gelöschte Elemente", &[]),
                ("INBOX.Projekte", &[]),
            ],
        );
        let dst = list(
            "",
            '/',
            &[
                ("INBOX", &[]),
                ("Sent", &["\\Sent"]),
                ("Drafts", &["\\Drafts"]),
            ],
        );
        let table = folder_table(&src, &dst, None).unwrap();
        let v = view("m", "a@example.com", Ok::<_, String>(table));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["sourceLanguage"]["language"], "de");
        assert_eq!(json["sourceLanguage"]["how"], "detected");
        assert_eq!(json["destinationLanguage"], "en");
        let folders = json["folders"].as_array().unwrap();
        let by_source = |s: &str| {
            folders
                .iter()
                .find(|f| f["source"] == s)
                .unwrap_or_else(|| panic!("{s}"))
        };
        let sent = by_source("INBOX.Gesendete Elemente");
        assert_eq!(sent["destination"], "Sent");
        assert_eq!(sent["rule"], "default-name");
        assert_eq!(sent["role"], "Sent");
        assert_eq!(sent["create"], false);
        let trash = by_source("INBOX.Gelöschte Elemente");
        assert_eq!(trash["destination"], "Trash");
        assert_eq!(trash["create"], true);
        assert_eq!(trash["specialUse"], "\\Trash");
        let custom = by_source("INBOX.Projekte");
        assert_eq!(custom["destination"], "Projekte");
        assert_eq!(custom["rule"], "kept");
        assert!(custom.get("role").is_none());
        assert_eq!(by_source("INBOX")["rule"], "inbox");
        assert!(json.get("error").is_none());

        let failed = view("m", "b@example.com", Err::<FolderTable, _>("login refused"));
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["error"], "login refused");
        assert!(json.get("sourceLanguage").is_none());
    }
}
