//! Checkpoints of a run and the run-state file: the on-disk format.
//!
//! # Layout of a run directory written with checkpointing
//!
//! ```text
//! run/run-state.json                        run configuration and status (running,
//!                                           suspended, finished), rewritten atomically
//! run/spikes-rank-NNNNN.h5                  spikes of the whole run (all pieces)
//! run/vm-rank-NNNNN.h5                      V_m report (when configured)
//! run/checkpoints/t-000010000.0ms/
//!     rank-NNNNN.ckpt                       one per rank (see below)
//!     manifest.json                         written last, by rank 0
//! run/summary.json                          only once the run is finished
//! run/.snn-sim.lock                         locked (flock) while a process works on
//!                                           the run, so two never continue it at once
//! ```
//!
//! A checkpoint directory is *complete* when its `manifest.json` exists,
//! carries a valid checksum and lists every rank file with its size and
//! xxh3-64; the rank files also carry checksums of their own. Per-rank files
//! are written to `rank-NNNNN.ckpt.tmp`, fsynced and renamed; the manifest
//! likewise, after every rank has finished (a barrier). A process killed at
//! any moment therefore leaves every earlier checkpoint untouched and the one
//! being written recognisably incomplete.
//!
//! # Rank file (`rank-NNNNN.ckpt`)
//!
//! ```text
//! 0    magic "SNNCKPT1"
//! 8    format version (u32)           12   rank (u32)
//! 16   n_ranks (u32)                  20   zstd level (i32, informational)
//! 24   step (u64)                     32   model hash (16 bytes)
//! 48   payload length (u64)           56   xxh3-64 of the payload (u64)
//! 64   number of blocks (u64)         72   block size (u64, uncompressed)
//! 80   reserved (zero)                120  xxh3-64 of bytes 0..120 (u64)
//! 128  stored length of each block (u64 each)
//! ...  the zstd frames of the blocks, in order
//! ```
//!
//! All integers are little-endian. The payload (uncompressed) is a list of
//! named sections, each `name length (u32), name (UTF-8), data length (u64),
//! data`; what the sections hold is the simulator's business. The payload is
//! cut into blocks compressed independently (in parallel) with zstd.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::error::FormatError;

/// Directory of the checkpoints inside a run directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Name of a checkpoint's manifest (written last).
pub const CHECKPOINT_MANIFEST: &str = "manifest.json";
/// Name of the run-state file in a run directory.
pub const RUN_STATE_FILE: &str = "run-state.json";
/// `format` of a checkpoint manifest.
pub const CHECKPOINT_FORMAT: &str = "snn-checkpoint";
/// `format` of a run-state file.
pub const RUN_STATE_FORMAT: &str = "snn-run-state";
/// Version of the checkpoint layout (manifest and rank files). 2: neuron
/// states hold the membrane potential relative to `E_L` (1: absolute).
pub const CHECKPOINT_FORMAT_VERSION: u32 = 2;
/// Magic of a rank file.
pub const RANK_MAGIC: [u8; 8] = *b"SNNCKPT1";
/// Length of a rank file's header.
pub const RANK_HEADER_LEN: usize = 128;
/// Uncompressed size of the payload blocks.
pub const BLOCK_SIZE: usize = 4 << 20;
/// Milliseconds [`test_pause`] sleeps (0: none). Set by
/// [`set_test_pause_ms`].
static TEST_PAUSE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// For tests: make checkpoint writing (the rank states, the checkpoint
/// manifest, `run-state.json`) in this process sleep `ms` milliseconds
/// between its steps, so that a test can kill the process in the middle of
/// writing a checkpoint. 0 (the default) turns it off.
pub fn set_test_pause_ms(ms: u64) {
    TEST_PAUSE_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Sleep as [`set_test_pause_ms`] asked (no-op by default).
pub fn test_pause() {
    let ms = TEST_PAUSE_MS.load(std::sync::atomic::Ordering::Relaxed);
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// File name of rank `rank`'s state in a checkpoint directory.
pub fn rank_file_name(rank: u32) -> String {
    format!("rank-{rank:05}.ckpt")
}

/// Decimals needed to write multiples of `dt_ms` exactly (at least 1, at
/// most 6).
fn decimals(dt_ms: f64) -> usize {
    (1..=6)
        .find(|&k| {
            let x = dt_ms * 10f64.powi(k as i32);
            (x - x.round()).abs() < 1e-6
        })
        .unwrap_or(6)
}

/// Name of the checkpoint directory of step `step` (time `step * dt`):
/// `t-000010000.0ms` (more decimals when `dt` needs them). Names sort in
/// time order.
pub fn checkpoint_dir_name(step: u64, dt_ms: f64) -> String {
    let d = decimals(dt_ms);
    let t = step as f64 * dt_ms;
    format!("t-{:0w$.d$}ms", t, w = 10 + d, d = d)
}

/// Time (ms) encoded in a checkpoint directory name, if it is one.
pub fn parse_checkpoint_dir_name(name: &str) -> Option<f64> {
    let t = name.strip_prefix("t-")?.strip_suffix("ms")?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    t.parse().ok()
}

/// fsync a directory (so that renames in it are durable).
pub fn sync_dir(dir: &Path) -> Result<(), FormatError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FormatError::io(dir, "fsync directory", e))
}

/// fsync an existing file (e.g. an HDF5 file another handle wrote).
pub fn sync_file(path: &Path) -> Result<(), FormatError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| FormatError::io(path, "fsync", e))
}

/// Write `bytes` to `path` atomically: `path.tmp`, fsync, rename, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(|e| FormatError::io(&tmp, "create", e))?;
    f.write_all(bytes)
        .map_err(|e| FormatError::io(&tmp, "write", e))?;
    f.sync_all()
        .map_err(|e| FormatError::io(&tmp, "fsync", e))?;
    drop(f);
    test_pause();
    std::fs::rename(&tmp, path).map_err(|e| FormatError::io(path, "rename into place", e))?;
    sync_dir(parent(path))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// One named section of a rank file's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name, e.g. `engine/ring_ex`.
    pub name: String,
    /// Content.
    pub data: Vec<u8>,
}

impl Section {
    /// A section.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Section {
        Section {
            name: name.into(),
            data,
        }
    }
}

/// Identification in a rank file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankHeader {
    /// Rank.
    pub rank: u32,
    /// Ranks of the run.
    pub n_ranks: u32,
    /// Step of the state (steps done).
    pub step: u64,
    /// Model hash of the network.
    pub model_hash: [u8; 16],
}

/// A rank file as recorded in the checkpoint manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankFileEntry {
    /// File name inside the checkpoint directory.
    pub file: String,
    /// Rank.
    pub rank: u32,
    /// Bytes on disk.
    pub bytes: u64,
    /// Uncompressed payload bytes.
    pub payload_bytes: u64,
    /// xxh3-64 (hex) of the whole file.
    pub xxh3: String,
}

/// Encode the payload: the sections one after the other.
fn encode_sections(sections: &[Section]) -> Vec<u8> {
    let len: usize = sections
        .iter()
        .map(|s| 12 + s.name.len() + s.data.len())
        .sum();
    let mut out = Vec::with_capacity(len);
    for s in sections {
        out.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&s.data);
    }
    out
}

fn decode_sections(path: &Path, mut b: &[u8]) -> Result<Vec<Section>, FormatError> {
    let bad = || FormatError::corrupt(path, "checkpoint payload: malformed section list");
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(bad());
        }
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        b = &b[4..];
        if b.len() < n + 8 {
            return Err(bad());
        }
        let name = std::str::from_utf8(&b[..n]).map_err(|_| bad())?.to_owned();
        b = &b[n..];
        let len = u64::from_le_bytes(b[..8].try_into().unwrap());
        b = &b[8..];
        let len = usize::try_from(len).map_err(|_| bad())?;
        if b.len() < len {
            return Err(bad());
        }
        out.push(Section {
            name,
            data: b[..len].to_vec(),
        });
        b = &b[len..];
    }
    Ok(out)
}

/// Write rank `header.rank`'s state into checkpoint directory `dir`
/// atomically (temporary name, fsync, rename, fsync of the directory),
/// zstd-compressed at `level` in blocks compressed in parallel.
pub fn write_rank_state(
    dir: &Path,
    header: &RankHeader,
    sections: &[Section],
    level: i32,
) -> Result<RankFileEntry, FormatError> {
    let name = rank_file_name(header.rank);
    let path = dir.join(&name);
    let payload = encode_sections(sections);
    let payload_xxh3 = xxh3_64(&payload);
    let blocks: Vec<Vec<u8>> = payload
        .par_chunks(BLOCK_SIZE)
        .map(|c| zstd::bulk::compress(c, level))
        .collect::<Result<_, _>>()
        .map_err(|e| FormatError::io(&path, "compress", e))?;
    let mut h = [0u8; RANK_HEADER_LEN];
    h[0..8].copy_from_slice(&RANK_MAGIC);
    h[8..12].copy_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&header.rank.to_le_bytes());
    h[16..20].copy_from_slice(&header.n_ranks.to_le_bytes());
    h[20..24].copy_from_slice(&level.to_le_bytes());
    h[24..32].copy_from_slice(&header.step.to_le_bytes());
    h[32..48].copy_from_slice(&header.model_hash);
    h[48..56].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h[56..64].copy_from_slice(&payload_xxh3.to_le_bytes());
    h[64..72].copy_from_slice(&(blocks.len() as u64).to_le_bytes());
    h[72..80].copy_from_slice(&(BLOCK_SIZE as u64).to_le_bytes());
    let sum = xxh3_64(&h[..RANK_HEADER_LEN - 8]);
    h[RANK_HEADER_LEN - 8..].copy_from_slice(&sum.to_le_bytes());
    let mut table = Vec::with_capacity(blocks.len() * 8);
    for b in &blocks {
        table.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    let tmp = tmp_path(&path);
    let io = |op, e| FormatError::io(&tmp, op, e);
    let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
    let mut hash = Xxh3::new();
    let mut bytes = 0u64;
    for part in std::iter::once(&h[..])
        .chain(std::iter::once(&table[..]))
        .chain(blocks.iter().map(|b| &b[..]))
    {
        f.write_all(part).map_err(|e| io("write", e))?;
        hash.update(part);
        bytes += part.len() as u64;
    }
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    test_pause();
    std::fs::rename(&tmp, &path).map_err(|e| FormatError::io(&path, "rename into place", e))?;
    sync_dir(dir)?;
    Ok(RankFileEntry {
        file: name,
        rank: header.rank,
        bytes,
        payload_bytes: payload.len() as u64,
        xxh3: format!("{:016x}", hash.digest()),
    })
}

/// A rank file read back and verified.
#[derive(Clone, Debug)]
pub struct RankState {
    /// Its header.
    pub header: RankHeader,
    /// Its sections, in file order.
    pub sections: Vec<Section>,
}

impl RankState {
    /// The section called `name`, if any.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.data[..])
    }
}

/// Read and verify a rank file: with `expect`, the file must be exactly that
/// entry of a manifest (size and whole-file checksum); the header checksum
/// and the payload checksum are always verified.
pub fn read_rank_state(
    path: &Path,
    expect: Option<&RankFileEntry>,
) -> Result<RankState, FormatError> {
    let b = std::fs::read(path).map_err(|e| FormatError::io(path, "read", e))?;
    let corrupt = |m: String| FormatError::corrupt(path, m);
    if let Some(e) = expect {
        if b.len() as u64 != e.bytes {
            return Err(corrupt(format!(
                "{} bytes but the checkpoint manifest records {} (truncated or replaced)",
                b.len(),
                e.bytes
            )));
        }
        if format!("{:016x}", xxh3_64(&b)) != e.xxh3 {
            return Err(corrupt(
                "checksum differs from the checkpoint manifest's (corrupt)".into(),
            ));
        }
    }
    if b.len() < RANK_HEADER_LEN || b[0..8] != RANK_MAGIC {
        return Err(corrupt(
            "not an snn checkpoint rank file (bad magic)".into(),
        ));
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    if u64_at(RANK_HEADER_LEN - 8) != xxh3_64(&b[..RANK_HEADER_LEN - 8]) {
        return Err(corrupt("header checksum mismatch (corrupt)".into()));
    }
    let version = u32_at(8);
    if version != CHECKPOINT_FORMAT_VERSION {
        return Err(corrupt(format!(
            "checkpoint format version {version}, this build reads {CHECKPOINT_FORMAT_VERSION}"
        )));
    }
    let header = RankHeader {
        rank: u32_at(12),
        n_ranks: u32_at(16),
        step: u64_at(24),
        model_hash: b[32..48].try_into().unwrap(),
    };
    let payload_len = u64_at(48);
    let payload_xxh3 = u64_at(56);
    let n_blocks = u64_at(64);
    let block_size = u64_at(72);
    let table_end = (n_blocks as u128) * 8 + RANK_HEADER_LEN as u128;
    // The writer's block size is fixed by the format version; a block
    // never decompresses to more.
    if block_size != BLOCK_SIZE as u64
        || table_end > b.len() as u128
        || n_blocks != payload_len.div_ceil(block_size)
    {
        return Err(corrupt("inconsistent block table (corrupt)".into()));
    }
    // The payload is decompressed into memory (and copied once): check
    // that the machine can hold it before allocating.
    crate::limits::check_fits(payload_len.saturating_mul(2), "its state").map_err(corrupt)?;
    let mut ranges = Vec::with_capacity(n_blocks as usize);
    let mut at = table_end as usize;
    for k in 0..n_blocks as usize {
        let len = u64_at(RANK_HEADER_LEN + 8 * k);
        let end = (at as u128) + len as u128;
        if end > b.len() as u128 {
            return Err(corrupt("truncated (a block runs past the end)".into()));
        }
        let want = (payload_len - k as u64 * block_size).min(block_size) as usize;
        ranges.push((at, end as usize, want));
        at = end as usize;
    }
    if at != b.len() {
        return Err(corrupt("trailing bytes after the last block".into()));
    }
    let blocks: Vec<Vec<u8>> = ranges
        .par_iter()
        .map(|&(a, e, want)| {
            let v = zstd::bulk::decompress(&b[a..e], want).ok()?;
            (v.len() == want).then_some(v)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("a compressed block does not decompress (corrupt)".into()))?;
    let payload = blocks.concat();
    if xxh3_64(&payload) != payload_xxh3 {
        return Err(corrupt("payload checksum mismatch (corrupt)".into()));
    }
    let sections = decode_sections(path, &payload)?;
    Ok(RankState { header, sections })
}

/// How the run is configured (fixed for the life of a run directory, except
/// `total_steps`, which a resume may move).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Simulation seed.
    pub seed: u64,
    /// Time step, ms.
    pub dt_ms: f64,
    /// Recording starts at this step (end of the presimulation).
    pub presim_steps: u64,
    /// The run ends at this step.
    pub total_steps: u64,
    /// Communication mode used (it does not change results).
    pub comm: String,
    /// The V_m report's first sample is the initial state at t = 0
    /// (`snn-sim --vm-from-start`).
    #[serde(default)]
    pub vm_from_start: bool,
}

/// Cumulative wall-clock times over the pieces of a run, s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WallTimes {
    /// Loading the network and setting up (all pieces).
    pub load_s: f64,
    /// Presimulation.
    pub presim_s: f64,
    /// Recorded simulation.
    pub sim_s: f64,
    /// Writing checkpoints.
    pub checkpoint_s: f64,
    /// Restoring checkpoints.
    pub restore_s: f64,
}

/// A checkpoint's `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointManifest {
    /// Always [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// Always [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Model hash of the network (hex).
    pub model_hash: String,
    /// Network directory of the run (informational).
    pub network: String,
    /// Ranks.
    pub n_ranks: u32,
    /// Steps done.
    pub step: u64,
    /// Biological time reached, ms.
    pub t_ms: f64,
    /// The run's configuration at the time of the checkpoint.
    pub run: RunConfig,
    /// Cumulative wall times up to the checkpoint.
    pub wall: WallTimes,
    /// Job pieces so far (1 for the first).
    pub pieces: u32,
    /// When it was written (Unix time, s).
    pub created_unix_s: f64,
    /// The rank files.
    pub ranks: Vec<RankFileEntry>,
    /// xxh3-64 (hex) of this manifest serialised with `checksum` empty.
    pub checksum: String,
}

fn checksum_of<T: Serialize + Clone>(v: &T, clear: impl Fn(&mut T)) -> String {
    let mut copy = v.clone();
    clear(&mut copy);
    let text = serde_json::to_string(&copy).unwrap_or_default();
    format!("{:016x}", xxh3_64(text.as_bytes()))
}

impl CheckpointManifest {
    /// Write it (with its checksum) as `dir/manifest.json`, atomically.
    pub fn write(&mut self, dir: &Path) -> Result<(), FormatError> {
        self.checksum = checksum_of(self, |m| m.checksum.clear());
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        write_atomic(&dir.join(CHECKPOINT_MANIFEST), text.as_bytes())
    }

    /// Read and verify `dir/manifest.json` (format, version, checksum, rank
    /// list). Does not look at the rank files.
    pub fn read(dir: &Path) -> Result<CheckpointManifest, FormatError> {
        let path = dir.join(CHECKPOINT_MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| FormatError::io(&path, "read", e))?;
        let m: CheckpointManifest = serde_json::from_str(&text).map_err(|e| {
            FormatError::corrupt(&path, format!("not a valid checkpoint manifest: {e}"))
        })?;
        if m.format != CHECKPOINT_FORMAT {
            return Err(FormatError::corrupt(
                &path,
                format!("format is '{}', expected '{CHECKPOINT_FORMAT}'", m.format),
            ));
        }
        if m.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(FormatError::corrupt(
                &path,
                format!(
                    "checkpoint format version {}, this build reads {CHECKPOINT_FORMAT_VERSION}",
                    m.format_version
                ),
            ));
        }
        if checksum_of(&m, |m| m.checksum.clear()) != m.checksum {
            return Err(FormatError::corrupt(
                &path,
                "manifest checksum mismatch (edited or corrupt)",
            ));
        }
        if m.ranks.len() != m.n_ranks as usize
            || m.ranks
                .iter()
                .enumerate()
                .any(|(i, r)| r.rank != i as u32 || r.file != rank_file_name(r.rank))
        {
            return Err(FormatError::corrupt(
                &path,
                "rank file list does not match n_ranks",
            ));
        }
        Ok(m)
    }
}

/// What a checkpoint directory holds.
#[derive(Debug)]
pub enum CheckpointStatus {
    /// Manifest valid, every rank file present with the recorded size (the
    /// contents are verified when they are read).
    Complete(CheckpointManifest),
    /// No manifest: the writer stopped before finishing it.
    Incomplete,
    /// A manifest that fails verification, or rank files missing or of the
    /// wrong size.
    Corrupt(FormatError),
}

/// Check a checkpoint directory (cheap: manifest and file sizes).
pub fn checkpoint_status(dir: &Path) -> CheckpointStatus {
    let mpath = dir.join(CHECKPOINT_MANIFEST);
    if !mpath.exists() {
        return CheckpointStatus::Incomplete;
    }
    let m = match CheckpointManifest::read(dir) {
        Ok(m) => m,
        Err(e) => return CheckpointStatus::Corrupt(e),
    };
    for r in &m.ranks {
        let p = dir.join(&r.file);
        match std::fs::metadata(&p) {
            Ok(md) if md.len() == r.bytes => {}
            Ok(md) => {
                return CheckpointStatus::Corrupt(FormatError::corrupt(
                    &p,
                    format!(
                        "{} bytes but the checkpoint manifest records {} (truncated or replaced)",
                        md.len(),
                        r.bytes
                    ),
                ))
            }
            Err(e) => return CheckpointStatus::Corrupt(FormatError::io(&p, "stat", e)),
        }
    }
    CheckpointStatus::Complete(m)
}

/// A checkpoint directory found in a run directory.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointDir {
    /// Its path.
    pub path: PathBuf,
    /// Biological time from its name, ms.
    pub t_ms: f64,
}

/// The checkpoint directories of a run directory (`run/checkpoints/t-*ms`),
/// oldest first. Other entries (temporary files, directories set aside as
/// invalid) are ignored.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<CheckpointDir>, FormatError> {
    let dir = run_dir.join(CHECKPOINTS_DIR);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FormatError::io(&dir, "list", e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| FormatError::io(&dir, "list", e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(t_ms) = parse_checkpoint_dir_name(&name) {
            if e.path().is_dir() {
                out.push(CheckpointDir {
                    path: e.path(),
                    t_ms,
                });
            }
        }
    }
    out.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    Ok(out)
}

/// Status of a run directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// A process is (or was, if it crashed) simulating.
    Running,
    /// Stopped cleanly at a checkpoint before its end (wall time): resume it.
    Suspended,
    /// Done: `summary.json` is written.
    Finished,
    /// Stopped by an error (`error` says which); resumable from its newest
    /// checkpoint once the cause is fixed.
    Failed,
}

/// `run-state.json`: what a run directory is and how far it got. Written
/// by rank 0, atomically, when a piece starts, at every checkpoint and when
/// a piece ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Always [`RUN_STATE_FORMAT`].
    pub format: String,
    /// Always [`CHECKPOINT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Status.
    pub status: RunStatus,
    /// Network directory (as given when the run started).
    pub network: String,
    /// Model hash of the network (hex).
    pub model_hash: String,
    /// Ranks.
    pub n_ranks: u32,
    /// Configuration.
    pub run: RunConfig,
    /// Checkpoint interval, ms (used by `--resume` unless given again).
    pub checkpoint_every_ms: Option<f64>,
    /// Checkpoints kept (used by `--resume` unless given again).
    pub keep: Option<usize>,
    /// The checkpoint this run was branched from (`--resume-from`).
    pub branched_from: Option<String>,
    /// Job pieces started so far.
    pub pieces: u32,
    /// Newest complete checkpoint (directory name), if any.
    pub last_checkpoint: Option<String>,
    /// Steps done at the last update.
    pub step: u64,
    /// Last update (Unix time, s).
    pub updated_unix_s: f64,
    /// With status `failed`: the error that stopped the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// xxh3-64 (hex) of this state serialised with `checksum` empty: an
    /// edited file (another seed, another end) is refused, not continued.
    #[serde(default)]
    pub checksum: String,
}

/// Trailing spaces kept in `run-state.json` for recording a failure in
/// place when the disk is full.
const RUN_STATE_SPARE_BYTES: usize = 384;

impl RunState {
    /// Write `run_dir/run-state.json` atomically, with its checksum.
    pub fn write(&self, run_dir: &Path) -> Result<(), FormatError> {
        let mut s = self.clone();
        s.checksum = checksum_of(&s, |s| s.checksum.clear());
        let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
        // Room for recording a failure in place on a full disk
        // ([`RunState::write_even_if_full`]): trailing spaces, which JSON
        // ignores.
        text.extend(std::iter::repeat_n(' ', RUN_STATE_SPARE_BYTES));
        text.push('\n');
        write_atomic(&run_dir.join(RUN_STATE_FILE), text.as_bytes())
    }

    /// [`RunState::write`], and where that fails (a full disk has no room
    /// for the temporary copy), the state written compactly over the old
    /// file in place, padded to its length so that no new block is needed.
    /// For recording a failure, when the disk may be full.
    pub fn write_even_if_full(&self, run_dir: &Path) -> Result<(), FormatError> {
        let err = match self.write(run_dir) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let path = run_dir.join(RUN_STATE_FILE);
        let old_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as usize;
        let mut s = self.clone();
        let compact = |s: &mut RunState| {
            s.checksum = checksum_of(s, |s| s.checksum.clear());
            serde_json::to_string(s).unwrap_or_default() + "\n"
        };
        let mut text = compact(&mut s);
        // Shorten the error message (keeping its end, where the OS error
        // is) until the state fits.
        while text.len() > old_len {
            let Some(e) = s.error.as_mut() else {
                return Err(err);
            };
            let excess = text.len() - old_len;
            let keep = e.chars().count().saturating_sub(excess + 4);
            if keep < 16 {
                return Err(err);
            }
            let tail: String = e.chars().skip(e.chars().count() - keep).collect();
            *e = format!("...{tail}");
            text = compact(&mut s);
        }
        // JSON allows trailing white space.
        text.extend(std::iter::repeat_n(' ', old_len - text.len()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| FormatError::io(&path, "open", e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| FormatError::io(&path, "write in place", e))
    }

    /// Read and verify `run_dir/run-state.json` (format, version, checksum,
    /// consistent steps).
    pub fn read(run_dir: &Path) -> Result<RunState, FormatError> {
        let path = run_dir.join(RUN_STATE_FILE);
        let len = std::fs::metadata(&path)
            .map_err(|e| FormatError::io(&path, "read", e))?
            .len();
        // A run state is a few hundred bytes; refuse to read a huge file.
        if len > 1 << 20 {
            return Err(FormatError::corrupt(
                &path,
                format!("{len} bytes: not a run-state file"),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| FormatError::io(&path, "read", e))?;
        let s: RunState = serde_json::from_str(&text)
            .map_err(|e| FormatError::corrupt(&path, format!("not a valid run-state file: {e}")))?;
        if s.format != RUN_STATE_FORMAT || s.format_version != CHECKPOINT_FORMAT_VERSION {
            return Err(FormatError::corrupt(
                &path,
                format!(
                    "format '{}' version {}, expected '{RUN_STATE_FORMAT}' version {CHECKPOINT_FORMAT_VERSION}",
                    s.format, s.format_version
                ),
            ));
        }
        if s.checksum.is_empty() {
            return Err(FormatError::corrupt(
                &path,
                "no checksum (written by an older snn-sim, or edited): start the run again in a new directory",
            ));
        }
        if checksum_of(&s, |s| s.checksum.clear()) != s.checksum {
            return Err(FormatError::corrupt(
                &path,
                "checksum mismatch (edited or corrupt): a run continues only from the state it wrote",
            ));
        }
        let r = &s.run;
        if !(r.dt_ms.is_finite() && r.dt_ms > 0.0)
            || r.presim_steps > r.total_steps
            || s.step > r.total_steps
        {
            return Err(FormatError::corrupt(
                &path,
                format!(
                    "inconsistent steps (dt {} ms, presim {}, end {}, reached {})",
                    r.dt_ms, r.presim_steps, r.total_steps, s.step
                ),
            ));
        }
        Ok(s)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_sort_and_parse() {
        assert_eq!(checkpoint_dir_name(100_000, 0.1), "t-000010000.0ms");
        assert_eq!(checkpoint_dir_name(3, 0.025), "t-000000000.075ms");
        assert_eq!(parse_checkpoint_dir_name("t-000010000.0ms"), Some(10000.0));
        assert_eq!(parse_checkpoint_dir_name("t-000010000.0ms.invalid"), None);
        assert_eq!(parse_checkpoint_dir_name("t-x"), None);
        let a = checkpoint_dir_name(99_999, 0.1);
        let b = checkpoint_dir_name(100_000, 0.1);
        assert!(a < b);
    }

    #[test]
    fn rank_file_round_trip_and_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..(BLOCK_SIZE * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let sections = vec![
            Section::new("a", vec![1, 2, 3]),
            Section::new("empty", vec![]),
            Section::new("big", big),
        ];
        let h = RankHeader {
            rank: 2,
            n_ranks: 3,
            step: 1234,
            model_hash: [7; 16],
        };
        let e = write_rank_state(tmp.path(), &h, &sections, 3).unwrap();
        let p = tmp.path().join(&e.file);
        assert!(!tmp.path().join(format!("{}.tmp", e.file)).exists());
        let s = read_rank_state(&p, Some(&e)).unwrap();
        assert_eq!(s.header, h);
        assert_eq!(s.sections, sections);
        assert_eq!(s.section("a"), Some(&[1u8, 2, 3][..]));
        // Any flipped byte is detected, with or without the manifest entry.
        let good = std::fs::read(&p).unwrap();
        for k in [0, 13, 100, 130, good.len() / 2, good.len() - 1] {
            let mut b = good.clone();
            b[k] ^= 0x10;
            std::fs::write(&p, &b).unwrap();
            assert!(read_rank_state(&p, Some(&e)).is_err(), "byte {k}");
            assert!(read_rank_state(&p, None).is_err(), "byte {k}, no entry");
        }
        std::fs::write(&p, &good[..good.len() - 5]).unwrap();
        assert!(read_rank_state(&p, None).is_err());
    }

    #[test]
    fn manifest_checksum() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = CheckpointManifest {
            format: CHECKPOINT_FORMAT.into(),
            format_version: CHECKPOINT_FORMAT_VERSION,
            model_hash: "ab".into(),
            network: "net".into(),
            n_ranks: 1,
            step: 10,
            t_ms: 1.0,
            run: RunConfig {
                seed: 1,
                dt_ms: 0.1,
                presim_steps: 0,
                total_steps: 100,
                comm: "p2p".into(),
                vm_from_start: false,
            },
            wall: WallTimes::default(),
            pieces: 1,
            created_unix_s: 1.5,
            ranks: vec![RankFileEntry {
                file: rank_file_name(0),
                rank: 0,
                bytes: 3,
                payload_bytes: 3,
                xxh3: "00".into(),
            }],
            checksum: String::new(),
        };
        m.write(tmp.path()).unwrap();
        assert_eq!(CheckpointManifest::read(tmp.path()).unwrap(), m);
        assert!(matches!(
            checkpoint_status(tmp.path()),
            CheckpointStatus::Corrupt(_)
        ));
        std::fs::write(tmp.path().join(rank_file_name(0)), b"abc").unwrap();
        assert!(matches!(
            checkpoint_status(tmp.path()),
            CheckpointStatus::Complete(_)
        ));
        let p = tmp.path().join(CHECKPOINT_MANIFEST);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"step\": 10", "\"step\": 11")).unwrap();
        assert!(CheckpointManifest::read(tmp.path()).is_err());
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(
            checkpoint_status(tmp.path()),
            CheckpointStatus::Incomplete
        ));
    }
}
