//! Schema checks of a spec: types, ranges, enum values, required and unknown fields, all at
//! once rather than the first one serde trips over.
//!
//! The schema is the one schemars derives from the types, the same source as the CRD, so
//! the cluster cannot accept what this refuses for a structural reason. It is stricter than
//! the CRD in one way: unknown fields are errors here, where the API server only prunes them.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::{Issue, Path};
use crate::spec::MailMigrationSpec;

static SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(schemars::schema_for!(MailMigrationSpec)).expect("schemars output is JSON")
});

static SPEC_VALIDATOR: LazyLock<Validator> = LazyLock::new(|| {
    jsonschema::validator_for(&SPEC_SCHEMA).expect("the spec's own schema compiles")
});

/// Every schema violation in `spec` (the value under `spec:`), as issues under `base`.
pub fn check_spec(spec: &Value, base: &Path) -> Vec<Issue> {
    let mut out: Vec<Issue> = SPEC_VALIDATOR
        .iter_errors(spec)
        .flat_map(|e| describe(&e, base))
        .collect();
    out.sort_by_key(|i| i.path.to_string());
    out.dedup();
    out
}

/// Turn a JSON pointer such as `/mailboxes/0/address` into a path. Segments that are all
/// digits are list indexes: no field of the spec is named by a number.
fn pointer_to_path(pointer: &str, base: &Path) -> Path {
    let mut path = base.clone();
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        path = match seg.parse::<usize>() {
            Ok(i) if seg.bytes().all(|b| b.is_ascii_digit()) => path.index(i),
            _ => path.key(seg),
        };
    }
    path
}

fn describe(e: &ValidationError<'_>, base: &Path) -> Vec<Issue> {
    let path = pointer_to_path(e.instance_path().as_str(), base);
    let instance = e.instance();
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|field| {
                let known = known_fields(e);
                let hint = suggestion(field, &known)
                    .map(|s| format!(", did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (known fields: {})", known.join(", "))
                        }
                    });
                Issue::error(
                    path.key(field.clone()),
                    format!("unknown field `{field}`{hint}"),
                )
                .at_key()
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![Issue::error(
                path,
                format!("missing required field `{name}`"),
            )]
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                // `null` is how schemars spells "optional"; nobody means to write it.
                TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .filter(|t| t != "null")
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            vec![Issue::error(
                path,
                format!("expected {expected}, found {}", show(instance)),
            )]
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(show).collect())
                .unwrap_or_default();
            vec![Issue::error(
                path,
                format!("{} is not one of {}", show(instance), opts.join(", ")),
            )]
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![Issue::error(
                path,
                format!("{} is below the minimum {limit}", show(instance)),
            )]
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![Issue::error(
                path,
                format!("{} is above the maximum {limit}", show(instance)),
            )]
        }
        ValidationErrorKind::MinLength { limit } => vec![Issue::error(
            path,
            if *limit == 1 {
                "must not be empty".to_owned()
            } else {
                format!("{} is shorter than {limit} characters", show(instance))
            },
        )],
        ValidationErrorKind::MaxLength { limit } => vec![Issue::error(
            path,
            format!("is longer than {limit} characters"),
        )],
        ValidationErrorKind::MinItems { limit } => vec![Issue::error(
            path,
            format!("needs at least {limit} item(s)"),
        )],
        ValidationErrorKind::Pattern { pattern } => {
            let msg = if pattern == crate::spec::DURATION_PATTERN {
                format!(
                    "{} is not a duration: use a number and a unit (ms, s, m, h, d), e.g. 48h or 1h30m",
                    show(instance)
                )
            } else {
                format!("{} does not match {pattern}", show(instance))
            };
            vec![Issue::error(path, msg)]
        }
        ValidationErrorKind::OneOfNotValid { context }
        | ValidationErrorKind::OneOfMultipleValid { context }
        | ValidationErrorKind::AnyOf { context } => alternatives(e, context, &path, base),
        ValidationErrorKind::Constant { expected_value } => vec![Issue::error(
            path,
            format!("{} is not {}", show(instance), show(expected_value)),
        )],
        _ => vec![Issue::error(path, e.to_string())],
    }
}

/// `anyOf`/`oneOf` failures say "not valid under any of the schemas"; find out what the
/// alternatives were and say something useful: the inner errors of an optional field, the
/// allowed values of an enum, or the keys of a secret reference.
fn alternatives(
    e: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    path: &Path,
    base: &Path,
) -> Vec<Issue> {
    let instance = e.instance();
    let branches: Vec<&Value> = schema_at(e.schema_path().as_str())
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|b| resolve(&SPEC_SCHEMA, b).unwrap_or(b))
                .collect()
        })
        .unwrap_or_default();
    // Optional fields are `anyOf: [T, null]`: only the non-null alternatives matter.
    let real: Vec<usize> = (0..branches.len())
        .filter(|&i| branches[i].get("type").and_then(Value::as_str) != Some("null"))
        .collect();
    let consts: Vec<&Value> = real
        .iter()
        .filter_map(|&i| branches[i].get("const"))
        .collect();
    if !consts.is_empty() && consts.len() == real.len() {
        let allowed: Vec<String> = consts.iter().map(|v| show(v)).collect();
        return vec![Issue::error(
            path.clone(),
            format!("{} is not one of {}", show(instance), allowed.join(", ")),
        )];
    }
    if real.len() == 1
        && let Some(errors) = context.get(real[0])
    {
        let inner: Vec<Issue> = errors.iter().flat_map(|e| describe(e, base)).collect();
        if !inner.is_empty() {
            return inner;
        }
    }
    let keys: Vec<&str> = real
        .iter()
        .filter_map(|&i| {
            let req = branches[i].get("required")?.as_array()?;
            (req.len() == 1).then(|| req[0].as_str()).flatten()
        })
        .collect();
    if !keys.is_empty() && keys.len() == real.len() {
        let Value::Object(map) = instance.as_ref() else {
            return vec![Issue::error(
                path.clone(),
                format!(
                    "expected a mapping with one of {}, found {}",
                    keys.join(", "),
                    show(instance)
                ),
            )];
        };
        let given: Vec<&str> = map.keys().map(String::as_str).collect();
        let chosen: Vec<usize> = real
            .iter()
            .copied()
            .filter(|&i| {
                let req = branches[i]["required"][0].as_str().unwrap_or_default();
                given.contains(&req)
            })
            .collect();
        if chosen.len() == 1 && given.len() == 1 {
            // The right key with a wrong value: report what is wrong inside it.
            if let Some(errors) = context.get(chosen[0]) {
                let inner: Vec<Issue> = errors.iter().flat_map(|e| describe(e, base)).collect();
                if !inner.is_empty() {
                    return inner;
                }
            }
        }
        return vec![Issue::error(
            path.clone(),
            format!(
                "set exactly one of {}; found {}",
                keys.join(", "),
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(", ")
                }
            ),
        )];
    }
    vec![Issue::error(path.clone(), e.to_string())]
}

/// The node of the spec's schema at a validator's schema path, following `$ref`s on the way
/// (the validator's paths step through them).
fn schema_at(schema_path: &str) -> Option<&'static Value> {
    let root: &'static Value = &SPEC_SCHEMA;
    let mut node = root;
    for raw in schema_path.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        node = if seg == "$ref" {
            resolve(root, node)?
        } else {
            match node {
                Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                Value::Object(m) => m.get(&seg)?,
                _ => return None,
            }
        };
    }
    Some(node)
}

/// The property names the failing schema allows, for "did you mean".
fn known_fields(e: &ValidationError<'_>) -> Vec<String> {
    // The schema path ends in `/additionalProperties`; its parent holds `properties`.
    let sp = e.schema_path().as_str();
    let parent = sp.strip_suffix("/additionalProperties").unwrap_or(sp);
    let mut names: Vec<String> = schema_at(parent)
        .and_then(|n| resolve(&SPEC_SCHEMA, n))
        .and_then(|n| n.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => root.pointer(r.trim_start_matches('#')),
        None => Some(node),
    }
}

fn suggestion(field: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&field.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        other => other.to_string(),
    }
}
