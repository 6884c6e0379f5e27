//! Turning secret references into secrets, at the edge where they are used.
//!
//! The CLI reads environment variables and files; in a cluster the controller fetches the
//! resource's Secrets and hands them in as a [`SecretStore`]. Errors name the reference and
//! never the value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::spec::{Secret, SecretRef};

/// Why a secret could not be read. The message names where it was looked for, never what.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read file {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("key {key} of Secret {name} not found")]
    SecretKeyMissing { name: String, key: String },
    #[error(
        "key {key} of Secret {name}: no cluster to read Secrets from (use env or file outside Kubernetes)"
    )]
    NoCluster { name: String, key: String },
    #[error("{0} is empty")]
    Empty(String),
    #[error(
        "{0}: in a cluster, secrets are read from Secrets in the resource's namespace only (use secretKeyRef)"
    )]
    ClusterOnly(String),
}

/// Secrets of a Kubernetes namespace, fetched by the controller before a reconcile.
#[derive(Clone, Default)]
pub struct SecretStore {
    values: HashMap<(String, String), Secret>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("keys", &self.values.len())
            .finish()
    }
}

impl SecretStore {
    pub fn insert(&mut self, name: &str, key: &str, value: Secret) {
        self.values.insert((name.to_owned(), key.to_owned()), value);
    }
}

/// Where secrets mailshift makes (temporary passwords) are kept in a cluster: Secrets of
/// the resource's namespace, written by the controller.
pub trait SecretSink: Send + Sync {
    /// Adds `lines` (each ending in a newline) to the text under `key` of the Secret
    /// `name`, creating either as needed. An error names the Secret, never a value.
    fn append<'a>(
        &'a self,
        name: &'a str,
        key: &'a str,
        lines: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

#[derive(Clone)]
struct Sink(std::sync::Arc<dyn SecretSink>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSink")
    }
}

/// Resolves references against a manifest's directory and, in a cluster, a Secret store.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    base_dir: PathBuf,
    cluster: Option<SecretStore>,
    /// The controller's: `env` and `file` would read the controller's own environment and
    /// files (its service account token), so only Secrets and inline values are read.
    cluster_only: bool,
    sink: Option<Sink>,
}

/// The largest file read as a secret or a `mailboxesFrom` list.
pub const MAX_SECRET_FILE: u64 = 64 << 20;

impl Resolver {
    /// For a manifest read from `manifest_path`: relative `file` references are resolved
    /// against its directory.
    pub fn for_manifest(manifest_path: &Path) -> Self {
        let base_dir = manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Resolver {
            base_dir,
            cluster: None,
            cluster_only: false,
            sink: None,
        }
    }

    /// For the controller: `secretKeyRef` reads from `store` (the Secrets of the resource's
    /// namespace); `env` and `file` references are refused.
    pub fn cluster_only(store: SecretStore) -> Self {
        Resolver {
            base_dir: PathBuf::from("."),
            cluster: Some(store),
            cluster_only: true,
            sink: None,
        }
    }

    /// In a cluster: secrets mailshift makes are written through `sink`.
    pub fn with_sink(mut self, sink: std::sync::Arc<dyn SecretSink>) -> Self {
        self.sink = Some(Sink(sink));
        self
    }

    /// Where made secrets go in a cluster, when this is the controller's resolver.
    pub fn sink(&self) -> Option<&dyn SecretSink> {
        self.sink.as_ref().map(|s| s.0.as_ref())
    }

    /// Whether this is the controller's (no files of its own are read or written).
    pub fn is_cluster_only(&self) -> bool {
        self.cluster_only
    }

    /// In a cluster: `secretKeyRef` reads from `store`.
    pub fn with_cluster(mut self, store: SecretStore) -> Self {
        self.cluster = Some(store);
        self
    }

    /// The value `r` refers to. A file is read only if it is a regular file of at most
    /// [`MAX_SECRET_FILE`] bytes (a `mailboxesFrom` list of many thousand mailboxes fits).
    pub fn resolve(&self, r: &SecretRef) -> Result<Secret, SecretError> {
        if self.cluster_only && matches!(r, SecretRef::Env(_) | SecretRef::File(_)) {
            return Err(SecretError::ClusterOnly(r.to_string()));
        }
        let secret = match r {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) => Secret::new(v),
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::EnvMissing(name.clone()));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::EnvNotUnicode(name.clone()));
                }
            },
            SecretRef::File(path) => {
                let full = self.base_dir.join(path);
                let mut text =
                    crate::files::read_text(&full, MAX_SECRET_FILE).map_err(|error| {
                        SecretError::File {
                            path: full.display().to_string(),
                            error,
                        }
                    })?;
                // Files written by editors and `echo` end with a newline that is not part of
                // the secret.
                while text.ends_with('\n') || text.ends_with('\r') {
                    text.pop();
                }
                Secret::new(text)
            }
            SecretRef::SecretKeyRef(sel) => {
                let Some(store) = &self.cluster else {
                    return Err(SecretError::NoCluster {
                        name: sel.name.clone(),
                        key: sel.key.clone(),
                    });
                };
                store
                    .values
                    .get(&(sel.name.clone(), sel.key.clone()))
                    .cloned()
                    .ok_or_else(|| SecretError::SecretKeyMissing {
                        name: sel.name.clone(),
                        key: sel.key.clone(),
                    })?
            }
            SecretRef::Value(v) => Secret::new(v.clone()),
        };
        if secret.expose().is_empty() {
            return Err(SecretError::Empty(r.to_string()));
        }
        Ok(secret)
    }

    /// A file next to the manifest (for `mailboxesFrom: { file }` and CA certificates).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::SecretKeySelector;

    #[test]
    fn files_are_relative_to_the_manifest_and_lose_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let r = Resolver::for_manifest(&dir.path().join("m.yaml"));
        let s = r.resolve(&SecretRef::File("pw".into())).unwrap();
        assert_eq!(s.expose(), "s3cret");
    }

    #[test]
    fn errors_name_the_reference_not_the_value() {
        let r = Resolver::default();
        let e = r
            .resolve(&SecretRef::Env("MAILSHIFT_TEST_SURELY_UNSET".into()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable MAILSHIFT_TEST_SURELY_UNSET is not set"
        );
        let e = r.resolve(&SecretRef::Value(String::new())).unwrap_err();
        assert!(!e.to_string().contains("value:"), "{e}");
        let sel = SecretRef::SecretKeyRef(SecretKeySelector {
            name: "mail".into(),
            key: "alice".into(),
        });
        assert!(matches!(
            r.resolve(&sel),
            Err(SecretError::NoCluster { .. })
        ));
        let mut store = SecretStore::default();
        store.insert("mail", "alice", Secret::new("pw"));
        let r = r.with_cluster(store);
        assert_eq!(r.resolve(&sel).unwrap().expose(), "pw");
        assert!(!format!("{r:?}").contains("pw\""));
    }

    #[test]
    fn the_controller_reads_secrets_of_the_namespace_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        let path = dir.path().join("token").display().to_string();
        let r = Resolver::cluster_only(SecretStore::default());
        for refused in [SecretRef::Env("PATH".into()), SecretRef::File(path)] {
            assert!(
                matches!(r.resolve(&refused), Err(SecretError::ClusterOnly(_))),
                "{refused}"
            );
        }
    }
}
