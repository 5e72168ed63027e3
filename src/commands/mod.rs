//! One module per subcommand. Each takes loaded settings and an [`Env`]
//! (or just the writer it needs) and returns a [`Status`]; none touches the
//! process's streams, variables or terminal directly, so every command runs
//! the same in a test as from a shell.

use std::io::{BufRead, IsTerminal, Write};

pub mod config;
pub mod doctor;
pub mod login;
pub mod oci_token;
pub(crate) mod progress;
pub mod reconcile;
pub mod serve;
pub mod token;

/// How a successful command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// `plan --detailed-exitcode` found changes (exit code 2).
    Changes,
    /// A check found a problem (`doctor`): exit code 1, with the report
    /// already printed instead of an error.
    Failed,
}

/// What a command may use of the process it runs in. `run::main` passes
/// the real process; tests pass buffers, a map of variables and a scripted
/// terminal.
pub struct Env<'a> {
    /// Environment variables, for `${VAR}` in config files.
    pub vars: &'a dyn Fn(&str) -> Option<String>,
    /// The command's data (plans, tokens, config): what pipelines read.
    pub stdout: &'a mut dyn Write,
    /// Questions and progress meant for the person at the terminal, so
    /// they never mix into data on stdout.
    pub stderr: &'a mut dyn Write,
    /// Where a confirmation is read; `None` when there is no terminal to
    /// ask on (then nothing that needs one is done).
    pub terminal: Option<&'a mut dyn BufRead>,
    /// Whether stdout takes colour (see [`colour_enabled`]).
    pub colour: bool,
    /// Whether long runs may draw progress on the process's stderr (a
    /// terminal that can redraw; see `progress::progress_enabled`). Off
    /// in tests, whose stderr is a buffer.
    pub progress: bool,
}

/// Colour on `stream` only when it is a terminal, and never when NO_COLOR
/// is set to anything. One rule for logs and plans.
pub(crate) fn colour_enabled(stream: &impl IsTerminal) -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
}
