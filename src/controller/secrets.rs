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
