//! PNG plots (plotters, bitmap backend): spike raster, per-population rate
//! and CV distributions; for runs with areas (see [`crate::areas`]) the
//! area x population rate matrix and the raster of all areas stacked.
//!
//! Text needs a TrueType font, loaded once at run time from common system
//! paths (DejaVu Sans from Debian's `fonts-dejavu-core` first; the
//! `SNN_ANALYZE_FONT` environment variable names another file). Without a
//! font the plots are drawn without text: plotting never fails for lack of
//! a font.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform};

use crate::error::AnalyzeError;
use crate::stats::Window;

/// Runs `$body` with `$root` the drawing area of `$path` of `$size`
/// pixels: an SVG file where `$path` ends in `.svg`, else a PNG (the body
/// is compiled for both backends).
macro_rules! on_backend {
    ($path:expr, $size:expr, |$root:ident| $body:block) => {
        if $path.extension().is_some_and(|e| e == "svg") {
            let $root = SVGBackend::new($path, $size).into_drawing_area();
            $body
        } else {
            let $root = BitMapBackend::new($path, $size).into_drawing_area();
            $body
        }
    };
}

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

/// Refuse a plot whose bitmap (`width` x `height` RGB pixels, its size set
/// by the number of populations or areas, `what`) does not fit in the
/// memory available, before it is allocated.
fn check_bitmap(path: &Path, width: u64, height: u64, what: &str) -> Result<(), AnalyzeError> {
    crate::limits::check_fits(
        width.saturating_mul(height).saturating_mul(3),
        &format!("a {width} x {height} pixel plot of {what}"),
    )
    .map_err(|m| AnalyzeError::input(path, m))
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

/// Draw a spike raster titled `title`: populations from top to bottom, one
/// row per sampled neuron, population `i` in [`color`]`(colors[i])` and
/// labelled, the y label area as wide as the longest name needs.
pub fn raster_titled(
    path: &Path,
    title: &str,
    pops: &[RasterPopulation],
    colors: &[usize],
    w: Window,
    text: bool,
) -> Result<(), AnalyzeError> {
    let longest = pops.iter().map(|p| p.name.chars().count()).max();
    let label_px = 80.max(10 * longest.unwrap_or(0) as u32 + 15);
    raster_with(path, title, pops, colors, label_px, w, text)
}

fn raster_with(
    path: &Path,
    title: &str,
    pops: &[RasterPopulation],
    colors: &[usize],
    label_px: u32,
    w: Window,
    text: bool,
) -> Result<(), AnalyzeError> {
    let total: usize = pops.iter().map(|p| p.trains.len()).sum();
    let rows = total.max(1) as f64;
    on_backend!(path, (1200, 800), |root| {
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            b.caption(title, ("sans-serif", 24))
                .x_label_area_size(45)
                .y_label_area_size(label_px);
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
            let c = color(colors.get(pi).copied().unwrap_or(pi));
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
                let style = text_style(16, c, HPos::Right, VPos::Center);
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
    })
}

/// A population's neurons in [`raster_by_id`]: the sampled neurons' global
/// ids (sorted) and their spike trains in the plotted window.
#[derive(Debug, Clone)]
pub struct IdRasterPopulation {
    /// Population name.
    pub name: String,
    /// The population's global ids `[first, end)`.
    pub id_range: (u64, u64),
    /// (global id, spike times ms) of each sampled neuron.
    pub neurons: Vec<(u64, Vec<f64>)>,
}

/// A spike raster with neuron ids on the y axis (as NEST's microcircuit
/// example draws it): each population a band as tall as it has neurons,
/// its sampled neurons at their ids (a sample proportional to its size, so
/// every band is equally dense), the first population at the top, bands
/// labelled with the population's name.
pub fn raster_by_id(
    path: &Path,
    title: &str,
    pops: &[IdRasterPopulation],
    w: Window,
    text: bool,
) -> Result<(), AnalyzeError> {
    let lo = pops.iter().map(|p| p.id_range.0).min().unwrap_or(0) as f64;
    let hi = pops.iter().map(|p| p.id_range.1).max().unwrap_or(1) as f64;
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let longest = pops
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(0);
    on_backend!(path, (1200, 800), |root| {
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            // The names go into the right margin.
            b.caption(title, ("sans-serif", 24))
                .x_label_area_size(45)
                .y_label_area_size(75)
                .margin_right(20 + 10 * longest as u32);
        }
        // Ids grow downwards: the first population at the top.
        let mut chart = b
            .build_cartesian_2d(w.t_start..w.t_stop, hi..lo)
            .map_err(|e| plot_err(path, e))?;
        let mut mesh = chart.configure_mesh();
        let id_label = |v: &f64| format!("{v:.0}");
        mesh.light_line_style(WHITE).y_label_formatter(&id_label);
        if text {
            mesh.x_desc("time (ms)").y_desc("neuron id");
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        // A mark spans about one pixel row of the plot, at least one id.
        let half = ((hi - lo) / 700.0).max(0.5) * 0.5;
        for (pi, p) in pops.iter().enumerate() {
            let c = color(pi);
            let marks = p.neurons.iter().flat_map(|(id, tr)| {
                let y = *id as f64 + 0.5;
                tr.iter().map(move |&t| {
                    Rectangle::new([(t, y - half), (t, y + half)], c.stroke_width(2))
                })
            });
            chart.draw_series(marks).map_err(|e| plot_err(path, e))?;
            let (a, e) = (p.id_range.0 as f64, p.id_range.1 as f64);
            if pi + 1 < pops.len() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(w.t_start, e), (w.t_stop, e)],
                        BLACK.mix(0.2),
                    )))
                    .map_err(|e| plot_err(path, e))?;
            }
            if text {
                let (px, py) = chart.backend_coord(&(w.t_stop, 0.5 * (a + e)));
                let style = text_style(16, c, HPos::Left, VPos::Center);
                root.draw(&Text::new(p.name.clone(), (px + 8, py), style))
                    .map_err(|e| plot_err(path, e))?;
            }
        }
        root.present().map_err(|e| plot_err(path, e))?;
        Ok(())
    })
}

/// One area's band of [`area_raster`]: its populations, each with its
/// colour index (its column in the area x population matrix, so a
/// population type has one colour in every area).
#[derive(Debug, Clone)]
pub struct RasterArea {
    /// Area name.
    pub name: String,
    /// (colour index, population rows), top to bottom.
    pub populations: Vec<(usize, RasterPopulation)>,
}

fn text_style(size: u32, c: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(&c)
        .pos(Pos::new(h, v))
}

/// Height (px) of [`area_raster`] for `n_areas` areas: 64 px per area
/// band, within [600, 3200].
pub fn area_raster_height(n_areas: usize) -> u32 {
    (130 + 64 * n_areas as u32).clamp(600, 3200)
}

/// Draw a spike raster of areas stacked from top to bottom, each a band
/// (shaded alternately, named on the y axis) holding its populations'
/// rows; population colours by index, named in a legend (`legend[k]` is
/// the name of colour `k`) right of the plot.
pub fn area_raster(
    path: &Path,
    title: &str,
    areas: &[RasterArea],
    legend: &[String],
    w: Window,
    text: bool,
) -> Result<(), AnalyzeError> {
    let band_rows: Vec<usize> = areas
        .iter()
        .map(|a| a.populations.iter().map(|(_, p)| p.trains.len()).sum())
        .collect();
    let rows = band_rows.iter().sum::<usize>().max(1) as f64;
    on_backend!(path, (1400, area_raster_height(areas.len())), |root| {
        let err = |e| plot_err(path, e);
        root.fill(&WHITE).map_err(err)?;
        let mut b = ChartBuilder::on(&root);
        b.margin(15).margin_right(110);
        if text {
            let longest = areas
                .iter()
                .map(|a| a.name.chars().count())
                .max()
                .unwrap_or(0);
            b.caption(title, ("sans-serif", 24))
                .x_label_area_size(45)
                .y_label_area_size(60.max(10 * longest as u32 + 20));
        }
        let mut chart = b
            .build_cartesian_2d(w.t_start..w.t_stop, 0.0..rows)
            .map_err(err)?;
        // Row 0 at the top: row r spans [rows - r - 1, rows - r]. Every other
        // area's band shaded, under the grid.
        let mut row = 0usize;
        for (ai, &n_rows) in band_rows.iter().enumerate() {
            if ai % 2 == 1 {
                let (top, bottom) = (rows - row as f64, rows - (row + n_rows) as f64);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(w.t_start, bottom), (w.t_stop, top)],
                        RGBColor(236, 236, 236).filled(),
                    )))
                    .map_err(err)?;
            }
            row += n_rows;
        }
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .y_labels(0)
            .light_line_style(TRANSPARENT);
        if text {
            mesh.x_desc("time (ms)");
        } else {
            mesh.x_labels(0);
        }
        mesh.draw().map_err(err)?;
        let mut row = 0usize;
        for (ai, (a, &n_rows)) in areas.iter().zip(&band_rows).enumerate() {
            let (top, bottom) = (rows - row as f64, rows - (row + n_rows) as f64);
            for (ci, p) in &a.populations {
                let c = color(*ci);
                let marks = p.trains.iter().enumerate().flat_map(|(k, tr)| {
                    let y = rows - (row + k) as f64 - 0.5;
                    tr.iter().map(move |&t| {
                        Rectangle::new([(t, y - 0.5), (t, y + 0.5)], c.stroke_width(2))
                    })
                });
                chart.draw_series(marks).map_err(err)?;
                row += p.trains.len();
            }
            if ai + 1 < areas.len() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(w.t_start, bottom), (w.t_stop, bottom)],
                        BLACK.mix(0.35),
                    )))
                    .map_err(err)?;
            }
            if text && n_rows > 0 {
                let (px, py) = chart.backend_coord(&(w.t_start, (top + bottom) / 2.0));
                let style = text_style(15, BLACK, HPos::Right, VPos::Center);
                root.draw(&Text::new(a.name.clone(), (px - 8, py), style))
                    .map_err(err)?;
            }
        }
        if text {
            let (x, y) = chart.backend_coord(&(w.t_stop, rows));
            root.draw(&Text::new(
                "population",
                (x + 15, y),
                text_style(15, BLACK, HPos::Left, VPos::Top),
            ))
            .map_err(err)?;
            for (k, name) in legend.iter().enumerate() {
                let yk = y + 24 + 22 * k as i32;
                root.draw(&Rectangle::new(
                    [(x + 15, yk + 3), (x + 29, yk + 17)],
                    color(k).filled(),
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    name.clone(),
                    (x + 36, yk + 10),
                    text_style(15, color(k), HPos::Left, VPos::Center),
                ))
                .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
        Ok(())
    })
}

/// The viridis colour map (matplotlib's default) at `x` in [0, 1]
/// (clamped), interpolated linearly between 8 anchors.
pub fn viridis(x: f64) -> RGBColor {
    const V: [(f64, f64, f64); 8] = [
        (68.0, 1.0, 84.0),
        (70.0, 50.0, 127.0),
        (54.0, 92.0, 141.0),
        (39.0, 127.0, 143.0),
        (31.0, 162.0, 136.0),
        (74.0, 194.0, 110.0),
        (160.0, 219.0, 57.0),
        (254.0, 232.0, 37.0),
    ];
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = x * (V.len() - 1) as f64;
    let k = (f.floor() as usize).min(V.len() - 2);
    let u = f - k as f64;
    let lerp = |a: f64, b: f64| (a + (b - a) * u).round() as u8;
    let (a, b) = (V[k], V[k + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Colour of cells without a value in [`rate_matrix`].
pub const ABSENT: RGBColor = RGBColor(215, 215, 215);

/// The upper end of a colour scale for values up to `max` and its tick
/// step: a multiple of 1, 2 or 5 x 10^k with at most 6 ticks.
fn nice_scale(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-12))
        .unwrap_or(10.0 * mag);
    ((max / step - 1e-9).ceil() * step, step)
}

/// Draw an area x population matrix of mean rates: one row per area, one
/// column per population within area, cells coloured on a linear viridis
/// scale from 0 Hz (with a labelled colour bar) and holding their value;
/// absent cells grey, marked "n/a" and named in a legend swatch.
pub fn rate_matrix(
    path: &Path,
    title: &str,
    m: &crate::areas::RateMatrix,
    text: bool,
) -> Result<(), AnalyzeError> {
    let (n_rows, n_cols) = (m.areas.len().max(1) as i32, m.columns.len().max(1) as i32);
    let longest = m.areas.iter().map(|a| a.chars().count()).max().unwrap_or(0) as i32;
    let (cw, ch) = (76, 26);
    let left = 50 + (10 * longest + 12).max(40);
    let top = 60;
    let bar_x = left + n_cols * cw + 30;
    let width = (bar_x + 150).max(700);
    let height = top + n_rows * ch + 75;
    check_bitmap(
        path,
        width as u64,
        height as u64,
        &format!("{n_rows} areas x {n_cols} populations"),
    )?;
    on_backend!(path, (width as u32, height as u32), |root| {
        let err = |e| plot_err(path, e);
        root.fill(&WHITE).map_err(err)?;
        let vmax = m
            .rates_hz
            .iter()
            .flatten()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let (vtop, step) = nice_scale(vmax);
        for (r, row) in m.rates_hz.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let (x0, y0) = (left + c as i32 * cw, top + r as i32 * ch);
                let fill = v.map_or(ABSENT, |v| viridis(v / vtop));
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cw, y0 + ch)],
                    fill.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new([(x0, y0), (x0 + cw, y0 + ch)], WHITE))
                    .map_err(err)?;
                if text {
                    let (label, tc) = match v {
                        Some(v) if v / vtop > 0.55 => (format!("{v:.2}"), BLACK),
                        Some(v) => (format!("{v:.2}"), WHITE),
                        None => ("n/a".to_string(), RGBColor(80, 80, 80)),
                    };
                    root.draw(&Text::new(
                        label,
                        (x0 + cw / 2, y0 + ch / 2),
                        text_style(13, tc, HPos::Center, VPos::Center),
                    ))
                    .map_err(err)?;
                }
            }
        }
        // Colour bar: 0 Hz at the bottom.
        let (bar_top, bar_bottom) = (top, top + n_rows * ch);
        let bar_h = bar_bottom - bar_top;
        for k in 0..bar_h {
            let c = viridis((bar_h - k) as f64 / bar_h as f64);
            root.draw(&Rectangle::new(
                [(bar_x, bar_top + k), (bar_x + 22, bar_top + k + 1)],
                c.filled(),
            ))
            .map_err(err)?;
        }
        root.draw(&Rectangle::new(
            [(bar_x, bar_top), (bar_x + 22, bar_bottom)],
            BLACK,
        ))
        .map_err(err)?;
        // The absent-cell swatch below the bar.
        let sw_y = bar_bottom + 14;
        root.draw(&Rectangle::new(
            [(bar_x, sw_y), (bar_x + 22, sw_y + 16)],
            ABSENT.filled(),
        ))
        .map_err(err)?;
        if text {
            root.draw(&Text::new(
                title,
                (width / 2, 18),
                text_style(22, BLACK, HPos::Center, VPos::Top),
            ))
            .map_err(err)?;
            let n_ticks = (vtop / step).round() as i32;
            for k in 0..=n_ticks {
                let v = k as f64 * step;
                let y = bar_bottom - (v / vtop * bar_h as f64).round() as i32;
                root.draw(&PathElement::new(
                    vec![(bar_x + 22, y), (bar_x + 27, y)],
                    BLACK,
                ))
                .map_err(err)?;
                root.draw(&Text::new(
                    format!("{v}"),
                    (bar_x + 30, y),
                    text_style(13, BLACK, HPos::Left, VPos::Center),
                ))
                .map_err(err)?;
            }
            let rot = ("sans-serif", 15)
                .into_font()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new(
                "mean rate (Hz)",
                (bar_x + 80, (bar_top + bar_bottom) / 2),
                rot.clone(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                "absent",
                (bar_x + 30, sw_y + 8),
                text_style(13, BLACK, HPos::Left, VPos::Center),
            ))
            .map_err(err)?;
            for (r, a) in m.areas.iter().enumerate() {
                root.draw(&Text::new(
                    a.clone(),
                    (left - 8, top + r as i32 * ch + ch / 2),
                    text_style(14, BLACK, HPos::Right, VPos::Center),
                ))
                .map_err(err)?;
            }
            for (c, name) in m.columns.iter().enumerate() {
                root.draw(&Text::new(
                    name.clone(),
                    (left + c as i32 * cw + cw / 2, bar_bottom + 8),
                    text_style(14, BLACK, HPos::Center, VPos::Top),
                ))
                .map_err(err)?;
            }
            root.draw(&Text::new(
                "population",
                (left + n_cols * cw / 2, bar_bottom + 38),
                text_style(16, BLACK, HPos::Center, VPos::Top),
            ))
            .map_err(err)?;
            root.draw(&Text::new("area", (18, (bar_top + bar_bottom) / 2), rot))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    })
}

/// Histogram counts of `values` in `n_bins` bins of `width` from `lo`
/// (values outside go to the first or last bin).
/// Line plots, one per population, stacked in panels sharing the x axis
/// (e.g. the PSTH, the power spectrum); `log_y` draws the y axis in
/// decades (non-positive values are left out).
pub fn line_panels(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    pops: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
    text: bool,
) -> Result<(), AnalyzeError> {
    let n = pops.len().max(1);
    let height = 60 + 150 * n as u64;
    check_bitmap(path, 1200, height, &format!("{n} populations"))?;
    let height = u32::try_from(height).unwrap_or(u32::MAX);
    on_backend!(path, (1200, height), |root| {
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let area = if text {
            root.titled(title, ("sans-serif", 24))
                .map_err(|e| plot_err(path, e))?
        } else {
            root.margin(30, 0, 0, 0)
        };
        let panels = area.split_evenly((n, 1));
        let x_lo = pops
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.0))
            .fold(f64::INFINITY, f64::min);
        let x_hi = pops
            .iter()
            .flat_map(|(_, v)| v.iter().map(|p| p.0))
            .fold(f64::NEG_INFINITY, f64::max);
        let (x_lo, x_hi) = if x_lo < x_hi {
            (x_lo, x_hi)
        } else {
            (0.0, 1.0)
        };
        for (i, ((name, pts), panel)) in pops.iter().zip(panels.iter()).enumerate() {
            let ys = || {
                pts.iter()
                    .map(|p| p.1)
                    .filter(|y| y.is_finite() && (!log_y || *y > 0.0))
            };
            let y_hi = ys().fold(f64::NEG_INFINITY, f64::max);
            let y_lo = ys().fold(f64::INFINITY, f64::min);
            let mut b = ChartBuilder::on(panel);
            b.margin(8);
            if text {
                b.caption(name, ("sans-serif", 15))
                    .x_label_area_size(if i + 1 == n { 35 } else { 0 })
                    .y_label_area_size(70);
            }
            let c = color(i);
            // The same panel for either y axis (their coordinate types
            // differ).
            macro_rules! panel {
                ($y_range:expr, $points:expr) => {{
                    let mut chart = b
                        .build_cartesian_2d(x_lo..x_hi, $y_range)
                        .map_err(|e| plot_err(path, e))?;
                    let mut mesh = chart.configure_mesh();
                    mesh.light_line_style(WHITE).y_labels(4);
                    if text {
                        mesh.y_desc(y_desc);
                        if i + 1 == n {
                            mesh.x_desc(x_desc);
                        }
                    } else {
                        mesh.x_labels(0).y_labels(0);
                    }
                    mesh.draw().map_err(|e| plot_err(path, e))?;
                    chart
                        .draw_series(LineSeries::new($points, c.stroke_width(1)))
                        .map_err(|e| plot_err(path, e))?;
                }};
            }
            if log_y {
                let (lo, hi) = if y_lo < y_hi {
                    (y_lo, y_hi * 1.5)
                } else {
                    (1e-3, 1.0)
                };
                panel!(
                    (lo..hi).log_scale(),
                    pts.iter().copied().filter(|p| p.1 > 0.0)
                );
            } else {
                let hi = if y_hi > 0.0 { y_hi * 1.1 } else { 1.0 };
                panel!(0.0..hi, pts.iter().copied());
            }
        }
        root.present().map_err(|e| plot_err(path, e))?;
        Ok(())
    })
}

/// Horizontal boxplots of per-population values (median, quartiles,
/// whiskers at 1.5 IQR), one row per population from the top, as the
/// microcircuit paper shows firing rates.
pub fn boxplots(
    path: &Path,
    title: &str,
    x_desc: &str,
    pops: &[(String, Vec<f64>)],
    text: bool,
) -> Result<(), AnalyzeError> {
    let n = pops.len().max(1);
    let height = 100 + 40 * n as u64;
    check_bitmap(path, 1000, height, &format!("{n} populations"))?;
    let height = u32::try_from(height).unwrap_or(u32::MAX);
    on_backend!(path, (1000, height), |root| {
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let hi = pops
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.05;
        let longest = pops.iter().map(|p| p.0.chars().count()).max().unwrap_or(0);
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if text {
            b.caption(title, ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(20 + 9 * longest as u32);
        }
        let names: Vec<String> = pops.iter().map(|p| p.0.clone()).collect();
        // Quartiles are f32 in plotters.
        let mut chart = b
            .build_cartesian_2d(0.0f32..hi as f32, (0..n).into_segmented())
            .map_err(|e| plot_err(path, e))?;
        let mut mesh = chart.configure_mesh();
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(k) => names.get(n - 1 - *k).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        mesh.disable_y_mesh()
            .light_line_style(WHITE)
            .y_label_formatter(&label);
        if text {
            mesh.x_desc(x_desc);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| plot_err(path, e))?;
        for (i, (_, values)) in pops.iter().enumerate() {
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            if finite.is_empty() {
                continue;
            }
            let q = Quartiles::new(&finite);
            chart
                .draw_series(std::iter::once(
                    Boxplot::new_horizontal(SegmentValue::CenterOf(n - 1 - i), &q)
                        .width(20)
                        .style(color(i).stroke_width(2)),
                ))
                .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
        Ok(())
    })
}

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
    let height = 60 + 240 * grid_rows as u64;
    check_bitmap(path, 1200, height, &format!("{n} populations"))?;
    let height = u32::try_from(height).unwrap_or(u32::MAX);
    on_backend!(path, (1200, height), |root| {
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
                None => {
                    // Values may be negative (correlations).
                    let lo = finite.iter().copied().fold(0.0f64, f64::min);
                    (lo, (hi - lo) / 30.0, 30)
                }
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
    })
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
        raster_titled(&r, "raster", &pops, &[0, 1], w, false).unwrap();
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
        raster_titled(&r, "raster", &pops, &[0], w, true).unwrap();
        assert!(is_png(&r));
        let h = dir.path().join("h.png");
        let data: Vec<(String, Vec<f64>)> = (0..9)
            .map(|i| (format!("P{i}"), vec![i as f64; 3]))
            .collect();
        distributions(&h, "CV ISI", "CV", &data, 1.0, None, true).unwrap();
        assert!(is_png(&h));
    }
}
