//! The Secrets a migration refers to, read from its own namespace (by name: the controller
//! needs `get` on Secrets, not `list`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::{Api, Client};

use crate::secrets::SecretStore;
use crate::spec::{MailMigrationSpec, Secret};

/// Names of the Secrets `spec` refers to through `secretKeyRef`, wherever in the spec.
pub fn referenced_secrets(spec: &MailMigrationSpec) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "secretKeyRef"
                        && let Some(name) = v.get("name").and_then(|n| n.as_str())
                    {
                        out.insert(name.to_owned());
                    } else {
                        walk(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(spec) {
        walk(&v, &mut out);
    }
    out
}

/// Read the named Secrets of `namespace`. A missing Secret is left out: resolving a key of it
/// then fails with a message naming the Secret and the key.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    names: &BTreeSet<String>,
) -> Result<SecretStore, kube::Error> {
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), namespace);
    let mut store = SecretStore::default();
    for name in names {
        let Some(secret) = api.get_opt(name).await? else {
            tracing::warn!(namespace, secret = %name, "referenced Secret not found");
            continue;
        };
        for (key, value) in secret.data.unwrap_or_default() {
            match String::from_utf8(value.0) {
                Ok(text) => store.insert(name, &key, Secret::new(text)),
                Err(_) => {
                    tracing::warn!(namespace, secret = %name, key, "ignoring a key that is not UTF-8")
                }
            }
        }
    }
    Ok(store)
}

/// Secrets mailshift makes (temporary passwords), written to the resource's namespace.
///
/// Read, appended to, and replaced at the version read, so that two writers never lose each
/// other's lines (a conflict is read again). The Secret is labelled as mailshift's and has no
/// owner: the passwords outlive the MailMigration until an admin deletes them.
pub struct KubeSink {
    api: Api<KubeSecret>,
    migration: String,
}

impl KubeSink {
    pub fn new(client: &Client, namespace: &str, migration: &str) -> KubeSink {
        KubeSink {
            api: Api::namespaced(client.clone(), namespace),
            migration: migration.to_owned(),
        }
    }

    async fn append_once(&self, name: &str, key: &str, lines: &str) -> Result<(), kube::Error> {
        use k8s_openapi::ByteString;
        use kube::api::PostParams;
        let pp = PostParams::default();
        match self.api.get_opt(name).await? {
            None => {
                let mut s = KubeSecret::default();
                s.metadata.name = Some(name.to_owned());
                s.metadata.labels = Some(
                    [
                        (
                            "app.kubernetes.io/managed-by".to_owned(),
                            "mailshift".to_owned(),
                        ),
                        ("mailshift.io/migration".to_owned(), self.migration.clone()),
                    ]
                    .into(),
                );
                s.type_ = Some("Opaque".into());
                s.data = Some([(key.to_owned(), ByteString(lines.as_bytes().to_vec()))].into());
                self.api.create(&pp, &s).await.map(|_| ())
            }
            Some(mut s) => {
                let data = s.data.get_or_insert_with(Default::default);
                let entry = data
                    .entry(key.to_owned())
                    .or_insert_with(|| ByteString(Vec::new()));
                if !entry.0.is_empty() && !entry.0.ends_with(b"\n") {
                    entry.0.push(b'\n');
                }
                entry.0.extend_from_slice(lines.as_bytes());
                // The version read stays in metadata: a write in between is a conflict.
                self.api.replace(name, &pp, &s).await.map(|_| ())
            }
        }
    }
}

impl crate::secrets::SecretSink for KubeSink {
    fn append<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
        lines: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let mut tries = 0;
            loop {
                tries += 1;
                match self.append_once(name, key, &lines).await {
                    Ok(()) => return Ok(()),
                    // Conflict (changed since read) or AlreadyExists (created since read).
                    Err(kube::Error::Api(e)) if (e.code == 409) && tries < 5 => continue,
                    Err(e) => {
                        return Err(format!(
                            "cannot write key {key} of Secret {name}: {}",
                            crate::text::excerpt(&e.to_string(), 200)
                        ));
                    }
                }
            }
        })
    }
}
