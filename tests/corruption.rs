//! Damaged network directories:
//! truncated, bit-flipped, extended, swapped or deleted shards and edited,
//! broken or deleted manifests give a one-line error naming the file from
//! `snn-build verify`, `snn-build dump` and the library loaders, never a
//! panic.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use snn_formats::manifest::{Manifest, MANIFEST_FILE};
use snn_formats::shard::HEADER_LEN;
use snn_formats::{Check, FormatError, NetworkDir, Shard};
use support::{build_small, p, snn_build};

/// A freshly built 2-rank network of the every-rule fixture.
fn small_net(compress: bool) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let mut args = vec!["--ranks", "2"];
    if compress {
        args.push("--compress");
    }
    build_small(&dir, &args).expect_ok("build");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify of the intact network");
    (tmp, dir)
}

/// Open the network and every shard with `Check::Checksum`, catching panics.
fn load_all(dir: &Path) -> std::thread::Result<Result<(), FormatError>> {
    catch_unwind(AssertUnwindSafe(|| {
        let net = NetworkDir::open(dir)?;
        for r in 0..net.manifest.n_ranks {
            net.open_shard(r, Check::Checksum)?;
        }
        Ok(())
    }))
}

/// Every loader must reject the network in `dir` with one line naming
/// `file`.
#[track_caller]
fn expect_rejected(dir: &Path, file: &str, what: &str) {
    let out = snn_build([p(Path::new("verify")), p(dir)]);
    out.expect_clean_error(&format!("verify, {what}"), &[file]);
    let out = snn_build([p(Path::new("dump")), p(dir)]);
    out.expect_clean_error(&format!("dump, {what}"), &[file]);
    match load_all(dir) {
        Err(_) => panic!("{what}: NetworkDir::open/open_shard panicked"),
        Ok(Ok(())) => panic!("{what}: NetworkDir::open/open_shard(Checksum) accepted the network"),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(file) && !msg.contains('\n'),
                "{what}: loader error {msg:?}"
            );
        }
    }
}

/// `Shard::open` on a damaged file: never a panic; `Check::Structure` may
/// pass only if the damage is invisible to it, and then the checksum catches
/// it; `Check::Checksum` and `Check::Full` always fail.
#[track_caller]
fn expect_shard_rejected(path: &Path, what: &str) {
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for check in [Check::Structure, Check::Checksum, Check::Full] {
        match catch_unwind(|| Shard::open(path, check).map(|s| s.data().syn_weight.len())) {
            Err(_) => panic!("{what}: Shard::open({check:?}) panicked"),
            Ok(Ok(_)) => assert_eq!(
                check,
                Check::Structure,
                "{what}: Shard::open({check:?}) accepted a damaged shard"
            ),
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&name) && !msg.contains('\n'),
                    "{what}: {check:?}: {msg:?}"
                );
            }
        }
    }
}

/// A fixed-seed PRNG (splitmix64) for reproducible positions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn shard_path(dir: &Path, rank: u32) -> PathBuf {
    dir.join(format!("rank-{rank:05}.shard"))
}

fn truncations(compress: bool) {
    let (_tmp, dir) = small_net(compress);
    let path = shard_path(&dir, 1);
    let original = std::fs::read(&path).expect("read");
    let len = original.len();
    assert!(len > 2 * HEADER_LEN);
    for cut in [
        0,
        1,
        100,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 1,
        HEADER_LEN + 8,
        len / 2,
        len - 16,
        len - 1,
    ] {
        std::fs::write(&path, &original[..cut]).expect("truncate");
        let what = format!("shard truncated to {cut} of {len} bytes");
        expect_rejected(&dir, "rank-00001.shard", &what);
        expect_shard_rejected(&path, &what);
    }
    std::fs::write(&path, &original).expect("restore");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after restoring");
}

fn appended(compress: bool) {
    let (_tmp, dir) = small_net(compress);
    let path = shard_path(&dir, 0);
    let original = std::fs::read(&path).expect("read");
    for extra in [&[0u8][..], &[0xff], &[0u8; 16]] {
        let mut bytes = original.clone();
        bytes.extend_from_slice(extra);
        std::fs::write(&path, &bytes).expect("append");
        let what = format!("{} bytes appended", extra.len());
        expect_rejected(&dir, "rank-00000.shard", &what);
        expect_shard_rejected(&path, &what);
    }
}

fn bit_flips(compress: bool) {
    let (_tmp, dir) = small_net(compress);
    let path = shard_path(&dir, 0);
    let original = std::fs::read(&path).expect("read");
    let len = original.len();
    let mut rng = SplitMix(if compress { 0xC0FF_EE00 } else { 0x5EED_0001 });
    // Header fields, the start of the payload, the middle, the end (where
    // rkyv keeps the archive's root), then 200 positions anywhere.
    let mut positions: Vec<usize> = vec![
        0, 7, 8, 12, 16, 20, 24, 32, 40, 48, 52, 56, 72, 80, 88, 96, 104, 200, 247, 248, 255,
    ];
    positions.extend([
        HEADER_LEN,
        HEADER_LEN + 1,
        HEADER_LEN + 7,
        len / 2,
        len - 64,
        len - 16,
        len - 8,
        len - 1,
    ]);
    positions.extend((0..200).map(|_| (rng.next() % len as u64) as usize));
    let mut flips: Vec<(usize, u8)> = positions
        .into_iter()
        .map(|pos| (pos, (rng.next() % 8) as u8))
        .collect();
    // Every bit of byte 4 of the payload: in a compressed shard the zstd
    // frame header descriptor, with an unused bit that decompression
    // ignores.
    flips.extend((0..8).map(|bit| (HEADER_LEN + 4, bit)));
    let mut structure_blind = 0;
    for (i, &(pos, bit)) in flips.iter().enumerate() {
        let mut bytes = original.clone();
        bytes[pos] ^= 1 << bit;
        std::fs::write(&path, &bytes).expect("flip");
        let what = format!("flip #{i}: bit {bit} of byte {pos} of {len} (compressed: {compress})");
        expect_rejected(&dir, "rank-00000.shard", &what);
        expect_shard_rejected(&path, &what);
        structure_blind += usize::from(Shard::open(&path, Check::Structure).is_ok());
    }
    std::fs::write(&path, &original).expect("restore");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after restoring");
    // Most flips of a plain shard hit synapses, which only the checksum sees;
    // make sure the test exercised that path.
    if !compress {
        assert!(
            structure_blind > 50,
            "only {structure_blind} flips passed the structure check"
        );
    }
}

#[test]
fn truncated_shards_are_rejected() {
    truncations(false);
}

#[test]
fn truncated_compressed_shards_are_rejected() {
    truncations(true);
}

#[test]
fn shards_with_appended_bytes_are_rejected() {
    appended(false);
    appended(true);
}

#[test]
fn bit_flipped_shards_are_rejected() {
    bit_flips(false);
}

#[test]
fn bit_flipped_compressed_shards_are_rejected() {
    bit_flips(true);
}

#[test]
fn deleted_swapped_or_foreign_shards_are_rejected() {
    let (tmp, dir) = small_net(false);
    let s0 = shard_path(&dir, 0);
    let s1 = shard_path(&dir, 1);
    let b0 = std::fs::read(&s0).expect("read");
    let b1 = std::fs::read(&s1).expect("read");

    std::fs::remove_file(&s1).expect("delete");
    expect_rejected(&dir, "rank-00001.shard", "deleted shard");
    std::fs::write(&s1, &b1).expect("restore");

    // Swapped files: each is a valid shard of the wrong rank.
    std::fs::write(&s0, &b1).expect("swap");
    std::fs::write(&s1, &b0).expect("swap");
    expect_rejected(&dir, "rank-0000", "swapped shards");
    std::fs::write(&s0, &b0).expect("restore");
    std::fs::write(&s1, &b1).expect("restore");

    // The same rank of another network (other seed) in its place.
    let other = tmp.path().join("other");
    build_small(&other, &["--ranks", "2", "--set", "network.seed=99"]).expect_ok("other build");
    std::fs::copy(shard_path(&other, 0), &s0).expect("copy");
    expect_rejected(&dir, "rank-00000.shard", "shard of another network");
    std::fs::write(&s0, &b0).expect("restore");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after restoring");
}

#[test]
fn edited_broken_or_deleted_manifests_are_rejected() {
    let (_tmp, dir) = small_net(false);
    let mpath = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&mpath).expect("manifest");
    let m = Manifest::from_json(&mpath, &text).expect("parse");

    let total = format!("\"total_synapses\": {}", m.total_synapses);
    assert!(
        text.contains(&total),
        "manifest layout changed: {total} not found"
    );
    let edits: Vec<(&str, Vec<u8>)> = vec![
        (
            "total_synapses + 1",
            text.replace(
                &total,
                &format!("\"total_synapses\": {}", m.total_synapses + 1),
            )
            .into_bytes(),
        ),
        (
            "seed changed",
            text.replacen(&format!("\"seed\": {}", m.seed), "\"seed\": 1", 1)
                .into_bytes(),
        ),
        (
            "truncated to half",
            text.as_bytes()[..text.len() / 2].to_vec(),
        ),
        ("not an object", text.replacen('{', "[", 1).into_bytes()),
        ("empty", Vec::new()),
        ("trailing garbage", format!("{text}}}").into_bytes()),
        ("invalid UTF-8", {
            let mut b = text.clone().into_bytes();
            b[10] = 0xff;
            b
        }),
        (
            "n_ranks as a string",
            text.replacen("\"n_ranks\": 2", "\"n_ranks\": \"2\"", 1)
                .into_bytes(),
        ),
    ];
    for (what, bytes) in edits {
        assert_ne!(
            bytes,
            text.as_bytes(),
            "{what}: edit did not change the manifest"
        );
        std::fs::write(&mpath, &bytes).expect("write");
        expect_rejected(&dir, "manifest.json", what);
        let parsed = catch_unwind(|| {
            Manifest::from_json(&mpath, &String::from_utf8_lossy(&bytes)).map(|_| ())
        });
        assert!(
            matches!(parsed, Ok(Err(_))),
            "{what}: Manifest::from_json did not return an error"
        );
    }
    std::fs::remove_file(&mpath).expect("delete");
    expect_rejected(&dir, "manifest.json", "deleted manifest");
    std::fs::write(&mpath, &text).expect("restore");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after restoring");
}

/// Edits made with the manifest's checksum recomputed (a buggy tool, a
/// hand edit with the checksum fixed up): the manifest parses, but `verify`
/// must find that it no longer describes the shards.
#[test]
fn consistent_looking_but_wrong_manifests_fail_verify() {
    let (_tmp, dir) = small_net(false);
    let mpath = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&mpath).expect("manifest");
    let orig = Manifest::from_json(&mpath, &text).expect("parse");
    type Edit = Box<dyn Fn(&mut Manifest)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("total_synapses + 1", Box::new(|m| m.total_synapses += 1)),
        (
            "synapses moved between projections",
            Box::new(|m| {
                m.projections[0].synapses += 1;
                m.projections[1].synapses -= 1;
            }),
        ),
        (
            "shard checksum",
            Box::new(|m| m.shards[0].xxh3 = "0123456789abcdef".into()),
        ),
        ("model hash", Box::new(|m| m.model_hash = "00".repeat(16))),
        (
            "fewer ranks",
            Box::new(|m| {
                m.n_ranks = 1;
                m.shards.truncate(1);
            }),
        ),
        (
            "no ranks",
            Box::new(|m| {
                m.n_ranks = 0;
                m.shards.clear();
            }),
        ),
        ("max delay", Box::new(|m| m.max_delay_steps += 1)),
        ("n_neurons", Box::new(|m| m.n_neurons += 1)),
        ("time step", Box::new(|m| m.dt_ms = 0.2)),
        ("weight scale", Box::new(|m| m.weight_frac_bits += 1)),
        ("population size", Box::new(|m| m.populations[0].size += 1)),
        (
            "embedded config: a weight",
            Box::new(|m| {
                m.config.projections[4].weight =
                    Some(snn_formats::config::Distribution::Constant(-1.0));
            }),
        ),
        (
            "embedded config: a population size",
            Box::new(|m| m.config.populations[2].size = 51.0),
        ),
        (
            "embedded config: the seed",
            Box::new(|m| m.config.network.seed += 1),
        ),
    ];
    let mut accepted = Vec::new();
    for (what, edit) in edits {
        let mut m = orig.clone();
        edit(&mut m);
        assert_ne!(m, orig, "{what}: no change");
        let new_text = m.to_json();
        std::fs::write(&mpath, &new_text).expect("write");
        let out = snn_build([p(Path::new("verify")), p(&dir)]);
        if out.ok() {
            accepted.push(what);
            continue;
        }
        out.expect_clean_error(&format!("verify, {what}"), &["snn-build: error"]);
        let line = out.stderr.trim();
        assert!(
            line.contains("manifest.json") || line.contains(".shard"),
            "{what}: error does not name a file: {line}"
        );
    }
    assert!(
        accepted.is_empty(),
        "verify accepted manifests edited in: {accepted:?}"
    );
    std::fs::write(&mpath, &text).expect("restore");
    snn_build([p(Path::new("verify")), p(&dir)]).expect_ok("verify after restoring");
}
