//! Copy Jobs as data: which steps they carry out, their deterministic names, how pending
//! mailboxes are cut into batches, and the Job object itself (pure, no I/O).

use crate::address::Address;
use crate::plan::MailStep;
use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use k8s_openapi::api::batch::v1::Job;
use kube::Resource;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::plan::Step;
use crate::spec::{API_VERSION, KIND, MailMigration};

/// Most mailboxes one Job copies: the manifest travels in an environment variable and the
/// addresses in arguments and an annotation, all bounded by the API server's object size.
pub const MAX_BATCH: usize = 100;
/// Where the Job's `mailshift sync` finds its manifest.
pub const MANIFEST_ENV: &str = "MAILSHIFT_MANIFEST";
/// Prefix of the environment variables holding the Secrets' keys.
pub const SECRET_ENV: &str = "MAILSHIFT_SECRET_";
/// Pods of a Job are retried this often by Kubernetes before the Job fails (transient
/// network trouble); the controller's own backoff and stall count come on top.
pub const POD_RETRIES: i32 = 2;
/// A finished Job the controller never got to read is removed by Kubernetes after a day.
pub const TTL_AFTER_FINISHED: i32 = 24 * 3600;

/// Label: the owning MailMigration's uid (what the controller selects its Jobs by).
pub const LABEL_UID: &str = "mailshift.io/migration-uid";
/// Label: the owning MailMigration's name (informational, shortened to a label value).
pub const LABEL_MIGRATION: &str = "mailshift.io/migration";
/// Label: the `metadata.generation` the Job was made for.
pub const LABEL_GENERATION: &str = "mailshift.io/generation";
/// Label: which copy step the Job carries out.
pub const LABEL_STEP: &str = "mailshift.io/step";
/// Label on every Job of the controller (its watch selects by it).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Annotation: the Job's mailboxes, comma-separated.
pub const ANNOTATION_MAILBOXES: &str = "mailshift.io/mailboxes";

/// The copy steps a Job can carry out instead of the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CopyKind {
    InitialSync,
    Resync,
    FinalSync,
    DeltaSync,
}

impl CopyKind {
    pub const ALL: [CopyKind; 4] = [
        CopyKind::InitialSync,
        CopyKind::Resync,
        CopyKind::FinalSync,
        CopyKind::DeltaSync,
    ];

    /// The kind of a copy step; `None` for every other step.
    pub fn of(step: &Step) -> Option<CopyKind> {
        match step {
            Step::Mail(MailStep::InitialSync { .. }) => Some(CopyKind::InitialSync),
            Step::Mail(MailStep::Resync { .. }) => Some(CopyKind::Resync),
            Step::Mail(MailStep::FinalSync { .. }) => Some(CopyKind::FinalSync),
            Step::Mail(MailStep::DeltaSync { .. }) => Some(CopyKind::DeltaSync),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CopyKind::InitialSync => "InitialSync",
            CopyKind::Resync => "Resync",
            CopyKind::FinalSync => "FinalSync",
            CopyKind::DeltaSync => "DeltaSync",
        }
    }

    pub fn from_label(label: &str) -> Option<CopyKind> {
        CopyKind::ALL.into_iter().find(|k| k.label() == label)
    }

    /// One step for every mailbox (InitialSync, Resync), or one step for them all.
    pub fn per_mailbox(self) -> bool {
        matches!(self, CopyKind::InitialSync | CopyKind::Resync)
    }

    /// The steps a Job of this kind over `addresses` stands for, as the planner compares
    /// work (`Step::same_work`: kind and address, not the details).
    pub fn steps(self, addresses: &[String]) -> Vec<Step> {
        match self {
            CopyKind::InitialSync => addresses
                .iter()
                .map(|a| Step::Mail(MailStep::InitialSync { address: a.clone() }))
                .collect(),
            CopyKind::Resync => addresses
                .iter()
                .map(|a| {
                    Step::Mail(MailStep::Resync {
                        address: a.clone(),
                        differences: 0,
                    })
                })
                .collect(),
            CopyKind::FinalSync => vec![Step::Mail(MailStep::FinalSync {
                addresses: addresses.to_vec(),
            })],
            CopyKind::DeltaSync => vec![Step::Mail(MailStep::DeltaSync {
                addresses: addresses.to_vec(),
            })],
        }
    }
}

/// The mailboxes a copy step copies.
pub fn step_addresses(step: &Step) -> Vec<String> {
    match step {
        Step::Mail(MailStep::InitialSync { address })
        | Step::Mail(MailStep::Resync { address, .. }) => vec![address.clone()],
        Step::Mail(MailStep::FinalSync { addresses })
        | Step::Mail(MailStep::DeltaSync { addresses }) => addresses.clone(),
        _ => Vec::new(),
    }
}

/// `s` as a DNS-1123 label fragment: lowercase letters, digits and inner dashes.
fn dns_label(s: &str, max: usize) -> String {
    let mapped: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out: String = mapped.trim_matches('-').chars().take(max).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A label value naming the migration (≤ 63 characters).
pub fn migration_label(name: &str) -> String {
    dns_label(name, 63)
}

/// The Job's name: the migration's name, the generation, and a hash of the step kind and
/// the batch's addresses. The same batch of the same generation always gets the same name,
/// so a Job is never created twice (the API server refuses the second); a DNS-1123 label
/// of at most 63 characters, as the `job-name` label on its Pods requires.
pub fn job_name(migration: &str, generation: i64, kind: CopyKind, addresses: &[String]) -> String {
    let mut sorted: Vec<Address> = addresses.iter().map(|a| Address::of(a)).collect();
    sorted.sort();
    sorted.dedup();
    let mut hash = Sha256::new();
    hash.update(kind.label());
    for a in &sorted {
        hash.update([0]);
        hash.update(a.as_str());
    }
    let digest: String = hash
        .finalize()
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    let suffix = format!("-g{generation}-{digest}");
    let mut base = dns_label(migration, 63 - suffix.len());
    if base.is_empty() {
        base.push_str("mailshift");
    }
    format!("{base}{suffix}")
}

/// Cut `addresses` (already in a stable order) into at most `lanes` batches to start now:
/// as evenly as possible over the lanes, none larger than [`MAX_BATCH`]. What does not fit
/// waits for a lane to free up.
pub fn batches(addresses: &[String], lanes: usize) -> Vec<Vec<String>> {
    if lanes == 0 || addresses.is_empty() {
        return Vec::new();
    }
    let n = addresses
        .len()
        .div_ceil(MAX_BATCH)
        .max(lanes.min(addresses.len()));
    let (size, extra) = (addresses.len() / n, addresses.len() % n);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..n.min(lanes) {
        let len = size + usize::from(i < extra);
        out.push(addresses[start..start + len].to_vec());
        start += len;
    }
    out
}

/// Environment variable → (Secret name, key) the kubelet fills it from.
pub type SecretEnv = BTreeMap<String, (String, String)>;

/// The manifest a Job copies with: the resource's spec restricted to copying `addresses`
/// (no DNS, relays, forwarding, probe or cutover: a Job never touches them, so it gets no
/// secrets of theirs), and every `secretKeyRef` turned into an `env` reference. Returns
/// the YAML text and, per environment variable, the Secret's name and key.
pub fn job_manifest(m: &MailMigration, addresses: &[String]) -> Result<(String, SecretEnv)> {
    let mut spec = serde_json::to_value(&m.spec).context("serializing the spec")?;
    if let Value::Object(map) = &mut spec {
        for section in [
            "dns",
            "gateway",
            "fallback",
            "forwarding",
            "probe",
            "cutover",
            "finalize",
        ] {
            map.remove(section);
        }
        if let Some(Value::Array(mailboxes)) = map.get_mut("mailboxes") {
            mailboxes.retain(|mb| {
                mb.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| addresses.iter().any(|b| Address::of(b) == Address::of(a)))
            });
        }
    }
    let mut refs: BTreeMap<(String, String), String> = BTreeMap::new();
    collect_refs(&spec, &mut refs);
    for (i, env) in refs.values_mut().enumerate() {
        *env = format!("{SECRET_ENV}{i}");
    }
    rewrite_refs(&mut spec, &refs);
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": { "name": m.name() },
        "spec": spec,
    });
    let text = serde_yaml::to_string(&manifest).context("writing the Job's manifest")?;
    let env = refs.into_iter().map(|(k, v)| (v, k)).collect();
    Ok((text, env))
}

/// The `(name, key)` of every `secretKeyRef`, in order.
fn collect_refs(v: &Value, out: &mut BTreeMap<(String, String), String>) {
    match v {
        Value::Object(map) => {
            if let Some(sel) = secret_key_ref(v) {
                out.entry(sel).or_default();
                return;
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn rewrite_refs(v: &mut Value, env: &BTreeMap<(String, String), String>) {
    if let Some(sel) = secret_key_ref(v) {
        *v = json!({ "env": env[&sel] });
        return;
    }
    match v {
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_refs(v, env)),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, env)),
        _ => {}
    }
}

/// A secret reference `{ secretKeyRef: { name, key } }` (the whole reference object).
fn secret_key_ref(v: &Value) -> Option<(String, String)> {
    let map = v.as_object().filter(|m| m.len() == 1)?;
    let sel = map.get("secretKeyRef")?;
    Some((
        sel.get("name")?.as_str()?.to_owned(),
        sel.get("key")?.as_str()?.to_owned(),
    ))
}

/// The Job copying `addresses` for `m` (generation `generation`) with `image`.
pub fn job(
    m: &MailMigration,
    generation: i64,
    kind: CopyKind,
    addresses: &[String],
    image: &str,
) -> Result<Job> {
    let name = job_name(m.name(), generation, kind, addresses);
    let uid = m
        .metadata
        .uid
        .clone()
        .context("the MailMigration has no uid")?;
    let owner = m
        .controller_owner_ref(&())
        .context("the MailMigration has no name or uid")?;
    let (manifest, secrets) = job_manifest(m, addresses)?;
    let mut env = vec![json!({ "name": MANIFEST_ENV, "value": manifest })];
    for (var, (secret, key)) in &secrets {
        env.push(json!({
            "name": var,
            "valueFrom": { "secretKeyRef": { "name": secret, "key": key } },
        }));
    }
    let mut args: Vec<String> = [
        "--log-format",
        "json",
        "sync",
        "--manifest-env",
        MANIFEST_ENV,
        "--state",
        "/var/cache/mailshift",
        "--output",
        "json",
    ]
    .map(String::from)
    .to_vec();
    for a in addresses {
        args.push("--mailbox".into());
        args.push(a.clone());
    }
    let labels = json!({
        "app.kubernetes.io/name": "mailshift",
        "app.kubernetes.io/component": "sync",
        LABEL_MANAGED_BY: super::super::MANAGER,
        LABEL_MIGRATION: migration_label(m.name()),
        LABEL_UID: uid,
        LABEL_GENERATION: generation.to_string(),
        LABEL_STEP: kind.label(),
    });
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": m.metadata.namespace,
            "labels": labels,
            "annotations": { ANNOTATION_MAILBOXES: addresses.join(",") },
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": POD_RETRIES,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            // Exit status 2: nothing could be run (an invalid manifest, a missing Secret
            // key); retrying the Pod cannot help.
            "podFailurePolicy": { "rules": [{
                "action": "FailJob",
                "onExitCodes": { "containerName": "sync", "operator": "In", "values": [2] },
            }]},
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    // The Job talks IMAP only: no token, no API access.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": "sync",
                        "image": image,
                        "args": args,
                        "env": env,
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "128Mi" },
                            "limits": { "memory": "1Gi" },
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                        "volumeMounts": [
                            { "name": "state", "mountPath": "/var/cache/mailshift" },
                            { "name": "tmp", "mountPath": "/tmp" },
                        ],
                    }],
                    "volumes": [
                        { "name": "state", "emptyDir": {} },
                        { "name": "tmp", "emptyDir": {} },
                    ],
                },
            },
        },
    });
    serde_json::from_value(job).context("building the Job")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i:04}@example.com")).collect()
    }

    #[test]
    fn names_are_deterministic_dns_labels() {
        let a = job_name("example-com", 3, CopyKind::InitialSync, &addrs(3));
        assert_eq!(
            a,
            job_name("example-com", 3, CopyKind::InitialSync, &addrs(3))
        );
        // Order and case of the addresses do not matter; kind, generation and batch do.
        let mut shuffled = addrs(3);
        shuffled.reverse();
        shuffled[0] = shuffled[0].to_uppercase();
        assert_eq!(
            a,
            job_name("example-com", 3, CopyKind::InitialSync, &shuffled)
        );
        assert_ne!(
            a,
            job_name("example-com", 4, CopyKind::InitialSync, &addrs(3))
        );
        assert_ne!(a, job_name("example-com", 3, CopyKind::Resync, &addrs(3)));
        assert_ne!(
            a,
            job_name("example-com", 3, CopyKind::InitialSync, &addrs(2))
        );
        assert!(a.starts_with("example-com-g3-"), "{a}");
        assert_eq!(a.len(), "example-com-g3-".len() + 10);

        let long = "Mail.Migration_of.a-very-long-name.".repeat(5);
        let n = job_name(&long, 123456, CopyKind::FinalSync, &addrs(1));
        assert!(n.len() <= 63, "{n}");
        let label_ok = n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        assert!(label_ok && !n.starts_with('-') && !n.ends_with('-'), "{n}");
        assert!(job_name("...", 1, CopyKind::Resync, &addrs(1)).starts_with("mailshift-g1-"));
    }

    #[test]
    fn batches_spread_over_the_lanes_and_stay_bounded() {
        let b = batches(&addrs(10), 4);
        let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
        assert_eq!(b.concat(), addrs(10), "contiguous, in order, each once");
        assert_eq!(batches(&addrs(2), 4).len(), 2, "no empty batches");
        assert!(batches(&addrs(5), 0).is_empty());
        assert!(batches(&[], 3).is_empty());
        // More than lanes × MAX_BATCH: full lanes now, the rest later.
        let b = batches(&addrs(1000), 3);
        assert_eq!(b.len(), 3);
        assert!(b.iter().all(|x| x.len() == MAX_BATCH));
        assert_eq!(b[0][0], "u0000@example.com");
        // The same pending set and lanes give the same batches (hence Job names).
        assert_eq!(batches(&addrs(7), 3), batches(&addrs(7), 3));
    }

    #[test]
    fn kinds_round_trip_and_steps_compare_as_work() {
        for k in CopyKind::ALL {
            assert_eq!(CopyKind::from_label(k.label()), Some(k));
        }
        let steps = CopyKind::Resync.steps(&addrs(2));
        assert!(steps[1].same_work(&Step::Mail(MailStep::Resync {
            address: addrs(2)[1].clone(),
            differences: 7
        })));
        assert_eq!(
            CopyKind::of(&Step::Own(crate::plan::OwnStep::MarkComplete)),
            None
        );
    }
}
