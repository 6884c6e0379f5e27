//! The Postfix routing provider: relays a set of domains (gateway) or addresses (fallback)
//! to one next hop through a transport map that mailshift owns.
//!
//! Ownership: mailshift writes only its own map file, `mailshift-gateway` or
//! `mailshift-fallback` in the config directory, and puts it *first* in `transport_maps`
//! (keeping every map that was there, in order), so its entries win and nobody else's entry
//! is ever rewritten. Removing takes the map out of `transport_maps` again (restoring the
//! setting's previous value) and deletes the file. Observing reads what Postfix would do:
//! `postconf -x -h transport_maps` and `postmap -q` through the whole list of maps, so a
//! map that is written but not listed, or not rebuilt, counts as not relaying.

use crate::address::{Address, Domain};
use std::collections::BTreeSet;

use crate::plan::RelayState;

use super::RoutingError;
use super::runner::{Runner, read_file, remove_files, run_ok, write_file};

/// Which relay a map is for; each has its own map file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The old server relays whole domains to the new one.
    Gateway,
    /// The new server relays single addresses back to the old one.
    Fallback,
}

impl Role {
    pub fn file_name(self) -> &'static str {
        match self {
            Role::Gateway => "mailshift-gateway",
            Role::Fallback => "mailshift-fallback",
        }
    }
}

/// Observe, switch on (to exactly a set of entries) and remove one relay.
pub trait RoutingProvider {
    /// What the server does now: the entries that effectively relay, and where to.
    fn observe(&self) -> Result<RelayState, RoutingError>;
    /// Relay exactly `entries` to `relay_to` (an empty set removes the relay).
    fn apply(&self, relay_to: &str, entries: &BTreeSet<String>) -> Result<(), RoutingError>;
    /// Remove everything this provider wrote.
    fn remove(&self) -> Result<(), RoutingError>;
}

/// One Postfix instance (by config directory) reached through a [`Runner`].
pub struct PostfixProvider<'a> {
    runner: &'a dyn Runner,
    config_dir: String,
    role: Role,
}

/// The first line of every map mailshift writes.
pub const MARKER: &str = "# Managed by mailshift";

impl<'a> PostfixProvider<'a> {
    pub fn new(runner: &'a dyn Runner, config_dir: &str, role: Role) -> Self {
        let trimmed = config_dir.trim_end_matches('/');
        PostfixProvider {
            runner,
            config_dir: if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            },
            role,
        }
    }

    /// The map's source file.
    pub fn map_path(&self) -> String {
        format!("{}/{}", self.config_dir, self.role.file_name())
    }

    /// The map as it appears in `transport_maps`.
    pub fn map_ref(&self) -> String {
        format!("hash:{}", self.map_path())
    }

    fn postconf(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["postconf".into(), "-c".into(), self.config_dir.clone()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// `transport_maps`, expanded (`-x`) or as written.
    fn transport_maps(&self, expanded: bool) -> Result<Vec<String>, RoutingError> {
        let args: &[&str] = if expanded {
            &["-x", "-h", "transport_maps"]
        } else {
            &["-h", "transport_maps"]
        };
        let out = run_ok(self.runner, &self.postconf(args))?;
        Ok(split_maps(&out))
    }

    /// The entries of mailshift's map file: key → next hop. `None` when there is no file.
    fn read_map(&self) -> Result<Option<Vec<(String, String)>>, RoutingError> {
        let Some(text) = read_file(self.runner, &self.map_path())? else {
            return Ok(None);
        };
        Ok(Some(parse_map(&text)))
    }

    fn reload(&self) -> Result<(), RoutingError> {
        run_ok(
            self.runner,
            &[
                "postfix".into(),
                "-c".into(),
                self.config_dir.clone(),
                "reload".into(),
            ],
        )
        .map(drop)
    }

    fn postmap(&self) -> Result<(), RoutingError> {
        run_ok(
            self.runner,
            &[
                "postmap".into(),
                "-c".into(),
                self.config_dir.clone(),
                self.map_ref(),
            ],
        )
        .map(drop)
    }

    /// Look `keys` up the way Postfix routes mail: through every transport map in order.
    fn lookup(
        &self,
        maps: &[String],
        keys: &[String],
    ) -> Result<Vec<(String, String)>, RoutingError> {
        let mut argv = vec![
            "postmap".into(),
            "-c".into(),
            self.config_dir.clone(),
            "-q".into(),
            "-".into(),
        ];
        argv.extend(maps.iter().cloned());
        let input: String = keys.iter().map(|k| format!("{k}\n")).collect();
        let out = self.runner.run(&argv, Some(input.as_bytes()))?;
        // postmap -q - exits 1 when no key was found at all.
        if !(out.success() || out.code == Some(1) && out.stderr.trim().is_empty()) {
            return Err(super::runner::failed(self.runner, &argv, &out));
        }
        Ok(parse_map(&out.stdout))
    }
}

impl RoutingProvider for PostfixProvider<'_> {
    fn observe(&self) -> Result<RelayState, RoutingError> {
        let maps = self.transport_maps(true)?;
        let ours = self.map_ref();
        if !maps.contains(&ours) {
            return Ok(RelayState::Off);
        }
        let Some(entries) = self.read_map()? else {
            return Ok(RelayState::Error {
                reason: format!(
                    "{}: transport_maps lists {ours} but the file is missing",
                    self.runner.describe()
                ),
            });
        };
        if entries.is_empty() {
            return Ok(RelayState::Off);
        }
        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
        let effective = self.lookup(&maps, &keys)?;
        // An entry counts when Postfix's answer for it is what mailshift wrote.
        let mut relay_to = None;
        let mut relaying = BTreeSet::new();
        for (key, value) in &entries {
            let answer = effective.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            if answer == Some(value)
                && let Some(hop) = value.strip_prefix("smtp:")
            {
                relay_to.get_or_insert_with(|| hop.to_owned());
                if relay_to.as_deref() == Some(hop) {
                    relaying.insert(key.clone());
                }
            }
        }
        Ok(match relay_to {
            Some(relay_to) => RelayState::On {
                relay_to,
                entries: relaying,
            },
            None => RelayState::Off,
        })
    }

    fn apply(&self, relay_to: &str, entries: &BTreeSet<String>) -> Result<(), RoutingError> {
        if entries.is_empty() {
            return self.remove();
        }
        check_word("relayTo", relay_to)?;
        for e in entries {
            check_word("transport map key", e)?;
        }
        let text = render_map(self.role, relay_to, entries);
        if read_file(self.runner, &self.map_path())?.as_deref() != Some(text.as_str()) {
            write_file(self.runner, &self.map_path(), &text)?;
        }
        self.postmap()?;
        let ours = self.map_ref();
        if !self.transport_maps(true)?.contains(&ours) {
            let mut maps = vec![ours];
            maps.extend(self.transport_maps(false)?);
            let setting = format!("transport_maps={}", maps.join(", "));
            run_ok(self.runner, &self.postconf(&["-e", &setting]))?;
        }
        self.reload()
    }

    fn remove(&self) -> Result<(), RoutingError> {
        let ours = self.map_ref();
        let written = self.transport_maps(false)?;
        if written.contains(&ours) {
            let rest: Vec<String> = written.into_iter().filter(|m| *m != ours).collect();
            if rest.is_empty() {
                run_ok(self.runner, &self.postconf(&["-X", "transport_maps"]))?;
            } else {
                let setting = format!("transport_maps={}", rest.join(", "));
                run_ok(self.runner, &self.postconf(&["-e", &setting]))?;
            }
            self.reload()?;
        }
        let path = self.map_path();
        remove_files(self.runner, &[&path, &format!("{path}.db")])
    }
}

/// Split a `transport_maps` value: maps are separated by commas and/or white space.
pub fn split_maps(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `key value` lines; comments and blank lines skipped; keys folded as the planner folds
/// addresses and domains ([`crate::address`]).
pub fn parse_map(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            let key = if k.contains('@') {
                Address::of(k).into()
            } else {
                Domain::of(k).into()
            };
            Some((key, v.trim().to_owned()))
        })
        .collect()
}

/// The whole map file for a relay.
pub fn render_map(role: Role, relay_to: &str, entries: &BTreeSet<String>) -> String {
    let what = match role {
        Role::Gateway => "gateway: the old server relays these domains to the new one",
        Role::Fallback => "fallback: the new server relays these addresses back to the old one",
    };
    let mut text = format!("{MARKER} ({what}). Rewritten and removed by mailshift; do not edit.\n");
    for e in entries {
        let key: String = match role {
            Role::Gateway => Domain::of(e).into(),
            Role::Fallback => Address::of(e).into(),
        };
        text.push_str(&format!("{key} smtp:{relay_to}\n"));
    }
    text
}

fn check_word(what: &str, value: &str) -> Result<(), RoutingError> {
    if value.is_empty()
        || value.starts_with('#')
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
    {
        return Err(RoutingError::Invalid(format!(
            "{what} {value:?} cannot be written to a Postfix map"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use super::super::runner::Output;

    #[test]
    fn maps_split_on_commas_and_space() {
        assert_eq!(
            split_maps("hash:/a/mailshift-gateway, hash:$config_directory/transport\n"),
            vec![
                "hash:/a/mailshift-gateway",
                "hash:$config_directory/transport"
            ]
        );
        assert!(split_maps("\n").is_empty());
    }

    #[test]
    fn rendered_maps_parse_back() {
        let entries: BTreeSet<String> = ["Example.com".to_owned(), "example.net".to_owned()].into();
        let text = render_map(Role::Gateway, "[127.0.0.1]:2526", &entries);
        assert!(text.starts_with(MARKER));
        assert_eq!(
            parse_map(&text),
            vec![
                ("example.com".to_owned(), "smtp:[127.0.0.1]:2526".to_owned()),
                ("example.net".to_owned(), "smtp:[127.0.0.1]:2526".to_owned()),
            ]
        );
    }

    #[test]
    fn keys_with_space_are_refused() {
        let runner = Scripted::default();
        let p = PostfixProvider::new(&runner, "/etc/postfix", Role::Fallback);
        let entries: BTreeSet<String> = ["a b@example.com".to_owned()].into();
        assert!(matches!(
            p.apply("[h]:25", &entries),
            Err(RoutingError::Invalid(_))
        ));
        assert!(runner.log.lock().unwrap().is_empty());
    }

    /// Answers commands from a script and records them.
    #[derive(Default)]
    struct Scripted {
        log: Mutex<Vec<String>>,
        answers: Mutex<Vec<Output>>,
    }

    impl Runner for Scripted {
        fn run(&self, argv: &[String], _stdin: Option<&[u8]>) -> Result<Output, RoutingError> {
            self.log.lock().unwrap().push(argv.join(" "));
            let mut a = self.answers.lock().unwrap();
            Ok(if a.is_empty() {
                Output {
                    code: Some(0),
                    ..Output::default()
                }
            } else {
                a.remove(0)
            })
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn ok(stdout: &str) -> Output {
        Output {
            code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn apply_runs_write_postmap_postconf_reload_in_order() {
        let runner = Scripted::default();
        *runner.answers.lock().unwrap() = vec![
            // read the map: missing
            Output {
                code: Some(3),
                ..Output::default()
            },
            ok(""),                                   // write
            ok(""),                                   // postmap
            ok("hash:/etc/postfix/transport\n"),      // postconf -x -h
            ok("hash:$config_directory/transport\n"), // postconf -h
            ok(""),                                   // postconf -e
            ok(""),                                   // reload
        ];
        let p = PostfixProvider::new(&runner, "/etc/postfix/", Role::Gateway);
        let entries: BTreeSet<String> = ["example.com".to_owned()].into();
        p.apply("[192.0.2.1]:25", &entries).unwrap();
        let log = runner.log.lock().unwrap();
        let tail: Vec<&str> = log[2..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            vec![
                "postmap -c /etc/postfix hash:/etc/postfix/mailshift-gateway",
                "postconf -c /etc/postfix -x -h transport_maps",
                "postconf -c /etc/postfix -h transport_maps",
                "postconf -c /etc/postfix -e transport_maps=hash:/etc/postfix/mailshift-gateway, hash:$config_directory/transport",
                "postfix -c /etc/postfix reload",
            ]
        );
    }
}
