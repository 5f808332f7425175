//! Distributed construction under `mpirun -n N snn-build`: every rank draws
//! only its own targets' synapses and writes its own shard. One collective
//! exchange (an all-to-all of routing needs: which of rank q's neurons rank
//! r has images of) gives every rank its send tables; small gathers bring the
//! per-shard records to rank 0, which writes the manifest. The shards are
//! byte-identical to those of `snn-build --ranks N` in one process.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use mpi::datatype::{Partition, PartitionMut};
use mpi::traits::*;
use serde::{Deserialize, Serialize};
use snn_formats::manifest::model_hash;
use snn_formats::model::Model;
use snn_formats::output::Staging;
use snn_formats::{Config, FormatError, Placement};

use crate::gpu::GpuRank;
use crate::network::{finish_manifest, BuildDevice, BuildOptions, BuildSummary, RankResult};
use crate::rank::RankPlan;
use crate::BuildError;

/// Exchange variable-length lists: `send[q]` goes to rank q; returns what
/// each rank sent here.
pub fn alltoallv_u64<C: Communicator>(world: &C, send: &[Vec<u64>]) -> Vec<Vec<u64>> {
    let n = world.size() as usize;
    let send_counts: Vec<i32> = send.iter().map(|v| v.len() as i32).collect();
    let mut recv_counts = vec![0i32; n];
    world.all_to_all_into(&send_counts[..], &mut recv_counts[..]);
    let displs = |c: &[i32]| -> Vec<i32> {
        c.iter()
            .scan(0i32, |acc, &x| {
                let d = *acc;
                *acc += x;
                Some(d)
            })
            .collect()
    };
    let (sd, rd) = (displs(&send_counts), displs(&recv_counts));
    let flat: Vec<u64> = send.concat();
    let total: usize = recv_counts.iter().map(|&c| c as usize).sum();
    let mut recv = vec![0u64; total];
    {
        let sp = Partition::new(&flat[..], &send_counts[..], &sd[..]);
        let mut rp = PartitionMut::new(&mut recv[..], &recv_counts[..], &rd[..]);
        world.all_to_all_varcount_into(&sp, &mut rp);
    }
    (0..n)
        .map(|q| recv[rd[q] as usize..(rd[q] + recv_counts[q]) as usize].to_vec())
        .collect()
}

/// Gather one byte string per rank at rank 0 (`None` elsewhere).
pub fn gather_bytes<C: Communicator>(world: &C, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let root = world.process_at_rank(0);
    let len = bytes.len() as i32;
    if world.rank() == 0 {
        let n = world.size() as usize;
        let mut lens = vec![0i32; n];
        root.gather_into_root(&len, &mut lens[..]);
        let displs: Vec<i32> = lens
            .iter()
            .scan(0i32, |a, &x| {
                let d = *a;
                *a += x;
                Some(d)
            })
            .collect();
        let mut buf = vec![0u8; lens.iter().map(|&l| l as usize).sum()];
        {
            let mut p = PartitionMut::new(&mut buf[..], &lens[..], &displs[..]);
            root.gather_varcount_into_root(bytes, &mut p);
        }
        Some(
            (0..n)
                .map(|q| buf[displs[q] as usize..(displs[q] + lens[q]) as usize].to_vec())
                .collect(),
        )
    } else {
        root.gather_into(&len);
        root.gather_varcount_into(bytes);
        None
    }
}

/// Broadcast a byte string from rank 0.
pub fn broadcast_bytes<C: Communicator>(world: &C, bytes: Vec<u8>) -> Vec<u8> {
    let root = world.process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    let mut buf = if world.rank() == 0 {
        bytes
    } else {
        vec![0u8; len as usize]
    };
    root.broadcast_into(&mut buf[..]);
    buf
}

/// What each rank reports to rank 0.
#[derive(Serialize, Deserialize)]
struct Report {
    ok: Option<RankResult>,
    error: Option<String>,
}

/// Build this rank's shard of the network; rank 0 also writes the manifest
/// and returns the summary. Every rank returns an error if any rank failed.
pub fn build_network_mpi<C: Communicator>(
    world: &C,
    cfg: &Config,
    origin: &str,
    dest: &Path,
    opts: &BuildOptions,
) -> Result<Option<BuildSummary>, BuildError> {
    let t0 = Instant::now();
    let rank = world.rank() as u32;
    let n_ranks = world.size() as u32;
    let model = Model::resolve(cfg, origin)?;
    // The same on every rank: all refuse before the first collective.
    if let BuildDevice::Gpu(_) = &opts.device {
        crate::gpu::check_buildable(&model)?;
    }
    let placement = Placement::new(&model, n_ranks)?;
    // Rank 0 creates the staging directory (checking --force) and tells the
    // others where it is; an empty path means it failed.
    let staging = if rank == 0 {
        let inputs: Vec<&Path> = opts.inputs.iter().map(|p| p.as_path()).collect();
        Some(Staging::new_guarded(dest, opts.force, &inputs))
    } else {
        None
    };
    let path = broadcast_bytes(
        world,
        match &staging {
            Some(Ok(s)) => s.path().to_string_lossy().into_owned().into_bytes(),
            _ => Vec::new(),
        },
    );
    let staging = match staging {
        Some(s) => Some(s?),
        None => None,
    };
    if path.is_empty() {
        return Err(FormatError::Mismatch {
            path: dest.to_path_buf(),
            message: "rank 0 could not create the output (see its error)".into(),
        }
        .into());
    }
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&path).into_owned());
    let hash = model_hash(cfg);
    let threads = rayon::current_num_threads();
    let progress = AtomicU64::new(0);

    let local = (|| -> Result<RankResult, BuildError> {
        let shard = match &opts.device {
            BuildDevice::Cpu => {
                // A failure before the exchange (reading a sonata_edges
                // file) still takes part in it, with no needs.
                let planned = RankPlan::new(&model, &placement, rank, threads).map(|plan| {
                    let counts = plan.count(&progress);
                    let images = plan.images(&counts);
                    (plan, counts, images)
                });
                let empty = vec![Vec::new(); n_ranks as usize];
                // The one collective exchange of routing needs.
                let needs = alltoallv_u64(
                    world,
                    planned.as_ref().map_or(&empty, |(_, _, images)| images),
                );
                let (plan, counts, images) = planned?;
                let send: Vec<Vec<u32>> = needs
                    .iter()
                    .map(|v| v.iter().map(|&g| placement.locate(g).1).collect())
                    .collect();
                plan.fill(counts, &images, &send, hash, &progress)?
            }
            BuildDevice::Gpu(factory) => {
                // A failure before the exchange still takes part in it (with
                // no needs), so that the other ranks do not wait forever.
                let generated = factory
                    .open(rank)
                    .map_err(BuildError::from)
                    .and_then(|mut dev| {
                        let g = GpuRank::generate(&mut *dev, &model, &placement, rank)?;
                        Ok((dev, g))
                    });
                let images = match &generated {
                    Ok((_, g)) => g.images().to_vec(),
                    Err(_) => vec![Vec::new(); n_ranks as usize],
                };
                let needs = alltoallv_u64(world, &images);
                let (mut dev, g) = generated?;
                let send: Vec<Vec<u32>> = needs
                    .iter()
                    .map(|v| v.iter().map(|&g| placement.locate(g).1).collect())
                    .collect();
                g.finish(&mut *dev, &send, hash)?
            }
        };
        crate::network::write_rank_in(&dir, &shard, opts)
    })();
    let report = match local {
        Ok(r) => Report {
            ok: Some(r),
            error: None,
        },
        Err(e) => Report {
            ok: None,
            error: Some(e.to_string()),
        },
    };
    let bytes = serde_json::to_vec(&report).map_err(|e| BuildError::Internal(e.to_string()))?;
    let gathered = gather_bytes(world, &bytes);
    // Rank 0 writes the manifest and commits; then everyone learns the outcome.
    let outcome: Result<Option<BuildSummary>, String> = match (gathered, staging) {
        (Some(all), Some(staging)) => {
            let mut results = Vec::with_capacity(all.len());
            let mut failure = None;
            for (q, b) in all.iter().enumerate() {
                match serde_json::from_slice::<Report>(b) {
                    Ok(Report { ok: Some(r), .. }) => results.push(r),
                    Ok(Report { error: Some(e), .. }) => {
                        failure.get_or_insert(format!("rank {q}: {e}"));
                    }
                    _ => {
                        failure.get_or_insert(format!("rank {q}: no report"));
                    }
                }
            }
            match failure {
                Some(f) => Err(f),
                None => finish_manifest(
                    cfg,
                    &model,
                    hash,
                    staging,
                    results,
                    opts,
                    threads * n_ranks as usize,
                    t0,
                )
                .map(Some)
                .map_err(|e| e.to_string()),
            }
        }
        _ => Ok(None),
    };
    let status = broadcast_bytes(
        world,
        match &outcome {
            Ok(_) => Vec::new(),
            Err(e) => e.clone().into_bytes(),
        },
    );
    if !status.is_empty() {
        return Err(BuildError::Distributed(
            String::from_utf8_lossy(&status).into_owned(),
        ));
    }
    outcome.map_err(BuildError::Distributed)
}
