//! PNG plots (plotters, bitmap backend): spike raster, per-population rate
//! and CV distributions.
//!
//! Text needs a TrueType font, loaded once at run time from common system
//! paths (DejaVu Sans from Debian's `fonts-dejavu-core` first; the
//! `SNN_ANALYZE_FONT` environment variable names another file). Without a
//! font the plots are drawn without text: plotting never fails for lack of
//! a font.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::AnalyzeError;
use crate::stats::Window;

/// Font files tried in order (after `$SNN_ANALYZE_FONT`).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Load and register a font for plot text (once per process). Returns the
/// font file used, or `None` if none could be loaded.
pub fn init_font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let env = std::env::var_os("SNN_ANALYZE_FONT").map(PathBuf::from);
        let candidates = env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            let styles = [
                FontStyle::Normal,
                FontStyle::Bold,
                FontStyle::Italic,
                FontStyle::Oblique,
            ];
            if styles
                .iter()
                .all(|&s| plotters::style::register_font("sans-serif", s, bytes).is_ok())
            {
                return Some(path);
            }
        }
        None
    })
    .as_deref()
}

/// Colours of the populations (matplotlib's tab10), cycled.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of population `i`.
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::io(path, "draw plot", std::io::Error::other(e.to_string()))
}

/// One population's rows of the raster: the sampled neurons' spike trains
/// (already restricted to the plotted window).
#[derive(Debug, Clone)]
pub struct RasterPopulation {
    /// Population name.
    pub name: String,
    /// One train per sampled neuron (ms).
    pub trains: Vec<Vec<f64>>,
}

/// Draw a spike raster: populations from top to bottom, one row per sampled
/// neuron, coloured and labelled per population.
pub fn raster(
    path: &Path,
    pops: &[RasterPopulation],
    w: Window,
    text: bool,
) -> Result<(), AnalyzeError> {
    let total: usize = pops.iter().map(|p| p.trains.len()).sum();
    let rows = total.max(1) as f64;
    let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption("Spike raster", ("sans-serif", 24))
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut chart = b
        .build_cartesian_2d(w.t_start..w.t_stop, 0.0..rows)
        .map_err(|e| plot_err(path, e))?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_y_mesh().y_labels(0).light_line_style(WHITE);
    if text {
        mesh.x_desc("time (ms)");
    } else {
        mesh.x_labels(0);
    }
    mesh.draw().map_err(|e| plot_err(path, e))?;
    let mut row = 0usize;
    for (pi, p) in pops.iter().enumerate() {
        let c = color(pi);
        let first_row = row;
        let mut marks = Vec::new();
        for tr in &p.trains {
            // Row 0 at the top.
            let y = rows - row as f64 - 0.5;
            for &t in tr {
                marks.push(Rectangle::new(
                    [(t, y - 0.4), (t, y + 0.4)],
                    c.stroke_width(2),
                ));
            }
            row += 1;
        }
        chart.draw_series(marks).map_err(|e| plot_err(path, e))?;
        if text && row > first_row {
            let mid = rows - (first_row + row) as f64 / 2.0;
            let (px, py) = chart.backend_coord(&(w.t_start, mid));
            let style = ("sans-serif", 16).into_font().color(&c).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            root.draw(&Text::new(p.name.clone(), (px - 8, py), style))
                .map_err(|e| plot_err(path, e))?;
        }
        if row > first_row && pi + 1 < pops.len() {
            let y = rows - row as f64;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(w.t_start, y), (w.t_stop, y)],
                    BLACK.mix(0.2),
                )))
                .map_err(|e| plot_err(path, e))?;
        }
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

/// Histogram counts of `values` in `n_bins` bins of `width` from `lo`
/// (values outside go to the first or last bin).
fn histogram(values: &[f64], lo: f64, width: f64, n_bins: usize) -> Vec<u64> {
    let mut c = vec![0u64; n_bins];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let k = ((v - lo) / width).floor().max(0.0) as usize;
        c[k.min(n_bins - 1)] += 1;
    }
    c
}

/// A grid of per-population histograms (one panel per population), e.g. of
/// per-neuron rates or CVs. `x_floor` is the least upper end of the x axis;
/// values that are multiples of `quantum` (e.g. rates: spike count / T) get
/// bins that are multiples of it, centred on the possible values.
pub fn distributions(
    path: &Path,
    title: &str,
    x_desc: &str,
    pops: &[(String, Vec<f64>)],
    x_floor: f64,
    quantum: Option<f64>,
    text: bool,
) -> Result<(), AnalyzeError> {
    let n = pops.len().max(1);
    let cols = if n <= 2 {
        n
    } else if n <= 8 {
        2
    } else {
        3
    };
    let grid_rows = n.div_ceil(cols);
    let height = (60 + 240 * grid_rows) as u32;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let area = if text {
        root.titled(title, ("sans-serif", 26))
            .map_err(|e| plot_err(path, e))?
    } else {
        root.margin(30, 0, 0, 0)
    };
    let panels = area.split_evenly((grid_rows, cols));
    for (i, ((name, values), panel)) in pops.iter().zip(panels.iter()).enumerate() {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = finite.iter().copied().fold(0.0f64, f64::max);
        let hi = (max * 1.05).max(x_floor);
        let (lo, width, n_bins) = match quantum.filter(|q| q.is_finite() && *q > 0.0) {
            Some(q) => {
                let width = ((hi / 30.0) / q).ceil().max(1.0) * q;
                let n = ((max + q / 2.0) / width).floor() as usize + 1;
                (-q / 2.0, width, n)
            }
            None => (0.0, hi / 30.0, 30),
        };
        let hi = hi.max(lo + width * n_bins as f64);
        let counts = histogram(&finite, lo, width, n_bins);
        let y_hi = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
        let mut b = ChartBuilder::on(panel);
        b.margin(10);
        if text {
            let mean = if finite.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.3}", finite.iter().sum::<f64>() / finite.len() as f64)
            };
            b.caption(
                format!("{name}  (n = {}, mean {mean})", finite.len()),
                ("sans-serif", 17),
            )
            .x_label_area_size(35)
            .y_label_area_size(50);
        }
        let mut chart = b
            .build_cartesian_2d(lo.min(0.0)..hi, 0.0..y_hi)
            .map_err(|e| plot_err(path, e))?;
        let mut mesh = chart.configure_mesh();
        let int_label = |v: &f64| format!("{v:.0}");
        mesh.disable_x_mesh()
            .light_line_style(WHITE)
            .y_label_formatter(&int_label);
        if text {
            mesh.x_desc(x_desc).y_desc("neurons");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        let c = color(i);
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &k)| k > 0)
                    .map(|(k, &cnt)| {
                        Rectangle::new(
                            [
                                (lo + k as f64 * width, 0.0),
                                (lo + (k + 1) as f64 * width, cnt as f64),
                            ],
                            c.mix(0.8).filled(),
                        )
                    }),
            )
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_png(p: &Path) -> bool {
        std::fs::read(p)
            .map(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
            .unwrap_or(false)
    }

    #[test]
    fn plots_without_text_need_no_font() {
        let dir = tempfile::tempdir().unwrap();
        let w = Window {
            t_start: 0.0,
            t_stop: 100.0,
        };
        let pops = vec![
            RasterPopulation {
                name: "E".into(),
                trains: vec![vec![1.0, 50.0], vec![], vec![99.0]],
            },
            RasterPopulation {
                name: "I".into(),
                trains: vec![vec![20.0]],
            },
        ];
        let r = dir.path().join("raster.png");
        raster(&r, &pops, w, false).unwrap();
        assert!(is_png(&r));
        let h = dir.path().join("h.png");
        let data = vec![
            ("E".to_string(), vec![1.0, 2.0, 2.5]),
            ("I".to_string(), vec![]),
        ];
        distributions(&h, "rates", "rate (Hz)", &data, 1.0, Some(0.5), false).unwrap();
        assert!(is_png(&h));
    }

    #[test]
    fn plots_with_text_when_a_font_exists() {
        if init_font().is_none() {
            eprintln!("note: no font found, text plots not checked");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let w = Window {
            t_start: 0.0,
            t_stop: 100.0,
        };
        let pops = vec![RasterPopulation {
            name: "L23E".into(),
            trains: vec![vec![1.0, 50.0], vec![3.0]],
        }];
        let r = dir.path().join("raster.png");
        raster(&r, &pops, w, true).unwrap();
        assert!(is_png(&r));
        let h = dir.path().join("h.png");
        let data: Vec<(String, Vec<f64>)> = (0..9)
            .map(|i| (format!("P{i}"), vec![i as f64; 3]))
            .collect();
        distributions(&h, "CV ISI", "CV", &data, 1.0, None, true).unwrap();
        assert!(is_png(&h));
    }
}
