//! A SONATA circuit as a model config: `snn-build circuit_config.json -o
//! NET` builds the circuit's network for any number of ranks.
//!
//! Each node population becomes a population (same name and size; node ids
//! population-local, as snn's own), each edge population one projection of
//! rule `sonata_edges` (see [`crate::sonata_edges`]) per set of edges with
//! the same weight and delay source: per-edge `syn_weight` and `delay`
//! where the edge group has them, else one projection per `edge_type_id`
//! with the values of `edge_types.csv`. What is supported, and refused with
//! an error naming the file and field otherwise:
//!
//! * nodes: one node type and one node group per population, node ids
//!   `0 .. n`, `model_type` `point_neuron` or `point_process` with a
//!   `model_template` `nest:<model>` of snn's models, or `virtual` with
//!   `spike_times` in its `dynamics_params` (a `spike_generator`); the
//!   `dynamics_params` JSON holds NEST parameters of that model, and `V_m`,
//!   the initial membrane potential (NEST's default: `E_L`);
//! * edges: see [`crate::sonata_edges`]; edge types of `model_template`
//!   `static_synapse` (or none).
//!
//! The `snn` section that `snn-build export` adds to the circuit config
//! (time step, seed, weight fraction bits, initial V_m distributions,
//! Poisson drive, recording) is read back, so an exported network builds
//! into the same network and, for the same simulation seed, the same
//! spikes. Without it: `dt_ms` 0.1, the default seed, no Poisson drive,
//! every population's spikes recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{
    Config, Distribution, EdgesRaw, NetworkSection, NeuronParamsRaw, PoissonBackground,
    PopulationRaw, ProjectionRaw, RecordingSection, RuleName, VmRecording,
};
use crate::error::ConfigError;
use crate::model::NeuronModel;
use crate::sonata::{check_1d, check_magic, check_stored, open_h5, read_str_attr};

/// The edges of an edge population that become one projection: those of
/// one type (`type_id`; all when `None`) with the type's values where the
/// edges have none of their own.
#[derive(Default)]
struct EdgeSet {
    type_id: Option<i64>,
    syn_weight: Option<f64>,
    delay: Option<f64>,
    nsyns: Option<f64>,
}

/// A config error in `file` at `field`.
fn bad(file: &Path, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        file: file.display().to_string(),
        field: field.into(),
        message: message.into(),
    }
}

/// A file's error as a config error naming `file` and `field` once.
fn from_format(file: &Path, field: &str, e: crate::error::FormatError) -> ConfigError {
    let text = e.to_string();
    let text = text
        .strip_prefix(&format!("{}: ", file.display()))
        .unwrap_or(&text);
    let text = text.strip_prefix(&format!("{field}: ")).unwrap_or(text);
    bad(file, field, text)
}

/// The manifest's variables substituted into `s` (`$NAME` anywhere).
fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = s.to_string();
    // Longest names first, so `$BASE_DIR2` is not read as `$BASE_DIR`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for _ in 0..8 {
        let before = out.clone();
        for n in &names {
            out = out.replace(n.as_str(), &vars[*n]);
        }
        if out == before {
            break;
        }
    }
    out
}

/// [`substitute`]d `s` as a path, relative paths taken from `base`.
fn expand(s: &str, vars: &BTreeMap<String, String>, base: &Path) -> PathBuf {
    let p = PathBuf::from(substitute(s, vars));
    let p = if p.is_absolute() { p } else { base.join(p) };
    // Without `.` components (`$BASE_DIR` is often `.`).
    p.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// A space-separated SONATA types CSV: its header and rows (double quotes
/// group a field with spaces).
struct TypesCsv {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TypesCsv {
    fn read(path: &Path, field: &str) -> Result<TypesCsv, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(path, field, format!("cannot read: {e}")))?;
        let split = |line: &str| -> Vec<String> {
            let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
            for c in line.chars() {
                match c {
                    '"' => {
                        quoted = !quoted;
                        any = true;
                    }
                    ' ' | '\t' if !quoted => {
                        if any || !cur.is_empty() {
                            out.push(std::mem::take(&mut cur));
                            any = false;
                        }
                    }
                    _ => cur.push(c),
                }
            }
            if any || !cur.is_empty() {
                out.push(cur);
            }
            out
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = split(lines.next().unwrap_or(""));
        let mut rows = Vec::new();
        for (i, l) in lines.enumerate() {
            let r = split(l);
            if r.len() != header.len() {
                return Err(bad(
                    path,
                    format!("line {}", i + 2),
                    format!("{} fields, but the header has {}", r.len(), header.len()),
                ));
            }
            rows.push(r);
        }
        Ok(TypesCsv {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The row of type `id`, as column name -> value.
    fn row(&self, id: i64, id_col: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let c = self
            .col(id_col)
            .ok_or_else(|| bad(&self.path, id_col, "column missing"))?;
        let row = self
            .rows
            .iter()
            .find(|r| r[c].parse::<i64>().ok() == Some(id))
            .ok_or_else(|| bad(&self.path, id_col, format!("no type {id}")))?;
        Ok(self
            .header
            .iter()
            .cloned()
            .zip(row.iter().cloned())
            .filter(|(_, v)| !matches!(v.as_str(), "NULL" | "NONE" | ""))
            .collect())
    }
}

/// The length of the 1-D integer dataset `what`, whose entries must be in
/// the file before anything is read (a forged size is refused).
fn stored_ints(file: &Path, ds: &hdf5::Dataset, what: &str) -> Result<usize, ConfigError> {
    let n = check_1d(file, ds, what, "integer").map_err(|e| from_format(file, what, e))?;
    let file_len = std::fs::metadata(file)
        .map_err(|e| bad(file, what, format!("cannot read: {e}")))?
        .len();
    check_stored(file, ds, what, n, file_len).map_err(|e| from_format(file, what, e))?;
    Ok(n)
}

/// A circuit config's path field (its name, its value) as a path.
type PathOf<'a> = dyn Fn(&str, Option<&Value>) -> Result<PathBuf, ConfigError> + 'a;

/// One entry of the circuit config's `networks.nodes` or `networks.edges`:
/// its HDF5 file (magic checked) with the top group (`/nodes`, `/edges`)
/// and its populations' names, sorted, and its types CSV.
struct Listed {
    h5: PathBuf,
    csv_path: PathBuf,
    types: TypesCsv,
    _file: hdf5::File,
    top: hdf5::Group,
    names: Vec<String>,
}

impl Listed {
    /// Open `entry` (config field `field`) of `kind` `nodes` or `edges`,
    /// its paths made by `path_of`.
    fn open(
        path_of: &PathOf,
        entry: &Value,
        field: &str,
        kind: &str,
    ) -> Result<Listed, ConfigError> {
        let one = &kind[..kind.len() - 1];
        let file_key = format!("{kind}_file");
        let types_key = format!("{one}_types_file");
        let h5 = path_of(&format!("{field}.{file_key}"), entry.get(&file_key))?;
        let csv_path = path_of(&format!("{field}.{types_key}"), entry.get(&types_key))?;
        let types = TypesCsv::read(&csv_path, &types_key)?;
        let file = open_h5(&h5, false).map_err(|e| from_format(&h5, "/", e))?;
        check_magic(&h5, &file).map_err(|e| from_format(&h5, "/", e))?;
        let top = file.group(kind).map_err(|_| {
            bad(
                &h5,
                format!("/{kind}"),
                format!("missing (not a SONATA {kind} file)"),
            )
        })?;
        let mut names = top.member_names().unwrap_or_default();
        names.sort();
        Ok(Listed {
            h5,
            csv_path,
            types,
            _file: file,
            top,
            names,
        })
    }
}

/// Read a whole integer dataset `what` of group `g` (small: one value per
/// node, or edge types), with the file's length checked.
fn read_ints(file: &Path, ds: &hdf5::Dataset, what: &str) -> Result<Vec<i64>, ConfigError> {
    stored_ints(file, ds, what)?;
    ds.read_raw::<i64>()
        .map_err(|e| bad(file, what, format!("unreadable: {e}")))
}

/// The distinct values of an integer dataset, read in blocks.
fn distinct_ints(
    file: &Path,
    ds: &hdf5::Dataset,
    what: &str,
) -> Result<BTreeSet<i64>, ConfigError> {
    let n = stored_ints(file, ds, what)?;
    let mut out = BTreeSet::new();
    let mut a = 0;
    while a < n {
        let b = (a + crate::sonata_edges::BLOCK).min(n);
        let v = ds
            .read_slice_1d::<i64, _>(a..b)
            .map_err(|e| bad(file, what, format!("unreadable: {e}")))?;
        out.extend(v.iter().copied());
        a = b;
    }
    Ok(out)
}

/// The `manifest` variables of circuit config `cc` (from `path`), each
/// expanded with the others (repeatedly, so their order does not matter).
fn manifest_vars(path: &Path, cc: &Value) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars = BTreeMap::new();
    if let Some(m) = cc.get("manifest").and_then(Value::as_object) {
        for _ in 0..m.len().max(1) {
            for (k, v) in m {
                let Some(s) = v.as_str() else {
                    return Err(bad(path, format!("manifest.{k}"), "must be a string"));
                };
                let e = substitute(s, &vars);
                vars.insert(k.clone(), e);
            }
        }
    }
    Ok(vars)
}

/// The files of the SONATA circuit `path` (nodes and edges files, their
/// types files, the neuron models' directory) as far as its config names
/// them: what a build from it must not replace.
pub fn circuit_files(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(cc) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let Ok(vars) = manifest_vars(path, &cc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (list, keys) in [
        ("/networks/nodes", ["nodes_file", "node_types_file"]),
        ("/networks/edges", ["edges_file", "edge_types_file"]),
    ] {
        for entry in cc
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for k in keys {
                if let Some(s) = entry.get(k).and_then(Value::as_str) {
                    out.push(expand(s, &vars, dir));
                }
            }
        }
    }
    if let Some(s) = cc
        .pointer("/components/point_neuron_models_dir")
        .and_then(Value::as_str)
    {
        out.push(expand(s, &vars, dir));
    }
    out
}

/// The config of the SONATA circuit `path` (a `circuit_config.json`).
pub fn circuit_config(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    let cc: Value = serde_json::from_str(&text)
        .map_err(|e| bad(path, "(top level)", format!("not JSON: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let vars = manifest_vars(path, &cc)?;
    let path_of = |field: &str, v: Option<&Value>| -> Result<PathBuf, ConfigError> {
        let s = v
            .and_then(Value::as_str)
            .ok_or_else(|| bad(path, field, "missing (a path)"))?;
        Ok(expand(s, &vars, &dir))
    };
    let models_dir = match cc.pointer("/components/point_neuron_models_dir") {
        Some(v) => Some(path_of("components.point_neuron_models_dir", Some(v))?),
        None => None,
    };
    let snn = cc.get("snn");
    let snn_pops = snn.and_then(|s| s.get("populations"));

    // Nodes.
    let mut populations = Vec::new();
    let empty = Vec::new();
    let node_files = cc
        .pointer("/networks/nodes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if node_files.is_empty() {
        return Err(bad(path, "networks.nodes", "missing or empty"));
    }
    for (i, nf) in node_files.iter().enumerate() {
        let Listed {
            h5,
            csv_path,
            types,
            top: nodes,
            names,
            ..
        } = Listed::open(&path_of, nf, &format!("networks.nodes[{i}]"), "nodes")?;
        for name in names {
            let g = nodes
                .group(&name)
                .map_err(|e| bad(&h5, format!("/nodes/{name}"), e.to_string()))?;
            let at = |d: &str| format!("/nodes/{name}/{d}");
            let type_ids = read_ints(
                &h5,
                &g.dataset("node_type_id")
                    .map_err(|_| bad(&h5, at("node_type_id"), "missing"))?,
                &at("node_type_id"),
            )?;
            let n = type_ids.len() as u64;
            let distinct: BTreeSet<i64> = type_ids.iter().copied().collect();
            if distinct.len() > 1 {
                return Err(bad(
                    &h5,
                    at("node_type_id"),
                    format!(
                        "{} node types in one population ({:?}): snn needs one per population",
                        distinct.len(),
                        distinct
                    ),
                ));
            }
            for (d, want) in [
                ("node_group_id", None),
                ("node_id", Some(())),
                ("node_group_index", Some(())),
            ] {
                if let Ok(ds) = g.dataset(d) {
                    let v = read_ints(&h5, &ds, &at(d))?;
                    let ok = match want {
                        None => v.iter().all(|&x| x == v[0]),
                        Some(()) => v.iter().enumerate().all(|(k, &x)| x == k as i64),
                    };
                    if !ok {
                        return Err(bad(
                            &h5,
                            at(d),
                            if want.is_none() {
                                "several node groups: only one per population is supported"
                            } else {
                                "not 0 .. n-1: only node ids in order are supported"
                            },
                        ));
                    }
                }
            }
            for m in g.member_names().unwrap_or_default() {
                if let Ok(sub) = g.group(&m) {
                    if sub.link_exists("dynamics_params") {
                        return Err(bad(
                            &h5,
                            at(&format!("{m}/dynamics_params")),
                            "per-node dynamics parameters are not supported",
                        ));
                    }
                }
            }
            let mut params = NeuronParamsRaw::default();
            let mut v_m_init = None;
            if let Some(&tid) = distinct.iter().next() {
                let row = types.row(tid, "node_type_id")?;
                let model_type = row.get("model_type").map(String::as_str).unwrap_or("");
                let tmpl = row.get("model_template").map(String::as_str).unwrap_or("");
                let mut dyn_path = None;
                let dyn_params: serde_json::Map<String, Value> = match row.get("dynamics_params") {
                    None => serde_json::Map::new(),
                    Some(file) => {
                        let p = match &models_dir {
                            Some(d) => d.join(file),
                            None => csv_path.parent().unwrap_or(Path::new("")).join(file),
                        };
                        dyn_path = Some(p.clone());
                        let t = std::fs::read_to_string(&p)
                            .map_err(|e| bad(&p, "(file)", format!("cannot read: {e}")))?;
                        match serde_json::from_str(&t) {
                            Ok(Value::Object(m)) => m,
                            _ => return Err(bad(&p, "(top level)", "not a JSON object")),
                        }
                    }
                };
                let model = match model_type {
                    "virtual" => "spike_generator".to_string(),
                    "point_neuron" | "point_process" => tmpl
                        .strip_prefix("nest:")
                        .ok_or_else(|| {
                            bad(
                                &csv_path,
                                format!("node type {tid}.model_template"),
                                format!("'{tmpl}': only nest:<model> templates are supported"),
                            )
                        })?
                        .to_string(),
                    other => {
                        return Err(bad(
                            &csv_path,
                            format!("node type {tid}.model_type"),
                            format!("'{other}': only point_neuron, point_process and virtual nodes are supported"),
                        ))
                    }
                };
                if model != "spike_generator" && !NeuronModel::ALL.iter().any(|m| m.name() == model)
                {
                    let known: Vec<&str> = NeuronModel::ALL
                        .iter()
                        .filter(|m| **m != NeuronModel::SpikeGenerator)
                        .map(|m| m.name())
                        .collect();
                    return Err(bad(
                        &csv_path,
                        format!("node type {tid}.model_template"),
                        format!(
                            "'{tmpl}': snn has no model {model} (it has {})",
                            known.join(", ")
                        ),
                    ));
                }
                let mut obj = serde_json::Map::new();
                for (k, v) in dyn_params {
                    if k == "V_m" {
                        v_m_init = v.as_f64().map(Distribution::Constant);
                        continue;
                    }
                    obj.insert(k, v);
                }
                if model == "spike_generator" && !obj.contains_key("spike_times") {
                    return Err(bad(
                        &csv_path,
                        format!("node type {tid}.dynamics_params"),
                        format!("virtual population '{name}' has no spike_times (inputs given at simulation time are not supported)"),
                    ));
                }
                obj.insert("model".into(), Value::String(model));
                params =
                    serde_json::from_value(Value::Object(obj)).map_err(|e| match &dyn_path {
                        Some(p) => bad(
                            p,
                            format!("dynamics_params of node type {tid}"),
                            e.to_string(),
                        ),
                        None => bad(
                            &csv_path,
                            format!("node type {tid}.dynamics_params"),
                            e.to_string(),
                        ),
                    })?;
            }
            let extra = snn_pops.and_then(|p| p.get(&name));
            if let Some(d) = extra.and_then(|e| e.get("V_m_init")) {
                v_m_init = Some(serde_json::from_value(d.clone()).map_err(|e| {
                    bad(
                        path,
                        format!("snn.populations.{name}.V_m_init"),
                        e.to_string(),
                    )
                })?);
            }
            let rate = extra
                .and_then(|e| e.get("poisson_rate_Hz"))
                .and_then(Value::as_f64);
            populations.push(PopulationRaw {
                name: name.clone(),
                size: n as f64,
                area: extra
                    .and_then(|e| e.get("area"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                scalable: false,
                params,
                V_m_init: v_m_init,
                K_ext: rate.filter(|&r| r > 0.0),
                mean_rate_Hz: None,
            });
        }
    }

    // Edges.
    let mut projections = Vec::new();
    let edge_files = cc
        .pointer("/networks/edges")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, ef) in edge_files.iter().enumerate() {
        let Listed {
            h5,
            csv_path,
            types,
            top: edges,
            names,
            ..
        } = Listed::open(&path_of, ef, &format!("networks.edges[{i}]"), "edges")?;
        for name in names {
            let g = edges
                .group(&name)
                .map_err(|e| bad(&h5, format!("/edges/{name}"), e.to_string()))?;
            let at = |d: &str| format!("/edges/{name}/{d}");
            let node_pop = |d: &str| -> Result<String, ConfigError> {
                let ds = g.dataset(d).map_err(|_| bad(&h5, at(d), "missing"))?;
                read_str_attr(&ds, "node_population")
                    .ok_or_else(|| bad(&h5, at(d), "attribute node_population missing"))
            };
            let (source, target) = (node_pop("source_node_id")?, node_pop("target_node_id")?);
            let (_, group) = crate::sonata_edges::edge_group(&h5, &g, &name)
                .map_err(|e| from_format(&h5, &format!("/edges/{name}"), e))?;
            let per_edge = |attr: &str| group.as_ref().is_some_and(|eg| eg.link_exists(attr));
            let (w_file, d_file) = (per_edge("syn_weight"), per_edge("delay"));
            // The edge types used, with their weight and delay where the
            // edges have none.
            let type_ids: BTreeSet<i64> = match g.dataset("edge_type_id") {
                Ok(ds) => distinct_ints(&h5, &ds, &at("edge_type_id"))?,
                Err(_) => BTreeSet::new(),
            };
            let mut sets: Vec<EdgeSet> = Vec::new();
            for &tid in &type_ids {
                let row = types.row(tid, "edge_type_id")?;
                if let Some(t) = row.get("model_template") {
                    if t != "static_synapse" && t != "nest:static_synapse" {
                        return Err(bad(
                            &csv_path,
                            format!("edge type {tid}.model_template"),
                            format!("'{t}': only static synapses are supported"),
                        ));
                    }
                }
                for unsupported in ["weight_function"] {
                    if row.contains_key(unsupported) {
                        return Err(bad(
                            &csv_path,
                            format!("edge type {tid}.{unsupported}"),
                            "not supported",
                        ));
                    }
                }
                let num = |col: &str| -> Result<Option<f64>, ConfigError> {
                    match row.get(col) {
                        None => Ok(None),
                        Some(v) => v.parse::<f64>().map(Some).map_err(|_| {
                            bad(
                                &csv_path,
                                format!("edge type {tid}.{col}"),
                                format!("'{v}' is not a number"),
                            )
                        }),
                    }
                };
                let w = if w_file { None } else { num("syn_weight")? };
                let d = if d_file { None } else { num("delay")? };
                let ns = num("nsyns")?;
                for (given, file, col) in [(w, w_file, "syn_weight"), (d, d_file, "delay")] {
                    if given.is_none() && !file {
                        return Err(bad(
                            &h5,
                            at(&format!("0/{col}")),
                            format!(
                                "missing, and edge type {tid} of {} has no {col}",
                                csv_path.display()
                            ),
                        ));
                    }
                }
                sets.push(EdgeSet {
                    type_id: Some(tid),
                    syn_weight: w,
                    delay: d,
                    nsyns: ns,
                });
            }
            let by_type = !(w_file && d_file) || sets.iter().any(|s| s.nsyns.is_some());
            if !by_type || type_ids.is_empty() {
                sets = vec![EdgeSet::default()];
            }
            for EdgeSet {
                type_id: tid,
                syn_weight: w,
                delay: d,
                nsyns: ns,
            } in sets
            {
                projections.push(ProjectionRaw {
                    name: Some(match tid {
                        Some(t) => format!("{name}:{t}"),
                        None => name.clone(),
                    }),
                    source: source.clone(),
                    target: target.clone(),
                    rule: RuleName::SonataEdges,
                    indegree: None,
                    N: None,
                    connection_probability: None,
                    p: None,
                    allow_autapses: true,
                    allow_multapses: true,
                    // The weight per edge: `nsyns * syn_weight`, each
                    // from the edge or its type.
                    weight: None,
                    delay: d.map(Distribution::Constant),
                    edges: Some(EdgesRaw {
                        file: h5.display().to_string(),
                        population: name.clone(),
                        edge_type_id: tid,
                        syn_weight: w,
                        nsyns: ns,
                        N: None,
                        checksum: None,
                        weight_range: None,
                        delay_range: None,
                        max_node_ids: None,
                    }),
                });
            }
        }
    }

    let get_f = |k: &str| snn.and_then(|s| s.get(k)).and_then(Value::as_f64);
    let get_u = |k: &str| snn.and_then(|s| s.get(k)).and_then(Value::as_u64);
    let name = snn
        .and_then(|s| s.get("model"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "circuit".into())
        });
    let poisson_background = match snn.and_then(|s| s.get("poisson")) {
        Some(p) => Some(PoissonBackground {
            rate_Hz: 1.0,
            weight: p
                .get("weight")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad(path, "snn.poisson.weight", "missing (a number)"))?,
            delay: p
                .get("delay")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad(path, "snn.poisson.delay", "missing (a number)"))?,
            poisson_input: true,
        }),
        None => None,
    };
    let recording = match snn.and_then(|s| s.get("recording")) {
        Some(r) => RecordingSection {
            spikes: match r.get("spikes") {
                Some(v) => Some(
                    serde_json::from_value(v.clone())
                        .map_err(|e| bad(path, "snn.recording.spikes", e.to_string()))?,
                ),
                None => None,
            },
            V_m: match r.get("V_m") {
                Some(v) => serde_json::from_value::<Vec<VmRecording>>(v.clone())
                    .map_err(|e| bad(path, "snn.recording.V_m", e.to_string()))?,
                None => Vec::new(),
            },
        },
        None => RecordingSection::default(),
    };
    let mut network = NetworkSection {
        name,
        dt_ms: get_f("dt_ms").unwrap_or(0.1),
        seed: crate::config::default_seed(),
        weight_frac_bits: get_u("weight_frac_bits").map(|b| b.min(62) as u32),
    };
    if let Some(s) = get_u("seed") {
        network.seed = s;
    }
    Ok(Config {
        network,
        scale: Default::default(),
        placement: Default::default(),
        neuron_defaults: NeuronParamsRaw::default(),
        populations,
        projections,
        poisson_background,
        recording,
        mam: None,
    })
}
