//! The one async runtime a command runs on: multi-threaded, with I/O and
//! timers. Commands are synchronous at the top and enter it once.

use anyhow::{Context, Result};

/// A runtime for one command.
///
/// # Errors
/// The operating system refused the threads or the I/O driver.
pub fn build() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
