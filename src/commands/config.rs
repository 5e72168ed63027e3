//! `rise-registry config [--check]`: the effective configuration.

use anyhow::{Context, Result};

use super::{Env, Status};
use crate::config::{Config, ConfigErrors, Loaded, RegistryConfig, recommendations};
use crate::registry::oci_token::OciTokenProvider;

/// Prints the merged configuration as YAML (secrets redacted), or with
/// `check` a one-line summary (and, on stderr, a `warning:` line for each
/// setting that is valid but weaker than it should be). Problems of the
/// config files themselves never get here: loading failed first.
/// `--check` also reads the files config names, as serve does at start
/// ([`check_files`]).
///
/// # Errors
/// When a file the configuration names is unusable, or writing fails.
pub fn run(loaded: &Loaded, check: bool, env: &mut Env<'_>) -> Result<Status> {
    let files = loaded.files.join(", ");
    let out = &mut *env.stdout;
    if check {
        let config = &loaded.config;
        check_files(config)?;
        for advice in recommendations(config) {
            writeln!(env.stderr, "warning: {advice}")?;
        }
        let n = config.projects.len();
        let from_store = match &config.store {
            Some(store) => match crate::runtime::build()?.block_on(store_projects(config)) {
                Ok((rows, clashes)) => {
                    for name in clashes {
                        writeln!(
                            env.stderr,
                            "warning: project `{name}` is declared in config and held in the store: config's wins, the store's row is ignored"
                        )?;
                    }
                    format!(", {rows} in the store")
                }
                Err(e) => {
                    writeln!(
                        env.stderr,
                        "warning: the project store ({}) could not be read: {e}",
                        store.url.describe()
                    )?;
                    String::new()
                }
            },
            None => String::new(),
        };
        writeln!(
            out,
            "OK: configuration is valid ({files}; registry {}, {n} project{}{from_store})",
            config.registry.type_name(),
            if n == 1 { "" } else { "s" }
        )?;
    } else {
        let yaml = serde_yaml::to_string(&loaded.config).context("rendering the configuration")?;
        write!(out, "# effective configuration from {files}\n{yaml}")?;
    }
    Ok(Status::Success)
}

/// How many rows the store holds, and the names it shares with config.
async fn store_projects(config: &Config) -> Result<(usize, Vec<String>)> {
    let Some(store) = &config.store else {
        return Ok((0, Vec::new()));
    };
    let read = async {
        let Some(opened) = crate::store::Store::open_existing(&store.url).await? else {
            return Ok::<_, crate::store::StoreError>((0, Vec::new()));
        };
        let rows = opened.list().await?;
        let clashes = rows
            .iter()
            .filter(|r| config.project(&r.name).is_some())
            .map(|r| r.name.to_string())
            .collect();
        Ok((rows.len(), clashes))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .context("no answer within 10 s")?
        .map_err(Into::into)
}

/// Reads and checks every file config names the way serve will use it: the
/// TLS certificate and key (parse, and the key fits the certificate), and
/// oci-token's signing key and chain (parse, and the leaf certifies the
/// key). `config --check` and serve's start-up share it, so they refuse the
/// same things with the same words.
///
/// # Errors
/// Every problem found, each at the key (file and line) that named the file.
pub fn check_files(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    if let Some(tls) = &config.server.tls
        && let Err(e) = crate::serve::tls::acceptor(tls)
    {
        errors.extend(e.0);
    }
    if let RegistryConfig::OciToken(oci) = &config.registry
        && let Err(e) = OciTokenProvider::load(oci)
    {
        errors.extend(e.0);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors::sorted(errors))
    }
}
