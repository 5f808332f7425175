//! What the machine can hold: the memory this process may still allocate,
//! so that sizes read from files and the command line are checked before
//! anything is allocated (and a refusal says what set the limit).

/// How much memory this process may still allocate, and what sets that
/// limit (for messages): the smallest of `MemAvailable` (`/proc/meminfo`),
/// the address-space and data-size limits (`ulimit -v`, `ulimit -d`) less
/// what is in use, and a cgroup v2 `memory.max` less `memory.current`.
/// `None` where none can be read (other systems).
pub fn available_bytes() -> Option<(u64, String)> {
    let mut best: Option<(u64, String)> = None;
    let mut offer = |bytes: u64, what: String| {
        if best.as_ref().is_none_or(|(b, _)| bytes < *b) {
            best = Some((bytes, what));
        }
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kb) = field_kb(&meminfo, "MemAvailable:") {
        offer(
            kb.saturating_mul(1024),
            "MemAvailable in /proc/meminfo".into(),
        );
    }
    #[cfg(unix)]
    {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for (resource, name, used_field) in [
            (
                libc::RLIMIT_AS,
                "address-space limit (ulimit -v)",
                "VmSize:",
            ),
            (libc::RLIMIT_DATA, "data-size limit (ulimit -d)", "VmData:"),
        ] {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one `rlimit` into the valid,
            // exclusively borrowed `lim` and has no other effect.
            let rc = unsafe { libc::getrlimit(resource, &mut lim) };
            // `rlim_t` is not `u64` on every platform.
            #[allow(clippy::unnecessary_cast)]
            if rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY {
                let used = field_kb(&status, used_field)
                    .unwrap_or(0)
                    .saturating_mul(1024);
                offer(
                    (lim.rlim_cur as u64).saturating_sub(used),
                    format!("{name} of {}", human_bytes(lim.rlim_cur as u64)),
                );
            }
        }
    }
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let Some(max) = read("memory.max") {
        offer(
            max.saturating_sub(read("memory.current").unwrap_or(0)),
            "the cgroup's memory.max".into(),
        );
    }
    best
}

/// Refuse `bytes` of memory for `what` when the machine cannot offer them
/// ([`available_bytes`]); the message names both amounts and the limit.
pub fn check_fits(bytes: u64, what: &str) -> Result<(), String> {
    match available_bytes() {
        Some((avail, limit)) if bytes > avail => Err(format!(
            "{what} needs {} but this process can allocate at most {} (set by {limit})",
            human_bytes(bytes),
            human_bytes(avail)
        )),
        _ => Ok(()),
    }
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `bytes` for a message: `1.5 GB`, `640 MB`, `12 kB`, `7 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e12 {
        format!("{:.1} TB", b / 1e12)
    } else if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_limits() {
        assert_eq!(human_bytes(7), "7 bytes");
        assert_eq!(human_bytes(12_345), "12 kB");
        assert_eq!(human_bytes(640_000_000), "640 MB");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(human_bytes(2_000_000_000_000), "2.0 TB");
        // On Linux something is always known, and an exabyte never fits.
        if cfg!(target_os = "linux") {
            let (avail, what) = available_bytes().expect("a limit on Linux");
            assert!(avail > 0 && !what.is_empty());
            let e = check_fits(1 << 60, "the test").unwrap_err();
            assert!(e.contains("the test needs"), "{e}");
            assert!(check_fits(1 << 10, "a kibibyte").is_ok());
        }
    }
}
