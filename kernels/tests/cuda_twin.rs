//! Bit-identity of the CUDA C twin (`kernels/cuda/*.cuh`) with the Rust
//! reference: the headers are compiled as plain host C++ together with
//! `tests/cuda_twin_driver.cpp`, fed the same inputs, and every output word
//! compared. Skipped (passing, with a note) when no C++ compiler is found.

use snn_kernels::rng::philox4x32_10;
use snn_kernels::ziggurat::{normal_zig_with, ZigguratTables};
use snn_kernels::{detmath, CounterRng};
use snn_test_support::host::find_cxx;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Compiles the driver with `opt` (and `-D<define>`) into the test's
/// scratch directory.
fn build_driver(cxx: &str, opt: &str, define: Option<&str>) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda_twin");
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    let exe = dir.join(format!("driver{opt}"));
    let out = Command::new(cxx)
        .args([
            opt,
            "-std=c++17",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-Wall",
            "-Wextra",
        ])
        .args(define.map(|d| format!("-D{d}")))
        .arg("-I")
        .arg(manifest.join("cuda"))
        .arg(manifest.join("tests/cuda_twin_driver.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C++ compiler");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cxx} {opt} failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "{cxx} {opt} warnings:\n{stderr}");
    exe
}

/// Runs the driver on `input`, returning its stdout.
fn run_driver(exe: &Path, input: &str) -> String {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the driver");
    let mut stdin = child.stdin.take().expect("driver stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("driver output");
    writer
        .join()
        .expect("writer thread")
        .expect("write driver input");
    assert!(
        out.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("driver output is ASCII")
}

/// Commands for the driver and the Rust results they must reproduce.
#[derive(Default)]
struct Cases {
    input: String,
    expected: Vec<String>,
}

impl Cases {
    fn push(&mut self, command: String, expected: String) {
        self.input.push_str(&command);
        self.input.push('\n');
        self.expected.push(expected);
    }

    /// A unary double function.
    fn unary(&mut self, op: char, x: f64, y: f64) {
        self.push(
            format!("{op} {:x}", x.to_bits()),
            format!("{:x}", y.to_bits()),
        );
    }

    /// A sampler on the stream `(seed, words)` with one argument word, with
    /// the stream's next word after it (to check the words consumed).
    fn sampler(
        &mut self,
        op: char,
        seed: u64,
        w: [u32; 3],
        arg: &str,
        f: impl Fn(&mut CounterRng) -> u64,
    ) {
        let mut rng = CounterRng::from_raw(seed, w, 0);
        let k = f(&mut rng);
        self.push(
            format!("{op} {seed:x} {:x} {:x} {:x} {arg}", w[0], w[1], w[2]),
            format!("{k:x} {:x}", rng.next_u32()),
        );
    }
}

/// A double with a random exponent in `[lo, hi]` powers of ten.
fn log_uniform(rng: &mut CounterRng, lo: f64, hi: f64) -> f64 {
    10f64.powf(lo + (hi - lo) * rng.open01())
}

fn build_cases() -> Cases {
    let mut c = Cases::default();
    let mut g = CounterRng::from_raw(0xfeed, [7, 7, 7], 0);

    // Philox blocks.
    for i in 0..2000 {
        let ctr = if i < 3 {
            [[0; 4], [u32::MAX; 4], [1, 2, 3, 4]][i]
        } else {
            [g.next_u32(), g.next_u32(), g.next_u32(), g.next_u32()]
        };
        let key = [g.next_u32(), g.next_u32()];
        let r = philox4x32_10(ctr, key);
        c.push(
            format!(
                "P {:x} {:x} {:x} {:x} {:x} {:x}",
                ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]
            ),
            format!("{:x} {:x} {:x} {:x}", r[0], r[1], r[2], r[3]),
        );
    }

    // ln, ln_1p, exp, ln_factorial.
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.0,
        0.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        709.78,
        709.782_712_893_384,
        -745.13,
        -745.2,
        1e-300,
        -1e-300,
    ];
    for &x in &specials {
        c.unary('L', x, detmath::ln(x));
        c.unary('E', x, detmath::exp(x));
        c.unary('Q', x, detmath::ln_1p(x));
    }
    for _ in 0..60_000 {
        let x = f64::from_bits(g.next_u64() >> 1);
        c.unary('L', x, detmath::ln(x));
        let y = 1.0 + (g.open01() - 0.5) * 0.8;
        c.unary('L', y, detmath::ln(y));
        let z = -750.0 + g.open01() * 1470.0;
        c.unary('E', z, detmath::exp(z));
        let w = (g.open01() - 0.5) * 2.0;
        c.unary('E', w, detmath::exp(w));
    }
    for _ in 0..20_000 {
        let mag = log_uniform(&mut g, -18.0, 6.0);
        let x = if g.next_u32() & 1 == 0 {
            mag
        } else {
            -mag.min(0.999_999)
        };
        c.unary('Q', x, detmath::ln_1p(x));
    }
    for k in 0..2000u64 {
        let x = if k < 1000 {
            k as f64
        } else {
            log_uniform(&mut g, 3.0, 15.9).floor()
        };
        c.unary('F', x, detmath::ln_factorial(x));
    }

    // Stream reader operations.
    for i in 0..300u32 {
        let seed = g.next_u64();
        let w = [g.next_u32(), g.next_u32(), g.next_u32()];
        let kind = i % 7;
        let arg = match i % 4 {
            0 => 10,
            1 => 1000,
            2 => g.next_u64() >> (g.next_u32() % 64),
            _ => u64::MAX,
        }
        .max(1);
        let count = 1 + i % 37;
        let mut rng = CounterRng::from_raw(seed, w, 0);
        let mut expected = String::new();
        for _ in 0..count {
            let v = match kind {
                0 => rng.next_u32() as u64,
                1 => rng.next_u64(),
                2 => rng.below(arg),
                3 => rng.open01().to_bits(),
                4 => rng.open_pm1().to_bits(),
                5 => rng.normal().to_bits(),
                _ => {
                    let (a, b) = rng.normal2();
                    write!(expected, "{:x} ", a.to_bits()).expect("write to String");
                    b.to_bits()
                }
            };
            write!(expected, "{v:x} ").expect("write to String");
        }
        write!(expected, "{:x}", rng.next_u32()).expect("write to String");
        c.push(
            format!(
                "R {seed:x} {:x} {:x} {:x} {kind:x} {arg:x} {count:x}",
                w[0], w[1], w[2]
            ),
            expected,
        );
    }

    // Samplers, each on its own stream.
    let stream = |g: &mut CounterRng| (g.next_u64(), [g.next_u32(), g.next_u32(), g.next_u32()]);

    // Ziggurat: the tables go to the driver as the host uploads them, then
    // runs of variates on random streams, and on streams whose first
    // attempt is known to take the tail (layer 0 beyond the base rectangle)
    // or a wedge, so that both slow paths are well covered.
    let tables = ZigguratTables::new();
    let flat: Vec<String> = tables
        .to_flat()
        .iter()
        .map(|v| format!("{:x}", v.to_bits()))
        .collect();
    c.push(format!("T {}", flat.join(" ")), "ok".into());
    let zig = |c: &mut Cases, seed: u64, w: [u32; 3], count: u32| {
        let mut rng = CounterRng::from_raw(seed, w, 0);
        let mut expected = String::new();
        for _ in 0..count {
            let z = normal_zig_with(&tables, &mut rng);
            write!(expected, "{:x} ", z.to_bits()).expect("write to String");
        }
        write!(expected, "{:x}", rng.next_u32()).expect("write to String");
        c.push(
            format!("Z {seed:x} {:x} {:x} {:x} {count:x}", w[0], w[1], w[2]),
            expected,
        );
    };
    for i in 0..5000u32 {
        let (seed, w) = stream(&mut g);
        zig(&mut c, seed, w, 1 + i % 50);
    }
    let (mut tails, mut wedges) = (0, 0);
    while tails < 1000 || wedges < 1000 {
        let (seed, w) = stream(&mut g);
        let first = CounterRng::from_raw(seed, w, 0).next_u32();
        let layer = (first & 0xff) as usize;
        let u = ((first >> 9) as f64 + 0.5) / 8_388_608.0;
        if u >= tables.r()[layer] {
            if layer == 0 && tails < 1000 {
                tails += 1;
                zig(&mut c, seed, w, 3);
            } else if layer != 0 && wedges < 1000 {
                wedges += 1;
                zig(&mut c, seed, w, 3);
            }
        }
    }
    for i in 0..30_000u32 {
        let n = match i % 5 {
            0 => (g.next_u32() % 100) as u64,
            1 => log_uniform(&mut g, 0.0, 15.95) as u64,
            2 => 50_000_000,
            3 => 1u64 << 53,
            _ => log_uniform(&mut g, 1.0, 4.0) as u64,
        };
        let p = match i % 7 {
            0 => g.open01(),
            1 => log_uniform(&mut g, -16.0, 0.0),
            2 => 1.0 - log_uniform(&mut g, -16.0, 0.0),
            3 => [0.0, 1.0, 0.5, -0.1, 1.1, f64::NAN, 1e-300][(i / 7 % 7) as usize],
            4 => 14.0 / n.max(1) as f64 * (0.9 + 0.2 * g.open01()),
            _ => g.open01() * 0.5,
        };
        let (seed, w) = stream(&mut g);
        c.sampler('B', seed, w, &format!("{n:x} {:x}", p.to_bits()), |r| {
            detmath::binomial(r, n, p)
        });
    }
    for i in 0..10_000u32 {
        let lambda = match i % 4 {
            0 => log_uniform(&mut g, -3.0, 7.0),
            1 => 8.0 + 4.0 * g.open01(),
            2 => [0.0, -1.0, f64::NAN, 10.0, 9.999_999_999, 1e12][(i / 4 % 6) as usize],
            _ => 30.0 * g.open01(),
        };
        let (seed, w) = stream(&mut g);
        c.sampler('O', seed, w, &format!("{:x}", lambda.to_bits()), |r| {
            detmath::poisson(r, lambda)
        });
        let l = if i % 50 == 0 {
            1.0
        } else {
            detmath::exp(-5.0 * g.open01())
        };
        let (seed, w) = stream(&mut g);
        c.sampler('S', seed, w, &format!("{:x}", l.to_bits()), |r| {
            detmath::poisson_small(r, l)
        });
        let lq = match i % 9 {
            0 => f64::NEG_INFINITY,
            1 => 0.0,
            2 => -1e-300,
            _ => detmath::ln_1p(-log_uniform(&mut g, -12.0, 0.0).min(0.999_999)),
        };
        let (seed, w) = stream(&mut g);
        c.sampler('G', seed, w, &format!("{:x}", lq.to_bits()), |r| {
            detmath::geometric_skip(r, lq)
        });
    }
    c
}

#[test]
fn cuda_headers_match_rust_bit_for_bit() {
    let Some(cxx) = find_cxx() else {
        println!("NOTE: no C++ compiler found ($CXX, c++, g++, clang++): CUDA twin check skipped");
        return;
    };
    let cases = build_cases();
    // -O0 also takes the portable multiply-high instead of __int128.
    for (opt, define) in [("-O2", None), ("-O0", Some("SNN_PORT_NO_INT128"))] {
        let exe = build_driver(&cxx, opt, define);
        let output = run_driver(&exe, &cases.input);
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(
            lines.len(),
            cases.expected.len(),
            "{opt}: driver output lines"
        );
        let input: Vec<&str> = cases.input.lines().collect();
        let mismatches: Vec<String> = lines
            .iter()
            .zip(&cases.expected)
            .enumerate()
            .filter(|(_, (got, want))| got.trim() != want.trim())
            .map(|(i, (got, want))| format!("{}\n  C++:  {got}\n  Rust: {want}", input[i]))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{cxx} {opt}: {} of {} results differ, first ones:\n{}",
            mismatches.len(),
            lines.len(),
            mismatches[..mismatches.len().min(10)].join("\n")
        );
        println!("{cxx} {opt}: {} results identical", lines.len());
    }
}
