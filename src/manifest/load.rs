//! From text to typed `MailMigration`s, or findings that say exactly what is wrong where.

use std::path::{Path as FsPath, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::positions::{Path, index_documents};
use super::{Finding, Issue, Severity, schema};
use crate::spec::{self, MailMigration};

/// How strictly manifests are judged.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions {
    /// Warnings about unsafe practice (inline secrets) become errors.
    pub strict: bool,
}

/// The outcome of loading one file: the migrations it declares and what was found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub file: String,
    pub migrations: Vec<MailMigration>,
    pub findings: Vec<Finding>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The migrations, or every error if there is one.
    pub fn into_result(self) -> Result<Vec<MailMigration>, super::InvalidManifest> {
        if self.has_errors() {
            Err(super::InvalidManifest(self.findings))
        } else {
            Ok(self.migrations)
        }
    }
}

/// Load the manifests at `path`: a file, a directory (every `.yaml`/`.yml` file below it,
/// in name order) or `-` for standard input.
pub fn load_path(path: &str, opts: LoadOptions) -> Vec<Loaded> {
    if path == "-" {
        return vec![match crate::files::read_limited(
            std::io::stdin(),
            MAX_MANIFEST_BYTES,
            "<stdin>",
        ) {
            Ok(text) => load_text("<stdin>", &text, opts),
            Err(e) => unreadable("<stdin>", &e),
        }];
    }
    let p = FsPath::new(path);
    if p.is_dir() {
        let mut files = Vec::new();
        collect_yaml(p, &mut files);
        if files.is_empty() {
            return vec![Loaded {
                file: path.to_owned(),
                findings: vec![at_file(
                    path,
                    Severity::Error,
                    "directory holds no .yaml or .yml files",
                )],
                ..Loaded::default()
            }];
        }
        return files
            .iter()
            .map(|f| load_file(&f.to_string_lossy(), opts))
            .collect();
    }
    vec![load_file(path, opts)]
}

fn collect_yaml(dir: &FsPath, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_yaml(&e, out);
        } else if matches!(e.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
            out.push(e);
        }
    }
}

/// Load one manifest file.
pub fn load_file(path: &str, opts: LoadOptions) -> Loaded {
    match crate::files::read_text(FsPath::new(path), MAX_MANIFEST_BYTES) {
        Ok(text) => load_text(path, &text, opts),
        Err(e) => unreadable(path, &e),
    }
}

/// The largest manifest file read. A migration of thousands of mailboxes lists them in a
/// `mailboxesFrom` file, not inline; the limit keeps a stray huge file from costing
/// gigabytes in the parser and the position index.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The deepest nesting of collections a manifest may have (its schema needs 6).
const MAX_DEPTH: usize = 64;
/// The longest line of a manifest.
const MAX_LINE: usize = 256 << 10;
/// Findings reported for one file; more are summarized in one.
const MAX_FINDINGS: usize = 200;

fn unreadable(file: &str, e: &std::io::Error) -> Loaded {
    Loaded {
        file: file.to_owned(),
        findings: vec![at_file(file, Severity::Error, &format!("cannot read: {e}"))],
        ..Loaded::default()
    }
}

fn at_file(file: &str, severity: Severity, message: &str) -> Finding {
    Finding {
        file: file.to_owned(),
        line: 1,
        column: 1,
        path: "(file)".into(),
        severity,
        message: message.to_owned(),
    }
}

/// Load every document of `text`; `file` names it in findings.
pub fn load_text(file: &str, text: &str, opts: LoadOptions) -> Loaded {
    let mut out = Loaded {
        file: file.to_owned(),
        ..Loaded::default()
    };
    // Editors on Windows write a byte order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(finding) = shape_limits(file, text) {
        out.findings.push(finding);
        return out;
    }
    let (indexes, syntax) = index_documents(text);
    let mut seen_any = false;
    for (n, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = indexes.get(n).cloned().unwrap_or_default();
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                let (line, column) = match (e.location(), &syntax) {
                    (Some(l), _) => (l.line(), l.column()),
                    (None, Some((p, _))) => (p.line, p.column),
                    (None, None) => (index.start.line, index.start.column),
                };
                out.findings.push(Finding {
                    file: file.to_owned(),
                    line,
                    column,
                    path: "(yaml)".into(),
                    severity: Severity::Error,
                    message: format!("YAML syntax: {}", strip_location(&e.to_string())),
                });
                // The parser cannot continue past broken syntax.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        seen_any = true;
        let mut issues = Vec::new();
        let migration = check_document(value, &mut issues, opts, FsPath::new(file));
        let first = out.findings.len();
        out.findings.extend(issues.into_iter().map(|i| {
            let at = match i.at_key {
                true => index
                    .key_pos(&i.path)
                    .unwrap_or_else(|| index.locate(&i.path)),
                false => index.locate(&i.path),
            };
            Finding {
                file: file.to_owned(),
                line: at.line,
                column: at.column,
                path: i.path.to_string(),
                severity: i.severity,
                message: i.message,
            }
        }));
        out.findings[first..].sort_by_key(|f| (f.line, f.column));
        out.migrations.extend(migration);
    }
    if !seen_any && out.findings.is_empty() {
        out.findings
            .push(at_file(file, Severity::Error, "no YAML document in file"));
    }
    if out.findings.len() > MAX_FINDINGS {
        let more = out.findings.len() - MAX_FINDINGS;
        out.findings.truncate(MAX_FINDINGS);
        let last = out.findings.last().map_or(1, |f| f.line);
        out.findings.push(Finding {
            line: last,
            ..at_file(
                file,
                Severity::Error,
                &format!("{more} more findings not shown: fix these first"),
            )
        });
    }
    out
}

/// A line too long or collections nested too deep, found before the YAML parser and the
/// position index (whose cost grows with both) see the text. Nesting is counted from flow
/// brackets outside quotes and from block indentation.
fn shape_limits(file: &str, text: &str) -> Option<Finding> {
    let at = |line: usize, message: String| Finding {
        line,
        ..at_file(file, Severity::Error, &message)
    };
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.len() > MAX_LINE {
            return Some(at(
                n,
                format!("line {n} is longer than {} KiB", MAX_LINE >> 10),
            ));
        }
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_DEPTH {
                        return Some(at(
                            n,
                            format!(
                                "collections nested deeper than {MAX_DEPTH} levels at line {n}"
                            ),
                        ));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        // Two columns per level is the narrowest indentation that nests.
        if indent / 2 > MAX_DEPTH {
            return Some(at(
                n,
                format!("collections nested deeper than {MAX_DEPTH} levels at line {n}"),
            ));
        }
    }
    None
}

/// serde_yaml appends " at line L column C" to its messages; the finding has its own.
fn strip_location(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

const TOP_LEVEL: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Check one document and return it typed if it is a valid MailMigration.
fn check_document(
    value: serde_yaml::Value,
    issues: &mut Vec<Issue>,
    opts: LoadOptions,
    file: &FsPath,
) -> Option<MailMigration> {
    let root = Path::root();
    let json: Value = match serde_json::to_value(&value) {
        Ok(j) => j,
        Err(e) => {
            issues.push(Issue::error(
                root,
                format!("not representable as JSON: {e}"),
            ));
            return None;
        }
    };
    let Value::Object(doc) = &json else {
        issues.push(Issue::error(
            root,
            "a manifest document must be a mapping with apiVersion, kind, metadata and spec",
        ));
        return None;
    };
    let kind = doc.get("kind").and_then(Value::as_str);
    match kind {
        None => {
            issues.push(Issue::error(
                root.key("kind"),
                format!("missing `kind`: expected {}", spec::KIND),
            ));
            return None;
        }
        // Another kind of this API group, or one spelled nearly like ours: a typo, not a
        // document for another tool to skip.
        Some(k)
            if k != spec::KIND
                && (doc
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| {
                        v.split('/').next() == spec::API_VERSION.split('/').next()
                    })
                    || strsim::damerau_levenshtein(
                        &k.to_lowercase(),
                        &spec::KIND.to_lowercase(),
                    ) <= 3) =>
        {
            issues.push(Issue::error(
                root.key("kind"),
                format!("unknown kind `{k}`: did you mean `{}`?", spec::KIND),
            ));
            return None;
        }
        Some(k) if k != spec::KIND => {
            issues.push(Issue {
                path: root.key("kind"),
                severity: Severity::Note,
                message: format!("skipped: a {k}, not a {}", spec::KIND),
                at_key: false,
            });
            return None;
        }
        Some(_) => {}
    }
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == spec::API_VERSION => {}
        Some(v) => issues.push(Issue::error(
            root.key("apiVersion"),
            format!("unknown apiVersion `{v}`: expected {}", spec::API_VERSION),
        )),
        None => issues.push(Issue::error(
            root.key("apiVersion"),
            format!("missing `apiVersion`: expected {}", spec::API_VERSION),
        )),
    }
    for key in doc.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            issues.push(
                Issue::error(
                    root.key(key.clone()),
                    format!(
                        "unknown top-level field `{key}` (expected {})",
                        TOP_LEVEL.join(", ")
                    ),
                )
                .at_key(),
            );
        }
    }
    if doc.contains_key("status") {
        issues.push(Issue::warning(
            root.key("status"),
            "status is written by mailshift; the one given here is ignored",
        ));
    }
    check_metadata(doc.get("metadata"), issues);
    let spec_path = root.key("spec");
    let Some(spec_value) = doc.get("spec") else {
        issues.push(Issue::error(root, "missing `spec`"));
        return None;
    };
    // Schema errors stop here: the semantic rules need the typed spec. Errors outside the
    // spec (metadata, apiVersion) do not, so that one run reports everything it can.
    let schema_issues = schema::check_spec(spec_value, &spec_path);
    if !schema_issues.is_empty() {
        issues.extend(schema_issues);
        return None;
    }
    let outside_spec_failed = issues.iter().any(|i| i.severity == Severity::Error);
    // Only the spec is typed here: metadata was checked above and status is ignored, so
    // neither can hide the spec's own findings.
    let mut typed = serde_json::json!({
        "apiVersion": spec::API_VERSION,
        "kind": spec::KIND,
        "metadata": {},
        "spec": spec_value,
    });
    if let (false, Some(meta @ Value::Object(_))) = (outside_spec_failed, doc.get("metadata")) {
        typed["metadata"] = meta.clone();
    }
    let migration: MailMigration = match serde_path_to_error::deserialize(typed) {
        Ok(m) => m,
        Err(e) => {
            let path = path_from_serde(e.path());
            issues.push(Issue::error(path, e.into_inner().to_string()));
            return None;
        }
    };
    let mut semantic = spec::semantic::check(&migration.spec, &spec_path, opts.strict);
    let resolver = crate::secrets::Resolver::for_manifest(file);
    if let Err(e) = crate::accounts::check_list_file(&migration.spec, &resolver) {
        semantic.push(Issue::error(
            spec_path.key("mailboxesFrom").key("file"),
            e.to_string(),
        ));
    }
    let failed = semantic.iter().any(|i| i.severity == Severity::Error);
    issues.extend(semantic);
    (!failed && !outside_spec_failed).then_some(migration)
}

fn path_from_serde(p: &serde_path_to_error::Path) -> Path {
    let mut out = Path::root();
    for seg in p.iter() {
        out = match seg {
            serde_path_to_error::Segment::Seq { index } => out.index(*index),
            serde_path_to_error::Segment::Map { key } => out.key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => out.key(variant.clone()),
            serde_path_to_error::Segment::Unknown => out,
        };
    }
    out
}

/// `metadata.name` and `metadata.namespace` must be names the API server accepts.
fn check_metadata(meta: Option<&Value>, issues: &mut Vec<Issue>) {
    let path = Path::root().key("metadata");
    let Some(Value::Object(meta)) = meta else {
        issues.push(Issue::error(path, "missing `metadata` with a `name`"));
        return;
    };
    match meta.get("name") {
        Some(Value::String(name)) => {
            if let Err(why) = dns_subdomain(name) {
                issues.push(Issue::error(path.key("name"), format!("`{name}` {why}")));
            }
        }
        Some(_) => issues.push(Issue::error(path.key("name"), "must be a string")),
        None => issues.push(Issue::error(path.clone(), "missing required field `name`")),
    }
    if let Some(ns) = meta.get("namespace") {
        match ns.as_str() {
            Some(ns) if ns.len() <= 63 && dns_subdomain(ns).is_ok() && !ns.contains('.') => {}
            _ => issues.push(Issue::error(
                path.key("namespace"),
                "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
            )),
        }
    }
}

/// RFC 1123 subdomain, as Kubernetes requires for object names.
fn dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    let ok = s.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if ok {
        Ok(())
    } else {
        Err(
            "is not a valid name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )
    }
}
