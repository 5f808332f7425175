//! Every kernel compiles with NVRTC (feature `cuda`; no GPU needed).
//!
//! NVRTC is found as `snn_kernels::nvrtc::load` finds it: from
//! `$SNN_NVRTC_LIB`, the pip wheel `nvidia-cuda-nvrtc-cu12` in the project's
//! `.venv` (installed by `scripts/install.sh`) or `$VIRTUAL_ENV`, or the
//! loader's path. Without it the test passes with a note, unless
//! `SNN_REQUIRE_NVRTC=1` (set by `scripts/test.sh` under CI), which makes a
//! missing NVRTC a failure.
#![cfg(feature = "cuda")]

use std::path::PathBuf;

use snn_kernels::nvrtc;
use snn_kernels::registry::Module;

/// The project's virtual environment.
fn project_venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv")
}

/// Floating-point instructions that must not appear in the PTX: fused
/// multiply-adds (their single rounding differs from the CPU's two) and
/// approximate division, reciprocal or square root of doubles.
const FORBIDDEN: [&str; 5] = [
    "fma.rn.f64",
    "mad.rn.f64",
    "fma.rn.f32",
    ".approx.f64",
    ".approx.ftz.f64",
];

/// NVRTC, or `None` (with a note) when it is missing and not required.
fn nvrtc_or_skip() -> Option<nvrtc::NvrtcInfo> {
    match nvrtc::load(&[project_venv()]) {
        Ok(info) => Some(info),
        Err(e) => {
            if std::env::var("SNN_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
                panic!("SNN_REQUIRE_NVRTC=1: {e}");
            }
            println!("NOTE: {e}\nNOTE: NVRTC check skipped");
            None
        }
    }
}

#[test]
fn every_kernel_compiles_with_nvrtc() {
    // NVRTC itself, not the PTX disk cache (this test has its own process).
    std::env::set_var(nvrtc::CACHE_ENV, "off");
    let Some(info) = nvrtc_or_skip() else {
        return;
    };
    println!(
        "NVRTC {}.{} ({})",
        info.version.0,
        info.version.1,
        info.path
            .as_ref()
            .map_or("found by name".into(), |p| p.display().to_string())
    );
    // compute_80: the baseline (64-bit integer atomics, IEEE doubles);
    // compute_90: the H100/H200 machines.
    for arch in ["compute_80", "compute_90"] {
        for m in Module::ALL {
            let t0 = std::time::Instant::now();
            let ptx = nvrtc::compile(m, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
            let compile_s = t0.elapsed().as_secs_f64();
            for k in m.kernels() {
                assert!(
                    ptx.contains(&format!(".entry {}(", k.name())),
                    "{arch} {m}: no entry {k} in the PTX"
                );
            }
            for bad in FORBIDDEN {
                let line = ptx.lines().find(|l| l.contains(bad));
                assert!(line.is_none(), "{arch} {m}: {bad} in the PTX: {line:?}");
            }
            // The atomics are real device atomics (64-bit integer adds into
            // the ring buffers, 32-bit counters for compaction).
            let atomic = match m {
                Module::Neuron | Module::Connect => Some("atom.global.add.u32"),
                Module::Deliver => Some("atom.global.add.u64"),
                Module::Route | Module::Build => None,
            };
            if let Some(atomic) = atomic {
                assert!(ptx.contains(atomic), "{arch} {m}: no {atomic}");
            }
            println!(
                "{arch} {m}: {} bytes of PTX, compiled in {compile_s:.3} s",
                ptx.len()
            );
        }
    }
    // Cached: the same text again.
    let a = nvrtc::compile(Module::Deliver, "compute_80").expect("cached");
    let b = nvrtc::compile(Module::Deliver, "compute_80").expect("cached");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

/// The PTX disk cache: a miss compiles and writes the file, a hit returns
/// the same text without NVRTC, a damaged file or one for other options is
/// never used, and a cache that cannot be written costs nothing but the
/// cache.
#[test]
fn ptx_disk_cache() {
    let Some(_) = nvrtc_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let m = Module::Deliver;
    let t0 = std::time::Instant::now();
    let (fresh, hit) = nvrtc::compile_with_cache(m, "compute_80", Some(&dir)).unwrap();
    let miss_s = t0.elapsed().as_secs_f64();
    assert!(!hit);
    let files = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let written = files();
    assert_eq!(written.len(), 1, "{written:?}");
    let t0 = std::time::Instant::now();
    let (cached, hit) = nvrtc::compile_with_cache(m, "compute_80", Some(&dir)).unwrap();
    let hit_s = t0.elapsed().as_secs_f64();
    assert!(hit);
    assert_eq!(cached, fresh);
    println!("{m}: NVRTC {miss_s:.3} s, from the cache {hit_s:.4} s");
    // Another architecture is another file.
    let (other, hit) = nvrtc::compile_with_cache(m, "compute_90", Some(&dir)).unwrap();
    assert!(!hit);
    assert_ne!(other, fresh);
    assert_eq!(files().len(), 2);
    // A damaged file (one byte of the PTX changed) is recompiled and
    // replaced.
    let mut bytes = std::fs::read(&written[0]).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    std::fs::write(&written[0], &bytes).unwrap();
    let (again, hit) = nvrtc::compile_with_cache(m, "compute_80", Some(&dir)).unwrap();
    assert!(!hit, "a damaged cache file was used");
    assert_eq!(again, fresh);
    assert!(
        nvrtc::compile_with_cache(m, "compute_80", Some(&dir))
            .unwrap()
            .1
    );
    // Truncated to nothing, or not a cache file at all.
    for junk in [&b""[..], b"not a cache file\n.version 8.0"] {
        std::fs::write(&written[0], junk).unwrap();
        let (again, hit) = nvrtc::compile_with_cache(m, "compute_80", Some(&dir)).unwrap();
        assert!(!hit);
        assert_eq!(again, fresh);
    }
    // A cache path that is a file: compiled, no error.
    let not_dir = tmp.path().join("a-file");
    std::fs::write(&not_dir, b"x").unwrap();
    let (text, hit) = nvrtc::compile_with_cache(m, "compute_80", Some(&not_dir)).unwrap();
    assert!(!hit);
    assert_eq!(text, fresh);
    // The environment picks the directory; `off` turns it off.
    std::env::set_var(nvrtc::CACHE_ENV, &dir);
    assert_eq!(nvrtc::cache_dir(), Some(dir.clone()));
    std::env::set_var(nvrtc::CACHE_ENV, "off");
    assert_eq!(nvrtc::cache_dir(), None);
}
