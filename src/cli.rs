//! The command line as typed: clap types only, no I/O.
//!
//! Names and flags are fixed by the design contract (README "Usage"); the
//! settings they select are resolved in [`crate::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Parser, Subcommand, ValueEnum};

use crate::auth::AccessKind;
use crate::commands::login::Method;
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
    Plan {
        /// Print the plan as JSON (docs/plan-format.md)
        #[arg(long)]
        json: bool,
        /// Print the plan as Markdown, for a pull-request comment
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Exit 2 when the plan has changes, 0 when it has none
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan for `apply PLANFILE`
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// What to read and plan: `repositories` makes no IAM call [default: all, or repositories when registry.manage_roles is false]
        #[arg(long, value_enum)]
        scope: Option<Scope>,
    },
    /// Change AWS to match the configuration
    Apply {
        /// A plan saved by `plan --out`
        planfile: Option<PathBuf>,
        /// Apply without asking for confirmation
        #[arg(long)]
        auto_approve: bool,
        /// Report progress and the result as JSON
        #[arg(long)]
        json: bool,
        /// What to read and change: `repositories` makes no IAM call [default: all, or repositories when registry.manage_roles is false]
        #[arg(long, value_enum)]
        scope: Option<Scope>,
    },
    /// Run the credential broker
    Serve {
        /// Address to listen on; overrides `server.listen`
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Print an HS256 token signed with `auth.hs256_secret`, for development
    Token {
        /// The token's subject (`user:<sub>`)
        #[arg(long, default_value = "dev")]
        sub: String,
        /// An email claim (`user:<email>`)
        #[arg(long)]
        email: Option<String>,
        /// A group (`group:<name>`); repeat for more
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Lifetime in seconds (at most a year)
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_TTL_SECONDS))]
        ttl: u64,
    },
    /// The registry side of `registry.type: oci-token`
    OciToken {
        #[command(subcommand)]
        command: OciTokenCommand,
    },
    /// Check the live setup against the troubleshooting list (reads only)
    Doctor {
        /// Only this project (repeat for more); all configured by default
        #[arg(long = "project", value_name = "NAME")]
        projects: Vec<String>,
        /// Print the report as JSON (docs/troubleshooting.md)
        #[arg(long)]
        json: bool,
        /// Also check a running serve at this base URL (/healthz, /readyz);
        /// for oci-token, its realm is URL/registry/token
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// With --url: ask serve for each project's credentials with this token
        #[arg(long, value_name = "TOKEN", requires = "url")]
        token: Option<String>,
    },
    /// Log the local Docker or Podman client in to a project's registry,
    /// with credentials from a broker; prints the image path (docs/ci.md)
    #[command(group(ArgGroup::new("token_source").args(["token", "token_file", "token_env"])))]
    Login {
        /// The broker's base URL (a running serve)
        #[arg(long, value_name = "URL")]
        server: String,
        /// The project whose repository to log in to
        #[arg(long, value_name = "NAME")]
        project: String,
        /// What the credentials may do: push (and pull), or pull only
        #[arg(long, value_enum, default_value_t = AccessKind::Push)]
        access: AccessKind,
        /// The caller token itself (other local users can see it in the
        /// process list: prefer --token-file or --token-env)
        #[arg(long, value_name = "TOKEN", value_parser = crate::commands::login::secret_arg)]
        token: Option<Secret<String>>,
        /// A file holding the caller token; `-` reads standard input
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// A variable holding the caller token (GitLab CI: the `id_tokens` variable)
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
        /// The audience to ask GitHub Actions' OIDC token for
        #[arg(long, value_name = "AUD", default_value = "rise")]
        audience: String,
        /// How to log in: auto is docker when its daemon answers, else
        /// podman, else the Docker config file
        #[arg(long, value_enum, default_value_t = Method::Auto)]
        method: Method,
    },
    /// Print the effective configuration, secrets redacted
    Config {
        /// Only validate: print each problem and exit 1, or one OK line
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OciTokenCommand {
    /// Write a development CA and a token-signing key it certifies (needs no config)
    DevCa {
        /// Directory for ca.crt, token.key and token.crt
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Key type
        #[arg(long, value_enum, default_value_t = Algorithm::Es256)]
        algorithm: Algorithm,
        /// Replace existing files
        #[arg(long)]
        force: bool,
    },
    /// Print the registry's `auth: token:` block for this configuration
    RegistryConfig {
        /// The realm URL the registry sends clients to [default: server.listen + /registry/token]
        #[arg(long, value_name = "URL")]
        realm: Option<String>,
        /// Where the registry will find the root certificate
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/etc/docker/registry/rise-token-root.crt"
        )]
        rootcertbundle: String,
        /// Also write the root certificate (the chain's last) to this file
        #[arg(long, value_name = "FILE")]
        bundle_out: Option<PathBuf>,
    },
}
