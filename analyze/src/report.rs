//! `snn-analyze RUN_DIR -o REPORT_DIR`: statistics of a run written to
//! `stats.json`, `stats.csv` and PNG plots.
//!
//! The run is read one population at a time ([`RunFiles::population`]): its
//! spikes from every rank's file are analysed and dropped before the next
//! population is read, so the memory needed is the largest population's
//! spikes, not the run's (with a progress bar on a terminal).
//!
//! Every run: `stats.json`, `stats.csv` (one row per population),
//! `correlations.csv` (the correlation of every sampled pair),
//! `raster.png` (the first [`RASTER_MS`] of the window), `rates.png` and
//! `rates_boxplot.png` (per-neuron rates), `cv.png`, `correlations.png`
//! (the sampled pairs' correlations), each titled with the run's name; runs
//! with at most [`MAX_LINE_POPULATIONS`] populations also `psth.png` (the
//! population rate in bins of `--bin-ms`) and `spectrum.png` (its power
//! spectrum, [`crate::spectrum`]). Runs with areas (see [`crate::areas`])
//! also get `areas` in `stats.json`, `areas.csv`, `rates_by_area.png`,
//! `raster_areas.png` and `rasters/AREA.png` (the raster window of
//! `raster.png`, `--raster-neurons` sampled neurons of every population;
//! `raster_areas.png` shows an evenly spaced subset of that sample, as many
//! rows as fit its height).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use snn_formats::output::Staging;

use crate::areas::{self, AreaSummary};
use crate::error::AnalyzeError;
use crate::limits::{
    check_fits, BYTES_PER_BIN, MAX_BINS, MAX_PAIRS, MAX_PAIR_BINS, MAX_RASTER_NEURONS,
};
use crate::plots::{self, RasterArea, RasterPopulation};
use crate::spectrum;

/// Runs with at most this many recorded populations get `psth.png` and
/// `spectrum.png` (one panel per population).
pub const MAX_LINE_POPULATIONS: usize = 16;
use crate::run::{
    open_run, read_summary, PopulationInfo, PopulationSpikeData, Run, RunFiles, RunSummary,
};
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
    /// Neurons per population in the rasters (`raster.png`: on average,
    /// in proportion to the populations' sizes; the area rasters: each).
    pub raster_neurons: usize,
    /// Also write the plots as SVG (`raster.svg` ...).
    pub svg: bool,
    /// Show a progress bar on stderr (a terminal) while reading.
    pub progress: bool,
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
    /// Bin width (ms) of the population Fano factor and the correlations.
    pub bin_ms: f64,
    /// Pairs requested per population for the correlation.
    pub pairs: usize,
    /// Seed of the neuron and pair sampling.
    pub seed: u64,
    /// Number of spike files merged.
    pub spike_files: usize,
    /// Per-population statistics, in model order.
    pub populations: Vec<PopulationSummary>,
    /// Per-area statistics, in model order (runs with areas only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<AreaSummary>>,
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

/// Check the statistics options on their own (see [`check_bins`] for the
/// bin count of a window).
pub fn check_stats_options(o: &StatsOptions) -> Result<(), AnalyzeError> {
    if !(o.bin_ms.is_finite() && o.bin_ms > 0.0) {
        return Err(AnalyzeError::Usage(format!(
            "--bin-ms {}: must be a positive number of ms",
            o.bin_ms
        )));
    }
    if o.pairs > MAX_PAIRS {
        return Err(AnalyzeError::Usage(format!(
            "--pairs {}: more than the {MAX_PAIRS} pairs per population the correlation may sample",
            o.pairs
        )));
    }
    Ok(())
}

/// Check that window `w` cut into bins of `o.bin_ms` can be analysed:
/// at most [`MAX_BINS`] bins, their counts within the memory available,
/// and (sampled pairs x bins) at most [`MAX_PAIR_BINS`], the pairs of a
/// population being at most all of its pairs (`sizes`: the population
/// sizes). `whole_run` says that the window is the run's time from
/// `summary_path` (no `--t-start`/`--t-stop`), which the message then
/// names.
pub fn check_bins(
    w: Window,
    o: &StatsOptions,
    sizes: &[u64],
    summary_path: &Path,
    whole_run: bool,
) -> Result<(), AnalyzeError> {
    let bins = (w.duration_ms() / o.bin_ms + 1e-9).floor();
    let window = if whole_run {
        format!(
            "the window [{}, {}) ms (the run's time in {})",
            w.t_start,
            w.t_stop,
            summary_path.display()
        )
    } else {
        format!("the window [{}, {}) ms", w.t_start, w.t_stop)
    };
    if !bins.is_finite() || bins > MAX_BINS as f64 {
        return Err(AnalyzeError::Usage(format!(
            "--bin-ms {}: {window} holds {bins:.0} bins, more than the {MAX_BINS} the analysis allows; use --bin-ms {} or more, or a shorter window (--t-start/--t-stop)",
            o.bin_ms,
            w.duration_ms() / MAX_BINS as f64
        )));
    }
    check_fits(
        (bins as u64).saturating_mul(BYTES_PER_BIN),
        &format!(
            "--bin-ms {}: counting the {bins:.0} bins of {window}",
            o.bin_ms
        ),
    )
    .map_err(|m| AnalyzeError::Usage(format!("{m}; use a larger --bin-ms")))?;
    let most_pairs = sizes
        .iter()
        .map(|&n| {
            let all = n as f64 * (n as f64 - 1.0) / 2.0;
            all.max(0.0).min(o.pairs as f64)
        })
        .fold(0.0f64, f64::max);
    if most_pairs * bins > MAX_PAIR_BINS as f64 {
        return Err(AnalyzeError::Usage(format!(
            "--pairs {} with --bin-ms {}: {most_pairs:.0} pairs x {bins:.0} bins of {window} is more than the {MAX_PAIR_BINS} steps the correlation may take; use fewer --pairs or a larger --bin-ms",
            o.pairs, o.bin_ms
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
    if snn_formats::output::replaces(report_dir, run_dir) {
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
         fano_factor,fano_population,correlation_mean,correlation_pairs,pairs_sampled\n",
    );
    for p in pops {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            p.name,
            p.neurons,
            p.spikes,
            p.silent_neurons,
            opt(p.rate_mean_hz),
            opt(p.rate_sd_hz),
            opt(p.cv_isi_mean),
            p.cv_isi_neurons,
            opt(p.fano_factor),
            opt(p.fano_population),
            opt(p.correlation_mean),
            p.correlation_pairs,
            p.pairs_sampled
        );
    }
    s
}

/// `correlations.csv`: every sampled pair with a defined correlation, per
/// population (population-local neuron indices, `a < b`), so that the
/// correlations can be recomputed elsewhere on the very same pairs.
pub fn correlations_csv(stats: &[PopulationStats]) -> String {
    let mut s = String::from("population,neuron_a,neuron_b,correlation\n");
    for p in stats {
        for (&(a, b), r) in p.correlation_pairs.iter().zip(&p.correlations) {
            let _ = writeln!(s, "{},{a},{b},{r}", p.summary.name);
        }
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
        "{:<12} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>6}\n",
        "population",
        "neurons",
        "spikes",
        "rate_Hz",
        "sd_Hz",
        "cv_isi",
        "cv_n",
        "fano",
        "fano_pop",
        "corr",
        "pairs"
    );
    for p in pops {
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>10} {:>9} {:>9} {:>7} {:>8} {:>7} {:>8} {:>8} {:>6}",
            p.name,
            p.neurons,
            p.spikes,
            fmt_opt(p.rate_mean_hz, 3),
            fmt_opt(p.rate_sd_hz, 3),
            fmt_opt(p.cv_isi_mean, 3),
            p.cv_isi_neurons,
            fmt_opt(p.fano_factor, 3),
            fmt_opt(p.fano_population, 3),
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
    if o.raster_neurons > MAX_RASTER_NEURONS {
        return Err(AnalyzeError::Usage(format!(
            "--raster-neurons {}: more than the {MAX_RASTER_NEURONS} neurons per population a raster may show",
            o.raster_neurons
        )));
    }
    check_not_overlapping(&o.run_dir, &o.report_dir)?;
    // Cheap checks of the input and the options before anything is created.
    let summary_path = o.run_dir.join("summary.json");
    let summary = read_summary(&o.run_dir)?;
    let w = resolve_window(&summary, &summary_path, o.t_start, o.t_stop)?;
    let sizes: Vec<u64> = summary.populations.iter().map(|p| p.size).collect();
    let whole_run = o.t_start.is_none() && o.t_stop.is_none();
    check_bins(w, &o.stats, &sizes, &summary_path, whole_run)?;
    let staging = Staging::new(&o.report_dir, o.force)?;
    let run = open_run(&o.run_dir)?;
    let rw = Window {
        t_start: w.t_start,
        t_stop: w.t_stop.min(w.t_start + RASTER_MS),
    };
    // One population at a time: its spikes are read, analysed and dropped,
    // so the memory needed is the largest population's spikes, not the
    // run's; what is kept is per neuron (rates, CVs) or sampled.
    let recorded: Vec<usize> = (0..run.spikes.len())
        .filter(|&p| run.spikes[p].is_some())
        .collect();
    let bar = o.progress.then(|| progress_bar(&run, &recorded));
    let mut stats = Vec::with_capacity(recorded.len());
    let mut infos = Vec::with_capacity(recorded.len());
    // The rows of the area rasters (runs with areas only).
    let with_areas = areas::has_areas(&run.summary.populations);
    let mut raster_pops = Vec::new();
    // The population rate in 1 ms bins (PSTH, spectrum), for runs with few
    // enough populations to draw one panel each.
    let with_activity = recorded.len() <= MAX_LINE_POPULATIONS;
    // raster.png: as many neurons in all as --raster-neurons per
    // population, shared out in proportion to the populations' sizes.
    let recorded_size: u64 = recorded
        .iter()
        .map(|&p| run.summary.populations[p].size)
        .sum();
    let per_neuron = (o.raster_neurons * recorded.len()) as f64 / recorded_size.max(1) as f64;
    let mut next_first = 0u64;
    let mut id_raster = Vec::with_capacity(recorded.len());
    let mut activity: Vec<(String, Option<Vec<f64>>)> = Vec::new();
    for &p in &recorded {
        if let Some(b) = &bar {
            b.set_message(run.summary.populations[p].name.clone());
        }
        let Some(pop) = run.population(p, run.max_spikes)? else {
            continue;
        };
        stats.push(population_stats(&pop.info.name, &pop.trains, w, &o.stats));
        if with_areas {
            raster_pops.push(raster_sample(&pop, rw, o.stats.seed, o.raster_neurons));
        }
        let first = pop.info.first_id.unwrap_or(next_first);
        next_first = first + pop.info.size;
        let k = ((pop.info.size as f64 * per_neuron).round() as usize)
            .clamp(1, pop.info.size.max(1) as usize);
        id_raster.push(plots::IdRasterPopulation {
            name: pop.info.name.clone(),
            id_range: (first, first + pop.info.size),
            neurons: raster_ids(&pop, o.stats.seed, k)
                .into_iter()
                .map(|i| (first + i, rw.slice(pop.trains.train(i as usize)).to_vec()))
                .collect(),
        });
        if with_activity {
            let n = pop.trains.n_neurons();
            activity.push((
                pop.info.name.clone(),
                spectrum::activity((0..n).map(|i| pop.trains.train(i)), n, w),
            ));
        }
        if let Some(b) = &bar {
            b.inc(run.spikes[p].unwrap_or(0));
        }
        infos.push(pop.info);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let summaries: Vec<PopulationSummary> = stats.iter().map(|s| s.summary.clone()).collect();
    let area_table = with_areas.then(|| areas::area_summaries(&infos, &summaries, w));
    let file = StatsFile {
        run_dir: o.run_dir.display().to_string(),
        t_start_ms: w.t_start,
        t_stop_ms: w.t_stop,
        bin_ms: o.stats.bin_ms,
        pairs: o.stats.pairs,
        seed: o.stats.seed,
        spike_files: run.spike_files.len(),
        populations: summaries,
        areas: area_table,
        unrecorded_populations: run.unrecorded(),
    };
    let dir = staging.path().to_path_buf();
    let mut json =
        serde_json::to_string_pretty(&file).map_err(|e| AnalyzeError::Usage(e.to_string()))?;
    json.push('\n');
    write_file(&dir, "stats.json", json.as_bytes())?;
    write_file(&dir, "stats.csv", stats_csv(&file.populations).as_bytes())?;
    write_file(
        &dir,
        "correlations.csv",
        correlations_csv(&stats).as_bytes(),
    )?;
    let mut files: Vec<String> = [
        "stats.json",
        "stats.csv",
        "correlations.csv",
        "raster.png",
        "rates.png",
        "rates_boxplot.png",
        "cv.png",
        "correlations.png",
    ]
    .map(String::from)
    .to_vec();

    let text = plots::init_font().is_some();
    // Every plot's title names the run.
    let run_name = o.run_dir.file_name().map_or_else(
        || o.run_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    // PNG, and SVG with --svg.
    let exts: &[&str] = if o.svg { &["png", "svg"] } else { &["png"] };
    for &ext in exts {
        plots::raster_by_id(
            &dir.join(format!("raster.{ext}")),
            &format!("Spike raster: {run_name}"),
            &id_raster,
            rw,
            text,
        )?;
        let rates: Vec<(String, Vec<f64>)> = stats
            .iter()
            .map(|s| (s.summary.name.clone(), s.rates.clone()))
            .collect();
        plots::distributions(
            &dir.join(format!("rates.{ext}")),
            &format!("Firing rate per neuron: {run_name}"),
            "rate (Hz)",
            &rates,
            1.0,
            Some(1000.0 / w.duration_ms()),
            text,
        )?;
        plots::boxplots(
            &dir.join(format!("rates_boxplot.{ext}")),
            &format!("Firing rates: {run_name}"),
            "rate (Hz)",
            &rates,
            text,
        )?;
        let cvs: Vec<(String, Vec<f64>)> = stats
            .iter()
            .map(|s| (s.summary.name.clone(), s.cvs.clone()))
            .collect();
        plots::distributions(
            &dir.join(format!("cv.{ext}")),
            &format!("CV of ISI per neuron: {run_name}"),
            "CV ISI",
            &cvs,
            1.5,
            None,
            text,
        )?;
        let corrs: Vec<(String, Vec<f64>)> = stats
            .iter()
            .map(|s| (s.summary.name.clone(), s.correlations.clone()))
            .collect();
        plots::distributions(
            &dir.join(format!("correlations.{ext}")),
            &format!(
                "Spike-count correlation per pair ({} ms bins): {run_name}",
                o.stats.bin_ms
            ),
            "correlation coefficient",
            &corrs,
            0.1,
            None,
            text,
        )?;
        if with_activity && activity.iter().all(|(_, a)| a.is_some()) && !activity.is_empty() {
            // PSTH in bins of --bin-ms (whole multiples of 1 ms).
            let k = (o.stats.bin_ms / spectrum::ACTIVITY_BIN_MS)
                .round()
                .max(1.0) as usize;
            let width = k as f64 * spectrum::ACTIVITY_BIN_MS;
            let psth: Vec<(String, Vec<(f64, f64)>)> = activity
                .iter()
                .map(|(n, a)| {
                    let r = spectrum::rebin(a.as_deref().unwrap_or(&[]), k);
                    let pts = r
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| (w.t_start + (i as f64 + 0.5) * width, v))
                        .collect();
                    (n.clone(), pts)
                })
                .collect();
            plots::line_panels(
                &dir.join(format!("psth.{ext}")),
                &format!("Population rate ({width} ms bins): {run_name}"),
                ("time (ms)", "rate (Hz)"),
                &psth,
                false,
                text,
            )?;
            if ext == "png" {
                files.push("psth.png".into());
            }
            let spectra: Vec<(String, Vec<(f64, f64)>)> = activity
                .iter()
                .filter_map(|(n, a)| Some((n.clone(), spectrum::welch_psd(a.as_deref()?)?)))
                .collect();
            if spectra.len() == activity.len() {
                plots::line_panels(
                    &dir.join(format!("spectrum.{ext}")),
                    &format!("Power spectrum of the population rate: {run_name}"),
                    ("frequency (Hz)", "PSD (Hz²/Hz)"),
                    &spectra,
                    true,
                    text,
                )?;
                if ext == "png" {
                    files.push("spectrum.png".into());
                }
            }
        }
    }
    if o.svg {
        let svgs: Vec<String> = files
            .iter()
            .filter_map(|f| f.strip_suffix(".png").map(|s| format!("{s}.svg")))
            .collect();
        files.extend(svgs);
    }
    if let Some(table) = &file.areas {
        let run_name = o.run_dir.display().to_string();
        let recorded = Recorded {
            infos: &infos,
            stats: &file.populations,
            raster: &raster_pops,
        };
        files.extend(write_area_outputs(
            &dir, &run_name, table, &recorded, rw, text, exts,
        )?);
    }
    let report_dir = staging.commit()?;
    Ok(AnalysisReport {
        stats: file,
        report_dir,
        files,
        plots_have_text: text,
    })
}

/// The `k` neurons of a population that rasters show: sampled from
/// (`seed`, its name), as every report of the model samples them.
fn raster_ids(p: &PopulationSpikeData, seed: u64, k: usize) -> Vec<u64> {
    let mut rng = stream_rng(seed ^ 0x5241_5354, &p.info.name);
    sample_indices(p.info.size, k, &mut rng)
}

/// The raster rows of a population: the window `rw` of the trains of
/// `neurons` neurons sampled from (`seed`, its name), as every report of
/// the model samples them.
fn raster_sample(
    p: &PopulationSpikeData,
    rw: Window,
    seed: u64,
    neurons: usize,
) -> RasterPopulation {
    let ids = raster_ids(p, seed, neurons);
    RasterPopulation {
        name: p.info.name.clone(),
        trains: ids
            .iter()
            .map(|&i| rw.slice(p.trains.train(i as usize)).to_vec())
            .collect(),
    }
}

/// A progress bar on stderr over the spikes of the populations to read.
fn progress_bar(run: &RunFiles, recorded: &[usize]) -> indicatif::ProgressBar {
    let total: u64 = recorded.iter().map(|&p| run.spikes[p].unwrap_or(0)).sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bar:40} {human_pos}/{human_len} spikes, {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The recorded populations of a run, in model order: element `i` of each
/// list is population `i`.
struct Recorded<'a> {
    infos: &'a [PopulationInfo],
    stats: &'a [PopulationSummary],
    /// Its rows of the area rasters.
    raster: &'a [RasterPopulation],
}

/// The outputs of a run with areas: `areas.csv`, `rates_by_area.png`,
/// `raster_areas.png` and `rasters/AREA.png` (and `.svg` of each plot
/// where `exts` has it), written into `dir`; the rasters cover `rw`.
/// Returns the names written.
fn write_area_outputs(
    dir: &Path,
    run_name: &str,
    table: &[AreaSummary],
    rec: &Recorded,
    rw: Window,
    text: bool,
    exts: &[&str],
) -> Result<Vec<String>, AnalyzeError> {
    let (infos, raster_pops) = (rec.infos, rec.raster);
    let mut files = Vec::new();
    write_file(dir, "areas.csv", areas::areas_csv(table).as_bytes())?;
    files.push("areas.csv".to_string());

    let matrix = areas::rate_matrix(infos, rec.stats);
    for ext in exts {
        let name = format!("rates_by_area.{ext}");
        plots::rate_matrix(
            &dir.join(&name),
            &format!("Mean rate by area and population: {run_name}"),
            &matrix,
            text,
        )?;
        files.push(name);
    }

    // Populations coloured by their column in the matrix.
    let column = |i: usize| {
        let c = areas::population_in_area(&infos[i]);
        matrix.columns.iter().position(|x| x == c).unwrap_or(0)
    };
    let groups = areas::group_by_area(infos);
    let rows_px = plots::area_raster_height(groups.len()).saturating_sub(130) as usize;
    let per_pop = (rows_px / raster_pops.len().max(1)).max(1);
    let bands: Vec<RasterArea> = groups
        .iter()
        .map(|g| RasterArea {
            name: g.name.clone(),
            populations: g
                .populations
                .iter()
                .map(|&i| (column(i), evenly_spaced(&raster_pops[i], per_pop)))
                .collect(),
        })
        .collect();
    for ext in exts {
        let name = format!("raster_areas.{ext}");
        plots::area_raster(
            &dir.join(&name),
            &format!("Spike raster by area: {run_name}"),
            &bands,
            &matrix.columns,
            rw,
            text,
        )?;
        files.push(name);
    }

    let sub = dir.join("rasters");
    std::fs::create_dir(&sub).map_err(|e| AnalyzeError::io(&sub, "create directory", e))?;
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    for (g, file_name) in groups.iter().zip(areas::raster_file_names(&names)) {
        let members: Vec<RasterPopulation> = g
            .populations
            .iter()
            .map(|&i| raster_pops[i].clone())
            .collect();
        let colors: Vec<usize> = g.populations.iter().map(|&i| column(i)).collect();
        for ext in exts {
            let name = format!("rasters/{file_name}.{ext}");
            plots::raster_titled(
                &dir.join(&name),
                &format!("Spike raster of area {}: {run_name}", g.name),
                &members,
                &colors,
                rw,
                text,
            )?;
            files.push(name);
        }
    }
    Ok(files)
}

/// At most `k` of a population's raster rows, evenly spaced.
fn evenly_spaced(p: &RasterPopulation, k: usize) -> RasterPopulation {
    let n = p.trains.len();
    let k = k.min(n);
    RasterPopulation {
        name: p.name.clone(),
        trains: (0..k).map(|j| p.trains[j * n / k].clone()).collect(),
    }
}
