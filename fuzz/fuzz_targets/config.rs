//! Configuration loading: up to three layers of arbitrary text (split at
//! 0xFF bytes) through YAML parsing, merging, `${VAR}` substitution and the
//! schema. Nothing may panic; whatever loads must render back to YAML; and
//! substitution alone must leave text without `$` unchanged.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rise_registry::config::{Source, load_sources, substitute};

/// Variables starting with `A` are set (to a value that itself looks like a
/// reference, which must not be expanded again); all others are unset.
fn env(name: &str) -> Option<String> {
    name.starts_with('A').then(|| "${B}$$".to_string())
}

fuzz_target!(|data: &[u8]| {
    let names = ["default.yaml", "development.yaml", "local.yaml"];
    let sources: Vec<Source> = data
        .split(|b| *b == 0xFF)
        .take(3)
        .zip(names)
        .map(|(bytes, name)| Source {
            file: Arc::from(name),
            text: String::from_utf8_lossy(bytes).into_owned(),
        })
        .collect();
    for source in &sources {
        match substitute(&source.text, &env) {
            Ok(out) if !source.text.contains('$') => assert_eq!(out, source.text),
            _ => {}
        }
    }
    if let Ok(config) = load_sources(&sources, &Arc::from("config"), &env) {
        serde_yaml::to_string(&config).expect("a loaded config renders");
    }
});
