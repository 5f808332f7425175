//! `snn-analyze`: statistics and plots of spike output, comparison of runs.
//! Parses the command line and calls [`snn_analysis::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    snn_analysis::cli::run(&snn_analysis::cli::Cli::parse())
}
