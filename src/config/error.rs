//! Configuration errors: each names the file, line (where known) and key
//! path, and the loader reports all of them at once.

use std::fmt;
use std::sync::Arc;

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as the user named it (relative to where they ran the tool).
    pub file: Arc<str>,
    /// 1-based; `None` when the problem is about the config as a whole.
    pub line: Option<usize>,
}

impl Origin {
    pub fn at(file: Arc<str>, line: usize) -> Self {
        Self {
            file,
            line: Some(line),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// What is wrong with one value, before it is placed at a file, line and
/// key path: what value parsers, substitution and name checks return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<crate::naming::NameError> for Problem {
    fn from(e: crate::naming::NameError) -> Self {
        Self {
            message: e.message,
            hint: e.hint,
        }
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    /// Dotted key path such as `projects[1].name`; empty for file-level errors.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(origin: Origin, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            origin,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// `problem`, placed at `origin` and `path`.
    pub fn at(origin: Origin, path: impl Into<String>, problem: Problem) -> Self {
        Self {
            origin,
            path: path.into(),
            message: problem.message,
            hint: problem.hint,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.len() {
            1 => f.write_str("the configuration has 1 problem:")?,
            n => write!(f, "the configuration has {n} problems:")?,
        }
        for e in &self.0 {
            // Indent continuation lines (hints) under their problem.
            write!(f, "\n  {}", e.to_string().replace('\n', "\n  "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Orders problems by file, then line, so output reads top to bottom.
    /// The sort is stable, so problems on one line keep the order found.
    pub fn sorted(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by(|a, b| {
            (a.origin.file.as_ref(), a.origin.line).cmp(&(b.origin.file.as_ref(), b.origin.line))
        });
        Self(errors)
    }
}
