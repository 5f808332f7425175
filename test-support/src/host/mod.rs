//! A CPU stand-in for a CUDA device, for the tests that run the kernels
//! (`kernels/cuda/*.cu`) as host C++: [`HostDevice`] compiles
//! `host_device.cpp` (which includes the kernel sources through the
//! portability header `port.cuh`) with the system's C++ compiler, starts it,
//! and talks to it through pipes: upload, download, launch by
//! [`KernelId`], the operations a cudarc backend performs, so a test written
//! against it reads like the GPU backend's host code.
//!
//! Used by `kernels/tests/kernels_host.rs` and the root package's tests of
//! the GPU backends (`tests/kernels_host.rs`, `tests/gpu_*.rs`).

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use snn_kernels::device::{
    AllocStats, Arg as GpuArg, BufId, Device, DeviceError, Shape as GpuShape,
};
use snn_kernels::registry::{KernelId, Module, HEADERS};

/// The driver's source.
const DRIVER: &str = include_str!("host_device.cpp");

/// The driver's included parts: the launches of the simulation engine's and
/// the builder's kernels.
const DRIVER_PARTS: [(&str, &str); 2] = [
    ("host_sim.inc", include_str!("host_sim.inc")),
    ("host_build.inc", include_str!("host_build.inc")),
];

/// Flags of the host build: the determinism rules of `port.cuh` (no
/// contraction into FMA, no fast math), and the test kernels.
const FLAGS: [&str; 8] = [
    "-DSNN_TEST_KERNELS",
    "-O2",
    "-std=c++17",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// The first working compiler among `$CXX`, `c++`, `g++`, `clang++`.
pub fn find_cxx() -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("CXX").into_iter().collect();
    candidates.extend(["c++", "g++", "clang++"].map(String::from));
    candidates.into_iter().find(|cxx| {
        Command::new(cxx)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Builds the driver (once per source version: later calls, also from other
/// test processes, reuse the binary) and returns its path.
fn build_driver(cxx: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, exe)) = built.iter().find(|(c, _)| c == cxx) {
        return exe.clone();
    }
    let exe = build_driver_uncached(cxx);
    built.push((cxx.to_owned(), exe.clone()));
    exe
}

fn build_driver_uncached(cxx: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    (cxx, FLAGS, DRIVER, DRIVER_PARTS, &*HEADERS).hash(&mut h);
    for m in Module::ALL {
        (m.file_name(), m.raw_source()).hash(&mut h);
    }
    let dir = Path::new(env!("OUT_DIR")).join("host_device");
    let exe = dir.join(format!("driver-{:016x}", h.finish()));
    if exe.is_file() {
        return exe;
    }
    // Sources in a private directory, the binary renamed into place.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = dir.join(format!("build-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&work).expect("create scratch directory");
    for (name, text) in HEADERS.iter() {
        std::fs::write(work.join(name), text).expect("write header");
    }
    for m in Module::ALL {
        std::fs::write(work.join(m.file_name()), m.raw_source()).expect("write module");
    }
    std::fs::write(work.join("host_device.cpp"), DRIVER).expect("write driver");
    for (name, text) in DRIVER_PARTS {
        std::fs::write(work.join(name), text).expect("write driver part");
    }
    let tmp = work.join("driver");
    let out = Command::new(cxx)
        .args(FLAGS)
        .arg("-I")
        .arg(&work)
        .arg(work.join("host_device.cpp"))
        .arg("-o")
        .arg(&tmp)
        .output()
        .expect("run the C++ compiler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{cxx} failed on the host driver:\n{stderr}"
    );
    assert!(stderr.trim().is_empty(), "{cxx} warnings:\n{stderr}");
    std::fs::rename(&tmp, &exe).expect("move the driver into place");
    let _ = std::fs::remove_dir_all(&work);
    exe
}

/// An element type of a buffer.
pub trait Elem: Copy {
    /// Size in bytes.
    const BYTES: usize;
    /// The bits, zero-extended.
    fn to_word(self) -> u64;
    /// From the low bits.
    fn from_word(w: u64) -> Self;
}

macro_rules! elem_int {
    ($($t:ty => $u:ty),*) => {$(
        impl Elem for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn to_word(self) -> u64 {
                self as $u as u64
            }
            fn from_word(w: u64) -> Self {
                w as $u as $t
            }
        }
    )*};
}
elem_int!(u32 => u32, i32 => u32, u64 => u64, i64 => u64);

impl Elem for f64 {
    const BYTES: usize = 8;
    fn to_word(self) -> u64 {
        self.to_bits()
    }
    fn from_word(w: u64) -> Self {
        f64::from_bits(w)
    }
}

/// A buffer on the stand-in device.
#[derive(Debug)]
pub struct Buf<T> {
    id: u64,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Elem> Buf<T> {
    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// A pointer argument to its start.
    pub fn arg(&self) -> Arg {
        Arg::Ptr(self.id, 0)
    }
    /// A pointer argument to element `i`.
    pub fn at(&self, i: usize) -> Arg {
        assert!(i <= self.len, "offset {i} past the end ({})", self.len);
        Arg::Ptr(self.id, i * T::BYTES)
    }
}

/// A kernel argument.
#[derive(Clone, Debug)]
pub enum Arg {
    /// A pointer: buffer id and byte offset.
    Ptr(u64, usize),
    /// A scalar (its bits).
    Scalar(u64),
    /// A struct passed by value: its bytes.
    Struct(Vec<u8>),
}

impl Arg {
    /// A `uint32_t`.
    pub fn u32(x: u32) -> Arg {
        Arg::Scalar(x as u64)
    }
    /// A `uint64_t`.
    pub fn u64(x: u64) -> Arg {
        Arg::Scalar(x)
    }
}

/// A launch shape: `grid` blocks of `block` threads, run in `order` (0
/// increasing, 1 decreasing, otherwise a permutation chosen by the number).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Blocks.
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
    /// Order of the (block, thread) pairs.
    pub order: u32,
}

/// Launch shapes that stress the loops: one thread, fewer threads than
/// items, more, several orders.
pub const SHAPES: [Shape; 5] = [
    Shape {
        grid: 1,
        block: 1,
        order: 0,
    },
    Shape {
        grid: 3,
        block: 5,
        order: 1,
    },
    Shape {
        grid: 7,
        block: 32,
        order: 2,
    },
    Shape {
        grid: 64,
        block: 64,
        order: 3,
    },
    Shape {
        grid: 2,
        block: 256,
        order: 4,
    },
];

/// The stand-in device: a running driver process.
pub struct HostDevice {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
    next_id: u64,
    /// Kernel launches so far.
    pub launches: u64,
    /// The order of the (block, thread) pairs of launches made through the
    /// [`Device`] trait (see [`Shape::order`]); tests vary it.
    pub order: u32,
    /// Grid size reported by [`Device::full_grid`].
    pub full_grid: u32,
    /// Block size reported by [`Device::block_size`].
    pub block_size: u32,
    stats: AllocStats,
}

impl HostDevice {
    /// Builds and starts the driver; `None` (after printing a note) when no
    /// C++ compiler is found.
    pub fn start() -> Option<HostDevice> {
        let Some(cxx) = find_cxx() else {
            println!(
                "NOTE: no C++ compiler found ($CXX, c++, g++, clang++): host kernel run skipped"
            );
            return None;
        };
        let exe = build_driver(&cxx);
        let mut child = Command::new(&exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the host driver");
        let input = BufWriter::new(child.stdin.take().expect("stdin"));
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Some(HostDevice {
            child,
            input,
            output,
            next_id: 1,
            launches: 0,
            order: 2,
            full_grid: 4,
            block_size: 8,
            stats: AllocStats::default(),
        })
    }

    /// Sends one command line and returns the reply line; panics on `err`.
    fn call(&mut self, line: &str) -> String {
        self.input
            .write_all(line.as_bytes())
            .and_then(|_| self.input.write_all(b"\n"))
            .and_then(|_| self.input.flush())
            .expect("write to the host driver");
        let mut reply = String::new();
        let n = self
            .output
            .read_line(&mut reply)
            .expect("read from the host driver");
        assert!(n > 0, "the host driver exited (command {:.80})", line);
        let reply = reply.trim_end().to_owned();
        if let Some(e) = reply.strip_prefix("err") {
            panic!("host driver: {} (command {:.120})", e.trim(), line);
        }
        reply
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A new buffer holding `data`.
    pub fn upload<T: Elem>(&mut self, data: &[T]) -> Buf<T> {
        let id = self.new_id();
        self.fill(id, data);
        Buf {
            id,
            len: data.len(),
            _t: PhantomData,
        }
    }

    /// A new buffer of `n` zeros.
    pub fn zeros<T: Elem>(&mut self, n: usize) -> Buf<T> {
        let id = self.new_id();
        self.call(&format!("Z {id:x} {:x}", n * T::BYTES));
        Buf {
            id,
            len: n,
            _t: PhantomData,
        }
    }

    /// Replaces the contents of `buf` (same length).
    pub fn write<T: Elem>(&mut self, buf: &Buf<T>, data: &[T]) {
        assert_eq!(buf.len, data.len(), "write of a different length");
        self.fill(buf.id, data);
    }

    fn fill<T: Elem>(&mut self, id: u64, data: &[T]) {
        let mut line = String::with_capacity(16 + 17 * data.len());
        write!(line, "U {id:x} {:x} {:x}", T::BYTES, data.len()).expect("format");
        for x in data {
            write!(line, " {:x}", x.to_word()).expect("format");
        }
        self.call(&line);
    }

    /// The contents of `buf`.
    pub fn download<T: Elem>(&mut self, buf: &Buf<T>) -> Vec<T> {
        let reply = self.call(&format!("D {:x} {:x}", buf.id, T::BYTES));
        let mut words = reply
            .split(' ')
            .map(|w| u64::from_str_radix(w, 16).expect("hex"));
        let n = words.next().expect("count") as usize;
        let v: Vec<T> = words.map(T::from_word).collect();
        assert_eq!(v.len(), n, "download length");
        v
    }

    /// Frees `buf`.
    pub fn free<T>(&mut self, buf: Buf<T>) {
        self.call(&format!("F {:x}", buf.id));
    }

    /// `snn_poisson_count(thresholds, u)` (poisson.cuh) for each word.
    pub fn poisson_counts(&mut self, thresholds: &[u64], words: &[u32]) -> Vec<u32> {
        let mut line = format!("Q c {:x}", thresholds.len());
        for t in thresholds {
            write!(line, " {t:x}").expect("format");
        }
        write!(line, " {:x}", words.len()).expect("format");
        for u in words {
            write!(line, " {u:x}").expect("format");
        }
        let reply = self.call(&line);
        reply
            .split(' ')
            .map(|w| u32::from_str_radix(w, 16).expect("hex"))
            .collect()
    }

    /// `snn_poisson_word(seed, gid, step)` (poisson.cuh) for each step.
    pub fn poisson_words(&mut self, seed: u64, gid: u64, steps: &[u64]) -> Vec<u32> {
        let mut line = format!("Q w {seed:x} {gid:x} {:x}", steps.len());
        for s in steps {
            write!(line, " {s:x}").expect("format");
        }
        let reply = self.call(&line);
        reply
            .split(' ')
            .map(|w| u32::from_str_radix(w, 16).expect("hex"))
            .collect()
    }

    /// Sends one command line; the reply line, or the driver's error.
    fn try_call(&mut self, line: &str) -> Result<String, DeviceError> {
        let io = |e: std::io::Error| DeviceError::Driver {
            op: "host driver I/O".into(),
            message: e.to_string(),
        };
        self.input.write_all(line.as_bytes()).map_err(io)?;
        self.input.write_all(b"\n").map_err(io)?;
        self.input.flush().map_err(io)?;
        let mut reply = String::new();
        let n = self.output.read_line(&mut reply).map_err(io)?;
        if n == 0 {
            return Err(DeviceError::Driver {
                op: format!("{:.40}", line),
                message: "the host driver exited".into(),
            });
        }
        let reply = reply.trim_end().to_owned();
        if let Some(e) = reply.strip_prefix("err") {
            return Err(DeviceError::Driver {
                op: format!("{:.80}", line),
                message: e.trim().to_owned(),
            });
        }
        Ok(reply)
    }

    /// Runs kernel `k` with shape `s` (to completion, as a launch followed
    /// by a stream synchronisation).
    pub fn launch(&mut self, k: KernelId, s: Shape, args: &[Arg]) {
        let mut line = format!(
            "L {} {:x} {:x} {:x} {:x}",
            k.name(),
            s.grid,
            s.block,
            s.order,
            args.len()
        );
        for a in args {
            match a {
                Arg::Ptr(id, off) => write!(line, " p {id:x} {off:x}"),
                Arg::Scalar(x) => write!(line, " s {x:x}"),
                Arg::Struct(bytes) => {
                    write!(line, " r {:x}", bytes.len()).expect("format");
                    for c in bytes.chunks(8) {
                        let mut w = [0u8; 8];
                        w[..c.len()].copy_from_slice(c);
                        write!(line, " {:x}", u64::from_le_bytes(w)).expect("format");
                    }
                    Ok(())
                }
            }
            .expect("format");
        }
        self.call(&line);
        self.launches += 1;
    }
}

fn words_of(data: &[u8]) -> impl Iterator<Item = u64> + '_ {
    data.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    })
}

/// The stand-in as a [`Device`]: what the GPU backends drive in the tests.
/// Launches run in [`HostDevice::order`]; a kernel's error (bad argument,
/// write past the end of a buffer) comes back as [`DeviceError::Driver`].
impl Device for HostDevice {
    fn describe(&self) -> String {
        "host C++ stand-in device (test-support/src/host)".into()
    }

    fn alloc(&mut self, bytes: u64, _what: &str) -> Result<BufId, DeviceError> {
        let id = self.new_id();
        self.try_call(&format!("Z {id:x} {bytes:x}"))?;
        self.stats.alloc(id, bytes);
        Ok(id)
    }

    fn free(&mut self, buf: BufId) {
        self.stats.free(buf);
        let _ = self.try_call(&format!("F {buf:x}"));
    }

    fn write(&mut self, buf: BufId, offset_bytes: u64, data: &[u8]) -> Result<(), DeviceError> {
        // Pieces of at most 1 MiB per command line.
        for (i, piece) in data.chunks(1 << 20).enumerate() {
            let off = offset_bytes + (i << 20) as u64;
            let mut line = String::with_capacity(32 + piece.len() * 3);
            write!(line, "W {buf:x} {off:x} {:x}", piece.len()).expect("format");
            for w in words_of(piece) {
                write!(line, " {w:x}").expect("format");
            }
            self.try_call(&line)?;
        }
        Ok(())
    }

    fn read(&mut self, buf: BufId, offset_bytes: u64, out: &mut [u8]) -> Result<(), DeviceError> {
        for (i, piece) in out.chunks_mut(1 << 20).enumerate() {
            let off = offset_bytes + (i << 20) as u64;
            let reply = self.try_call(&format!("R {buf:x} {off:x} {:x}", piece.len()))?;
            let mut words = reply.split(' ').filter(|w| !w.is_empty());
            for c in piece.chunks_mut(8) {
                let w = words
                    .next()
                    .and_then(|w| u64::from_str_radix(w, 16).ok())
                    .ok_or_else(|| DeviceError::Driver {
                        op: "read".into(),
                        message: "short reply".into(),
                    })?;
                c.copy_from_slice(&w.to_le_bytes()[..c.len()]);
            }
        }
        Ok(())
    }

    fn zero(&mut self, buf: BufId, offset_bytes: u64, bytes: u64) -> Result<(), DeviceError> {
        self.try_call(&format!("M {buf:x} {offset_bytes:x} {bytes:x}"))
            .map(|_| ())
    }

    fn launch(&mut self, k: KernelId, shape: GpuShape, args: &[GpuArg]) -> Result<(), DeviceError> {
        let mut line = format!(
            "L {} {:x} {:x} {:x} {:x}",
            k.name(),
            shape.grid,
            shape.block,
            self.order,
            args.len()
        );
        for a in args {
            match a {
                GpuArg::Ptr { buf, offset_bytes } => {
                    write!(line, " p {buf:x} {offset_bytes:x}").expect("format")
                }
                GpuArg::Struct(bytes) => {
                    write!(line, " r {:x}", bytes.len()).expect("format");
                    for w in words_of(bytes) {
                        write!(line, " {w:x}").expect("format");
                    }
                }
                scalar => {
                    let w = words_of(&scalar.bytes()).next().unwrap_or(0);
                    write!(line, " s {w:x}").expect("format");
                }
            }
        }
        self.try_call(&line)?;
        self.launches += 1;
        Ok(())
    }

    fn synchronize(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }

    fn full_grid(&self) -> u32 {
        self.full_grid
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn peak_allocated_bytes(&self) -> u64 {
        self.stats.peak()
    }
}

impl Drop for HostDevice {
    fn drop(&mut self) {
        // Closing stdin ends the driver.
        let _ = self.input.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
