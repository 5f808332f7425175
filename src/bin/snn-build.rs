//! `snn-build`: see [`snn::build_cli`].

fn main() -> std::process::ExitCode {
    snn::build_cli::main()
}
