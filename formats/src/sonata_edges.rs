//! Reading the synapses of a SONATA edge population (rule `sonata_edges`).
//!
//! An edge population `/edges/<name>` of an `edges.h5` holds per edge
//! `source_node_id` and `target_node_id` (node ids local to the node
//! populations their `node_population` attributes name), `edge_type_id`,
//! `edge_group_id` and `edge_group_index`, and in its group (`0`) the
//! per-edge attributes: `syn_weight` (pA; mV onto `iaf_psc_delta`) and
//! `delay` (ms). What snn reads:
//!
//! * one edge group, indexed `0 .. n` (what BMTK, NEST and snn's export
//!   write); several groups are refused;
//! * `syn_weight` and `delay` per edge, unless the projection gives them
//!   (or, for the weight, the edge type: [`EdgeSelection::syn_weight`]);
//! * `nsyns`, the synapses an edge stands for, multiplies its weight, as
//!   in BMTK's point networks (one connection of weight `nsyns *
//!   syn_weight`).
//!
//! The edges are read in blocks of [`BLOCK`] in file order, never all at
//! once. Loading a config reads them once ([`scan`]): their number, an
//! xxh3-64 checksum of what is used (source and target ids, and the weight
//! and delay bits read from the file), the ranges of weights and delays and
//! the largest node ids. Every build that reads them again computes the
//! checksum again and refuses edges that changed.

use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, File, Group};
use xxhash_rust::xxh3::Xxh3;

use crate::error::FormatError;
use crate::sonata::{
    check_1d, check_magic, check_stored, corrupt, open_h5, read_str_attr, short_reason,
};

/// Edges read per block.
pub const BLOCK: usize = 1 << 20;

/// What a `sonata_edges` projection reads from an edge population.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeSelection {
    /// The edges file.
    pub file: PathBuf,
    /// The edge population.
    pub population: String,
    /// Only edges of this type.
    pub edge_type_id: Option<i64>,
    /// The node population the sources must belong to.
    pub source_population: String,
    /// The node population the targets must belong to.
    pub target_population: String,
    /// Weights from the edges (else the projection's): `syn_weight` per
    /// edge, or [`EdgeSelection::syn_weight`], times the edge's `nsyns`
    /// where the edges give it, or [`EdgeSelection::nsyns`] (BMTK's point
    /// networks: one connection per edge of weight `nsyns * syn_weight`).
    pub weight_per_edge: bool,
    /// The weight of every edge where the edges have no `syn_weight` (the
    /// edge type's).
    pub syn_weight: Option<f64>,
    /// The synapses per edge where the edges have no `nsyns` (the edge
    /// type's; default 1).
    pub nsyns: Option<f64>,
    /// Read `delay` per edge.
    pub delay_per_edge: bool,
}

/// One block of selected edges, in file order (ids population-local).
#[derive(Debug, Default)]
pub struct EdgeBlock {
    /// Source node ids.
    pub source: Vec<u64>,
    /// Target node ids.
    pub target: Vec<u64>,
    /// Weights, pA (empty unless read per edge).
    pub weight: Vec<f64>,
    /// Delays, ms (empty unless read per edge).
    pub delay: Vec<f64>,
}

/// What [`scan`] found in the selected edges.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeFacts {
    /// Number of edges.
    pub n: u64,
    /// xxh3-64 of the edges ([`EdgeReader::for_each_block`]).
    pub checksum: u64,
    /// Smallest and largest weight read (when read per edge and `n > 0`).
    pub weight_range: Option<[f64; 2]>,
    /// Smallest and largest delay read.
    pub delay_range: Option<[f64; 2]>,
    /// Largest source and target id (`n > 0`).
    pub max_node_ids: Option<[u64; 2]>,
}

/// An open edge population.
pub struct EdgeReader {
    sel: EdgeSelection,
    _file: File,
    n: usize,
    src: Dataset,
    tgt: Dataset,
    types: Option<Dataset>,
    group_ids: Option<Dataset>,
    group_index: Option<Dataset>,
    weight: Option<Dataset>,
    nsyns: Option<Dataset>,
    delay: Option<Dataset>,
}

impl std::fmt::Debug for EdgeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeReader")
            .field("selection", &self.sel)
            .field("edges", &self.n)
            .finish()
    }
}

fn err(path: &Path, message: String) -> FormatError {
    corrupt(path, message)
}

/// The edge group of edge population `g` (`/edges/<pname>` of `path`):
/// its name (`0` when there is none) and the group, if any; more than one
/// is an error (only one edge group is supported).
pub(crate) fn edge_group(
    path: &Path,
    g: &Group,
    pname: &str,
) -> Result<(String, Option<Group>), FormatError> {
    let groups: Vec<String> = g
        .member_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m != "indices" && g.group(m).is_ok())
        .collect();
    if groups.len() > 1 {
        return Err(err(
            path,
            format!(
                "/edges/{pname}: {} edge groups ({}): only one edge group is supported",
                groups.len(),
                groups.join(", ")
            ),
        ));
    }
    Ok(match groups.first() {
        Some(name) => (name.clone(), g.group(name).ok()),
        None => ("0".into(), None),
    })
}

/// Whether a dataset holds signed integers (read as `i64` and checked for
/// negative values: HDF5 would clip them to 0 converting to unsigned).
fn is_signed(ds: &Dataset) -> bool {
    matches!(
        ds.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::Integer(_))
    )
}

impl EdgeReader {
    /// Open the selection's edge population and check its layout.
    pub fn open(sel: &EdgeSelection) -> Result<EdgeReader, FormatError> {
        let path = sel.file.as_path();
        let file_len = std::fs::metadata(path)
            .map_err(|e| FormatError::io(path, "open", e))?
            .len();
        let file = open_h5(path, false)?;
        check_magic(path, &file)?;
        let edges = file.group("edges").map_err(|_| {
            err(
                path,
                "group /edges: missing (not a SONATA edges file)".into(),
            )
        })?;
        let pname = &sel.population;
        let g: Group = edges.group(pname).map_err(|_| {
            let have = edges.member_names().unwrap_or_default().join(", ");
            err(
                path,
                format!("/edges/{pname}: no such edge population (the file has: {have})"),
            )
        })?;
        let open = |name: &str| -> Result<Dataset, FormatError> {
            g.dataset(name)
                .map_err(|_| err(path, format!("/edges/{pname}/{name}: missing")))
        };
        let opt = |name: &str| -> Option<Dataset> {
            if g.link_exists(name) {
                g.dataset(name).ok()
            } else {
                None
            }
        };
        let src = open("source_node_id")?;
        let tgt = open("target_node_id")?;
        let n = check_1d(
            path,
            &src,
            &format!("/edges/{pname}/source_node_id"),
            "integer",
        )?;
        let check_len = |ds: &Dataset, name: &str, class: &str| -> Result<(), FormatError> {
            let what = format!("/edges/{pname}/{name}");
            let m = check_1d(path, ds, &what, class)?;
            if m != n {
                return Err(err(
                    path,
                    format!("dataset {what} has {m} entries but source_node_id has {n}"),
                ));
            }
            check_stored(path, ds, &what, m, file_len)
        };
        check_len(&src, "source_node_id", "integer")?;
        check_len(&tgt, "target_node_id", "integer")?;
        for (ds, name, want) in [
            (&src, "source_node_id", &sel.source_population),
            (&tgt, "target_node_id", &sel.target_population),
        ] {
            if let Some(p) = read_str_attr(ds, "node_population") {
                if &p != want {
                    return Err(err(
                        path,
                        format!(
                            "/edges/{pname}/{name}: attribute node_population is '{p}', but the projection's population is '{want}'"
                        ),
                    ));
                }
            }
        }
        let types = opt("edge_type_id");
        if let Some(t) = &types {
            check_len(t, "edge_type_id", "integer")?;
        } else if sel.edge_type_id.is_some() {
            return Err(err(path, format!("/edges/{pname}/edge_type_id: missing")));
        }
        let group_ids = opt("edge_group_id");
        let group_index = opt("edge_group_index");
        if let Some(d) = &group_ids {
            check_len(d, "edge_group_id", "integer")?;
        }
        if let Some(d) = &group_index {
            check_len(d, "edge_group_index", "integer")?;
        }
        // The edge group: the one member group (`0` in practice).
        let (gname, eg) = edge_group(path, &g, pname)?;
        let attr = |name: &str| -> Option<Dataset> {
            let eg = eg.as_ref()?;
            if eg.link_exists(name) {
                eg.dataset(name).ok()
            } else {
                None
            }
        };
        let per_edge = |name: &str, wanted: bool| -> Result<Option<Dataset>, FormatError> {
            if !wanted {
                return Ok(None);
            }
            if name == "syn_weight" && sel.syn_weight.is_some() && attr(name).is_none() {
                return Ok(None);
            }
            let ds =
                attr(name).ok_or_else(|| {
                    err(
                        path,
                        format!(
                        "/edges/{pname}/{gname}/{name}: missing (give the projection a {} instead)",
                        if name == "syn_weight" { "weight" } else { "delay" }
                    ),
                    )
                })?;
            check_len(&ds, &format!("{gname}/{name}"), "float")?;
            Ok(Some(ds))
        };
        let weight = per_edge("syn_weight", sel.weight_per_edge)?;
        let nsyns = match attr("nsyns").filter(|_| sel.weight_per_edge) {
            Some(ds) => {
                check_len(&ds, &format!("{gname}/nsyns"), "integer")?;
                Some(ds)
            }
            None => None,
        };
        let delay = per_edge("delay", sel.delay_per_edge)?;
        if let Some(d) = &delay {
            if let Some(u) = read_str_attr(d, "units") {
                if u != "ms" {
                    return Err(err(
                        path,
                        format!("/edges/{pname}/{gname}/delay: units '{u}' (expected ms)"),
                    ));
                }
            }
        }
        Ok(EdgeReader {
            sel: sel.clone(),
            _file: file,
            n,
            src,
            tgt,
            types,
            group_ids,
            group_index,
            weight,
            nsyns,
            delay,
        })
    }

    /// Number of edges in the population (all types).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the population has no edges.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn ids(&self, ds: &Dataset, name: &str, a: usize, b: usize) -> Result<Vec<u64>, FormatError> {
        let path = self.sel.file.as_path();
        let what = format!("/edges/{}/{name}", self.sel.population);
        let unreadable = |e: hdf5::Error| {
            err(
                path,
                format!("dataset {what}: unreadable: {}", short_reason(&e)),
            )
        };
        if is_signed(ds) {
            let v = ds.read_slice_1d::<i64, _>(a..b).map_err(unreadable)?;
            if let Some(k) = v.iter().position(|&x| x < 0) {
                return Err(err(
                    path,
                    format!("dataset {what}: negative value {} at edge {}", v[k], a + k),
                ));
            }
            Ok(v.iter().map(|&x| x as u64).collect())
        } else {
            Ok(ds
                .read_slice_1d::<u64, _>(a..b)
                .map_err(unreadable)?
                .to_vec())
        }
    }

    fn floats(
        &self,
        ds: &Dataset,
        name: &str,
        a: usize,
        b: usize,
    ) -> Result<Vec<f64>, FormatError> {
        let path = self.sel.file.as_path();
        let what = format!("/edges/{}/{name}", self.sel.population);
        let v = ds.read_slice_1d::<f64, _>(a..b).map_err(|e| {
            err(
                path,
                format!("dataset {what}: unreadable: {}", short_reason(&e)),
            )
        })?;
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err(err(
                path,
                format!("dataset {what}: {} at edge {}", v[k], a + k),
            ));
        }
        Ok(v.to_vec())
    }

    /// Which of edges `a..b` the selection keeps (`None`: all).
    fn selected(&self, a: usize, b: usize) -> Result<Option<Vec<bool>>, FormatError> {
        match (&self.types, self.sel.edge_type_id) {
            (Some(ds), Some(want)) => {
                let what = format!("/edges/{}/edge_type_id", self.sel.population);
                let t = ds.read_slice_1d::<i64, _>(a..b).map_err(|e| {
                    err(
                        &self.sel.file,
                        format!("dataset {what}: unreadable: {}", short_reason(&e)),
                    )
                })?;
                Ok(Some(t.iter().map(|&x| x == want).collect()))
            }
            _ => Ok(None),
        }
    }

    /// Call `f` with the target ids of each block of selected edges, in
    /// file order (a cheap first pass: only the targets are read).
    pub fn for_each_target_block(
        &self,
        mut f: impl FnMut(&[u64]) -> Result<(), FormatError>,
    ) -> Result<(), FormatError> {
        let mut a = 0usize;
        while a < self.n {
            let b = (a + BLOCK).min(self.n);
            let t = self.ids(&self.tgt, "target_node_id", a, b)?;
            f(&keep_selected(t, &self.selected(a, b)?))?;
            a = b;
        }
        Ok(())
    }

    /// Call `f` for each block of selected edges, in file order; returns
    /// the number of edges selected and their checksum (xxh3-64 over each
    /// edge's source id, target id, and the bits of its weight and delay
    /// where they are read from the file, little-endian).
    pub fn for_each_block(
        &self,
        mut f: impl FnMut(&EdgeBlock) -> Result<(), FormatError>,
    ) -> Result<(u64, u64), FormatError> {
        let path = self.sel.file.as_path();
        let pname = &self.sel.population;
        let mut hasher = Xxh3::new();
        let mut n_sel = 0u64;
        let mut bytes = Vec::new();
        let mut block = EdgeBlock::default();
        let mut group0: Option<u64> = None;
        let mut a = 0usize;
        while a < self.n {
            let b = (a + BLOCK).min(self.n);
            if let Some(ds) = &self.group_ids {
                let g = self.ids(ds, "edge_group_id", a, b)?;
                let first = *group0.get_or_insert(g[0]);
                if let Some(k) = g.iter().position(|&x| x != first) {
                    return Err(err(
                        path,
                        format!(
                            "/edges/{pname}/edge_group_id: edge {} is in group {} and edge 0 in group {first}: only one edge group is supported",
                            a + k,
                            g[k]
                        ),
                    ));
                }
            }
            if let Some(ds) = &self.group_index {
                let ix = self.ids(ds, "edge_group_index", a, b)?;
                if let Some(k) = ix
                    .iter()
                    .enumerate()
                    .position(|(k, &x)| x != (a + k) as u64)
                {
                    return Err(err(
                        path,
                        format!(
                            "/edges/{pname}/edge_group_index: edge {} has index {} (only the identity 0 .. n-1 is supported)",
                            a + k,
                            ix[k]
                        ),
                    ));
                }
            }
            let keep = self.selected(a, b)?;
            block.source = keep_selected(self.ids(&self.src, "source_node_id", a, b)?, &keep);
            block.target = keep_selected(self.ids(&self.tgt, "target_node_id", a, b)?, &keep);
            block.weight = if self.sel.weight_per_edge {
                let mut w = match &self.weight {
                    Some(ds) => self.floats(ds, "0/syn_weight", a, b)?,
                    None => vec![self.sel.syn_weight.unwrap_or(0.0); b - a],
                };
                match &self.nsyns {
                    Some(ds) => {
                        let n = self.ids(ds, "0/nsyns", a, b)?;
                        for (w, n) in w.iter_mut().zip(n) {
                            *w *= n as f64;
                        }
                    }
                    None => {
                        let n = self.sel.nsyns.unwrap_or(1.0);
                        if n != 1.0 {
                            w.iter_mut().for_each(|w| *w *= n);
                        }
                    }
                }
                keep_selected(w, &keep)
            } else {
                Vec::new()
            };
            block.delay = match &self.delay {
                Some(ds) => keep_selected(self.floats(ds, "0/delay", a, b)?, &keep),
                None => Vec::new(),
            };
            bytes.clear();
            for i in 0..block.source.len() {
                bytes.extend_from_slice(&block.source[i].to_le_bytes());
                bytes.extend_from_slice(&block.target[i].to_le_bytes());
                if let Some(w) = block.weight.get(i) {
                    bytes.extend_from_slice(&w.to_bits().to_le_bytes());
                }
                if let Some(d) = block.delay.get(i) {
                    bytes.extend_from_slice(&d.to_bits().to_le_bytes());
                }
            }
            hasher.update(&bytes);
            n_sel += block.source.len() as u64;
            f(&block)?;
            a = b;
        }
        Ok((n_sel, hasher.digest()))
    }
}

/// The values of `v` whose `keep` is true (all of them without `keep`).
fn keep_selected<T>(v: Vec<T>, keep: &Option<Vec<bool>>) -> Vec<T> {
    match keep {
        None => v,
        Some(k) => v.into_iter().zip(k).filter(|x| *x.1).map(|x| x.0).collect(),
    }
}

/// Read the selected edges once: their number, checksum, ranges and
/// largest node ids.
pub fn scan(sel: &EdgeSelection) -> Result<EdgeFacts, FormatError> {
    let r = EdgeReader::open(sel)?;
    let mut w = [f64::INFINITY, f64::NEG_INFINITY];
    let mut d = [f64::INFINITY, f64::NEG_INFINITY];
    let mut ids = [0u64; 2];
    let (n, checksum) = r.for_each_block(|b| {
        for &x in &b.weight {
            w = [w[0].min(x), w[1].max(x)];
        }
        for &x in &b.delay {
            d = [d[0].min(x), d[1].max(x)];
        }
        ids[0] = b.source.iter().copied().fold(ids[0], u64::max);
        ids[1] = b.target.iter().copied().fold(ids[1], u64::max);
        Ok(())
    })?;
    Ok(EdgeFacts {
        n,
        checksum,
        weight_range: (n > 0 && sel.weight_per_edge).then_some(w),
        delay_range: (n > 0 && sel.delay_per_edge).then_some(d),
        max_node_ids: (n > 0).then_some(ids),
    })
}
