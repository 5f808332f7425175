//! The analyzer's error type. `Display` is one line naming the file.

use std::path::PathBuf;

use snn_formats::FormatError;

/// Everything that can go wrong in `snn-analyze`.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A spike file or the output directory (see [`FormatError`]).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An input file or directory is missing, malformed or inconsistent.
    #[error("{}: {message}", path.display())]
    Input {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An I/O operation on an output file failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option value is invalid (e.g. `--t-start` not before `--t-stop`).
    #[error("{0}")]
    Usage(String),
}

impl AnalyzeError {
    /// Shorthand for [`AnalyzeError::Input`].
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        AnalyzeError::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`AnalyzeError::Io`].
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        AnalyzeError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// The message on one line (line breaks of nested library errors
    /// replaced by "; ").
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}
