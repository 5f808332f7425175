//! Device memory of the GPU engine, measured without a GPU: the engine runs
//! on a device that keeps no data and runs nothing (`snn_kernels::device::NullDevice`: it
//! counts the bytes of the buffers the engine allocates and discards what
//! is copied to it), so the count is exactly what the engine asks a GPU
//! for (the CUDA context and module code are the driver's and come on top).
//!
//! * `null_device_counts_like_the_stand_in` (CI): on the 10 % microcircuit
//!   the null device reports the same peak as the host stand-in, which
//!   really holds the data.
//! * `device_memory_of_a_network` (ignored; `bench/gpu/memory.sh` runs it):
//!   the network in `$SNN_NET` (e.g. the full-scale microcircuit), a few
//!   steps, prints bytes and bytes per synapse.

use snn_test_support::host;
use snn_test_support::net as common;

use std::path::Path;

use snn_kernels::device::{Device, DeviceError, NullDevice};
use snn_simulate::cluster::CommMode;
use snn_simulate::run::{
    run_ranks_checkpointed, Backend, CheckpointOptions, DeviceFactory, RunOptions, RunOutcome,
    RunSummary,
};

fn run(net: &Path, out: &Path, backend: Backend, t_sim_ms: f64) -> RunSummary {
    let o = RunOptions {
        network: net.to_path_buf(),
        output: out.to_path_buf(),
        t_presim_ms: 0.0,
        t_sim_ms,
        seed: 1,
        force: true,
        comm: CommMode::P2p,
        comm_group_size: 0,
        vm_from_start: false,
        backend,
    };
    match run_ranks_checkpointed(&o, &CheckpointOptions::default(), true, &mut |_| {}).expect("run")
    {
        RunOutcome::Finished(Some(s)) => *s,
        other => panic!("run did not finish: {other:?}"),
    }
}

fn null_backend() -> Backend {
    Backend::gpu(DeviceFactory::new("null", |_rank| {
        Ok(Box::new(NullDevice::default()) as Box<dyn Device>)
    }))
}

/// The null device counts what the stand-in (which holds the data) counts.
#[test]
fn null_device_counts_like_the_stand_in() {
    if host::find_cxx().is_none() {
        println!("NOTE: no C++ compiler: skipped");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let cfg = common::config(
        "microcircuit.toml",
        &["scale.neurons=0.1", "scale.indegree=0.1"],
    );
    common::build(&cfg, &net, 1, 2);
    let null = run(&net, &tmp.path().join("null"), null_backend(), 2.0);
    let host = run(
        &net,
        &tmp.path().join("host"),
        Backend::gpu(DeviceFactory::new("null", |_rank| {
            host::HostDevice::start()
                .map(|d| Box::new(d) as Box<dyn Device>)
                .ok_or_else(|| DeviceError::NoDevice("no C++ compiler".into()))
        })),
        2.0,
    );
    assert!(null.device_memory_bytes > 0);
    assert_eq!(null.device_memory_bytes, host.device_memory_bytes);
    assert_eq!(null.device_bytes_per_synapse, host.device_bytes_per_synapse);
}

/// A GPU too small for the network: a one-line error naming the buffer,
/// and no run directory left behind.
#[test]
fn too_small_a_gpu_is_a_clean_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = tmp.path().join("net");
    let cfg = common::config(
        "balanced.toml",
        &["scale.neurons=0.05", "scale.indegree=0.05"],
    );
    common::build(&cfg, &net, 1, 2);
    let out = tmp.path().join("run");
    let o = RunOptions {
        network: net.clone(),
        output: out.clone(),
        t_presim_ms: 0.0,
        t_sim_ms: 5.0,
        seed: 1,
        force: false,
        comm: CommMode::P2p,
        comm_group_size: 0,
        vm_from_start: false,
        backend: Backend::gpu(DeviceFactory::new("null", |_rank| {
            Ok(Box::new(NullDevice::with_capacity(1 << 20)) as Box<dyn Device>)
        })),
    };
    let e = run_ranks_checkpointed(&o, &CheckpointOptions::default(), true, &mut |_| {})
        .err()
        .map(|e| e.to_string())
        .expect("a run on too small a GPU fails");
    assert!(
        e.contains("out of GPU memory allocating") && !e.contains('\n'),
        "{e}"
    );
    assert!(!out.exists(), "a failed run left {}", out.display());
}

/// The device memory of the network in `$SNN_NET` (bench/gpu/memory.sh).
#[test]
#[ignore = "a benchmark: needs SNN_NET (bench/gpu/memory.sh)"]
fn device_memory_of_a_network() {
    let Some(net) = std::env::var_os("SNN_NET") else {
        panic!("set SNN_NET to a network directory");
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = run(
        Path::new(&net),
        &tmp.path().join("run"),
        null_backend(),
        1.0,
    );
    let m = snn_formats::NetworkDir::open(Path::new(&net))
        .expect("network")
        .manifest;
    println!(
        "{{\"network\": {:?}, \"synapses\": {}, \"neurons\": {}, \"device_memory_bytes\": {}, \"device_bytes_per_synapse\": {:.4}}}",
        net,
        m.total_synapses,
        s.populations.iter().map(|p| p.size).sum::<u64>(),
        s.device_memory_bytes,
        s.device_bytes_per_synapse.unwrap_or(f64::NAN)
    );
}
