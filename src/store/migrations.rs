//! The store's schema, embedded in the binary, and the one way it changes:
//! at start, under a lock, every migration the database has not seen is
//! applied in order, in one transaction. A database whose schema is newer
//! than this binary knows is refused: an older release must not write
//! rows it cannot read back (a rollback during an upgrade is the usual way
//! to get there).
//!
//! Each migration is written once per database, because SQLite and
//! PostgreSQL differ exactly where it matters (notification triggers exist
//! only in PostgreSQL). Migrations are append-only: a released one is never
//! edited, since databases that ran it will not run it again.

/// One step of the schema.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The table that records which migrations ran.
pub(super) const SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS rise_registry_schema (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The PostgreSQL advisory lock taken while migrating: several replicas
/// starting at once migrate one after another, and the later ones find
/// nothing left to do. (The number is "rise" in ASCII, then "reg".)
pub(super) const PG_MIGRATION_LOCK: i64 = 0x7269_7365_0072_6567;

/// The channel each change to a project row is announced on (PostgreSQL).
pub const CHANNEL: &str = "rise_registry_projects";

/// The tables of migration 1, the same in both databases.
macro_rules! projects_tables {
    () => {
        "
CREATE TABLE rise_projects (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    message TEXT,
    reconciled_at BIGINT
);
CREATE TABLE rise_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
"
    };
}

const PROJECTS_SQLITE: &str = projects_tables!();

const PROJECTS_POSTGRES: &str = concat!(
    projects_tables!(),
    "-- Every change, by whichever writer, is announced with the project's name,
-- so every replica re-reads within moments (docs/projects.md).
CREATE FUNCTION rise_projects_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('rise_registry_projects', COALESCE(NEW.name, OLD.name));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rise_projects_changed
    AFTER INSERT OR UPDATE OR DELETE ON rise_projects
    FOR EACH ROW EXECUTE FUNCTION rise_projects_notify();
"
);

/// Every migration, oldest first; versions count up from 1 without gaps.
pub(super) const ALL: &[Migration] = &[Migration {
    version: 1,
    description: "projects and leases",
    sqlite: PROJECTS_SQLITE,
    postgres: PROJECTS_POSTGRES,
}];

/// The newest schema this binary knows.
pub fn latest() -> i64 {
    ALL.last().map_or(0, |m| m.version)
}

/// What to do, given the newest version the database has recorded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// Apply these, in order.
    Apply(Vec<&'a Migration>),
    /// The database was migrated by a newer binary.
    TooNew { found: i64, known: i64 },
}

pub(super) fn step(recorded: Option<i64>) -> Step<'static> {
    let recorded = recorded.unwrap_or(0);
    if recorded > latest() {
        return Step::TooNew {
            found: recorded,
            known: latest(),
        };
    }
    Step::Apply(ALL.iter().filter(|m| m.version > recorded).collect())
}

/// The statements of one migration's text, split on `;` at the end of a
/// line outside a dollar-quoted body. Both drivers run one statement per
/// call in a prepared form, so the text is sent a statement at a time.
pub(super) fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_body = false;
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        in_body ^= line.matches("$$").count() % 2 == 1;
        current.push_str(line);
        current.push('\n');
        if !in_body && trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_string();
            if !statement.is_empty() {
                out.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in ALL.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
        }
    }

    #[test]
    fn a_new_database_gets_every_migration_and_a_current_one_none() {
        assert_eq!(step(None), Step::Apply(ALL.iter().collect()));
        assert_eq!(step(Some(latest())), Step::Apply(vec![]));
        assert_eq!(
            step(Some(latest() + 3)),
            Step::TooNew {
                found: latest() + 3,
                known: latest()
            }
        );
    }

    #[test]
    fn a_function_body_stays_one_statement() {
        let s = statements(PROJECTS_POSTGRES);
        assert_eq!(s.len(), 4, "{s:#?}");
        assert!(s[2].starts_with("CREATE FUNCTION") && s[2].ends_with("LANGUAGE plpgsql"));
        assert!(s[2].contains("PERFORM pg_notify"));
        assert_eq!(statements(PROJECTS_SQLITE).len(), 2);
    }

    #[test]
    fn both_dialects_make_the_same_tables() {
        let tables = |sql: &str| -> Vec<String> {
            statements(sql)
                .into_iter()
                .filter(|s| s.starts_with("CREATE TABLE"))
                .collect()
        };
        for m in ALL {
            assert_eq!(tables(m.sqlite), tables(m.postgres), "{}", m.description);
        }
    }
}
