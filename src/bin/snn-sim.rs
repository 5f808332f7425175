//! `snn-sim`: see [`snn::sim_cli`].

fn main() -> std::process::ExitCode {
    snn::sim_cli::main()
}
