//! The settings stage: the command line as parsed ([`crate::cli`]) resolved
//! once into what each command runs with: where the configuration lives,
//! the output format, the scope, the token source, the listen address.
//! Pure: no file, variable or network is read here; the commands read
//! what their settings name. Neither `cli` nor `commands` imports the
//! other: this module is the one place that knows both.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cli::{
    ApplyArgs, Cli, Command, DevCaArgs, DoctorArgs, LogFormat, LoginArgs, LoginMethod,
    OciTokenCommand, PlanArgs, RegistryConfigArgs, TokenArgs,
};
use crate::commands::doctor::DoctorSettings;
use crate::commands::login::{LoginOptions, Method, TokenFlags};
use crate::commands::reconcile::{ApplySettings, PlanFormat, PlanSettings};
use crate::commands::token::TokenRequest;
use crate::config::Location;
use crate::registry::oci_token::keys::Algorithm;

/// Everything a run is set up with.
#[derive(Debug)]
pub struct Settings {
    /// Where the configuration is read from (for commands that read one).
    pub location: Location,
    pub log_format: LogFormat,
    /// `-v` repeated: 0, 1 (info), 2 (debug), 3 or more (trace).
    pub verbose: u8,
    pub command: CommandSettings,
}

/// What one command runs with.
#[derive(Debug)]
pub enum CommandSettings {
    Config {
        check: bool,
    },
    Token(TokenRequest),
    Plan(PlanSettings),
    Apply(ApplySettings),
    Doctor(DoctorSettings),
    Login(LoginOptions),
    Serve {
        listen: Option<SocketAddr>,
    },
    DevCa {
        out: PathBuf,
        algorithm: Algorithm,
        force: bool,
    },
    RegistryConfig {
        realm: Option<String>,
        rootcertbundle: String,
        bundle_out: Option<PathBuf>,
    },
}

impl Settings {
    /// Whether logs stay at warnings unless `-v` asks: every command but
    /// serve, whose audit and lifecycle lines are info.
    pub fn quiet(&self) -> bool {
        !matches!(self.command, CommandSettings::Serve { .. })
    }
}

impl From<Cli> for Settings {
    fn from(cli: Cli) -> Self {
        let verbose = cli.verbose > 0;
        let command = match cli.command {
            Command::Config(args) => CommandSettings::Config { check: args.check },
            Command::Token(args) => CommandSettings::Token(token(args)),
            Command::Plan(args) => CommandSettings::Plan(plan(args, verbose)),
            Command::Apply(args) => CommandSettings::Apply(apply(args, verbose)),
            Command::Doctor(args) => CommandSettings::Doctor(doctor(args)),
            Command::Login(args) => CommandSettings::Login(login(args)),
            Command::Serve(args) => CommandSettings::Serve {
                listen: args.listen,
            },
            Command::OciToken {
                command:
                    OciTokenCommand::DevCa(DevCaArgs {
                        out,
                        algorithm,
                        force,
                    }),
            } => CommandSettings::DevCa {
                out,
                algorithm,
                force,
            },
            Command::OciToken {
                command:
                    OciTokenCommand::RegistryConfig(RegistryConfigArgs {
                        realm,
                        rootcertbundle,
                        bundle_out,
                    }),
            } => CommandSettings::RegistryConfig {
                realm,
                rootcertbundle,
                bundle_out,
            },
        };
        Self {
            location: Location::new(&cli.config_dir, &cli.run_mode),
            log_format: cli.log_format,
            verbose: cli.verbose,
            command,
        }
    }
}

fn token(args: TokenArgs) -> TokenRequest {
    TokenRequest {
        subject: args.sub,
        email: args.email,
        groups: args.groups,
        ttl_seconds: args.ttl,
    }
}

fn plan(args: PlanArgs, verbose: bool) -> PlanSettings {
    PlanSettings {
        format: if args.json {
            PlanFormat::Json
        } else if args.markdown {
            PlanFormat::Markdown
        } else {
            PlanFormat::Text
        },
        detailed_exitcode: args.detailed_exitcode,
        out_file: args.out,
        verbose,
        scope: args.scope,
    }
}

fn apply(args: ApplyArgs, verbose: bool) -> ApplySettings {
    ApplySettings {
        planfile: args.planfile,
        auto_approve: args.auto_approve,
        allow_destroy: args.allow_destroy,
        lock_wait: std::time::Duration::from_secs(args.lock_wait),
        json: args.json,
        verbose,
        scope: args.scope,
    }
}

fn doctor(args: DoctorArgs) -> DoctorSettings {
    DoctorSettings {
        projects: args.projects,
        json: args.json,
        url: args.url,
        token: TokenFlags {
            token: args.token,
            file: args.token_file,
            env: args.token_env,
        },
    }
}

fn login(args: LoginArgs) -> LoginOptions {
    LoginOptions {
        timeout: std::time::Duration::from_secs(args.timeout),
        server: args.server,
        project: args.project,
        access: args.access,
        token: TokenFlags {
            token: args.token,
            file: args.token_file,
            env: args.token_env,
        },
        audience: args.audience,
        method: match args.method {
            LoginMethod::Auto => Method::Auto,
            LoginMethod::Docker => Method::Docker,
            LoginMethod::Podman => Method::Podman,
            LoginMethod::ConfigFile => Method::ConfigFile,
        },
        registry: args.registry,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::auth::AccessKind;
    use crate::reconcile::plan::Scope;

    fn settings(args: &str) -> Settings {
        let words = std::iter::once("rise-registry").chain(args.split_whitespace());
        Settings::from(Cli::try_parse_from(words).expect("the arguments parse"))
    }

    #[test]
    fn plan_flags_resolve_to_one_format_and_the_scope_asked() {
        let s = settings("plan");
        assert_eq!(
            s.location,
            Location::new(Path::new("config"), "development")
        );
        let CommandSettings::Plan(plan) = s.command else {
            panic!("{s:?}")
        };
        assert_eq!(
            plan,
            PlanSettings {
                format: PlanFormat::Text,
                detailed_exitcode: false,
                out_file: None,
                verbose: false,
                scope: None,
            }
        );
        let s = settings(
            "--config-dir /etc/rise --run-mode production -v plan --markdown --scope roles --out p.json --detailed-exitcode",
        );
        assert_eq!(
            s.location.command("apply p.json"),
            "rise-registry --config-dir /etc/rise --run-mode production apply p.json"
        );
        assert!(s.quiet());
        let CommandSettings::Plan(plan) = s.command else {
            panic!("{s:?}")
        };
        assert_eq!(plan.format, PlanFormat::Markdown);
        assert_eq!(plan.scope, Some(Scope::Roles));
        assert_eq!(plan.out_file, Some(PathBuf::from("p.json")));
        assert!(plan.detailed_exitcode && plan.verbose);
        let CommandSettings::Plan(plan) = settings("plan --json").command else {
            panic!()
        };
        assert_eq!(plan.format, PlanFormat::Json);
    }

    #[test]
    fn apply_doctor_and_serve_keep_what_was_given() {
        let CommandSettings::Apply(apply) =
            settings("apply saved.json --auto-approve --json").command
        else {
            panic!()
        };
        assert_eq!(apply.planfile, Some(PathBuf::from("saved.json")));
        assert!(apply.auto_approve && apply.json && !apply.verbose);
        assert_eq!(apply.scope, None);

        let CommandSettings::Doctor(doctor) =
            settings("doctor --project a --project b --url http://127.0.0.1:3000 --token t")
                .command
        else {
            panic!()
        };
        assert_eq!(doctor.projects, ["a", "b"]);
        assert_eq!(doctor.url.as_deref(), Some("http://127.0.0.1:3000"));
        assert_eq!(
            doctor.token.token.map(|t| t.expose().clone()).as_deref(),
            Some("t")
        );
        let CommandSettings::Doctor(doctor) =
            settings("doctor --url http://127.0.0.1:3000 --token-env RISE_TOKEN").command
        else {
            panic!()
        };
        assert_eq!(doctor.token.env.as_deref(), Some("RISE_TOKEN"));

        let s = settings("serve --listen 127.0.0.1:8080");
        assert!(!s.quiet(), "serve logs at info");
        let CommandSettings::Serve { listen } = s.command else {
            panic!()
        };
        assert_eq!(listen, Some("127.0.0.1:8080".parse().unwrap()));
    }

    #[test]
    fn login_takes_one_token_source_and_keeps_the_token_secret() {
        let s = settings(
            "login --server https://b --project p --token-env CI_JOB_JWT --method podman --access pull",
        );
        let CommandSettings::Login(login) = s.command else {
            panic!()
        };
        assert_eq!(login.token.env.as_deref(), Some("CI_JOB_JWT"));
        assert!(login.token.token.is_none() && login.token.file.is_none());
        assert_eq!(login.method, Method::Podman);
        assert_eq!(login.access, AccessKind::Pull);
        assert_eq!(login.audience, "rise");

        let s = settings("login --server https://b --project p --token s3cret");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let CommandSettings::Login(login) = s.command else {
            panic!()
        };
        assert_eq!(login.method, Method::Auto);
        assert_eq!(
            login.token.token.map(|t| t.expose().clone()).as_deref(),
            Some("s3cret")
        );

        let words = [
            "rise-registry",
            "login",
            "--server",
            "s",
            "--project",
            "p",
            "--token",
            "a",
            "--token-env",
            "B",
        ];
        assert!(Cli::try_parse_from(words).is_err(), "two token sources");
    }

    #[test]
    fn token_and_oci_token_settings() {
        let CommandSettings::Token(request) =
            settings("token --sub ci --group admins --group dev --ttl 60").command
        else {
            panic!()
        };
        assert_eq!(request.subject, "ci");
        assert_eq!(request.groups, ["admins", "dev"]);
        assert_eq!(request.ttl_seconds, 60);
        let CommandSettings::DevCa {
            out,
            algorithm,
            force,
        } = settings("oci-token dev-ca --out pki --algorithm rs256").command
        else {
            panic!()
        };
        assert_eq!(
            (out, algorithm, force),
            (PathBuf::from("pki"), Algorithm::Rs256, false)
        );
        let CommandSettings::RegistryConfig { rootcertbundle, .. } =
            settings("oci-token registry-config").command
        else {
            panic!()
        };
        assert_eq!(rootcertbundle, "/etc/docker/registry/rise-token-root.crt");
    }
}
