//! `snn-analyze`: statistics and plots of spike output, comparison of runs.
//! Parses the command line (a refused one is one line `snn-analyze: error:
//! ...` and exit status 2) and calls [`snn_analysis::cli`].

fn main() -> std::process::ExitCode {
    snn::ignore_sigxfsz();
    let cli = snn::parse_args::<snn_analysis::cli::Cli>("snn-analyze");
    snn_analysis::cli::run(&cli)
}
