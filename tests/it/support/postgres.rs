//! A PostgreSQL server of the test's own: Debian's `postgresql-15`,
//! `initdb` into a temporary directory and `pg_ctl` on a free loopback
//! port, run as the `postgres` user (initdb refuses root). Stopped and
//! removed when dropped; [`Postgres::stop`] and [`Postgres::start`] let a
//! test take it away and bring it back with its data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{INSTALL_HINT, free_port};

/// Where Debian puts the server's programs.
fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("RISE_TEST_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("initdb").is_file() && dir.join("pg_ctl").is_file(),
        "PostgreSQL 15 is not installed at {}: {INSTALL_HINT}",
        dir.display()
    );
    dir
}

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// Runs `program` as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn check(what: &str, out: Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// A new cluster, started, with trust authentication on loopback.
    pub fn start_new() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("rise-pg-")
            .tempdir()
            .unwrap();
        // The postgres user must own the data directory and reach it.
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status();
        let data = dir.path().join("data");
        check(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data)
                .output()
                .unwrap(),
        );
        let pg = Self {
            dir,
            bin,
            port: free_port(),
        };
        pg.start();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again) on its port, waiting until it accepts.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        check(
            "pg_ctl start",
            as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-t", "30", "-D"])
                .arg(self.data())
                .args(["-o", &options, "-l"])
                .arg(self.dir.path().join("server.log"))
                .arg("start")
                .output()
                .unwrap(),
        );
    }

    /// Stops the server at once (`immediate`: as a crash would).
    pub fn stop(&self) {
        check(
            "pg_ctl stop",
            as_postgres(&self.bin.join("pg_ctl"))
                .args(["-w", "-D"])
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .output()
                .unwrap(),
        );
    }

    /// The URL of database `db` (created by [`Self::create_db`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db`.
    pub fn create_db(&self, db: &str) {
        check(
            "createdb",
            as_postgres(&self.bin.join("psql"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .args(["-c", &format!("CREATE DATABASE {db}")])
                .output()
                .unwrap(),
        );
    }

    /// Runs `sql` in database `db` with psql.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = as_postgres(&self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-At", "-c", sql])
            .output()
            .unwrap();
        check("psql", out.clone());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-D"])
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
