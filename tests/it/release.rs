//! `scripts/release`, run as a release is made, up to (not including)
//! publishing: with this build's binary (stripped, as the container tests
//! use it) and a private Docker engine ([`Docker`]), into an empty folder.
//! The folder must hold exactly the binary, the image, the chart and their
//! checksums, each usable as published.

use std::path::{Path, PathBuf};
use std::process::Command;

use support::docker::{Docker, base_image_tar};
use support::server::BIN;

use crate::container::dockerfile_arg;
use crate::support;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `VALUE` of the first `key: VALUE` line of `yaml` (unquoted).
fn yaml_field(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{yaml}"))
        .trim()
        .trim_matches('"')
        .to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn in_dir(dir: &Path, program: &str, args: &[&str]) -> String {
    run(Command::new(program).args(args).current_dir(dir))
}

#[test]
fn a_release_folder_holds_the_binary_the_image_and_the_chart_with_checksums() {
    let docker = Docker::start();
    docker.import(&base_image_tar(), &dockerfile_arg("RUNTIME_IMAGE"));
    let work = tempfile::tempdir().unwrap();
    let binary = work.path().join("rise-registry");
    let stripped = Command::new("objcopy")
        .args(["--strip-debug", BIN, binary.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(BIN, &binary).unwrap();
    }
    // The script calls `$DOCKER`: this engine's client, on its socket.
    let wrapper = work.path().join("docker");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} --host {} \"$@\"\n",
            docker.client().display(),
            docker.host()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = work.path().join("release");
    run(Command::new(repo().join("scripts/release"))
        .args(["--binary", binary.to_str().unwrap(), "--allow-dirty"])
        .arg(&out)
        .env("DOCKER", &wrapper)
        .env("DOCKER_BUILDKIT", "1"));

    let version = env!("CARGO_PKG_VERSION");
    let chart_yaml =
        std::fs::read_to_string(repo().join("charts/rise-registry/Chart.yaml")).unwrap();
    let chart_version = yaml_field(&chart_yaml, "version");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let image = format!("rise-registry-{version}-image.tar.gz");
    let bin = format!("rise-registry-{version}-linux-x86_64");
    let chart = format!("rise-registry-{chart_version}.tgz");
    let mut expected = vec![
        "SHA256SUMS".to_string(),
        image.clone(),
        bin.clone(),
        chart.clone(),
    ];
    expected.sort();
    assert_eq!(files, expected);

    // The checksums cover every other file and verify.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 3, "{sums}");
    in_dir(&out, "sha256sum", &["--check", "--strict", "SHA256SUMS"]);

    // The binary is this version.
    let reported = run(Command::new(out.join(&bin)).arg("--version"));
    assert!(
        reported.starts_with(&format!("rise-registry {version}")),
        "{reported}"
    );

    // The image loads as rise-registry:VERSION, labelled with the version
    // and the commit the binary says it was built from, and runs it.
    let built_from = reported
        .trim()
        .strip_prefix(&format!("rise-registry {version} ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version: {reported}"))
        .to_string();
    let tag = format!("rise-registry:{version}");
    docker.run(&["image", "rm", &tag]);
    docker.run(&["load", "--input", out.join(&image).to_str().unwrap()]);
    let labels: serde_json::Value = serde_json::from_str(&docker.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &tag,
    ]))
    .unwrap();
    assert_eq!(
        labels["org.opencontainers.image.version"], version,
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"],
        built_from.as_str(),
        "{labels}"
    );
    let ran = docker.run(&["run", "--rm", "--network", "host", &tag, "--version"]);
    assert!(
        ran.starts_with(&format!("rise-registry {version}")),
        "{ran}"
    );

    // The chart archive is the chart: its Chart.yaml, values and schema.
    let listing = in_dir(&out, "tar", &["-tzf", &chart]);
    for file in [
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates/deployment.yaml",
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l == format!("rise-registry/{file}")),
            "{file} missing:\n{listing}"
        );
    }
    let packaged = in_dir(&out, "tar", &["-xzOf", &chart, "rise-registry/Chart.yaml"]);
    assert_eq!(yaml_field(&packaged, "appVersion"), version);
    assert_eq!(yaml_field(&packaged, "version"), chart_version);
}
