//! Names that end up inside ARNs, IAM policies and image paths.
//!
//! Everything here is security critical: a project name is spliced into the
//! repository ARN of a session policy, so a name that could widen that ARN
//! (`*`, `?`, `/`, `..`) must never get past [`ProjectName::parse`]. Each type
//! is a validated newtype; once you hold one, it is well formed, and the only
//! way to build one is through its parser. The same parsers serve the config
//! loader and the HTTP request path, so both accept exactly the same names.

use std::fmt;

use serde::{Serialize, Serializer};

/// The longest repository name ECR accepts.
pub(crate) const MAX_REPOSITORY_NAME_LEN: usize = 256;

/// Why a name was rejected; the message (and hint, where there is one) is
/// shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    pub message: String,
    /// How to write it instead, when the message alone does not say.
    pub hint: Option<String>,
}

fn err(msg: impl Into<String>) -> NameError {
    NameError {
        message: msg.into(),
        hint: None,
    }
}

impl NameError {
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// True when `s` is one ECR path component: `[a-z0-9]+([._-][a-z0-9]+)*`.
///
/// Written out by hand instead of with a regex engine: the grammar is tiny,
/// and a hand-rolled scanner is obviously free of backtracking surprises.
fn is_path_component(s: &str) -> bool {
    let mut prev_sep = true; // start behaves like "after a separator"
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => prev_sep = false,
            b'.' | b'_' | b'-' if !prev_sep => prev_sep = true,
            _ => return false,
        }
    }
    !prev_sep
}

/// Describes the first character of `s` that no name may contain, for errors
/// that say what to fix instead of only "invalid".
fn describe_bad_char(s: &str) -> Option<String> {
    s.chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
        .map(|c| {
            if c.is_ascii_uppercase() {
                format!("upper-case `{c}` (names are lower case)")
            } else if c.is_whitespace() {
                "whitespace".to_string()
            } else {
                format!("`{}`", c.escape_default())
            }
        })
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// A project name: one lower-case ECR path component, at most 256 bytes.
///
/// Whether `{repo_prefix}{name}` fits ECR's limit depends on the prefix, so
/// that check is [`RepoPrefix::repository_name`]'s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);
string_newtype!(ProjectName);

/// Deserialising validates, so a name read from any document (a ticket, say)
/// has passed the same rules as one from config.
impl<'de> serde::Deserialize<'de> for ProjectName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl ProjectName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(err("project name is empty"));
        }
        if s.len() > MAX_REPOSITORY_NAME_LEN {
            return Err(err(format!(
                "project name is {} characters long; the limit is {MAX_REPOSITORY_NAME_LEN}",
                s.len()
            )));
        }
        if let Some(bad) = describe_bad_char(s) {
            return Err(err(format!("project name contains {bad}")));
        }
        if s.contains('/') {
            return Err(err(
                "project name contains `/`; a project is one path component",
            ));
        }
        if !is_path_component(s) {
            return Err(err(
                "project name must start and end with a letter or digit, with single `.`, `_` or `-` between them",
            ));
        }
        Ok(Self(s.to_string()))
    }
}

/// The prefix every managed repository name starts with, such as `rise/`.
///
/// It is one or more ECR path components followed by a separator (`/`, `.`,
/// `_` or `-`), so that `{prefix}{project}` is a valid repository name and the
/// prefix can never match the start of an unrelated component (`rise` would
/// match `risely/x`; `rise/` cannot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPrefix(String);
string_newtype!(RepoPrefix);

impl RepoPrefix {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let Some(last) = s.chars().last() else {
            return Err(err("repo_prefix is empty; use something like `rise/`"));
        };
        if let Some(bad) = describe_bad_char(s) {
            return Err(err(format!("repo_prefix contains {bad}")));
        }
        if !matches!(last, '/' | '.' | '_' | '-') {
            return Err(err(format!(
                "repo_prefix must end with `/`, `.`, `_` or `-` (did you mean `{s}/`?)"
            )));
        }
        let body = &s[..s.len() - 1];
        if body.is_empty() || !body.split('/').all(is_path_component) {
            return Err(err(
                "repo_prefix must be lower-case ECR path components (`[a-z0-9]+([._-][a-z0-9]+)*`) separated by `/`",
            ));
        }
        // Leave room for at least a one-character project.
        if s.len() >= MAX_REPOSITORY_NAME_LEN {
            return Err(err(format!(
                "repo_prefix is {} characters long; the repository name limit is {MAX_REPOSITORY_NAME_LEN}",
                s.len()
            )));
        }
        Ok(Self(s.to_string()))
    }

    /// The repository name of `project`, or an error when it would exceed
    /// ECR's length limit.
    pub fn repository_name(&self, project: &ProjectName) -> Result<String, NameError> {
        let len = self.0.len() + project.0.len();
        if len > MAX_REPOSITORY_NAME_LEN {
            return Err(err(format!(
                "repository name `{}{}` would be {len} characters long; ECR allows {MAX_REPOSITORY_NAME_LEN}",
                self.0, project.0
            )));
        }
        Ok(format!("{}{}", self.0, project.0))
    }
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountId(String);
string_newtype!(AccountId);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "account_id must be exactly 12 digits, got `{}`",
                s.escape_default()
            )))
        }
    }
}

/// An AWS region such as `us-east-1` or `us-gov-west-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region(String);
string_newtype!(Region);

impl Region {
    /// Checks the shape `{area}-{words}-{digits}`; whether AWS has such a
    /// region is for AWS to say.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.split('-').collect();
        // The area is two letters, or four for the European Sovereign
        // Cloud (`eusc-de-east-1`).
        let shaped = parts.len() >= 3
            && (parts[0].len() == 2 || parts[0] == "eusc")
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if shaped {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{}` is not an AWS region (expected something like `us-east-1`)",
                s.escape_default()
            )))
        }
    }

    /// The ARN partition this region lives in.
    pub fn partition(&self) -> &'static str {
        self.partition_entry().1
    }

    /// The DNS suffix of the region's partition: ECR's registry host is
    /// `{account}.dkr.ecr.{region}.{suffix}`.
    pub fn dns_suffix(&self) -> &'static str {
        self.partition_entry().2
    }

    fn partition_entry(&self) -> &'static (&'static str, &'static str, &'static str) {
        PARTITIONS
            .iter()
            .find(|(prefix, _, _)| self.0.starts_with(prefix))
            .unwrap_or(&PARTITIONS[PARTITIONS.len() - 1])
    }
}

/// Region prefix → ARN partition and DNS suffix, as AWS's partition
/// metadata (the SDKs' `partitions.json`) lists them; the first prefix that
/// matches wins, and the last entry, the commercial partition, takes
/// every other region.
const PARTITIONS: [(&str, &str, &str); 8] = [
    ("cn-", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-", "aws-us-gov", "amazonaws.com"),
    ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
    ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
    ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
    ("us-iso-", "aws-iso", "c2s.ic.gov"),
    ("eusc-", "aws-eusc", "amazonaws.eu"),
    ("", "aws", "amazonaws.com"),
];

/// The partition, account and resource of an IAM ARN,
/// `arn:{aws…}:iam::{12-digit account}:{resource}`; `None` for anything else.
fn iam_arn(s: &str) -> Option<(&str, &str, &str)> {
    let mut parts = s.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource))
            if partition.starts_with("aws") && AccountId::parse(account).is_ok() =>
        {
            Some((partition, account, resource))
        }
        _ => None,
    }
}

/// An IAM role ARN, `arn:{partition}:iam::{account}:role/{path}{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleArn {
    arn: String,
    partition: String,
    account: String,
    /// Offset of the role name within `arn` (after the last `/`).
    name_start: usize,
}

impl RoleArn {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || {
            err(format!(
                "`{}` is not an IAM role ARN (expected `arn:aws:iam::123456789012:role/NAME`)",
                s.escape_default()
            ))
        };
        let Some((partition, account, resource)) = iam_arn(s) else {
            return Err(bad());
        };
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(bad());
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(err(format!(
                "role name `{}` must be 1 to 64 characters of letters, digits and `+=,.@_-`",
                name.escape_default()
            )));
        }
        let path = &path_and_name[..path_and_name.len() - name.len()];
        if !path.is_empty() && !path.chars().all(|c| c == '/' || valid_char(c)) {
            return Err(bad());
        }
        Ok(Self {
            arn: s.to_string(),
            partition: partition.to_string(),
            account: account.to_string(),
            name_start: s.len() - name.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn partition(&self) -> &str {
        &self.partition
    }
    pub fn account(&self) -> &str {
        &self.account
    }
    /// The role name, without path: what IAM's GetRole takes.
    pub fn name(&self) -> &str {
        &self.arn[self.name_start..]
    }
    /// The role's IAM path, as CreateRole takes it and GetRole returns it:
    /// `/` for `role/NAME`, `/ops/` for `role/ops/NAME`.
    pub fn path(&self) -> String {
        let resource_start = self.arn.find(":role/").map_or(0, |i| i + ":role/".len());
        format!("/{}", &self.arn[resource_start..self.name_start])
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl Serialize for RoleArn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.arn)
    }
}

/// A principal in `projects[].access` or `auth.admins`: `user:<id>` or
/// `group:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    Group(String),
}

impl Principal {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (kind, id) = s.split_once(':').ok_or_else(|| {
            err(format!(
                "`{}` must be `user:<id or email>` or `group:<name>`",
                s.escape_default()
            ))
        })?;
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!(
                "`{}` needs a non-empty identifier without whitespace after `{kind}:`",
                s.escape_default()
            )));
        }
        match kind {
            "user" => Ok(Self::User(id.to_string())),
            "group" => Ok(Self::Group(id.to_string())),
            _ => Err(err(format!(
                "`{}` starts with `{kind}:`; only `user:` and `group:` are known",
                s.escape_default()
            ))),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An IAM principal a trust policy names (`registry.trusted_principals`):
/// an account's `root`, a `user/` or a `role/`, never a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalArn(String);
string_newtype!(PrincipalArn);

impl PrincipalArn {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = iam_arn(s).is_some_and(|(_, _, resource)| {
            (resource == "root"
                || resource
                    .strip_prefix("user/")
                    .is_some_and(|n| !n.is_empty())
                || resource
                    .strip_prefix("role/")
                    .is_some_and(|n| !n.is_empty()))
                && !resource.contains(['*', '?'])
        });
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{s}` is not an IAM principal ARN (an account `:root`, a `user/` or a `role/`)"
            )))
        }
    }
}

/// The ARN of an IAM OIDC identity provider (EKS IRSA), whose host part
/// is spliced into the trust policy's condition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProviderArn(String);
string_newtype!(OidcProviderArn);

impl OidcProviderArn {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = s.starts_with("arn:aws")
            && s.split_once(":oidc-provider/")
                .is_some_and(|(_, host)| !host.is_empty() && !host.contains(char::is_whitespace));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{s}` is not an IAM OIDC provider ARN \
                 (expected `arn:aws:iam::123456789012:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID`)"
            )))
        }
    }

    /// The provider's host and path (`oidc.eks.REGION.amazonaws.com/id/ID`):
    /// the prefix of its condition keys.
    pub fn provider(&self) -> &str {
        self.0
            .split_once(":oidc-provider/")
            .map_or("", |(_, host)| host)
    }
}

/// A registry host with optional port: what goes before the first `/` of an
/// image reference (`registry.example.com`, `localhost:5000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost(String);
string_newtype!(RegistryHost);

impl RegistryHost {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains("://") {
            return Err(err(format!("`{s}` includes a URL scheme"))
                .hint("write only the host and port, such as `localhost:5000`"));
        }
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{s}` is not a registry host (expected something like `registry.example.com` or `localhost:5000`)"
            )))
        }
    }
}

/// Path components between the registry host and the project
/// (`rise-apps`, `team/apps`): part of every image path and token scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoNamespace(String);
string_newtype!(RepoNamespace);

impl RepoNamespace {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty() && s.split('/').all(|part| ProjectName::parse(part).is_ok());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{s}` is not a repository namespace (lower-case path components separated by `/`)"
            )))
        }
    }
}

/// A Kubernetes namespace or service account name (DNS-1123 label), spliced
/// into the IRSA trust policy's `sub` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sName(String);
string_newtype!(K8sName);

impl K8sName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(err(format!(
                "`{s}` is not a Kubernetes name (lower-case letters, digits and `-`, at most 63)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_accept_ecr_components() {
        for ok in ["my-app", "a", "app2", "my.app_v2-x", "0"] {
            assert!(ProjectName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn project_names_reject_anything_that_could_widen_an_arn() {
        for bad in [
            "", "*", "my-app*", "my?app", "a/b", "..", "a..b", "-a", "a-", "My-App", "my app",
            "my%2dapp", "a__b", "a.-b", "\u{0}", "ä", "a\n",
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ProjectName::parse(&"a".repeat(257)).is_err());
        assert!(ProjectName::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn project_name_errors_say_what_is_wrong() {
        let e = ProjectName::parse("My-App").unwrap_err().message;
        assert!(e.contains("upper-case `M`"), "{e}");
        let e = ProjectName::parse("a*").unwrap_err().message;
        assert!(e.contains("`*`"), "{e}");
    }

    #[test]
    fn repo_prefix_must_end_in_a_separator() {
        assert!(RepoPrefix::parse("rise/").is_ok());
        assert!(RepoPrefix::parse("team/rise-").is_ok());
        for bad in [
            "", "rise", "/", "Rise/", "rise//", "ri*se/", "/rise/", "rise/-",
        ] {
            assert!(RepoPrefix::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn repository_name_respects_the_ecr_limit() {
        let prefix = RepoPrefix::parse("rise/").unwrap();
        let fits = ProjectName::parse(&"a".repeat(251)).unwrap();
        assert_eq!(prefix.repository_name(&fits).unwrap().len(), 256);
        let too_long = ProjectName::parse(&"a".repeat(252)).unwrap();
        assert!(prefix.repository_name(&too_long).is_err());
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(AccountId::parse("123456789012").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(AccountId::parse(bad).is_err());
        }
    }

    #[test]
    fn regions_have_a_region_shape() {
        for ok in ["us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-2"] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["us-east", "useast1", "US-EAST-1", "us-east-1a", "", "us--1"] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Region::parse("cn-north-1").unwrap().partition(), "aws-cn");
        assert_eq!(
            Region::parse("us-gov-west-1").unwrap().partition(),
            "aws-us-gov"
        );
        assert_eq!(Region::parse("eu-west-1").unwrap().partition(), "aws");
    }

    #[test]
    fn every_partition_has_its_regions_and_dns_suffix() {
        for (region, partition, suffix) in [
            ("us-east-1", "aws", "amazonaws.com"),
            ("eu-central-2", "aws", "amazonaws.com"),
            ("cn-northwest-1", "aws-cn", "amazonaws.com.cn"),
            ("us-gov-east-1", "aws-us-gov", "amazonaws.com"),
            ("us-iso-east-1", "aws-iso", "c2s.ic.gov"),
            ("us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"),
            ("eu-isoe-west-1", "aws-iso-e", "cloud.adc-e.uk"),
            ("us-isof-south-1", "aws-iso-f", "csp.hci.ic.gov"),
            ("eusc-de-east-1", "aws-eusc", "amazonaws.eu"),
        ] {
            let r = Region::parse(region).unwrap();
            assert_eq!(
                (r.partition(), r.dns_suffix()),
                (partition, suffix),
                "{region}"
            );
        }
        assert!(Region::parse("euscx-de-east-1").is_err());
    }

    #[test]
    fn role_arns_name_their_iam_path() {
        let path = |s: &str| RoleArn::parse(s).unwrap().path();
        assert_eq!(path("arn:aws:iam::123456789012:role/r"), "/");
        assert_eq!(path("arn:aws:iam::123456789012:role/ops/r"), "/ops/");
        assert_eq!(path("arn:aws-cn:iam::123456789012:role/a/b/r"), "/a/b/");
    }

    #[test]
    fn role_arns_parse_with_and_without_path() {
        let arn = RoleArn::parse("arn:aws:iam::123456789012:role/rise-backend").unwrap();
        assert_eq!(
            (arn.account(), arn.name(), arn.partition()),
            ("123456789012", "rise-backend", "aws")
        );
        let arn = RoleArn::parse("arn:aws-cn:iam::123456789012:role/ops/team/x@y").unwrap();
        assert_eq!(arn.name(), "x@y");
        for bad in [
            "arn:aws:iam::123456789012:user/rise",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a*b",
            "rise-backend",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn principals_are_users_or_groups() {
        assert_eq!(
            Principal::parse("user:alice@example.com").unwrap(),
            Principal::User("alice@example.com".into())
        );
        assert_eq!(
            Principal::parse("group:team-a").unwrap().to_string(),
            "group:team-a"
        );
        for bad in ["alice", "user:", "role:x", "group:a b"] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod spliced_value_tests {
    use super::*;

    #[test]
    fn principal_arns_are_a_root_a_user_or_a_role_never_a_wildcard() {
        for ok in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:user/ci",
            "arn:aws-cn:iam::123456789012:role/ops/deployer",
        ] {
            assert_eq!(PrincipalArn::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "arn:aws:iam::123456789012:*",
            "arn:aws:iam::123456789012:user/*",
            "arn:aws:iam::12345:root",
            "arn:aws:sts::123456789012:assumed-role/x/y",
            "*",
        ] {
            assert!(PrincipalArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_oidc_provider_arn_yields_its_provider() {
        let arn = OidcProviderArn::parse(
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/AB",
        )
        .unwrap();
        assert_eq!(arn.provider(), "oidc.eks.us-east-1.amazonaws.com/id/AB");
        assert!(OidcProviderArn::parse("arn:aws:iam::123456789012:oidc-provider/").is_err());
        assert!(OidcProviderArn::parse("arn:aws:iam::1:oidc-provider/a b").is_err());
    }

    #[test]
    fn registry_hosts_namespaces_and_kubernetes_names() {
        assert!(RegistryHost::parse("localhost:5000").is_ok());
        assert!(RegistryHost::parse("[::1]:5000").is_ok());
        let e = RegistryHost::parse("https://r.example.com").unwrap_err();
        assert_eq!(
            e.hint.as_deref(),
            Some("write only the host and port, such as `localhost:5000`")
        );
        assert!(RegistryHost::parse("r.example.com/x").is_err());
        assert!(RepoNamespace::parse("team/apps").is_ok());
        for bad in ["", "Team", "a//b", "a/*", "../x"] {
            assert!(RepoNamespace::parse(bad).is_err(), "{bad}");
        }
        assert!(K8sName::parse("rise-system").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(K8sName::parse(bad).is_err(), "{bad}");
        }
    }
}
