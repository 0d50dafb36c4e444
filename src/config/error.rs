//! [`ConfigError`]: every way start-up configuration can fail, each rendered as one line that
//! says where (file and line, or the command line), which key, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A command-line flag.
    CommandLine,
    /// A flag's environment variable (`PROMRELAY_...`); the key names the variable.
    Environment,
    /// The YAML file, with the 1-based line and column when the parser knows them.
    File {
        /// The `--config` path as given.
        path: PathBuf,
        /// 1-based line and column, `None` when unknown.
        line_col: Option<(usize, usize)>,
    },
}

impl Place {
    pub(crate) fn file(path: &Path, line_col: Option<(usize, usize)>) -> Self {
        Place::File {
            path: path.to_path_buf(),
            line_col,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::CommandLine => f.write_str("command line"),
            Place::Environment => f.write_str("environment"),
            Place::File {
                path,
                line_col: Some((line, col)),
            } => write!(f, "{}:{line}:{col}", path.display()),
            Place::File {
                path,
                line_col: None,
            } => write!(f, "{}", path.display()),
        }
    }
}

/// Why the configuration could not be loaded. `Display` is one line (user text is escaped), fit
/// to print as `promrelay: <error>` before exiting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for: not a failure. The clap error holds the text;
    /// [`ConfigError::report`] prints it to stdout and gives status 0.
    #[error("{0}")]
    HelpOrVersion(clap::Error),

    /// A command-line flag was unknown, lacked its value, or its value did not parse.
    #[error("command line: {0}")]
    Flag(String),

    /// A flag's environment variable held a value the flag does not take.
    #[error("environment: {var}: {reason}")]
    Environment {
        /// The variable, like `PROMRELAY_QUEUE_MAX_BYTES`.
        var: String,
        /// What is wrong with its value (the value itself only where it holds no secret).
        reason: String,
    },

    /// The `--config` file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    ReadFile {
        /// The file as given.
        path: PathBuf,
        /// Why.
        source: super::file::ReadFileError,
    },

    /// The YAML was malformed, had an unknown key, or a value of the wrong type or format.
    /// `key` is the path to the offending key, like `storages[1].queue_full`.
    #[error("{place}: {key}: {reason}")]
    Yaml {
        /// File and position.
        place: Place,
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A value was well-formed but not acceptable (out of range, conflicting with another
    /// setting, a file it names cannot be read).
    #[error("{place}: {key}: {reason}")]
    Invalid {
        /// Where the value came from.
        place: Place,
        /// The flag (`--cluster-member-num`) or YAML key (`storages[0].basic_auth`).
        key: String,
        /// What is wrong and, where it helps, how to fix it.
        reason: String,
    },

    /// Two storages have the same URL (user info ignored): they would share one queue directory.
    #[error("storage URL {url} is configured twice: {first} and {second}; remove one of them")]
    DuplicateUrl {
        /// The URL, password redacted.
        url: String,
        /// The first place, like `promrelay.yml:4:10 (storages[0].url)` or `--remote-write-url #1`.
        first: String,
        /// The second place.
        second: String,
    },

    /// Neither `--remote-write-url` nor `storages:` in the file named a storage.
    #[error(
        "no storage to forward to: add --remote-write-url http://host:8428/api/v1/write (repeat it for more) or a `storages:` list with `- url: ...` entries in the --config file"
    )]
    NoStorage,
}

impl ConfigError {
    /// True when the user asked for `--help` or `--version` (not a failure).
    pub fn is_help_or_version(&self) -> bool {
        matches!(self, ConfigError::HelpOrVersion(_))
    }

    /// Tells the user the conventional way and gives the status `main` returns: help and
    /// version text to stdout with status 0 (clap's own behaviour), any other error as
    /// `promrelay: <one line>` on stderr with status 2. Returning the status, rather than
    /// exiting here, leaves ending the process to `main` alone.
    pub fn report(self) -> std::process::ExitCode {
        match self {
            ConfigError::HelpOrVersion(e) => {
                // Nothing better to do when stdout is gone than to end with clap's status.
                let _ = e.print();
                std::process::ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            }
            other => {
                eprintln!("promrelay: {other}");
                std::process::ExitCode::from(2)
            }
        }
    }
}
