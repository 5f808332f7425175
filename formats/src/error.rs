//! Errors of the formats crate. Every variant names the file it is about.

use std::path::PathBuf;

/// A problem with a model config. `Display` is one line naming the file and
/// the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Io {
        /// The config file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// The TOML does not parse.
    #[error("{file}{}: TOML syntax error: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        /// The config file.
        file: String,
        /// The parser's message.
        message: String,
        /// The line, when known.
        line: Option<usize>,
    },
    /// A `--set` override could not be applied.
    #[error("{file}: --set {setting}: {message}")]
    Override {
        /// The config file.
        file: String,
        /// The override as given.
        setting: String,
        /// What is wrong.
        message: String,
    },
    /// A field has the wrong type, is unknown or missing, or its value is
    /// invalid.
    #[error("{file}: {field}: {message}")]
    Field {
        /// The config file.
        file: String,
        /// The path of the field, e.g. `populations[2].size`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A problem with a network directory, shard or manifest.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O operation failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not what it should be (wrong magic, version, checksum,
    /// truncated, inconsistent).
    #[error("{}: {}", one_line(&.path.display().to_string()), one_line(.message))]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file is fine but does not fit the request (rank count, network).
    #[error("{}: {}", one_line(&.path.display().to_string()), one_line(.message))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// The output may not be written there, `--force` or not (it is an
    /// input, the current directory, a run in progress).
    #[error("{}: {}", one_line(&.path.display().to_string()), one_line(.message))]
    Refused {
        /// The output path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The output exists and `--force` was not given.
    #[error("{}: already exists and is not empty (use --force to replace it)", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// The embedded model config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// `text` with its control characters escaped as Rust writes them (a
/// newline as `\n`), so that a message quoting a damaged file (a field name
/// with a newline in it, say) is still one line.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

impl FormatError {
    /// Shorthand for [`FormatError::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        FormatError::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
    /// Shorthand for [`FormatError::Io`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}
