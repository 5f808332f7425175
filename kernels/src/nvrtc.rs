//! NVRTC, the run-time CUDA compiler: where `libnvrtc` is found
//! ([`nvrtc_candidates`]), and (feature `cuda`) loading it, compiling a
//! [`Module`] for a device's architecture and the
//! disk cache of the PTX it produces.

use crate::registry::Module;

/// Where `libnvrtc` is looked for (see [`nvrtc_candidates`]).
pub const NVRTC_ENV: &str = "SNN_NVRTC_LIB";

/// The NVRTC libraries a loader should try, best first: the file or
/// directory named by `$SNN_NVRTC_LIB`; then the NVRTC of the pip wheel
/// `nvidia-cuda-nvrtc-cu12` in each of `venvs` and in `$VIRTUAL_ENV`
/// (`<venv>/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*`).
/// Only existing files are listed. Not finding any is no error: the
/// library may still be on the loader's default path (`LD_LIBRARY_PATH`,
/// the system's CUDA).
pub fn nvrtc_candidates(venvs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    fn libs_in(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libnvrtc.so") || n == "nvrtc64.dll")
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(NVRTC_ENV).map(PathBuf::from) {
        if p.is_dir() {
            libs_in(&p, &mut out);
        } else if p.is_file() {
            out.push(p);
        }
    }
    let mut roots: Vec<PathBuf> = venvs.to_vec();
    roots.extend(std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    for root in roots {
        let Ok(rd) = std::fs::read_dir(root.join("lib")) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pys.sort();
        for py in pys {
            libs_in(&py.join("site-packages/nvidia/cuda_nvrtc/lib"), &mut out);
        }
    }
    out
}

/// Errors of the device layer.
#[derive(Debug, thiserror::Error)]
pub enum NvrtcError {
    /// No usable `libnvrtc`.
    #[error("NVRTC (libnvrtc) not found: tried {tried}; install the pip wheel nvidia-cuda-nvrtc-cu12 (scripts/install.sh does) or set {NVRTC_ENV} to the library")]
    NoNvrtc {
        /// What was tried.
        tried: String,
    },
    /// A module did not compile.
    #[error("NVRTC could not compile {module} ({options}):\n{log}")]
    Compile {
        /// The module.
        module: Module,
        /// The options given.
        options: String,
        /// NVRTC's log.
        log: String,
    },
    /// Another NVRTC failure.
    #[error("NVRTC failed on {module}: {message}")]
    Nvrtc {
        /// The module.
        module: Module,
        /// What failed.
        message: String,
    },
}

/// Loading and compiling, with the `cuda` feature.
#[cfg(feature = "cuda")]
mod loader {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use super::{nvrtc_candidates, NvrtcError};
    use crate::registry::Module;

    /// The NVRTC in use.
    #[derive(Clone, Debug)]
    pub struct NvrtcInfo {
        /// The file loaded by path, or `None` when it was found by name on
        /// the loader's default path.
        pub path: Option<PathBuf>,
        /// NVRTC's version (major, minor).
        pub version: (i32, i32),
    }

    /// Libraries loaded by path: kept for the life of the process.
    static LOADED: OnceLock<Mutex<Vec<libloading::Library>>> = OnceLock::new();

    /// Finds and loads `libnvrtc` (first the [`nvrtc_candidates`] for
    /// `venvs`, then by name as cudarc would), and checks that cudarc will
    /// find it. Call this before any other NVRTC function: cudarc panics
    /// when its library is missing, this returns an error instead.
    ///
    /// A library found by path is loaded with its full path first; cudarc
    /// then loads it by its `soname` (`libnvrtc.so.12`), which the dynamic
    /// loader resolves to the library already loaded.
    pub fn load(venvs: &[PathBuf]) -> Result<NvrtcInfo, NvrtcError> {
        static INFO: OnceLock<Mutex<Option<NvrtcInfo>>> = OnceLock::new();
        let info = INFO.get_or_init(|| Mutex::new(None));
        let mut info = info.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = info.as_ref() {
            return Ok(i.clone());
        }
        let candidates = nvrtc_candidates(venvs);
        let mut path = None;
        for c in &candidates {
            if preload(c) {
                path = Some(c.clone());
                break;
            }
        }
        // SAFETY: only tries to open the library under cudarc's candidate
        // names (dlopen); nothing is called in it.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            let mut tried: Vec<String> =
                candidates.iter().map(|p| p.display().to_string()).collect();
            tried.push("libnvrtc.so* on the loader's path".into());
            return Err(NvrtcError::NoNvrtc {
                tried: tried.join(", "),
            });
        }
        let (mut major, mut minor) = (0, 0);
        // SAFETY: the library is present (checked above), and
        // nvrtcVersion only writes the two integers.
        let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(NvrtcError::NoNvrtc {
                tried: format!("nvrtcVersion failed: {r:?}"),
            });
        }
        let i = NvrtcInfo {
            path,
            version: (major, minor),
        };
        *info = Some(i.clone());
        Ok(i)
    }

    /// Loads the library at `path` and keeps it loaded; false if it cannot
    /// be loaded.
    fn preload(path: &Path) -> bool {
        // SAFETY: loading NVRTC runs its initialisers only, which have no
        // preconditions.
        match unsafe { libloading::Library::new(path) } {
            Ok(lib) => {
                LOADED
                    .get_or_init(|| Mutex::new(Vec::new()))
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(lib);
                true
            }
            Err(_) => false,
        }
    }

    /// The options every module is compiled with for virtual architecture
    /// `arch` (e.g. `compute_80`, or the device's `compute_90`): no fused
    /// multiply-add (bit-identity with the CPU), IEEE division and square
    /// root, no flush to zero; with the feature `test-kernels`, the test
    /// kernels too (`-DSNN_TEST_KERNELS`).
    pub fn options(arch: &'static str) -> cudarc::nvrtc::CompileOptions {
        let mut options = vec!["--std=c++17".to_string()];
        if cfg!(feature = "test-kernels") {
            options.push("-DSNN_TEST_KERNELS".into());
        }
        cudarc::nvrtc::CompileOptions {
            fmad: Some(false),
            prec_div: Some(true),
            prec_sqrt: Some(true),
            ftz: Some(false),
            use_fast_math: Some(false),
            arch: Some(arch),
            options,
            ..Default::default()
        }
    }

    /// Compiles `module` to PTX for `arch`, once per process (later calls
    /// return the same text), through the disk cache of [`cache_dir`] when
    /// there is one. [`load`] must have succeeded.
    pub fn compile(module: Module, arch: &'static str) -> Result<Arc<String>, NvrtcError> {
        type Cache = HashMap<(Module, &'static str), Arc<String>>;
        static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(p) = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(module, arch))
        {
            return Ok(p.clone());
        }
        let (ptx, hit) = compile_with_cache(module, arch, cache_dir().as_deref())?;
        if hit {
            DISK_HITS.fetch_add(1, Ordering::Relaxed);
        }
        let ptx = Arc::new(ptx);
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((module, arch), ptx.clone());
        Ok(ptx)
    }

    /// Modules [`compile`] found in the disk cache in this process.
    static DISK_HITS: AtomicU64 = AtomicU64::new(0);

    /// How many modules [`compile`] took from the disk cache in this
    /// process (for the device's description).
    pub fn disk_cache_hits() -> u64 {
        DISK_HITS.load(Ordering::Relaxed)
    }

    /// The environment variable naming the PTX disk cache: a directory, or
    /// `off` (or empty) for none.
    pub const CACHE_ENV: &str = "SNN_KERNEL_CACHE";

    /// The directory of the PTX disk cache: `$SNN_KERNEL_CACHE` when set
    /// (`off` or empty: no cache), otherwise `$XDG_CACHE_HOME/snn/kernels`
    /// or `$HOME/.cache/snn/kernels` (`None` without either).
    pub fn cache_dir() -> Option<PathBuf> {
        let env = |v: &str| std::env::var_os(v).filter(|x| !x.is_empty());
        match std::env::var_os(CACHE_ENV) {
            Some(v) if v.is_empty() || v == "off" => None,
            Some(v) => Some(PathBuf::from(v)),
            None => env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map(|d| d.join("snn").join("kernels")),
        }
    }

    /// First line of a cache file: this tag and the xxh3-64 (hex) of the
    /// PTX that follows the line.
    const CACHE_TAG: &str = "// snn-ptx-cache v1 ";

    /// The cache file of `module` for `arch`: named by the module, the
    /// architecture and the xxh3-64 of everything the PTX depends on (the
    /// source with its headers, the options, NVRTC's version), so a change
    /// of any of them is a new file, never a stale one.
    fn cache_file(dir: &Path, module: Module, arch: &'static str, version: (i32, i32)) -> PathBuf {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        let mut opts = options(arch);
        opts.name = Some(module.file_name().into());
        h.update(module.source().as_bytes());
        h.update(format!("\0{opts:?}\0{version:?}").as_bytes());
        dir.join(format!(
            "{}-{arch}-{:016x}.ptx",
            module.file_name().trim_end_matches(".cu"),
            h.digest()
        ))
    }

    /// The PTX of `module` for `arch`: from the cache file in `cache` when
    /// there is a valid one (the bool is then true), otherwise compiled by
    /// NVRTC and written there (atomically, by a rename; a cache that
    /// cannot be written is skipped silently, as is a damaged file, which
    /// is replaced). No in-process cache: see [`compile`]. An error, not a
    /// panic, when NVRTC was not loaded by [`load`] (nor can be found
    /// without the caller's venvs).
    pub fn compile_with_cache(
        module: Module,
        arch: &'static str,
        cache: Option<&Path>,
    ) -> Result<(String, bool), NvrtcError> {
        // Memoised: the library the first successful `load` found.
        let version = load(&[])?.version;
        let file = cache.map(|d| cache_file(d, module, arch, version));
        if let Some(ptx) = file.as_deref().and_then(read_cached) {
            return Ok((ptx, true));
        }
        let ptx = nvrtc_compile(module, arch)?;
        if let (Some(dir), Some(file)) = (cache, file.as_deref()) {
            let _ = write_cached(dir, file, &ptx);
        }
        Ok((ptx, false))
    }

    /// The PTX of a cache file, if it is one and its checksum holds.
    fn read_cached(file: &Path) -> Option<String> {
        let text = std::fs::read_to_string(file).ok()?;
        let (first, ptx) = text.split_once('\n')?;
        let sum = u64::from_str_radix(first.strip_prefix(CACHE_TAG)?, 16).ok()?;
        (xxhash_rust::xxh3::xxh3_64(ptx.as_bytes()) == sum).then(|| ptx.to_owned())
    }

    /// Writes a cache file through a temporary file in the same directory.
    fn write_cached(dir: &Path, file: &Path, ptx: &str) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let sum = xxhash_rust::xxh3::xxh3_64(ptx.as_bytes());
        write!(tmp, "{CACHE_TAG}{sum:016x}\n{ptx}")?;
        tmp.persist(file).map_err(|e| e.error)?;
        Ok(())
    }

    /// Compiles `module` to PTX for `arch` with NVRTC.
    fn nvrtc_compile(module: Module, arch: &'static str) -> Result<String, NvrtcError> {
        let mut opts = options(arch);
        opts.name = Some(module.file_name().into());
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(module.source(), opts).map_err(|e| {
            use cudarc::nvrtc::CompileError as E;
            match e {
                E::CompileError { options, log, .. } => NvrtcError::Compile {
                    module,
                    options: options.join(" "),
                    log: log.to_string_lossy().into_owned(),
                },
                other => NvrtcError::Nvrtc {
                    module,
                    message: format!("{other:?}"),
                },
            }
        })?;
        Ok(ptx.to_src())
    }
}

#[cfg(feature = "cuda")]
pub use loader::*;
