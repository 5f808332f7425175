//! Time-resolved population activity and its power spectrum: the
//! population rate in bins of [`ACTIVITY_BIN_MS`] (the PSTH of
//! `psth.png`) and its power spectral density by Welch's method (Hann
//! windows of [`WELCH_SEGMENT`] bins, half overlapping; `spectrum.png`).

use crate::stats::Window;

/// Bin width of the population activity, ms (the spectrum reaches 500 Hz).
pub const ACTIVITY_BIN_MS: f64 = 1.0;
/// Bins per Welch segment (1.024 s at 1 ms: 0.98 Hz resolution).
pub const WELCH_SEGMENT: usize = 1024;
/// The most activity bins kept per population (longer windows are not
/// given a PSTH or a spectrum).
pub const MAX_ACTIVITY_BINS: u64 = 1 << 24;

/// The population rate (Hz) of `n_neurons` neurons in bins of
/// [`ACTIVITY_BIN_MS`] from `w.t_start` (full bins only), from their
/// sorted spike trains; `None` when the window is longer than
/// [`MAX_ACTIVITY_BINS`] bins or the population is empty.
pub fn activity<'a>(
    trains: impl Iterator<Item = &'a [f64]>,
    n_neurons: usize,
    w: Window,
) -> Option<Vec<f64>> {
    let n_bins = (w.duration_ms() / ACTIVITY_BIN_MS).floor();
    if n_neurons == 0 || n_bins.is_nan() || n_bins < 1.0 || n_bins > MAX_ACTIVITY_BINS as f64 {
        return None;
    }
    let n_bins = n_bins as usize;
    let mut counts = vec![0u64; n_bins];
    for tr in trains {
        for &t in tr {
            let k = ((t - w.t_start) / ACTIVITY_BIN_MS).floor();
            if k >= 0.0 && (k as usize) < n_bins {
                counts[k as usize] += 1;
            }
        }
    }
    let per_hz = 1.0 / (n_neurons as f64 * ACTIVITY_BIN_MS * 1e-3);
    Some(counts.iter().map(|&c| c as f64 * per_hz).collect())
}

/// In-place radix-2 FFT of `re`/`im` (length a power of two).
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    debug_assert!(n.is_power_of_two() && im.len() == n);
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * c - im[b] * s, re[b] * s + im[b] * c);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// The one-sided power spectral density of `x` (sampled every
/// [`ACTIVITY_BIN_MS`]) by Welch's method: the mean is removed, segments of
/// [`WELCH_SEGMENT`] samples (or the largest power of two that fits, at
/// least 16) with a Hann window, half overlapping, averaged. Returns
/// (frequency Hz, density in units of x² per Hz) from 0 to the Nyquist
/// frequency; `None` for fewer than 16 samples.
pub fn welch_psd(x: &[f64]) -> Option<Vec<(f64, f64)>> {
    if x.len() < 16 {
        return None;
    }
    let mut seg = WELCH_SEGMENT;
    while seg > x.len() {
        seg /= 2;
    }
    let fs = 1000.0 / ACTIVITY_BIN_MS;
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let win: Vec<f64> = (0..seg)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / seg as f64).cos())
        .collect();
    let norm = fs * win.iter().map(|w| w * w).sum::<f64>();
    let mut psd = vec![0.0; seg / 2 + 1];
    let mut n_seg = 0usize;
    let mut start = 0;
    while start + seg <= x.len() {
        let mut re: Vec<f64> = (0..seg).map(|i| (x[start + i] - mean) * win[i]).collect();
        let mut im = vec![0.0; seg];
        fft(&mut re, &mut im);
        for (k, p) in psd.iter_mut().enumerate() {
            let one_sided = if k == 0 || k == seg / 2 { 1.0 } else { 2.0 };
            *p += one_sided * (re[k] * re[k] + im[k] * im[k]) / norm;
        }
        n_seg += 1;
        start += seg / 2;
    }
    Some(
        psd.iter()
            .enumerate()
            .map(|(k, p)| (k as f64 * fs / seg as f64, p / n_seg as f64))
            .collect(),
    )
}

/// `x` averaged over groups of `k` samples (the last partial group
/// dropped), for plotting a long PSTH.
pub fn rebin(x: &[f64], k: usize) -> Vec<f64> {
    let k = k.max(1);
    x.chunks_exact(k)
        .map(|c| c.iter().sum::<f64>() / k as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_counts_rates() {
        let w = Window {
            t_start: 100.0,
            t_stop: 104.5,
        };
        let trains: Vec<Vec<f64>> = vec![vec![100.0, 100.5, 102.2], vec![103.9, 104.2, 99.0]];
        let a = activity(trains.iter().map(|t| &t[..]), 2, w).unwrap();
        // 4 full bins; 2 neurons, 1 ms: a spike is 500 Hz.
        assert_eq!(a, vec![1000.0, 0.0, 500.0, 500.0]);
    }

    #[test]
    fn fft_matches_the_dft() {
        let n = 64;
        let x: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
        let (mut re, mut im) = (x.clone(), vec![0.0; n]);
        fft(&mut re, &mut im);
        for k in 0..n {
            let (mut r, mut i) = (0.0, 0.0);
            for (t, v) in x.iter().enumerate() {
                let a = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                r += v * a.cos();
                i += v * a.sin();
            }
            assert!((re[k] - r).abs() < 1e-9 && (im[k] - i).abs() < 1e-9, "{k}");
        }
    }

    /// A sinusoid of amplitude A at 40 Hz: the density peaks at 40 Hz and
    /// integrates to its variance A^2/2 (Parseval); white noise of variance
    /// s^2 has the flat density 2 s^2 / fs.
    #[test]
    fn psd_of_a_sinusoid_and_of_noise() {
        let (amp, f0) = (3.0, 40.0);
        let x: Vec<f64> = (0..20_000)
            .map(|i| 10.0 + amp * (2.0 * std::f64::consts::PI * f0 * i as f64 * 1e-3).sin())
            .collect();
        let p = welch_psd(&x).unwrap();
        let df = p[1].0 - p[0].0;
        let peak = p
            .iter()
            .copied()
            .fold((0.0, 0.0), |m, q| if q.1 > m.1 { q } else { m });
        assert!((peak.0 - f0).abs() <= df, "peak at {} Hz", peak.0);
        let power: f64 = p.iter().map(|q| q.1 * df).sum();
        assert!(
            (power - amp * amp / 2.0).abs() < 0.02 * amp * amp / 2.0,
            "{power}"
        );
        // Deterministic "noise": a Weyl sequence, nearly uniform on (-0.5, 0.5).
        let y: Vec<f64> = (0..65_536)
            .map(|i| ((i as f64 * 0.754_877_666_246_692_8) % 1.0) - 0.5)
            .collect();
        let var = y.iter().map(|v| v * v).sum::<f64>() / y.len() as f64;
        let q = welch_psd(&y).unwrap();
        let power: f64 = q.iter().map(|v| v.1 * (q[1].0 - q[0].0)).sum();
        assert!((power - var).abs() < 0.05 * var, "{power} vs {var}");
    }
}
