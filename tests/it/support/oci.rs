//! A minimal but complete OCI image, written as an OCI image layout that
//! skopeo can copy from (`oci:DIR:TAG`): one uncompressed layer holding one
//! file, its config, manifest and index, all content-addressed.

use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let d = digest(bytes);
    let hex = d.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
    d
}

/// A tar archive with one regular file (`hello.txt`).
fn tar_with_one_file(content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..9].copy_from_slice(b"hello.txt");
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// Writes the image layout under `dir` with tag `tag`; returns the
/// manifest digest.
pub fn write_layout(dir: &Path, tag: &str, content: &[u8]) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layer = tar_with_one_file(content);
    let layer_digest = put_blob(dir, &layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = put_blob(dir, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let manifest_digest = put_blob(dir, manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    manifest_digest
}

pub fn skopeo_bin() -> std::path::PathBuf {
    let path = std::env::var_os("RISE_TEST_SKOPEO")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/skopeo".into());
    assert!(
        path.is_file(),
        "skopeo is not installed at {}: run `scripts/install-test-deps` (scripts/test does it for you)",
        path.display()
    );
    path
}

/// Runs skopeo with its caches and auth files in `home`, so a root test run
/// writes nothing under /var/lib/containers or ~/.
pub fn skopeo(home: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(skopeo_bin())
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home)
        .env("TMPDIR", home)
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .output()
        .expect("running skopeo")
}
