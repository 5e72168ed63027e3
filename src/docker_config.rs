//! The Docker CLI's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), which `login` writes and `doctor` reads:
//! where the Docker CLI would find credentials for a registry host (a
//! `credHelpers` entry for the host, the `credsStore` for every host, or
//! an `auths` entry), a login merged into the file with everything else
//! kept, and the file's atomic, private rewrite ([`write`], the only I/O
//! here).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::secret::Secret;

/// The file the Docker CLI reads, from `DOCKER_CONFIG` or `HOME`.
pub fn config_path(vars: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    if let Some(dir) = vars("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(std::path::Path::new(&dir).join("config.json"));
    }
    vars("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| std::path::Path::new(&h).join(".docker").join("config.json"))
}

/// What the config says about a host's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `auths` holds a login for the host (under this key).
    Auths(String),
    /// A credential helper is named for the host (`credHelpers`) or for
    /// every host (`credsStore`): `docker-credential-{name}`.
    Helper {
        name: String,
        key: &'static str,
    },
    Nothing,
}

/// The keys Docker files a host's login under: the host itself or a URL
/// of it (`https://host`, `https://host/v1/`, `http://host`).
fn matches_host(key: &str, host: &str) -> bool {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    bare.split('/').next() == Some(host)
}

/// Where credentials for `host` come from, in the Docker CLI's order: a
/// per-host helper, then the store, then `auths`.
pub fn credentials_for(config: &Value, host: &str) -> Source {
    let helper = config["credHelpers"].as_object().and_then(|helpers| {
        helpers
            .iter()
            .find(|(k, _)| matches_host(k, host))
            .and_then(|(_, v)| v.as_str())
    });
    if let Some(name) = helper {
        return Source::Helper {
            name: name.to_string(),
            key: "credHelpers",
        };
    }
    if let Some(store) = config["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return Source::Helper {
            name: store.to_string(),
            key: "credsStore",
        };
    }
    let found = config["auths"].as_object().and_then(|auths| {
        auths.iter().find(|(k, v)| {
            matches_host(k, host)
                && (v["auth"].as_str().is_some_and(|a| !a.is_empty())
                    || v["identitytoken"].as_str().is_some_and(|a| !a.is_empty()))
        })
    });
    match found {
        Some((key, _)) => Source::Auths(key.clone()),
        None => Source::Nothing,
    }
}

/// `config.json` with `registry`'s login in `auths`, replacing only that
/// entry: other registries, credential helpers and every other top-level
/// key stay as they were (keys come back sorted). No file yet is `{}`.
///
/// # Errors
/// When the existing text is not a JSON object, or its `auths` is not
/// one: login will not overwrite what it cannot read.
pub fn merge_docker_config(
    existing: Option<&str>,
    registry: &str,
    username: &str,
    password: &Secret<String>,
) -> Result<String, String> {
    let mut config = match existing.filter(|t| !t.trim().is_empty()) {
        None => json!({}),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?,
    };
    let Some(top) = config.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    let auths = top.entry("auths").or_insert_with(|| json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err("its `auths` is not a JSON object".into());
    };
    let auth = BASE64.encode(format!("{username}:{}", password.expose()));
    auths.insert(registry.to_string(), json!({ "auth": auth }));
    let mut text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// A note when the Docker CLI would not read the new entry: a credential
/// helper is named for the registry (or for all of them).
pub fn helper_note(merged: &str, registry: &str) -> Option<String> {
    let config: Value = serde_json::from_str(merged).ok()?;
    match credentials_for(&config, registry) {
        Source::Helper { name, key } => Some(format!(
            "note: the config's `{key}` names docker-credential-{name}, so the Docker CLI asks it for {registry} and not this entry; buildah, skopeo and kaniko read the entry"
        )),
        _ => None,
    }
}

/// Merges `registry`'s login into the file at `path` and replaces it atomically
/// (a temporary file in the same directory, renamed over it), mode 0600;
/// a missing directory is created 0700. Returns the merged text.
///
/// # Errors
/// An unreadable or unparseable existing file (left as it is), or a
/// failed write.
pub fn write(
    path: &Path,
    registry: &str,
    username: &str,
    password: &Secret<String>,
) -> Result<String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let merged = merge_docker_config(existing.as_deref(), registry, username, password)
    .map_err(|problem| {
        anyhow!(
            "{} is {problem}\n  hint: fix or move it; login does not overwrite a file it cannot read",
            path.display()
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        // A leftover of a crashed run with the same pid would make
        // `create_new` fail; it holds nothing worth keeping.
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(merged.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&temporary);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_path_follows_docker_config_then_home() {
        let vars = |k: &str| match k {
            "DOCKER_CONFIG" => Some("/etc/dc".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(
            config_path(&vars).unwrap(),
            std::path::Path::new("/etc/dc/config.json")
        );
        let home = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            config_path(&home).unwrap(),
            std::path::Path::new("/home/u/.docker/config.json")
        );
        assert_eq!(config_path(&|_| None), None);
    }

    #[test]
    fn helpers_come_before_auths_and_hosts_match_their_urls() {
        let auths = json!({"auths": {"https://localhost:5000/v1/": {"auth": "dTpw"}, "other:1": {"auth": "x"}}});
        assert_eq!(
            credentials_for(&auths, "localhost:5000"),
            Source::Auths("https://localhost:5000/v1/".into())
        );
        assert_eq!(credentials_for(&auths, "localhost:5001"), Source::Nothing);
        let empty = json!({"auths": {"localhost:5000": {}}});
        assert_eq!(credentials_for(&empty, "localhost:5000"), Source::Nothing);
        let helper = json!({"credHelpers": {"localhost:5000": "pass"}, "credsStore": "desktop",
            "auths": {"localhost:5000": {"auth": "x"}}});
        assert_eq!(
            credentials_for(&helper, "localhost:5000"),
            Source::Helper {
                name: "pass".into(),
                key: "credHelpers"
            }
        );
        assert_eq!(
            credentials_for(&helper, "r.example.com"),
            Source::Helper {
                name: "desktop".into(),
                key: "credsStore"
            }
        );
    }

    #[test]
    fn the_merge_replaces_one_entry_and_keeps_everything_else() {
        let existing = r#"{"auths": {"other:5000": {"auth": "b3RoZXI6eA=="}, "r:5000": {"auth": "old", "identitytoken": "old"}},
            "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"User-Agent": "ci"}, "psFormat": "table"}"#;
        let merged =
            merge_docker_config(Some(existing), "r:5000", "rise", &Secret::new("pw".into()))
                .unwrap();
        let v: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            v,
            json!({"auths": {"other:5000": {"auth": "b3RoZXI6eA=="}, "r:5000": {"auth": BASE64.encode("rise:pw")}},
                "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"User-Agent": "ci"}, "psFormat": "table"})
        );
        assert!(merged.ends_with("}\n"));
        let fresh = merge_docker_config(None, "r:5000", "AWS", &Secret::new("pw".into())).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&fresh).unwrap(),
            json!({"auths": {"r:5000": {"auth": BASE64.encode("AWS:pw")}}})
        );
        assert_eq!(
            merge_docker_config(Some(" \n"), "r", "u", &Secret::new("p".into())).unwrap(),
            fresh
                .replace("r:5000", "r")
                .replace(&BASE64.encode("AWS:pw"), &BASE64.encode("u:p"))
        );
        for (bad, problem) in [
            ("{", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"auths": []}"#, "its `auths` is not a JSON object"),
        ] {
            let e = merge_docker_config(Some(bad), "r", "u", &Secret::new("p".into())).unwrap_err();
            assert!(e.starts_with(problem), "{bad}: {e}");
        }
    }

    #[test]
    fn a_credential_helper_for_the_registry_earns_a_note() {
        let with_store = merge_docker_config(
            Some(r#"{"credsStore": "desktop"}"#),
            "r:5000",
            "u",
            &Secret::new("p".into()),
        )
        .unwrap();
        let note = helper_note(&with_store, "r:5000").unwrap();
        assert!(note.contains("docker-credential-desktop"), "{note}");
        let other_host = merge_docker_config(
            Some(r#"{"credHelpers": {"gcr.io": "gcloud"}}"#),
            "r:5000",
            "u",
            &Secret::new("p".into()),
        )
        .unwrap();
        assert_eq!(helper_note(&other_host, "r:5000"), None);
    }
}
