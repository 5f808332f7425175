//! A shard larger than 2 GiB (the limit of rkyv's default 32-bit relative
//! pointers) is written, opened zero-copy and read correctly at both ends.

use snn_formats::shard::{write_shard, Check, Shard, ShardData};

#[test]
fn shard_over_2_gib_round_trips() {
    // 2^28 + 2^24 synapses x 8 bytes = 2.125 GiB of synapse arrays.
    let n_syn: usize = (1 << 28) + (1 << 24);
    let n_local = 1000u64;
    let target_bits = 10u32;
    let per_row = n_syn / n_local as usize;
    let mut row_ptr: Vec<u64> = (0..=n_local).map(|r| r * per_row as u64).collect();
    *row_ptr.last_mut().unwrap() = n_syn as u64;
    let mut td = vec![0u32; n_syn];
    let mut w = vec![0i32; n_syn];
    for (i, (t, x)) in td.iter_mut().zip(w.iter_mut()).enumerate() {
        *t = (i as u32 % n_local as u32) | (((i % 7) as u32 + 1) << target_bits);
        *x = i as i32 ^ 0x5a5a;
    }
    let data = ShardData {
        rank: 0,
        n_ranks: 1,
        model_hash: [7; 16],
        n_neurons: n_local,
        weight_frac_bits: 20,
        target_bits,
        min_delay_steps: 1,
        max_delay_steps: 7,
        local_to_global: (0..n_local).collect(),
        image_offsets: vec![0, 0],
        images: vec![],
        send_offsets: vec![0, 0],
        send: vec![],
        row_ptr,
        syn_target_delay: td,
        syn_weight: w,
        projection_synapses: vec![n_syn as u64],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rank-00000.shard");
    let written = write_shard(&path, &data, None).unwrap();
    assert!(
        written.file_bytes > 1 << 31,
        "only {} bytes",
        written.file_bytes
    );
    drop(data);
    let shard = Shard::open(&path, Check::Checksum).unwrap();
    let d = shard.data();
    assert_eq!(d.syn_weight.len(), n_syn);
    for &i in &[0usize, 1, n_syn / 2, n_syn - 2, n_syn - 1] {
        assert_eq!(d.syn_weight[i].to_native(), i as i32 ^ 0x5a5a, "weight {i}");
        assert_eq!(
            d.syn_target_delay[i].to_native(),
            (i as u32 % n_local as u32) | (((i % 7) as u32 + 1) << target_bits),
            "synapse {i}"
        );
    }
    assert_eq!(d.row_ptr[n_local as usize].to_native(), n_syn as u64);
}
