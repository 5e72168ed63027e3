//! The merged tree → a typed [`Config`], collecting every problem on the way.
//!
//! Hand-written instead of `#[derive(Deserialize)]` because serde stops at
//! the first error and knows no lines; here every field is read even after
//! one failed, unknown keys get a did-you-mean hint, and each error carries
//! the file, line and key path of the value it is about.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::error::{ConfigError, Origin};
use super::model::*;
use super::yaml::{Key, Kind, Node};
use crate::naming::{AccountId, NameError, Principal, ProjectName, Region, RepoPrefix, RoleArn};
use crate::secret::Secret;

/// Minimum HS256 key length: RFC 7518 §3.2 asks for a key at least as long
/// as the hash output (256 bits).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// What is wrong with one value.
#[derive(Debug)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<NameError> for Problem {
    fn from(e: NameError) -> Self {
        Self::new(e.0)
    }
}

/// Reads the whole configuration. `dir` locates problems that belong to no
/// file, such as a missing top-level section.
pub fn read_config(root: &Node, dir: &Origin) -> Result<Config, Vec<ConfigError>> {
    let mut r = Reader { errors: Vec::new() };
    let config = r.config(root, dir);
    match config {
        Some(config) if r.errors.is_empty() => Ok(config),
        _ => Err(r.errors),
    }
}

const REGISTRY_TYPES: &[&str] = &["ecr", "oci-client-auth", "oci-token"];
const ECR_KEYS: &[&str] = &[
    "type",
    "region",
    "account_id",
    "repo_prefix",
    "role_arn",
    "push_role_arn",
    "auto_remove",
    "endpoint_url",
    "image_tag_mutability",
    "scan_on_push",
    "max_image_count",
    "tags",
    "irsa",
    "trusted_principals",
    "session_duration_seconds",
];
const OCI_CLIENT_AUTH_KEYS: &[&str] = &["type", "registry_url", "namespace"];
const OCI_TOKEN_KEYS: &[&str] = &[
    "type",
    "registry_url",
    "namespace",
    "service",
    "issuer",
    "signing_key_file",
    "certificate_chain_file",
    "ticket_ttl_seconds",
    "token_ttl_seconds",
];

/// The keys of each registry type, to explain a key that belongs elsewhere.
const KEYS_BY_TYPE: &[(&str, &[&str])] = &[
    ("ecr", ECR_KEYS),
    ("oci-client-auth", OCI_CLIENT_AUTH_KEYS),
    ("oci-token", OCI_TOKEN_KEYS),
];

struct Reader {
    errors: Vec<ConfigError>,
}

/// A map being read: tracks which keys were consumed so the rest can be
/// reported as unknown.
struct MapReader<'a> {
    path: String,
    /// Where to report a missing key: the map's own key line.
    origin: Origin,
    entries: &'a [(Key, Node)],
    used: Vec<bool>,
}

impl<'a> MapReader<'a> {
    fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under `key`, or `None` when absent or null.
    fn get(&mut self, key: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|(k, _)| k.name == key)?;
        self.used[i] = true;
        let node = &self.entries[i].1;
        (node.kind != Kind::Null).then_some(node)
    }

    fn origin_of(&self, key: &str) -> Origin {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v.origin.clone())
            .unwrap_or_else(|| self.origin.clone())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The closest known name to `name`, if any is close enough to be a typo.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

impl Reader {
    fn push(&mut self, origin: &Origin, path: &str, problem: Problem) {
        let mut e = ConfigError::new(origin.clone(), path, problem.message);
        e.hint = problem.hint;
        self.errors.push(e);
    }

    fn map<'a>(&mut self, node: &'a Node, path: &str) -> Option<MapReader<'a>> {
        match &node.kind {
            Kind::Map(entries) => Some(MapReader {
                path: path.to_string(),
                origin: node.origin.clone(),
                entries,
                used: vec![false; entries.len()],
            }),
            _ => {
                self.push(
                    &node.origin,
                    path,
                    Problem::new(format!("expected a map, found {}", node.type_name())),
                );
                None
            }
        }
    }

    /// Reports every key of `m` that was not read.
    fn finish(&mut self, m: MapReader<'_>, known: &[&str], registry_type: Option<&str>) {
        for ((key, _), used) in m.entries.iter().zip(&m.used) {
            if *used {
                continue;
            }
            let other_type = registry_type.and_then(|this| {
                KEYS_BY_TYPE
                    .iter()
                    .find(|(t, keys)| *t != this && keys.contains(&key.name.as_str()))
                    .map(|(t, _)| (this, *t))
            });
            let problem = Problem::new(format!("unknown key `{}`", key.name));
            let problem = if let Some((this, other)) = other_type {
                problem.hint(format!(
                    "`{}` belongs to registry type `{other}`, not `{this}`",
                    key.name
                ))
            } else if let Some(near) = did_you_mean(&key.name, known) {
                problem.hint(format!("did you mean `{near}`?"))
            } else {
                problem.hint(format!("known keys here: {}", known.join(", ")))
            };
            self.push(&key.origin, &m.child(&key.name), problem);
        }
    }

    /// A required value; a missing one is reported at the map.
    fn required<'a, T>(
        &mut self,
        m: &mut MapReader<'a>,
        key: &str,
        read: impl FnOnce(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = m.child(key);
        match m.get(key) {
            Some(node) => read(self, node, &path),
            None => {
                self.push(
                    &m.origin,
                    &path,
                    Problem::new(format!("missing required key `{key}`")),
                );
                None
            }
        }
    }

    /// An optional value; `None` when absent, null, or invalid (reported).
    fn optional<'a, T>(
        &mut self,
        m: &mut MapReader<'a>,
        key: &str,
        read: impl FnOnce(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = m.child(key);
        m.get(key).and_then(|node| read(self, node, &path))
    }

    fn scalar<T>(
        &mut self,
        node: &Node,
        path: &str,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Option<T> {
        let Kind::Scalar(text) = &node.kind else {
            self.push(
                &node.origin,
                path,
                Problem::new(format!(
                    "expected a single value, found {}",
                    node.type_name()
                )),
            );
            return None;
        };
        match parse(text) {
            Ok(v) => Some(v),
            Err(p) => {
                self.push(&node.origin, path, p);
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.scalar(node, path, non_empty)
    }

    fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        self.scalar(node, path, |s| match s {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err(Problem::new(format!("expected true or false, found `{s}`"))),
        })
    }

    /// A whole number in `min..=max`.
    fn uint(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        self.scalar(node, path, |s| match s.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(Problem::new(format!(
                "expected a whole number from {min} to {max}, found `{s}`"
            ))),
        })
    }

    fn list<'a, T>(
        &mut self,
        node: &'a Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &'a Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Kind::Seq(items) = &node.kind else {
            self.push(
                &node.origin,
                path,
                Problem::new(format!("expected a list, found {}", node.type_name())),
            );
            return None;
        };
        Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| item(self, n, &format!("{path}[{i}]")))
                .collect(),
        )
    }

    fn principals(&mut self, node: &Node, path: &str) -> Option<Vec<Principal>> {
        self.list(node, path, |r, n, p| {
            r.scalar(n, p, |s| Principal::parse(s).map_err(Problem::from))
        })
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
        self.finish(m, &["registry", "projects", "auth", "server"], None);

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
        Some(Config {
            registry,
            projects: projects.into_iter().map(|(p, _, _)| p).collect(),
            auth: auth?,
            server: server?,
        })
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
        match ty.as_str() {
            "ecr" => self.ecr(m).map(|c| RegistryConfig::Ecr(Box::new(c))),
            "oci-client-auth" => self.oci_client_auth(m).map(RegistryConfig::OciClientAuth),
            "oci-token" => self.oci_token(m).map(RegistryConfig::OciToken),
            other => {
                let origin = m.origin_of("type");
                let hint = match did_you_mean(other, REGISTRY_TYPES) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("one of: {}", REGISTRY_TYPES.join(", ")),
                };
                self.push(
                    &origin,
                    &m.child("type"),
                    Problem::new(format!("unknown registry type `{other}`")).hint(hint),
                );
                None
            }
        }
    }

    fn ecr(&mut self, mut m: MapReader<'_>) -> Option<EcrConfig> {
        let region = self.required(&mut m, "region", |r, n, p| {
            r.scalar(n, p, |s| Region::parse(s).map_err(Problem::from))
        });
        let account_id = self.required(&mut m, "account_id", |r, n, p| {
            r.scalar(n, p, |s| AccountId::parse(s).map_err(Problem::from))
        });
        let repo_prefix = match m.get("repo_prefix") {
            Some(n) => {
                let p = m.child("repo_prefix");
                self.scalar(n, &p, |s| RepoPrefix::parse(s).map_err(Problem::from))
            }
            None => Some(RepoPrefix::parse("rise/").expect("the default prefix is valid")),
        };
        let role_arn = self.required(&mut m, "role_arn", Self::role_arn);
        let push_role_arn = self.required(&mut m, "push_role_arn", Self::role_arn);
        let auto_remove = self
            .optional(&mut m, "auto_remove", Self::bool)
            .unwrap_or(false);
        let endpoint_url =
            self.optional(&mut m, "endpoint_url", |r, n, p| r.scalar(n, p, http_url));
        let image_tag_mutability = self
            .optional(&mut m, "image_tag_mutability", |r, n, p| {
                r.scalar(n, p, |s| match s {
                    "MUTABLE" => Ok(TagMutability::Mutable),
                    "IMMUTABLE" => Ok(TagMutability::Immutable),
                    _ => Err(Problem::new(format!(
                        "expected MUTABLE or IMMUTABLE, found `{s}`"
                    ))),
                })
            })
            .unwrap_or(TagMutability::Mutable);
        let scan_on_push = self
            .optional(&mut m, "scan_on_push", Self::bool)
            .unwrap_or(true);
        let max_image_count = self
            .optional(&mut m, "max_image_count", |r, n, p| r.uint(n, p, 1, 10_000))
            .unwrap_or(100);
        let tags = self
            .optional(&mut m, "tags", Self::tags)
            .unwrap_or_default();
        let irsa = self.optional(&mut m, "irsa", Self::irsa);
        let trusted_principals = self
            .optional(&mut m, "trusted_principals", |r, n, p| {
                r.list(n, p, |r, n, p| r.scalar(n, p, principal_arn))
            })
            .unwrap_or_default();
        let session_duration_seconds = self
            .optional(&mut m, "session_duration_seconds", |r, n, p| {
                r.uint(n, p, 900, 3600)
            })
            .unwrap_or(3600);

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
                if !irsa.oidc_provider_arn.starts_with(&expected) {
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
        self.finish(m, ECR_KEYS, Some("ecr"));
        Some(EcrConfig {
            region: region?,
            account_id: account_id?,
            repo_prefix: repo_prefix?,
            role_arn: role_arn?,
            push_role_arn: push_role_arn?,
            auto_remove,
            endpoint_url,
            image_tag_mutability,
            scan_on_push,
            max_image_count,
            tags,
            irsa,
            trusted_principals,
            session_duration_seconds,
        })
    }

    fn role_arn(&mut self, node: &Node, path: &str) -> Option<RoleArn> {
        self.scalar(node, path, |s| RoleArn::parse(s).map_err(Problem::from))
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
            if k.is_empty() || k.chars().count() > 128 {
                self.push(
                    &key.origin,
                    &p,
                    Problem::new("tag keys are 1 to 128 characters"),
                );
            } else if k.starts_with("rise:") || k.starts_with("aws:") {
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
                    if s.chars().count() > 256 {
                        Err(Problem::new("tag values are at most 256 characters"))
                    } else {
                        Ok(s.to_string())
                    }
                }),
            };
            if let Some(v) = value {
                tags.insert(k.clone(), v);
            }
        }
        Some(tags)
    }

    fn irsa(&mut self, node: &Node, path: &str) -> Option<IrsaConfig> {
        let mut m = self.map(node, path)?;
        let oidc_provider_arn = self.required(&mut m, "oidc_provider_arn", |r, n, p| {
            r.scalar(n, p, |s| {
                let ok = s.starts_with("arn:aws")
                    && s.split_once(":oidc-provider/")
                        .is_some_and(|(_, host)| !host.is_empty() && !host.contains(char::is_whitespace));
                if ok {
                    Ok(s.to_string())
                } else {
                    Err(Problem::new(format!(
                        "`{s}` is not an IAM OIDC provider ARN \
                         (expected `arn:aws:iam::123456789012:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`)"
                    )))
                }
            })
        });
        let namespace = self
            .optional(&mut m, "namespace", |r, n, p| r.scalar(n, p, k8s_name))
            .unwrap_or_else(|| "rise-system".into());
        let service_account = self
            .optional(&mut m, "service_account", |r, n, p| {
                r.scalar(n, p, k8s_name)
            })
            .unwrap_or_else(|| "rise-backend".into());
        self.finish(
            m,
            &["oidc_provider_arn", "namespace", "service_account"],
            None,
        );
        Some(IrsaConfig {
            oidc_provider_arn: oidc_provider_arn?,
            namespace,
            service_account,
        })
    }

    fn oci_client_auth(&mut self, mut m: MapReader<'_>) -> Option<OciClientAuthConfig> {
        let registry_url = self.required(&mut m, "registry_url", |r, n, p| {
            r.scalar(n, p, registry_host)
        });
        let namespace = self.optional(&mut m, "namespace", |r, n, p| r.scalar(n, p, namespace));
        self.finish(m, OCI_CLIENT_AUTH_KEYS, Some("oci-client-auth"));
        Some(OciClientAuthConfig {
            registry_url: registry_url?,
            namespace,
        })
    }

    fn oci_token(&mut self, mut m: MapReader<'_>) -> Option<OciTokenConfig> {
        let registry_url = self.required(&mut m, "registry_url", |r, n, p| {
            r.scalar(n, p, registry_host)
        });
        let namespace = self.required(&mut m, "namespace", |r, n, p| r.scalar(n, p, namespace));
        let service = self.required(&mut m, "service", |r, n, p| r.scalar(n, p, token_name));
        let issuer = self.required(&mut m, "issuer", |r, n, p| r.scalar(n, p, token_name));
        let signing_key_file = self.required(&mut m, "signing_key_file", Self::string);
        let certificate_chain_file = self.required(&mut m, "certificate_chain_file", Self::string);
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
        self.finish(m, OCI_TOKEN_KEYS, Some("oci-token"));
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
            let name = r.required(&mut m, "name", |r, n, p| {
                r.scalar(n, p, |s| ProjectName::parse(s).map_err(Problem::from))
            });
            let access = r
                .optional(&mut m, "access", Self::principals)
                .unwrap_or_default();
            let origin = m.origin_of("name");
            let name_path = m.child("name");
            r.finish(m, &["name", "access"], None);
            let project = Project {
                name: name?,
                access,
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
        let jwks_min_refresh_seconds = self
            .optional(&mut m, "jwks_min_refresh_seconds", |r, n, p| {
                r.uint(n, p, 1, 86_400)
            })
            .unwrap_or(30);
        let has_key_source = m.entries.iter().any(|(k, v)| {
            (k.name == "hs256_secret" || k.name == "jwks_url") && v.kind != Kind::Null
        });
        if !has_key_source {
            self.push(
                &m.origin,
                path,
                Problem::new("auth needs a key source to verify tokens with")
                    .hint("set `hs256_secret`, `jwks_url`, or both"),
            );
        }
        self.finish(
            m,
            &[
                "issuer",
                "audience",
                "hs256_secret",
                "jwks_url",
                "groups_claim",
                "admins",
                "jwks_min_refresh_seconds",
            ],
            None,
        );
        Some(AuthConfig {
            issuer,
            audience,
            hs256_secret,
            jwks_url,
            groups_claim,
            admins,
            jwks_min_refresh_seconds,
        })
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
        let tls = self.optional(&mut m, "tls", |r, n, p| {
            let mut t = r.map(n, p)?;
            let cert_file = r.required(&mut t, "cert_file", Self::string);
            let key_file = r.required(&mut t, "key_file", Self::string);
            r.finish(t, &["cert_file", "key_file"], None);
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
        let cache = self.optional(&mut m, "credential_cache", |r, n, p| {
            let mut c = r.map(n, p)?;
            let v = r.optional(&mut c, "min_remaining_seconds", |r, n, p| {
                r.uint(n, p, 60, 43_200)
            });
            r.finish(c, &["min_remaining_seconds"], None);
            Some(v)
        });
        let rate_limit = self.optional(&mut m, "rate_limit", |r, n, p| {
            let mut c = r.map(n, p)?;
            let rpm = r.optional(&mut c, "requests_per_minute", |r, n, p| {
                r.uint(n, p, 1, 1_000_000)
            });
            let burst = r.optional(&mut c, "burst", |r, n, p| r.uint(n, p, 1, 1_000_000));
            r.finish(c, &["requests_per_minute", "burst"], None);
            Some((rpm, burst))
        });
        self.finish(
            m,
            &[
                "listen",
                "tls",
                "max_connections",
                "header_read_timeout_seconds",
                "shutdown_grace_seconds",
                "credential_cache",
                "rate_limit",
            ],
            None,
        );
        let (rpm, burst) = rate_limit.unwrap_or_default();
        (!tls_invalid).then_some(ServerConfig {
            listen,
            tls,
            max_connections,
            header_read_timeout_seconds,
            shutdown_grace_seconds,
            credential_cache: CacheConfig {
                min_remaining_seconds: cache.flatten().unwrap_or(900),
            },
            rate_limit: RateLimitConfig {
                requests_per_minute: rpm.unwrap_or(60),
                burst: burst.unwrap_or(20),
            },
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3000))
}

fn non_empty(s: &str) -> Result<String, Problem> {
    if s.trim().is_empty() {
        Err(Problem::new("must not be empty"))
    } else {
        Ok(s.to_string())
    }
}

pub fn socket_addr(s: &str) -> Result<SocketAddr, Problem> {
    s.parse().map_err(|_| {
        Problem::new(format!("`{s}` is not an IP address and port"))
            .hint("use something like `0.0.0.0:3000` or `127.0.0.1:3000`")
    })
}

fn http_url(s: &str) -> Result<String, Problem> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !s.contains(char::is_whitespace) => Ok(s.to_string()),
        _ => Err(Problem::new(format!(
            "`{s}` is not an http:// or https:// URL"
        ))),
    }
}

/// Keys come from a JWKS URL, so plain HTTP is allowed only on loopback.
fn jwks_url(s: &str) -> Result<String, Problem> {
    let url = http_url(s)?;
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            s.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with([':', '/']))
        });
    if url.starts_with("https://") || loopback {
        Ok(url)
    } else {
        Err(Problem::new(format!("`{s}` must use https://"))
            .hint("token-verification keys fetched over plain HTTP could be swapped in transit"))
    }
}

/// A registry host with optional port: what goes before the first `/` of an
/// image reference.
fn registry_host(s: &str) -> Result<String, Problem> {
    if s.contains("://") {
        return Err(Problem::new(format!("`{s}` includes a URL scheme"))
            .hint("write only the host and port, such as `localhost:5000`"));
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Problem::new(format!(
            "`{s}` is not a registry host (expected something like `registry.example.com` or `localhost:5000`)"
        )))
    }
}

/// Path components between the registry host and the project.
fn namespace(s: &str) -> Result<String, Problem> {
    let ok = !s.is_empty() && s.split('/').all(|part| ProjectName::parse(part).is_ok());
    if ok {
        Ok(s.to_string())
    } else {
        Err(Problem::new(format!(
            "`{s}` is not a repository namespace (lower-case path components separated by `/`)"
        )))
    }
}

/// A token `service` or `issuer`: compared byte for byte by the registry, so
/// stray whitespace would silently break every push.
fn token_name(s: &str) -> Result<String, Problem> {
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(
            Problem::new(format!("`{s}` must be 1 to 256 characters without spaces"))
                .hint("it must equal the registry's `auth.token` setting exactly"),
        )
    } else {
        Ok(s.to_string())
    }
}

/// A Kubernetes namespace or service account name (DNS-1123 label).
fn k8s_name(s: &str) -> Result<String, Problem> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(Problem::new(format!(
            "`{s}` is not a Kubernetes name (lower-case letters, digits and `-`, at most 63)"
        )))
    }
}

/// An IAM principal ARN for a trust policy: the account root, a user or a role.
fn principal_arn(s: &str) -> Result<String, Problem> {
    let mut parts = s.splitn(6, ':');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource))
            if partition.starts_with("aws")
                && AccountId::parse(account).is_ok()
                && (resource == "root"
                    || resource.strip_prefix("user/").is_some_and(|n| !n.is_empty())
                    || resource.strip_prefix("role/").is_some_and(|n| !n.is_empty()))
                && !resource.contains(['*', '?'])
    );
    if ok {
        Ok(s.to_string())
    } else {
        Err(Problem::new(format!(
            "`{s}` is not an IAM principal ARN (an account `:root`, a `user/` or a `role/`)"
        )))
    }
}
