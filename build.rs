//! Names the commit a build comes from: `RISE_REGISTRY_REVISION` from the
//! environment (`scripts/release` and the Dockerfile set it), `unknown`
//! otherwise. serve exports it in `rise_registry_build_info`, and
//! `--version` prints it.

fn main() {
    println!("cargo:rerun-if-env-changed=RISE_REGISTRY_REVISION");
    let revision = std::env::var("RISE_REGISTRY_REVISION")
        .ok()
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RISE_REGISTRY_REVISION={revision}");
}
