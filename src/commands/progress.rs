//! Progress for long `plan` and `apply` runs: one line on stderr
//! (`reading repositories [####    ] 412/900`), redrawn in place and
//! cleared when done, so nothing of it stays in the scrollback or mixes
//! into stdout.
//!
//! Drawn only where a person watches: stderr a terminal that can redraw a
//! line (`TERM` not `dumb`), and not with `--json`. The line has no colour,
//! so `NO_COLOR` needs nothing more. Everywhere else [`Progress`] is inert.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress may be drawn on stderr: it is a terminal, and `TERM`
/// is not `dumb` (a terminal that cannot move the cursor back).
pub(crate) fn progress_enabled(stderr_is_terminal: bool, term: Option<&OsStr>) -> bool {
    stderr_is_terminal && term.is_none_or(|t| t != "dumb")
}

/// A progress line on stderr, or nothing.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    /// Whether the count is shown yet (the total is known).
    counting: AtomicBool,
}

impl Progress {
    /// A line saying `what` with a count; drawn only when `enabled`.
    /// Until the first [`Self::set`] it says only `what…`.
    pub(crate) fn new(enabled: bool, what: &'static str) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{msg}…").expect("the template is valid"));
            bar.set_message(what);
            bar
        });
        Self {
            bar,
            counting: AtomicBool::new(false),
        }
    }

    /// `done` of `total` (nothing to count while `total` is 0).
    pub(crate) fn set(&self, done: usize, total: usize) {
        if total == 0 {
            return;
        }
        if let Some(bar) = &self.bar {
            if !self.counting.swap(true, Ordering::Relaxed) {
                bar.set_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
                        .expect("the template is valid")
                        .progress_chars("#> "),
                );
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    }

    /// One more done.
    pub(crate) fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Runs `f` (which writes to the same terminal) with the line hidden,
    /// so the two do not overwrite each other.
    pub(crate) fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Progress {
    /// Done, failed or interrupted alike: the line goes.
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_that_can_redraw_gets_progress() {
        assert!(progress_enabled(true, Some(OsStr::new("xterm-256color"))));
        assert!(progress_enabled(true, None));
        assert!(!progress_enabled(true, Some(OsStr::new("dumb"))));
        assert!(!progress_enabled(false, Some(OsStr::new("xterm"))));
    }

    #[test]
    fn a_disabled_progress_does_nothing_but_run_what_it_is_given() {
        let p = Progress::new(false, "reading");
        p.set(1, 2);
        p.inc();
        assert_eq!(p.suspend(|| 7), 7);
        assert!(p.bar.is_none());
    }
}
