//! From parsed arguments to an exit code: settings, logging, dispatch and
//! error reporting. Commands write their data to a writer given here; logs
//! and errors go to stderr.

use std::io::{self, BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, LogFormat};
use crate::commands::{self, Env, Status, colour_enabled};
use crate::config;
use crate::settings::{CommandSettings, Settings};

/// Parses the process arguments, runs the command and maps the outcome to
/// the documented exit codes: 0 success, 1 any error, 2 changes.
pub fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors; 2 is reserved for "plan has
            // changes", so a usage error is 1 like every other error.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let settings = Settings::from(cli);
    // serve's audit and lifecycle lines are info; the one-shot commands
    // stay quiet unless asked.
    init_logging(settings.log_format, settings.verbose, settings.quiet());
    let vars = |name: &str| std::env::var(name).ok();
    let stdin = io::stdin();
    let mut terminal = stdin.is_terminal().then(|| stdin.lock());
    // Not `stdout().lock()`: serve writes audit lines from many threads, and
    // a lock held for the whole command would block them forever.
    let mut env = Env {
        vars: &vars,
        stdout: &mut io::stdout(),
        stderr: &mut io::stderr(),
        terminal: terminal.as_mut().map(|t| t as &mut dyn BufRead),
        colour: colour_enabled(&io::stdout()),
        progress: commands::progress::progress_enabled(
            io::stderr().is_terminal(),
            std::env::var_os("TERM").as_deref(),
        ),
    };
    let log_format = settings.log_format;
    PANIC_AS_JSON.store(log_format == LogFormat::Json, Ordering::Relaxed);
    // Debug builds only: lets the tests see what a user sees when a bug
    // panics, without planting one.
    #[cfg(debug_assertions)]
    if std::env::var_os("RISE_REGISTRY_DEBUG_PANIC").is_some() {
        panic!("RISE_REGISTRY_DEBUG_PANIC is set");
    }
    match dispatch(settings, &mut env) {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Changes) => ExitCode::from(2),
        Ok(Status::Failed) => ExitCode::from(1),
        Err(e) => {
            match log_format {
                LogFormat::Text => eprintln!("{}", render_error(&e)),
                LogFormat::Json => eprintln!("{}", render_error_json(&e)),
            }
            ExitCode::from(1)
        }
    }
}

/// Runs one command in `env`.
///
/// # Errors
/// Whatever the command reports; the caller prints it and exits 1.
pub fn run(cli: Cli, env: &mut Env<'_>) -> Result<Status> {
    dispatch(Settings::from(cli), env)
}

/// Runs the command `settings` describe.
///
/// # Errors
/// As [`run`].
pub fn dispatch(settings: Settings, env: &mut Env<'_>) -> Result<Status> {
    let location = &settings.location;
    // Loaded per command, not before the match: `oci-token dev-ca` makes
    // the key material a configuration will name, so it runs without one.
    let load = |vars: &dyn Fn(&str) -> Option<String>| location.load(vars);
    match &settings.command {
        CommandSettings::Config { check } => commands::config::run(&load(env.vars)?, *check, env),
        CommandSettings::Token(request) => {
            commands::token::run(&load(env.vars)?.config, request, env.stdout)
        }
        CommandSettings::Plan(plan) => {
            commands::reconcile::run_plan(&load(env.vars)?.config, location, plan, env)
        }
        CommandSettings::Apply(apply) => {
            commands::reconcile::run_apply(&load(env.vars)?.config, location, apply, env)
        }
        CommandSettings::Doctor(doctor) => {
            commands::doctor::run(&load(env.vars)?.config, location, doctor, env)
        }
        // No configuration: login runs on CI runners and laptops, which
        // hold none.
        CommandSettings::Login(login) => commands::login::run(login, env),
        CommandSettings::Serve { listen } => {
            commands::serve::run(load(env.vars)?.config, location, *listen)
        }
        CommandSettings::DevCa {
            out,
            algorithm,
            force,
        } => commands::oci_token::run_dev_ca(out, *algorithm, *force, env.stdout),
        CommandSettings::RegistryConfig {
            realm,
            rootcertbundle,
            bundle_out,
        } => commands::oci_token::run_registry_config(
            &load(env.vars)?.config,
            realm.as_deref(),
            rootcertbundle,
            bundle_out.as_deref(),
            env.stdout,
        ),
    }
}

/// `error: <what>` followed by each cause, indented; hints are part of the
/// messages that have one.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut s = format!("error: {e}");
    for cause in e.chain().skip(1) {
        s.push_str(&format!("\n  caused by: {cause}"));
    }
    s
}

/// The error as one JSON line, for `--log-format json`: log collectors
/// then parse errors like every other line. Config problems are listed one
/// by one with their file, line and key.
/// Whether a panic is reported as a JSON line (`--log-format json`).
static PANIC_AS_JSON: AtomicBool = AtomicBool::new(false);

/// A panic is a bug in rise-registry, never the user's doing: it is
/// reported in one line that says so and where to report it, with no
/// backtrace unless `RUST_BACKTRACE` asks for one (then Rust's own report
/// is printed, as usual).
fn install_panic_hook() {
    let rust_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            rust_report(info);
            return;
        }
        let line = panic_line(
            info.payload(),
            info.location().map(|l| (l.file(), l.line())),
        );
        let line = if PANIC_AS_JSON.load(Ordering::Relaxed) {
            serde_json::json!({
                "timestamp": crate::clock::rfc3339(crate::clock::unix_now()),
                "level": "ERROR",
                "message": line,
                "bug": true,
            })
            .to_string()
        } else {
            line
        };
        eprintln!("{line}");
    }));
}

/// The one line a panic prints.
fn panic_line(payload: &(dyn std::any::Any + Send), location: Option<(&str, u32)>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let at = location.map_or_else(String::new, |(file, line)| format!(" at {file}:{line}"));
    format!(
        "error: rise-registry {} hit a bug, not a problem with your setup: {}{at}; please report it with this line and the command that caused it (docs/troubleshooting.md#reporting-a-bug; RUST_BACKTRACE=1 adds a backtrace)",
        env!("CARGO_PKG_VERSION"),
        message.replace('\n', " "),
    )
}

pub fn render_error_json(e: &anyhow::Error) -> String {
    let mut line = serde_json::json!({
        "timestamp": crate::clock::rfc3339(crate::clock::unix_now()),
        "level": "ERROR",
        "message": e.to_string(),
        "causes": e.chain().skip(1).map(ToString::to_string).collect::<Vec<_>>(),
    });
    if let Some(errors) = e.downcast_ref::<config::ConfigErrors>() {
        line["problems"] = errors
            .0
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": &*p.origin.file,
                    "line": p.origin.line,
                    "key": p.path,
                    "message": p.message,
                    "hint": p.hint,
                })
            })
            .collect();
    }
    line.to_string()
}

fn init_logging(format: LogFormat, verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 if quiet => "warn",
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The SDK's credential chain warns, with a debug dump, for each
    // provider that found nothing before the error says so in one line
    // with its hint; below -vv, that is noise.
    let default = if verbose < 2 {
        format!("{default},aws_config=error")
    } else {
        default.to_string()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(colour_enabled(&io::stderr()));
    // A second init (tests calling main twice) is harmless; ignore it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
