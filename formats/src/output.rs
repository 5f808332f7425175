//! Safe creation of output directories: everything is written into a hidden
//! staging directory next to the destination and renamed into place at the
//! end, so an interrupted run never leaves a half-written directory under the
//! real name, and an existing directory is only replaced with `force`.
//!
//! What `force` never replaces: an input of the command (the network a run
//! reads, the config a build reads: `-o` naming it, or a directory holding
//! it), the current directory (or one holding it), and a run directory in
//! which an `snn-sim` is still running (it holds [`RUN_LOCK_FILE`]).
//!
//! A staging directory `.NAME.staging-XXXXXX` is locked by its writer
//! through the file `.NAME.staging-XXXXXX.lock` beside it. One left behind
//! by a killed process (its lock free again) is removed by the next
//! command that writes `NAME`.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use crate::error::FormatError;

/// The lock file an `snn-sim` holds in a run directory while it works on
/// it (checkpointed runs).
pub const RUN_LOCK_FILE: &str = ".snn-sim.lock";

/// Staging directories whose lock is free are only removed once they are
/// this old, so a writer that has just created its directory and not yet
/// locked it is never disturbed.
const STALE_AFTER_S: u64 = 60;

/// A staging directory that becomes `dest` on [`Staging::commit`]; dropped
/// without commit, it is removed.
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    tmp: Option<tempfile::TempDir>,
    force: bool,
    /// The staging directory's lock file, held while it exists.
    lock: Option<(PathBuf, File)>,
    /// With `force`: the lock of the run directory being replaced, held
    /// until it is replaced, so no `snn-sim` starts in it meanwhile.
    _replaced_lock: Option<File>,
}

/// Whether `path` exists and is not an empty directory.
pub fn occupied(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut it) => it.next().is_some(),
        Err(_) => path.exists(),
    }
}

/// `path` made absolute with `.` and `..` resolved (symbolic links too,
/// for the part that exists).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    // Resolve links in the longest existing ancestor.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(n) => rest.push(n.to_os_string()),
            None => return out,
        }
        if !existing.pop() {
            return out;
        }
    }
    let mut p = std::fs::canonicalize(&existing).unwrap_or(existing);
    for n in rest.iter().rev() {
        p.push(n);
    }
    p
}

/// Whether writing `dest` (replacing it) would replace `input` or a
/// directory holding it, however either is spelt (`.`, `..`, links).
pub fn replaces(dest: &Path, input: &Path) -> bool {
    resolved(input).starts_with(resolved(dest))
}

fn refused(path: &Path, message: impl Into<String>) -> FormatError {
    FormatError::Refused {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Remove the staging directories for `name` in `parent` that their
/// writers left behind (killed): their lock is free and they are older
/// than [`STALE_AFTER_S`]. Best effort: anything unclear is left alone.
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.staging-");
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(base) = file_name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".lock"))
        else {
            continue;
        };
        if base.is_empty() || base.contains('/') {
            continue;
        }
        let lock_path = e.path();
        let old_enough = std::fs::metadata(&lock_path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= STALE_AFTER_S);
        if !old_enough {
            continue;
        }
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock_path) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue; // its writer is alive
        }
        let dir = parent.join(format!("{prefix}{base}"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(parent.join(format!("{prefix}{base}.old")));
        if !dir.exists() {
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}

impl Staging {
    /// Prepare to write `dest`. Fails at once if `dest` exists and is not
    /// empty and `force` is false, so no work is wasted.
    pub fn new(dest: &Path, force: bool) -> Result<Staging, FormatError> {
        Staging::new_guarded(dest, force, &[])
    }

    /// [`Staging::new`] for a command that reads `inputs`: refused when
    /// `dest` is one of them or holds one (replacing it would delete the
    /// input), is the current directory or holds it, or (with `force`) is
    /// a run directory an `snn-sim` is working in.
    pub fn new_guarded(dest: &Path, force: bool, inputs: &[&Path]) -> Result<Staging, FormatError> {
        let abs = resolved(dest);
        for input in inputs {
            if replaces(dest, input) {
                return Err(refused(
                    dest,
                    format!(
                        "the output would replace the input {} (give another output directory)",
                        input.display()
                    ),
                ));
            }
        }
        if let Ok(cwd) = std::env::current_dir() {
            if resolved(&cwd).starts_with(&abs) {
                return Err(refused(
                    dest,
                    "is the current directory or holds it; name a new directory for the output (e.g. ./out)",
                ));
            }
        }
        if occupied(dest) && !force {
            return Err(FormatError::Exists {
                path: dest.to_path_buf(),
            });
        }
        let mut replaced_lock = None;
        let lock_path = dest.join(RUN_LOCK_FILE);
        if force && lock_path.exists() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&lock_path)
                .map_err(|e| FormatError::io(&lock_path, "open lock file", e))?;
            match f.try_lock() {
                Ok(()) => replaced_lock = Some(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(refused(
                        dest,
                        "an snn-sim is still running in this run directory; --force does not replace a run in progress",
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(FormatError::io(&lock_path, "lock", e))
                }
            }
        }
        let parent = match abs.parent() {
            Some(p) => p.to_path_buf(),
            None => return Err(refused(dest, "cannot replace the root directory")),
        };
        let Some(name) = abs.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Err(refused(dest, "not a directory name"));
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| FormatError::io(&parent, "create directory", e))?;
        remove_stale_staging(&parent, &name);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(&parent)
            .map_err(|e| FormatError::io(&parent, "create staging directory", e))?;
        let mut lock_name = tmp.path().as_os_str().to_os_string();
        lock_name.push(".lock");
        let lock_path = PathBuf::from(lock_name);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| FormatError::io(&lock_path, "create lock file", e))?;
        lock.try_lock().map_err(|e| {
            FormatError::io(&lock_path, "lock", std::io::Error::other(e.to_string()))
        })?;
        Ok(Staging {
            dest: dest.to_path_buf(),
            tmp: Some(tmp),
            force,
            lock: Some((lock_path, lock)),
            _replaced_lock: replaced_lock,
        })
    }

    /// The staging directory to write into.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().map(|t| t.path()).unwrap_or(&self.dest)
    }

    /// Move the staging directory to the destination. An existing
    /// destination (allowed by `force` at creation) is moved aside first and
    /// deleted only after the new one is in place.
    pub fn commit(mut self) -> Result<PathBuf, FormatError> {
        // Something may have appeared at the destination while we worked:
        // without `force` it is never replaced.
        if !self.force && occupied(&self.dest) {
            return Err(FormatError::Exists {
                path: self.dest.clone(),
            });
        }
        let tmp = match self.tmp.take() {
            Some(t) => t.keep(),
            None => return Ok(self.dest.clone()),
        };
        let fail = |op, e| {
            let _ = std::fs::remove_dir_all(&tmp);
            FormatError::io(&self.dest, op, e)
        };
        let mut old = None;
        if self.dest.exists() {
            let aside = tmp.with_extension("old");
            std::fs::rename(&self.dest, &aside)
                .map_err(|e| fail("move existing output aside", e))?;
            old = Some(aside);
        }
        if let Err(e) = std::fs::rename(&tmp, &self.dest) {
            if let Some(a) = &old {
                let _ = std::fs::rename(a, &self.dest);
            }
            return Err(fail("rename staging directory", e));
        }
        if let Some(parent) = self.dest.parent() {
            if let Ok(d) = File::open(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            }) {
                let _ = d.sync_all();
            }
        }
        if let Some(a) = old {
            if a.is_dir() {
                let _ = std::fs::remove_dir_all(&a);
            } else {
                let _ = std::fs::remove_file(&a);
            }
        }
        Ok(self.dest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // The directory first (if not committed), then its lock.
        drop(self.tmp.take());
        if let Some((path, _file)) = self.lock.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_inputs_cwd_and_running_runs() {
        let t = tempfile::tempdir().unwrap();
        let net = t.path().join("net");
        std::fs::create_dir(&net).unwrap();
        std::fs::write(net.join("manifest.json"), b"{}").unwrap();
        // The input itself, a directory holding it, the same path spelt
        // another way: refused even with force.
        for dest in [
            net.clone(),
            t.path().to_path_buf(),
            net.join("..").join("net"),
        ] {
            let e = Staging::new_guarded(&dest, true, &[&net]).unwrap_err();
            assert!(e.to_string().contains("replace the input"), "{e}");
        }
        // Beside the input: fine.
        let s = Staging::new_guarded(&t.path().join("run"), false, &[&net]).unwrap();
        std::fs::write(s.path().join("x"), b"1").unwrap();
        s.commit().unwrap();
        assert!(t.path().join("run/x").exists());
        // A run directory whose lock is held: refused with force.
        let run = t.path().join("run");
        let held = File::create(run.join(RUN_LOCK_FILE)).unwrap();
        held.lock().unwrap();
        // (A second handle of this process conflicts like another process.)
        let e = Staging::new_guarded(&run, true, &[]).unwrap_err();
        assert!(e.to_string().contains("still running"), "{e}");
        drop(held);
        let s = Staging::new_guarded(&run, true, &[]).unwrap();
        s.commit().unwrap();
        assert!(!run.join("x").exists());
    }

    #[test]
    fn stale_staging_is_removed_and_live_kept() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out");
        // A staging directory left by a killed writer: lock file free and
        // old.
        let dead = t.path().join(".out.staging-dead00");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("f"), b"1").unwrap();
        let dead_lock = t.path().join(".out.staging-dead00.lock");
        let f = File::create(&dead_lock).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        drop(f);
        // A live one: its lock held.
        let live = Staging::new(&dest, false).unwrap();
        let live_path = live.path().to_path_buf();
        let (live_lock, _) = live.lock.as_ref().unwrap();
        File::options()
            .write(true)
            .open(live_lock)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        let other = Staging::new(&t.path().join("out"), false).unwrap();
        assert!(!dead.exists() && !dead_lock.exists(), "stale staging kept");
        assert!(live_path.exists(), "a live staging directory was removed");
        drop(other);
        drop(live);
        assert!(!live_path.exists());
        let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
