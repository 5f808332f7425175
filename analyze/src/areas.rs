//! Per-area summaries of models with areas (e.g. the multi-area model:
//! 32 areas, 254 populations named `AREA_POP`).
//!
//! * **Area** of a population: its `area` in `summary.json`; without one
//!   (older summaries), the population's own name. A run *has areas* when
//!   some area holds more than one population of `summary.json`; only such
//!   runs get the outputs below, so models without areas (the microcircuit)
//!   keep exactly their other outputs.
//! * **Areas** are listed in model order (order of first appearance in
//!   `summary.json`) and summarise their *recorded* populations (an area
//!   with none is left out).
//! * **Rates**: `rate_hz` is the mean over all the area's neurons of
//!   spikes / T in the analysis window, i.e. the area's spikes / (neurons x
//!   T): populations weigh by their size. `rate_e_hz` / `rate_i_hz` are the
//!   same over the area's excitatory / inhibitory populations, told apart
//!   by the last letter of the population's name (`E`, `I`); `None` (null,
//!   an empty CSV cell) when the area has none or they have no neurons.
//! * **Population within area** (the columns of the rate matrix): the
//!   population's name after the `AREA_` prefix (`V1_23E` -> `23E`; the
//!   whole name without that prefix), in order of first appearance.
//!
//! Outputs (written by [`crate::report`]): `areas` in `stats.json`,
//! `areas.csv`, the area table on stdout, `rates_by_area.png` (area x
//! population rate matrix), `raster_areas.png` (all areas stacked) and
//! `rasters/AREA.png` (one raster per area; see [`raster_file_names`]).

use std::fmt::Write as _;

use serde::Serialize;

use crate::run::PopulationInfo;
use crate::stats::{PopulationSummary, Window};

/// The area of a population: its `area`, or its own name.
pub fn area_of(info: &PopulationInfo) -> &str {
    info.area.as_deref().unwrap_or(&info.name)
}

/// Whether some area holds more than one of the populations.
pub fn has_areas(pops: &[PopulationInfo]) -> bool {
    pops.iter().enumerate().any(|(i, p)| {
        let a = area_of(p);
        pops[..i].iter().any(|q| area_of(q) == a)
    })
}

/// A population's name within its area: the name after `AREA_`, or the
/// whole name.
pub fn population_in_area(info: &PopulationInfo) -> &str {
    info.name
        .strip_prefix(area_of(info))
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(&info.name)
}

/// An area and the indices of its populations in the list it was grouped
/// from.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaGroup {
    /// The area's name.
    pub name: String,
    /// Indices of its populations, in list order.
    pub populations: Vec<usize>,
}

/// Group populations by area, areas in order of first appearance.
pub fn group_by_area<'a>(pops: impl IntoIterator<Item = &'a PopulationInfo>) -> Vec<AreaGroup> {
    let mut groups: Vec<AreaGroup> = Vec::new();
    for (i, p) in pops.into_iter().enumerate() {
        let a = area_of(p);
        match groups.iter_mut().find(|g| g.name == a) {
            Some(g) => g.populations.push(i),
            None => groups.push(AreaGroup {
                name: a.to_string(),
                populations: vec![i],
            }),
        }
    }
    groups
}

/// One row of the per-area table (`stats.json` `areas`, `areas.csv`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AreaSummary {
    /// The area's name.
    pub area: String,
    /// Number of its recorded populations.
    pub populations: usize,
    /// Number of neurons in them.
    pub n_neurons: u64,
    /// Their spikes in the analysis window.
    pub spikes: u64,
    /// Mean rate over all the area's neurons (Hz).
    pub rate_hz: Option<f64>,
    /// Mean rate over the neurons of its excitatory populations (Hz).
    pub rate_e_hz: Option<f64>,
    /// Mean rate over the neurons of its inhibitory populations (Hz).
    pub rate_i_hz: Option<f64>,
}

/// Spikes / (neurons x T) in Hz; `None` without neurons.
fn pooled_rate_hz<'a>(pops: impl Iterator<Item = &'a PopulationSummary>, w: Window) -> Option<f64> {
    let (n, spikes) = pops.fold((0u64, 0u64), |(n, s), p| (n + p.neurons, s + p.spikes));
    (n > 0).then(|| spikes as f64 / (n as f64 * w.duration_ms() / 1000.0))
}

/// The per-area summaries of the recorded populations: `infos[i]`
/// describes `pops[i]` (both in model order).
pub fn area_summaries(
    infos: &[PopulationInfo],
    pops: &[PopulationSummary],
    w: Window,
) -> Vec<AreaSummary> {
    group_by_area(infos)
        .into_iter()
        .map(|g| {
            let members = || g.populations.iter().map(|&i| &pops[i]);
            let kind = |c: char| members().filter(move |p| p.name.ends_with(c));
            AreaSummary {
                populations: g.populations.len(),
                n_neurons: members().map(|p| p.neurons).sum(),
                spikes: members().map(|p| p.spikes).sum(),
                rate_hz: pooled_rate_hz(members(), w),
                rate_e_hz: pooled_rate_hz(kind('E'), w),
                rate_i_hz: pooled_rate_hz(kind('I'), w),
                area: g.name,
            }
        })
        .collect()
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// `areas.csv`: one row per area, empty cells for undefined rates.
pub fn areas_csv(areas: &[AreaSummary]) -> String {
    let mut s = String::from("area,populations,n_neurons,spikes,rate_hz,rate_e_hz,rate_i_hz\n");
    for a in areas {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            a.area,
            a.populations,
            a.n_neurons,
            a.spikes,
            opt(a.rate_hz),
            opt(a.rate_e_hz),
            opt(a.rate_i_hz)
        );
    }
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

/// The per-area table printed by `snn-analyze`.
pub fn format_area_table(areas: &[AreaSummary]) -> String {
    let width = areas.iter().map(|a| a.area.len()).max().unwrap_or(0).max(8);
    let mut s = format!(
        "{:<width$} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9}\n",
        "area", "pops", "neurons", "spikes", "rate_Hz", "rate_E_Hz", "rate_I_Hz"
    );
    for a in areas {
        let _ = writeln!(
            s,
            "{:<width$} {:>5} {:>9} {:>10} {:>9} {:>9} {:>9}",
            a.area,
            a.populations,
            a.n_neurons,
            a.spikes,
            fmt_opt(a.rate_hz),
            fmt_opt(a.rate_e_hz),
            fmt_opt(a.rate_i_hz)
        );
    }
    s
}

/// Mean rates of the populations by area (rows) and population within
/// area (columns); `None` where an area lacks the population (or it has
/// no neurons).
#[derive(Debug, Clone, PartialEq)]
pub struct RateMatrix {
    /// Row names (areas, model order).
    pub areas: Vec<String>,
    /// Column names (populations within area, order of first appearance).
    pub columns: Vec<String>,
    /// `rates_hz[row][column]`.
    pub rates_hz: Vec<Vec<Option<f64>>>,
}

/// The rate matrix of the recorded populations: `infos[i]` describes
/// `pops[i]`.
pub fn rate_matrix(infos: &[PopulationInfo], pops: &[PopulationSummary]) -> RateMatrix {
    let groups = group_by_area(infos);
    let mut columns: Vec<String> = Vec::new();
    for p in infos {
        let c = population_in_area(p);
        if !columns.iter().any(|x| x == c) {
            columns.push(c.to_string());
        }
    }
    let rates_hz = groups
        .iter()
        .map(|g| {
            let mut row = vec![None; columns.len()];
            for &i in &g.populations {
                let c = population_in_area(&infos[i]);
                if let Some(k) = columns.iter().position(|x| x == c) {
                    row[k] = pops[i].rate_mean_hz;
                }
            }
            row
        })
        .collect();
    RateMatrix {
        areas: groups.into_iter().map(|g| g.name).collect(),
        columns,
        rates_hz,
    }
}

/// File names (without `.png`) of the per-area rasters, one per area: the
/// area's name with characters other than ASCII letters, digits, `-` and
/// `_` replaced by `_` (`area` alone if nothing is left), and `_2`, `_3`,
/// ... appended where two areas would share a name.
pub fn raster_file_names(areas: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(areas.len());
    for a in areas {
        let mut base: String = a
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.chars().all(|c| c == '_') {
            base = format!("area{base}");
        }
        let mut name = base.clone();
        let mut k = 2;
        while out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, area: Option<&str>) -> PopulationInfo {
        PopulationInfo {
            name: name.into(),
            size: 10,
            first_id: None,
            area: area.map(String::from),
        }
    }

    #[test]
    fn areas_and_names_within_them() {
        let mc = [info("L23E", None), info("L23I", Some("L23I"))];
        assert!(!has_areas(&mc));
        let mam = [
            info("V1_23E", Some("V1")),
            info("V1_4I", Some("V1")),
            info("7a_23E", Some("7a")),
            info("TH_x", Some("V1")),
        ];
        assert!(has_areas(&mam));
        assert_eq!(population_in_area(&mam[1]), "4I");
        assert_eq!(population_in_area(&mam[3]), "TH_x");
        let g = group_by_area(&mam);
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g[0].name.as_str(), &g[0].populations[..]),
            ("V1", &[0, 1, 3][..])
        );
        assert_eq!(
            (g[1].name.as_str(), &g[1].populations[..]),
            ("7a", &[2][..])
        );
    }

    fn summary(name: &str, neurons: u64, spikes: u64) -> PopulationSummary {
        PopulationSummary {
            name: name.into(),
            neurons,
            spikes,
            silent_neurons: 0,
            rate_mean_hz: (neurons > 0).then(|| spikes as f64 / neurons as f64),
            rate_sd_hz: None,
            cv_isi_mean: None,
            cv_isi_neurons: 0,
            fano_factor: None,
            fano_population: None,
            correlation_mean: None,
            correlation_pairs: 0,
            pairs_sampled: 0,
        }
    }

    #[test]
    fn rate_matrix_marks_absent_populations() {
        let infos = [
            info("V1_23E", Some("V1")),
            info("V1_4E", Some("V1")),
            info("V1_4I", Some("V1")),
            info("TH_23E", Some("TH")),
            info("TH_5I", Some("TH")),
        ];
        let pops = [
            summary("V1_23E", 10, 20),
            summary("V1_4E", 10, 0),
            summary("V1_4I", 0, 0),
            summary("TH_23E", 4, 2),
            summary("TH_5I", 5, 50),
        ];
        let m = rate_matrix(&infos, &pops);
        assert_eq!(m.areas, ["V1", "TH"]);
        assert_eq!(m.columns, ["23E", "4E", "4I", "5I"]);
        assert_eq!(
            m.rates_hz,
            [
                [Some(2.0), Some(0.0), None, None],
                [Some(0.5), None, None, Some(10.0)]
            ]
        );
        // Over T = 1 s: pooled spikes / neurons; no E or I: None.
        let w = Window {
            t_start: 0.0,
            t_stop: 1000.0,
        };
        let a = area_summaries(&infos, &pops, w);
        assert_eq!((a[0].populations, a[0].n_neurons, a[0].spikes), (3, 20, 20));
        assert_eq!(
            (a[0].rate_hz, a[0].rate_e_hz, a[0].rate_i_hz),
            (Some(1.0), Some(1.0), None)
        );
        assert_eq!(a[1].rate_hz, Some(52.0 / 9.0));
    }

    #[test]
    fn raster_file_names_are_safe_and_distinct() {
        let a: Vec<String> = ["V1", "7a", "a/b", "a_b", "..", "A_B"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            raster_file_names(&a),
            ["V1", "7a", "a_b", "a_b_2", "area__", "A_B_3"]
        );
    }
}
