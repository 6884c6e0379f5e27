//! The checked-in CRD is exactly what the types generate, and the cluster's schema accepts
//! every manifest `validate` accepts.

use proptest::prelude::*;
use serde_json::Value;

const CRD_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/mailmigration.yaml");

#[test]
fn checked_in_crd_is_fresh() {
    let on_disk = std::fs::read_to_string(CRD_PATH).expect("crds/mailmigration.yaml exists");
    assert!(
        on_disk == mailshift::crd::crd_yaml(),
        "crds/mailmigration.yaml is stale: run `cargo run -- crd > crds/mailmigration.yaml`"
    );
}

#[test]
fn crd_has_the_promised_shape() {
    let crd: Value = serde_yaml::from_str(&mailshift::crd::crd_yaml()).unwrap();
    assert_eq!(crd["spec"]["group"], "mailshift.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "mm");
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Phase", "Synced", "Total", "Copied%", "Next", "Age"]);
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(required, ["destination", "source"]);
    let port = &spec["properties"]["source"]["properties"]["imap"]["properties"]["port"];
    assert_eq!(port["minimum"].as_f64(), Some(1.0));
    assert_eq!(port["maximum"].as_f64(), Some(65535.0));
    assert!(
        spec["properties"]["policy"]["description"]
            .as_str()
            .unwrap()
            .contains("observe")
    );
}

/// The CRD's openAPIV3Schema as a JSON Schema: OpenAPI's `nullable: true` becomes a `null`
/// type alternative; the `x-kubernetes-*` extensions are ignored by the validator.
fn cluster_validator() -> jsonschema::Validator {
    fn nullable(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.remove("nullable") == Some(Value::Bool(true)) {
                    let inner = Value::Object(std::mem::take(m));
                    m.insert(
                        "anyOf".into(),
                        serde_json::json!([inner, { "type": "null" }]),
                    );
                }
                m.values_mut().for_each(nullable);
            }
            Value::Array(a) => a.iter_mut().for_each(nullable),
            _ => {}
        }
    }
    let crd: Value = serde_yaml::from_str(&mailshift::crd::crd_yaml()).unwrap();
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    nullable(&mut schema);
    jsonschema::validator_for(&schema).expect("the CRD schema compiles")
}

fn example_documents() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            out.push((f.display().to_string(), v));
        }
    }
    out
}

#[test]
fn cluster_schema_accepts_every_example() {
    let validator = cluster_validator();
    let docs = example_documents();
    assert!(docs.len() >= 3);
    for (file, doc) in docs {
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
}

/// A random change somewhere in a document: a leaf replaced, a key removed or added.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Add(usize, String, Value),
}

fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..70000).prop_map(Value::from),
        "[a-z0-9.:@ -]{0,12}".prop_map(Value::String),
        Just(serde_json::json!({"env": "X"})),
        Just(serde_json::json!([])),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), leaf_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), "[a-zA-Z]{1,10}", leaf_value())
            .prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
    ]
}

/// Paths (JSON pointers) of every node under `spec`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut ps = Vec::new();
    pointers(&doc["spec"], "/spec".into(), &mut ps);
    let pick = |i: usize| ps[i % ps.len()].clone();
    match m {
        Mutation::Replace(i, v) => {
            if let Some(n) = doc.pointer_mut(&pick(*i)) {
                *n = v.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = pick(*i);
            if let Some((parent, key)) = p.rsplit_once('/')
                && let Some(Value::Object(m)) = doc.pointer_mut(parent)
            {
                m.remove(&key.replace("~1", "/").replace("~0", "~"));
            }
        }
        Mutation::Add(i, k, v) => {
            if let Some(Value::Object(m)) = doc.pointer_mut(&pick(*i)) {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever `validate` accepts, the API server's schema accepts too.
    #[test]
    fn cluster_accepts_what_validate_accepts(
        which in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let docs = example_documents();
        let (_, mut doc) = docs[which % docs.len()].clone();
        for m in &muts {
            apply(&mut doc, m);
        }
        let text = serde_yaml::to_string(&doc).unwrap();
        let loaded = mailshift::manifest::load_text("mutated.yaml", &text, Default::default());
        if !loaded.has_errors() {
            let errors: Vec<String> = cluster_validator().iter_errors(&doc).map(|e| e.to_string()).collect();
            prop_assert!(errors.is_empty(), "validate accepted but the CRD refuses: {errors:?}\n{text}");
        }
    }
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::{Command, Stdio};
    // `mailshift crd | head -0`: the reader is gone before the first write.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailshift"))
        .arg("crd")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "as if ended by SIGPIPE");
}
