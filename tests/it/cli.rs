//! The binary driven as a user would: `config`, `config --check`, exit codes
//! and usage errors, on the shipped config dir and on temporary ones.

use std::path::Path;
use std::process::{Command, Output};

use rise_registry::cli::Cli;
use rise_registry::commands::{Env, Status};

const BIN: &str = env!("CARGO_BIN_EXE_rise-registry");

/// Runs the binary with a clean environment (plus `env`), from `cwd`.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn shipped_config_checks_ok_with_no_environment() {
    let out = run(repo(), &["config", "--check"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("OK: configuration is valid"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
}

#[test]
fn shipped_production_config_names_each_missing_variable_and_its_file() {
    let out = run(
        repo(),
        &["--run-mode", "production", "config", "--check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for needle in [
        "config/production.yaml:",
        "environment variable `RISE_JWT_ISSUER` is not set",
        "environment variable `RISE_JWT_SECRET` is not set",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        stderr.starts_with("error: the configuration has 2 problems:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn run_mode_and_config_dir_come_from_the_environment_too() {
    let env = [
        ("RISE_CONFIG_RUN_MODE", "production"),
        ("RISE_JWT_ISSUER", "https://auth.example.com"),
        ("RISE_JWT_SECRET", "a-production-secret-of-enough-length-42"),
    ];
    let out = run(repo(), &["config", "--check"], &env);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("registry ecr"));

    let elsewhere = tempfile::tempdir().unwrap();
    let config_dir = repo().join("config");
    let out = run(
        elsewhere.path(),
        &["config", "--check"],
        &[("RISE_CONFIG_DIR", config_dir.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
}

#[test]
fn config_prints_the_merged_config_with_secrets_redacted() {
    let secret = "this-secret-must-never-be-printed-0123456789";
    let out = run(
        repo(),
        &["config"],
        &[
            ("RISE_JWT_SECRET", secret),
            ("RISE_LISTEN", "127.0.0.1:9999"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains(secret));
    assert!(stdout.contains("hs256_secret: '[REDACTED]'"), "{stdout}");
    assert!(
        stdout.contains("listen: 127.0.0.1:9999"),
        "substituted: {stdout}"
    );
    assert!(
        stdout.contains("namespace: rise-apps"),
        "development layer merged: {stdout}"
    );
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(&stdout).expect("the output is YAML that tools can read");
    assert_eq!(parsed["registry"]["type"], "oci-client-auth");
}

#[test]
fn a_bad_config_dir_reports_every_problem_and_exits_1() {
    let dir = write_dir(&[
        (
            "default.yaml",
            "registry:\n  type: oci-client-auth\n  registry_url: localhost:5000\nauth:\n  hs256_secret: a-test-secret-that-is-long-enough-0123456789\n",
        ),
        (
            "local.yml",
            "registry:\n  registy_url: x\nprojects:\n  - name: A\n",
        ),
    ]);
    let out = run(
        dir.path(),
        &["--config-dir", ".", "--run-mode", "default", "config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("./local.yml:2: registry.registy_url: unknown key"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `registry_url`?"), "{stderr}");
    assert!(
        stderr.contains("./local.yml:4: projects[0].name:"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no config printed on error");

    // With --log-format json the error is one JSON line, each problem with
    // its file, line and key.
    let out = run(
        dir.path(),
        &[
            "--config-dir",
            ".",
            "--run-mode",
            "default",
            "--log-format",
            "json",
            "config",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    let problems = line["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["file"] == "./local.yml"
            && p["line"] == 2
            && p["key"] == "registry.registy_url"
            && p["hint"].as_str().unwrap().contains("registry_url")),
        "{line}"
    );
}

#[test]
fn missing_and_ambiguous_layer_files_are_errors() {
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        empty.path(),
        &["--config-dir", ".", "config", "--check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no configuration file found"),
        "{}",
        text(&out.stderr)
    );

    let out = run(empty.path(), &["--config-dir", "nope", "config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nope: the config directory does not exist"));

    let both = write_dir(&[("default.yaml", "{}\n"), ("default.yml", "{}\n")]);
    let out = run(both.path(), &["--config-dir", ".", "config"], &[]);
    assert!(text(&out.stderr).contains("both `default.yaml` and `default.yml` exist"));

    let out = run(
        repo(),
        &["--run-mode", "../config/production", "config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("run mode `../config/production` must be"));

    // A typo is an error naming the run modes there are, never a silent run
    // on the defaults.
    let out = run(repo(), &["--run-mode", "prod", "config", "--check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("run mode `prod` has no file (`prod.yaml`)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "did you mean `production`? run modes here: development, oci-token, production"
        ),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let out = run(repo(), &["config", "--chek"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "usage errors are 1, not clap's 2"
    );
    assert!(
        text(&out.stderr).contains("--check"),
        "clap suggests the flag"
    );
    let out = run(repo(), &["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(repo(), &["--log-format", "xml", "config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    // One plan format at a time.
    let out = run(repo(), &["plan", "--json", "--markdown"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
    let out = run(repo(), &["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for word in [
        "plan",
        "apply",
        "serve",
        "config",
        "--config-dir",
        "--run-mode",
        "--log-format",
        "-v",
    ] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
}

/// Runs a command in this process through `run::run`, with `vars` as the
/// environment and no terminal: (result, stdout, stderr).
fn run_in_process(
    args: &[&str],
    vars: &[(&str, &str)],
) -> (anyhow::Result<Status>, String, String) {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("rise-registry").chain(args.iter().copied()))
        .expect("the arguments parse");
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut env = Env {
        vars: &lookup,
        stdout: &mut stdout,
        stderr: &mut stderr,
        terminal: None,
        colour: false,
        progress: false,
    };
    let result = rise_registry::run::run(cli, &mut env);
    (result, text(&stdout), text(&stderr))
}

fn shipped_config_dir() -> String {
    repo().join("config").to_str().unwrap().to_string()
}

#[test]
fn config_check_runs_in_process_and_warns_on_stderr_only() {
    let dir = shipped_config_dir();
    let (result, stdout, stderr) =
        run_in_process(&["--config-dir", &dir, "config", "--check"], &[]);
    assert_eq!(result.unwrap(), Status::Success);
    assert!(stdout.starts_with("OK: configuration is valid"), "{stdout}");
    assert_eq!(stderr, "", "the shipped development config needs no advice");

    let lax = write_dir(&[(
        "development.yaml",
        "registry: {type: oci-client-auth, registry_url: x}\nauth: {hs256_secret: a-test-secret-that-is-long-enough-0123456789}\n",
    )]);
    let dir = lax.path().to_str().unwrap();
    let (result, stdout, stderr) = run_in_process(&["--config-dir", dir, "config", "--check"], &[]);
    assert_eq!(result.unwrap(), Status::Success);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stderr.contains("warning: auth.issuer is not set"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: auth.audience is not set"),
        "{stderr}"
    );
}

#[test]
fn variables_come_from_the_env_given_to_run() {
    let dir = shipped_config_dir();
    let args = [
        "--config-dir",
        &dir,
        "--run-mode",
        "production",
        "config",
        "--check",
    ];
    let (result, _, _) = run_in_process(&args, &[]);
    let e = rise_registry::run::render_error(&result.unwrap_err());
    assert!(e.contains("`RISE_JWT_SECRET` is not set"), "{e}");
    let vars = [
        ("RISE_JWT_ISSUER", "https://auth.example.com"),
        ("RISE_JWT_SECRET", "a-production-secret-of-enough-length-42"),
    ];
    let (result, stdout, _) = run_in_process(&args, &vars);
    assert_eq!(result.unwrap(), Status::Success);
    assert!(stdout.contains("registry ecr"), "{stdout}");
}

#[test]
fn dev_ca_needs_no_configuration() {
    let out = tempfile::tempdir().unwrap();
    let pki = out.path().join("pki");
    let args = [
        "--config-dir",
        "/nonexistent",
        "oci-token",
        "dev-ca",
        "--out",
        pki.to_str().unwrap(),
    ];
    let (result, stdout, _) = run_in_process(&args, &[]);
    assert_eq!(result.unwrap(), Status::Success);
    assert!(stdout.contains("token.key"), "{stdout}");
    assert!(pki.join("ca.crt").is_file());
}

#[test]
fn token_ttl_is_bounded_instead_of_overflowing() {
    let out = run(repo(), &["token", "--ttl", "18446744073709551615"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--ttl"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
    let out = run(repo(), &["token", "--ttl", "600"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The published development secret is refused outside development, and
/// in development off loopback; serve never gets as far as listening.
#[test]
fn serve_refuses_the_published_secret_outside_development_on_loopback() {
    let config = std::fs::read_to_string(repo().join("config/development.yaml")).unwrap();
    let default = std::fs::read_to_string(repo().join("config/default.yaml")).unwrap();
    // An operator's own run mode that copied the development file.
    let dir = write_dir(&[
        ("default.yaml", &default),
        ("development.yaml", &config),
        ("staging.yaml", &config),
    ]);
    let d = dir.path().to_str().unwrap();
    for (args, why) in [
        (
            vec![
                "--config-dir",
                d,
                "--run-mode",
                "staging",
                "serve",
                "--listen",
                "127.0.0.1:0",
            ],
            "the run mode is `staging`",
        ),
        (
            vec!["--config-dir", d, "serve", "--listen", "0.0.0.0:0"],
            "listening on 0.0.0.0:0",
        ),
    ] {
        let out = run(repo(), &args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("development secret published"), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains("insecure-development-secret"), "{stderr}");
    }
}

/// A panic, which can only be a bug, is one line that says so and where
/// to report it: no backtrace and no Rust note unless `RUST_BACKTRACE`
/// asks, and with `--log-format json` that line is JSON like every other
/// error.
#[test]
fn a_panic_is_one_line_that_names_a_bug() {
    let panic = [("RISE_REGISTRY_DEBUG_PANIC", "1")];
    let out = run(repo(), &["config", "--check"], &panic);
    assert_eq!(out.status.code(), Some(101));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: rise-registry ")
            && stderr.contains("hit a bug, not a problem with your setup"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RISE_REGISTRY_DEBUG_PANIC is set at src/run.rs:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("docs/troubleshooting.md#reporting-a-bug"),
        "{stderr}"
    );

    let out = run(repo(), &["--log-format", "json", "config"], &panic);
    let line: serde_json::Value = serde_json::from_str(text(&out.stderr).trim()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["bug"], true);
    assert!(
        line["message"].as_str().unwrap().contains("hit a bug"),
        "{line}"
    );

    let out = run(repo(), &["config"], &[panic[0], ("RUST_BACKTRACE", "1")]);
    assert!(
        text(&out.stderr).contains("stack backtrace"),
        "{}",
        text(&out.stderr)
    );
}
