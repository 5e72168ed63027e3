//! rise-registry: scoped container-registry credentials for the Rise
//! platform, and the AWS setup behind them.
//!
//! # Layout
//! - [`cli`]: the command line as typed (clap types only).
//! - [`settings`]: the command line resolved once into each command's
//!   settings (the only module that knows both `cli` and `commands`).
//! - [`run`]: logging, dispatch, exit codes and error reports.
//! - [`commands`]: one module per subcommand, writing to a given writer.
//! - [`config`]: layered YAML → validated [`config::Config`]; pure but for
//!   reading the files.
//! - [`naming`]: validated names (projects, prefixes, ARNs, principals): the
//!   security boundary for everything spliced into an ARN or policy.
//! - [`secret`]: a wrapper that redacts secrets in every rendering.
//! - [`runtime`]: the one async runtime a command enters.
//! - [`clock`]: wall-clock seconds and RFC 3339 text, the one time source of
//!   serve and the registry providers.
//! - [`policy`]: the per-project session policy and role session name.
//! - [`roles`]: the two roles' documents, rendered from the Terraform
//!   module's templates, and IAM's size quotas on them.
//! - [`access`]: access kinds and rules (principals, workload rules on
//!   claims) as plain values, read by config and applied by auth.
//! - [`auth`]: bearer-token verification (HS256, JWKS) and the access rule.
//! - [`registry`]: providers that issue credentials (`ecr`, `oci-client-auth`,
//!   `oci-token` with its tickets, scopes and token signing).
//! - [`aws`]: SDK settings, error text, call counting and throttling shared
//!   by the AWS-facing modules.
//! - [`repository_settings`]: the ECR repository settings rise-registry
//!   manages, one file each, read by config and carried out by reconcile.
//! - [`https`]: the HTTP(S) client for everything else that goes out.
//! - [`serve`]: the HTTP server, request flow, cache, rate limit, metrics.
//! - [`tags`]: the tags rise-registry manages and AWS's tag limits.
//! - [`reconcile`]: desired state, canonical policies and the pure planner
//!   behind `plan`/`apply`.
//! - [`doctor`]: the troubleshooting checks (a pure model and decisions,
//!   with the AWS and HTTP calls at one edge).

pub mod access;
pub mod auth;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod docker_config;
pub mod doctor;
pub mod https;
pub mod naming;
pub mod policy;
pub mod reconcile;
pub mod registry;
pub mod repository_settings;
pub mod roles;
pub mod run;
pub mod runtime;
pub mod secret;
pub mod serve;
pub mod settings;
pub mod store;
pub mod tags;
pub mod x509;
