//! The GPU builder (`snn_netbuild::gpu`, `snn-build --backend cuda`) run on
//! the host stand-in device (`test-support/src/host/`: the kernels compiled as
//! host C++, launches emulated thread by thread in permuted orders), its
//! shard files compared byte for byte with those of the CPU builder, the
//! independent reference: every connection rule, the balanced network and
//! the microcircuit, on 1 and 3 ranks, with several launch orders and
//! shapes and both placements. Also the device scan and the row ordering
//! kernels against plain CPU computations.
//!
//! This checks the host code and the kernels' logic; it does not replace a
//! run on a GPU.

use snn_test_support::host;

use std::path::Path;

use host::HostDevice;
use snn_formats::Config;
use snn_kernels::device::{grid_for, Arg, DevVec, Device, DeviceError};
use snn_kernels::registry::KernelId;
use snn_kernels::rng::CounterRng;
use snn_netbuild::gpu::exclusive_scan;
use snn_netbuild::{build_network, BuildDevice, BuildOptions, DeviceFactory};

fn load(path: &Path, overrides: &[&str]) -> Config {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    snn_formats::load_config(path, &ov).expect("config")
}

/// The stand-in's launch settings.
#[derive(Clone, Copy, Debug)]
struct Launch {
    order: u32,
    full_grid: u32,
    block_size: u32,
}

/// A factory of stand-in devices with launch settings `l` (None when no
/// C++ compiler is found: the test is skipped).
fn host_factory(l: Launch) -> Option<DeviceFactory> {
    host::find_cxx()?;
    Some(DeviceFactory::new("host stand-in", move |_rank| {
        let mut d =
            HostDevice::start().ok_or_else(|| DeviceError::NoDevice("no C++ compiler".into()))?;
        d.order = l.order;
        d.full_grid = l.full_grid;
        d.block_size = l.block_size;
        Ok(Box::new(d) as Box<dyn Device>)
    }))
}

/// The shard files of a network directory, by name.
fn shards(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".shard"))
        .map(|n| {
            let b = std::fs::read(dir.join(&n)).expect("read shard");
            (n, b)
        })
        .collect();
    v.sort();
    v
}

/// Builds `cfg` on `ranks` ranks with the CPU builder and with the GPU
/// builder on the stand-in under each of `launches`, and checks that the
/// shard files are the same bytes. Returns the synapse count.
fn compare(cfg: &Config, ranks: u32, launches: &[Launch]) -> u64 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cpu_dir = tmp.path().join("cpu");
    let opts = BuildOptions {
        n_ranks: ranks,
        force: true,
        ..Default::default()
    };
    let cpu = build_network(cfg, "test.toml", &cpu_dir, &opts).expect("CPU build");
    let want = shards(&cpu_dir);
    assert_eq!(want.len(), ranks as usize);
    for (i, &l) in launches.iter().enumerate() {
        let Some(factory) = host_factory(l) else {
            println!("NOTE: no C++ compiler found: GPU builder comparison skipped");
            return 0;
        };
        let dir = tmp.path().join(format!("gpu{i}"));
        let opts = BuildOptions {
            n_ranks: ranks,
            force: true,
            device: BuildDevice::Gpu(factory),
            ..Default::default()
        };
        let gpu = build_network(cfg, "test.toml", &dir, &opts).expect("GPU build");
        assert_eq!(gpu.total_synapses, cpu.total_synapses);
        let got = shards(&dir);
        assert_eq!(got.len(), want.len());
        for ((n1, b1), (n2, b2)) in want.iter().zip(&got) {
            assert_eq!(n1, n2);
            assert!(
                b1 == b2,
                "{n1} differs ({} and {} bytes) with launches {l:?}",
                b1.len(),
                b2.len()
            );
        }
        let net = snn_formats::NetworkDir::open(&dir).expect("open");
        assert_eq!(net.manifest.provenance.device, "host stand-in");
    }
    cpu.total_synapses
}

const LAUNCHES: [Launch; 3] = [
    Launch {
        order: 2,
        full_grid: 4,
        block_size: 8,
    },
    Launch {
        order: 1,
        full_grid: 3,
        block_size: 5,
    },
    Launch {
        order: 7,
        full_grid: 64,
        block_size: 32,
    },
];

/// Every connection rule (the fixture of the CLI tests), 1 and 3 ranks,
/// round-robin and block placement, three launch settings.
#[test]
fn all_rules_shards_identical() {
    let path = snn_test_support::repo().join("tests/fixtures/small_all_rules.toml");
    let mut n = 0;
    n += compare(&load(&path, &[]), 1, &LAUNCHES);
    n += compare(&load(&path, &[]), 3, &LAUNCHES[..2]);
    n += compare(&load(&path, &["placement.scheme=block"]), 3, &LAUNCHES[2..]);
    println!("{n} synapses identical");
}

/// The balanced network, scaled down, 1 and 3 ranks.
#[test]
fn balanced_shards_identical() {
    let cfg = load(
        &snn_test_support::repo().join("configs/balanced.toml"),
        &["scale.neurons=0.05", "scale.indegree=0.02"],
    );
    let n = compare(&cfg, 1, &LAUNCHES[..1]) + compare(&cfg, 3, &LAUNCHES[1..2]);
    println!("{n} synapses identical");
}

/// The 10 % microcircuit (about 3e6 synapses), 1 and 3 ranks.
#[test]
fn microcircuit_shards_identical() {
    let cfg = load(
        &snn_test_support::repo().join("configs/microcircuit.toml"),
        &["scale.neurons=0.1", "scale.indegree=0.1"],
    );
    let n = compare(&cfg, 1, &LAUNCHES[2..]) + compare(&cfg, 3, &LAUNCHES[..1]);
    println!("{n} synapses identical");
}

/// The device scan against a plain prefix sum, for many lengths, segment
/// sizes and launch settings.
#[test]
fn scan_matches_prefix_sums() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(5, [1, 2, 3], 0);
    for (c, n) in [0usize, 1, 2, 7, 100, 1000, 4097].into_iter().enumerate() {
        for seg in [0u64, 1, 3, 64, 5000] {
            let l = LAUNCHES[(c + seg as usize) % LAUNCHES.len()];
            dev.order = l.order;
            dev.full_grid = l.full_grid;
            dev.block_size = l.block_size;
            let xs: Vec<u32> = (0..n)
                .map(|_| {
                    if g.below(3) == 0 {
                        0
                    } else {
                        g.next_u32() >> g.below(32)
                    }
                })
                .collect();
            // A longer buffer: only the first n items count.
            let mut padded = xs.clone();
            padded.push(u32::MAX);
            let input = DevVec::from_slice(&mut dev, &padded, "input").expect("upload");
            let out = exclusive_scan(&mut dev, &input, n, seg).expect("scan");
            let got = out.to_vec(&mut dev).expect("download");
            let mut want = vec![0u64];
            for &x in &xs {
                want.push(want.last().copied().unwrap_or(0) + x as u64);
            }
            assert_eq!(got, want, "n {n} seg {seg}");
            input.free(&mut dev);
            out.free(&mut dev);
        }
    }
}

/// Scatter into rows by atomic cursors, then the per-row sort: each row
/// holds its synapses' indices in increasing order (a stable grouping by
/// row), whatever the launch order; compared with a CPU counting sort.
#[test]
fn scatter_and_sort_give_canonical_rows() {
    let Some(mut dev) = HostDevice::start() else {
        return;
    };
    let mut g = CounterRng::from_raw(9, [4, 5, 6], 0);
    for (c, (n_src, n_syn)) in [(1u64, 0usize), (1, 50), (13, 400), (300, 3000), (2000, 500)]
        .into_iter()
        .enumerate()
    {
        let l = LAUNCHES[c % LAUNCHES.len()];
        dev.order = l.order;
        dev.full_grid = l.full_grid;
        dev.block_size = l.block_size;
        // Sources with a skewed distribution (long and empty rows); rows
        // are the sources in a shuffled order, some without a row.
        let src: Vec<u32> = (0..n_syn)
            .map(|_| (g.below(n_src) * g.below(n_src) / n_src) as u32)
            .collect();
        let mut count = vec![0u32; n_src as usize];
        for &s in &src {
            count[s as usize] += 1;
        }
        let mut order: Vec<u32> = (0..n_src as u32).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, g.below(i as u64 + 1) as usize);
        }
        let mut row_of = vec![u32::MAX; n_src as usize];
        let mut n_rows = 0u32;
        for &s in &order {
            if count[s as usize] > 0 || g.below(2) == 0 {
                row_of[s as usize] = n_rows;
                n_rows += 1;
            }
        }
        let mut row_ptr = vec![0u64; n_rows as usize + 1];
        for s in 0..n_src as usize {
            if row_of[s] != u32::MAX {
                row_ptr[row_of[s] as usize + 1] = count[s] as u64;
            }
        }
        for r in 0..n_rows as usize {
            row_ptr[r + 1] += row_ptr[r];
        }
        // CPU reference: stable counting sort by row.
        let mut want = vec![0u64; n_syn];
        let mut cur = row_ptr.clone();
        for (j, &s) in src.iter().enumerate() {
            let r = row_of[s as usize] as usize;
            want[cur[r] as usize] = j as u64;
            cur[r] += 1;
        }
        let d_src = DevVec::from_slice(&mut dev, &src, "src").expect("upload");
        let d_row_of = DevVec::from_slice(&mut dev, &row_of, "row_of").expect("upload");
        let d_row_ptr = DevVec::from_slice(&mut dev, &row_ptr, "row_ptr").expect("upload");
        let cursor = DevVec::<u32>::zeros(&mut dev, n_rows as usize, "cursor").expect("alloc");
        let key = DevVec::<u64>::zeros(&mut dev, n_syn, "key").expect("alloc");
        let err = DevVec::<u32>::zeros(&mut dev, 1, "err").expect("alloc");
        let shape = grid_for(&dev, n_syn as u64);
        Device::launch(
            &mut dev,
            KernelId::BuildScatter,
            shape,
            &[
                d_src.arg(),
                Arg::U64(n_syn as u64),
                d_row_of.arg(),
                d_row_ptr.arg(),
                cursor.arg(),
                key.arg(),
                err.arg(),
            ],
        )
        .expect("scatter");
        let scattered = key.to_vec(&mut dev).expect("download");
        let shape = grid_for(&dev, n_rows as u64);
        Device::launch(
            &mut dev,
            KernelId::BuildSortRows,
            shape,
            &[d_row_ptr.arg(), Arg::U64(n_rows as u64), key.arg()],
        )
        .expect("sort");
        assert_eq!(err.to_vec(&mut dev).expect("download"), [0]);
        let got = key.to_vec(&mut dev).expect("download");
        assert_eq!(got, want, "case {c}");
        if n_syn > 100 {
            // The scatter alone is in thread order, not canonical: the sort
            // is what this test checks.
            assert_ne!(
                scattered, want,
                "case {c}: the scatter was already in order"
            );
        }
    }
}

/// Edge cases of the rules: in-degrees equal to the available sources
/// without multapses (every source) and above half of them, autapses excluded in one-neuron and two-neuron
/// populations, certain and impossible Bernoulli connections, a population
/// without incoming synapses, ranks without neurons of some populations.
#[test]
fn rule_edge_cases_shards_identical() {
    let text = r#"
[network]
name = "edges"
dt_ms = 0.1
seed = 77

[placement]
scheme = "round_robin"

[neuron_defaults]
model = "iaf_psc_exp"

[[populations]]
name = "A"
size = 40

[[populations]]
name = "B"
size = 2

[[populations]]
name = "C"
size = 1

[[populations]]
name = "D"
size = 7

[[populations]]
name = "E"
size = 3000

[[projections]]
source = "A"
target = "A"
rule = "fixed_indegree"
indegree = 39
allow_autapses = false
allow_multapses = false
weight = { distribution = "normal", mean = 10.0, std = 30.0, min = -5.0, max = 50.0 }
delay = { distribution = "uniform", min = 0.1, max = 3.0 }

[[projections]]
source = "B"
target = "B"
rule = "fixed_indegree"
indegree = 1
allow_autapses = false
allow_multapses = false
weight = 1.0
delay = 1.0

[[projections]]
source = "A"
target = "D"
rule = "fixed_indegree"
indegree = 40
allow_multapses = false
weight = 2.0
delay = 0.2

[[projections]]
source = "C"
target = "C"
rule = "all_to_all"
allow_autapses = false
weight = 3.0
delay = 1.0

[[projections]]
source = "C"
target = "C"
rule = "one_to_one"
allow_autapses = false
weight = 3.0
delay = 1.0

[[projections]]
source = "D"
target = "A"
rule = "pairwise_bernoulli"
p = 1.0
weight = -4.0
delay = 0.5

[[projections]]
source = "A"
target = "B"
rule = "pairwise_bernoulli"
p = 0.0
weight = 1.0
delay = 1.0

[[projections]]
source = "E"
target = "D"
rule = "fixed_indegree"
indegree = 1700
allow_multapses = false
weight = { distribution = "normal", mean = 1.0, std = 1.0 }
delay = 1.0

[[projections]]
source = "D"
target = "D"
rule = "fixed_total_number"
N = 3
allow_autapses = false
weight = 1.0
delay = 1.0
"#;
    for (ranks, scheme) in [(1, "round_robin"), (3, "round_robin"), (4, "block")] {
        let ov = [format!("placement.scheme={scheme}")];
        let cfg = snn_formats::parse_config(text, "edges.toml", &ov).expect("config");
        let n = compare(
            &cfg,
            ranks,
            &LAUNCHES[ranks as usize % 3..ranks as usize % 3 + 1],
        );
        println!("{ranks} ranks, {scheme}: {n} synapses identical");
    }
}

/// A delay that does not fit beside the target bits is refused by both
/// builders, naming the projection.
#[test]
fn delay_overflow_is_refused_like_the_cpu_builder() {
    let text = r#"
[network]
name = "long_delays"
dt_ms = 0.1
seed = 3

[neuron_defaults]
model = "iaf_psc_exp"

[[populations]]
name = "A"
size = 200

[[projections]]
name = "slow"
source = "A"
target = "A"
rule = "fixed_indegree"
indegree = 3
weight = 1.0
delay = { distribution = "uniform", min = 1.0, max = 4000000.0 }
"#;
    let cfg = snn_formats::parse_config(text, "long.toml", &[]).expect("config");
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = BuildOptions {
        force: true,
        ..Default::default()
    };
    let cpu = build_network(&cfg, "long.toml", &tmp.path().join("cpu"), &opts)
        .expect_err("CPU build")
        .to_string();
    // Refused before anything is drawn, naming the field.
    assert!(
        cpu.contains("projections[0].delay") && cpu.contains("8-bit local targets"),
        "{cpu}"
    );
    let Some(factory) = host_factory(LAUNCHES[0]) else {
        return;
    };
    let opts = BuildOptions {
        device: BuildDevice::Gpu(factory),
        ..opts
    };
    let gpu = build_network(&cfg, "long.toml", &tmp.path().join("gpu"), &opts)
        .expect_err("GPU build")
        .to_string();
    assert_eq!(gpu, cpu);
    assert!(!tmp.path().join("gpu").exists());
}

/// The distributed builder (`mpirun -n 3`, one stand-in device per process)
/// against the single-process CPU build: the same shard files. The test
/// starts itself under `mpirun` as the workers (skipped with a note where
/// `mpirun` is not installed).
#[cfg(feature = "mpi")]
#[test]
fn mpi_gpu_build_shards_identical() {
    const WORKER: &str = "SNN_TEST_GPU_MPI_WORKER";
    let path = snn_test_support::repo().join("tests/fixtures/small_all_rules.toml");
    let cfg = load(&path, &[]);
    if let Some(dest) = std::env::var_os(WORKER) {
        use mpi::traits::Communicator;
        let universe = mpi::initialize().expect("MPI");
        let world = universe.world();
        let factory = host_factory(LAUNCHES[world.rank() as usize % 3]).expect("C++ compiler");
        let opts = BuildOptions {
            n_ranks: world.size() as u32,
            force: true,
            device: BuildDevice::Gpu(factory),
            ..Default::default()
        };
        snn_netbuild::mpi_build::build_network_mpi(&world, &cfg, "x.toml", Path::new(&dest), &opts)
            .expect("distributed GPU build");
        return;
    }
    let has_mpirun = std::process::Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_mpirun || host::find_cxx().is_none() {
        println!("NOTE: mpirun or a C++ compiler missing: distributed GPU build skipped");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cpu_dir = tmp.path().join("cpu");
    let opts = BuildOptions {
        n_ranks: 3,
        force: true,
        ..Default::default()
    };
    build_network(&cfg, "x.toml", &cpu_dir, &opts).expect("CPU build");
    let gpu_dir = tmp.path().join("gpu");
    let exe = std::env::current_exe().expect("test executable");
    let out = std::process::Command::new("mpirun")
        .args(["-n", "3"])
        .arg(&exe)
        .args(["--exact", "mpi_gpu_build_shards_identical", "--nocapture"])
        .env(WORKER, &gpu_dir)
        .output()
        .expect("mpirun");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, got) = (shards(&cpu_dir), shards(&gpu_dir));
    assert_eq!(want.len(), 3);
    assert!(want == got, "shards differ");
    let net = snn_formats::NetworkDir::open(&gpu_dir).expect("open");
    assert_eq!(net.manifest.provenance.device, "host stand-in");
}

/// The GPU builder draws synapses: a network with synapses read from a
/// SONATA edge file (rule `sonata_edges`) is refused before any device is
/// opened, with an error naming the projection, and nothing is written.
#[test]
fn sonata_edges_are_refused_by_the_gpu_builder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let cfg = load(
        &snn_test_support::repo().join("tests/fixtures/sim_small.toml"),
        &[],
    );
    let net_dir = t.join("net");
    build_network(&cfg, "sim_small.toml", &net_dir, &BuildOptions::default()).expect("build");
    let net = snn_formats::NetworkDir::open(&net_dir).expect("open");
    let model = snn_formats::Model::resolve(&cfg, "sim_small.toml").expect("model");
    snn_formats::circuit::export_circuit(&net, &model, &t.join("circuit"), &mut |_, _, _| {})
        .expect("export");
    let toml = t.join("edges.toml");
    std::fs::write(
        &toml,
        r#"
[network]
name = "from_file"

[[populations]]
name = "E"
size = 240

[[populations]]
name = "I"
size = 60

[[projections]]
source = "E"
target = "I"
rule = "sonata_edges"
edges = { file = "circuit/network/edges.h5", population = "E_to_I" }
"#,
    )
    .expect("write");
    let cfg = load(&toml, &[]);
    let never = DeviceFactory::new("unopenable", |_rank| {
        Err(DeviceError::NoDevice("must not be opened".into()))
    });
    let out = t.join("gpu");
    let opts = BuildOptions {
        device: BuildDevice::Gpu(never),
        ..Default::default()
    };
    let err = build_network(&cfg, "edges.toml", &out, &opts)
        .expect_err("the GPU builder builds no sonata_edges")
        .to_string();
    assert!(
        err.contains("projections[0]") && err.contains("sonata_edges") && err.contains("CPU"),
        "{err}"
    );
    assert!(!out.exists());
    // The CPU builds it.
    build_network(&cfg, "edges.toml", &out, &BuildOptions::default()).expect("CPU build");
}
