//! Reading a run directory: `summary.json` (populations, simulated time) and
//! the per-rank SONATA spike files `spikes-rank-*.h5`, merged.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::AnalyzeError;
use crate::limits::{
    available_bytes, check_fits, BYTES_PER_NEURON, BYTES_PER_SPIKE, MAX_POPULATION_SIZE,
    MAX_RUN_MS, MAX_SUMMARY_BYTES,
};

/// One population as described by `summary.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PopulationInfo {
    /// The population's name (also its group in the spike files).
    pub name: String,
    /// The number of neurons; spike node ids are `0..size`.
    pub size: u64,
    /// The global id of the population's first neuron (informational).
    #[serde(default)]
    pub first_id: Option<u64>,
    /// The population's area (runs of models without areas: absent, or the
    /// population's own name).
    #[serde(default)]
    pub area: Option<String>,
}

/// The fields of `summary.json` (written by `snn-sim`) that the analyzer
/// uses; other fields are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RunSummary {
    /// The populations, in model order.
    pub populations: Vec<PopulationInfo>,
    /// Start of the simulated time (ms).
    #[serde(default)]
    pub t_start_ms: f64,
    /// End of the simulated time (ms).
    pub t_stop_ms: f64,
    /// The simulation step (ms).
    #[serde(default)]
    pub dt_ms: Option<f64>,
    /// The number of ranks (= spike files).
    #[serde(default)]
    pub n_ranks: Option<usize>,
    /// The spike files, relative to the run directory.
    #[serde(default)]
    pub spike_files: Option<Vec<String>>,
}

/// Spike trains of one population in compressed form: the spike times of
/// neuron `i` are `times[offsets[i]..offsets[i + 1]]`, sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpikeTrains {
    offsets: Vec<usize>,
    times: Vec<f64>,
}

impl SpikeTrains {
    /// Build from (population-local node id, time in ms) pairs; ids must be
    /// `< n_neurons`.
    pub fn from_spikes(n_neurons: usize, spikes: impl IntoIterator<Item = (u64, f64)>) -> Self {
        let spikes: Vec<(u64, f64)> = spikes.into_iter().collect();
        let mut offsets = vec![0usize; n_neurons + 1];
        for &(id, _) in &spikes {
            offsets[id as usize + 1] += 1;
        }
        for i in 0..n_neurons {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut times = vec![0.0; spikes.len()];
        for &(id, t) in &spikes {
            let k = &mut fill[id as usize];
            times[*k] = t;
            *k += 1;
        }
        for i in 0..n_neurons {
            times[offsets[i]..offsets[i + 1]].sort_by(f64::total_cmp);
        }
        SpikeTrains { offsets, times }
    }

    /// Build from one spike-time list per neuron (each list is sorted here).
    pub fn from_trains(trains: &[Vec<f64>]) -> Self {
        let spikes = trains
            .iter()
            .enumerate()
            .flat_map(|(i, tr)| tr.iter().map(move |&t| (i as u64, t)));
        SpikeTrains::from_spikes(trains.len(), spikes)
    }

    /// The number of neurons.
    pub fn n_neurons(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The total number of spikes.
    pub fn n_spikes(&self) -> usize {
        self.times.len()
    }

    /// The sorted spike times of neuron `i` (ms).
    pub fn train(&self, i: usize) -> &[f64] {
        &self.times[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// A population's description and its spikes.
#[derive(Debug, Clone)]
pub struct PopulationSpikeData {
    /// From `summary.json`.
    pub info: PopulationInfo,
    /// The merged spikes of all ranks.
    pub trains: SpikeTrains,
}

/// Whether `f` is NEST spike recorder output: an ASCII file (`record_to:
/// "ascii"`, `*.dat`) or the recorder's events saved by NumPy (`*.npz`
/// with arrays `senders` and `times`).
fn is_nest_ascii(f: &Path) -> bool {
    f.extension().is_some_and(|e| e == "dat" || e == "npz")
}

/// The arrays `senders` and `times` of a NEST recorder's events saved with
/// `numpy.savez` (or `savez_compressed`): 1-D, little-endian integers and
/// floats of the same length, at most `max` of them.
fn read_npz_events(path: &Path, max: u64) -> Result<(Vec<u64>, Vec<f64>), AnalyzeError> {
    let bad = |m: String| AnalyzeError::input(path, m);
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not an .npz (zip) archive: {e}")))?;
    let mut array = |name: &str| -> Result<(String, Vec<u8>), AnalyzeError> {
        let mut entry = zip
            .by_name(&format!("{name}.npy"))
            .map_err(|_| bad(format!("no array {name} (save the recorder's events with numpy.savez(path, senders=..., times=...))")))?;
        use std::io::Read;
        let mut magic = [0u8; 8];
        entry
            .read_exact(&mut magic)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if &magic[..6] != b"\x93NUMPY" {
            return Err(bad(format!("{name}: not a .npy array")));
        }
        let header_len = if magic[6] == 1 {
            let mut l = [0u8; 2];
            entry
                .read_exact(&mut l)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            u16::from_le_bytes(l) as usize
        } else {
            let mut l = [0u8; 4];
            entry
                .read_exact(&mut l)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            u32::from_le_bytes(l) as usize
        };
        if header_len > 1 << 16 {
            return Err(bad(format!("{name}: header of {header_len} bytes")));
        }
        let mut header = vec![0u8; header_len];
        entry
            .read_exact(&mut header)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        let header = String::from_utf8_lossy(&header).into_owned();
        let field = |key: &str| -> Option<String> {
            let rest = &header[header.find(&format!("'{key}':"))? + key.len() + 3..];
            Some(rest.trim_start().to_string())
        };
        let descr = field("descr")
            .and_then(|r| {
                r.strip_prefix('\'')
                    .and_then(|r| r.split('\'').next())
                    .map(String::from)
            })
            .ok_or_else(|| bad(format!("{name}: no descr in the .npy header")))?;
        let shape = field("shape")
            .and_then(|r| {
                let inner = r.strip_prefix('(')?.split(')').next()?.to_string();
                let dims: Vec<&str> = inner
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .collect();
                (dims.len() == 1)
                    .then(|| dims[0].parse::<u64>().ok())
                    .flatten()
            })
            .ok_or_else(|| bad(format!("{name}: not a 1-D array")))?;
        if shape > max {
            return Err(bad(format!(
                "{name}: {shape} events, more than the {max} that fit in memory"
            )));
        }
        let width = match descr.as_str() {
            "<i8" | "<u8" | "<f8" => 8,
            "<i4" | "<u4" | "<f4" => 4,
            d => {
                return Err(bad(format!(
                    "{name}: dtype {d} (expected little-endian int or float)"
                )))
            }
        };
        let mut data = vec![0u8; shape as usize * width];
        entry
            .read_exact(&mut data)
            .map_err(|e| bad(format!("{name}: truncated ({e})")))?;
        Ok((descr, data))
    };
    let (sd, sb) = array("senders")?;
    let (td, tb) = array("times")?;
    let senders: Vec<u64> = match sd.as_str() {
        "<i8" | "<u8" => sb
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect(),
        "<i4" | "<u4" => sb
            .chunks_exact(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w.copy_from_slice(c);
                u32::from_le_bytes(w) as u64
            })
            .collect(),
        d => return Err(bad(format!("senders: dtype {d} (expected integers)"))),
    };
    let times: Vec<f64> = match td.as_str() {
        "<f8" => tb
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                f64::from_le_bytes(w)
            })
            .collect(),
        "<f4" => tb
            .chunks_exact(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w.copy_from_slice(c);
                f32::from_le_bytes(w) as f64
            })
            .collect(),
        d => return Err(bad(format!("times: dtype {d} (expected floats)"))),
    };
    if senders.len() != times.len() {
        return Err(bad(format!(
            "{} senders but {} times",
            senders.len(),
            times.len()
        )));
    }
    Ok((senders, times))
}

/// Calls `f(population, population-local id, time ms)` for every spike of
/// NEST ASCII spike recorder file `path` (`#` comment lines, a header line
/// naming the tab-separated columns, which must include `sender` and
/// `time_ms`, then one spike per line); senders are mapped to populations
/// by `summary`'s `first_id` and `size` (NEST node ids). A sender outside
/// every population, a malformed line or a non-finite time is an error
/// naming the file and line.
fn for_each_nest_spike(
    path: &Path,
    summary: &RunSummary,
    max_events: u64,
    mut f: impl FnMut(usize, u64, f64) -> Result<(), AnalyzeError>,
) -> Result<(), AnalyzeError> {
    use std::io::BufRead;
    let mut ranges: Vec<(u64, u64, usize)> = summary
        .populations
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let first = p.first_id.unwrap_or(0);
            (first, first.saturating_add(p.size), i)
        })
        .collect();
    ranges.sort_unstable();
    let locate = |sender: u64| -> Option<(usize, u64)> {
        let k = ranges.partition_point(|r| r.0 <= sender).checked_sub(1)?;
        let (first, end, p) = ranges[k];
        (sender < end).then_some((p, sender - first))
    };
    if path.extension().is_some_and(|e| e == "npz") {
        let (senders, times) = read_npz_events(path, max_events)?;
        for (k, (&s, &t)) in senders.iter().zip(&times).enumerate() {
            if !t.is_finite() {
                return Err(AnalyzeError::input(
                    path,
                    format!("event {k}: non-finite time {t}"),
                ));
            }
            let (p, id) = locate(s).ok_or_else(|| {
                AnalyzeError::input(
                    path,
                    format!("event {k}: sender {s} in no population of summary.json"),
                )
            })?;
            f(p, id, t)?;
        }
        return Ok(());
    }
    let file = std::fs::File::open(path)
        .map_err(|e| AnalyzeError::input(path, format!("cannot read: {e}")))?;
    let mut cols: Option<(usize, usize)> = None;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| AnalyzeError::input(path, format!("line {}: {e}", n + 1)))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some((cs, ct)) = cols else {
            let find = |name: &str| fields.iter().position(|&c| c == name);
            match (find("sender"), find("time_ms")) {
                (Some(s), Some(t)) => cols = Some((s, t)),
                _ => {
                    return Err(AnalyzeError::input(
                        path,
                        format!(
                            "line {}: columns {line:?}: a NEST spike recorder file needs sender and time_ms (record with time_in_steps = False)",
                            n + 1
                        ),
                    ))
                }
            }
            continue;
        };
        let bad =
            |what: &str| AnalyzeError::input(path, format!("line {}: {what}: {line:?}", n + 1));
        let sender: u64 = fields
            .get(cs)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no sender id"))?;
        let t: f64 = fields
            .get(ct)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("no spike time"))?;
        if !t.is_finite() {
            return Err(bad("non-finite spike time"));
        }
        match locate(sender) {
            Some((p, id)) => f(p, id, t)?,
            None => return Err(bad("sender in no population of summary.json")),
        }
    }
    if cols.is_none() {
        return Err(AnalyzeError::input(
            path,
            "no header line (sender, time_ms)",
        ));
    }
    Ok(())
}

/// A loaded run directory.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: RunSummary,
    /// The recorded populations (those with a group in the spike files), in
    /// `summary.json` order.
    pub populations: Vec<PopulationSpikeData>,
    /// Populations of `summary.json` that no spike file records.
    pub unrecorded: Vec<String>,
    /// The spike files read.
    pub spike_files: Vec<PathBuf>,
}

/// The neurons of all populations of a summary.
pub fn total_neurons(summary: &RunSummary) -> u64 {
    summary
        .populations
        .iter()
        .fold(0u64, |a, p| a.saturating_add(p.size))
}

/// Read and validate `dir/summary.json`: times finite, non-negative, at
/// most [`MAX_RUN_MS`] and in order; population names unique and sizes at
/// most [`MAX_POPULATION_SIZE`], with the memory for their neurons
/// available; spike files inside the run directory. Errors name the file
/// and the field.
pub fn read_summary(dir: &Path) -> Result<RunSummary, AnalyzeError> {
    if !dir.is_dir() {
        let msg = if dir.exists() {
            "not a directory"
        } else {
            "run directory does not exist"
        };
        return Err(AnalyzeError::input(dir, msg));
    }
    let path = dir.join("summary.json");
    if let Ok(md) = std::fs::metadata(&path) {
        if md.len() > MAX_SUMMARY_BYTES {
            return Err(AnalyzeError::input(
                &path,
                format!(
                    "{} bytes: too large for a run summary (at most {MAX_SUMMARY_BYTES} bytes)",
                    md.len()
                ),
            ));
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let msg = if e.kind() == std::io::ErrorKind::NotFound {
            "missing (is this a run directory written by snn-sim?)".to_string()
        } else {
            format!("cannot read: {e}")
        };
        AnalyzeError::input(&path, msg)
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let summary: RunSummary = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field.is_empty() || field == "." {
            AnalyzeError::input(&path, format!("invalid: {inner}"))
        } else {
            AnalyzeError::input(&path, format!("{field}: {inner}"))
        }
    })?;
    let bad = |m: String| Err(AnalyzeError::input(&path, m));
    for (field, t) in [
        ("t_start_ms", summary.t_start_ms),
        ("t_stop_ms", summary.t_stop_ms),
    ] {
        if !(t.is_finite() && t >= 0.0) {
            return bad(format!(
                "{field} = {t}: must be a finite, non-negative time in ms"
            ));
        }
        if t > MAX_RUN_MS {
            return bad(format!(
                "{field} = {t}: later than {MAX_RUN_MS:e} ms (about 116 days of biological time), no simulation runs that long"
            ));
        }
    }
    if let Some(dt) = summary.dt_ms {
        if !(dt.is_finite() && dt > 0.0) {
            return bad(format!("dt_ms = {dt}: must be a positive number of ms"));
        }
    }
    if summary.t_stop_ms <= summary.t_start_ms {
        return bad(format!(
            "t_start_ms = {} and t_stop_ms = {}: need t_start_ms < t_stop_ms",
            summary.t_start_ms, summary.t_stop_ms
        ));
    }
    for (i, p) in summary.populations.iter().enumerate() {
        if summary.populations[..i].iter().any(|q| q.name == p.name) {
            return bad(format!(
                "populations[{i}].name: population {:?} listed twice",
                p.name
            ));
        }
        if p.size > MAX_POPULATION_SIZE || usize::try_from(p.size).is_err() {
            return bad(format!(
                "populations[{i}].size: {} is more than a population can hold ({MAX_POPULATION_SIZE} neurons)",
                p.size
            ));
        }
    }
    let neurons = total_neurons(&summary);
    check_fits(
        neurons.saturating_mul(BYTES_PER_NEURON),
        &format!("populations: analysing {neurons} neurons (the sum of populations[].size)"),
    )
    .map_err(|m| AnalyzeError::input(&path, m))?;
    if let Some(files) = &summary.spike_files {
        for (i, f) in files.iter().enumerate() {
            let fp = Path::new(f);
            if fp.is_absolute()
                || fp
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return bad(format!(
                    "spike_files[{i}]: {f:?} must be a file name inside the run directory"
                ));
            }
        }
    }
    Ok(summary)
}

/// The spike files of a run: those listed in `summary.json`, else all
/// `spikes-rank-*.h5` files (which must then number `n_ranks`, if given).
fn spike_files(dir: &Path, summary: &RunSummary) -> Result<Vec<PathBuf>, AnalyzeError> {
    let summary_path = dir.join("summary.json");
    let files = if let Some(list) = &summary.spike_files {
        let files: Vec<PathBuf> = list.iter().map(|f| dir.join(f)).collect();
        for f in &files {
            if !f.is_file() {
                return Err(AnalyzeError::input(
                    f,
                    "missing (listed in summary.json spike_files)",
                ));
            }
        }
        files
    } else {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| AnalyzeError::input(dir, format!("cannot list: {e}")))?;
        let mut files = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| AnalyzeError::input(dir, format!("cannot list: {e}")))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("spikes-rank-") && name.ends_with(".h5"))
                || name.ends_with(".dat")
                || name.ends_with(".npz")
            {
                files.push(entry.path());
            }
        }
        files.sort();
        let n_dat = files.iter().filter(|f| is_nest_ascii(f)).count();
        if n_dat > 0 && n_dat < files.len() {
            return Err(AnalyzeError::input(
                dir,
                "holds both spikes-rank-*.h5 (snn) and *.dat / *.npz (NEST) spike files: one run per directory",
            ));
        }

        if let Some(n) = summary.n_ranks {
            if files.len() != n {
                return Err(AnalyzeError::input(
                    dir,
                    format!(
                        "found {} spikes-rank-*.h5 files but summary.json says n_ranks = {n}",
                        files.len()
                    ),
                ));
            }
        }
        files
    };
    if files.is_empty() {
        return Err(AnalyzeError::input(
            &summary_path,
            "no spike files (spike_files is empty and no spikes-rank-*.h5 or NEST *.dat in the run directory)",
        ));
    }
    if files.iter().any(|f| is_nest_ascii(f)) {
        for (i, p) in summary.populations.iter().enumerate() {
            if p.first_id.is_none() {
                return Err(AnalyzeError::input(
                    &summary_path,
                    format!(
                        "populations[{i}].first_id is needed to read NEST output (.dat, .npz; the NEST node id of {}'s first neuron)",
                        p.name
                    ),
                ));
            }
        }
    }
    Ok(files)
}

/// A run directory opened for reading one population at a time: its
/// `summary.json`, its spike files and how many spikes each population has
/// in them (from the datasets' sizes; nothing read yet).
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The run directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: RunSummary,
    /// The spike files.
    pub spike_files: Vec<PathBuf>,
    /// Per population of `summary.json`: its spikes in all files, `None`
    /// when no file records it.
    pub spikes: Vec<Option<u64>>,
    /// Per population: the files (indices into `spike_files`) that hold
    /// spikes of it, the only ones [`RunFiles::population`] reads.
    files_with_spikes: Vec<Vec<usize>>,
    /// The most spikes that fit in the memory available (besides the
    /// per-neuron data of the whole run).
    pub max_spikes: u64,
    /// NEST output (`.dat`, `.npz`), read once when it is opened: each
    /// population's spikes in file order, kept where they take at most
    /// half of `max_spikes` (else each population reads the files again).
    nest_spikes: Option<std::sync::Arc<Vec<NestSpikes>>>,
}

/// One population's spikes of NEST output: (population-local id, time ms)
/// in file order.
type NestSpikes = Vec<(u64, f64)>;

/// Open a run directory: `summary.json` and the list of the spike files'
/// populations and sizes. A population that `summary.json` does not name
/// is an error naming the file.
pub fn open_run(dir: &Path) -> Result<RunFiles, AnalyzeError> {
    let summary = read_summary(dir)?;
    let files = spike_files(dir, &summary)?;
    let max_spikes = available_bytes().map_or(u64::MAX, |(m, _)| {
        m.saturating_sub(total_neurons(&summary).saturating_mul(BYTES_PER_NEURON)) / BYTES_PER_SPIKE
    });
    let mut spikes: Vec<Option<u64>> = vec![None; summary.populations.len()];
    let mut files_with_spikes = vec![Vec::new(); summary.populations.len()];
    let n_pops = summary.populations.len();
    let mut nest: Option<Vec<Vec<(u64, f64)>>> = Some(vec![Vec::new(); n_pops]);
    let mut kept = 0u64;
    for (k, f) in files.iter().enumerate() {
        if is_nest_ascii(f) {
            let mut counts = vec![0u64; n_pops];
            for_each_nest_spike(f, &summary, max_spikes, |p, id, t| {
                counts[p] += 1;
                kept += 1;
                if kept > max_spikes / 2 {
                    nest = None;
                }
                if let Some(n) = nest.as_mut() {
                    n[p].push((id, t));
                }
                Ok(())
            })?;
            for (p, n) in counts.into_iter().enumerate() {
                spikes[p] = Some(spikes[p].unwrap_or(0).saturating_add(n));
                if n > 0 {
                    files_with_spikes[p].push(k);
                }
            }
            continue;
        }
        for (name, n) in snn_formats::sonata::spike_counts(f)? {
            let Some(p) = summary.populations.iter().position(|q| q.name == name) else {
                return Err(AnalyzeError::input(
                    f,
                    format!("/spikes/{name}: population not in summary.json"),
                ));
            };
            spikes[p] = Some(spikes[p].unwrap_or(0).saturating_add(n));
            if n > 0 {
                files_with_spikes[p].push(k);
            }
        }
    }
    let any_nest = files.iter().any(|f| is_nest_ascii(f));
    Ok(RunFiles {
        dir: dir.to_path_buf(),
        summary,
        spike_files: files,
        spikes,
        files_with_spikes,
        max_spikes,
        nest_spikes: nest.filter(|_| any_nest).map(std::sync::Arc::new),
    })
}

impl RunFiles {
    /// Population `p`'s spikes merged over the spike files that hold some
    /// (`None` when no file records it), refusing more than `max_spikes` before reading
    /// them. Every node id is checked against the population's size and
    /// every time must be finite.
    pub fn population(
        &self,
        p: usize,
        max_spikes: u64,
    ) -> Result<Option<PopulationSpikeData>, AnalyzeError> {
        if self.spikes[p].is_none() {
            return Ok(None);
        }
        let info = &self.summary.populations[p];
        let size = info.size;
        let mut read = 0u64;
        let mut spikes: Vec<(u64, f64)> = Vec::new();
        if let Some(nest) = &self.nest_spikes {
            let kept = &nest[p];
            if kept.len() as u64 > max_spikes {
                return Err(AnalyzeError::input(
                    &self.dir,
                    format!(
                        "{} spikes of {}: more than the {max_spikes} that fit in memory",
                        kept.len(),
                        info.name
                    ),
                ));
            }
            return Ok(Some(PopulationSpikeData {
                info: info.clone(),
                trains: SpikeTrains::from_spikes(size as usize, kept.iter().copied()),
            }));
        }
        for f in self.files_with_spikes[p]
            .iter()
            .map(|&k| &self.spike_files[k])
        {
            if is_nest_ascii(f) {
                for_each_nest_spike(f, &self.summary, max_spikes, |q, id, t| {
                    if q == p {
                        read += 1;
                        if read > max_spikes {
                            return Err(AnalyzeError::input(
                                f,
                                format!(
                                    "more than {max_spikes} spikes of {}: more than fit in memory",
                                    info.name
                                ),
                            ));
                        }
                        spikes.push((id, t));
                    }
                    Ok(())
                })?;
                continue;
            }
            let budget = max_spikes.saturating_sub(read);
            let Some(pop) = snn_formats::sonata::read_population_spikes(f, &info.name, budget)?
            else {
                continue;
            };
            read = read.saturating_add(pop.node_ids.len() as u64);
            spikes.reserve(pop.node_ids.len());
            for (&id, &t) in pop.node_ids.iter().zip(&pop.timestamps_ms) {
                if id >= size {
                    return Err(AnalyzeError::input(
                        f,
                        format!(
                            "/spikes/{}/node_ids: node id {id} >= population size {size}",
                            pop.name
                        ),
                    ));
                }
                if !t.is_finite() {
                    return Err(AnalyzeError::input(
                        f,
                        format!("/spikes/{}/timestamps: non-finite spike time {t}", pop.name),
                    ));
                }
                spikes.push((id, t));
            }
        }
        Ok(Some(PopulationSpikeData {
            info: info.clone(),
            trains: SpikeTrains::from_spikes(size as usize, spikes),
        }))
    }

    /// The populations of `summary.json` that no spike file records.
    pub fn unrecorded(&self) -> Vec<String> {
        self.summary
            .populations
            .iter()
            .zip(&self.spikes)
            .filter(|(_, n)| n.is_none())
            .map(|(p, _)| p.name.clone())
            .collect()
    }
}

/// Load a run directory: `summary.json` and all spike files, merged over
/// ranks, every population at once (see [`RunFiles::population`] for the
/// checks; spikes beyond what fits in the memory available are refused
/// before they are read).
pub fn load_run(dir: &Path) -> Result<Run, AnalyzeError> {
    let files = open_run(dir)?;
    let mut populations = Vec::new();
    let mut read = 0u64;
    for p in 0..files.summary.populations.len() {
        if let Some(pop) = files.population(p, files.max_spikes.saturating_sub(read))? {
            read = read.saturating_add(pop.trains.n_spikes() as u64);
            populations.push(pop);
        }
    }
    let unrecorded = files.unrecorded();
    Ok(Run {
        dir: files.dir,
        summary: files.summary,
        populations,
        unrecorded,
        spike_files: files.spike_files,
    })
}
