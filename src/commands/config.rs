//! `rise-registry config [--check]`: the effective configuration.

use std::io::Write;

use anyhow::{Context, Result};

use super::Status;
use crate::config::{Loaded, RegistryConfig};
use crate::registry::oci_token::OciTokenProvider;

/// Prints the merged configuration as YAML (secrets redacted), or with
/// `check` a one-line summary. Problems of the files themselves never get
/// here: loading failed first. `--check` also loads what the files point
/// at and serve would read at start (`oci-token`'s key and chain).
///
/// # Errors
/// When a file the configuration names is unusable, or writing fails.
pub fn run(loaded: &Loaded, check: bool, out: &mut dyn Write) -> Result<Status> {
    let files = loaded.files.join(", ");
    if check {
        let config = &loaded.config;
        if let RegistryConfig::OciToken(oci) = &config.registry {
            OciTokenProvider::load(oci)?;
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
