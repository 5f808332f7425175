//! Safe creation of output directories: everything is written into a hidden
//! staging directory next to the destination and renamed into place at the
//! end, so an interrupted run never leaves a half-written directory under the
//! real name, and an existing directory is only replaced with `force`.

use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// A staging directory that becomes `dest` on [`Staging::commit`]; dropped
/// without commit, it is removed.
#[derive(Debug)]
pub struct Staging {
    dest: PathBuf,
    tmp: Option<tempfile::TempDir>,
    force: bool,
}

/// Whether `path` exists and is not an empty directory.
fn occupied(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut it) => it.next().is_some(),
        Err(_) => path.exists(),
    }
}

impl Staging {
    /// Prepare to write `dest`. Fails at once if `dest` exists and is not
    /// empty and `force` is false, so no work is wasted.
    pub fn new(dest: &Path, force: bool) -> Result<Staging, FormatError> {
        if occupied(dest) && !force {
            return Err(FormatError::Exists {
                path: dest.to_path_buf(),
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| FormatError::io(&parent, "create directory", e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(&parent)
            .map_err(|e| FormatError::io(&parent, "create staging directory", e))?;
        Ok(Staging {
            dest: dest.to_path_buf(),
            tmp: Some(tmp),
            force,
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
            if let Ok(d) = std::fs::File::open(if parent.as_os_str().is_empty() {
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
