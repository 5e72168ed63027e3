//! serve's copy of the project store, and its link to the store.
//!
//! Every request reads projects from one snapshot ([`super::app::Live`]):
//! the config's projects plus the store's rows, merged by [`effective`]
//! (config wins a name clash; a project being deleted gets no
//! credentials). The credential flow, the token realm and the projects
//! API's `GET` all answer from it, so they never disagree.
//!
//! [`super::follow`] keeps it current, from a file of its own so that
//! these values need nothing of [`super::app::App`], which holds them.

use std::sync::atomic::{AtomicBool, Ordering};

use super::metrics::Metrics;
use crate::store::Store;
pub use crate::store::view::{Rows, StoredProject, clashes, effective};

/// The store as serve uses it.
pub struct StoreLink {
    pub store: Store,
    /// Whether the last read succeeded.
    up: AtomicBool,
}

impl StoreLink {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            up: AtomicBool::new(true),
        }
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records whether the last read succeeded, saying so when it changes.
    pub(super) fn set_up(&self, metrics: &Metrics, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        if was != up {
            if up {
                tracing::info!(store = %self.store.describe(), "the project store answers again");
            } else {
                tracing::warn!(store = %self.store.describe(), "the project store cannot be read; serving the last snapshot of its projects");
            }
        }
        metrics.set_store_up(up);
    }
}
