//! Secret references: where a password, token or key comes from, never the value itself
//! (except `value`, which exists for tests and is flagged by `validate`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where a secret comes from. Exactly one of `env`, `file`, `secretKeyRef` or `value`.
///
/// `Debug` and `Display` name the reference (an environment variable, a file, a Secret key)
/// but never the secret: an inline `value` prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecretRef {
    /// Name of an environment variable of the mailshift process holding the secret.
    Env(#[schemars(length(min = 1))] String),
    /// Path of a file holding the secret (a trailing newline is ignored). Relative paths are
    /// resolved against the manifest's directory.
    File(#[schemars(length(min = 1))] String),
    /// A key of a Kubernetes Secret in the resource's namespace.
    SecretKeyRef(SecretKeySelector),
    /// The secret itself, inline. For tests only: `mailshift validate` warns about it, and
    /// `--strict` makes it an error. Never commit real secrets in a manifest.
    Value(String),
}

/// A key of a Kubernetes Secret in the same namespace as the MailMigration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

impl SecretRef {
    /// True for an inline `value`, which should never reach a committed manifest.
    pub fn is_inline(&self) -> bool {
        matches!(self, SecretRef::Value(_))
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => f.debug_tuple("Env").field(name).finish(),
            SecretRef::File(path) => f.debug_tuple("File").field(path).finish(),
            SecretRef::SecretKeyRef(sel) => f.debug_tuple("SecretKeyRef").field(sel).finish(),
            SecretRef::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {path}"),
            SecretRef::SecretKeyRef(sel) => write!(f, "key {} of Secret {}", sel.key, sel.name),
            SecretRef::Value(_) => f.write_str("inline value <redacted>"),
        }
    }
}

/// A resolved secret. The bytes are wiped from memory on drop, and neither `Debug` nor
/// `Display` shows them: the only way to read it is [`Secret::expose`], which makes every
/// use easy to find.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself, to hand to a protocol. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_value_never_shown_by_debug_or_display() {
        let r = SecretRef::Value("hunter2-very-secret".into());
        assert!(!format!("{r:?}").contains("hunter2"));
        assert!(!format!("{r}").contains("hunter2"));
        assert!(!format!("{r:#?}").contains("hunter2"));
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn references_name_their_source() {
        assert_eq!(
            SecretRef::Env("ALICE_PW".into()).to_string(),
            "environment variable ALICE_PW"
        );
        let k = SecretRef::SecretKeyRef(SecretKeySelector {
            name: "mail".into(),
            key: "alice".into(),
        });
        assert_eq!(k.to_string(), "key alice of Secret mail");
    }

    /// Manifests are read as YAML into JSON values and typed from there (as the API server
    /// and kube do), so the shape is a one-key map, not a YAML tag.
    fn parse(yaml: &str) -> Result<SecretRef, serde_json::Error> {
        let v: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        serde_json::from_value(v)
    }

    #[test]
    fn yaml_shape_is_a_single_key_map() {
        assert_eq!(parse("env: X").unwrap(), SecretRef::Env("X".into()));
        let r = parse("secretKeyRef: {name: s, key: k}").unwrap();
        assert!(matches!(r, SecretRef::SecretKeyRef(_)));
        assert!(parse("{env: X, file: Y}").is_err());
    }
}
