//! The command line as typed: clap types only, no I/O, one args struct per
//! subcommand.
//!
//! Names and flags are fixed by the design contract (README "Usage"); the
//! settings they select are resolved once in [`crate::settings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::auth::AccessKind;
use crate::config::{DEFAULT_CONFIG_DIR, DEFAULT_RUN_MODE};
use crate::reconcile::plan::Scope;
use crate::registry::oci_token::keys::Algorithm;
use crate::secret::Secret;

/// `token --ttl` at most: a development token that outlives a year is a
/// mistake, and the limit keeps `iat + ttl` far from overflow.
pub(crate) const MAX_TOKEN_TTL_SECONDS: u64 = 366 * 24 * 3600;

#[derive(Debug, Parser)]
#[command(
    name = "rise-registry",
    version,
    long_version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RISE_REGISTRY_REVISION"), ")"),
    about = "Scoped container-registry credentials for Rise, and the AWS setup behind them",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Directory holding default.yaml, {run_mode}.yaml and local.yaml
    #[arg(long, global = true, env = "RISE_CONFIG_DIR", default_value = DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,

    /// Which {run_mode}.yaml layer to load
    #[arg(
        long,
        global = true,
        env = "RISE_CONFIG_RUN_MODE",
        default_value = DEFAULT_RUN_MODE
    )]
    pub run_mode: String,

    /// Log line format (logs go to stderr)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log detail: -v info, -vv debug, -vvv trace (RUST_LOG overrides);
    /// plans list every repository of a group
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what apply would change in AWS (reads only)
    Plan(PlanArgs),
    /// Change AWS to match the configuration
    Apply(ApplyArgs),
    /// Run the credential broker
    Serve(ServeArgs),
    /// Print an HS256 token signed with `auth.hs256_secret`, for development
    Token(TokenArgs),
    /// The registry side of `registry.type: oci-token`
    OciToken {
        #[command(subcommand)]
        command: OciTokenCommand,
    },
    /// Check the live setup against the troubleshooting list (reads only)
    Doctor(DoctorArgs),
    /// Log the local Docker or Podman client in to a project's registry,
    /// with credentials from a broker; prints the image path (docs/ci.md)
    Login(LoginArgs),
    /// Print the effective configuration, secrets redacted
    Config(ConfigArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Print the plan as JSON (docs/plan-format.md)
    #[arg(long)]
    pub json: bool,
    /// Print the plan as Markdown, for a pull-request comment
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Exit 2 when the plan has changes, 0 when it has none
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan for `apply PLANFILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// What to read and plan: `repositories` makes no IAM call [default: all, or repositories when registry.manage_roles is false]
    #[arg(long, value_enum)]
    pub scope: Option<Scope>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `plan --out`
    pub planfile: Option<PathBuf>,
    /// Apply without asking for confirmation
    #[arg(long)]
    pub auto_approve: bool,
    /// Let an unattended apply delete more repositories than registry.max_deletions
    #[arg(long)]
    pub allow_destroy: bool,
    /// Report progress and the result as JSON
    #[arg(long)]
    pub json: bool,
    /// How long to wait for another apply of the same account, region and
    /// prefix to finish (the apply lock), in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_wait: u64,
    /// What to read and change: `repositories` makes no IAM call [default: all, or repositories when registry.manage_roles is false]
    #[arg(long, value_enum)]
    pub scope: Option<Scope>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; overrides `server.listen`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject (`user:<sub>`)
    #[arg(long, default_value = "dev")]
    pub sub: String,
    /// An email claim (`user:<email>`)
    #[arg(long)]
    pub email: Option<String>,
    /// A group (`group:<name>`); repeat for more
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Lifetime in seconds (at most a year)
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_TTL_SECONDS))]
    pub ttl: u64,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("doctor_token").args(["token", "token_file", "token_env"])))]
pub struct DoctorArgs {
    /// Only this project (repeat for more); all configured by default
    #[arg(long = "project", value_name = "NAME")]
    pub projects: Vec<String>,
    /// Print the report as JSON (docs/troubleshooting.md)
    #[arg(long)]
    pub json: bool,
    /// Also check a running serve at this base URL (/healthz, /readyz);
    /// for oci-token, its realm is URL/registry/token
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: ask serve for each project's credentials with this token
    /// (other local users can see it in the process list: prefer
    /// --token-file or --token-env)
    #[arg(long, value_name = "TOKEN", requires = "url", value_parser = secret_arg)]
    pub token: Option<Secret<String>>,
    /// With --url: a file holding that token; `-` reads standard input
    #[arg(long, value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// With --url: a variable holding that token
    #[arg(long, value_name = "VAR", requires = "url")]
    pub token_env: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("token_source").args(["token", "token_file", "token_env"])))]
pub struct LoginArgs {
    /// The broker's base URL (a running serve)
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The project whose repository to log in to
    #[arg(long, value_name = "NAME")]
    pub project: String,
    /// What the credentials may do: push (and pull), or pull only
    #[arg(long, value_enum, default_value_t = AccessKind::Push)]
    pub access: AccessKind,
    /// The caller token itself (other local users can see it in the
    /// process list: prefer --token-file or --token-env)
    #[arg(long, value_name = "TOKEN", value_parser = secret_arg)]
    pub token: Option<Secret<String>>,
    /// A file holding the caller token; `-` reads standard input
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// A variable holding the caller token (GitLab CI: the `id_tokens` variable)
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// The audience to ask GitHub Actions' OIDC token for
    #[arg(long, value_name = "AUD", default_value = "rise")]
    pub audience: String,
    /// How to log in: auto is docker when its daemon answers, else
    /// podman, else the Docker config file
    #[arg(long, value_enum, default_value_t = LoginMethod::Auto)]
    pub method: LoginMethod,
    /// The registry host the credentials must be for (the broker's
    /// `registry_url`); anything else is refused before any login
    #[arg(long, value_name = "HOST")]
    pub registry: Option<String>,
    /// How long to keep asking a busy (429, 503) or unreachable broker,
    /// in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

/// `login --method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoginMethod {
    /// docker when its daemon answers, else podman, else the config file.
    Auto,
    /// `docker login --password-stdin`.
    Docker,
    /// `podman login --password-stdin`.
    Podman,
    /// The registry's entry in `$DOCKER_CONFIG/config.json`, for builders
    /// without a daemon.
    ConfigFile,
}

/// clap's parser for `--token`: the value is wrapped at once, so even a
/// `Debug` dump of the parsed command line shows `[REDACTED]`.
///
/// # Errors
/// Never.
pub fn secret_arg(value: &str) -> Result<Secret<String>, std::convert::Infallible> {
    Ok(Secret::new(value.to_string()))
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Only validate: print each problem and exit 1, or one OK line
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum OciTokenCommand {
    /// Write a development CA and a token-signing key it certifies (needs no config)
    DevCa(DevCaArgs),
    /// Print the registry's `auth: token:` block for this configuration
    RegistryConfig(RegistryConfigArgs),
}

#[derive(Debug, Args)]
pub struct DevCaArgs {
    /// Directory for ca.crt, token.key and token.crt
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Key type
    #[arg(long, value_enum, default_value_t = Algorithm::Es256)]
    pub algorithm: Algorithm,
    /// Replace existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RegistryConfigArgs {
    /// The realm URL the registry sends clients to [default: server.listen + /registry/token]
    #[arg(long, value_name = "URL")]
    pub realm: Option<String>,
    /// Where the registry will find the root certificate
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/docker/registry/rise-token-root.crt"
    )]
    pub rootcertbundle: String,
    /// Also write the root certificate (the chain's last) to this file
    #[arg(long, value_name = "FILE")]
    pub bundle_out: Option<PathBuf>,
}
