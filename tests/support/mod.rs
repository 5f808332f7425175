//! Helpers for the tests that run the real `snn-build` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// A config under `configs/`.
pub fn shipped_config(name: &str) -> PathBuf {
    repo().join("configs").join(name)
}

/// What a run of `snn-build` produced.
#[derive(Debug)]
pub struct Out {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Out {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panic with the run's output unless it succeeded.
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Out {
        assert!(self.ok(), "{what} failed: {self:?}");
        self
    }

    /// Check that the run failed cleanly: a non-zero exit code (not a
    /// signal), exactly one line on stderr containing every string of
    /// `must_contain`, and no sign of a panic. Returns the line.
    #[track_caller]
    pub fn expect_clean_error(&self, what: &str, must_contain: &[&str]) -> String {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "{what}: expected a non-zero exit code: {self:?}"
        );
        for bad in [
            "panicked",
            "RUST_BACKTRACE",
            "stack backtrace",
            "internal error",
        ] {
            assert!(
                !self.stderr.contains(bad),
                "{what}: stderr shows a panic or bug: {}",
                self.stderr
            );
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: expected exactly one line on stderr, got {:?}",
            self.stderr
        );
        for s in must_contain {
            assert!(
                lines[0].contains(s),
                "{what}: error {:?} does not contain {s:?}",
                lines[0]
            );
        }
        lines[0].to_string()
    }
}

/// Run `snn-build` with `args` (no terminal: no progress bar).
pub fn snn_build<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_snn-build"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run snn-build");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Shorthand for a path argument.
pub fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// Every file under `dir` (relative path -> bytes), recursively.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("dir entry");
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).expect("prefix").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Names of the entries of a directory, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Parse JSON printed on stdout.
#[track_caller]
pub fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", out.stdout))
}

/// Build the small every-rule fixture into `dest` with extra arguments.
pub fn build_small(dest: &Path, extra: &[&str]) -> Out {
    let mut args: Vec<OsString> = vec![
        fixture("small_all_rules.toml").into(),
        "-o".into(),
        dest.into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    snn_build(args)
}
