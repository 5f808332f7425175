//! Single-core costs of the CPU engine's basic operations on this machine,
//! for the floors in `bench/RESULTS.md` (`bench/cpu.sh floors` runs it):
//!
//! * a neuron update (`iaf_psc_exp`, blocks of 1,024 neurons, the engine's
//!   vectorised `Block::step`), ns per neuron and step;
//! * the Poisson words of one neuron and step (a quarter of a Philox block,
//!   32 neurons at a time as the engine's pool draws them: the neurons'
//!   counter words made once, the words written into rows of 256);
//! * a synaptic event as the engine handles it: appended to a queue, later
//!   added into its target's input sum at random in an array of the given
//!   size (16 bytes per neuron), and, for comparison, a random add into a
//!   dense ring of `slots x neurons` cells (what the engine did before);
//! * a random read-modify-write of an `i64` in arrays from 32 KiB to
//!   256 MiB (cache levels to memory), independent accesses.
//!
//! `cargo run --release -p snn-simulate --example floors [-- --quick]`

use std::hint::black_box;
use std::time::Instant;

use snn_formats::model::{NeuronModel, NeuronParams};
use snn_simulate::input::{poisson_gid_words, poisson_words_x32_to};
use snn_simulate::neuron;

/// xorshift64*: a fast stream of indices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Best of `reps` timings of `f`, seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let reps = 5;
    println!("single-core costs (best of {reps}), ns");

    // Neuron updates.
    let params = NeuronParams {
        model: NeuronModel::IafPscExp,
        C_m: 250.0,
        tau_m: 10.0,
        tau_syn_ex: 0.5,
        tau_syn_in: 0.5,
        t_ref: 2.0,
        E_L: -65.0,
        V_th: -50.0,
        V_reset: -65.0,
        I_e: 350.0,
        spike_times: Vec::new(),
    };
    let n = 1024;
    let steps = 20_000 / scale;
    let mut block =
        neuron::block(&params, 0.1, n, |i| -65.0 + (i % 15) as f64).expect("a neuron model");
    let in_ex: Vec<f64> = (0..n)
        .map(|i| if i % 7 == 0 { 90.0 } else { 0.0 })
        .collect();
    let in_in: Vec<f64> = (0..n)
        .map(|i| if i % 11 == 0 { -350.0 } else { 0.0 })
        .collect();
    let mut spikes = Vec::new();
    let t = best(reps, || {
        for _ in 0..steps {
            spikes.clear();
            block.step(0..n, &in_ex, &in_in, &mut spikes);
        }
    });
    println!(
        "neuron update (iaf_psc_exp)        {:8.3} per neuron-step",
        t * 1e9 / (n * steps) as f64
    );

    // Poisson words.
    let gids: [u64; 32] = std::array::from_fn(|j| 1000 + j as u64);
    let gid_words = poisson_gid_words(&gids);
    let blocks = 200_000 / scale as u64;
    let mut rows = vec![0u32; 4 * 256];
    let t = best(reps, || {
        let mut acc = 0u32;
        for b in 0..blocks {
            let at = 32 * (b as usize % 8);
            let mut out = [0, 1, 2, 3].map(|_| &mut [][..]);
            for (o, row) in out.iter_mut().zip(rows.chunks_exact_mut(256)) {
                *o = &mut row[at..at + 32];
            }
            poisson_words_x32_to(7, &gid_words, b, &mut out);
            acc ^= out[2][5];
        }
        black_box(acc);
    });
    println!(
        "Poisson words                       {:8.3} per neuron-step (a Philox block per 4 steps)",
        t * 1e9 / (blocks * 32 * 4) as f64
    );

    // Random read-modify-write of i64 by array size.
    let accesses = 20_000_000 / scale;
    for kib in [32usize, 1024, 16 * 1024, 256 * 1024] {
        let len = kib * 1024 / 8;
        let mut a = vec![0i64; len];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let idx: Vec<u32> = (0..accesses)
            .map(|_| (rng.next() % len as u64) as u32)
            .collect();
        let t = best(reps, || {
            for &i in &idx {
                a[i as usize] += 3;
            }
        });
        black_box(&a);
        println!(
            "random i64 add, {:>9} KiB array {:8.3} per access",
            kib,
            t * 1e9 / accesses as f64
        );
    }

    // Synaptic events: queued, then summed into a 16-bytes-per-neuron array.
    for neurons in [7_712usize, 77_169] {
        let mut rng = Rng(42);
        let events: Vec<(u32, i32)> = (0..accesses)
            .map(|_| {
                (
                    (rng.next() % neurons as u64) as u32,
                    (rng.next() % 1000) as i32 - 300,
                )
            })
            .collect();
        let mut queue: Vec<(u32, i32)> = Vec::with_capacity(events.len());
        let mut acc = vec![0i64; 2 * neurons];
        let t = best(reps, || {
            queue.clear();
            queue.extend_from_slice(&events);
            for &(tgt, w) in &queue {
                acc[2 * tgt as usize + usize::from(w < 0)] += w as i64;
            }
        });
        black_box(&acc);
        println!(
            "synaptic event, {:>6} neurons     {:8.3} per event (queue, then sum)",
            neurons,
            t * 1e9 / accesses as f64
        );
    }
}
