//! `doctor`: runs the checks for the configured registry type (and a
//! running serve, with `--url`) and prints them, as text or JSON. Read
//! only: nothing it calls changes AWS or a registry.

use anyhow::{Result, bail};

use super::{Env, Status};
use crate::commands::login::{self, TokenFlags};
use crate::config::Location;
use crate::config::{Config, RegistryConfig};
use crate::doctor::{Report, live};
use crate::naming::ProjectName;
use crate::secret::Secret;

/// `doctor`'s settings.
#[derive(Debug)]
pub struct DoctorSettings {
    /// Only these projects (all configured when empty).
    pub projects: Vec<String>,
    pub json: bool,
    pub url: Option<String>,
    /// `--token`, `--token-file` or `--token-env` (at most one).
    pub token: TokenFlags,
}

/// The token `--url`'s checks ask serve with, from the flag that gives it,
/// read as `login` reads it; `None` without one (doctor has no CI
/// fallback).
///
/// # Errors
/// As [`login::token_source`] and [`login::read_local`].
fn token(flags: &TokenFlags, env: &mut Env<'_>) -> Result<Option<Secret<String>>> {
    if flags.token.is_none() && flags.file.is_none() && flags.env.is_none() {
        return Ok(None);
    }
    let source = login::token_source(flags, env.vars)?;
    login::read_local(source, env).map(Some)
}

/// The projects to check: those named, each of which must be configured,
/// or all.
fn select(config: &Config, names: &[String]) -> Result<Vec<ProjectName>> {
    if names.is_empty() {
        return Ok(config.projects.iter().map(|p| p.name.clone()).collect());
    }
    let mut out = Vec::new();
    for name in names {
        let known = ProjectName::parse(name)
            .ok()
            .filter(|p| config.project(p).is_some());
        match known {
            Some(p) => out.push(p),
            None => {
                let list: Vec<&str> = config.projects.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "--project {name}: no such project in the configuration\n  hint: configured projects: {}",
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.join(", ")
                    }
                );
            }
        }
    }
    Ok(out)
}

/// Runs the checks and prints the report; [`Status::Failed`] when any
/// check failed or was skipped.
///
/// # Errors
/// An unknown `--project`, or a failed write.
pub fn run(
    config: &Config,
    location: &Location,
    settings: &DoctorSettings,
    env: &mut Env<'_>,
) -> Result<Status> {
    let runtime = crate::runtime::build()?;
    // The store's projects are checked like the config's; a store that
    // cannot be read is its own failed check.
    // The store is read once: its rows serve both.
    let store_seen = runtime.block_on(crate::doctor::store::gather(config));
    let merged = match &store_seen {
        Some(seen) if seen.opened.is_ok() => {
            crate::store::view::with_records(config, seen.rows.clone())
        }
        _ => config.clone(),
    };
    let config = &merged;
    let projects = select(config, &settings.projects)?;
    let token = token(&settings.token, env)?;
    let live_options = live::Options {
        projects: &projects,
        url: settings.url.as_deref(),
        token: token.as_ref().map(|t| t.expose().as_str()),
        location,
        vars: env.vars,
    };
    let report = runtime.block_on(async {
        let mut checks = match &config.registry {
            RegistryConfig::Ecr(ecr) => live::ecr(config, ecr, &live_options).await,
            RegistryConfig::OciToken(oci) => live::oci_token(config, oci, &live_options).await,
            RegistryConfig::OciClientAuth(oci) => live::oci_client_auth(oci, &live_options).await,
        };
        checks.extend(live::issuers(config).await);
        if let Some(seen) = &store_seen {
            checks.extend(crate::doctor::store::checks(
                seen,
                crate::clock::unix_now_ms(),
            ));
        }
        if let Some(url) = settings.url.as_deref() {
            checks.extend(live::serve(url, &live_options).await);
        }
        Report::new(config.registry.type_name(), checks)
    });
    if settings.json {
        writeln!(
            env.stdout,
            "{}",
            serde_json::to_string_pretty(&report.to_json())?
        )?;
    } else {
        write!(env.stdout, "{}", report.to_text(env.colour))?;
    }
    Ok(if report.ok() {
        Status::Success
    } else {
        Status::Failed
    })
}
