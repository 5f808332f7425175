//! Property tests of the loaders against damaged files : any
//! overwrite, bit flip, truncation or insertion in a valid shard or manifest
//! must give an error, never a panic; with `Check::Checksum` every changed
//! shard is rejected, and a manifest that still loads must mean exactly the
//! same as the original. The `fuzz/` crate runs the same loaders under
//! libFuzzer.

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use snn_formats::manifest::{Manifest, PopulationEntry, ProjectionEntry, Provenance, ShardEntry};
use snn_formats::shard::{write_shard, ArchivedShardData, ShardData, HEADER_LEN};
use snn_formats::{Check, Shard};

/// A small valid shard of rank 0 of a 2-rank, 6-neuron network: rank 0 owns
/// the even neurons, images of 1 and 3 come from rank 1, and rank 1 needs
/// local neurons 0 and 2 (global 0 and 4).
fn shard_data() -> ShardData {
    let tb = 2;
    let syn = |target: u32, delay: u32| target | (delay << tb);
    ShardData {
        rank: 0,
        n_ranks: 2,
        model_hash: [7; 16],
        n_neurons: 6,
        weight_frac_bits: 10,
        target_bits: tb,
        min_delay_steps: 1,
        max_delay_steps: 3,
        local_to_global: vec![0, 2, 4],
        image_offsets: vec![0, 0, 2],
        images: vec![1, 3],
        send_offsets: vec![0, 0, 2],
        send: vec![0, 2],
        // rows: local 0, 1, 2, image 1, image 3
        row_ptr: vec![0, 2, 3, 3, 5, 6],
        syn_target_delay: vec![
            syn(0, 1),
            syn(1, 2),
            syn(2, 3),
            syn(0, 1),
            syn(2, 2),
            syn(1, 3),
        ],
        syn_weight: vec![100, -200, 300, 400, -5, 6],
        projection_synapses: vec![4, 2],
    }
}

fn shard_bytes(compress: bool) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("rank-00000.shard");
    write_shard(&path, &shard_data(), compress.then_some(3)).expect("write shard");
    std::fs::read(&path).expect("read shard")
}

fn manifest() -> Manifest {
    let cfg = snn_formats::parse_config(
        "[network]\nname = \"fuzz\"\n[[populations]]\nname = \"A\"\nsize = 6\n\
         [[projections]]\nsource = \"A\"\ntarget = \"A\"\nrule = \"fixed_indegree\"\n\
         indegree = 2\nweight = { distribution = \"normal\", mean = 1.5, std = 0.25, min = 0.0 }\ndelay = 0.3\n",
        "fuzz.toml",
        &[],
    )
    .expect("config");
    let mut m = Manifest {
        format: snn_formats::manifest::MANIFEST_FORMAT.into(),
        format_version: snn_formats::manifest::MANIFEST_VERSION,
        shard_format_version: snn_formats::shard::SHARD_FORMAT_VERSION,
        model_hash: "07".repeat(16),
        model_name: "fuzz".into(),
        seed: 55,
        n_ranks: 2,
        dt_ms: 0.1,
        min_delay_steps: 1,
        max_delay_steps: 3,
        n_neurons: 6,
        total_synapses: 12,
        weight_frac_bits: 10,
        compressed: false,
        populations: vec![PopulationEntry {
            name: "A".into(),
            size: 6,
            first_id: 0,
            model: "iaf_psc_exp".into(),
        }],
        projections: vec![ProjectionEntry {
            name: "A->A".into(),
            source: "A".into(),
            target: "A".into(),
            rule: "fixed_indegree".into(),
            synapses: 12,
        }],
        shards: (0..2)
            .map(|r| ShardEntry {
                file: snn_formats::shard::shard_file_name(r),
                rank: r,
                bytes: 1000 + u64::from(r),
                xxh3: format!("{:016x}", 0x1234_5678_9abc_def0u64 + u64::from(r)),
                synapses: 6,
                neurons: 3,
                images: 2,
            })
            .collect(),
        config: cfg,
        provenance: Provenance {
            builder_version: "0.1.0".into(),
            command: vec!["snn-build".into(), "fuzz.toml".into()],
            created_unix_s: 1_700_000_000,
            host: "host".into(),
            threads: 2,
            device: "cpu".into(),
            build_seconds: 0.25,
        },
        checksum: String::new(),
    };
    m.to_json();
    m
}

#[derive(Clone, Debug)]
enum Mutation {
    Overwrite(Index, u8),
    FlipBit(Index, u8),
    Insert(Index, u8),
    Truncate(Index),
    /// Overwrite inside the header, where the fields that steer parsing are.
    HeaderOverwrite(u8, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(i, b)| Mutation::HeaderOverwrite(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Overwrite(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::Insert(i, b) => {
            let i = i.index(bytes.len() + 1);
            bytes.insert(i, *b);
        }
        Mutation::Truncate(i) => {
            let len = i.index(bytes.len() + 1);
            bytes.truncate(len);
        }
        Mutation::HeaderOverwrite(i, b) if (*i as usize) < bytes.len() => {
            bytes[*i as usize] = *b;
        }
        _ => {}
    }
}

/// Read every part of an opened shard the way a consumer does, with
/// indexing that panics if the invariants `Shard::open` promises are broken.
fn walk(d: &ArchivedShardData, synapses_checked: bool) -> u64 {
    let n_local = d.local_to_global.len();
    let n_ranks = d.n_ranks.to_native() as usize;
    let rows = d.row_ptr.len() - 1;
    assert_eq!(rows, n_local + d.images.len());
    let mask = (1u32 << d.target_bits.to_native()) - 1;
    let mut acc = 0u64;
    for row in 0..rows {
        let src = d.row_source(row);
        for i in d.row_synapses(row) {
            let td = d.syn_target_delay[i].to_native();
            acc = acc.wrapping_add(src ^ u64::from(td) ^ d.syn_weight[i].to_native() as u64);
            if synapses_checked {
                acc ^= d.local_to_global[(td & mask) as usize].to_native();
            }
        }
    }
    for q in 0..n_ranks {
        let (a, b) = (
            d.send_offsets[q].to_native() as usize,
            d.send_offsets[q + 1].to_native() as usize,
        );
        for l in d.send[a..b].iter() {
            acc ^= d.local_to_global[l.to_native() as usize].to_native();
        }
        let (a, b) = (
            d.image_offsets[q].to_native() as usize,
            d.image_offsets[q + 1].to_native() as usize,
        );
        for g in d.images[a..b].iter() {
            acc ^= g.to_native();
        }
    }
    acc
}

fn check_shard_bytes(dir: &Path, original: &[u8], bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("rank-00000.shard");
    std::fs::write(&path, bytes).expect("write mutated shard");
    let changed = bytes != original;
    for check in [Check::Structure, Check::Checksum, Check::Full] {
        match Shard::open(&path, check) {
            Ok(s) => {
                prop_assert!(
                    !changed || check == Check::Structure,
                    "{check:?} accepted a changed shard ({} bytes, original {})",
                    bytes.len(),
                    original.len()
                );
                walk(s.data(), check == Check::Full);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(changed, "unchanged shard rejected: {msg}");
                prop_assert!(
                    msg.contains("rank-00000.shard"),
                    "error does not name the file: {msg}"
                );
                prop_assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn valid_shards_open_at_every_level() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for compress in [false, true] {
        let bytes = shard_bytes(compress);
        assert!(bytes.len() > HEADER_LEN);
        check_shard_bytes(tmp.path(), &bytes, &bytes).expect("valid shard");
        let path = tmp.path().join("rank-00000.shard");
        let s = Shard::open(&path, Check::Full).expect("open");
        assert_eq!(s.header().compressed, compress);
        assert_eq!(s.data().syn_weight.len(), 6);
    }
}

/// Exhaustively: every single-bit flip anywhere in the file, plain and
/// compressed, fails `Check::Checksum` (some flips inside a zstd frame
/// decompress to the same archive, so the stored bytes need their own
/// checksum).
#[test]
fn every_single_bit_flip_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for compress in [false, true] {
        let original = shard_bytes(compress);
        let mut bytes = original.clone();
        for pos in 0..bytes.len() {
            for bit in 0..8 {
                bytes[pos] ^= 1 << bit;
                check_shard_bytes(tmp.path(), &original, &bytes)
                    .unwrap_or_else(|e| panic!("compressed={compress}, byte {pos} bit {bit}: {e}"));
                bytes[pos] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn valid_manifest_round_trips() {
    let m = manifest();
    let mut copy = m.clone();
    let text = copy.to_json();
    let back = Manifest::from_json(Path::new("manifest.json"), &text).expect("valid manifest");
    assert_eq!(back, m);
}

/// Found by the fuzz test below (a backslash inserted before the `n` of a
/// field name, so that the name holds a newline): the error quotes the
/// name, escaped, on one line.
#[test]
fn manifest_error_quoting_a_newline_is_one_line() {
    let mut m = manifest();
    let text = m.to_json();
    let at = text.find("V_m_init").expect("a V_m_init field") + "V_m_i".len();
    let mutated = format!("{}\\{}", &text[..at], &text[at..]);
    let e = Manifest::from_json(Path::new("net/manifest.json"), &mutated)
        .expect_err("an unknown field")
        .to_string();
    assert!(!e.contains('\n'), "{e:?}");
    assert!(e.contains("V_m_i\\nit"), "{e:?}");
    assert!(e.starts_with("net/manifest.json: "), "{e:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_shards_are_rejected_without_panic(
        compress in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        thread_local! {
            static ORIGINALS: [Vec<u8>; 2] = [shard_bytes(false), shard_bytes(true)];
        }
        let original = ORIGINALS.with(|o| o[usize::from(compress)].clone());
        let mut bytes = original.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        check_shard_bytes(tmp.path(), &original, &bytes)?;
    }

    #[test]
    fn mutated_manifests_are_rejected_without_panic(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        thread_local! {
            static ORIGINAL: (Manifest, String) = {
                let mut m = manifest();
                let text = m.to_json();
                (m, text)
            };
        }
        let (m, text) = ORIGINAL.with(|o| o.clone());
        let mut bytes = text.clone().into_bytes();
        for mu in &mutations {
            apply(&mut bytes, mu);
        }
        let mutated = String::from_utf8_lossy(&bytes);
        let path = Path::new("net/manifest.json");
        match Manifest::from_json(path, &mutated) {
            // Whitespace or an equivalent spelling of a number may survive;
            // then it must mean exactly the original.
            Ok(back) => prop_assert_eq!(back, m),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(mutated != text, "unchanged manifest rejected: {}", msg);
                prop_assert!(msg.contains("manifest.json"), "error does not name the file: {}", msg);
                prop_assert!(!msg.contains('\n'), "error is not one line: {:?}", msg);
            }
        }
    }
}
