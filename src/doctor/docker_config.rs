//! Where the Docker CLI would find credentials for a registry host, from
//! its `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): a `credHelpers` entry for the host, the
//! `credsStore` for every host, or an `auths` entry. Pure: the caller
//! reads the file and runs a helper.

use serde_json::Value;

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
}
