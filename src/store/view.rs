//! What the store's rows mean beside the config: each row's rules read by
//! the config's own reader, and the projects a run works on, config and
//! store merged ([`effective`]). serve's snapshot, the controller,
//! `plan`/`apply` and doctor all merge the same way.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{Record, RepoState};
use crate::config::{Config, ProjectSpec, project_spec};
use crate::naming::ProjectName;

/// One row and what its rules mean.
#[derive(Debug, Clone)]
pub struct StoredProject {
    pub record: Record,
    /// The rules; an error when the row's spec cannot be read (such a
    /// project admits nobody).
    pub spec: Result<ProjectSpec, String>,
}

impl StoredProject {
    pub fn new(record: Record) -> Self {
        let spec = serde_json::from_str(&record.spec)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                project_spec(&v, None).map_err(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            });
        if let Err(e) = &spec {
            tracing::error!(project = %record.name, error = %e, "a stored project's rules cannot be read; it admits nobody");
        }
        Self { record, spec }
    }
}

/// Every row of the store, by name.
pub type Rows = BTreeMap<ProjectName, Arc<StoredProject>>;

/// The configuration requests run on: `base` (the files) with the store's
/// projects added, except those the files declare too (config wins), those
/// being deleted, and those whose rules cannot be read.
pub fn effective(base: &Config, rows: &Rows) -> Config {
    let mut config = base.clone();
    if rows.is_empty() {
        return config;
    }
    let declared: HashSet<&ProjectName> = base.projects.iter().map(|p| &p.name).collect();
    config.projects.extend(rows.values().filter_map(|row| {
        let usable =
            row.record.state != RepoState::Deleting && !declared.contains(&row.record.name);
        match (&row.spec, usable) {
            (Ok(spec), true) => Some(spec.project(row.record.name.clone())),
            _ => None,
        }
    }));
    config
}

/// Names the config and the store both hold: the store's row is ignored.
pub fn clashes<'a>(base: &'a Config, rows: &Rows) -> Vec<&'a ProjectName> {
    base.projects
        .iter()
        .map(|p| &p.name)
        .filter(|n| rows.contains_key(*n))
        .collect()
}

/// `config` with the store's projects added, as serve would merge them:
/// what `plan`, `apply` and doctor work on, so a reviewed plan shows every
/// repository and never orphans one a project of the store still has.
/// Without `store`, `config` as it is.
///
/// # Errors
/// The store cannot be read (named, never by its URL).
pub async fn with_store_projects(config: &Config) -> Result<Config, super::StoreError> {
    let Some(store) = &config.store else {
        return Ok(config.clone());
    };
    let Some(opened) = super::Store::open_existing(&store.url).await? else {
        return Ok(config.clone());
    };
    let rows: Rows = opened
        .list()
        .await?
        .into_iter()
        .map(|r| (r.name.clone(), Arc::new(StoredProject::new(r))))
        .collect();
    for name in clashes(config, &rows) {
        tracing::warn!(project = %name, "a project of the store has the name of one declared in config: the config's wins");
    }
    let merged = effective(config, &rows);
    tracing::info!(
        from_config = config.projects.len(),
        from_store = merged.projects.len() - config.projects.len(),
        store = %opened.describe(),
        "projects"
    );
    Ok(merged)
}
