//! GitOps health: Argo CD's health check for MailMigration (`deploy/argocd/health.lua`) run
//! under Lua 5.1, the dialect of gopher-lua that Argo CD embeds, against the cases in
//! `deploy/argocd/health_test.yaml` (Argo CD's own layout for health-check tests). Every
//! sample must also be a MailMigration the controller could have written (it deserializes
//! into the crate's type).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use mailshift::spec::MailMigration;
use serde::Deserialize as _;
use serde_json::Value;

/// `value` as a Lua table constructor (JSON null becomes an absent key, as Argo CD does).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the health check on `obj`: (status, message).
fn health(script: &str, obj: &Value) -> Result<(String, String)> {
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua(obj)
    );
    let out = Command::new("lua5.1")
        .args(["-e", &program])
        .output()
        .context("running lua5.1 (scripts/install-deps.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "health.lua failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    Ok((status.to_owned(), message.to_owned()))
}

#[test]
fn argocd_health_check_reads_every_sample_status_right() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd");
    let script = std::fs::read_to_string(dir.join("health.lua"))?;
    let cases: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml"))?)?;
    let cases = cases["tests"].as_array().context("tests: a list")?;
    assert!(cases.len() >= 6);
    let mut statuses = std::collections::BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().context("inputPath")?;
        let text = std::fs::read_to_string(dir.join(input))?;
        let _: MailMigration = serde_yaml::from_str(&text)
            .with_context(|| format!("{input} is not a MailMigration"))?;
        let obj: Value = serde_yaml::from_str(&text)?;
        let (status, message) = health(&script, &obj)?;
        let want = &case["healthStatus"];
        assert_eq!(
            status,
            want["status"].as_str().unwrap_or_default(),
            "{input}"
        );
        assert_eq!(
            message,
            want["message"].as_str().unwrap_or_default(),
            "{input}"
        );
        statuses.insert(status);
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing", "Suspended"],
        "every health Argo CD can show is covered"
    );
    Ok(())
}

/// The image and the Deployment agree: the user the pod must run as, the port probed, and a
/// Rust new enough for the crate.
#[test]
fn containerfile_matches_the_deployment() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let containerfile = std::fs::read_to_string(root.join("Containerfile"))?;
    let instruction = |name: &str| -> Vec<String> {
        containerfile
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(str::to_owned)
            .collect()
    };
    let deployment = std::fs::read_to_string(root.join("deploy/deployment.yaml"))?;
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&deployment)
        .map(|d| serde_yaml::Value::deserialize(d).map(serde_json::to_value))
        .collect::<Result<Result<_, _>, _>>()??;
    let deploy = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .context("a Deployment")?;
    let pod = &deploy["spec"]["template"]["spec"];
    let uid = pod["securityContext"]["runAsUser"]
        .as_u64()
        .context("runAsUser")?;
    assert_eq!(instruction("USER"), [format!("{uid}:{uid}")]);
    let port = pod["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .context("containerPort")?;
    assert_eq!(instruction("EXPOSE"), [port.to_string()]);
    assert_eq!(instruction("CMD"), ["[\"controller\"]"]);

    let from = instruction("FROM");
    let rust = from[0]
        .strip_prefix("docker.io/library/rust:")
        .and_then(|t| t.split('-').next())
        .context("a rust build stage first")?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let wanted = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .context("rust-version")?
        .trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    assert!(
        version(rust) >= version(wanted),
        "the image's Rust {rust} is older than rust-version {wanted}"
    );
    Ok(())
}
