//! Hostile-user cases of `snn-build` that need a special environment, which
//! the tables of `tests/hostile/build.toml` cannot set up: a file-size
//! limit, a full disk (a 1 MiB tmpfs, where mounting is permitted) and an
//! address-space limit. Each must end with one clean error line naming the
//! file or the limit, and leave no output directory behind.

mod support;

use std::path::Path;
use std::process::Command;

use support::{bin, run, shipped_config, with_rlimit, Out};

/// Run `snn-build` with `args` under the resource limit `limit` (bytes) of
/// `resource`.
fn build_limited(args: &[&str], resource: libc::__rlimit_resource_t, limit: u64) -> Out {
    run(with_rlimit(
        Command::new(bin("snn-build")).args(args),
        resource,
        limit,
    ))
}

fn balanced(indegree: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        shipped_config("balanced.toml").display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--set".into(),
        "scale.neurons=0.2".into(),
        "--set".into(),
        format!("scale.indegree={indegree}"),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A shard larger than `ulimit -f`: the write fails with EFBIG (SIGXFSZ is
/// ignored), one line naming the file.
#[test]
fn file_size_limit_plain_and_compressed() {
    for (indegree, extra) in [("0.01", &[][..]), ("0.1", &["--compress"][..])] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let net = tmp.path().join("net");
        let args = balanced(indegree, &net, extra);
        let out = build_limited(&refs(&args), libc::RLIMIT_FSIZE, 100 * 1024);
        out.expect_clean_error(
            &format!("ulimit -f with {extra:?}"),
            &["snn-build: error: ", "rank-00000.shard", "File too large"],
        );
        assert!(!net.exists(), "a partial output was left behind");
    }
}

/// A full disk: both shard writers name the file and the OS error.
#[test]
fn disk_full_names_file_and_os_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs = tmp.path().join("fs");
    std::fs::create_dir(&fs).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&fs)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        for (indegree, extra) in [("0.1", &[][..]), ("0.1", &["--compress"][..])] {
            let net = fs.join("net");
            let args = balanced(indegree, &net, extra);
            let out = support::snn_build(refs(&args));
            out.expect_clean_error(
                &format!("full disk with {extra:?}"),
                &["rank-00000.shard", "No space left on device"],
            );
            assert!(!net.exists(), "a partial output was left behind");
            assert!(
                support::entries(&fs).is_empty(),
                "staging files left on the full disk: {:?}",
                support::entries(&fs)
            );
        }
    });
    let _ = Command::new("umount").arg(&fs).status();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// A network beyond the address-space limit is refused before the
/// counting pass, with the estimate and the limit; one just under it that
/// still runs out fails cleanly too.
#[test]
fn address_space_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let mut args = balanced("1", &net, &[]);
    args[4] = "scale.neurons=1".into();
    let out = build_limited(&refs(&args), libc::RLIMIT_AS, 768 << 20);
    out.expect_clean_error(
        "ulimit -v 768 MiB, 1.3e8 synapses",
        &["would need at least", "ulimit -v"],
    );
    assert!(!net.exists());
    for indegree in ["0.5", "0.6"] {
        args[6] = format!("scale.indegree={indegree}");
        let out = build_limited(&refs(&args), libc::RLIMIT_AS, 768 << 20);
        if !out.ok() {
            out.expect_clean_error(
                &format!("ulimit -v 768 MiB, indegree {indegree}"),
                &["memory"],
            );
            assert!(!net.exists());
        }
    }
}
