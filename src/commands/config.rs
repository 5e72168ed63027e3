//! `rise-registry config [--check]`: the effective configuration.

use anyhow::{Context, Result};

use super::{Env, Status};
use crate::config::{Loaded, RegistryConfig, recommendations};
use crate::registry::oci_token::OciTokenProvider;

/// Prints the merged configuration as YAML (secrets redacted), or with
/// `check` a one-line summary (and, on stderr, a `warning:` line for each
/// setting that is valid but weaker than it should be). Problems of the files themselves never get
/// here: loading failed first. `--check` also loads what the files point
/// at and serve would read at start (`oci-token`'s key and chain).
///
/// # Errors
/// When a file the configuration names is unusable, or writing fails.
pub fn run(loaded: &Loaded, check: bool, env: &mut Env<'_>) -> Result<Status> {
    let files = loaded.files.join(", ");
    let out = &mut *env.stdout;
    if check {
        let config = &loaded.config;
        if let RegistryConfig::OciToken(oci) = &config.registry {
            OciTokenProvider::load(oci)?;
        }
        for advice in recommendations(config) {
            writeln!(env.stderr, "warning: {advice}")?;
        }
        let n = config.projects.len();
        writeln!(
            out,
            "OK: configuration is valid ({files}; registry {}, {n} project{})",
            config.registry.type_name(),
            if n == 1 { "" } else { "s" }
        )?;
    } else {
        let yaml = serde_yaml::to_string(&loaded.config).context("rendering the configuration")?;
        write!(out, "# effective configuration from {files}\n{yaml}")?;
    }
    Ok(Status::Success)
}
