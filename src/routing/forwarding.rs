//! Temporary forwarding over ManageSieve: per mailbox and server, a script named
//! [`SCRIPT_NAME`] that redirects a copy of every message to `forwarding.to`
//! (`redirect :copy`, so the message is still kept) and then runs the user's own active
//! script through `include :personal`, so the user's filters keep working unchanged.
//!
//! The user's scripts are never modified. The name of the script that was active before is
//! written into mailshift's script, and removal makes exactly that script active again (or
//! none, if none was) before deleting mailshift's.

use crate::accounts::{Account, Login};
use crate::address::Address;
use crate::imap::conn::Side as ConnSide;
use crate::plan::ForwardingChange;
use crate::plan::{Side, SwitchState};
use crate::secrets::Resolver;
use crate::spec::{Endpoint, Forwarding, MailMigrationSpec};

use super::RoutingError;
use super::managesieve::Client;

/// The name of mailshift's script on each server.
pub const SCRIPT_NAME: &str = "mailshift-forward";
const TO_PREFIX: &str = "# mailshift-forward-to: ";
const PREVIOUS_PREFIX: &str = "# mailshift-previous-active: ";

/// What mailshift's script records about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapper {
    pub to: String,
    /// The script that was active before, included by this one.
    pub previous: Option<String>,
}

/// Sieve string literal.
fn sieve_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.trim().strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The script mailshift installs.
pub fn wrapper_script(w: &Wrapper) -> String {
    let mut s = String::from(
        "# Installed by mailshift for the duration of a mail migration: every message is\n\
         # kept as before and a copy is redirected. Removed (and the previous active script\n\
         # restored) by mailshift; do not edit.\n",
    );
    s.push_str(&format!("{TO_PREFIX}{}\n", sieve_string(&w.to)));
    match &w.previous {
        Some(p) => s.push_str(&format!("{PREVIOUS_PREFIX}{}\n", sieve_string(p))),
        None => s.push_str(&format!("{PREVIOUS_PREFIX}none\n")),
    }
    match &w.previous {
        Some(p) => {
            s.push_str("require [\"copy\", \"include\"];\n");
            s.push_str(&format!("redirect :copy {};\n", sieve_string(&w.to)));
            // After the redirect: a `stop` in the user's script ends everything.
            s.push_str(&format!("include :personal {};\n", sieve_string(p)));
        }
        None => {
            s.push_str("require [\"copy\"];\n");
            s.push_str(&format!("redirect :copy {};\n", sieve_string(&w.to)));
        }
    }
    s
}

/// Read back what [`wrapper_script`] wrote; `None` for anything else.
pub fn parse_wrapper(script: &str) -> Option<Wrapper> {
    let mut to = None;
    let mut previous = None;
    for line in script.lines() {
        if let Some(v) = line.strip_prefix(TO_PREFIX) {
            to = unquote(v);
        } else if let Some(v) = line.strip_prefix(PREVIOUS_PREFIX) {
            previous = Some(if v.trim() == "none" {
                None
            } else {
                Some(unquote(v)?)
            });
        }
    }
    Some(Wrapper {
        to: to?,
        previous: previous?,
    })
}

/// Is forwarding to `to` on: mailshift's script active and redirecting to `to`?
pub async fn state(client: &mut Client, to: &str) -> Result<bool, RoutingError> {
    let scripts = client.list_scripts().await?;
    if !scripts.iter().any(|s| s.name == SCRIPT_NAME && s.active) {
        return Ok(false);
    }
    let script = client.get_script(SCRIPT_NAME).await?;
    Ok(parse_wrapper(&script).is_some_and(|w| Address::of(&w.to) == Address::of(to)))
}

/// Install and activate mailshift's script (idempotent).
pub async fn enable(client: &mut Client, to: &str) -> Result<(), RoutingError> {
    let scripts = client.list_scripts().await?;
    let active = scripts.iter().find(|s| s.active).map(|s| s.name.clone());
    let previous = match active.as_deref() {
        Some(SCRIPT_NAME) => {
            let current = client.get_script(SCRIPT_NAME).await?;
            match parse_wrapper(&current) {
                Some(w) if w.to == to => return Ok(()),
                Some(w) => w.previous,
                // Someone replaced mailshift's script: nothing known to restore.
                None => None,
            }
        }
        other => other.map(str::to_owned),
    };
    let caps = &client.capabilities;
    for ext in ["copy"]
        .into_iter()
        .chain(previous.as_ref().map(|_| "include"))
    {
        if !caps.sieve.is_empty() && !caps.has_extension(ext) {
            return Err(RoutingError::Invalid(format!(
                "the server's Sieve has no `{ext}` extension, needed for forwarding"
            )));
        }
    }
    let script = wrapper_script(&Wrapper {
        to: to.to_owned(),
        previous,
    });
    client.put_script(SCRIPT_NAME, &script).await?;
    if active.as_deref() != Some(SCRIPT_NAME) {
        client.set_active(SCRIPT_NAME).await?;
    }
    Ok(())
}

/// Remove mailshift's script and make the previous active script active again.
pub async fn disable(client: &mut Client) -> Result<(), RoutingError> {
    let scripts = client.list_scripts().await?;
    let Some(ours) = scripts.iter().find(|s| s.name == SCRIPT_NAME) else {
        return Ok(());
    };
    if ours.active {
        let script = client.get_script(SCRIPT_NAME).await?;
        let previous = parse_wrapper(&script)
            .and_then(|w| w.previous)
            .filter(|p| scripts.iter().any(|s| &s.name == p));
        client.set_active(previous.as_deref().unwrap_or("")).await?;
    }
    client.delete_script(SCRIPT_NAME).await
}

/// The ManageSieve endpoint and login of one side.
fn side_of<'a>(
    account: &'a Account,
    side: Side,
    fwd: &'a Forwarding,
) -> Result<(&'a Endpoint, &'a Login, ConnSide), RoutingError> {
    Ok(match side {
        Side::Source => (&fwd.managesieve, &account.source, ConnSide::Source),
        Side::Destination => (
            fwd.destination_managesieve
                .as_ref()
                .ok_or(RoutingError::NotConfigured(
                    "forwarding.destinationManagesieve",
                ))?,
            &account.destination,
            ConnSide::Destination,
        ),
    })
}

/// Connect and log in to one side's ManageSieve service as the mailbox.
pub async fn connect(
    account: &Account,
    side: Side,
    fwd: &Forwarding,
    resolver: &Resolver,
) -> Result<Client, RoutingError> {
    let (endpoint, login, conn_side) = side_of(account, side, fwd)?;
    super::managesieve::open(endpoint, login, conn_side, resolver).await
}

/// Forwarding of one mailbox on one side, as the server has it now.
pub async fn observe(
    account: &Account,
    side: Side,
    fwd: &Forwarding,
    resolver: &Resolver,
) -> SwitchState {
    let result = async {
        let mut client = connect(account, side, fwd, resolver).await?;
        let on = state(&mut client, &fwd.to).await?;
        let _ = client.logout().await;
        Ok::<_, RoutingError>(on)
    }
    .await;
    match result {
        Ok(true) => SwitchState::On,
        Ok(false) => SwitchState::Off,
        Err(e) => SwitchState::Error {
            reason: e.to_string(),
        },
    }
}

/// Carry out `ForwardingOn` or `ForwardingOff`.
pub async fn apply(
    change: &ForwardingChange,
    spec: &MailMigrationSpec,
    accounts: &[Account],
    resolver: &Resolver,
) -> Result<(), RoutingError> {
    let fwd = spec
        .forwarding
        .as_ref()
        .ok_or(RoutingError::NotConfigured("forwarding"))?;
    let (address, side, to) = match change {
        ForwardingChange::On { address, side, to } => (address, *side, Some(to.as_str())),
        ForwardingChange::Off { address, side } => (address, *side, None),
    };
    let account = accounts
        .iter()
        .find(|a| Address::of(&a.address) == Address::of(address))
        .ok_or_else(|| {
            RoutingError::Invalid(format!("{address} is not a mailbox of this migration"))
        })?;
    let mut client = connect(account, side, fwd, resolver).await?;
    match to {
        Some(to) => enable(&mut client, to).await?,
        None => disable(&mut client).await?,
    }
    let _ = client.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_round_trips_and_includes_the_previous_script() {
        let w = Wrapper {
            to: "backup@example.org".into(),
            previous: Some("my \"rules\"".into()),
        };
        let s = wrapper_script(&w);
        assert!(s.contains("redirect :copy \"backup@example.org\";"), "{s}");
        assert!(s.contains("include :personal \"my \\\"rules\\\"\";"), "{s}");
        assert!(
            s.find("redirect").unwrap() < s.find("include :personal").unwrap(),
            "redirect must come before the user's script can stop"
        );
        assert_eq!(parse_wrapper(&s), Some(w));
        let w = Wrapper {
            to: "b@example.org".into(),
            previous: None,
        };
        let s = wrapper_script(&w);
        assert!(!s.contains("include"), "{s}");
        assert_eq!(parse_wrapper(&s), Some(w));
        assert_eq!(parse_wrapper("keep;"), None);
    }
}
