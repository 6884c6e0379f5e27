//! Any text given as a manifest is either loaded or refused with findings that point into
//! it; never a panic, a hang or unbounded memory (libFuzzer's -timeout and -rss_limit_mb
//! catch the last two).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailshift::manifest::{LoadOptions, load_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines as YAML counts them: a lone CR ends a line too.
    let lines = text.matches('\n').count() + text.matches('\r').count()
        - text.matches("\r\n").count()
        + 1;
    for strict in [false, true] {
        let loaded = load_text("fuzz.yaml", text, LoadOptions { strict });
        for f in &loaded.findings {
            assert_eq!(f.file, "fuzz.yaml");
            // Every finding points at a line of the text.
            assert!(f.line >= 1 && f.line <= lines, "{f}");
        }
        if !loaded.has_errors() {
            // What loaded can be written out again (status, CRD tooling and `plan` do).
            for m in &loaded.migrations {
                serde_json::to_string(m).expect("a loaded manifest serializes");
            }
        }
    }
});
