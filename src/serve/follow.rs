//! How serve's copy of the project store ([`super::snapshot`]) keeps up.
//!
//! [`follow`] keeps it current: a full read at start and every
//! [`FULL_READ_EVERY`], and, with PostgreSQL, one row re-read per change
//! announced on `LISTEN` (every replica sees a change within moments). A
//! write through this replica's API is applied at once. When the store is
//! down, the last snapshot stays in use (credentials for known projects
//! keep flowing) and reads are retried with back-off.
//!
//! Apart from the snapshot's values because it drives [`App`], which holds
//! them: the snapshot stays below the app, and this sits above both.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::app::App;
use super::snapshot::{Rows, StoreLink, StoredProject};
use crate::naming::ProjectName;
use crate::store::StoreError;

/// A full read also runs this often, in case a notification was lost.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(30);
/// Reads that failed are retried after this, doubling up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Reads the whole store into `app`; [`follow`] does this again every
/// [`FULL_READ_EVERY`].
///
/// # Errors
/// The store could not be read; the snapshot is unchanged.
pub async fn full_read(app: &App, link: &StoreLink) -> Result<(), StoreError> {
    let _sync = app.store_sync().await;
    match link.store.list().await {
        Ok(records) => {
            let rows: Rows = records
                .into_iter()
                .map(|r| (r.name.clone(), Arc::new(StoredProject::new(r))))
                .collect();
            app.set_rows(rows);
            link.set_up(&app.metrics, true);
            Ok(())
        }
        Err(e) => {
            link.set_up(&app.metrics, false);
            Err(e)
        }
    }
}

/// Keeps `app`'s snapshot current until `stop` turns true.
pub async fn follow(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let Some(link) = app.store_link() else {
        return;
    };
    let mut retry = RETRY_FIRST;
    loop {
        if *stop.borrow() {
            return;
        }
        // A fresh listener before the full read: a change made between the
        // two is then both read and announced, never neither.
        let listener = match link.store.listener().await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for project changes");
                link.set_up(&app.metrics, false);
                None
            }
        };
        let listening = listener.is_some() || !link.store.is_shared();
        if let Err(e) = full_read(&app, link).await {
            tracing::debug!(error = %e, "reading the project store");
        }
        if !link.up() || !listening {
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = stop.changed() => return,
            }
            retry = (retry * 2).min(RETRY_MAX);
            continue;
        }
        retry = RETRY_FIRST;
        let Some(mut listener) = listener else {
            // SQLite: this process is the only writer, and applies its own
            // writes; a periodic read is all that is left to do.
            tokio::select! {
                () = tokio::time::sleep(FULL_READ_EVERY) => {}
                _ = stop.changed() => return,
            }
            continue;
        };
        let next_full = tokio::time::Instant::now() + FULL_READ_EVERY;
        loop {
            let notification = tokio::select! {
                n = listener.try_recv() => n,
                () = tokio::time::sleep_until(next_full) => break,
                _ = stop.changed() => return,
            };
            match notification {
                Ok(Some(first)) => {
                    // Take every change already waiting, then read each
                    // named row once.
                    let mut names = vec![first.payload().to_string()];
                    while let Some(more) = listener.next_buffered() {
                        names.push(more.payload().to_string());
                    }
                    names.sort();
                    names.dedup();
                    if let Err(e) = reread(&app, link, &names).await {
                        tracing::debug!(error = %e, "re-reading changed projects");
                        break;
                    }
                }
                // The connection was lost (`None`) or failed: notifications
                // may have been missed, so start over with a full read.
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// Re-reads the rows `names` and applies them.
async fn reread(app: &App, link: &StoreLink, names: &[String]) -> Result<(), StoreError> {
    let _sync = app.store_sync().await;
    let mut changes = Vec::with_capacity(names.len());
    for name in names {
        // A payload that is not a project name is no row of ours.
        let Ok(name) = ProjectName::parse(name) else {
            continue;
        };
        match link.store.get(&name).await {
            Ok(record) => changes.push((name, record)),
            Err(e) => {
                link.set_up(&app.metrics, false);
                return Err(e);
            }
        }
    }
    app.patch_rows(changes);
    link.set_up(&app.metrics, true);
    Ok(())
}
