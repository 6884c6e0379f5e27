//! A private moto server: an emulation of the AWS APIs, here for Route 53, so that
//! mailshift's Route 53 provider is tested against a real HTTP endpoint speaking the real
//! wire protocol (signed requests, XML, change batches) rather than a mock of our own.
//!
//! `python3 -m moto.server -H 127.0.0.1 -p PORT` runs in the foreground; its state lives in
//! memory and disappears when it stops. Fixtures and assertions are made with boto3 (which
//! moto depends on) in a `python3` subprocess, so the harness needs no AWS client of its
//! own. Any access key is accepted; [`Moto::access_key_id`] gives the conventional
//! `testing`.
//!
//! moto's quirks worth knowing in tests: hosted zone ids look like `/hostedzone/` + 22
//! upper-case letters and digits (the harness returns them without the prefix); a new zone
//! gets four NS records `ns-2048.awsdns-64.com` ... (TTL 172800) and an SOA whose value is
//! garbled (a Python dict printed as text); record names come back absolute (trailing dot)
//! and TTLs are returned as set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::ports::free_port;
use crate::powerdns::http;
use crate::process::{self, Daemon, LaunchError, LogMark, run};
use crate::wait;

/// The access key id and secret moto accepts (any would do): `testing`.
pub const CREDENTIAL: &str = "testing";

/// The region boto3 is told to use (Route 53 is global; moto ignores it).
pub const REGION: &str = "us-east-1";

/// Runs one Route 53 operation with boto3: argv = endpoint, operation, JSON arguments;
/// prints the JSON result.
const BOTO3_SCRIPT: &str = r#"
import json, sys
import boto3
endpoint, op, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c = boto3.client("route53", endpoint_url=endpoint, region_name=args["region"],
                 aws_access_key_id=args["key"], aws_secret_access_key=args["key"])
def norm(n):
    return n.rstrip(".").lower() + "."
out = None
if op == "create_hosted_zone":
    r = c.create_hosted_zone(Name=args["name"], CallerReference=args["ref"])
    out = r["HostedZone"]["Id"].split("/")[-1]
elif op == "rrset":
    for page in c.get_paginator("list_resource_record_sets").paginate(HostedZoneId=args["zone"]):
        for s in page["ResourceRecordSets"]:
            if norm(s["Name"]) == norm(args["name"]) and s["Type"] == args["type"]:
                out = {"ttl": s.get("TTL"), "values": [v["Value"] for v in s.get("ResourceRecords", [])]}
                break
        if out is not None:
            break
elif op == "upsert":
    c.change_resource_record_sets(HostedZoneId=args["zone"], ChangeBatch={"Changes": [{
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": args["name"], "Type": args["type"], "TTL": args["ttl"],
                              "ResourceRecords": [{"Value": v} for v in args["values"]]}}]})
else:
    raise SystemExit("unknown operation " + op)
print(json.dumps(out))
"#;

/// The real interpreter behind `python3` (not a pyenv shim, so stopping the server
/// signals Python itself), once moto and boto3 are known to be importable.
fn python() -> Result<PathBuf> {
    static PYTHON: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = run(
                Command::new("python3").args([
                    "-c",
                    "import sys, moto, boto3, flask; print(sys.executable)",
                ]),
                None,
            )
            .map_err(|e| format!("{e:#}"))?;
            if !out.success {
                return Err(format!(
                    "moto[server] is not installed for python3 ({}); run scripts/install-deps.sh",
                    out.stderr.trim()
                ));
            }
            Ok(PathBuf::from(out.stdout.trim()))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A private moto server (Route 53 and the rest of AWS, in memory); stopped on drop.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    python: PathBuf,
    daemon: Mutex<Option<Daemon>>,
    dir: TempDir,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers HTTP.
    pub fn start() -> Result<Moto> {
        let python = python()?;
        let dir = process::server_tempdir("mailshift-moto-")?;
        let mut moto = Moto {
            port: 0,
            python,
            daemon: Mutex::new(None),
            dir,
        };
        let daemon = process::on_fresh_ports("moto", || {
            moto.port = free_port()?;
            moto.launch()
        })?;
        *moto.daemon() = Some(daemon);
        Ok(moto)
    }

    fn launch(&self) -> Result<Daemon, LaunchError> {
        let output = self.log_path();
        let mark = LogMark::new(std::slice::from_ref(&output));
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .current_dir(self.dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .env("AWS_ACCESS_KEY_ID", CREDENTIAL)
            .env("AWS_SECRET_ACCESS_KEY", CREDENTIAL)
            .env("AWS_DEFAULT_REGION", REGION);
        let mut daemon = Daemon::spawn("moto", cmd, &output)?;
        let ready = wait::until_true(wait::STARTUP_TIMEOUT, "moto to answer HTTP", || {
            daemon.check_running()?;
            if mark.port_in_use() {
                bail!("the port is already in use");
            }
            Ok(matches!(
                http(self.port, "GET", "/", &[], None),
                Ok((200, _))
            ))
        });
        daemon.or_stopped(ready, &mark, |e| {
            process::startup_error("moto", self.dir(), e, &output, &output)
        })
    }

    fn daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one operation of [`BOTO3_SCRIPT`] and returns its JSON result.
    fn boto3(&self, op: &str, mut args: Value) -> Result<Value> {
        args["region"] = json!(REGION);
        args["key"] = json!(CREDENTIAL);
        let out = run(
            Command::new(&self.python)
                .args(["-c", BOTO3_SCRIPT])
                .arg(self.endpoint())
                .arg(op)
                .arg(args.to_string())
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_CONFIG_FILE")
                .env_remove("AWS_SHARED_CREDENTIALS_FILE"),
            None,
        )?;
        let stdout = out
            .ok()
            .with_context(|| format!("boto3 route53 {op} against moto"))?;
        serde_json::from_str(stdout.trim())
            .with_context(|| format!("boto3 route53 {op}: bad output {stdout:?}"))
    }

    /// Creates a public hosted zone `name` (e.g. `example.com`) and returns its id without
    /// the `/hostedzone/` prefix.
    pub fn create_hosted_zone(&self, name: &str) -> Result<String> {
        let reference = format!("mailshift-{}", hex(&crate::random_bytes(8)?));
        let id = self.boto3(
            "create_hosted_zone",
            json!({ "name": name, "ref": reference }),
        )?;
        id.as_str()
            .map(str::to_string)
            .with_context(|| format!("no zone id from create_hosted_zone: {id}"))
    }

    /// The record set `name`/`rtype` (e.g. `example.com.`, `MX`) of hosted zone `zone_id`:
    /// TTL and values, as Route 53 lists them; `None` if there is none. An alias record set
    /// (no TTL) reads as TTL 0.
    pub fn rrset(
        &self,
        zone_id: &str,
        name: &str,
        rtype: &str,
    ) -> Result<Option<(u32, Vec<String>)>> {
        let set = self.boto3(
            "rrset",
            json!({ "zone": zone_id, "name": name, "type": rtype.to_ascii_uppercase() }),
        )?;
        if set.is_null() {
            return Ok(None);
        }
        let ttl = set["ttl"].as_u64().unwrap_or(0);
        let values = set["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Ok(Some((u32::try_from(ttl)?, values)))
    }

    /// Like [`rrset`](Self::rrset) but fails if the record set does not exist.
    pub fn records(&self, zone_id: &str, name: &str, rtype: &str) -> Result<(u32, Vec<String>)> {
        self.rrset(zone_id, name, rtype)?
            .with_context(|| format!("moto has no {name} {rtype} record set in zone {zone_id}"))
    }

    /// Creates or replaces (UPSERT) the record set `name`/`rtype` in hosted zone `zone_id`,
    /// e.g. `set_records(&id, "example.com.", "MX", 3600, &["10 mail.example.net."])`.
    pub fn set_records(
        &self,
        zone_id: &str,
        name: &str,
        rtype: &str,
        ttl: u32,
        values: &[&str],
    ) -> Result<()> {
        self.boto3(
            "upsert",
            json!({
                "zone": zone_id,
                "name": name,
                "type": rtype.to_ascii_uppercase(),
                "ttl": ttl,
                "values": values,
            }),
        )
        .map(drop)
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL to give an AWS client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The AWS access key id to use: `testing`.
    pub fn access_key_id(&self) -> &str {
        CREDENTIAL
    }

    /// The AWS secret access key to use: `testing`.
    pub fn secret_access_key(&self) -> &str {
        CREDENTIAL
    }

    /// The region to tell AWS clients: `us-east-1`.
    pub fn region(&self) -> &str {
        REGION
    }

    /// Stops moto (its state is lost).
    pub fn stop(&self) -> Result<()> {
        match self.daemon().take() {
            Some(mut d) => d.terminate(wait::STOP_TIMEOUT),
            None => Ok(()),
        }
    }

    /// Whether moto is running.
    pub fn is_running(&self) -> bool {
        self.daemon()
            .as_mut()
            .is_some_and(|d| matches!(d.exited(), Ok(None)))
    }

    /// moto's output (werkzeug's request log and any tracebacks).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// The last `n` lines of the log, e.g. for an assertion message.
    pub fn log_tail(&self, n: usize) -> String {
        process::tail(&self.log_path(), n)
    }

    /// The instance's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
