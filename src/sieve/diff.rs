//! What a mailbox's Sieve scripts look like to their user on one server, and what copying
//! them from the old server to the new one needs (pure: no I/O).

use std::collections::BTreeMap;

use crate::routing::forwarding::{SCRIPT_NAME, parse_wrapper};
use crate::routing::managesieve::ScriptInfo;
use crate::spec::SieveConflicts;

/// One server's scripts as the user has them: mailshift's temporary forwarding script is
/// not one of them, and while it is the active script, the user's active script is the one
/// it includes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    pub scripts: BTreeMap<String, String>,
    pub active: Option<String>,
    /// mailshift's forwarding script is the active one (it runs `active` after its copy).
    pub forwarding: bool,
}

impl Scripts {
    /// From a LISTSCRIPTS answer and the content of every script in it.
    pub fn of(listed: &[ScriptInfo], mut contents: BTreeMap<String, String>) -> Scripts {
        let ours = contents.remove(SCRIPT_NAME);
        let active = listed.iter().find(|s| s.active).map(|s| s.name.clone());
        let (active, forwarding) = match active.as_deref() {
            Some(SCRIPT_NAME) => (
                ours.as_deref()
                    .and_then(parse_wrapper)
                    .and_then(|w| w.previous),
                true,
            ),
            _ => (active, false),
        };
        Scripts {
            scripts: contents,
            active,
            forwarding,
        }
    }
}

/// What the destination needs to hold what the source holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Source scripts to write: missing on the destination, or different there with
    /// `conflicts: replace`.
    pub put: Vec<String>,
    /// Of `put`, those that replace a different destination script.
    pub replace: Vec<String>,
    /// Different on the destination and kept there (`conflicts: keep`).
    pub kept: Vec<String>,
    /// The source's active script, when the destination has another one active (or none).
    pub activate: Option<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.activate.is_none()
    }
}

/// The scripts to write and the one to activate. A source without an active script leaves
/// the destination's activation alone: a new server's own default filter is not switched
/// off for a user who had none.
pub fn diff(source: &Scripts, destination: &Scripts, conflicts: SieveConflicts) -> Diff {
    let mut d = Diff::default();
    for (name, content) in &source.scripts {
        match destination.scripts.get(name) {
            None => d.put.push(name.clone()),
            Some(theirs) if theirs == content => {}
            Some(_) => match conflicts {
                SieveConflicts::Keep => d.kept.push(name.clone()),
                SieveConflicts::Replace => {
                    d.put.push(name.clone());
                    d.replace.push(name.clone());
                }
            },
        }
    }
    if let Some(active) = &source.active
        && destination.active.as_ref() != Some(active)
        && source.scripts.contains_key(active)
    {
        d.activate = Some(active.clone());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::forwarding::{Wrapper, wrapper_script};

    fn listed(names: &[(&str, bool)]) -> Vec<ScriptInfo> {
        names
            .iter()
            .map(|(n, a)| ScriptInfo {
                name: (*n).into(),
                active: *a,
            })
            .collect()
    }

    fn contents(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, c)| ((*n).into(), (*c).into()))
            .collect()
    }

    #[test]
    fn mailshifts_forwarding_script_is_not_the_users_and_points_at_their_active_one() {
        let wrapper = wrapper_script(&Wrapper {
            to: "keep@example.org".into(),
            previous: Some("filters".into()),
        });
        let s = Scripts::of(
            &listed(&[("filters", false), (SCRIPT_NAME, true)]),
            contents(&[("filters", "keep;"), (SCRIPT_NAME, &wrapper)]),
        );
        assert_eq!(s.scripts, contents(&[("filters", "keep;")]));
        assert_eq!(s.active.as_deref(), Some("filters"));
        assert!(s.forwarding);
    }

    #[test]
    fn missing_scripts_are_put_equal_ones_left_and_conflicts_kept_or_replaced() {
        let source = Scripts {
            scripts: contents(&[("a", "keep;"), ("b", "discard;"), ("c", "stop;")]),
            active: Some("b".into()),
            forwarding: false,
        };
        let destination = Scripts {
            scripts: contents(&[("a", "keep;"), ("c", "keep;")]),
            active: Some("a".into()),
            forwarding: false,
        };
        let keep = diff(&source, &destination, SieveConflicts::Keep);
        assert_eq!(keep.put, vec!["b".to_owned()]);
        assert_eq!(keep.kept, vec!["c".to_owned()]);
        assert!(keep.replace.is_empty());
        assert_eq!(keep.activate.as_deref(), Some("b"));
        let replace = diff(&source, &destination, SieveConflicts::Replace);
        assert_eq!(replace.put, vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(replace.replace, vec!["c".to_owned()]);
        assert!(replace.kept.is_empty());
    }

    #[test]
    fn no_active_script_on_the_source_leaves_the_destinations_activation_alone() {
        let source = Scripts {
            scripts: contents(&[("a", "keep;")]),
            active: None,
            forwarding: false,
        };
        let destination = Scripts {
            scripts: contents(&[("a", "keep;"), ("default", "keep;")]),
            active: Some("default".into()),
            forwarding: false,
        };
        let d = diff(&source, &destination, SieveConflicts::Keep);
        assert!(d.is_empty(), "{d:?}");
    }
}
