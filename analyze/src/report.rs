//! `snn-analyze RUN_DIR -o REPORT_DIR`: statistics of a run written to
//! `stats.json`, `stats.csv` and PNG plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use snn_formats::output::Staging;

use crate::error::AnalyzeError;
use crate::plots::{self, RasterPopulation};
use crate::run::{load_run, read_summary, Run, RunSummary};
use crate::sampling::{sample_indices, stream_rng};
use crate::stats::{population_stats, PopulationStats, PopulationSummary, StatsOptions, Window};

/// Length of the raster window (ms) when the analysis window is longer.
pub const RASTER_MS: f64 = 200.0;

/// Options of [`analyze_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeOptions {
    /// The run directory (`summary.json`, `spikes-rank-*.h5`).
    pub run_dir: PathBuf,
    /// The report directory to create.
    pub report_dir: PathBuf,
    /// Start of the analysis window (ms); default: the run's start.
    pub t_start: Option<f64>,
    /// End of the analysis window (ms); default: the run's end.
    pub t_stop: Option<f64>,
    /// Replace an existing, non-empty report directory.
    pub force: bool,
    /// Statistics options (bin width, pairs, seed).
    pub stats: StatsOptions,
    /// Neurons per population in the raster plot.
    pub raster_neurons: usize,
}

/// The content of `stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsFile {
    /// The analysed run directory.
    pub run_dir: String,
    /// Start of the analysis window (ms).
    pub t_start_ms: f64,
    /// End of the analysis window (ms, exclusive).
    pub t_stop_ms: f64,
    /// Bin width (ms) of the Fano factor and correlations.
    pub bin_ms: f64,
    /// Pairs requested per population for the correlation.
    pub pairs: usize,
    /// Seed of the neuron and pair sampling.
    pub seed: u64,
    /// Number of spike files merged.
    pub spike_files: usize,
    /// Per-population statistics, in model order.
    pub populations: Vec<PopulationSummary>,
    /// Populations of the model without recorded spikes.
    pub unrecorded_populations: Vec<String>,
}

/// What [`analyze_run`] produced.
#[derive(Debug, Clone)]
pub struct AnalysisReport {
    /// The statistics as written to `stats.json`.
    pub stats: StatsFile,
    /// The report directory.
    pub report_dir: PathBuf,
    /// The files written (names inside the report directory).
    pub files: Vec<String>,
    /// Whether the plots have text (a font was found).
    pub plots_have_text: bool,
}

/// Check the statistics options.
pub fn check_stats_options(o: &StatsOptions) -> Result<(), AnalyzeError> {
    if !(o.bin_ms.is_finite() && o.bin_ms > 0.0) {
        return Err(AnalyzeError::Usage(format!(
            "--bin-ms {}: must be a positive number of ms",
            o.bin_ms
        )));
    }
    Ok(())
}

/// The analysis window from the options and the run's simulated time.
pub fn resolve_window(
    summary: &RunSummary,
    summary_path: &Path,
    t_start: Option<f64>,
    t_stop: Option<f64>,
) -> Result<Window, AnalyzeError> {
    let start = t_start.unwrap_or(summary.t_start_ms);
    let stop = t_stop.unwrap_or(summary.t_stop_ms);
    let sim = format!(
        "the run covers [{}, {}) ms ({})",
        summary.t_start_ms,
        summary.t_stop_ms,
        summary_path.display()
    );
    if !start.is_finite() || !stop.is_finite() {
        return Err(AnalyzeError::Usage(format!(
            "--t-start/--t-stop must be finite (got {start}, {stop})"
        )));
    }
    if start < summary.t_start_ms - 1e-9 {
        return Err(AnalyzeError::Usage(format!(
            "--t-start {start} ms is before the run's start: {sim}"
        )));
    }
    if stop > summary.t_stop_ms + 1e-9 {
        return Err(AnalyzeError::Usage(format!(
            "--t-stop {stop} ms is after the run's end: {sim}"
        )));
    }
    if start >= stop {
        return Err(AnalyzeError::Usage(format!(
            "empty analysis window: start {start} ms is not before stop {stop} ms; {sim}"
        )));
    }
    Ok(Window {
        t_start: start,
        t_stop: stop,
    })
}

/// Per-population statistics of a loaded run in a window, in model order.
pub fn run_stats(run: &Run, w: Window, opts: &StatsOptions) -> Vec<PopulationStats> {
    run.populations
        .iter()
        .map(|p| population_stats(&p.info.name, &p.trains, w, opts))
        .collect()
}

/// Refuse a report directory that is the run directory or contains it
/// (`--force` would delete the run).
fn check_not_overlapping(run_dir: &Path, report_dir: &Path) -> Result<(), AnalyzeError> {
    let Ok(run) = run_dir.canonicalize() else {
        return Ok(());
    };
    let report = match report_dir.canonicalize() {
        Ok(p) => p,
        Err(_) => {
            let parent = match report_dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            match (parent.canonicalize(), report_dir.file_name()) {
                (Ok(p), Some(name)) => p.join(name),
                _ => return Ok(()),
            }
        }
    };
    if run.starts_with(&report) {
        return Err(AnalyzeError::input(
            report_dir,
            format!(
                "report directory would replace the run directory {}",
                run_dir.display()
            ),
        ));
    }
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// `stats.csv`: one row per population, empty cells for undefined values.
pub fn stats_csv(pops: &[PopulationSummary]) -> String {
    let mut s = String::from(
        "population,neurons,spikes,silent_neurons,rate_mean_hz,rate_sd_hz,cv_isi_mean,cv_isi_neurons,\
         fano_factor,correlation_mean,correlation_pairs,pairs_sampled\n",
    );
    for p in pops {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            p.name,
            p.neurons,
            p.spikes,
            p.silent_neurons,
            opt(p.rate_mean_hz),
            opt(p.rate_sd_hz),
            opt(p.cv_isi_mean),
            p.cv_isi_neurons,
            opt(p.fano_factor),
            opt(p.correlation_mean),
            p.correlation_pairs,
            p.pairs_sampled
        );
    }
    s
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// The per-population table printed by `snn-analyze`.
pub fn format_table(pops: &[PopulationSummary]) -> String {
    let mut s = format!(
        "{:<12} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8} {:>7} {:>8} {:>6}\n",
        "population",
        "neurons",
        "spikes",
        "rate_Hz",
        "sd_Hz",
        "cv_isi",
        "cv_n",
        "fano",
        "corr",
        "pairs"
    );
    for p in pops {
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8} {:>7} {:>8} {:>6}",
            p.name,
            p.neurons,
            p.spikes,
            fmt_opt(p.rate_mean_hz, 3),
            fmt_opt(p.rate_sd_hz, 3),
            fmt_opt(p.cv_isi_mean, 3),
            p.cv_isi_neurons,
            fmt_opt(p.fano_factor, 3),
            fmt_opt(p.correlation_mean, 4),
            p.correlation_pairs
        );
    }
    s
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> Result<(), AnalyzeError> {
    let p = dir.join(name);
    std::fs::write(&p, content).map_err(|e| AnalyzeError::io(&p, "write", e))
}

/// Analyse a run directory and write the report directory (through a
/// staging directory renamed into place at the end; an existing non-empty
/// report directory is refused unless `force`).
pub fn analyze_run(o: &AnalyzeOptions) -> Result<AnalysisReport, AnalyzeError> {
    check_stats_options(&o.stats)?;
    check_not_overlapping(&o.run_dir, &o.report_dir)?;
    // Cheap checks of the input before anything is created.
    read_summary(&o.run_dir)?;
    let staging = Staging::new(&o.report_dir, o.force)?;
    let run = load_run(&o.run_dir)?;
    let w = resolve_window(
        &run.summary,
        &o.run_dir.join("summary.json"),
        o.t_start,
        o.t_stop,
    )?;
    let stats = run_stats(&run, w, &o.stats);
    let file = StatsFile {
        run_dir: o.run_dir.display().to_string(),
        t_start_ms: w.t_start,
        t_stop_ms: w.t_stop,
        bin_ms: o.stats.bin_ms,
        pairs: o.stats.pairs,
        seed: o.stats.seed,
        spike_files: run.spike_files.len(),
        populations: stats.iter().map(|s| s.summary.clone()).collect(),
        unrecorded_populations: run.unrecorded.clone(),
    };
    let dir = staging.path().to_path_buf();
    let mut json =
        serde_json::to_string_pretty(&file).map_err(|e| AnalyzeError::Usage(e.to_string()))?;
    json.push('\n');
    write_file(&dir, "stats.json", json.as_bytes())?;
    write_file(&dir, "stats.csv", stats_csv(&file.populations).as_bytes())?;

    let text = plots::init_font().is_some();
    let rw = Window {
        t_start: w.t_start,
        t_stop: w.t_stop.min(w.t_start + RASTER_MS),
    };
    let raster_pops: Vec<RasterPopulation> = run
        .populations
        .iter()
        .map(|p| {
            let mut rng = stream_rng(o.stats.seed ^ 0x5241_5354, &p.info.name);
            let ids = sample_indices(p.info.size, o.raster_neurons, &mut rng);
            RasterPopulation {
                name: p.info.name.clone(),
                trains: ids
                    .iter()
                    .map(|&i| rw.slice(p.trains.train(i as usize)).to_vec())
                    .collect(),
            }
        })
        .collect();
    plots::raster(&dir.join("raster.png"), &raster_pops, rw, text)?;
    let rates: Vec<(String, Vec<f64>)> = stats
        .iter()
        .map(|s| (s.summary.name.clone(), s.rates.clone()))
        .collect();
    plots::distributions(
        &dir.join("rates.png"),
        "Firing rate per neuron",
        "rate (Hz)",
        &rates,
        1.0,
        Some(1000.0 / w.duration_ms()),
        text,
    )?;
    let cvs: Vec<(String, Vec<f64>)> = stats
        .iter()
        .map(|s| (s.summary.name.clone(), s.cvs.clone()))
        .collect();
    plots::distributions(
        &dir.join("cv.png"),
        "CV of ISI per neuron",
        "CV ISI",
        &cvs,
        1.5,
        None,
        text,
    )?;
    let report_dir = staging.commit()?;
    Ok(AnalysisReport {
        stats: file,
        report_dir,
        files: [
            "stats.json",
            "stats.csv",
            "raster.png",
            "rates.png",
            "cv.png",
        ]
        .map(String::from)
        .to_vec(),
        plots_have_text: text,
    })
}
