//! The library of the `snn` package: the command lines of `snn-build`
//! ([`build_cli`]) and `snn-sim` ([`sim_cli`]; `snn-analyze`'s is
//! `snn_analysis::cli`), whose binaries are thin mains over them, and what
//! the three binaries share: how they read their command line and report
//! errors (every user mistake ends the same way, with one line
//! `snn-X: error: ...` on stderr and a non-zero exit status), the MPI
//! launcher's variables and the CUDA device factory.

use std::process::ExitCode;

pub mod build_cli;
pub mod sim_cli;

/// Exit status of a command line the parser refuses (as clap and most Unix
/// tools use).
pub const EXIT_USAGE: u8 = 2;

/// Parse the command line of binary `bin` into `T`. `--help` and
/// `--version` print as usual and exit 0; a refused command line prints
/// one line, `bin: error: <what is wrong> (see bin --help)`, and exits with
/// [`EXIT_USAGE`], instead of clap's several lines of usage and tips.
pub fn parse_args<T: clap::Parser>(bin: &str) -> T {
    match T::try_parse() {
        Ok(t) => t,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit()
            }
            print_line(&format!(
                "{bin}: error: {} (see {bin} --help)",
                usage_error_line(&e)
            ));
            std::process::exit(EXIT_USAGE.into())
        }
    }
}

/// Clap's message for `e` on one line, without terminal styling: the error
/// (without its `error: ` prefix) and its details (possible values, tips),
/// without the usage and the pointer to `--help`.
fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = String::new();
    for p in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(p);
    }
    if let Some(rest) = line.strip_prefix("error: ") {
        line = rest.to_string();
    }
    if line.is_empty() {
        "invalid command line".into()
    } else {
        line
    }
}

/// One line for an error and its causes, skipping a cause that the message
/// before it already ends with (errors that print their source, like
/// `FormatError::Io`), with line breaks folded into spaces.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.replace('\n', " ")
}

/// Print `bin: error: <e as one line>` and return the failure status.
pub fn report(bin: &str, e: &anyhow::Error) -> ExitCode {
    print_line(&format!("{bin}: error: {}", error_line(e)));
    ExitCode::FAILURE
}

/// Write `line` and a newline to stderr in one `write` call, so that the
/// lines of MPI ranks sharing one stderr never interleave within a line
/// (`eprintln!` may write a formatted line in several pieces).
pub fn print_line(line: &str) {
    use std::io::Write;
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Worker threads allowed per core: more only add wake-ups and contention
/// (and `--threads 100000` would start that many threads).
pub const MAX_THREADS_PER_CORE: usize = 8;

/// The worker threads for `--threads` (default: the cores this process may
/// use): at least 1, at most [`MAX_THREADS_PER_CORE`] per core.
pub fn threads_arg(threads: Option<usize>) -> anyhow::Result<usize> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(t) if t > MAX_THREADS_PER_CORE * cores => anyhow::bail!(
            "--threads {t} is far beyond the {cores} cores this process may use (at most {} threads, {MAX_THREADS_PER_CORE} per core)",
            MAX_THREADS_PER_CORE * cores
        ),
        Some(t) => Ok(t),
        None => Ok(cores),
    }
}

/// `--backend` of `snn-build` and `snn-sim`: where the work runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendArg {
    /// The CPU (threads).
    Cpu,
    /// CUDA GPUs, one per rank (needs the `cuda` feature): under mpirun the
    /// node-local rank modulo the visible GPUs, with emulated ranks the rank
    /// modulo the visible GPUs.
    Cuda,
}

/// The CUDA GPUs of this node as the builder's and the simulator's device
/// factory, each rank's device with the kernels of `modules`: under an MPI
/// launcher the node-local rank picks the GPU, otherwise the rank (both
/// modulo the visible GPUs).
#[cfg(feature = "cuda")]
pub fn cuda_factory(
    modules: &'static [snn_kernels::registry::Module],
) -> snn_kernels::device::DeviceFactory {
    snn_kernels::device::DeviceFactory::new("cuda", move |rank| {
        snn_kernels::cuda::CudaDevice::open_with(
            snn_kernels::cuda::gpu_hint(rank, world_size().is_some()),
            modules,
        )
        .map(|d| Box::new(d) as Box<dyn snn_kernels::device::Device>)
    })
}

/// The environment variables in which MPI launchers (MPICH's Hydra, Open
/// MPI, PMIx) announce the world size and this process's rank, in order of
/// preference.
const LAUNCHER_VARS: [(&str, &str); 3] = [
    ("PMI_SIZE", "PMI_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMIX_SIZE", "PMIX_RANK"),
];

/// The world size announced by an MPI launcher (`mpirun`), if any.
pub fn world_size() -> Option<u32> {
    LAUNCHER_VARS
        .iter()
        .find_map(|(size, _)| std::env::var(size).ok()?.parse().ok())
}

/// Whether this process is rank 0 of its MPI job (or not under an MPI
/// launcher).
pub fn is_root() -> bool {
    LAUNCHER_VARS
        .iter()
        .find_map(|(_, rank)| std::env::var(rank).ok()?.parse::<u32>().ok())
        .is_none_or(|r| r == 0)
}

/// Make a write past the file-size limit (`ulimit -f`) fail with `EFBIG`
/// ("File too large"), which the writers report with the file's name,
/// instead of killing the process with `SIGXFSZ` and no message.
pub fn ignore_sigxfsz() {
    #[cfg(unix)]
    // SAFETY: setting the disposition of SIGXFSZ to SIG_IGN at start-up,
    // before any other thread exists, has no memory-safety preconditions;
    // no handler function is installed.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
