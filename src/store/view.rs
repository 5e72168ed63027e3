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
    config.index_projects();
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
    let merged = with_records(config, opened.list().await?);
    tracing::info!(
        from_config = config.projects.len(),
        from_store = merged.projects.len() - config.projects.len(),
        store = %opened.describe(),
        "projects"
    );
    Ok(merged)
}

/// `config` with the projects of `records` (rows already read) added, as
/// [`with_store_projects`] adds them; a clash is warned about.
pub fn with_records(config: &Config, records: Vec<Record>) -> Config {
    let rows: Rows = records
        .into_iter()
        .map(|r| (r.name.clone(), Arc::new(StoredProject::new(r))))
        .collect();
    for name in clashes(config, &rows) {
        tracing::warn!(project = %name, "a project of the store has the name of one declared in config: the config's wins");
    }
    effective(config, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let yaml = "registry: {type: oci-client-auth, registry_url: \"localhost:5000\"}\nprojects: [{name: declared, access: [\"user:carol\"]}]\nauth: {hs256_secret: view-test-secret-view-test-secret-012345}\n";
        let sources = [crate::config::Source {
            file: Arc::from("default.yaml"),
            text: yaml.into(),
        }];
        crate::config::load_sources(&sources, &Arc::from("config"), &|_| None).unwrap()
    }

    fn row(name: &str, state: RepoState, spec: &str) -> (ProjectName, Arc<StoredProject>) {
        let record = Record::for_test(name, state, spec);
        (record.name.clone(), Arc::new(StoredProject::new(record)))
    }

    #[test]
    fn config_wins_deleting_and_unreadable_rows_admit_nobody() {
        let base = config();
        let rows: Rows = [
            row(
                "declared",
                RepoState::Ready,
                r#"{"access": ["user:mallory"]}"#,
            ),
            row("live", RepoState::Pending, r#"{"access": ["user:dave"]}"#),
            row("going", RepoState::Deleting, r#"{"access": ["user:dave"]}"#),
            row("garbled", RepoState::Ready, r#"{"access": "not a list"}"#),
            row("broken-json", RepoState::Ready, "{"),
        ]
        .into_iter()
        .collect();
        let merged = effective(&base, &rows);
        let names: Vec<&str> = merged.projects.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["declared", "live"]);
        let p = |n: &str| merged.project(&ProjectName::parse(n).unwrap());
        assert_eq!(p("declared").unwrap().access[0].to_string(), "user:carol");
        assert_eq!(p("live").unwrap().access[0].to_string(), "user:dave");
        assert!(p("going").is_none() && p("garbled").is_none() && p("nope").is_none());
        assert_eq!(
            clashes(&base, &rows),
            [&ProjectName::parse("declared").unwrap()]
        );
        assert!(
            rows[&ProjectName::parse("broken-json").unwrap()]
                .spec
                .is_err()
        );
    }

    #[test]
    fn thousands_of_projects_are_found_by_name() {
        let base = config();
        let rows: Rows = (0..10_000)
            .map(|i| row(&format!("p{i}"), RepoState::Ready, r#"{"access": []}"#))
            .collect();
        let merged = effective(&base, &rows);
        assert_eq!(merged.projects.len(), 10_001);
        for i in [0, 4_999, 9_999] {
            let name = ProjectName::parse(&format!("p{i}")).unwrap();
            assert_eq!(merged.project(&name).map(|p| &p.name), Some(&name));
        }
    }
}
