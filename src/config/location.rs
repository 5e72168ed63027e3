//! Where a run's configuration lives: the directory of layer files and the
//! run mode that picks the middle layer. One value, made once from the
//! command line, read by every command that loads the configuration, by
//! serve's reload (which loads it again) and by every hint that names a
//! command: a hint must work when pasted, so it repeats `--config-dir` and
//! `--run-mode` when they are not the defaults.

use std::path::{Path, PathBuf};

use super::{ConfigErrors, Loaded, Source};

/// `--config-dir` when neither the flag nor `RISE_CONFIG_DIR` is given.
pub const DEFAULT_CONFIG_DIR: &str = "config";
/// `--run-mode` when neither the flag nor `RISE_CONFIG_RUN_MODE` is given.
pub const DEFAULT_RUN_MODE: &str = "development";

/// The configuration directory and run mode of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    dir: PathBuf,
    run_mode: String,
    /// `rise-registry` with the flags that select this location.
    command: String,
}

impl Location {
    pub fn new(dir: &Path, run_mode: &str) -> Self {
        let mut command = String::from("rise-registry");
        if dir != Path::new(DEFAULT_CONFIG_DIR) {
            command.push_str(" --config-dir ");
            command.push_str(&shell_word(&dir.display().to_string()));
        }
        if run_mode != DEFAULT_RUN_MODE {
            command.push_str(" --run-mode ");
            command.push_str(&shell_word(run_mode));
        }
        Self {
            dir: dir.to_path_buf(),
            run_mode: run_mode.to_string(),
            command,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_mode(&self) -> &str {
        &self.run_mode
    }

    /// Reads, merges and validates the layers ([`super::load`]).
    ///
    /// # Errors
    /// Every problem found, each with its file, line and key.
    pub fn load(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigErrors> {
        super::load(&self.dir, &self.run_mode, env)
    }

    /// The layer files, read but not parsed ([`super::read_layers`]).
    ///
    /// # Errors
    /// As [`Self::load`], for the files themselves.
    pub fn read_layers(&self) -> Result<Vec<Source>, ConfigErrors> {
        super::read_layers(&self.dir, &self.run_mode)
    }

    /// The command line for `args` (already shell words) run on this
    /// location, for a hint.
    pub fn command(&self, args: &str) -> String {
        format!("{} {args}", self.command)
    }
}

/// `word` as one shell word: as is when it is plain, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_carry_the_config_dir_and_run_mode_of_the_run() {
        let default = Location::new(Path::new("config"), "development");
        assert_eq!(default.command("apply"), "rise-registry apply");
        let prod = Location::new(Path::new("/etc/rise"), "production");
        assert_eq!(
            prod.command("apply plan.json"),
            "rise-registry --config-dir /etc/rise --run-mode production apply plan.json"
        );
        let spaced = Location::new(Path::new("my config/it's"), "development");
        assert_eq!(
            spaced.command("plan"),
            "rise-registry --config-dir 'my config/it'\\''s' plan"
        );
    }

    #[test]
    fn hints_repeat_only_what_is_not_the_default() {
        let default = Location::new(Path::new(DEFAULT_CONFIG_DIR), DEFAULT_RUN_MODE);
        assert_eq!(default.command("plan"), "rise-registry plan");
        let custom = Location::new(Path::new("/etc/rise registry"), "production");
        assert_eq!(
            custom.command("apply plan.json"),
            "rise-registry --config-dir '/etc/rise registry' --run-mode production apply plan.json"
        );
        assert_eq!(custom.dir(), Path::new("/etc/rise registry"));
        assert_eq!(custom.run_mode(), "production");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
