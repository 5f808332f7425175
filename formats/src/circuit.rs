//! A built network as a SONATA circuit (`snn-build export`), for BMTK,
//! NEST's `SonataNetwork`, libsonata and bluepysnap.
//!
//! # Layout
//!
//! ```text
//! circuit_config.json                 manifest, components, networks (nodes, edges)
//! network/nodes.h5                    / attributes magic = 0x0A7A, version = [0, 1]
//!   /nodes/<population>/node_type_id      int64 [n] (the population's type)
//!                       node_group_id     int64 [n] (all 0)
//!                       node_group_index  uint64 [n] (0 .. n)
//!                       0/model_type, 0/model_template, 0/synapse_class
//!                                         uint8 [n] indices into 0/@library/<name>
//!                                         (one string each; generators: model_type)
//! network/node_types.csv              node_type_id model_type model_template dynamics_params pop_name
//! network/edges.h5                    / attributes magic, version
//!   /edges/<source>_to_<target>/source_node_id  uint64 [m], attribute node_population
//!                              target_node_id  uint64 [m], attribute node_population
//!                              edge_type_id    int64 [m]
//!                              edge_group_id   int64 [m] (all 0)
//!                              edge_group_index uint64 [m] (0 .. m)
//!                              0/syn_weight    float64 [m] (pA; mV onto iaf_psc_delta)
//!                              0/delay         float64 [m] (ms)
//!                              0/model_template uint8 [m] into 0/@library (static_synapse)
//!                              indices/source_to_target/node_id_to_ranges  uint64 [n_source, 2]
//!                              indices/source_to_target/range_to_edge_id   uint64 [r, 2]
//!                              indices/target_to_source/...                (the same by target)
//! network/edge_types.csv              edge_type_id model_template
//! components/point_neuron_models/<population>.json   the resolved parameters
//! ```
//!
//! One node population per snn population (node ids population-local, as
//! snn's spike files); `spike_generator` populations are `virtual` nodes
//! whose parameter file holds their spike times. One edge population per
//! pair of populations that a projection connects. The neuron parameters
//! are those the simulator uses (`NeuronParams::values`: `I_e` with the
//! compensating DC), the weights and delays the stored ones (the network's
//! fixed-point weights, exactly; delays as whole steps times `dt`), so the
//! export describes exactly the network snn simulates.
//!
//! The circuit config names the populations' types: `brian2_point` /
//! `brian2_synapse` (the SONATA extension's generic point-process types,
//! the ones bluepysnap's validator knows that need no morphologies or
//! positions) for neurons and synapses, `virtual` for generators; the
//! nodes' `model_type` is `point_neuron` (NEST's `SonataNetwork` and the
//! spec), which the validator reports as a mismatch with the config's type,
//! a warning. Delays are `float64` (the exact `steps * dt`), where SONATA
//! suggests `float32`, also a warning of the validator.
//!
//! Edges are written in the shards' order (rank by rank, source by source);
//! both indices are built afterwards from the written node id datasets, in
//! passes over blocks of nodes whose ranges fit in a fixed memory budget, so
//! the whole export holds at most one shard's mapping plus that budget.

use std::path::{Path, PathBuf};

use hdf5::{Dataset, File, Group};

use crate::error::FormatError;
use crate::manifest::NetworkDir;
use crate::model::{dequantize_weight, quantize_weight, Model, NeuronModel};
use crate::shard::Check;
use crate::sonata::{write_err, write_str_attr, SONATA_MAGIC, SONATA_VERSION};

/// Edges buffered per edge population before they are appended.
const EDGE_BUFFER: usize = 1 << 16;
/// Chunk length (elements) of the edge datasets.
const CHUNK: usize = 1 << 16;
/// Memory for the ranges of one indexing pass (bytes).
const INDEX_BUDGET: usize = 256 << 20;
/// The circuit config's `type` of a neuron population: the SONATA
/// extension's generic point-process node type (`sonata_brian2`; per node
/// `model_type`, `model_template`, `synapse_class`), the one point-neuron
/// type that bluepysnap's validator knows besides the Allen type with
/// morphologies and positions.
const POINT_NODE_TYPE: &str = "brian2_point";
/// The `type` of an edge population: the extension's generic point-process
/// synapse (per edge `model_template`).
const POINT_EDGE_TYPE: &str = "brian2_synapse";

/// What [`export_circuit`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSummary {
    /// The circuit directory.
    pub dir: PathBuf,
    /// Nodes (neurons and generators).
    pub nodes: u64,
    /// Edges (synapses).
    pub edges: u64,
    /// Edge populations.
    pub edge_populations: usize,
}

/// Progress of an export: `(done, total)` edges, first while writing them,
/// then while indexing them (`phase` 0 and 1).
pub type Progress<'a> = &'a mut dyn FnMut(u32, u64, u64);

/// The name of the edge population from population `s` to `t`.
pub fn edge_population_name(source: &str, target: &str) -> String {
    format!("{source}_to_{target}")
}

struct EdgePop {
    name: String,
    group: Group,
    src: Dataset,
    tgt: Dataset,
    weight: Dataset,
    delay: Dataset,
    n_source_nodes: u64,
    n_target_nodes: u64,
    buf_src: Vec<u64>,
    buf_tgt: Vec<u64>,
    buf_w: Vec<f64>,
    buf_d: Vec<f64>,
    written: u64,
}

fn new_1d<T: hdf5::H5Type>(g: &Group, name: &str) -> hdf5::Result<Dataset> {
    g.new_dataset::<T>()
        .chunk(CHUNK)
        .shape(hdf5::SimpleExtents::resizable([0]))
        .create(name)
}

fn append<T: hdf5::H5Type>(ds: &Dataset, at: u64, data: &[T]) -> hdf5::Result<()> {
    let end = at as usize + data.len();
    ds.resize(end)?;
    ds.write_slice(data, at as usize..end)
}

fn root_attrs(file: &File) -> hdf5::Result<()> {
    file.new_attr::<u32>()
        .shape(())
        .create("magic")
        .and_then(|a| a.write_scalar(&SONATA_MAGIC))?;
    file.new_attr::<u32>()
        .shape(2)
        .create("version")
        .and_then(|a| a.write_raw(&SONATA_VERSION[..]))
}

impl EdgePop {
    fn flush(&mut self, path: &Path) -> Result<(), FormatError> {
        if self.buf_src.is_empty() {
            return Ok(());
        }
        let at = self.written;
        let err = |d: &str| {
            let what = format!("/edges/{}/{d}", self.name);
            move |e| write_err(path, "write edges", &what, e)
        };
        append(&self.src, at, &self.buf_src).map_err(err("source_node_id"))?;
        append(&self.tgt, at, &self.buf_tgt).map_err(err("target_node_id"))?;
        append(&self.weight, at, &self.buf_w).map_err(err("0/syn_weight"))?;
        append(&self.delay, at, &self.buf_d).map_err(err("0/delay"))?;
        self.written += self.buf_src.len() as u64;
        self.buf_src.clear();
        self.buf_tgt.clear();
        self.buf_w.clear();
        self.buf_d.clear();
        Ok(())
    }
}

/// Export the network in `net` (whose resolved model is `model`) as a
/// SONATA circuit into `out`, a directory that must not exist (it is
/// written as `out` + `.partial` and renamed into place at the end).
pub fn export_circuit(
    net: &NetworkDir,
    model: &Model,
    out: &Path,
    progress: Progress,
) -> Result<ExportSummary, FormatError> {
    if out.exists() {
        return Err(FormatError::io(
            out,
            "create the circuit directory",
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it exists"),
        ));
    }
    let name = out
        .file_name()
        .ok_or_else(|| FormatError::Mismatch {
            path: out.to_path_buf(),
            message: "not a directory name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = out.with_file_name(format!("{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| FormatError::io(&tmp, "remove", e))?;
    }
    let summary = write_circuit(net, model, &tmp, progress)?;
    std::fs::rename(&tmp, out).map_err(|e| FormatError::io(out, "rename into place", e))?;
    Ok(ExportSummary {
        dir: out.to_path_buf(),
        ..summary
    })
}

fn mkdir(p: &Path) -> Result<(), FormatError> {
    std::fs::create_dir_all(p).map_err(|e| FormatError::io(p, "create directory", e))
}

fn write_text(p: &Path, text: &str) -> Result<(), FormatError> {
    std::fs::write(p, text).map_err(|e| FormatError::io(p, "write", e))
}

fn write_circuit(
    net: &NetworkDir,
    model: &Model,
    dir: &Path,
    progress: Progress,
) -> Result<ExportSummary, FormatError> {
    let network = dir.join("network");
    let models_dir = dir.join("components").join("point_neuron_models");
    mkdir(&network)?;
    mkdir(&models_dir)?;
    let pops = &model.populations;
    for p in pops {
        if p.name.contains('/') || p.name.contains(char::is_whitespace) {
            return Err(FormatError::Mismatch {
                path: dir.to_path_buf(),
                message: format!(
                    "population name {:?} cannot name a SONATA population",
                    p.name
                ),
            });
        }
    }

    // Nodes: one population (and one node type) per snn population.
    let nodes_path = network.join("nodes.h5");
    let nf = File::create_excl(&nodes_path).map_err(|e| write_err(&nodes_path, "create", "", e))?;
    let nerr = |what: &str| {
        let what = what.to_owned();
        let path = nodes_path.clone();
        move |e| write_err(&path, "write nodes", &what, e)
    };
    root_attrs(&nf).map_err(nerr("attributes magic, version"))?;
    let nodes = nf.create_group("nodes").map_err(nerr("/nodes"))?;
    let mut node_types =
        String::from("node_type_id model_type model_template dynamics_params pop_name\n");
    for (i, p) in pops.iter().enumerate() {
        let g = nodes.create_group(&p.name).map_err(nerr(&p.name))?;
        let n = p.size as usize;
        g.new_dataset_builder()
            .with_data(&vec![i as i64; n][..])
            .create("node_type_id")
            .map_err(nerr("node_type_id"))?;
        g.new_dataset_builder()
            .with_data(&vec![0i64; n][..])
            .create("node_group_id")
            .map_err(nerr("node_group_id"))?;
        g.new_dataset_builder()
            .with_data(&(0..p.size).collect::<Vec<u64>>()[..])
            .create("node_group_index")
            .map_err(nerr("node_group_index"))?;
        let g0 = g.create_group("0").map_err(nerr("0"))?;
        let (model_type, template) = if p.params.model == NeuronModel::SpikeGenerator {
            ("virtual", "NONE".to_string())
        } else {
            ("point_neuron", format!("nest:{}", p.params.model.name()))
        };
        // Per-node strings, as indices into `@library` (one value each).
        let mut library = vec![("model_type", model_type.to_string())];
        if p.params.model != NeuronModel::SpikeGenerator {
            library.push(("model_template", template.clone()));
            library.push(("synapse_class", synapse_class(model, i).into()));
        }
        for (attr, value) in &library {
            write_library(&g0, attr, value, n).map_err(nerr(&format!("0/{attr}")))?;
        }
        let params_file = format!("{}.json", p.name);
        node_types += &format!("{i} {model_type} {template} {params_file} {}\n", p.name);
        let mut values = serde_json::Map::new();
        for (k, v) in p.params.values() {
            values.insert(k.into(), v.into());
        }
        if p.params.model == NeuronModel::SpikeGenerator {
            values.insert("spike_times".into(), p.params.spike_times.clone().into());
        }
        let text = serde_json::to_string_pretty(&values).map_err(|e| FormatError::Mismatch {
            path: models_dir.join(&params_file),
            message: e.to_string(),
        })?;
        write_text(&models_dir.join(&params_file), &(text + "\n"))?;
    }
    nf.flush().map_err(nerr("flush"))?;
    drop(nodes);
    drop(nf);
    write_text(&network.join("node_types.csv"), &node_types)?;

    // Edges: one population per connected pair, in the order of the first
    // projection that connects it.
    let edges_path = network.join("edges.h5");
    let ef = File::create_excl(&edges_path).map_err(|e| write_err(&edges_path, "create", "", e))?;
    let eerr = |what: String| {
        let path = edges_path.clone();
        move |e| write_err(&path, "write edges", &what, e)
    };
    root_attrs(&ef).map_err(eerr("attributes magic, version".into()))?;
    let edges = ef.create_group("edges").map_err(eerr("/edges".into()))?;
    let n_pops = pops.len();
    let mut pair_index = vec![usize::MAX; n_pops * n_pops];
    let mut epops: Vec<EdgePop> = Vec::new();
    let mut edge_types = String::from("edge_type_id model_template\n");
    for pr in &model.projections {
        let k = pr.source * n_pops + pr.target;
        if pair_index[k] != usize::MAX {
            continue;
        }
        pair_index[k] = epops.len();
        let (s, t) = (&pops[pr.source], &pops[pr.target]);
        let name = edge_population_name(&s.name, &t.name);
        let err = |d: &str| eerr(format!("/edges/{name}/{d}"));
        let g = edges.create_group(&name).map_err(err(""))?;
        let src = new_1d::<u64>(&g, "source_node_id").map_err(err("source_node_id"))?;
        write_str_attr(&src, "node_population", &s.name).map_err(err("source_node_id"))?;
        let tgt = new_1d::<u64>(&g, "target_node_id").map_err(err("target_node_id"))?;
        write_str_attr(&tgt, "node_population", &t.name).map_err(err("target_node_id"))?;
        let g0 = g.create_group("0").map_err(err("0"))?;
        let weight = new_1d::<f64>(&g0, "syn_weight").map_err(err("0/syn_weight"))?;
        let delay = new_1d::<f64>(&g0, "delay").map_err(err("0/delay"))?;
        write_str_attr(&delay, "units", "ms").map_err(err("0/delay"))?;
        edge_types += &format!("{} static_synapse\n", epops.len());
        epops.push(EdgePop {
            name,
            group: g,
            src,
            tgt,
            weight,
            delay,
            n_source_nodes: s.size,
            n_target_nodes: t.size,
            buf_src: Vec::new(),
            buf_tgt: Vec::new(),
            buf_w: Vec::new(),
            buf_d: Vec::new(),
            written: 0,
        });
    }
    write_text(&network.join("edge_types.csv"), &edge_types)?;

    // The synapses, shard by shard.
    let m = &net.manifest;
    let total = m.total_synapses;
    let first_ids: Vec<u64> = pops.iter().map(|p| p.first_id).collect();
    let pop_of = |g: u64| first_ids.partition_point(|&f| f <= g).saturating_sub(1);
    let mut done = 0u64;
    for r in 0..m.n_ranks {
        let shard = net.open_shard(r, Check::Checksum)?;
        let spath = shard.path().to_path_buf();
        let d = shard.data();
        let tb = d.target_bits.to_native();
        let mask = (1u32 << tb) - 1;
        let frac = d.weight_frac_bits.to_native();
        // Population and population-local id of each local neuron.
        let local: Vec<(usize, u64)> = d
            .local_to_global
            .iter()
            .map(|g| {
                let g = g.to_native();
                let p = pop_of(g);
                (p, g - first_ids[p])
            })
            .collect();
        for row in 0..d.row_ptr.len().saturating_sub(1) {
            let src = d.row_source(row);
            let sp = pop_of(src);
            let s_local = src - first_ids[sp];
            for i in d.row_synapses(row) {
                let td = d.syn_target_delay[i].to_native();
                let Some(&(tp, t_local)) = local.get((td & mask) as usize) else {
                    return Err(FormatError::corrupt(
                        &spath,
                        format!("synapse {i} has a target outside the shard"),
                    ));
                };
                let e = match pair_index.get(sp * n_pops + tp) {
                    Some(&e) if e != usize::MAX => &mut epops[e],
                    _ => {
                        return Err(FormatError::corrupt(
                            &spath,
                            format!(
                                "synapse {i} connects {} to {}, which no projection does",
                                pops[sp].name, pops[tp].name
                            ),
                        ))
                    }
                };
                e.buf_src.push(s_local);
                e.buf_tgt.push(t_local);
                e.buf_w
                    .push(dequantize_weight(d.syn_weight[i].to_native(), frac));
                e.buf_d.push((td >> tb) as f64 * m.dt_ms);
                if e.buf_src.len() >= EDGE_BUFFER {
                    e.flush(&edges_path)?;
                }
            }
            done += d.row_synapses(row).len() as u64;
            if row % 4096 == 0 {
                progress(0, done, total);
            }
        }
    }
    for e in &mut epops {
        e.flush(&edges_path)?;
    }
    progress(0, done, total);

    // Group ids, group indices, types, and both indices.
    let mut indexed = 0u64;
    for (k, e) in epops.iter().enumerate() {
        let n = e.written as usize;
        let err = |d: &str| eerr(format!("/edges/{}/{d}", e.name));
        let type_ds = new_1d::<i64>(&e.group, "edge_type_id").map_err(err("edge_type_id"))?;
        let gid_ds = new_1d::<i64>(&e.group, "edge_group_id").map_err(err("edge_group_id"))?;
        let gix_ds =
            new_1d::<u64>(&e.group, "edge_group_index").map_err(err("edge_group_index"))?;
        let g0 = e.group.group("0").map_err(err("0"))?;
        write_library(&g0, "model_template", "static_synapse", 0)
            .map_err(err("0/model_template"))?;
        let tmpl_ds = g0
            .dataset("model_template")
            .map_err(err("0/model_template"))?;
        let mut at = 0usize;
        while at < n {
            let len = CHUNK.min(n - at);
            append(&type_ds, at as u64, &vec![k as i64; len]).map_err(err("edge_type_id"))?;
            append(&gid_ds, at as u64, &vec![0i64; len]).map_err(err("edge_group_id"))?;
            append(&tmpl_ds, at as u64, &vec![0u8; len]).map_err(err("0/model_template"))?;
            let ix: Vec<u64> = (at as u64..(at + len) as u64).collect();
            append(&gix_ds, at as u64, &ix).map_err(err("edge_group_index"))?;
            at += len;
        }
        let indices = e.group.create_group("indices").map_err(err("indices"))?;
        for (dir_name, ids, n_nodes) in [
            ("source_to_target", &e.src, e.n_source_nodes),
            ("target_to_source", &e.tgt, e.n_target_nodes),
        ] {
            let ig = indices
                .create_group(dir_name)
                .map_err(err(&format!("indices/{dir_name}")))?;
            write_index(&ig, ids, e.written, n_nodes)
                .map_err(err(&format!("indices/{dir_name}")))?;
        }
        indexed += e.written;
        progress(1, indexed, total);
    }
    ef.flush().map_err(eerr("flush".into()))?;
    drop(epops);
    drop(edges);
    drop(ef);

    let mut node_pops = serde_json::Map::new();
    for p in pops {
        let kind = if p.params.model == NeuronModel::SpikeGenerator {
            "virtual"
        } else {
            POINT_NODE_TYPE
        };
        node_pops.insert(p.name.clone(), serde_json::json!({ "type": kind }));
    }
    let mut edge_pops = serde_json::Map::new();
    for (k, &e) in pair_index.iter().enumerate() {
        if e != usize::MAX {
            let name = edge_population_name(&pops[k / n_pops].name, &pops[k % n_pops].name);
            edge_pops.insert(name, serde_json::json!({ "type": POINT_EDGE_TYPE }));
        }
    }
    let config = serde_json::json!({
        "manifest": {
            "$BASE_DIR": ".",
            "$NETWORK_DIR": "$BASE_DIR/network",
            "$COMPONENTS_DIR": "$BASE_DIR/components",
        },
        "components": {
            "point_neuron_models_dir": "$COMPONENTS_DIR/point_neuron_models",
        },
        "networks": {
            "nodes": [{
                "nodes_file": "$NETWORK_DIR/nodes.h5",
                "node_types_file": "$NETWORK_DIR/node_types.csv",
                "populations": node_pops,
            }],
            "edges": [{
                "edges_file": "$NETWORK_DIR/edges.h5",
                "edge_types_file": "$NETWORK_DIR/edge_types.csv",
                "populations": edge_pops,
            }],
        },
        "snn": snn_section(net, model),
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| FormatError::Mismatch {
        path: dir.join("circuit_config.json"),
        message: e.to_string(),
    })?;
    write_text(&dir.join("circuit_config.json"), &(text + "\n"))?;
    Ok(ExportSummary {
        dir: dir.to_path_buf(),
        nodes: pops.iter().map(|p| p.size).sum(),
        edges: done,
        edge_populations: pair_index.iter().filter(|&&e| e != usize::MAX).count(),
    })
}

/// The circuit config's `snn` section: what builds the same network from
/// the circuit and runs it as snn does (see `crate::sonata_import`): the
/// time step, seed and weight fraction bits, each population's initial
/// V_m distribution, Poisson rate and area, the Poisson drive's weight
/// (exactly as stored) and delay, and the recording.
fn snn_section(net: &NetworkDir, model: &Model) -> serde_json::Value {
    let m = &net.manifest;
    let pops = &model.populations;
    let mut populations = serde_json::Map::new();
    for p in pops {
        let mut e = serde_json::json!({
            "V_m_init": p.v_m_init.to_config(),
            "area": model.areas[p.area],
        });
        if p.poisson_rate_hz > 0.0 {
            e["poisson_rate_Hz"] = p.poisson_rate_hz.into();
        }
        populations.insert(p.name.clone(), e);
    }
    let mut s = serde_json::json!({
        "model": m.model_name,
        "model_hash": m.model_hash,
        "dt_ms": m.dt_ms,
        "seed": model.seed,
        "weight_frac_bits": m.weight_frac_bits,
        "n_neurons": m.n_neurons,
        "total_synapses": m.total_synapses,
        "populations": populations,
        "recording": {
            "spikes": model.recording.spike_populations.iter().map(|&i| pops[i].name.clone()).collect::<Vec<_>>(),
            "V_m": vm_recording(model),
        },
    });
    if let Some(p) = &model.poisson {
        let w = dequantize_weight(
            quantize_weight(p.weight_pa, model.weight_frac_bits),
            model.weight_frac_bits,
        );
        s["poisson"] = serde_json::json!({ "weight": w, "delay": p.delay_ms });
    }
    s
}

/// The V_m recording as the config's `[[recording.V_m]]` entries.
fn vm_recording(model: &Model) -> Vec<serde_json::Value> {
    let mut by_pop: Vec<(usize, Vec<u64>)> = Vec::new();
    for &(p, n) in &model.recording.v_m {
        match by_pop.last_mut() {
            Some((q, v)) if *q == p => v.push(n),
            _ => by_pop.push((p, vec![n])),
        }
    }
    by_pop
        .into_iter()
        .map(|(p, neurons)| {
            serde_json::json!({ "population": model.populations[p].name, "neurons": neurons })
        })
        .collect()
}

/// A per-element string attribute `name` of group `g0` whose elements all
/// have `value`: `name` holds `n` indices (`u8`, all 0; extendable, so an
/// edge population appends them later) into `@library/name` = `[value]`.
fn write_library(g0: &Group, name: &str, value: &str, n: usize) -> hdf5::Result<()> {
    let lib = match g0.group("@library") {
        Ok(l) => l,
        Err(_) => g0.create_group("@library")?,
    };
    let v: hdf5::types::VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("{e}")))?;
    lib.new_dataset_builder().with_data(&[v][..]).create(name)?;
    let ds = new_1d::<u8>(g0, name)?;
    append(&ds, 0, &vec![0u8; n])
}

/// `EXC` for a population whose projections all have weights >= 0 (by
/// their mean), `INH` if all < 0, `MIXED` otherwise (`EXC` without any).
fn synapse_class(model: &Model, pop: usize) -> &'static str {
    let signs: Vec<bool> = model
        .projections
        .iter()
        .filter(|p| p.source == pop)
        .map(|p| p.weight_pa.mean() >= 0.0)
        .collect();
    if signs.iter().all(|&e| e) {
        "EXC"
    } else if signs.iter().all(|&e| !e) {
        "INH"
    } else {
        "MIXED"
    }
}

/// The SONATA index of `ids` (the edges' node ids on one side, `n_edges`
/// of them, nodes `0 .. n_nodes`) into `g`: `node_id_to_ranges` (per node,
/// `[first, end)` rows of `range_to_edge_id`) and `range_to_edge_id` (runs
/// `[first, end)` of consecutive edges with that node). Two reads of `ids`
/// per pass: the runs per node are counted in the first, then, for blocks
/// of nodes whose runs fit in [`INDEX_BUDGET`], filled in node order and
/// appended.
fn write_index(g: &Group, ids: &Dataset, n_edges: u64, n_nodes: u64) -> hdf5::Result<()> {
    let n_nodes_us = n_nodes as usize;
    // Runs per node.
    let mut runs = vec![0u64; n_nodes_us];
    for_each_run(ids, n_edges, |node, _, _| {
        match runs.get_mut(node as usize) {
            Some(r) => *r += 1,
            None => {
                return Err(hdf5::Error::from(format!(
                    "node id {node} beyond the population's {n_nodes}"
                )))
            }
        }
        Ok(())
    })?;
    let mut first = vec![0u64; n_nodes_us + 1];
    for i in 0..n_nodes_us {
        first[i + 1] = first[i] + runs[i];
    }
    drop(runs);
    let total_runs = first[n_nodes_us];
    let ranges: Vec<u64> = (0..n_nodes_us)
        .flat_map(|i| [first[i], first[i + 1]])
        .collect();
    g.new_dataset::<u64>()
        .shape([n_nodes_us, 2])
        .create("node_id_to_ranges")?
        .write_raw(&ranges)?;
    drop(ranges);
    let builder = g.new_dataset::<u64>().shape([total_runs as usize, 2]);
    let r2e = if total_runs > 0 {
        builder
            .chunk((CHUNK.min(total_runs as usize), 2))
            .create("range_to_edge_id")?
    } else {
        builder.create("range_to_edge_id")?
    };
    let per_pass = (INDEX_BUDGET / 16) as u64;
    let mut node0 = 0usize;
    while node0 < n_nodes_us {
        // The block of nodes whose runs fit.
        let mut node1 = node0 + 1;
        while node1 < n_nodes_us && first[node1 + 1] - first[node0] <= per_pass {
            node1 += 1;
        }
        let base = first[node0];
        let len = (first[node1] - base) as usize;
        if len > 0 {
            let mut buf = vec![0u64; 2 * len];
            let mut next: Vec<u64> = first[node0..node1].iter().map(|f| f - base).collect();
            for_each_run(ids, n_edges, |node, a, b| {
                let node = node as usize;
                if node >= node0 && node < node1 {
                    let k = &mut next[node - node0];
                    buf[2 * *k as usize] = a;
                    buf[2 * *k as usize + 1] = b;
                    *k += 1;
                }
                Ok(())
            })?;
            let view = ndarray::ArrayView2::from_shape((len, 2), &buf[..])
                .map_err(|e| hdf5::Error::from(e.to_string()))?;
            r2e.write_slice(view, (base as usize..base as usize + len, ..))?;
        }
        node0 = node1;
    }
    Ok(())
}

/// Calls `f(node, first, end)` for each maximal run of consecutive edges
/// with the same node id in `ids`, in edge order; a node id beyond the
/// population is an error.
fn for_each_run(
    ids: &Dataset,
    n_edges: u64,
    mut f: impl FnMut(u64, u64, u64) -> hdf5::Result<()>,
) -> hdf5::Result<()> {
    let mut run: Option<(u64, u64)> = None; // (node, first)
    let mut at = 0u64;
    while at < n_edges {
        let end = (at + (1 << 20)).min(n_edges);
        let chunk: Vec<u64> = ids
            .read_slice_1d::<u64, _>(at as usize..end as usize)?
            .to_vec();
        for (k, &node) in chunk.iter().enumerate() {
            let e = at + k as u64;
            match run {
                Some((n, _)) if n == node => {}
                Some((n, a)) => {
                    f(n, a, e)?;
                    run = Some((node, e));
                }
                None => run = Some((node, e)),
            }
        }
        at = end;
    }
    if let Some((n, a)) = run {
        f(n, a, n_edges)?;
    }
    Ok(())
}
