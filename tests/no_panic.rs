//! The manifest loader (and so `validate`) never panics, whatever it is given: it reports.

use proptest::prelude::*;

fn load(text: &str) {
    let loaded = mailshift::manifest::load_text("fuzz.yaml", text, Default::default());
    for f in &loaded.findings {
        assert!(f.line >= 1 && f.column >= 1, "positions are 1-based: {f}");
    }
}

/// Arbitrary YAML-shaped values, rendered by serde_yaml.
fn yaml_value() -> impl Strategy<Value = serde_yaml::Value> {
    let leaf = prop_oneof![
        Just(serde_yaml::Value::Null),
        any::<bool>().prop_map(serde_yaml::Value::Bool),
        any::<i64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        any::<f64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        any::<String>().prop_map(serde_yaml::Value::String),
        prop::sample::select(vec![
            "spec",
            "source",
            "imap",
            "host",
            "port",
            "mailboxes",
            "address",
            "dns",
            "mx",
            "kind",
            "MailMigration",
            "apiVersion",
            "mailshift.io/v1alpha1",
            "metadata",
            "name",
        ])
        .prop_map(|s| serde_yaml::Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_yaml::Value::Sequence),
            prop::collection::vec((inner.clone(), inner), 0..6)
                .prop_map(|kv| serde_yaml::Value::Mapping(kv.into_iter().collect())),
        ]
    })
}

const EXAMPLE: &str = include_str!("../examples/whole-domain-gateway.yaml");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        load(&text);
    }

    #[test]
    fn arbitrary_yaml_structures_never_panic(v in yaml_value(), wrap in any::<bool>()) {
        let v = if wrap {
            serde_yaml::to_value(serde_json::json!({
                "apiVersion": "mailshift.io/v1alpha1",
                "kind": "MailMigration",
                "metadata": {"name": "x"},
            })).map(|mut base| { base["spec"] = v; base }).unwrap()
        } else { v };
        if let Ok(text) = serde_yaml::to_string(&v) {
            load(&text);
        }
    }

    /// Damage a real manifest: cut bytes out, splice garbage in, at random places.
    #[test]
    fn damaged_manifests_never_panic(
        cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..20, "[ :\\-\\[\\]{}#&*!|>'\"%@`\n\t]{0,4}"), 1..5)
    ) {
        let mut text = EXAMPLE.to_owned();
        for (at, len, insert) in cuts {
            let start = at.index(text.len().max(1)).min(text.len());
            let mut s = start;
            while !text.is_char_boundary(s) { s -= 1; }
            let mut e = (s + len).min(text.len());
            while !text.is_char_boundary(e) { e -= 1; }
            text.replace_range(s..e, &insert);
        }
        load(&text);
    }
}

/// Found by `cargo fuzz` (fuzz/): lone carriage returns end lines in YAML, and findings
/// count them so (as editors do), never pointing past the text.
#[test]
fn lone_carriage_returns_count_as_line_breaks_in_findings() {
    let text = "apiVersion: mailshift.io/v1alpha1\rkind: MailMigration\r\r\r\r- not a mapping\r";
    let loaded = mailshift::manifest::load_text("cr.yaml", text, Default::default());
    assert!(loaded.has_errors());
    let yaml_lines = text.matches('\r').count() + 1;
    for f in &loaded.findings {
        assert!(f.line >= 1 && f.line <= yaml_lines, "{f}");
    }
}
