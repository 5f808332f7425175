//! Fuzz `Shard::open`: any file must give `Ok` or a clean `Err` at every
//! check level, never a panic or undefined behaviour; a shard that opens is
//! read the way consumers read it.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use snn_formats::{Check, Shard};

fuzz_target!(|data: &[u8]| {
    // Shards are memory-mapped files, so the input goes through a file.
    let Ok(mut file) = tempfile::Builder::new().suffix(".shard").tempfile() else {
        return;
    };
    if file.write_all(data).and_then(|_| file.flush()).is_err() {
        return;
    }
    for check in [Check::Structure, Check::Checksum, Check::Full] {
        if let Ok(shard) = Shard::open(file.path(), check) {
            let d = shard.data();
            let rows = d.row_ptr.len() - 1;
            let mut acc = 0u64;
            for row in 0..rows {
                let src = d.row_source(row);
                for i in d.row_synapses(row) {
                    acc ^= src
                        ^ u64::from(d.syn_target_delay[i].to_native())
                        ^ d.syn_weight[i].to_native() as u64;
                }
            }
            for q in 0..d.n_ranks.to_native() as usize {
                let (a, b) = (
                    d.send_offsets[q].to_native() as usize,
                    d.send_offsets[q + 1].to_native() as usize,
                );
                for l in d.send[a..b].iter() {
                    acc ^= d.local_to_global[l.to_native() as usize].to_native();
                }
            }
            std::hint::black_box(acc);
        }
    }
});
