//! Helpers for the tests that run the real binaries (`snn-build`,
//! `snn-sim`, `snn-analyze`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Repository root.
pub use snn_test_support::repo;

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

/// The path of the package's binary `name` (`snn-build`, `snn-sim`,
/// `snn-analyze`).
pub fn bin(name: &str) -> &'static str {
    match name {
        "snn-build" => env!("CARGO_BIN_EXE_snn-build"),
        "snn-sim" => env!("CARGO_BIN_EXE_snn-sim"),
        "snn-analyze" => env!("CARGO_BIN_EXE_snn-analyze"),
        other => panic!("no binary {other:?} in this package"),
    }
}

/// Run `cmd` to the end and collect what it printed: no terminal (stdin
/// closed, output piped: no progress bar), `RUST_BACKTRACE=1` (so a panic
/// shows as one), and without a SLURM job end from the environment.
pub fn run(cmd: &mut Command) -> Out {
    let out = cmd
        .env("RUST_BACKTRACE", "1")
        .env_remove("SLURM_JOB_END_TIME")
        .stdin(Stdio::null())
        .output()
        .expect("run a binary of the package");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Make `cmd` run under the resource limit `limit` of `resource` (e.g.
/// `RLIMIT_FSIZE`, `ulimit -f`; `RLIMIT_AS`, `ulimit -v`), set in the child.
pub fn with_rlimit(
    cmd: &mut Command,
    resource: libc::__rlimit_resource_t,
    limit: u64,
) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit, which is async-signal-safe, on a local struct; it
    // allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Run `snn-build` with `args` (no terminal: no progress bar).
pub fn snn_build<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(bin("snn-build")).args(args))
}

/// The `--set` overrides of the hostile tests' network `K`: the balanced
/// network (`configs/balanced.toml`) at 2,250 neurons firing about 94 Hz.
pub const K_SETS: [&str; 6] = [
    "--set",
    "scale.neurons=0.2",
    "--set",
    "scale.indegree=0.01",
    "--set",
    "poisson_background.rate_Hz=240",
];

/// Build the network `K` ([`K_SETS`]) into `dest`.
pub fn build_k(dest: &Path) {
    let mut args: Vec<OsString> = vec![
        shipped_config("balanced.toml").into(),
        "-o".into(),
        dest.into(),
    ];
    args.extend(K_SETS.iter().map(OsString::from));
    snn_build(args).expect_ok("snn-build of K");
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

/// The Python of the project's virtual environment `venv` (`.venv`,
/// `.venv-sonata`) if `import modules` works in it (with `PYNEST_QUIET`
/// set); `None` with a note if it does not, where the test is then skipped.
/// Under CI (`CI` set) or with the variable `require` set to `1`, a missing
/// module is a failure instead (`scripts/install.sh` installs them).
pub fn python_with(venv: &str, modules: &str, require: &str) -> Option<PathBuf> {
    let py = repo().join(venv).join("bin/python");
    let ok = Command::new(&py)
        .env("PYNEST_QUIET", "1")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os(require).is_some_and(|v| v == "1");
    assert!(
        !required,
        "'import {modules}' fails in {} (scripts/install.sh installs them)",
        py.display()
    );
    println!(
        "NOTE: 'import {modules}' fails in {}: test skipped",
        py.display()
    );
    None
}
