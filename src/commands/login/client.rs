//! The local container tooling `login` hands credentials to: which method
//! `--method auto` picks, finding a program on `PATH`, and running
//! `docker login` or `podman login` with the password on stdin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::{Grant, Method};

/// `docker login` / `podman login` may take this long (they contact the
/// registry).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `docker version` may take to show the daemon answers.
const DAEMON_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `--method auto` picks: docker when on PATH and its daemon answers
/// (`docker_answers`, `None` when not on PATH), else podman when on PATH,
/// else the config file.
pub fn auto_method(docker_answers: Option<bool>, podman_found: bool) -> Method {
    match (docker_answers, podman_found) {
        (Some(true), _) => Method::Docker,
        (_, true) => Method::Podman,
        _ => Method::ConfigFile,
    }
}

/// The first executable file called `program` in `path` (`PATH`'s value).
pub(super) fn find_on_path(program: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether `docker version` reaches a daemon: the docker CLI's login goes
/// through its daemon, so without one it cannot work.
pub(super) async fn docker_answers(docker: &Path) -> bool {
    let status = tokio::process::Command::new(docker)
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(DAEMON_PROBE_TIMEOUT, status).await,
        Ok(Ok(s)) if s.success()
    )
}

/// `{name} login --username U --password-stdin REGISTRY`, the password on
/// its stdin. Its own output is kept off our stdout, which holds only the
/// image; its stderr explains a failure.
pub(super) async fn client_login(
    program: &Path,
    name: &str,
    grant: &Grant,
    hidden: &[&str],
) -> Result<()> {
    let login = async {
        let mut command = tokio::process::Command::new(program);
        for var in hidden {
            command.env_remove(var);
        }
        let mut child = command
            .args([
                "login",
                "--username",
                &grant.username,
                "--password-stdin",
                "--",
            ])
            .arg(&grant.registry)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            // A client that exits early closes the pipe; its exit status
            // and stderr say why, so a failed write is not the error.
            let _ = stdin.write_all(grant.password.expose().as_bytes()).await;
        }
        child.wait_with_output().await.map_err(anyhow::Error::from)
    };
    let output = tokio::time::timeout(CLIENT_TIMEOUT, login)
        .await
        .map_err(|_| {
            anyhow!(
                "registry login failed: `{name} login {}` did not finish within {} s",
                grant.registry,
                CLIENT_TIMEOUT.as_secs()
            )
        })??;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    bail!(
        "registry login failed: `{name} login {}` {}: {}\n  hint: the credentials are fresh from the broker, so check that {} is reachable from here (and, for podman with a plain-HTTP registry, its registries.conf); --method config-file writes the login without contacting the registry",
        grant.registry,
        output.status,
        stderr.trim(),
        grant.registry,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_a_docker_daemon_then_podman_then_the_file() {
        assert_eq!(auto_method(Some(true), true), Method::Docker);
        assert_eq!(auto_method(Some(false), true), Method::Podman);
        assert_eq!(auto_method(None, true), Method::Podman);
        assert_eq!(auto_method(Some(false), false), Method::ConfigFile);
        assert_eq!(auto_method(None, false), Method::ConfigFile);
    }

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("docker"), "").unwrap();
        std::fs::write(b.join("docker"), "").unwrap();
        std::fs::set_permissions(b.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(
            find_on_path("docker", path.to_str()),
            Some(b.join("docker"))
        );
        assert_eq!(find_on_path("podman", path.to_str()), None);
        assert_eq!(find_on_path("docker", None), None);
    }
}
