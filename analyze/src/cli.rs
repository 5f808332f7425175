//! The command line of `snn-analyze` (parsed with clap in the binary,
//! executed here).
//!
//! ```text
//! snn-analyze RUN_DIR -o REPORT_DIR [--t-start MS] [--t-stop MS] [--force]
//!             [--pairs N] [--bin-ms B] [--seed S] [--raster-neurons N]
//! snn-analyze compare RUN_A RUN_B [--t-start MS] [--t-stop MS] [--json]
//!             [--report-only] [--pairs N] [--bin-ms B] [--seed S]
//! ```
//!
//! Exit status ([`EXIT_HELP`]): 0 success; 1 `compare` found that the
//! runs' spikes differ (like `cmp`; not with `--report-only`); 2 an error
//! (a refused command line, a missing, unreadable or invalid input, an
//! option the input cannot be analysed with).
//!
//! The analyse command prints the per-population table; runs with areas
//! (see [`crate::areas`]) print the per-area table before it, and instead
//! of it (a pointer to `stats.csv`) beyond [`MAX_TABLE_POPULATIONS`]
//! populations.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::areas::format_area_table;
use crate::compare::{compare_runs, format_comparison, CompareOptions, Tolerances};
use crate::error::AnalyzeError;
use crate::report::{analyze_run, format_table, AnalyzeOptions};
use crate::stats::StatsOptions;

/// The exit statuses, as `--help` shows them.
pub const EXIT_HELP: &str = "Exit status:
  0  success (compare: the runs' spikes are identical, or with tolerances
     (--rate-rtol, ...) their statistics agree within them, or --report-only)
  1  compare: the runs' spikes differ, or with tolerances a statistic lies
     beyond them (the comparison is printed all the same)
  2  error: a refused command line, a missing, unreadable or invalid input";

/// Exit status of `compare` when the runs' spikes differ.
pub const EXIT_DIFFER: u8 = 1;

/// Exit status of every error (as `cmp` and `diff` use).
pub const EXIT_ERROR: u8 = 2;

/// Statistics of spike output: rates, CV of ISI, Fano factor, spike-count
/// correlations and plots of a run directory, or the comparison of two runs.
#[derive(Debug, Parser)]
#[command(
    name = "snn-analyze",
    version,
    about,
    after_help = EXIT_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// `compare RUN_A RUN_B`; without it, analyse RUN_DIR.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Arguments of the default (analyse) command.
    #[command(flatten)]
    pub analyze: AnalyzeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare two runs: per-population differences (B - A) of mean rate,
    /// CV ISI and correlation, the earth mover's distances between their
    /// distributions, and whether their spikes are identical (exit status 1
    /// when they are not, unless --report-only).
    #[command(after_help = EXIT_HELP)]
    Compare(CompareArgs),
}

/// Options shared by both commands.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Start of the analysis window (ms) [default: the run's start].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub t_start: Option<f64>,
    /// End of the analysis window (ms) [default: the run's end].
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub t_stop: Option<f64>,
    /// Neuron pairs sampled per population for the spike-count correlation.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        allow_negative_numbers = true
    )]
    pub pairs: usize,
    /// Bin width (ms) of the population Fano factor and the correlations.
    #[arg(
        long,
        value_name = "B",
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub bin_ms: f64,
    /// Seed of the pair and raster-neuron sampling.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub seed: u64,
}

impl StatsArgs {
    fn options(&self) -> StatsOptions {
        StatsOptions {
            bin_ms: self.bin_ms,
            pairs: self.pairs,
            seed: self.seed,
        }
    }
}

/// Arguments of the analyse command.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// The run directory (summary.json and spikes-rank-*.h5).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub run_dir: Option<PathBuf>,
    /// The report directory to create.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "REPORT_DIR",
        required = true
    )]
    pub output: Option<PathBuf>,
    /// Replace an existing report directory.
    #[arg(long)]
    pub force: bool,
    /// Neurons per population in the rasters: in raster.png this many per
    /// population on average, shared out in proportion to the populations'
    /// sizes; in rasters/AREA.png this many of each population.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub raster_neurons: usize,
    /// Also write the plots as SVG (raster.svg, rates.svg, ...).
    #[arg(long)]
    pub svg: bool,
    /// Window, bins, pairs and seed.
    #[command(flatten)]
    pub stats: StatsArgs,
}

/// Arguments of `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The reference run directory.
    #[arg(value_name = "RUN_A")]
    pub run_a: PathBuf,
    /// The run directory compared with it.
    #[arg(value_name = "RUN_B")]
    pub run_b: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 0 even when the runs' spikes differ, or their
    /// statistics differ beyond the tolerances (only report it).
    #[arg(long)]
    pub report_only: bool,
    /// Tolerance of the mean rates, relative to A's: with this or any other
    /// tolerance, the verdict (exit status 1 or 0) is whether every
    /// population's statistics agree within the tolerances given, not
    /// whether the spikes are identical.
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub rate_rtol: Option<f64>,
    /// Tolerance of the mean CV ISI (absolute).
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub cv_atol: Option<f64>,
    /// Tolerance of the mean correlation (absolute).
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub corr_atol: Option<f64>,
    /// Largest earth mover's distance between the per-neuron rate
    /// distributions (Hz).
    #[arg(long, value_name = "HZ", allow_negative_numbers = true)]
    pub emd_rate_max: Option<f64>,
    /// Largest EMD between the per-neuron CV ISI distributions.
    #[arg(long, value_name = "D", allow_negative_numbers = true)]
    pub emd_cv_max: Option<f64>,
    /// Largest EMD between the pairwise correlation distributions.
    #[arg(long, value_name = "D", allow_negative_numbers = true)]
    pub emd_corr_max: Option<f64>,
    /// Window, bins, pairs and seed.
    #[command(flatten)]
    pub stats: StatsArgs,
}

/// Runs with areas and more populations than this print the area table and
/// a pointer to `stats.csv` instead of the population table.
pub const MAX_TABLE_POPULATIONS: usize = 40;

/// The files written, those in a subdirectory summarised (`rasters/*.png
/// (32 files)`).
fn files_line(files: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut dirs: Vec<(&str, &str, usize)> = Vec::new();
    for f in files {
        match f.split_once('/') {
            Some((d, rest)) => {
                let ext = rest.rsplit_once('.').map_or("", |(_, e)| e);
                match dirs.iter_mut().find(|(x, y, _)| *x == d && *y == ext) {
                    Some(e) => e.2 += 1,
                    None => dirs.push((d, ext, 1)),
                }
            }
            None => parts.push(f.clone()),
        }
    }
    for (d, ext, n) in dirs {
        parts.push(format!("{d}/*.{ext} ({n} files)"));
    }
    parts.join(", ")
}

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (an analysis written, or runs with identical spikes compared).
    Done,
    /// `compare` found that the runs' spikes differ (without
    /// `--report-only`).
    Differ,
}

/// Execute a parsed command line, printing results to stdout.
pub fn execute(cli: &Cli) -> Result<Outcome, AnalyzeError> {
    let mut out = std::io::stdout().lock();
    let stdout_err = |e| AnalyzeError::io("<stdout>", "write", e);
    match &cli.command {
        Some(Command::Compare(c)) => {
            let cmp = compare_runs(&CompareOptions {
                run_a: c.run_a.clone(),
                run_b: c.run_b.clone(),
                t_start: c.stats.t_start,
                t_stop: c.stats.t_stop,
                stats: c.stats.options(),
                tolerances: Tolerances {
                    rate_rtol: c.rate_rtol,
                    cv_atol: c.cv_atol,
                    corr_atol: c.corr_atol,
                    emd_rate_max: c.emd_rate_max,
                    emd_cv_max: c.emd_cv_max,
                    emd_corr_max: c.emd_corr_max,
                },
            })?;
            let text = if c.json {
                serde_json::to_string_pretty(&cmp)
                    .map_err(|e| AnalyzeError::Usage(e.to_string()))?
                    + "\n"
            } else {
                format_comparison(&cmp)
            };
            out.write_all(text.as_bytes()).map_err(stdout_err)?;
            out.flush().map_err(stdout_err)?;
            let differ = match &cmp.beyond_tolerance {
                Some(v) => !v.is_empty(),
                None => !cmp.identical,
            };
            if differ && !c.report_only {
                return Ok(Outcome::Differ);
            }
        }
        None => {
            let a = &cli.analyze;
            let (Some(run_dir), Some(output)) = (&a.run_dir, &a.output) else {
                return Err(AnalyzeError::Usage(
                    "RUN_DIR and -o REPORT_DIR are required".into(),
                ));
            };
            let rep = analyze_run(&AnalyzeOptions {
                run_dir: run_dir.clone(),
                report_dir: output.clone(),
                t_start: a.stats.t_start,
                t_stop: a.stats.t_stop,
                force: a.force,
                stats: a.stats.options(),
                raster_neurons: a.raster_neurons,
                svg: a.svg,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            })?;
            let mut text = format!(
                "window [{}, {}) ms, bins {} ms\n",
                rep.stats.t_start_ms, rep.stats.t_stop_ms, rep.stats.bin_ms
            );
            let pops = &rep.stats.populations;
            if let Some(areas) = &rep.stats.areas {
                text += &format_area_table(areas);
            }
            if pops.len() > MAX_TABLE_POPULATIONS && rep.stats.areas.is_some() {
                text += &format!(
                    "{} populations: per-population statistics in {}\n",
                    pops.len(),
                    rep.report_dir.join("stats.csv").display()
                );
            } else {
                text += &format_table(pops);
            }
            for n in &rep.stats.unrecorded_populations {
                text += &format!(
                    "note: population {n} has no recorded spikes (not in the spike files)\n"
                );
            }
            if !rep.plots_have_text {
                text += "note: no TrueType font found (install fonts-dejavu-core or set SNN_ANALYZE_FONT): plots have no text\n";
            }
            text += &format!(
                "wrote {}: {}\n",
                rep.report_dir.display(),
                files_line(&rep.files)
            );
            out.write_all(text.as_bytes()).map_err(stdout_err)?;
            out.flush().map_err(stdout_err)?;
        }
    }
    Ok(Outcome::Done)
}

/// Execute and return the exit status (see [`EXIT_HELP`]): an error
/// becomes one line `snn-analyze: error: ...` on stderr and
/// [`EXIT_ERROR`], spikes that differ [`EXIT_DIFFER`].
pub fn run(cli: &Cli) -> ExitCode {
    match execute(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Differ) => ExitCode::from(EXIT_DIFFER),
        Err(e) => {
            eprintln!("snn-analyze: error: {}", e.one_line());
            ExitCode::from(EXIT_ERROR)
        }
    }
}
