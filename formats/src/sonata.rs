//! SONATA-layout HDF5 files: spike output and membrane-potential reports.
//!
//! # Spike files (one per rank)
//!
//! ```text
//! /                       attributes magic = 0x0A7A (uint32), version = [0, 1] (uint32)
//! /spikes/<population>    attribute sorting = by_time (enum {none, by_id, by_time}, uint8)
//!     node_ids            uint64 [n], population-local node ids
//!     timestamps          float64 [n], attribute units = "ms"
//! ```
//!
//! Both datasets are chunked and extendable; [`SpikeWriter`] buffers spikes in
//! memory and appends them on [`SpikeWriter::flush`] (and on its own when the
//! buffer is full). [`read_spikes`] reads such a file back with validation.
//!
//! # Membrane-potential reports
//!
//! ```text
//! /report/<population>/data                 float64 [n_steps, n_nodes], attribute units = "mV"
//! /report/<population>/mapping/node_ids     uint64 [n_nodes]
//! /report/<population>/mapping/index_pointers uint64 [n_nodes + 1] (= 0, 1, ..., n_nodes)
//! /report/<population>/mapping/element_ids  uint32 [n_nodes] (all 0: one element per point neuron)
//! /report/<population>/mapping/time         float64 [start, stop, step], attribute units = "ms"
//! ```
//!
//! `stop` is exclusive: the samples are at `start + k * step` for
//! `k = 0 .. n_steps`, so `stop = start + n_steps * step`. Written by
//! [`ReportWriter`], read by [`read_report`].
//!
//! HDF5 lists group members in name order, so both readers return populations
//! sorted by name.

use std::path::{Path, PathBuf};

use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, File, Group, H5Type, Location};

use crate::error::FormatError;

/// The root `magic` attribute of a SONATA spike file.
pub const SONATA_MAGIC: u32 = 0x0A7A;
/// The root `version` attribute of a SONATA spike file.
pub const SONATA_VERSION: [u32; 2] = [0, 1];

/// Spikes buffered in a [`SpikeWriter`] before it writes them on its own.
const SPIKE_BUFFER: usize = 1 << 20;
/// Chunk length (elements) of the spike datasets.
const SPIKE_CHUNK: usize = 16 * 1024;
/// Values buffered in a [`ReportWriter`] before it writes them on its own.
const REPORT_BUFFER: usize = 1 << 20;

/// The SONATA `sorting` attribute of a spike population (an HDF5 enum).
#[derive(H5Type, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(non_camel_case_types, dead_code)] // the variants define the HDF5 enum members
enum Sorting {
    none = 0,
    by_id = 1,
    by_time = 2,
}

pub(crate) fn corrupt(path: &Path, message: impl Into<String>) -> FormatError {
    FormatError::corrupt(path, message)
}

/// An HDF5 failure while writing, as an I/O error naming the file and the
/// dataset, with the reason cut down to what the user needs (see
/// [`hdf5_reason`]).
pub(crate) fn write_err(path: &Path, op: &'static str, what: &str, e: hdf5::Error) -> FormatError {
    let reason = short_reason(&e);
    let msg = if what.is_empty() {
        reason
    } else {
        format!("{what}: {reason}")
    };
    FormatError::io(path, op, std::io::Error::other(msg))
}

/// The reason of an HDF5 error in a few words. The library's message is
/// its whole error stack (hundreds of characters naming internal functions
/// and temporary paths); what matters to a user is the operating-system
/// error at its bottom (e.g. `No space left on device`, `File too large`)
/// or, without one, the innermost description.
fn hdf5_reason(e: &hdf5::Error) -> String {
    let text = e.to_string();
    // An OS error appears as "... errno = 28, error message = 'No space
    // left on device' ..." in the stack.
    if let Some(i) = text.find("error message = '") {
        let rest = &text[i + "error message = '".len()..];
        if let Some(end) = rest.find('\'') {
            return rest[..end].to_string();
        }
    }
    if let Some(errno) = text
        .split("errno = ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<i32>().ok())
    {
        return std::io::Error::from_raw_os_error(errno).to_string();
    }
    // The stack's entries are joined by ": "; the last one is the
    // innermost cause.
    let last = text.rsplit(": ").next().unwrap_or(&text).trim();
    let short: String = last.chars().take(160).collect();
    if short.is_empty() {
        "HDF5 error".into()
    } else {
        short
    }
}

/// Open `path` as HDF5 (read-only or read-write) with a clear error for a
/// missing file or a file that is not HDF5.
pub(crate) fn open_h5(path: &Path, write: bool) -> Result<File, FormatError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(FormatError::io(path, "open", e));
    }
    let r = if write {
        File::open_rw(path)
    } else {
        File::open(path)
    };
    r.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("signature") {
            corrupt(path, "not an HDF5 file (no HDF5 signature found)")
        } else {
            corrupt(path, format!("cannot open as HDF5: {}", short_reason(&e)))
        }
    })
}

/// The reason of an HDF5 error, in a few words: an
/// operating-system error if the stack has one (see [`hdf5_reason`]),
/// else the innermost entry of the error stack (what the library found
/// wrong, e.g. `truncated file: eof = 268197, ...`), at most
/// [`MAX_REASON_CHARS`] characters on one line.
pub(crate) fn short_reason(e: &hdf5::Error) -> String {
    let text = e.to_string();
    let innermost = match e {
        hdf5::Error::HDF5(stack) if !text.contains("errno = ") => stack
            .clone()
            .expand()
            .ok()
            .and_then(|frames| frames.last().map(|f| f.desc().trim().to_string()))
            .filter(|d| !d.is_empty()),
        _ => None,
    };
    let reason = innermost.unwrap_or_else(|| hdf5_reason(e));
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if reason.chars().count() > MAX_REASON_CHARS {
        let cut: String = reason.chars().take(MAX_REASON_CHARS).collect();
        format!("{cut}...")
    } else {
        reason
    }
}

/// Longest HDF5 reason a reader error quotes (see [`short_reason`]).
const MAX_REASON_CHARS: usize = 160;

/// Most elements a root attribute of a spike file (`magic`, `version`)
/// may have: they hold 1 and 2 values; a forged attribute claiming
/// billions is refused before a buffer is allocated for it.
const MAX_ROOT_ATTR_ELEMENTS: usize = 16;

/// The largest compression ratio a filtered (compressed) dataset may claim:
/// a little above deflate's limit of 1032:1. Real spike data compresses
/// far less; a dataset that claims more (extended without data, or forged)
/// is refused before memory is allocated for it.
pub const MAX_COMPRESSION_RATIO: u64 = 1100;

pub(crate) fn write_str_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("{e}")))?;
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .as_writer()
        .write_scalar(&v)
}

/// Read a string attribute of any common HDF5 string type; `None` if absent
/// or not a string.
pub(crate) fn read_str_attr(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    let td = attr.dtype().ok()?.to_descriptor().ok()?;
    match td {
        TypeDescriptor::VarLenUnicode => attr
            .read_scalar::<VarLenUnicode>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        TypeDescriptor::VarLenAscii => attr
            .read_scalar::<VarLenAscii>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        TypeDescriptor::FixedAscii(_) => attr
            .read_scalar::<hdf5::types::FixedAscii<256>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        TypeDescriptor::FixedUnicode(_) => attr
            .read_scalar::<hdf5::types::FixedUnicode<256>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        _ => None,
    }
}

fn check_population_names(path: &Path, populations: &[String]) -> Result<(), FormatError> {
    for (i, p) in populations.iter().enumerate() {
        if p.is_empty() || p.contains('/') || p == "." || p == ".." {
            return Err(FormatError::Mismatch {
                path: path.to_path_buf(),
                message: format!("invalid population name {p:?} (must be non-empty, without '/')"),
            });
        }
        if populations[..i].contains(p) {
            return Err(FormatError::Mismatch {
                path: path.to_path_buf(),
                message: format!("population {p:?} given twice"),
            });
        }
    }
    Ok(())
}

/// Check the root `magic`/`version` attributes when present (files written
/// by other SONATA tools may lack them).
/// Open group `/name` of a file being reopened for appending and check
/// that its members are exactly `populations` (in any order).
fn group_with_members(
    path: &Path,
    file: &File,
    name: &str,
    missing: &str,
    populations: &[String],
) -> Result<Group, FormatError> {
    let group = file.group(name).map_err(|_| corrupt(path, missing))?;
    let mut present = group
        .member_names()
        .map_err(|e| corrupt(path, format!("/{name}: cannot list populations: {e}")))?;
    present.sort();
    let mut wanted = populations.to_vec();
    wanted.sort();
    if present != wanted {
        return Err(FormatError::Mismatch {
            path: path.to_path_buf(),
            message: format!("/{name} has populations {present:?}, expected {wanted:?}"),
        });
    }
    Ok(group)
}

pub(crate) fn check_magic(path: &Path, file: &File) -> Result<(), FormatError> {
    // A root attribute's values, refused before reading when it claims more
    // than such an attribute ever holds.
    let read_small = |name: &str, attr: &hdf5::Attribute| {
        let n = attr.size();
        if n > MAX_ROOT_ATTR_ELEMENTS {
            return Err(corrupt(
                path,
                format!(
                    "root attribute {name}: {n} values (expected at most {MAX_ROOT_ATTR_ELEMENTS})"
                ),
            ));
        }
        attr.read_raw::<u32>().map_err(|e| {
            corrupt(
                path,
                format!("root attribute {name}: unreadable: {}", short_reason(&e)),
            )
        })
    };
    if let Ok(attr) = file.attr("magic") {
        let magic = read_small("magic", &attr)?;
        if magic.as_slice() != [SONATA_MAGIC] {
            return Err(corrupt(
                path,
                format!("root attribute magic is {magic:?}, expected 0x{SONATA_MAGIC:04X}: not a SONATA file"),
            ));
        }
    }
    if let Ok(attr) = file.attr("version") {
        let version = read_small("version", &attr)?;
        if version.first().copied().unwrap_or(u32::MAX) > SONATA_VERSION[0] {
            return Err(corrupt(
                path,
                format!("root attribute version is {version:?}; this reader supports {SONATA_VERSION:?}"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Spikes
// ---------------------------------------------------------------------------

/// One population's datasets and unwritten spikes.
struct SpikePop {
    name: String,
    node_ids: Dataset,
    timestamps: Dataset,
    written: u64,
    buf_ids: Vec<u64>,
    buf_t: Vec<f64>,
}

/// Writes a SONATA spike file, buffered. See the [module docs](self) for the
/// layout.
///
/// Dropping a writer without [`SpikeWriter::close`] writes the buffered
/// spikes on a best-effort basis (errors are lost); call `close` to see them.
pub struct SpikeWriter {
    path: PathBuf,
    file: Option<File>,
    pops: Vec<SpikePop>,
    buffered: usize,
    /// A write failed (its message): the writer refuses everything after
    /// it, so nothing is retried and no buffer grows.
    deferred: Option<String>,
}

impl std::fmt::Debug for SpikeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpikeWriter")
            .field("path", &self.path)
            .field(
                "populations",
                &self.pops.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("counts", &self.counts())
            .finish()
    }
}

impl SpikeWriter {
    /// Create `path` (must not exist), one group per population (names in
    /// order; the population index of [`SpikeWriter::push`] refers to this
    /// order).
    pub fn create(path: &Path, populations: &[String]) -> Result<Self, FormatError> {
        check_population_names(path, populations)?;
        if path.exists() {
            return Err(FormatError::io(
                path,
                "create spike file",
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
            ));
        }
        let file =
            File::create_excl(path).map_err(|e| write_err(path, "create spike file", "", e))?;
        let w = |what: &str| {
            let what = what.to_owned();
            move |e| write_err(path, "create spike file", &what, e)
        };
        file.new_attr::<u32>()
            .shape(())
            .create("magic")
            .and_then(|a| a.write_scalar(&SONATA_MAGIC))
            .map_err(w("attribute magic"))?;
        file.new_attr::<u32>()
            .shape(2)
            .create("version")
            .and_then(|a| a.write_raw(&SONATA_VERSION[..]))
            .map_err(w("attribute version"))?;
        let spikes = file.create_group("spikes").map_err(w("/spikes"))?;
        let mut pops = Vec::with_capacity(populations.len());
        for name in populations {
            let gname = format!("/spikes/{name}");
            let g = spikes.create_group(name).map_err(w(&gname))?;
            g.new_attr::<Sorting>()
                .shape(())
                .create("sorting")
                .and_then(|a| a.write_scalar(&Sorting::by_time))
                .map_err(w(&format!("{gname}: attribute sorting")))?;
            let node_ids = g
                .new_dataset::<u64>()
                .chunk(SPIKE_CHUNK)
                .shape(0..)
                .create("node_ids")
                .map_err(w(&format!("{gname}/node_ids")))?;
            let timestamps = g
                .new_dataset::<f64>()
                .chunk(SPIKE_CHUNK)
                .shape(0..)
                .create("timestamps")
                .map_err(w(&format!("{gname}/timestamps")))?;
            write_str_attr(&timestamps, "units", "ms")
                .map_err(w(&format!("{gname}/timestamps: attribute units")))?;
            pops.push(SpikePop {
                name: name.clone(),
                node_ids,
                timestamps,
                written: 0,
                buf_ids: Vec::new(),
                buf_t: Vec::new(),
            });
        }
        file.flush().map_err(w("flush"))?;
        Ok(SpikeWriter {
            path: path.to_path_buf(),
            file: Some(file),
            pops,
            buffered: 0,
            deferred: None,
        })
    }

    /// Open an existing file for appending after truncating each population
    /// to `counts[p]` spikes (for resume after a checkpoint). `populations`
    /// must be exactly the file's populations (in the order the caller uses
    /// for indices); each must hold at least `counts[p]` spikes.
    pub fn reopen_truncated(
        path: &Path,
        populations: &[String],
        counts: &[u64],
    ) -> Result<Self, FormatError> {
        check_population_names(path, populations)?;
        if counts.len() != populations.len() {
            return Err(FormatError::Mismatch {
                path: path.to_path_buf(),
                message: format!(
                    "{} spike counts given for {} populations",
                    counts.len(),
                    populations.len()
                ),
            });
        }
        let file = open_h5(path, true)?;
        check_magic(path, &file)?;
        let spikes =
            group_with_members(path, &file, "spikes", "group /spikes: missing", populations)?;
        let mut pops = Vec::with_capacity(populations.len());
        for (name, &count) in populations.iter().zip(counts) {
            let (node_ids, timestamps) = open_spike_datasets(path, &spikes, name)?;
            for (ds, dname) in [(&node_ids, "node_ids"), (&timestamps, "timestamps")] {
                let len = ds.shape().first().copied().unwrap_or(0) as u64;
                if len < count {
                    return Err(corrupt(
                        path,
                        format!(
                            "/spikes/{name}/{dname}: holds {len} spikes, fewer than the {count} recorded at the checkpoint"
                        ),
                    ));
                }
                ds.resize(count as usize).map_err(|e| {
                    write_err(
                        path,
                        "truncate spike file",
                        &format!("/spikes/{name}/{dname}"),
                        e,
                    )
                })?;
            }
            pops.push(SpikePop {
                name: name.clone(),
                node_ids,
                timestamps,
                written: count,
                buf_ids: Vec::new(),
                buf_t: Vec::new(),
            });
        }
        file.flush()
            .map_err(|e| write_err(path, "truncate spike file", "flush", e))?;
        Ok(SpikeWriter {
            path: path.to_path_buf(),
            file: Some(file),
            pops,
            buffered: 0,
            deferred: None,
        })
    }

    /// Append one spike (population index, population-local node id, time
    /// in ms). Buffered; when the buffer is full it is written to the file,
    /// and an error from that write (e.g. the disk is full) is returned at
    /// once: the caller must stop (the writer accepts nothing more, and
    /// memory does not grow with spikes that cannot be written).
    ///
    /// # Panics
    /// If `pop` is not a population index given at creation.
    pub fn push(&mut self, pop: usize, node_id: u64, t_ms: f64) -> Result<(), FormatError> {
        if let Some(e) = &self.deferred {
            return Err(self.failed_before(e));
        }
        let p = &mut self.pops[pop];
        p.buf_ids.push(node_id);
        p.buf_t.push(t_ms);
        self.buffered += 1;
        if self.buffered >= SPIKE_BUFFER {
            if let Err(e) = self.write_buffers() {
                self.deferred = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    /// The error returned after a failed write.
    fn failed_before(&self, first: &str) -> FormatError {
        FormatError::io(
            &self.path,
            "write spikes",
            std::io::Error::other(format!("an earlier write failed ({first})")),
        )
    }

    /// Write the buffers to the datasets (no HDF5 flush).
    fn write_buffers(&mut self) -> Result<(), FormatError> {
        for p in &mut self.pops {
            if p.buf_ids.is_empty() {
                continue;
            }
            let start = p.written as usize;
            let end = start + p.buf_ids.len();
            let path = &self.path;
            let err =
                |d: &str, e| write_err(path, "write spikes", &format!("/spikes/{}/{d}", p.name), e);
            p.node_ids.resize(end).map_err(|e| err("node_ids", e))?;
            p.node_ids
                .write_slice(&p.buf_ids[..], start..end)
                .map_err(|e| err("node_ids", e))?;
            p.timestamps.resize(end).map_err(|e| err("timestamps", e))?;
            p.timestamps
                .write_slice(&p.buf_t[..], start..end)
                .map_err(|e| err("timestamps", e))?;
            p.written = end as u64;
            p.buf_ids.clear();
            p.buf_t.clear();
        }
        self.buffered = 0;
        Ok(())
    }

    /// Write buffered spikes to the file and flush HDF5 (called at
    /// checkpoints and at the end).
    pub fn flush(&mut self) -> Result<(), FormatError> {
        if let Some(e) = &self.deferred {
            return Err(self.failed_before(e));
        }
        if let Err(e) = self.write_buffers() {
            self.deferred = Some(e.to_string());
            return Err(e);
        }
        if let Some(f) = &self.file {
            f.flush()
                .map_err(|e| write_err(&self.path, "flush spike file", "", e))?;
        }
        Ok(())
    }

    /// Spikes per population written so far (flushed + buffered).
    pub fn counts(&self) -> Vec<u64> {
        self.pops
            .iter()
            .map(|p| p.written + p.buf_ids.len() as u64)
            .collect()
    }

    /// The file being written (as errors name it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Name the file `shown` in errors from now on (a file created in a
    /// staging directory is named by its final path; the open file is not
    /// affected).
    pub fn show_as(&mut self, shown: PathBuf) {
        self.path = shown;
    }

    /// Flush and close the file.
    pub fn close(mut self) -> Result<(), FormatError> {
        self.flush()?;
        self.pops.clear();
        if let Some(f) = self.file.take() {
            f.close()
                .map_err(|e| write_err(&self.path, "close spike file", "", e))?;
        }
        Ok(())
    }
}

impl Drop for SpikeWriter {
    fn drop(&mut self) {
        if self.file.is_some() && self.deferred.is_none() {
            let _ = self.flush();
        }
    }
}

fn open_spike_datasets(
    path: &Path,
    spikes: &Group,
    name: &str,
) -> Result<(Dataset, Dataset), FormatError> {
    let g = spikes.group(name).map_err(|e| {
        corrupt(
            path,
            format!("/spikes/{name}: not a readable group: {}", short_reason(&e)),
        )
    })?;
    let open = |d: &str| {
        g.dataset(d).map_err(|e| {
            let why = if g.link_exists(d) {
                format!("unreadable: {}", short_reason(&e))
            } else {
                "missing".to_string()
            };
            corrupt(path, format!("dataset /spikes/{name}/{d}: {why}"))
        })
    };
    Ok((open("node_ids")?, open("timestamps")?))
}

/// The spikes of one population as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationSpikes {
    /// The population's name (its group under `/spikes`).
    pub name: String,
    /// Population-local node ids, one per spike.
    pub node_ids: Vec<u64>,
    /// Spike times in ms, one per spike.
    pub timestamps_ms: Vec<f64>,
}

/// Check that `ds` is 1-D with a type in `class` ("integer" or "float").
pub(crate) fn check_1d(
    path: &Path,
    ds: &Dataset,
    what: &str,
    class: &str,
) -> Result<usize, FormatError> {
    let shape = ds.shape();
    if shape.len() != 1 {
        return Err(corrupt(
            path,
            format!("dataset {what}: expected 1 dimension, found shape {shape:?}"),
        ));
    }
    let td = ds.dtype().and_then(|t| t.to_descriptor()).map_err(|e| {
        corrupt(
            path,
            format!("dataset {what}: unreadable type: {}", short_reason(&e)),
        )
    })?;
    let ok = match class {
        // An empty dataset of floats is accepted as integers: BMTK writes
        // the node ids of a population without spikes as float64.
        "integer" => {
            matches!(td, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_))
                || (shape[0] == 0 && matches!(td, TypeDescriptor::Float(_)))
        }
        _ => matches!(td, TypeDescriptor::Float(_)),
    };
    if !ok {
        return Err(corrupt(
            path,
            format!("dataset {what}: expected {class} values, found {td}"),
        ));
    }
    Ok(shape[0])
}

/// Check, before anything is allocated for it, that dataset `what` of `n`
/// entries has its data in the file (`file_len` bytes): without filters
/// its stored bytes must hold `n` values; compressed, they must not claim
/// more than [`MAX_COMPRESSION_RATIO`]. A dataset extended without data
/// (HDF5 reads unwritten chunks as fill values) or a forged size is
/// refused, whatever `n` it claims.
pub(crate) fn check_stored(
    path: &Path,
    ds: &Dataset,
    what: &str,
    n: usize,
    file_len: u64,
) -> Result<(), FormatError> {
    if n == 0 {
        return Ok(());
    }
    let elem = ds.dtype().map(|t| t.size() as u64).unwrap_or(1).max(1);
    let needed = (n as u64).saturating_mul(elem);
    let stored = ds.storage_size().min(file_len);
    let filtered = !ds.filters().is_empty();
    let holds = if filtered {
        needed <= stored.saturating_mul(MAX_COMPRESSION_RATIO)
    } else {
        needed <= stored
    };
    if holds {
        return Ok(());
    }
    let how = if filtered {
        format!(
            "{stored} bytes of compressed data cannot hold them (more than {MAX_COMPRESSION_RATIO}:1)"
        )
    } else {
        format!("only {stored} bytes of data are stored")
    };
    Err(corrupt(
        path,
        format!(
            "dataset {what}: claims {n} entries ({needed} bytes) but {how}: extended without data, or damaged"
        ),
    ))
}

/// Read all populations of a SONATA spike file (sorted by name). Validates
/// the layout; errors name the file and the dataset.
pub fn read_spikes(path: &Path) -> Result<Vec<PopulationSpikes>, FormatError> {
    read_spikes_limited(path, u64::MAX)
}

/// [`read_spikes`], refusing a file with more than `max_spikes` spikes in
/// all (the most the caller can hold, e.g. from the memory available)
/// before reading them. Every dataset's size is also checked against the
/// data the file holds (see [`MAX_COMPRESSION_RATIO`]), so a forged size
/// never causes a large allocation.
pub fn read_spikes_limited(
    path: &Path,
    max_spikes: u64,
) -> Result<Vec<PopulationSpikes>, FormatError> {
    read_spikes_where(path, max_spikes, None)
}

/// The spikes of population `name` in a spike file (`None` if the file
/// has no such population), checked as [`read_spikes_limited`] checks
/// them, refusing more than `max_spikes` before reading: for readers that
/// hold one population at a time.
pub fn read_population_spikes(
    path: &Path,
    name: &str,
    max_spikes: u64,
) -> Result<Option<PopulationSpikes>, FormatError> {
    Ok(read_spikes_where(path, max_spikes, Some(name))?.pop())
}

/// The populations of a spike file and their numbers of spikes, from the
/// datasets' sizes (checked as [`read_spikes_limited`] checks them, nothing
/// read).
pub fn spike_counts(path: &Path) -> Result<Vec<(String, u64)>, FormatError> {
    let (file_len, _file, spikes, names) = open_spike_groups(path)?;
    names
        .into_iter()
        .map(|name| {
            let (_, _, n) = spike_datasets(path, &spikes, &name, file_len)?;
            Ok((name, n as u64))
        })
        .collect()
}

/// A spike file's length, the file, its `/spikes` group and the names of
/// its populations.
fn open_spike_groups(path: &Path) -> Result<(u64, File, Group, Vec<String>), FormatError> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| FormatError::io(path, "open", e))?
        .len();
    let file = open_h5(path, false)?;
    check_magic(path, &file)?;
    let spikes = file.group("spikes").map_err(|e| {
        if file.link_exists("spikes") {
            corrupt(
                path,
                format!("group /spikes: unreadable: {}", short_reason(&e)),
            )
        } else {
            corrupt(path, "group /spikes: missing (not a SONATA spike file)")
        }
    })?;
    let names = spikes.member_names().map_err(|e| {
        corrupt(
            path,
            format!("/spikes: cannot list populations: {}", short_reason(&e)),
        )
    })?;
    Ok((file_len, file, spikes, names))
}

/// Population `name`'s datasets (node ids, times) and their length, checked
/// for shape, type, equal lengths and the data the file holds.
fn spike_datasets(
    path: &Path,
    spikes: &Group,
    name: &str,
    file_len: u64,
) -> Result<(Dataset, Dataset, usize), FormatError> {
    let (ids_ds, t_ds) = open_spike_datasets(path, spikes, name)?;
    let ids_what = format!("/spikes/{name}/node_ids");
    let t_what = format!("/spikes/{name}/timestamps");
    let n_ids = check_1d(path, &ids_ds, &ids_what, "integer")?;
    let n_t = check_1d(path, &t_ds, &t_what, "float")?;
    if n_ids != n_t {
        return Err(corrupt(
            path,
            format!("population {name}: {ids_what} has {n_ids} entries but {t_what} has {n_t}"),
        ));
    }
    check_stored(path, &ids_ds, &ids_what, n_ids, file_len)?;
    check_stored(path, &t_ds, &t_what, n_t, file_len)?;
    Ok((ids_ds, t_ds, n_ids))
}

/// The populations of a spike file (only `only`, if given), refusing more
/// than `max_spikes` in all before reading them.
fn read_spikes_where(
    path: &Path,
    max_spikes: u64,
    only: Option<&str>,
) -> Result<Vec<PopulationSpikes>, FormatError> {
    let (file_len, _file, spikes, names) = open_spike_groups(path)?;
    let mut out = Vec::with_capacity(names.len());
    let mut total = 0u64;
    for name in names {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let (ids_ds, t_ds, n_ids) = spike_datasets(path, &spikes, &name, file_len)?;
        let ids_what = format!("/spikes/{name}/node_ids");
        let t_what = format!("/spikes/{name}/timestamps");
        total = total.saturating_add(n_ids as u64);
        if total > max_spikes {
            return Err(FormatError::Mismatch {
                path: path.to_path_buf(),
                message: format!(
                    "/spikes/{name}: {n_ids} spikes, {total} with the populations before it: more than the {max_spikes} that fit in the memory available"
                ),
            });
        }
        let scale = match read_str_attr(&t_ds, "units").as_deref() {
            None | Some("ms") => 1.0,
            Some("s") => 1000.0,
            Some(u) => {
                return Err(corrupt(
                    path,
                    format!("dataset {t_what}: unsupported units {u:?} (expected \"ms\")"),
                ))
            }
        };
        let unreadable = |what: &str, e: hdf5::Error| {
            corrupt(
                path,
                format!("dataset {what}: unreadable: {}", short_reason(&e)),
            )
        };
        let signed = matches!(
            ids_ds.dtype().and_then(|t| t.to_descriptor()),
            Ok(TypeDescriptor::Integer(_))
        );
        let node_ids = if n_ids == 0 {
            Vec::new()
        } else if signed {
            // Signed ids (BMTK writes int64): read as such, since HDF5
            // would clip a negative id to 0 when converting to unsigned.
            let ids = ids_ds
                .read_raw::<i64>()
                .map_err(|e| unreadable(&ids_what, e))?;
            if let Some(bad) = ids.iter().find(|&&id| id < 0) {
                return Err(corrupt(
                    path,
                    format!("dataset {ids_what}: negative node id {bad}"),
                ));
            }
            ids.into_iter().map(|id| id as u64).collect()
        } else {
            ids_ds
                .read_raw::<u64>()
                .map_err(|e| unreadable(&ids_what, e))?
        };
        let mut timestamps_ms = t_ds.read_raw::<f64>().map_err(|e| unreadable(&t_what, e))?;
        if scale != 1.0 {
            timestamps_ms.iter_mut().for_each(|t| *t *= scale);
        }
        out.push(PopulationSpikes {
            name,
            node_ids,
            timestamps_ms,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

struct ReportPop {
    name: String,
    data: Dataset,
    time: Dataset,
    n: usize,
    buf: Vec<f64>,
}

/// Writes a SONATA membrane-potential report (float64 values, one element
/// per point neuron). See the [module docs](self) for the layout.
pub struct ReportWriter {
    path: PathBuf,
    file: Option<File>,
    pops: Vec<ReportPop>,
    n_total: usize,
    t_start_ms: f64,
    dt_ms: f64,
    steps_written: usize,
    steps_buffered: usize,
}

impl std::fmt::Debug for ReportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportWriter")
            .field("path", &self.path)
            .field(
                "populations",
                &self.pops.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .field("steps", &(self.steps_written + self.steps_buffered))
            .finish()
    }
}

impl ReportWriter {
    /// Create `path` (must not exist) recording the given nodes
    /// (population-local ids) of each population, sampled every `dt_ms`
    /// from `t_start_ms`.
    pub fn create(
        path: &Path,
        populations: &[(String, Vec<u64>)],
        t_start_ms: f64,
        dt_ms: f64,
    ) -> Result<Self, FormatError> {
        let names: Vec<String> = populations.iter().map(|(n, _)| n.clone()).collect();
        check_population_names(path, &names)?;
        if !(dt_ms > 0.0 && dt_ms.is_finite() && t_start_ms.is_finite()) {
            return Err(FormatError::Mismatch {
                path: path.to_path_buf(),
                message: format!(
                    "invalid report time grid: start {t_start_ms} ms, step {dt_ms} ms"
                ),
            });
        }
        if path.exists() {
            return Err(FormatError::io(
                path,
                "create report file",
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "file exists"),
            ));
        }
        let file =
            File::create_excl(path).map_err(|e| write_err(path, "create report file", "", e))?;
        let w = |what: &str| {
            let what = what.to_owned();
            move |e| write_err(path, "create report file", &what, e)
        };
        let report = file.create_group("report").map_err(w("/report"))?;
        let mut pops = Vec::with_capacity(populations.len());
        let mut n_total = 0;
        for (name, node_ids) in populations {
            let gname = format!("/report/{name}");
            let n = node_ids.len();
            let g = report.create_group(name).map_err(w(&gname))?;
            let cols = n.clamp(1, 64 * 1024);
            let rows = (64 * 1024 / cols).max(1);
            let data = g
                .new_dataset::<f64>()
                .chunk((rows, cols))
                .shape(hdf5::SimpleExtents::resizable([0, n]))
                .create("data")
                .map_err(w(&format!("{gname}/data")))?;
            write_str_attr(&data, "units", "mV")
                .map_err(w(&format!("{gname}/data: attribute units")))?;
            let m = g
                .create_group("mapping")
                .map_err(w(&format!("{gname}/mapping")))?;
            let mw = |d: &str| w(&format!("{gname}/mapping/{d}"));
            m.new_dataset_builder()
                .with_data(&node_ids[..])
                .create("node_ids")
                .map_err(mw("node_ids"))?;
            let ptr: Vec<u64> = (0..=n as u64).collect();
            m.new_dataset_builder()
                .with_data(&ptr[..])
                .create("index_pointers")
                .map_err(mw("index_pointers"))?;
            let el = vec![0u32; n];
            m.new_dataset_builder()
                .with_data(&el[..])
                .create("element_ids")
                .map_err(mw("element_ids"))?;
            let time = m
                .new_dataset_builder()
                .with_data(&[t_start_ms, t_start_ms, dt_ms][..])
                .create("time")
                .map_err(mw("time"))?;
            write_str_attr(&time, "units", "ms").map_err(mw("time: attribute units"))?;
            pops.push(ReportPop {
                name: name.clone(),
                data,
                time,
                n,
                buf: Vec::new(),
            });
            n_total += n;
        }
        file.flush().map_err(w("flush"))?;
        Ok(ReportWriter {
            path: path.to_path_buf(),
            file: Some(file),
            pops,
            n_total,
            t_start_ms,
            dt_ms,
            steps_written: 0,
            steps_buffered: 0,
        })
    }

    /// Open an existing report for appending after truncating it to its
    /// first `steps` samples (for resume after a checkpoint). `populations`
    /// and the time grid must be those the file was created with (checked);
    /// the file must hold at least `steps` samples.
    pub fn reopen_truncated(
        path: &Path,
        populations: &[(String, Vec<u64>)],
        t_start_ms: f64,
        dt_ms: f64,
        steps: usize,
    ) -> Result<Self, FormatError> {
        let names: Vec<String> = populations.iter().map(|(n, _)| n.clone()).collect();
        check_population_names(path, &names)?;
        let file = open_h5(path, true)?;
        let report = group_with_members(
            path,
            &file,
            "report",
            "group /report: missing (not a SONATA report file)",
            &names,
        )?;
        let mut pops = Vec::with_capacity(populations.len());
        let mut n_total = 0;
        for (name, node_ids) in populations {
            let open = |d: &str| {
                report
                    .dataset(&format!("{name}/{d}"))
                    .map_err(|_| corrupt(path, format!("dataset /report/{name}/{d}: missing")))
            };
            let data = open("data")?;
            let time = open("mapping/time")?;
            let ids = open("mapping/node_ids")?
                .read_raw::<u64>()
                .map_err(|e| corrupt(path, format!("/report/{name}/mapping/node_ids: {e}")))?;
            if &ids != node_ids {
                return Err(FormatError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!("/report/{name}: recorded nodes differ from the run's"),
                });
            }
            let grid = time
                .read_raw::<f64>()
                .map_err(|e| corrupt(path, format!("/report/{name}/mapping/time: {e}")))?;
            if grid.len() != 3
                || grid[0].to_bits() != t_start_ms.to_bits()
                || grid[2].to_bits() != dt_ms.to_bits()
            {
                return Err(FormatError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!(
                        "/report/{name}/mapping/time is {grid:?}, expected start {t_start_ms} and step {dt_ms}"
                    ),
                });
            }
            let n = node_ids.len();
            let shape = data.shape();
            if shape.len() != 2 || shape[1] != n || shape[0] < steps {
                return Err(corrupt(
                    path,
                    format!(
                        "/report/{name}/data: shape {shape:?}, expected at least {steps} samples of {n} nodes (the count at the checkpoint)"
                    ),
                ));
            }
            let err =
                |d: &str, e| write_err(path, "truncate report", &format!("/report/{name}/{d}"), e);
            data.resize((steps, n)).map_err(|e| err("data", e))?;
            let stop = t_start_ms + steps as f64 * dt_ms;
            time.write_raw(&[t_start_ms, stop, dt_ms][..])
                .map_err(|e| err("mapping/time", e))?;
            pops.push(ReportPop {
                name: name.clone(),
                data,
                time,
                n,
                buf: Vec::new(),
            });
            n_total += n;
        }
        file.flush()
            .map_err(|e| write_err(path, "truncate report", "flush", e))?;
        Ok(ReportWriter {
            path: path.to_path_buf(),
            file: Some(file),
            pops,
            n_total,
            t_start_ms,
            dt_ms,
            steps_written: steps,
            steps_buffered: 0,
        })
    }

    /// Append one time step: the values of all recorded neurons, population
    /// after population in the order given at creation. Buffered; a full
    /// buffer is written at once (its error is returned here).
    pub fn push_step(&mut self, values: &[f64]) -> Result<(), FormatError> {
        if values.len() != self.n_total {
            return Err(FormatError::Mismatch {
                path: self.path.clone(),
                message: format!(
                    "report step has {} values, expected {}",
                    values.len(),
                    self.n_total
                ),
            });
        }
        let mut off = 0;
        for p in &mut self.pops {
            p.buf.extend_from_slice(&values[off..off + p.n]);
            off += p.n;
        }
        self.steps_buffered += 1;
        if self.steps_buffered * self.n_total.max(1) >= REPORT_BUFFER {
            self.write_buffers()?;
        }
        Ok(())
    }

    fn write_buffers(&mut self) -> Result<(), FormatError> {
        let start = self.steps_written;
        let end = start + self.steps_buffered;
        let stop = self.t_start_ms + end as f64 * self.dt_ms;
        for p in &mut self.pops {
            let path = &self.path;
            let err =
                |d: &str, e| write_err(path, "write report", &format!("/report/{}/{d}", p.name), e);
            if self.steps_buffered > 0 {
                p.data.resize((end, p.n)).map_err(|e| err("data", e))?;
                if p.n > 0 {
                    let view =
                        ndarray::ArrayView2::from_shape((self.steps_buffered, p.n), &p.buf[..])
                            .map_err(|e| err("data", hdf5::Error::from(e.to_string())))?;
                    p.data
                        .write_slice(view, (start..end, ..))
                        .map_err(|e| err("data", e))?;
                }
            }
            p.time
                .write_raw(&[self.t_start_ms, stop, self.dt_ms][..])
                .map_err(|e| err("mapping/time", e))?;
            p.buf.clear();
        }
        self.steps_written = end;
        self.steps_buffered = 0;
        Ok(())
    }

    /// Write buffered steps and flush HDF5.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.write_buffers()?;
        if let Some(f) = &self.file {
            f.flush()
                .map_err(|e| write_err(&self.path, "flush report file", "", e))?;
        }
        Ok(())
    }

    /// Name the file `shown` in errors from now on (see
    /// [`SpikeWriter::show_as`]).
    pub fn show_as(&mut self, shown: PathBuf) {
        self.path = shown;
    }

    /// Steps pushed so far (written + buffered).
    pub fn steps(&self) -> usize {
        self.steps_written + self.steps_buffered
    }

    /// Flush and close the file.
    pub fn close(mut self) -> Result<(), FormatError> {
        self.flush()?;
        self.pops.clear();
        if let Some(f) = self.file.take() {
            f.close()
                .map_err(|e| write_err(&self.path, "close report file", "", e))?;
        }
        Ok(())
    }
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = self.flush();
        }
    }
}

/// One population of a membrane-potential report as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationReport {
    /// The population's name (its group under `/report`).
    pub name: String,
    /// Population-local ids of the recorded nodes (columns of `data`).
    pub node_ids: Vec<u64>,
    /// Time of the first sample (ms).
    pub t_start_ms: f64,
    /// End of the sampled interval (ms, exclusive).
    pub t_stop_ms: f64,
    /// Sampling interval (ms).
    pub dt_ms: f64,
    /// Number of samples (rows of `data`).
    pub n_steps: usize,
    /// Values, row-major `[n_steps][node_ids.len()]` (mV).
    pub data: Vec<f64>,
}

impl PopulationReport {
    /// The trace (one value per step) of column `i` (node `node_ids[i]`).
    pub fn trace(&self, i: usize) -> Vec<f64> {
        let n = self.node_ids.len();
        (0..self.n_steps).map(|s| self.data[s * n + i]).collect()
    }

    /// The sample times (ms).
    pub fn times(&self) -> Vec<f64> {
        (0..self.n_steps)
            .map(|s| self.t_start_ms + s as f64 * self.dt_ms)
            .collect()
    }
}

/// Read all populations of a SONATA report file (sorted by name). Validates
/// the layout; errors name the file and the dataset.
pub fn read_report(path: &Path) -> Result<Vec<PopulationReport>, FormatError> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| FormatError::io(path, "open", e))?
        .len();
    let file = open_h5(path, false)?;
    let report = file
        .group("report")
        .map_err(|_| corrupt(path, "group /report: missing (not a SONATA report file)"))?;
    let names = report
        .member_names()
        .map_err(|e| corrupt(path, format!("/report: cannot list populations: {e}")))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let g = report
            .group(&name)
            .map_err(|_| corrupt(path, format!("/report/{name}: not a group")))?;
        let open = |d: &str| {
            g.dataset(d)
                .map_err(|_| corrupt(path, format!("dataset /report/{name}/{d}: missing")))
        };
        let data_ds = open("data")?;
        let ids_ds = open("mapping/node_ids")?;
        let time_ds = open("mapping/time")?;
        let ids_what = format!("/report/{name}/mapping/node_ids");
        let n = check_1d(path, &ids_ds, &ids_what, "integer")?;
        check_stored(path, &ids_ds, &ids_what, n, file_len)?;
        let unreadable = |what: &str, e: hdf5::Error| {
            corrupt(
                path,
                format!("dataset {what}: unreadable: {}", short_reason(&e)),
            )
        };
        let node_ids = ids_ds
            .read_raw::<u64>()
            .map_err(|e| unreadable(&ids_what, e))?;
        let time_what = format!("/report/{name}/mapping/time");
        let n_time = check_1d(path, &time_ds, &time_what, "float")?;
        if n_time != 3 {
            return Err(corrupt(
                path,
                format!("dataset {time_what}: {n_time} values, expected [start, stop, step]"),
            ));
        }
        let time = time_ds
            .read_raw::<f64>()
            .map_err(|e| unreadable(&time_what, e))?;
        if time.len() != 3 || time[2].is_nan() || time[2] <= 0.0 {
            return Err(corrupt(
                path,
                format!("dataset {time_what}: expected [start, stop, step] with step > 0, found {time:?}"),
            ));
        }
        let data_what = format!("/report/{name}/data");
        let shape = data_ds.shape();
        if shape.len() != 2 || shape[1] != n {
            return Err(corrupt(
                path,
                format!("dataset {data_what}: shape {shape:?} does not fit {n} nodes (expected [n_steps, {n}])"),
            ));
        }
        let Some(values) = shape[0].checked_mul(shape[1]) else {
            return Err(corrupt(
                path,
                format!("dataset {data_what}: shape {shape:?} is too large"),
            ));
        };
        check_stored(path, &data_ds, &data_what, values, file_len)?;
        let data = data_ds
            .read_raw::<f64>()
            .map_err(|e| unreadable(&data_what, e))?;
        out.push(PopulationReport {
            name,
            node_ids,
            t_start_ms: time[0],
            t_stop_ms: time[1],
            dt_ms: time[2],
            n_steps: shape[0],
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sonata_spikes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikes.h5");
        let pops = names(&["E", "I"]);
        let mut w = SpikeWriter::create(&path, &pops).unwrap();
        w.push(0, 3, 0.1).unwrap();
        w.push(1, 0, 0.2).unwrap();
        w.push(0, 1, 0.5).unwrap();
        assert_eq!(w.counts(), vec![2, 1]);
        w.close().unwrap();
        let r = read_spikes(&path).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "E");
        assert_eq!(r[0].node_ids, vec![3, 1]);
        assert_eq!(r[0].timestamps_ms, vec![0.1, 0.5]);
        assert_eq!(r[1].name, "I");
        assert_eq!(r[1].node_ids, vec![0]);
        assert_eq!(r[1].timestamps_ms, vec![0.2]);
        // Attributes.
        let f = File::open(&path).unwrap();
        assert_eq!(
            f.attr("magic").unwrap().read_scalar::<u32>().unwrap(),
            SONATA_MAGIC
        );
        assert_eq!(
            f.attr("version").unwrap().read_raw::<u32>().unwrap(),
            vec![0, 1]
        );
        let g = f.group("spikes/E").unwrap();
        assert_eq!(
            g.attr("sorting").unwrap().read_scalar::<Sorting>().unwrap(),
            Sorting::by_time
        );
        let t = f.dataset("spikes/E/timestamps").unwrap();
        assert_eq!(read_str_attr(&t, "units").as_deref(), Some("ms"));
        assert!(t.is_chunked() && t.is_resizable());
    }

    #[test]
    fn sonata_writers_are_send() {
        fn send<T: Send>() {}
        send::<SpikeWriter>();
        send::<ReportWriter>();
    }

    #[test]
    fn sonata_spikes_create_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikes.h5");
        std::fs::write(&path, b"keep me").unwrap();
        let e = SpikeWriter::create(&path, &names(&["E"])).unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        let e = SpikeWriter::create(&dir.path().join("x.h5"), &names(&["E", "E"])).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn sonata_spikes_append_across_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikes.h5");
        let mut w = SpikeWriter::create(&path, &names(&["A", "B"])).unwrap();
        let mut expect_a = Vec::new();
        for round in 0..5u64 {
            for k in 0..1000u64 {
                let t = (round * 1000 + k) as f64 * 0.1;
                w.push(0, k % 17, t).unwrap();
                expect_a.push((k % 17, t));
            }
            w.flush().unwrap();
            // Readable while open, holding everything flushed so far.
            let r = read_spikes(&path).unwrap();
            assert_eq!(r[0].node_ids.len() as u64, (round + 1) * 1000);
        }
        // More than one automatic buffer write.
        let n_big = SPIKE_BUFFER + 10;
        for k in 0..n_big {
            w.push(1, k as u64, k as f64).unwrap();
        }
        assert_eq!(w.counts(), vec![5000, n_big as u64]);
        w.close().unwrap();
        let r = read_spikes(&path).unwrap();
        let got: Vec<(u64, f64)> = r[0]
            .node_ids
            .iter()
            .copied()
            .zip(r[0].timestamps_ms.iter().copied())
            .collect();
        assert_eq!(got, expect_a);
        assert_eq!(r[1].node_ids.len(), n_big);
        assert_eq!(r[1].node_ids[n_big - 1], n_big as u64 - 1);
        assert_eq!(r[1].timestamps_ms[12345], 12345.0);
    }

    #[test]
    fn sonata_spikes_reopen_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spikes.h5");
        let pops = names(&["A", "B"]);
        let mut w = SpikeWriter::create(&path, &pops).unwrap();
        for k in 0..10u64 {
            w.push(0, k, k as f64).unwrap();
            w.push(1, k, k as f64 + 0.5).unwrap();
        }
        w.flush().unwrap();
        let ckpt = w.counts();
        for k in 10..20u64 {
            w.push(0, k, k as f64).unwrap();
        }
        w.flush().unwrap();
        drop(w); // "crash" after the checkpoint, with extra spikes on disk

        let mut w = SpikeWriter::reopen_truncated(&path, &pops, &ckpt).unwrap();
        assert_eq!(w.counts(), vec![10, 10]);
        w.push(0, 99, 100.0).unwrap();
        w.close().unwrap();
        let r = read_spikes(&path).unwrap();
        assert_eq!(r[0].node_ids.len(), 11);
        assert_eq!(r[0].node_ids[10], 99);
        assert_eq!(r[0].timestamps_ms[10], 100.0);
        assert_eq!(r[1].node_ids.len(), 10);

        // Asking for more spikes than the file holds is an error.
        let e = SpikeWriter::reopen_truncated(&path, &pops, &[12, 11]).unwrap_err();
        assert!(e.to_string().contains("fewer than"), "{e}");
        // Population mismatch.
        let e = SpikeWriter::reopen_truncated(&path, &names(&["A", "C"]), &[1, 1]).unwrap_err();
        assert!(e.to_string().contains("populations"), "{e}");
        // The failed attempts changed nothing.
        assert_eq!(read_spikes(&path).unwrap()[0].node_ids.len(), 11);
    }

    #[test]
    fn sonata_corrupt_or_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.h5");
        let e = read_spikes(&missing).unwrap_err();
        assert!(e.to_string().contains("nope.h5"), "{e}");

        let junk = dir.path().join("junk.h5");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = read_spikes(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.h5") && e.contains("not an HDF5 file"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");

        // Truncated real file.
        let good = dir.path().join("good.h5");
        let mut w = SpikeWriter::create(&good, &names(&["E"])).unwrap();
        for k in 0..50_000u64 {
            w.push(0, k, k as f64).unwrap();
        }
        w.close().unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let trunc = dir.path().join("trunc.h5");
        std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_spikes(&trunc).unwrap_err().to_string();
        assert!(e.contains("trunc.h5"), "{e}");

        let e = read_report(&junk).unwrap_err().to_string();
        assert!(e.contains("not an HDF5 file"), "{e}");
    }

    #[test]
    fn sonata_missing_datasets_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("nospikes.h5");
        File::create(&p1).unwrap().create_group("other").unwrap();
        let e = read_spikes(&p1).unwrap_err().to_string();
        assert!(e.contains("nospikes.h5") && e.contains("/spikes"), "{e}");

        let p2 = dir.path().join("nots.h5");
        {
            let f = File::create(&p2).unwrap();
            let g = f
                .create_group("spikes")
                .unwrap()
                .create_group("L4E")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&[1u64, 2][..])
                .create("node_ids")
                .unwrap();
        }
        let e = read_spikes(&p2).unwrap_err().to_string();
        assert!(
            e.contains("nots.h5") && e.contains("/spikes/L4E/timestamps") && e.contains("missing"),
            "{e}"
        );

        let p3 = dir.path().join("mismatch.h5");
        {
            let f = File::create(&p3).unwrap();
            let g = f
                .create_group("spikes")
                .unwrap()
                .create_group("L4E")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&[1u64, 2][..])
                .create("node_ids")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&[1.0f64][..])
                .create("timestamps")
                .unwrap();
        }
        let e = read_spikes(&p3).unwrap_err().to_string();
        assert!(e.contains("2 entries") && e.contains("has 1"), "{e}");

        let p4 = dir.path().join("badmagic.h5");
        {
            let f = File::create(&p4).unwrap();
            f.new_attr::<u32>()
                .shape(())
                .create("magic")
                .unwrap()
                .write_scalar(&1u32)
                .unwrap();
            f.create_group("spikes").unwrap();
        }
        let e = read_spikes(&p4).unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");

        let p5 = dir.path().join("norep.h5");
        {
            let f = File::create(&p5).unwrap();
            let g = f.create_group("report").unwrap().create_group("E").unwrap();
            g.new_dataset_builder()
                .with_data(&[1.0f64, 2.0][..])
                .create("data")
                .unwrap();
        }
        let e = read_report(&p5).unwrap_err().to_string();
        assert!(
            e.contains("/report/E/mapping/node_ids") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn sonata_report_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.h5");
        let pops = vec![
            ("E".to_string(), vec![0u64, 5, 7]),
            ("I".to_string(), vec![2u64]),
        ];
        let mut w = ReportWriter::create(&path, &pops, 10.0, 0.1).unwrap();
        for s in 0..25 {
            let v: Vec<f64> = (0..4)
                .map(|i| -65.0 + s as f64 * 0.01 + i as f64 * 1e-9)
                .collect();
            w.push_step(&v).unwrap();
            if s == 10 {
                w.flush().unwrap();
            }
        }
        assert!(w.push_step(&[1.0]).is_err());
        assert_eq!(w.steps(), 25);
        w.close().unwrap();
        let r = read_report(&path).unwrap();
        assert_eq!(r.len(), 2);
        let e = &r[0];
        assert_eq!(e.name, "E");
        assert_eq!(e.node_ids, vec![0, 5, 7]);
        assert_eq!(e.n_steps, 25);
        assert_eq!(e.t_start_ms, 10.0);
        assert_eq!(e.dt_ms, 0.1);
        assert!((e.t_stop_ms - 12.5).abs() < 1e-12);
        assert_eq!(e.trace(2)[24], -65.0 + 24.0 * 0.01 + 2e-9);
        assert_eq!(r[1].trace(0)[3], -65.0 + 0.03 + 3e-9);
        assert_eq!(e.times().len(), 25);
        let f = File::open(&path).unwrap();
        assert_eq!(
            f.dataset("report/E/mapping/index_pointers")
                .unwrap()
                .read_raw::<u64>()
                .unwrap(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            f.dataset("report/E/mapping/element_ids")
                .unwrap()
                .read_raw::<u32>()
                .unwrap(),
            vec![0, 0, 0]
        );
    }

    /// A report truncated for resume and continued equals one written in one
    /// go; a wrong grid or node list is refused.
    #[test]
    fn sonata_report_reopen_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let pops = vec![
            ("E".to_string(), vec![0u64, 5]),
            ("I".to_string(), vec![2u64]),
        ];
        let row = |s: usize| vec![s as f64, -(s as f64), 0.5 * s as f64];
        let one = dir.path().join("one.h5");
        let mut w = ReportWriter::create(&one, &pops, 1.0, 0.1).unwrap();
        for s in 0..30 {
            w.push_step(&row(s)).unwrap();
        }
        w.close().unwrap();
        let two = dir.path().join("two.h5");
        let mut w = ReportWriter::create(&two, &pops, 1.0, 0.1).unwrap();
        for s in 0..20 {
            w.push_step(&row(s)).unwrap();
            if s == 11 {
                w.flush().unwrap();
            }
        }
        drop(w);
        let mut bad = pops.clone();
        bad[0].1[1] = 6;
        assert!(ReportWriter::reopen_truncated(&two, &bad, 1.0, 0.1, 12).is_err());
        assert!(ReportWriter::reopen_truncated(&two, &pops, 1.5, 0.1, 12).is_err());
        assert!(ReportWriter::reopen_truncated(&two, &pops, 1.0, 0.1, 21).is_err());
        let mut w = ReportWriter::reopen_truncated(&two, &pops, 1.0, 0.1, 12).unwrap();
        assert_eq!(w.steps(), 12);
        for s in 12..30 {
            w.push_step(&row(s)).unwrap();
        }
        w.close().unwrap();
        assert_eq!(read_report(&one).unwrap(), read_report(&two).unwrap());
    }

    /// h5py (from the project's venv, when present) reads what we write.
    #[test]
    fn sonata_h5py_reads_our_files() {
        let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        if !py.exists() {
            eprintln!("note: {} missing, h5py check skipped", py.display());
            return;
        }
        let probe = std::process::Command::new(&py)
            .args(["-c", "import h5py"])
            .output();
        if !matches!(&probe, Ok(o) if o.status.success()) {
            eprintln!(
                "note: h5py not importable from {}, h5py check skipped",
                py.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spikes = dir.path().join("spikes.h5");
        let mut w = SpikeWriter::create(&spikes, &names(&["L23E", "L23I"])).unwrap();
        w.push(0, 4, 1.5).unwrap();
        w.push(0, 2, 2.5).unwrap();
        w.push(1, 1, 3.0).unwrap();
        w.close().unwrap();
        let report = dir.path().join("v.h5");
        let mut r =
            ReportWriter::create(&report, &[("L23E".into(), vec![4, 9])], 0.0, 0.1).unwrap();
        r.push_step(&[-65.0, -64.0]).unwrap();
        r.push_step(&[-63.0, -62.0]).unwrap();
        r.close().unwrap();
        let script = r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert f.attrs['magic'] == 0x0A7A, f.attrs['magic']
assert list(f.attrs['version']) == [0, 1]
g = f['spikes/L23E']
assert list(g['node_ids'][...]) == [4, 2]
assert g['node_ids'].dtype == np.uint64
assert list(g['timestamps'][...]) == [1.5, 2.5]
assert g['timestamps'].attrs['units'] in ('ms', b'ms')
assert h5py.check_enum_dtype(g.attrs.get_id('sorting').dtype) == {'none': 0, 'by_id': 1, 'by_time': 2}
assert g.attrs['sorting'] == 2
assert list(f['spikes/L23I/node_ids'][...]) == [1]
r = h5py.File(sys.argv[2], 'r')
d = r['report/L23E/data'][...]
assert d.shape == (2, 2) and d[1, 0] == -63.0, d
assert list(r['report/L23E/mapping/time'][...]) == [0.0, 0.2, 0.1], r['report/L23E/mapping/time'][...]
assert list(r['report/L23E/mapping/node_ids'][...]) == [4, 9]
print('ok')
"#;
        let out = std::process::Command::new(&py)
            .args(["-c", script])
            .arg(&spikes)
            .arg(&report)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "h5py check failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
