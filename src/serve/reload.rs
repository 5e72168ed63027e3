//! Config reload without a restart: what may change live, what may not,
//! and the swap itself.
//!
//! serve reloads on SIGHUP and when the config directory's files change
//! (`commands::serve` watches for both and loads the new config; an invalid
//! one never gets here). Then:
//! - [`plan`] (pure) compares the new config with the running one. Projects,
//!   access rules, `auth` (and so admins, issuer, audience, keys) apply
//!   live. `server` (listeners, TLS, connection limits, cache and rate
//!   limit settings) and `registry` (the provider and its AWS clients) are
//!   built once at start: a change there is reported as needing a restart,
//!   and the running values stay in effect, so what serves is always one
//!   consistent config.
//! - [`App::reload`] builds what the change needs (a new authenticator only
//!   when `auth` changed), swaps it in atomically (requests in flight finish
//!   on the config they started with; the next request sees the new one),
//!   renews the metrics' project set and drops cached credentials of
//!   removed projects.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::app::App;
use crate::config::Config;

/// What applying a new config means, from [`plan`].
#[derive(Debug)]
pub struct Change {
    /// The config to run: the new one, with the running `server` and
    /// `registry` kept.
    pub config: Config,
    /// Settings that differ but apply only after a restart, as key paths
    /// (`server.listen`, `registry.region`), sorted.
    pub restart_needed: Vec<String>,
    pub auth_changed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Who may now do what, and who no longer may: one line per list that
    /// changed (`auth.admins`, and each project's `access` and
    /// `pull_access`), its entries added (`+`) and removed (`-`).
    pub access: Vec<String>,
}

/// Compares `new` with `running`; see the module docs.
pub fn plan(running: &Config, mut new: Config) -> Change {
    let mut restart_needed = differing("server", &running.server, &new.server);
    restart_needed.extend(differing("registry", &running.registry, &new.registry));
    restart_needed.extend(differing(
        "controller",
        &running.controller,
        &new.controller,
    ));
    // The URL may be a secret, which serialises redacted: compare it whole.
    let store_url = |c: &Config| {
        c.store.as_ref().map(|s| match &s.url {
            crate::config::StoreUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            crate::config::StoreUrl::Postgres(u) => u.expose().clone(),
        })
    };
    if store_url(running) != store_url(&new) {
        restart_needed.push("store.url".to_string());
    }
    new.server = running.server.clone();
    new.registry = running.registry.clone();
    // The store and the controller are set up once, at start.
    new.store = running.store.clone();
    new.controller = running.controller.clone();
    // The secret serialises redacted: compare it on its own.
    let auth_changed = json(&running.auth) != json(&new.auth)
        || running.auth.hs256_secret != new.auth.hs256_secret;
    let names = |c: &Config| -> BTreeSet<String> {
        c.projects
            .iter()
            .map(|p| p.name.as_str().to_string())
            .collect()
    };
    let (before, after) = (names(running), names(&new));
    let access = access_changes(running, &new);
    Change {
        config: new,
        restart_needed,
        auth_changed,
        added: after.difference(&before).cloned().collect(),
        removed: before.difference(&after).cloned().collect(),
        access,
    }
}

/// The access lists of `running` and `new` compared entry by entry: the
/// admins, and per project its `access` and `pull_access` (a project added
/// or removed shows all its entries as added or removed).
fn access_changes(running: &Config, new: &Config) -> Vec<String> {
    fn entries<T: serde::Serialize>(list: &[T]) -> BTreeSet<String> {
        list.iter().map(|e| json(e).to_string()).collect()
    }
    // Every access list of a config, by its key path.
    let lists = |config: &Config| {
        let mut lists = std::collections::BTreeMap::new();
        lists.insert("auth.admins".to_string(), entries(&config.auth.admins));
        for p in &config.projects {
            lists.insert(format!("projects[{}].access", p.name), entries(&p.access));
            lists.insert(
                format!("projects[{}].pull_access", p.name),
                entries(&p.pull_access),
            );
        }
        lists
    };
    let (before, after) = (lists(running), lists(new));
    let none = BTreeSet::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (b, a) = (
                before.get(key).unwrap_or(&none),
                after.get(key).unwrap_or(&none),
            );
            let mut parts: Vec<String> = a.difference(b).map(|e| format!("+ {e}")).collect();
            parts.extend(b.difference(a).map(|e| format!("- {e}")));
            (!parts.is_empty()).then(|| format!("{key}: {}", parts.join(", ")))
        })
        .collect()
}

fn json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The key paths under `section` whose values differ, one level deep (a
/// registry whose `type` changed is reported as `registry.type`).
fn differing(
    section: &str,
    old: &impl serde::Serialize,
    new: &impl serde::Serialize,
) -> Vec<String> {
    let (old, new) = (json(old), json(new));
    if old == new {
        return Vec::new();
    }
    match (&old, &new) {
        (Value::Object(a), Value::Object(b)) => {
            if a.get("type") != b.get("type") {
                return vec![format!("{section}.type")];
            }
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| format!("{section}.{k}"))
                .collect()
        }
        _ => vec![section.to_string()],
    }
}

/// Why a reload was refused after the config itself loaded.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "auth changed, and the new authenticator cannot verify tokens of every issuer that verifies them now (no keys could be fetched for: {0})"
    )]
    NoKeys(String),
    #[error("setting up the new authenticator: {0:#}")]
    Auth(anyhow::Error),
}

impl App {
    /// Applies `new` (already loaded and validated): see the module docs.
    /// Returns the change made, `restart_needed` included.
    ///
    /// # Errors
    /// When the new `auth` cannot verify tokens where the running one can;
    /// the running config then stays.
    pub async fn reload(&self, new: Config) -> Result<Change, Refused> {
        let running = self.live();
        let change = plan(&running.base, new);
        let auth = if change.auth_changed {
            let auth = running
                .auth
                .reloaded(&change.config.auth)
                .await
                .map_err(Refused::Auth)?;
            let unready = auth.unready_issuers();
            // An issuer that verifies tokens now must still do so after the
            // reload: a key fetch failing at the wrong moment must not cut
            // off its callers until the next refresh.
            let lost: Vec<String> = unready
                .iter()
                .filter(|name| running.auth.is_ready(name))
                .cloned()
                .collect();
            if !lost.is_empty() || (!auth.ready() && running.auth.ready()) {
                let names = if lost.is_empty() { &unready } else { &lost };
                return Err(Refused::NoKeys(names.join(", ")));
            }
            if !unready.is_empty() {
                tracing::warn!(issuers = %unready.join(", "), "reloaded auth: no keys yet for these issuers; their tokens are refused until a fetch succeeds");
            }
            Arc::new(auth)
        } else {
            running.auth.clone()
        };
        {
            let _guard = self.rebuild_lock();
            let now = self.live();
            self.install(Arc::new(change.config.clone()), now.rows.clone(), auth);
        }
        self.metrics
            .set_restart_required(!change.restart_needed.is_empty());
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Source, load_sources};

    fn config(text: &str) -> Config {
        let sources = [Source {
            file: Arc::from("t.yaml"),
            text: text.into(),
        }];
        load_sources(&sources, &Arc::from("t"), &|_| None).unwrap()
    }

    const BASE: &str = "registry: {type: oci-client-auth, registry_url: 'localhost:5000'}\n\
        auth: {hs256_secret: 0123456789abcdef0123456789abcdef}\n\
        server: {listen: '127.0.0.1:3000'}\n";

    #[test]
    fn each_reload_names_the_access_it_grants_and_takes_away() {
        const REGISTRY: &str =
            "registry: {type: oci-client-auth, registry_url: 'localhost:5000'}\n";
        let with = |rest: &str| config(&[REGISTRY, rest].concat());
        let running = with(
            "projects: [{name: a, access: ['user:alice']}, {name: gone, access: ['user:x']}]\n\
             auth: {hs256_secret: 0123456789abcdef0123456789abcdef, admins: ['group:ops']}\n",
        );
        let new = with(
            "projects: [{name: a, access: ['user:bob'], pull_access: ['group:deploy']}]\n\
             auth: {hs256_secret: 0123456789abcdef0123456789abcdef, admins: ['group:ops', 'user:eve']}\n",
        );
        assert_eq!(
            plan(&running, new).access,
            [
                r#"auth.admins: + "user:eve""#,
                r#"projects[a].access: + "user:bob", - "user:alice""#,
                r#"projects[a].pull_access: + "group:deploy""#,
                r#"projects[gone].access: - "user:x""#,
            ]
        );
        let same = "projects: [{name: a, access: ['user:alice']}]\n\
                    auth: {hs256_secret: 0123456789abcdef0123456789abcdef}\n";
        assert!(plan(&with(same), with(same)).access.is_empty());
    }

    #[test]
    fn projects_and_access_apply_live_and_nothing_needs_a_restart() {
        let running = config(&format!(
            "{BASE}projects: [{{name: a}}, {{name: b, access: ['user:x']}}]\n"
        ));
        let change = plan(
            &running,
            config(&format!(
                "{BASE}projects: [{{name: b, access: ['user:y']}}, {{name: c}}]\n"
            )),
        );
        assert_eq!(change.added, ["c"]);
        assert_eq!(change.removed, ["a"]);
        assert!(change.restart_needed.is_empty());
        assert!(!change.auth_changed);
        assert_eq!(change.config.projects.len(), 2);
    }

    #[test]
    fn server_and_registry_changes_are_reported_and_the_running_values_kept() {
        let running = config(BASE);
        let change = plan(
            &running,
            config(
                "registry: {type: oci-client-auth, registry_url: 'other:5000'}\n\
                 auth: {hs256_secret: 0123456789abcdef0123456789abcdef}\n\
                 server: {listen: '127.0.0.1:3001', max_connections: 5}\n",
            ),
        );
        assert_eq!(
            change.restart_needed,
            [
                "server.listen",
                "server.max_connections",
                "registry.registry_url"
            ]
        );
        assert_eq!(change.config.server.listen.port(), 3000);
        assert_eq!(json(&change.config.registry), json(&running.registry));
        let to_ecr = plan(
            &running,
            config(
                "registry: {type: ecr, region: us-east-1, account_id: '123456789012', \
                 role_arn: 'arn:aws:iam::123456789012:role/a', push_role_arn: 'arn:aws:iam::123456789012:role/b'}\n\
                 auth: {hs256_secret: 0123456789abcdef0123456789abcdef}\n\
                 server: {listen: '127.0.0.1:3000'}\n",
            ),
        );
        assert_eq!(to_ecr.restart_needed, ["registry.type"]);
    }

    #[test]
    fn a_new_secret_is_an_auth_change_though_both_print_redacted() {
        let running = config(BASE);
        let change = plan(
            &running,
            config(&BASE.replace(
                "0123456789abcdef0123456789abcdef",
                "fedcba9876543210fedcba9876543210",
            )),
        );
        assert!(change.auth_changed);
        assert!(change.restart_needed.is_empty());
    }

    #[test]
    fn the_store_and_the_controller_need_a_restart() {
        let running = config(&format!(
            "{BASE}store: {{url: 'postgres://a:one@db/rise'}}\n"
        ));
        let change = plan(
            &running,
            config(&format!(
                "{BASE}store: {{url: 'postgres://a:two@db/rise'}}\ncontroller: {{enabled: true}}\n"
            )),
        );
        assert_eq!(change.restart_needed, ["controller.enabled", "store.url"]);
        assert!(
            !change.config.controller.enabled,
            "the running value is kept"
        );
        let Some(crate::config::StoreConfig {
            url: crate::config::StoreUrl::Postgres(url),
        }) = &change.config.store
        else {
            panic!("{:?}", change.config.store)
        };
        assert_eq!(url.expose(), "postgres://a:one@db/rise");
    }
}
