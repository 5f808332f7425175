//! Where the ranks of a run live and how their spikes travel.
//!
//! * [`Emulated`]: all ranks in this process, spikes exchanged in memory
//!   (tests, small networks, the single-rank case);
//! * `MpiCluster` (feature `mpi`): one rank per MPI process.
//!
//! Both support the two communication modes: point-to-point (each rank
//! sends every other rank only the spikes it needs, as positions in the send
//! table) and collective (every rank gathers everybody's needed spikes, as
//! source-local indices, and keeps those it has images of). The spikes a rank
//! receives are the same either way, so the mode never changes the results.

use std::path::PathBuf;

use crate::engine::{Engine, StepSpikes};
use crate::SimError;

/// Communication mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommMode {
    /// Immediate sends/receives between rank pairs with connections.
    P2p,
    /// Allgatherv over all ranks.
    Collective,
}

impl std::str::FromStr for CommMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "p2p" => Ok(CommMode::P2p),
            "collective" => Ok(CommMode::Collective),
            _ => Err(format!(
                "unknown communication mode '{s}' (p2p or collective)"
            )),
        }
    }
}

/// The ranks of a run and their communication.
pub trait Cluster {
    /// Ranks in the whole run.
    fn n_ranks(&self) -> u32;
    /// Ranks simulated in this process.
    fn here(&self) -> Vec<u32>;
    /// Whether this process writes the run's shared files.
    fn is_root(&self) -> bool;
    /// Communication mode.
    fn mode(&self) -> CommMode;
    /// Pass a path from the root to every process (`None` on the root means
    /// it failed; every process then returns an error).
    fn share_path(&self, root_path: Option<PathBuf>) -> Result<PathBuf, SimError>;
    /// Exchange one interval's spikes: `spikes[i]` are the spikes of the
    /// `i`-th rank of [`Cluster::here`]; returns each local rank's deliveries
    /// (own spikes and received ones).
    fn exchange(
        &mut self,
        engines: &[&Engine],
        spikes: &[Vec<StepSpikes>],
        interval_start: u64,
    ) -> Result<Vec<Vec<(u64, u32)>>, SimError>;
    /// Element-wise sum over processes (result on every process).
    fn sum(&self, values: &mut [u64]);
    /// Wait for every process.
    fn barrier(&self);
}

/// All ranks in this process.
pub struct Emulated {
    /// Ranks.
    pub n_ranks: u32,
    /// Mode (both are emulated faithfully).
    pub mode: CommMode,
}

impl Cluster for Emulated {
    fn n_ranks(&self) -> u32 {
        self.n_ranks
    }
    fn here(&self) -> Vec<u32> {
        (0..self.n_ranks).collect()
    }
    fn is_root(&self) -> bool {
        true
    }
    fn mode(&self) -> CommMode {
        self.mode
    }
    fn share_path(&self, root_path: Option<PathBuf>) -> Result<PathBuf, SimError> {
        root_path.ok_or_else(|| SimError::Invalid("no output directory".into()))
    }
    fn exchange(
        &mut self,
        engines: &[&Engine],
        spikes: &[Vec<StepSpikes>],
        t0: u64,
    ) -> Result<Vec<Vec<(u64, u32)>>, SimError> {
        let n = self.n_ranks as usize;
        let mut deliveries = Vec::with_capacity(n);
        match self.mode {
            CommMode::P2p => {
                let mut outgoing = Vec::with_capacity(n);
                for (e, s) in engines.iter().zip(spikes) {
                    let (local, out) = e.route(s, t0, n);
                    deliveries.push(local);
                    outgoing.push(out);
                }
                for (r, e) in engines.iter().enumerate() {
                    for (q, out) in outgoing.iter().enumerate() {
                        if q != r {
                            e.receive(q as u32, &out[r], t0, &mut deliveries[r])?;
                        }
                    }
                }
            }
            CommMode::Collective => {
                let mut gathered = Vec::with_capacity(n);
                for (e, s) in engines.iter().zip(spikes) {
                    let (local, out) = e.route_collective(s, t0);
                    deliveries.push(local);
                    gathered.push(out);
                }
                for (r, e) in engines.iter().enumerate() {
                    for (q, out) in gathered.iter().enumerate() {
                        if q != r {
                            e.receive_collective(q as u32, out, t0, &mut deliveries[r])?;
                        }
                    }
                }
            }
        }
        Ok(deliveries)
    }
    fn sum(&self, _values: &mut [u64]) {}
    fn barrier(&self) {}
}

/// One rank per MPI process.
#[cfg(feature = "mpi")]
pub struct MpiCluster<'a, C: mpi::traits::Communicator> {
    /// The communicator (MPI_COMM_WORLD).
    pub world: &'a C,
    /// Mode.
    pub mode: CommMode,
}

#[cfg(feature = "mpi")]
impl<C: mpi::traits::Communicator> Cluster for MpiCluster<'_, C> {
    fn n_ranks(&self) -> u32 {
        self.world.size() as u32
    }
    fn here(&self) -> Vec<u32> {
        vec![self.world.rank() as u32]
    }
    fn is_root(&self) -> bool {
        self.world.rank() == 0
    }
    fn mode(&self) -> CommMode {
        self.mode
    }
    fn share_path(&self, root_path: Option<PathBuf>) -> Result<PathBuf, SimError> {
        use mpi::traits::Root;
        let root = self.world.process_at_rank(0);
        let bytes = root_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned().into_bytes())
            .unwrap_or_default();
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        let mut buf = if self.is_root() {
            bytes
        } else {
            vec![0u8; len as usize]
        };
        root.broadcast_into(&mut buf[..]);
        if buf.is_empty() {
            return Err(SimError::Invalid(
                "rank 0 could not create the run directory (see its error)".into(),
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&buf).into_owned()))
    }
    fn exchange(
        &mut self,
        engines: &[&Engine],
        spikes: &[Vec<StepSpikes>],
        t0: u64,
    ) -> Result<Vec<Vec<(u64, u32)>>, SimError> {
        use mpi::datatype::PartitionMut;
        use mpi::traits::*;
        let e = engines[0];
        let me = self.world.rank() as usize;
        let n = self.world.size() as usize;
        let d = e.data();
        match self.mode {
            CommMode::P2p => {
                let (mut local, out) = e.route(&spikes[0], t0, n);
                // Send to every rank that has images of ours; receive from
                // every rank we have images of (empty messages included, so
                // each side knows how many to expect).
                let sends: Vec<usize> = (0..n)
                    .filter(|&q| q != me && d.send_offsets[q] != d.send_offsets[q + 1])
                    .collect();
                let recvs: Vec<usize> = (0..n)
                    .filter(|&q| q != me && d.image_offsets[q] != d.image_offsets[q + 1])
                    .collect();
                let mut incoming = Vec::with_capacity(recvs.len());
                mpi::request::scope(|scope| {
                    let reqs: Vec<_> = sends
                        .iter()
                        .map(|&q| {
                            self.world
                                .process_at_rank(q as i32)
                                .immediate_send(scope, &out[q][..])
                        })
                        .collect();
                    for &q in &recvs {
                        let (v, _) = self.world.process_at_rank(q as i32).receive_vec::<u64>();
                        incoming.push((q, v));
                    }
                    for r in reqs {
                        r.wait();
                    }
                });
                for (q, v) in incoming {
                    e.receive(q as u32, &v, t0, &mut local)?;
                }
                Ok(vec![local])
            }
            CommMode::Collective => {
                let (mut local, out) = e.route_collective(&spikes[0], t0);
                let count = out.len() as i32;
                let mut counts = vec![0i32; n];
                self.world.all_gather_into(&count, &mut counts[..]);
                let displs: Vec<i32> = counts
                    .iter()
                    .scan(0i32, |a, &c| {
                        let x = *a;
                        *a += c;
                        Some(x)
                    })
                    .collect();
                let mut all = vec![0u64; counts.iter().map(|&c| c as usize).sum()];
                {
                    let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
                    self.world.all_gather_varcount_into(&out[..], &mut part);
                }
                for q in (0..n).filter(|&q| q != me) {
                    let s = &all[displs[q] as usize..(displs[q] + counts[q]) as usize];
                    e.receive_collective(q as u32, s, t0, &mut local)?;
                }
                Ok(vec![local])
            }
        }
    }
    fn sum(&self, values: &mut [u64]) {
        use mpi::collective::SystemOperation;
        use mpi::traits::*;
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn barrier(&self) {
        use mpi::traits::*;
        self.world.barrier();
    }
}
