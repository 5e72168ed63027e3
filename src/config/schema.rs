//! The merged tree → a typed [`Config`], collecting every problem on the way:
//! one reader per section, written in the machinery of [`super::reader`].
//!
//! Hand-written instead of `#[derive(Deserialize)]` because serde stops at
//! the first error and knows no lines; here every field is read even after
//! one failed, unknown keys get a did-you-mean hint, and each error carries
//! the file, line and key path of the value it is about. Names spliced into
//! ARNs and policies are parsed by [`crate::naming`]'s newtypes; other
//! values by [`super::values`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::{ConfigError, Origin, Problem};
use super::model::*;
use super::reader::{MapReader, Reader, did_you_mean, join};
use super::values::{http_url, issuer_name, jwks_url, socket_addr, tag_text, token_name};
use super::yaml::{Kind, Node};
use crate::access::claims::{ClaimPattern, MAX_CONDITION_BYTES, WorkloadRule};
use crate::naming::{
    AccountId, K8sName, OidcProviderArn, Principal, PrincipalArn, ProjectName, Region,
    RegistryHost, RepoNamespace, RepoPrefix, RoleArn,
};
use crate::repository_settings::{ConfigKind, Values, either};
use crate::roles::{
    ROLE_INLINE_POLICIES_MAX_CHARS, TRUST_POLICY_MAX_CHARS, TemplateVars, policy_chars,
    role_documents,
};
use crate::secret::Secret;
use crate::tags::{
    MAX_TAG_VALUE_CHARS, MAX_TAGS_PER_RESOURCE, RESERVED_REPOSITORY_TAGS, encode_tag_keys,
};
use serde_json::Value;

/// Minimum HS256 key length: RFC 7518 §3.2 asks for a key at least as long
/// as the hash output (256 bits).
pub(crate) const MIN_HS256_SECRET_BYTES: usize = 32;

/// Reads the whole configuration. `dir` locates problems that belong to no
/// file, such as a missing top-level section.
pub(crate) fn read_config(root: &Node, dir: &Origin) -> Result<Config, Vec<ConfigError>> {
    let mut r = Reader {
        config_dir: std::path::PathBuf::from(&*dir.file),
        ..Reader::default()
    };
    let config = r.config(root, dir);
    match config {
        Some(config) if r.errors.is_empty() => Ok(config),
        _ => Err(r.errors),
    }
}

const REGISTRY_TYPES: &[&str] = &["ecr", "oci-client-auth", "oci-token"];

/// The keys the reader of registry type `ty` knows: what it asks of an
/// empty `registry` map (its problems there are thrown away).
fn registry_keys(ty: &str) -> Vec<&'static str> {
    let empty = Node::empty_map(Origin {
        file: Arc::from(""),
        line: None,
    });
    let mut scratch = Reader::default();
    if let Some(mut m) = scratch.map(&empty, "registry") {
        m.get("type");
        scratch.registry_of_type(ty, m);
    }
    scratch.asked
}

/// Explains `key`, unknown for registry type `this`, when another registry
/// type knows it.
fn other_registry_type(this: &str, key: &str) -> Option<String> {
    REGISTRY_TYPES
        .iter()
        .filter(|t| **t != this)
        .find(|t| registry_keys(t).contains(&key))
        .map(|other| format!("`{key}` belongs to registry type `{other}`, not `{this}`"))
}

impl Reader {
    fn principals(&mut self, node: &Node, path: &str) -> Option<Vec<Principal>> {
        self.list(node, path, |r, n, p| r.scalar(n, p, Principal::parse))
    }

    fn config(&mut self, root: &Node, dir: &Origin) -> Option<Config> {
        let mut m = self.map(root, "")?;
        // Top-level keys are missing from every file, not from one map.
        m.origin = dir.clone();
        let registry = self.required(&mut m, "registry", Self::registry);
        let projects = self
            .optional(&mut m, "projects", Self::projects)
            .unwrap_or_default();
        let auth = self.required(&mut m, "auth", Self::auth);
        let server_node = m.get("server");
        let server = self.server(server_node, dir);
        let store = self.optional(&mut m, "store", Self::store).flatten();
        let controller = self
            .optional(&mut m, "controller", Self::controller)
            .unwrap_or_default();
        if controller.enabled && store.is_none() {
            let origin = m.origin_of("controller");
            self.push(
                &origin,
                "controller.enabled",
                Problem::new("the controller needs `store`: the lease that picks one leader among replicas lives there")
                    .hint("set `store.url` (`sqlite:PATH` for one process), or run `apply` instead"),
            );
        }
        self.finish(m);

        if let Some(auth) = &auth {
            self.rule_issuer_checks(auth);
        }
        let registry = registry?;
        if let (RegistryConfig::Ecr(ecr), Some(server)) = (&registry, &server) {
            let floor = server.credential_cache.min_remaining_seconds;
            if floor >= ecr.session_duration_seconds {
                self.push(
                    &server_node.map_or_else(|| dir.clone(), |n| n.origin.clone()),
                    "server.credential_cache.min_remaining_seconds",
                    Problem::new(format!(
                        "{floor} s is not below registry.session_duration_seconds ({} s): no credential could ever be served from the cache",
                        ecr.session_duration_seconds
                    )),
                );
            }
        }
        if let RegistryConfig::Ecr(ecr) = &registry {
            for (project, origin, name_path) in &projects {
                if let Err(e) = ecr.repo_prefix.repository_name(&project.name) {
                    self.push(origin, name_path, e.into());
                }
            }
        }
        let mut config = Config {
            registry,
            projects: projects.into_iter().map(|(p, _, _)| p).collect(),
            auth: auth?,
            server: server?,
            store,
            controller,
            project_index: Default::default(),
        };
        config.index_projects();
        Some(config)
    }

    /// `controller: {enabled, interval_seconds, lease_seconds}`.
    fn controller(&mut self, node: &Node, path: &str) -> Option<ControllerConfig> {
        let mut m = self.map(node, path)?;
        let d = ControllerConfig::default();
        let enabled = self
            .optional(&mut m, "enabled", Self::bool)
            .unwrap_or(d.enabled);
        let interval_seconds = self
            .optional(&mut m, "interval_seconds", |r, n, p| {
                r.uint(n, p, 10, 86_400)
            })
            .unwrap_or(d.interval_seconds);
        let lease_seconds = self
            .optional(&mut m, "lease_seconds", |r, n, p| r.uint(n, p, 5, 600))
            .unwrap_or(d.lease_seconds);
        self.finish(m);
        Some(ControllerConfig {
            enabled,
            interval_seconds,
            lease_seconds,
        })
    }

    /// `store: {url}`. An empty URL (`${RISE_STORE_URL:-}` with the
    /// variable unset) means no store, so one file serves installs with
    /// and without one.
    fn store(&mut self, node: &Node, path: &str) -> Option<Option<StoreConfig>> {
        let mut m = self.map(node, path)?;
        let url = self.required(&mut m, "url", |r, n, p| {
            let written = r.scalar(n, p, |s| Ok::<_, Problem>(s.trim().to_string()))?;
            if written.is_empty() {
                return Some(None);
            }
            if let Some(file) = written.strip_prefix("sqlite:") {
                let file = file.strip_prefix("//").unwrap_or(file);
                if file.is_empty() || file.starts_with(':') {
                    r.push(
                        &n.origin,
                        p,
                        Problem::new("a SQLite store is a file: `sqlite:PATH`").hint(
                            "an in-memory database would lose every project at the next start",
                        ),
                    );
                    return None;
                }
                let path = std::path::Path::new(file);
                let path = if path.is_relative() {
                    r.config_dir.join(path)
                } else {
                    path.to_path_buf()
                };
                return Some(Some(StoreUrl::Sqlite(path)));
            }
            if written.starts_with("postgres://") || written.starts_with("postgresql://") {
                return Some(Some(StoreUrl::Postgres(Secret::new(written))));
            }
            // The value may be a URL with a password: the message must not
            // repeat it.
            r.push(
                &n.origin,
                p,
                Problem::new("expected `sqlite:PATH` or a `postgres://` URL").hint(
                    "set RISE_STORE_URL, or leave the URL empty to keep projects in config only",
                ),
            );
            None
        });
        self.finish(m);
        Some(url.flatten().map(|url| StoreConfig { url }))
    }

    /// Every workload rule names a configured issuer.
    fn rule_issuer_checks(&mut self, auth: &AuthConfig) {
        let known: Vec<&str> = auth.issuers().map(|i| i.name()).collect();
        for (name, origin, path) in std::mem::take(&mut self.rule_issuers) {
            if auth.issuer_named(&name).is_some() {
                continue;
            }
            let hint = match did_you_mean(&name, &known) {
                Some(near) => format!("did you mean `{near}`?"),
                None if known.is_empty() => "list the issuer in `auth.issuers`".to_string(),
                None => format!("configured issuers: {}", known.join(", ")),
            };
            self.push(
                &origin,
                &path,
                Problem::new(format!("no issuer named `{name}` in `auth`")).hint(hint),
            );
        }
        // A public issuer signs for every customer of its CI service: a
        // rule of its must say whose pipelines it admits.
        for (rule, origin, path) in std::mem::take(&mut self.rules) {
            let public = auth
                .issuer_named(&rule.issuer)
                .is_some_and(|i| !i.private());
            if public && !rule.pins_tenant() {
                self.push(
                    &origin,
                    &path,
                    Problem::new(format!(
                        "this rule does not say whose pipelines it admits: `{}` signs tokens for every customer of its CI service, so it would admit other customers' jobs",
                        rule.issuer
                    ))
                    .hint(format!(
                        "pin one of {} exactly in `claims` (or in `claims_like` with a pattern that fixes the owner, such as `acme/*`); if `{}` is an issuer of your own, say `private: true` in its `auth.issuers` entry",
                        crate::access::claims::TENANT_CLAIMS.join(", "),
                        rule.issuer
                    )),
                );
            }
        }
    }

    fn registry(&mut self, node: &Node, path: &str) -> Option<RegistryConfig> {
        let mut m = self.map(node, path)?;
        let ty = self.required(&mut m, "type", |r, n, p| r.string(n, p));
        let Some(ty) = ty else {
            if let Some(last) = self.errors.last_mut() {
                last.hint = Some(format!("one of: {}", REGISTRY_TYPES.join(", ")));
            }
            return None;
        };
        if !REGISTRY_TYPES.contains(&ty.as_str()) {
            let origin = m.origin_of("type");
            let hint = match did_you_mean(&ty, REGISTRY_TYPES) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("one of: {}", REGISTRY_TYPES.join(", ")),
            };
            self.push(
                &origin,
                &m.child("type"),
                Problem::new(format!("unknown registry type `{ty}`")).hint(hint),
            );
            return None;
        }
        self.registry_of_type(&ty, m)
    }

    /// The rest of a `registry` map whose `type` (one of
    /// [`REGISTRY_TYPES`]) was read.
    fn registry_of_type(&mut self, ty: &str, m: MapReader<'_>) -> Option<RegistryConfig> {
        match ty {
            "ecr" => self.ecr(m).map(|c| RegistryConfig::Ecr(Box::new(c))),
            "oci-client-auth" => self.oci_client_auth(m).map(RegistryConfig::OciClientAuth),
            "oci-token" => self
                .oci_token(m)
                .map(|c| RegistryConfig::OciToken(Box::new(c))),
            _ => None,
        }
    }

    fn ecr(&mut self, mut m: MapReader<'_>) -> Option<EcrConfig> {
        let region = self.required(&mut m, "region", |r, n, p| r.scalar(n, p, Region::parse));
        let account_id = self.required(&mut m, "account_id", |r, n, p| {
            r.scalar(n, p, AccountId::parse)
        });
        let repo_prefix = match m.get("repo_prefix") {
            Some(n) => {
                let p = m.child("repo_prefix");
                self.scalar(n, &p, RepoPrefix::parse)
            }
            None => Some(RepoPrefix::parse("rise/").expect("the default prefix is valid")),
        };
        let role_arn = self.required(&mut m, "role_arn", Self::role_arn);
        let push_role_arn = self.required(&mut m, "push_role_arn", Self::role_arn);
        let auto_remove = self
            .optional(&mut m, "auto_remove", Self::bool)
            .unwrap_or(false);
        let manage_roles = self
            .optional(&mut m, "manage_roles", Self::bool)
            .unwrap_or(true);
        let max_deletions = self
            .optional(&mut m, "max_deletions", |r, n, p| {
                r.uint(n, p, 0, 1_000_000)
            })
            .unwrap_or(5);
        let endpoint_url =
            self.optional(&mut m, "endpoint_url", |r, n, p| r.scalar(n, p, http_url));
        let repository = self.repository_settings(&mut m);
        let tags = self
            .optional(&mut m, "tags", Self::tags)
            .unwrap_or_default();
        let irsa = self.optional(&mut m, "irsa", Self::irsa);
        let trusted_principals = self
            .optional(&mut m, "trusted_principals", |r, n, p| {
                r.list(n, p, |r, n, p| r.scalar(n, p, PrincipalArn::parse))
            })
            .unwrap_or_default();
        let session_duration_seconds = self
            .optional(&mut m, "session_duration_seconds", |r, n, p| {
                r.uint(n, p, 900, 3600)
            })
            .unwrap_or(3600);
        let aws_rates = self
            .optional(&mut m, "aws_rates", Self::aws_rates)
            .unwrap_or_default();

        // Cross-field rules, reported at the value that breaks them.
        if let (Some(account), Some(region)) = (&account_id, &region) {
            for key in ["role_arn", "push_role_arn"] {
                let arn = if key == "role_arn" {
                    &role_arn
                } else {
                    &push_role_arn
                };
                let Some(arn) = arn else { continue };
                let origin = m.origin_of(key);
                let path = m.child(key);
                if arn.account() != account.as_str() {
                    self.push(
                        &origin,
                        &path,
                        Problem::new(format!(
                            "the role is in account {}, but account_id is {account}",
                            arn.account()
                        )),
                    );
                }
                if arn.partition() != region.partition() {
                    self.push(
                        &origin,
                        &path,
                        Problem::new(format!(
                            "the role is in partition `{}`, but region {region} is in `{}`",
                            arn.partition(),
                            region.partition()
                        )),
                    );
                }
            }
            if let Some(irsa) = &irsa {
                let expected = format!("arn:{}:iam::{account}:oidc-provider/", region.partition());
                if !irsa.oidc_provider_arn.as_str().starts_with(&expected) {
                    self.push(
                        &m.origin_of("irsa"),
                        &m.child("irsa.oidc_provider_arn"),
                        Problem::new(format!(
                            "the OIDC provider must be in account {account} (`{expected}…`)"
                        )),
                    );
                }
            }
        }
        if let (Some(a), Some(b)) = (&role_arn, &push_role_arn)
            && a == b
        {
            self.push(
                &m.origin_of("push_role_arn"),
                &m.child("push_role_arn"),
                Problem::new("push_role_arn must differ from role_arn")
                    .hint("the two-role setup separates managing repositories from pushing"),
            );
        }
        // Built before the unknown-key check, which must run either way.
        let ecr = (move || {
            Some(EcrConfig {
                region: region?,
                account_id: account_id?,
                repo_prefix: repo_prefix?,
                role_arn: role_arn?,
                push_role_arn: push_role_arn?,
                auto_remove,
                max_deletions,
                manage_roles,
                endpoint_url,
                repository,
                tags,
                irsa,
                trusted_principals,
                session_duration_seconds,
                aws_rates,
            })
        })();
        if let Some(ecr) = &ecr {
            self.policy_quotas(ecr, &m);
        }
        self.finish_with(m, |k| other_registry_type("ecr", k));
        ecr
    }

    /// `registry.aws_rates`: each operation's `{per_second, burst}`.
    fn aws_rates(&mut self, node: &Node, path: &str) -> Option<AwsRates> {
        let mut m = self.map(node, path)?;
        let defaults = AwsRates::default();
        let get_authorization_token = self
            .optional(&mut m, "get_authorization_token", |r, n, p| {
                r.rate(n, p, defaults.get_authorization_token)
            })
            .unwrap_or(defaults.get_authorization_token);
        let assume_role = self
            .optional(&mut m, "assume_role", |r, n, p| {
                r.rate(n, p, defaults.assume_role)
            })
            .unwrap_or(defaults.assume_role);
        self.finish(m);
        Some(AwsRates {
            get_authorization_token,
            assume_role,
        })
    }

    /// One `{per_second, burst}`, each defaulting to `default`'s.
    fn rate(&mut self, node: &Node, path: &str, default: Rate) -> Option<Rate> {
        let mut c = self.map(node, path)?;
        let per_second = self.optional(&mut c, "per_second", |r, n, p| r.uint(n, p, 1, 100_000));
        let burst = self.optional(&mut c, "burst", |r, n, p| r.uint(n, p, 1, 100_000));
        self.finish(c);
        Some(Rate {
            per_second: per_second.unwrap_or(default.per_second),
            burst: burst.unwrap_or(default.burst),
        })
    }

    /// IAM's size quotas, checked on the rendered documents so that apply
    /// never meets `LimitExceeded` halfway: each trust policy within
    /// [`TRUST_POLICY_MAX_CHARS`] (too many `trusted_principals` is the
    /// only way past it, so the error says how many fit), and each role's
    /// inline policies within [`ROLE_INLINE_POLICIES_MAX_CHARS`].
    fn policy_quotas(&mut self, ecr: &EcrConfig, m: &MapReader<'_>) {
        // A template that does not render is a bug, reported by plan.
        let longest_trust = |ecr: &EcrConfig| {
            role_documents(&TemplateVars::from_config(ecr))
                .ok()
                .map(|d| policy_chars(&d.controller_trust).max(policy_chars(&d.push_trust)))
        };
        let Ok(docs) = role_documents(&TemplateVars::from_config(ecr)) else {
            return;
        };
        let trust = policy_chars(&docs.controller_trust).max(policy_chars(&docs.push_trust));
        if trust > TRUST_POLICY_MAX_CHARS {
            // The longest first part of the list that fits, found by
            // halving (the size grows with each principal).
            let fits = |k: usize| {
                let mut fewer = ecr.clone();
                fewer.trusted_principals.truncate(k);
                longest_trust(&fewer).is_some_and(|n| n <= TRUST_POLICY_MAX_CHARS)
            };
            let (mut lo, mut hi) = (0, ecr.trusted_principals.len());
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if fits(mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            self.push(
                &m.origin_of("trusted_principals"),
                &m.child("trusted_principals"),
                Problem::new(format!(
                    "with {} trusted principals a trust policy renders to {trust} characters, and IAM allows {TRUST_POLICY_MAX_CHARS}: {} of them fit",
                    ecr.trusted_principals.len(),
                    lo
                ))
                .hint("trust an account root or a role that those principals assume instead of each one; the quota can be raised to 4096 in Service Quotas, which rise-registry does not read"),
            );
        }
        for (key, policy) in [
            ("repo_prefix", &docs.controller_policy),
            ("repo_prefix", &docs.push_policy),
        ] {
            let chars = policy_chars(policy);
            if chars > ROLE_INLINE_POLICIES_MAX_CHARS {
                self.push(
                    &m.origin_of(key),
                    &m.child(key),
                    Problem::new(format!(
                        "a role's inline policy renders to {chars} characters, and IAM allows {ROLE_INLINE_POLICIES_MAX_CHARS} per role"
                    )),
                );
            }
        }
    }

    /// Each managed repository setting under its config key, checked as
    /// its [`ConfigKind`] says; a missing or invalid one takes its default
    /// (an invalid one is reported, so the config is refused anyway).
    fn repository_settings(&mut self, m: &mut MapReader<'_>) -> Values {
        Values::from_fn(|setting| {
            let read = match setting.config_kind() {
                ConfigKind::Bool => self
                    .optional(m, setting.names().config, Self::bool)
                    .map(Value::from),
                ConfigKind::OneOf(words) => self.optional(m, setting.names().config, |r, n, p| {
                    r.scalar(n, p, |s| {
                        if words.contains(&s) {
                            Ok(Value::from(s))
                        } else {
                            Err(Problem::new(format!(
                                "expected {}, found `{s}`",
                                either(words)
                            )))
                        }
                    })
                }),
                ConfigKind::Count { min, max } => self
                    .optional(m, setting.names().config, |r, n, p| r.uint(n, p, min, max))
                    .map(Value::from),
            };
            read.unwrap_or_else(|| setting.default())
        })
    }

    fn role_arn(&mut self, node: &Node, path: &str) -> Option<RoleArn> {
        self.scalar(node, path, RoleArn::parse)
    }

    fn tags(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let Kind::Map(entries) = &node.kind else {
            self.map(node, path);
            return None;
        };
        let mut tags = BTreeMap::new();
        for (key, value) in entries {
            let p = join(path, &key.name);
            let k = &key.name;
            if k.is_empty() {
                self.push(
                    &key.origin,
                    &p,
                    Problem::new("tag keys are 1 to 128 characters"),
                );
            } else if let Err(problem) = tag_text("key", k, 128) {
                self.push(&key.origin, &p, problem);
            } else if k.starts_with("rise:") || k.to_lowercase().starts_with("aws:") {
                self.push(
                    &key.origin,
                    &p,
                    Problem::new(format!(
                        "tag key `{k}` uses a reserved prefix (`rise:` is managed here, `aws:` by AWS)"
                    )),
                );
            }
            let value = match &value.kind {
                Kind::Null => Some(String::new()),
                _ => self.scalar(value, &p, |s| {
                    tag_text("value", s, MAX_TAG_VALUE_CHARS).map(|()| s.to_string())
                }),
            };
            if let Some(v) = value {
                tags.insert(k.clone(), v);
            }
        }
        // AWS allows 50 tags on a repository or role; rise-registry adds
        // its own beside these.
        let room = MAX_TAGS_PER_RESOURCE - RESERVED_REPOSITORY_TAGS;
        if entries.len() > room {
            self.push(
                &node.origin,
                path,
                Problem::new(format!(
                    "{} tags; at most {room} fit, since AWS allows {MAX_TAGS_PER_RESOURCE} per repository and rise-registry adds rise:managed, rise:project, rise:orphaned and rise:tag-keys",
                    entries.len()
                )),
            );
        } else if let Some(record) = encode_tag_keys(tags.keys())
            && record.chars().count() > MAX_TAG_VALUE_CHARS
        {
            self.push(
                &node.origin,
                path,
                Problem::new(format!(
                    "the tag keys take {} characters in the rise:tag-keys record, which holds at most {MAX_TAG_VALUE_CHARS} (a tag value)",
                    record.chars().count()
                ))
                .hint("use fewer or shorter tag keys; the record is how rise-registry knows which tags it may remove"),
            );
        }
        Some(tags)
    }

    fn irsa(&mut self, node: &Node, path: &str) -> Option<IrsaConfig> {
        let mut m = self.map(node, path)?;
        let oidc_provider_arn = self.required(&mut m, "oidc_provider_arn", |r, n, p| {
            r.scalar(n, p, OidcProviderArn::parse)
        });
        let namespace = self
            .optional(&mut m, "namespace", |r, n, p| {
                r.scalar(n, p, K8sName::parse)
            })
            .unwrap_or_else(|| K8sName::parse("rise-system").expect("the default is a name"));
        let service_account = self
            .optional(&mut m, "service_account", |r, n, p| {
                r.scalar(n, p, K8sName::parse)
            })
            .unwrap_or_else(|| K8sName::parse("rise-backend").expect("the default is a name"));
        self.finish(m);
        Some(IrsaConfig {
            oidc_provider_arn: oidc_provider_arn?,
            namespace,
            service_account,
        })
    }

    fn oci_client_auth(&mut self, mut m: MapReader<'_>) -> Option<OciClientAuthConfig> {
        let registry_url = self.required(&mut m, "registry_url", |r, n, p| {
            r.scalar(n, p, RegistryHost::parse)
        });
        let namespace = self.optional(&mut m, "namespace", |r, n, p| {
            r.scalar(n, p, RepoNamespace::parse)
        });
        self.finish_with(m, |k| other_registry_type("oci-client-auth", k));
        Some(OciClientAuthConfig {
            registry_url: registry_url?,
            namespace,
        })
    }

    fn oci_token(&mut self, mut m: MapReader<'_>) -> Option<OciTokenConfig> {
        let registry_url = self.required(&mut m, "registry_url", |r, n, p| {
            r.scalar(n, p, RegistryHost::parse)
        });
        let namespace = self.required(&mut m, "namespace", |r, n, p| {
            r.scalar(n, p, RepoNamespace::parse)
        });
        let service = self.required(&mut m, "service", |r, n, p| r.scalar(n, p, token_name));
        let issuer = self.required(&mut m, "issuer", |r, n, p| r.scalar(n, p, token_name));
        let signing_key_file = self.required(&mut m, "signing_key_file", Self::config_path);
        let certificate_chain_file =
            self.required(&mut m, "certificate_chain_file", Self::config_path);
        let ticket_ttl_seconds = self
            .optional(&mut m, "ticket_ttl_seconds", |r, n, p| {
                r.uint(n, p, 60, 43_200)
            })
            .unwrap_or(3600);
        let token_ttl_seconds = self
            .optional(&mut m, "token_ttl_seconds", |r, n, p| {
                r.uint(n, p, 60, 3600)
            })
            .unwrap_or(300);
        self.finish_with(m, |k| other_registry_type("oci-token", k));
        Some(OciTokenConfig {
            registry_url: registry_url?,
            namespace: namespace?,
            service: service?,
            issuer: issuer?,
            signing_key_file: signing_key_file?,
            certificate_chain_file: certificate_chain_file?,
            ticket_ttl_seconds,
            token_ttl_seconds,
        })
    }

    /// Projects with the origin and key path of their name, for later
    /// cross-checks.
    fn projects(&mut self, node: &Node, path: &str) -> Option<Vec<(Project, Origin, String)>> {
        let projects = self.list(node, path, |r, n, p| {
            let mut m = r.map(n, p)?;
            let name = r.required(&mut m, "name", |r, n, p| r.scalar(n, p, ProjectName::parse));
            let access = r
                .optional(&mut m, "access", Self::access_rules)
                .unwrap_or_default();
            let pull_access = r
                .optional(&mut m, "pull_access", Self::access_rules)
                .unwrap_or_default();
            let origin = m.origin_of("name");
            let name_path = m.child("name");
            r.finish(m);
            let project = Project {
                name: name?,
                access,
                pull_access,
            };
            Some((project, origin, name_path))
        })?;
        let mut seen: BTreeMap<&ProjectName, &Origin> = BTreeMap::new();
        for (project, origin, name_path) in &projects {
            if let Some(first) = seen.insert(&project.name, origin) {
                let problem = Problem::new(format!("duplicate project `{}`", project.name))
                    .hint(format!("first declared at {first}"));
                self.push(origin, name_path, problem);
            }
        }
        Some(projects)
    }

    /// A project's `access` or `pull_access`: principals (`user:…`,
    /// `group:…`) and workload rules (maps).
    fn access_rules(&mut self, node: &Node, path: &str) -> Option<Vec<AccessRule>> {
        self.list(node, path, |r, n, p| match &n.kind {
            Kind::Map(_) => r.workload_rule(n, p).map(AccessRule::Workload),
            _ => r.scalar(n, p, Principal::parse).map(AccessRule::Principal),
        })
    }

    /// `{issuer: NAME, claims: {…}, claims_like: {…}}`. The issuer's name
    /// is checked against `auth` once that is read ([`Self::config`]).
    fn workload_rule(&mut self, node: &Node, path: &str) -> Option<WorkloadRule> {
        let mut m = self.map(node, path)?;
        let issuer = self.required(&mut m, "issuer", Self::string);
        let errors_before = self.errors.len();
        let claims = self
            .optional(&mut m, "claims", |r, n, p| {
                r.conditions(n, p, |v| Ok(v.to_string()))
            })
            .unwrap_or_default();
        let claims_like = self
            .optional(&mut m, "claims_like", |r, n, p| {
                r.conditions(n, p, ClaimPattern::parse)
            })
            .unwrap_or_default();
        let conditions_failed = self.errors.len() > errors_before;
        let origin = m.origin.clone();
        let issuer_origin = m.origin_of("issuer");
        self.finish(m);
        let issuer = issuer?;
        self.rule_issuers
            .push((issuer.clone(), issuer_origin, join(path, "issuer")));
        if conditions_failed {
            // Reported already; a rule short of a broken condition must not
            // be kept, nor reported again as having none.
            return None;
        }
        match WorkloadRule::new(issuer, claims, claims_like) {
            Ok(rule) => {
                self.rules.push((rule.clone(), origin, path.to_string()));
                Some(rule)
            }
            Err(message) => {
                self.push(
                    &origin,
                    path,
                    Problem::new(message).hint(
                        "add a condition such as `claims: {repository: acme/my-app, ref: refs/heads/main}`",
                    ),
                );
                None
            }
        }
    }

    /// A map of claim name → one value or a list of values, each parsed by
    /// `parse`.
    fn conditions<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<BTreeMap<String, Vec<T>>> {
        let Kind::Map(entries) = &node.kind else {
            self.map(node, path);
            return None;
        };
        let mut out = BTreeMap::new();
        for (key, value) in entries {
            let p = join(path, &key.name);
            if key.name.is_empty() || key.name.len() > MAX_CONDITION_BYTES {
                self.push(
                    &key.origin,
                    &p,
                    Problem::new(format!("a claim name is 1 to {MAX_CONDITION_BYTES} bytes")),
                );
                continue;
            }
            let one = |r: &mut Self, n: &Node, p: &str| {
                r.scalar(n, p, |s| {
                    if s.is_empty() || s.len() > MAX_CONDITION_BYTES {
                        Err(Problem::new(format!(
                            "a claim value is 1 to {MAX_CONDITION_BYTES} bytes"
                        )))
                    } else {
                        parse(s).map_err(Problem::new)
                    }
                })
            };
            let values = match &value.kind {
                Kind::Seq(_) => self.list(value, &p, one),
                _ => one(self, value, &p).map(|v| vec![v]),
            };
            match values {
                Some(v) if v.is_empty() => self.push(
                    &value.origin,
                    &p,
                    Problem::new("lists no value, so it can never hold"),
                ),
                Some(v) => {
                    out.insert(key.name.clone(), v);
                }
                None => {}
            }
        }
        Some(out)
    }

    /// An entry of `auth.issuers`.
    fn issuer_entry(&mut self, node: &Node, path: &str) -> Option<(IssuerConfig, Origin)> {
        let mut m = self.map(node, path)?;
        let name = self.required(&mut m, "name", |r, n, p| r.scalar(n, p, issuer_name));
        let has_jwks_url = m.has("jwks_url");
        let issuer = self.required(&mut m, "issuer", |r, n, p| {
            // Without `jwks_url` the keys are found from the issuer URL, so
            // it is held to the rules of a key URL.
            if has_jwks_url {
                r.string(n, p)
            } else {
                r.scalar(n, p, jwks_url)
            }
        });
        let audience = self.required(&mut m, "audience", |r, n, p| match &n.kind {
            Kind::Seq(items) if items.is_empty() => {
                r.push(&n.origin, p, Problem::new("lists no audience"));
                None
            }
            Kind::Seq(_) => r.list(n, p, Self::string),
            _ => r.string(n, p).map(|a| vec![a]),
        });
        let jwks = self.optional(&mut m, "jwks_url", |r, n, p| r.scalar(n, p, jwks_url));
        let algorithms = self
            .optional(&mut m, "algorithms", |r, n, p| {
                let list = r.list(n, p, |r, n, p| {
                    r.scalar(n, p, |s| match s {
                        "RS256" => Ok(JwtAlgorithm::RS256),
                        "ES256" => Ok(JwtAlgorithm::ES256),
                        _ => Err(Problem::new(format!("`{s}` is not RS256 or ES256")).hint(
                            "an issuer of auth.issuers signs with RS256 or ES256; a shared secret (HS256) belongs in auth.hs256_secret",
                        )),
                    })
                })?;
                if matches!(&n.kind, Kind::Seq(items) if items.is_empty()) {
                    r.push(&n.origin, p, Problem::new("lists no algorithm"));
                    return None;
                }
                Some(list)
            })
            .unwrap_or_else(|| vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
        let leeway_seconds = self
            .optional(&mut m, "leeway_seconds", |r, n, p| r.uint(n, p, 0, 300))
            .unwrap_or(30);
        let principals = self
            .optional(&mut m, "principals", Self::bool)
            .unwrap_or(false);
        let groups_claim = self
            .optional(&mut m, "groups_claim", Self::string)
            .unwrap_or_else(|| "groups".into());
        let private = self
            .optional(&mut m, "private", Self::bool)
            .unwrap_or(false);
        let origin = m.origin_of("name");
        self.finish(m);
        Some((
            IssuerConfig {
                name: name?,
                issuer: issuer?,
                audience: audience?,
                jwks_url: jwks,
                algorithms,
                leeway_seconds,
                principals,
                groups_claim,
                private,
            },
            origin,
        ))
    }

    fn auth(&mut self, node: &Node, path: &str) -> Option<AuthConfig> {
        let mut m = self.map(node, path)?;
        let issuer = self.optional(&mut m, "issuer", Self::string);
        let audience = self.optional(&mut m, "audience", Self::string);
        let hs256_secret = self.optional(&mut m, "hs256_secret", |r, n, p| {
            r.scalar(n, p, |s| {
                if s.len() < MIN_HS256_SECRET_BYTES {
                    Err(Problem::new(format!(
                        "the HS256 secret is {} bytes; it needs at least {MIN_HS256_SECRET_BYTES}",
                        s.len()
                    ))
                    .hint("generate one with `openssl rand -base64 48`"))
                } else {
                    Ok(Secret::new(s.to_string()))
                }
            })
        });
        let jwks_url = self.optional(&mut m, "jwks_url", |r, n, p| r.scalar(n, p, jwks_url));
        let groups_claim = self
            .optional(&mut m, "groups_claim", Self::string)
            .unwrap_or_else(|| "groups".into());
        let admins = self
            .optional(&mut m, "admins", Self::principals)
            .unwrap_or_default();
        let project_managers = self
            .optional(&mut m, "project_managers", Self::access_rules)
            .unwrap_or_default();
        let jwks_min_refresh_seconds = self
            .optional(&mut m, "jwks_min_refresh_seconds", |r, n, p| {
                r.uint(n, p, 1, 86_400)
            })
            .unwrap_or(30);
        let allow_unverified_email = self
            .optional(&mut m, "allow_unverified_email", Self::bool)
            .unwrap_or(false);
        let max_token_lifetime_seconds = self
            .optional(&mut m, "max_token_lifetime_seconds", |r, n, p| {
                r.uint(n, p, 60, 31_622_400)
            })
            .unwrap_or(86_400);
        let issuers = self
            .optional(&mut m, "issuers", |r, n, p| {
                r.list(n, p, Self::issuer_entry)
            })
            .unwrap_or_default();
        let single = m.has("hs256_secret") || m.has("jwks_url");
        if !single && !m.has("issuers") {
            self.push(
                &m.origin,
                path,
                Problem::new("auth needs a key source to verify tokens with").hint(
                    "set `hs256_secret`, `jwks_url`, or both, or list trusted issuers in `issuers`",
                ),
            );
        }
        let single_iss = single.then(|| issuer.clone()).flatten();
        self.issuer_cross_checks(&issuers, single, single_iss.as_deref(), path);
        if !single {
            // The single-issuer keys describe an issuer only with a key
            // source: alone, they would silently do nothing.
            for key in [
                "issuer",
                "audience",
                "groups_claim",
                "allow_unverified_email",
            ] {
                if m.has(key) {
                    self.push(
                        &m.origin_of(key),
                        &m.child(key),
                        Problem::new(format!(
                            "`{key}` has no effect without `hs256_secret` or `jwks_url`"
                        ))
                        .hint("it belongs to the single-issuer keys; for an entry of `issuers`, set it there"),
                    );
                }
            }
        }
        // A provider's JWKS (Google's, Entra's) signs tokens for every
        // application of every customer: without both checks, any of them
        // would be accepted here.
        if m.has("jwks_url") {
            for key in ["issuer", "audience"] {
                if !m.has(key) {
                    self.push(
                        &m.origin_of("jwks_url"),
                        &m.child(key),
                        Problem::new(format!(
                            "missing `{key}`: it is required when tokens are verified with `jwks_url`"
                        ))
                        .hint(format!(
                            "a JWKS signs tokens for every application of its provider; `{key}` says which are meant for rise-registry"
                        )),
                    );
                }
            }
        }
        self.finish(m);
        Some(AuthConfig {
            issuer,
            audience,
            hs256_secret,
            jwks_url,
            groups_claim,
            admins,
            project_managers,
            jwks_min_refresh_seconds,
            allow_unverified_email,
            max_token_lifetime_seconds,
            issuers: issuers.into_iter().map(|(i, _)| i).collect(),
        })
    }

    /// Issuer names and `iss` values are unique across `auth.issuers` and
    /// the single-issuer keys: a token's `iss` must pick one issuer, and a
    /// rule's `issuer` must name one.
    fn issuer_cross_checks(
        &mut self,
        issuers: &[(IssuerConfig, Origin)],
        single: bool,
        single_iss: Option<&str>,
        path: &str,
    ) {
        let mut names: BTreeMap<&str, &Origin> = BTreeMap::new();
        let mut urls: BTreeMap<&str, &Origin> = BTreeMap::new();
        for (i, (issuer, origin)) in issuers.iter().enumerate() {
            let at = format!("{path}.issuers[{i}]");
            if single_iss == Some(issuer.issuer.as_str()) {
                self.push(
                    origin,
                    &format!("{at}.issuer"),
                    Problem::new(format!(
                        "`{}` is also `auth.issuer`: a token's `iss` must pick exactly one issuer",
                        issuer.issuer
                    ))
                    .hint("keep one: the single-issuer keys (whose tokens yield user:/group: identities) or this entry"),
                );
            }
            if single && issuer.name == DEFAULT_ISSUER {
                self.push(
                    origin,
                    &format!("{at}.name"),
                    Problem::new(format!(
                        "`{DEFAULT_ISSUER}` is the name of the issuer the single-issuer keys of `auth` describe"
                    ))
                    .hint("give this issuer another name"),
                );
            }
            if let Some(first) = names.insert(&issuer.name, origin) {
                self.push(
                    origin,
                    &format!("{at}.name"),
                    Problem::new(format!("duplicate issuer name `{}`", issuer.name))
                        .hint(format!("first named at {first}")),
                );
            }
            if let Some(first) = urls.insert(&issuer.issuer, origin) {
                self.push(
                    origin,
                    &format!("{at}.issuer"),
                    Problem::new(format!("issuer `{}` is listed twice", issuer.issuer)).hint(
                        format!("first at {first}; a token's `iss` must pick exactly one entry"),
                    ),
                );
            }
        }
    }

    /// `server` is optional as a whole; `None` reads as an empty map, so
    /// every default comes from one place.
    fn server(&mut self, node: Option<&Node>, dir: &Origin) -> Option<ServerConfig> {
        let path = "server";
        let empty = Node::empty_map(dir.clone());
        let mut m = self.map(node.unwrap_or(&empty), path)?;
        let listen = self
            .optional(&mut m, "listen", |r, n, p| r.scalar(n, p, socket_addr))
            .unwrap_or_else(default_listen);
        let metrics_listen = self.optional(&mut m, "metrics_listen", |r, n, p| {
            r.scalar(n, p, socket_addr)
        });
        if metrics_listen == Some(listen) {
            self.push(
                &m.origin_of("metrics_listen"),
                "server.metrics_listen",
                Problem::new(format!("is the same address as `server.listen` ({listen})"))
                    .hint("give metrics and health checks a port of their own, or leave `metrics_listen` out to serve them on `listen`"),
            );
        }
        let tls = self.optional(&mut m, "tls", |r, n, p| {
            let mut t = r.map(n, p)?;
            let cert_file = r.required(&mut t, "cert_file", Self::config_path);
            let key_file = r.required(&mut t, "key_file", Self::config_path);
            r.finish(t);
            Some(TlsConfig {
                cert_file: cert_file?,
                key_file: key_file?,
            })
        });
        let tls_invalid = m.get("tls").is_some() && tls.is_none();
        let max_connections = self
            .optional(&mut m, "max_connections", |r, n, p| {
                r.uint(n, p, 1, 1_000_000)
            })
            .unwrap_or(1024);
        let header_read_timeout_seconds = self
            .optional(&mut m, "header_read_timeout_seconds", |r, n, p| {
                r.uint(n, p, 1, 300)
            })
            .unwrap_or(10);
        let shutdown_grace_seconds = self
            .optional(&mut m, "shutdown_grace_seconds", |r, n, p| {
                r.uint(n, p, 0, 3600)
            })
            .unwrap_or(20);
        let write_timeout_seconds = self
            .optional(&mut m, "write_timeout_seconds", |r, n, p| {
                r.uint(n, p, 1, 300)
            })
            .unwrap_or(10);
        let idle_timeout_seconds = self
            .optional(&mut m, "idle_timeout_seconds", |r, n, p| {
                r.uint(n, p, 1, 3600)
            })
            .unwrap_or(60);
        let max_requests_per_connection = self
            .optional(&mut m, "max_requests_per_connection", |r, n, p| {
                r.uint(n, p, 1, 1_000_000)
            })
            .unwrap_or(1000);
        let max_connection_age_seconds = self
            .optional(&mut m, "max_connection_age_seconds", |r, n, p| {
                r.uint(n, p, 1, 86_400)
            })
            .unwrap_or(600);
        let metrics_project_labels = self
            .optional(&mut m, "metrics_project_labels", Self::bool)
            .unwrap_or(false);
        let cache = self.optional(&mut m, "credential_cache", |r, n, p| {
            let mut c = r.map(n, p)?;
            let floor = r.optional(&mut c, "min_remaining_seconds", |r, n, p| {
                r.uint(n, p, 60, 43_200)
            });
            let wait = r.optional(&mut c, "max_wait_seconds", |r, n, p| r.uint(n, p, 0, 3600));
            let ahead = r.optional(&mut c, "renew_ahead_seconds", |r, n, p| {
                r.uint(n, p, 0, 43_200)
            });
            let used = r.optional(&mut c, "renew_used_within_seconds", |r, n, p| {
                r.uint(n, p, 60, 86_400)
            });
            r.finish(c);
            Some((floor, wait, ahead, used))
        });
        let (floor, wait, ahead, used) = cache.unwrap_or_default();
        let rate_limit = self.optional(&mut m, "rate_limit", |r, n, p| {
            let mut c = r.map(n, p)?;
            let rpm = r.optional(&mut c, "requests_per_minute", |r, n, p| {
                r.uint(n, p, 1, 1_000_000)
            });
            let burst = r.optional(&mut c, "burst", |r, n, p| r.uint(n, p, 1, 1_000_000));
            r.finish(c);
            Some((rpm, burst))
        });
        self.finish(m);
        let (rpm, burst) = rate_limit.unwrap_or_default();
        (!tls_invalid).then_some(ServerConfig {
            listen,
            metrics_listen,
            tls,
            max_connections,
            header_read_timeout_seconds,
            shutdown_grace_seconds,
            write_timeout_seconds,
            idle_timeout_seconds,
            max_requests_per_connection,
            max_connection_age_seconds,
            metrics_project_labels,
            credential_cache: CacheConfig {
                min_remaining_seconds: floor.unwrap_or(900),
                max_wait_seconds: wait.unwrap_or(60),
                renew_ahead_seconds: ahead.unwrap_or(300),
                renew_used_within_seconds: used.unwrap_or(3600),
            },
            rate_limit: RateLimitConfig {
                requests_per_minute: rpm.unwrap_or(60),
                burst: burst.unwrap_or(20),
            },
        })
    }
}

/// Loopback: listening on all interfaces is something config says.
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}

/// A project's rules as the projects API takes them (`{"access": [...],
/// "pull_access": [...]}`), read by the same readers as a project of the
/// config file, so a rule means the same wherever it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSpec {
    pub access: Vec<AccessRule>,
    pub pull_access: Vec<AccessRule>,
}

impl ProjectSpec {
    /// The project these rules make.
    pub fn project(&self, name: ProjectName) -> Project {
        Project {
            name,
            access: self.access.clone(),
            pull_access: self.pull_access.clone(),
        }
    }
}

/// Reads a request body's project rules. With `auth`, every check of the
/// config file applies (workload rules name a configured issuer, a public
/// issuer's rules pin a tenant); without, only the rules' own form is
/// checked: rows read back from the store were checked when written, and
/// a rule whose issuer has since gone simply admits nobody.
///
/// # Errors
/// Every problem, each with its path in the body (`access[1].claims`).
pub fn project_spec(
    body: &Value,
    auth: Option<&AuthConfig>,
) -> Result<ProjectSpec, Vec<ConfigError>> {
    let origin = Origin {
        file: Arc::from("request body"),
        line: None,
    };
    let node = json_node(body, &origin, 0);
    let mut r = Reader::default();
    let spec = r.map(&node, "").map(|mut m| {
        let access = r
            .optional(&mut m, "access", Reader::access_rules)
            .unwrap_or_default();
        let pull_access = r
            .optional(&mut m, "pull_access", Reader::access_rules)
            .unwrap_or_default();
        r.finish(m);
        ProjectSpec {
            access,
            pull_access,
        }
    });
    match auth {
        Some(auth) => r.rule_issuer_checks(auth),
        None => {
            r.rule_issuers.clear();
            r.rules.clear();
        }
    }
    match spec {
        Some(spec) if r.errors.is_empty() => Ok(spec),
        _ => Err(r.errors),
    }
}

/// Nesting deeper than any valid project body is cut here, so a hostile
/// body cannot make the reader recurse without bound.
const MAX_JSON_DEPTH: usize = 16;

/// A JSON value as the reader's tree. Scalars keep their text, as a YAML
/// scalar would.
fn json_node(value: &Value, origin: &Origin, depth: usize) -> Node {
    let kind = match value {
        _ if depth > MAX_JSON_DEPTH => Kind::Null,
        Value::Null => Kind::Null,
        Value::Bool(b) => Kind::Scalar(b.to_string()),
        Value::Number(n) => Kind::Scalar(n.to_string()),
        Value::String(s) => Kind::Scalar(s.clone()),
        Value::Array(items) => Kind::Seq(
            items
                .iter()
                .map(|v| json_node(v, origin, depth + 1))
                .collect(),
        ),
        Value::Object(entries) => Kind::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        super::yaml::Key {
                            name: k.clone(),
                            origin: origin.clone(),
                        },
                        json_node(v, origin, depth + 1),
                    )
                })
                .collect(),
        ),
    };
    Node {
        kind,
        origin: origin.clone(),
    }
}
