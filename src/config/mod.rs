//! Layered configuration: read → parse (with origins) → merge → substitute
//! → validate into a typed [`Config`].
//!
//! Every step is a function of its inputs; only [`load`] touches the file
//! system and only its caller touches the process environment, so the whole
//! pipeline is tested from strings with [`load_sources`].

mod error;
mod layers;
mod location;
mod model;
mod reader;
mod safety;
mod schema;
mod substitute;
pub(crate) mod values;
mod yaml;

use std::path::Path;
use std::sync::Arc;

pub use error::{ConfigError, ConfigErrors, Origin, Problem};
pub use layers::Source;
pub use location::{DEFAULT_CONFIG_DIR, DEFAULT_RUN_MODE, Location, shell_word};
pub use model::*;
pub use safety::ShippedSecret;
pub(crate) use safety::check_serve_secret;
pub use safety::recommendations;
pub use schema::{ProjectSpec, project_spec};
pub use substitute::substitute;

/// A loaded configuration and the files it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The layer files read, lowest precedence first.
    pub files: Vec<Arc<str>>,
}

/// Loads the layers for `run_mode` from `dir`.
///
/// `env` looks up environment variables; pass `|k| std::env::var(k).ok()`
/// for the real environment.
///
/// # Errors
/// Every problem found, each with file, key path and line where known.
pub fn load(
    dir: &Path,
    run_mode: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let sources = layers::read_sources(dir, run_mode).map_err(ConfigErrors::sorted)?;
    let dir_label: Arc<str> = Arc::from(dir.display().to_string());
    let config = load_sources(&sources, &dir_label, env)?;
    Ok(Loaded {
        config,
        files: sources.into_iter().map(|s| s.file).collect(),
    })
}

/// The layer files for `run_mode` in `dir`, read but not parsed: what
/// [`load`] reads first, for callers that watch the files for changes
/// (serve's reload) and then load them with [`load_sources`].
///
/// # Errors
/// As [`load`], for the files themselves.
pub fn read_layers(dir: &Path, run_mode: &str) -> Result<Vec<Source>, ConfigErrors> {
    layers::read_sources(dir, run_mode).map_err(ConfigErrors::sorted)
}

/// The pure part of [`load`]: layer texts (lowest precedence first) to a
/// validated config. `dir` labels problems that belong to no one file.
///
/// # Errors
/// As [`load`].
pub fn load_sources(
    sources: &[Source],
    dir: &Arc<str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let dir_origin = Origin {
        file: dir.clone(),
        line: None,
    };
    let mut errors = Vec::new();
    let mut merged = yaml::Node::empty_map(dir_origin.clone());
    for source in sources {
        match yaml::parse(&source.file, &source.text) {
            Ok(node) => {
                if let yaml::Kind::Map(_) = node.kind {
                    merged = layers::merge(merged, node);
                } else {
                    errors.push(ConfigError::new(
                        node.origin.clone(),
                        "",
                        format!(
                            "the file must hold a map of settings, found {}",
                            node.type_name()
                        ),
                    ));
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    // A syntax error hides what the file meant, so validating the rest
    // would only produce noise.
    if !errors.is_empty() {
        return Err(ConfigErrors::sorted(errors));
    }
    substitute::substitute_tree(&mut merged, "", env, &mut errors);
    match schema::read_config(&merged, &dir_origin) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors::sorted(errors)),
        Err(more) => {
            // A value whose substitution failed was left as written, so the
            // schema may complain about it too; the substitution error is
            // the one that says what to fix.
            let failed: Vec<(Origin, String)> = errors
                .iter()
                .map(|e| (e.origin.clone(), e.path.clone()))
                .collect();
            errors.extend(
                more.into_iter()
                    .filter(|e| !failed.contains(&(e.origin.clone(), e.path.clone()))),
            );
            Err(ConfigErrors::sorted(errors))
        }
    }
}
