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

use crate::rank::RankEngine;
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
    /// Pass bytes from the root to every process. `None` on the root means
    /// it failed: every process gets `None`. (Other processes pass `None`.)
    /// See [`broadcast`] for typed values.
    fn broadcast_bytes(&self, root: Option<Vec<u8>>) -> Option<Vec<u8>>;
    /// Exchange one interval's spikes: `ranks[i]` is the `i`-th rank of
    /// [`Cluster::here`], updated for the interval; each packs its wire
    /// entries ([`RankEngine::pack`], [`RankEngine::pack_collective`]) and
    /// receives the other ranks' ([`RankEngine::receive`],
    /// [`RankEngine::receive_collective`]), to be delivered by
    /// [`RankEngine::deliver`].
    fn exchange(&mut self, ranks: &mut [&mut dyn RankEngine]) -> Result<(), SimError>;
    /// Element-wise sum over processes (result on every process).
    fn sum(&self, values: &mut [u64]);
    /// Wait for every process.
    fn barrier(&self);
    /// Whether any process reports `failed` (collective; the answer on
    /// every process).
    fn any_failed(&self, failed: bool) -> bool {
        let mut v = [failed as u64];
        self.sum(&mut v);
        v[0] > 0
    }
    /// Every process's bytes on every process (collective, an
    /// Allgatherv), in process order; see [`all_gather`] for typed values.
    fn all_gather_bytes(&self, mine: Vec<u8>) -> Vec<Vec<u8>>;
    /// Bytes of spike data sent so far by the ranks of this process (wire
    /// entries of 8 bytes; for collective mode, each rank's contribution
    /// counted once).
    fn bytes_sent(&self) -> u64 {
        0
    }
}

/// Every process's `mine` on every process (collective), in process order:
/// e.g. each process's list of its ranks' results.
pub fn all_gather<T: serde::Serialize + serde::de::DeserializeOwned>(
    cluster: &dyn Cluster,
    mine: &T,
) -> Result<Vec<T>, SimError> {
    let bytes = serde_json::to_vec(mine).map_err(|e| SimError::Internal(e.to_string()))?;
    cluster
        .all_gather_bytes(bytes)
        .iter()
        .map(|b| serde_json::from_slice(b))
        .collect::<Result<_, _>>()
        .map_err(|e| SimError::Internal(format!("all_gather: {e}")))
}

/// Pass a value computed on the root (`Some` there, `None` elsewhere) to
/// every process. The root's error is returned on the root; the other
/// processes get [`SimError::Stopped`] pointing to it.
pub fn broadcast<T: serde::Serialize + serde::de::DeserializeOwned>(
    cluster: &dyn Cluster,
    root_value: Option<Result<T, SimError>>,
) -> Result<T, SimError> {
    let (bytes, err) = match root_value {
        Some(Ok(v)) => match serde_json::to_vec(&v) {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(SimError::Internal(e.to_string()))),
        },
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let shared = cluster.broadcast_bytes(bytes);
    if let Some(e) = err {
        return Err(e);
    }
    let shared = shared.ok_or_else(|| {
        SimError::Stopped("rank 0 could not prepare the run (see its error)".into())
    })?;
    serde_json::from_slice(&shared).map_err(|e| SimError::Internal(format!("broadcast: {e}")))
}

/// All ranks in this process.
pub struct Emulated {
    /// Ranks.
    pub n_ranks: u32,
    /// Mode (both are emulated faithfully).
    pub mode: CommMode,
    /// Bytes that would have crossed the wire.
    pub sent: u64,
    /// Collective groups: consecutive blocks of this many ranks (0 = all).
    pub group_size: u32,
}

impl Emulated {
    /// All `n_ranks` ranks in this process.
    pub fn new(n_ranks: u32, mode: CommMode) -> Emulated {
        Emulated {
            n_ranks,
            mode,
            sent: 0,
            group_size: 0,
        }
    }

    /// With collective groups of `group_size` consecutive ranks (0 = all).
    pub fn with_groups(mut self, group_size: u32) -> Emulated {
        self.group_size = group_size;
        self
    }

    /// The exchange policy.
    pub fn policy(&self) -> Policy {
        Policy {
            mode: self.mode,
            group_size: self.group_size,
        }
    }
}

/// The collective group of `rank` for groups of `group_size` consecutive
/// ranks (0 = one group of all ranks).
pub fn group_of(rank: u32, group_size: u32) -> u32 {
    rank.checked_div(group_size).unwrap_or(0)
}

/// How spikes travel from one rank to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Point to point: the sender packs, for each receiver, only the spikes
    /// that receiver needs (`RankEngine::pack`).
    PointToPoint,
    /// Collective: the sender's needed spikes go to every rank of its group
    /// at once (`RankEngine::pack_collective`, an Allgatherv).
    Collective,
}

/// The exchange policy of a run, written once for both transports
/// ([`Emulated`] and `MpiCluster`): in point-to-point mode every pair of
/// ranks talks point to point; in collective mode the ranks of one group
/// (`group_size` consecutive ranks, 0 = all) exchange collectively and
/// ranks of different groups point to point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The mode.
    pub mode: CommMode,
    /// Collective groups: consecutive blocks of this many ranks (0 = all).
    pub group_size: u32,
}

impl Policy {
    /// How spikes of rank `from` reach rank `to`.
    pub fn route(&self, from: u32, to: u32) -> Route {
        match self.mode {
            CommMode::Collective
                if group_of(from, self.group_size) == group_of(to, self.group_size) =>
            {
                Route::Collective
            }
            _ => Route::PointToPoint,
        }
    }

    /// Whether ranks pack collective output (in every interval, before any
    /// point-to-point packing).
    pub fn packs_collective(&self) -> bool {
        self.mode == CommMode::Collective
    }

    /// Whether ranks pack point-to-point output: in point-to-point mode,
    /// and in collective mode with more than one group.
    pub fn packs_p2p(&self) -> bool {
        self.mode == CommMode::P2p || self.group_size != 0
    }

    /// The ranks (of `n`) that `rank` exchanges with collectively,
    /// itself included (none in point-to-point mode), in rank order.
    pub fn group_members(&self, rank: u32, n: u32) -> Vec<u32> {
        if !self.packs_collective() {
            return Vec::new();
        }
        (0..n)
            .filter(|&q| q == rank || self.route(q, rank) == Route::Collective)
            .collect()
    }
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
    fn broadcast_bytes(&self, root: Option<Vec<u8>>) -> Option<Vec<u8>> {
        root
    }
    fn all_gather_bytes(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        vec![mine]
    }
    fn exchange(&mut self, ranks: &mut [&mut dyn RankEngine]) -> Result<(), SimError> {
        let n = self.n_ranks as usize;
        if n == 1 {
            return Ok(());
        }
        let policy = self.policy();
        // Every rank packs as the policy says (collective output first, as
        // under MPI), counting what would cross the wire ...
        let mut gathered = Vec::with_capacity(n);
        let mut outgoing = Vec::with_capacity(n);
        for (r, e) in ranks.iter_mut().enumerate() {
            let r32 = r as u32;
            if policy.packs_collective() {
                let out = e.pack_collective()?;
                if policy.group_members(r32, n as u32).len() > 1 {
                    self.sent += 8 * out.len() as u64;
                }
                gathered.push(out);
            }
            if policy.packs_p2p() {
                let out = e.pack(n)?;
                self.sent += out
                    .iter()
                    .enumerate()
                    .filter(|&(q, _)| q != r && policy.route(r32, q as u32) == Route::PointToPoint)
                    .map(|(_, v)| 8 * v.len() as u64)
                    .sum::<u64>();
                outgoing.push(out);
            }
        }
        // ... then receives from every other rank, in rank order, by the
        // route the policy gives.
        for (r, e) in ranks.iter_mut().enumerate() {
            for q in (0..n).filter(|&q| q != r) {
                match policy.route(q as u32, r as u32) {
                    Route::Collective => e.receive_collective(q as u32, &gathered[q])?,
                    Route::PointToPoint => e.receive(q as u32, &outgoing[q][r])?,
                }
            }
        }
        Ok(())
    }
    fn sum(&self, _values: &mut [u64]) {}
    fn barrier(&self) {}
    fn bytes_sent(&self) -> u64 {
        self.sent
    }
}

/// Exclusive prefix sums (MPI displacements).
#[cfg(feature = "mpi")]
fn prefix(counts: &[i32]) -> Vec<i32> {
    counts
        .iter()
        .scan(0i32, |a, &c| {
            let x = *a;
            *a += c;
            Some(x)
        })
        .collect()
}

/// One rank per MPI process.
#[cfg(feature = "mpi")]
pub struct MpiCluster<'a, C: mpi::traits::Communicator> {
    /// The communicator (MPI_COMM_WORLD).
    pub world: &'a C,
    /// Mode.
    pub mode: CommMode,
    /// Bytes of spike data this rank sent.
    pub sent: u64,
    /// Collective groups of this many consecutive ranks (0 = all).
    pub group_size: u32,
    /// The communicator of this rank's collective group.
    pub group: Option<mpi::topology::SimpleCommunicator>,
}

#[cfg(feature = "mpi")]
impl<'a, C: mpi::traits::Communicator> MpiCluster<'a, C> {
    /// One rank per process of `world`; collective exchange within groups of
    /// `group_size` consecutive ranks (0 = all ranks), point-to-point
    /// between groups. Collective over `world` (it creates the group
    /// communicators).
    pub fn new(world: &'a C, mode: CommMode, group_size: u32) -> Self {
        let group = if mode == CommMode::Collective && group_size != 0 {
            let color =
                mpi::topology::Color::with_value(group_of(world.rank() as u32, group_size) as i32);
            world.split_by_color(color)
        } else {
            None
        };
        MpiCluster {
            world,
            mode,
            sent: 0,
            group_size,
            group,
        }
    }
}

#[cfg(feature = "mpi")]
impl<C: mpi::traits::Communicator> MpiCluster<'_, C> {
    /// Point-to-point part of an exchange with the ranks `peer` selects:
    /// send `out[q]` to every such rank with images of ours, receive from
    /// every such rank we have images of (empty messages included, so each
    /// side knows how many to expect), and decode into `local`.
    fn p2p(
        &mut self,
        e: &mut dyn RankEngine,
        out: &[Vec<u64>],
        peer: impl Fn(usize) -> bool,
    ) -> Result<(), SimError> {
        use mpi::traits::*;
        let d = e.data();
        let n = self.world.size() as usize;
        let sends: Vec<usize> = (0..n)
            .filter(|&q| peer(q) && d.send_offsets[q] != d.send_offsets[q + 1])
            .collect();
        let recvs: Vec<usize> = (0..n)
            .filter(|&q| peer(q) && d.image_offsets[q] != d.image_offsets[q + 1])
            .collect();
        self.sent += sends.iter().map(|&q| 8 * out[q].len() as u64).sum::<u64>();
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
            e.receive(q as u32, &v)?;
        }
        Ok(())
    }
}

/// Allgatherv of `out` over `comm`: (counts, displacements, data) in rank
/// order of `comm`.
#[cfg(feature = "mpi")]
fn all_gather_u64<C: mpi::traits::Communicator>(
    comm: &C,
    out: &[u64],
) -> (Vec<i32>, Vec<i32>, Vec<u64>) {
    use mpi::datatype::PartitionMut;
    use mpi::traits::*;
    let count = out.len() as i32;
    let mut counts = vec![0i32; comm.size() as usize];
    comm.all_gather_into(&count, &mut counts[..]);
    let displs = prefix(&counts);
    let mut all = vec![0u64; counts.iter().map(|&c| c as usize).sum()];
    {
        let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
        comm.all_gather_varcount_into(out, &mut part);
    }
    (counts, displs, all)
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
    fn broadcast_bytes(&self, root_bytes: Option<Vec<u8>>) -> Option<Vec<u8>> {
        use mpi::traits::Root;
        let root = self.world.process_at_rank(0);
        // u64::MAX: the root failed.
        let mut len = root_bytes.as_ref().map_or(u64::MAX, |b| b.len() as u64);
        root.broadcast_into(&mut len);
        if len == u64::MAX {
            return None;
        }
        let mut buf = match root_bytes {
            Some(b) if self.is_root() => b,
            _ => vec![0u8; len as usize],
        };
        root.broadcast_into(&mut buf[..]);
        Some(buf)
    }
    fn all_gather_bytes(&self, mine: Vec<u8>) -> Vec<Vec<u8>> {
        use mpi::datatype::PartitionMut;
        use mpi::traits::*;
        let count = mine.len() as i32;
        let mut counts = vec![0i32; self.world.size() as usize];
        self.world.all_gather_into(&count, &mut counts[..]);
        let displs = prefix(&counts);
        let mut all = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(&mine[..], &mut part);
        }
        counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect()
    }
    fn exchange(&mut self, ranks: &mut [&mut dyn RankEngine]) -> Result<(), SimError> {
        let [e] = ranks else {
            return Err(SimError::Internal("one rank per MPI process".into()));
        };
        let e: &mut dyn RankEngine = &mut **e;
        let me = self.world.rank() as usize;
        let n = self.world.size() as usize;
        if n == 1 {
            return Ok(());
        }
        let policy = Policy {
            mode: self.mode,
            group_size: self.group_size,
        };
        let me32 = me as u32;
        // As the emulated exchange: collective output first, then the
        // point-to-point exchange, then the Allgatherv within the group.
        let collective = if policy.packs_collective() {
            Some(e.pack_collective()?)
        } else {
            None
        };
        if policy.packs_p2p() {
            let out = e.pack(n)?;
            self.p2p(e, &out, |q| {
                q != me && policy.route(q as u32, me32) == Route::PointToPoint
            })?;
        }
        if let Some(out) = collective {
            let members = policy.group_members(me32, n as u32);
            if members.len() > 1 {
                self.sent += 8 * out.len() as u64;
            }
            let (counts, displs, all) = match &self.group {
                Some(comm) => all_gather_u64(comm, &out),
                None => all_gather_u64(self.world, &out),
            };
            // Group ranks are ordered like world ranks (split keeps order).
            for (i, &q) in members.iter().enumerate() {
                if q != me32 {
                    let s = &all[displs[i] as usize..(displs[i] + counts[i]) as usize];
                    e.receive_collective(q, s)?;
                }
            }
        }
        Ok(())
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
    fn bytes_sent(&self) -> u64 {
        self.sent
    }
}
