//! The docs against the code: every test a document names as proof exists,
//! so a renamed or removed test cannot leave a claim without its proof.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `file::…::test` references in `doc`: backticked paths of at least
/// two `::`-separated lowercase segments, optionally under `src/`.
fn test_references(doc: &str) -> Vec<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            let path = s.strip_prefix("src/").unwrap_or(s);
            path.split("::").count() >= 2
                && path.split("::").all(|seg| {
                    !seg.is_empty()
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                })
        })
        .map(str::to_string)
        .collect()
}

/// Whether `reference` names a test function in the file it points to:
/// `src/a::b::tests::t` in `src/a/b.rs`, `src/a/b/mod.rs` or a parent
/// module file; `area::t` in `tests/it/area.rs`.
fn test_exists(reference: &str) -> bool {
    let (dir, path) = match reference.strip_prefix("src/") {
        Some(p) => ("src", p),
        None => ("tests/it", reference),
    };
    let segments: Vec<&str> = path.split("::").collect();
    let name = segments[segments.len() - 1];
    let wanted = format!("fn {name}(");
    // The longest module path that is a file holds the test (inline
    // `mod tests` or a sibling test module file).
    (1..segments.len()).rev().any(|n| {
        let module = segments[..n].join("/");
        [format!("{module}.rs"), format!("{module}/mod.rs")]
            .iter()
            .map(|f| Path::new(ROOT).join(dir).join(f))
            .any(|f| std::fs::read_to_string(f).is_ok_and(|text| text.contains(&wanted)))
    })
}

#[test]
fn every_test_the_security_model_cites_exists() {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/security.md")).unwrap();
    let refs = test_references(&doc);
    assert!(refs.len() >= 30, "found only {refs:?}");
    let missing: Vec<&String> = refs.iter().filter(|r| !test_exists(r)).collect();
    assert!(
        missing.is_empty(),
        "docs/security.md cites tests that do not exist: {missing:?}"
    );
    // The checker itself finds nothing that is not there.
    assert!(!test_exists("serve::no_such_test"));
    assert!(!test_exists("src/policy::tests::no_such_test"));
}
