//! Finding the layer files and folding them into one tree.
//!
//! Precedence, lowest to highest: `default`, `{run_mode}`, `local`, each as
//! `.yaml` or `.yml`. Missing files are skipped; none at all is an error.
//! [`merge`] is the fold: maps merge key by key, recursively; anything else
//! (a list, a scalar, a null) from the higher layer replaces the lower value
//! whole. A higher `key: null` therefore removes a lower layer's value.
//!
//! One exception makes typed sections layer well: when both maps have a
//! `type` key and the values differ, the higher map replaces the lower one.
//! `production.yaml` can then switch `registry` from `oci-client-auth` to
//! `ecr` without inheriting keys that only the old type knows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfigError, Origin};
use super::yaml::{Kind, Node};

/// One file's text, labelled as it will appear in errors.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: Arc<str>,
    pub text: String,
}

/// The layer names in precedence order, lowest first.
pub(crate) fn layer_names(run_mode: &str) -> Vec<&str> {
    let mut names = vec!["default"];
    // `--run-mode default` or `local` must not load one file twice.
    if run_mode != "default" && run_mode != "local" {
        names.push(run_mode);
    }
    names.push("local");
    names
}

/// Checks a run mode before it becomes part of a file name, so that
/// `--run-mode ../../etc/x` cannot read outside the config dir.
pub(crate) fn check_run_mode(run_mode: &str) -> Result<(), String> {
    let ok = !run_mode.is_empty()
        && run_mode
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "run mode `{}` must be lower-case letters, digits, `-` or `_` (it names a file)",
            run_mode.escape_default()
        ))
    }
}

/// Reads the layer files that exist, lowest precedence first.
///
/// # Errors
/// A bad run mode, a missing or unreadable config dir, a layer present as
/// both `.yaml` and `.yml`, or no layer file at all.
pub(crate) fn read_sources(dir: &Path, run_mode: &str) -> Result<Vec<Source>, Vec<ConfigError>> {
    let dir_origin = Origin {
        file: Arc::from(dir.display().to_string()),
        line: None,
    };
    let fail = |msg: String, hint: Option<String>| {
        let mut e = ConfigError::new(dir_origin.clone(), "", msg);
        e.hint = hint;
        vec![e]
    };
    check_run_mode(run_mode).map_err(|m| fail(m, None))?;
    if !dir.is_dir() {
        return Err(fail(
            "the config directory does not exist".into(),
            Some("pass `--config-dir DIR` or set RISE_CONFIG_DIR".into()),
        ));
    }
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for name in layer_names(run_mode) {
        let candidates: Vec<PathBuf> = ["yaml", "yml"]
            .iter()
            .map(|ext| dir.join(format!("{name}.{ext}")))
            .filter(|p| p.is_file())
            .collect();
        match candidates.as_slice() {
            [] => {}
            [path] => match std::fs::read_to_string(path) {
                Ok(text) => sources.push(Source {
                    file: Arc::from(path.display().to_string()),
                    text,
                }),
                Err(e) => errors.push(ConfigError::new(
                    Origin {
                        file: Arc::from(path.display().to_string()),
                        line: None,
                    },
                    "",
                    format!("cannot read the file: {e}"),
                )),
            },
            _ => errors.push(
                ConfigError::new(
                    dir_origin.clone(),
                    "",
                    format!("both `{name}.yaml` and `{name}.yml` exist"),
                )
                .with_hint("keep one of them; which one wins would be a guess"),
            ),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if sources.is_empty() {
        let expected = layer_names(run_mode)
            .iter()
            .map(|n| format!("{n}.yaml"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(fail(
            format!("no configuration file found (looked for {expected})"),
            Some("pass `--config-dir DIR` or set RISE_CONFIG_DIR".into()),
        ));
    }
    // A run mode without its file would silently run on the defaults (a
    // typo such as `prod` for `production` would serve development's
    // settings in production): an error that lists the modes there are.
    let middle = layer_names(run_mode).len() == 3;
    let has_own_file = ["yaml", "yml"]
        .iter()
        .any(|ext| dir.join(format!("{run_mode}.{ext}")).is_file());
    if middle && !has_own_file {
        let modes = run_modes(dir);
        let known: Vec<&str> = modes.iter().map(String::as_str).collect();
        let hint = match super::reader::did_you_mean(run_mode, &known) {
            Some(near) => format!(
                "did you mean `{near}`? run modes here: {}",
                known.join(", ")
            ),
            None if known.is_empty() => format!(
                "create `{run_mode}.yaml`, or pass --run-mode default to run on default.yaml alone"
            ),
            None => format!("run modes here: {}", known.join(", ")),
        };
        return Err(fail(
            format!("run mode `{run_mode}` has no file (`{run_mode}.yaml`)"),
            Some(hint),
        ));
    }
    Ok(sources)
}

/// The run modes `dir` has a file for, sorted: every `NAME.yaml`/`.yml`
/// but `default` and `local`.
pub(crate) fn run_modes(dir: &Path) -> Vec<String> {
    let mut modes: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))?;
            (stem != "default" && stem != "local" && check_run_mode(stem).is_ok())
                .then(|| stem.to_string())
        })
        .collect();
    modes.sort();
    modes.dedup();
    modes
}

/// Folds `higher` onto `lower`; see the module docs for the rule.
pub fn merge(lower: Node, higher: Node) -> Node {
    let type_changes = matches!(
        (lower.get("type"), higher.get("type")),
        (Some(a), Some(b)) if a.kind != b.kind
    );
    match (lower.kind, higher.kind) {
        (Kind::Map(mut base), Kind::Map(over)) if !type_changes => {
            for (key, value) in over {
                match base.iter().position(|(k, _)| k.name == key.name) {
                    Some(i) => {
                        let (_, old) = base.remove(i);
                        base.insert(i, (key, merge(old, value)));
                    }
                    None => base.push((key, value)),
                }
            }
            Node {
                kind: Kind::Map(base),
                origin: higher.origin,
            }
        }
        (_, kind) => Node {
            kind,
            origin: higher.origin,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse;
    use super::*;

    fn node(file: &str, text: &str) -> Node {
        parse(&Arc::from(file), text).unwrap()
    }

    #[test]
    fn maps_merge_deeply_and_the_rest_replaces() {
        let low = node("d.yaml", "a: {x: 1, y: 2}\nlist: [1, 2, 3]\ns: low\n");
        let high = node("l.yaml", "a: {y: 3, z: 4}\nlist: [9]\n");
        let merged = merge(low, high);
        let expected = node("x.yaml", "a: {x: 1, y: 3, z: 4}\nlist: [9]\ns: low\n");
        assert_eq!(
            format!("{:?}", strip(&merged)),
            format!("{:?}", strip(&expected))
        );
    }

    #[test]
    fn merged_values_keep_the_origin_of_the_layer_that_set_them() {
        let merged = merge(
            node("d.yaml", "a:\n  x: 1\n  y: 2\n"),
            node("l.yaml", "a:\n  y: 3\n"),
        );
        let a = merged.get("a").unwrap();
        assert_eq!(a.get("x").unwrap().origin.to_string(), "d.yaml:2");
        assert_eq!(a.get("y").unwrap().origin.to_string(), "l.yaml:2");
    }

    #[test]
    fn a_map_whose_type_changes_is_replaced() {
        let low = node(
            "d.yaml",
            "registry: {type: oci-client-auth, registry_url: x, namespace: n}\n",
        );
        let high = node("p.yaml", "registry: {type: ecr, region: us-east-1}\n");
        let merged = merge(low, high);
        assert_eq!(
            strip(merged.get("registry").unwrap()),
            "{type:ecr,region:us-east-1}"
        );
        let same = merge(
            node("d.yaml", "registry: {type: ecr, region: a}\n"),
            node("p.yaml", "registry: {type: ecr, account_id: b}\n"),
        );
        assert_eq!(
            strip(same.get("registry").unwrap()),
            "{type:ecr,region:a,account_id:b}"
        );
    }

    #[test]
    fn a_higher_null_removes_a_lower_value() {
        let merged = merge(
            node("d.yaml", "irsa: {namespace: x}\n"),
            node("l.yaml", "irsa: null\n"),
        );
        assert_eq!(merged.get("irsa").unwrap().kind, Kind::Null);
    }

    #[test]
    fn run_modes_cannot_escape_the_config_dir() {
        assert!(check_run_mode("production").is_ok());
        for bad in ["../x", "a/b", "", "Prod", "a.b"] {
            assert!(check_run_mode(bad).is_err(), "{bad}");
        }
        assert_eq!(layer_names("default"), ["default", "local"]);
        assert_eq!(layer_names("staging"), ["default", "staging", "local"]);
    }

    #[test]
    fn a_run_mode_without_its_file_is_an_error_naming_the_modes_there_are() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "default.yaml",
            "development.yaml",
            "production.yml",
            "local.yaml",
        ] {
            std::fs::write(dir.path().join(f), "{}\n").unwrap();
        }
        assert_eq!(run_modes(dir.path()), ["development", "production"]);
        let e = read_sources(dir.path(), "prod").unwrap_err();
        assert_eq!(e[0].message, "run mode `prod` has no file (`prod.yaml`)");
        assert_eq!(
            e[0].hint.as_deref(),
            Some("did you mean `production`? run modes here: development, production")
        );
        let e = read_sources(dir.path(), "idp").unwrap_err();
        assert_eq!(
            e[0].hint.as_deref(),
            Some("run modes here: development, production")
        );
        assert_eq!(read_sources(dir.path(), "production").unwrap().len(), 3);
        // `default` runs on default.yaml (and local.yaml) alone.
        assert_eq!(read_sources(dir.path(), "default").unwrap().len(), 2);
    }

    /// The tree without origins, for comparing values only.
    fn strip(n: &Node) -> String {
        match &n.kind {
            Kind::Null => "~".into(),
            Kind::Scalar(s) => s.clone(),
            Kind::Seq(items) => format!(
                "[{}]",
                items.iter().map(strip).collect::<Vec<_>>().join(",")
            ),
            Kind::Map(e) => format!(
                "{{{}}}",
                e.iter()
                    .map(|(k, v)| format!("{}:{}", k.name, strip(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}
