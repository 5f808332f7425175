//! Connection rules, keyed by target: everything a target neuron's incoming
//! synapses depend on is a pure function of (seed, projection, target index
//! in its population, synapse index), so any rank can draw the synapses of
//! the neurons it owns without knowing how the rest is distributed.
//!
//! Random streams (see `snn_kernels::rng::Purpose`):
//! * `Synapse(p, t, k)`: synapse `k` of target `t` in projection `p`. For
//!   `fixed_indegree` with multapses and `fixed_total_number`, it first draws
//!   the source (`below(n_src)`: two words, redrawn while it equals the
//!   target when autapses are excluded), then the weight, then the delay.
//!   For the other rules the source is fixed by the rule and the stream
//!   starts with the weight. A weight or delay reads nothing if constant,
//!   one uniform (`open01`, two words) if uniform, and one ziggurat normal
//!   per try if normal (`snn_kernels::ziggurat::normal_zig_with`: one word
//!   in ~99% of cases, more on its wedge and tail paths; a normal outside
//!   its bounds is redrawn unless clipped). So a typical synapse with a
//!   drawn source and normal weight and delay reads exactly four words, its
//!   stream's first Philox block.
//! * `TotalNumberSplit(p, node)`: the binomial split of a `fixed_total_number`
//!   total over a binary tree of target ranges (node numbering: root 1,
//!   children `2i` and `2i+1`; the left child gets the lower half
//!   `[lo, lo + (hi-lo)/2)`), so the in-degrees are a multinomial draw that
//!   any rank reproduces for its own targets.
//! * `NoMultapse(p, t, 0)`: Floyd's sampling of distinct sources, sorted.
//! * `Bernoulli(p, t, 0)`: geometric gaps between connected sources.

use std::collections::HashSet;
use std::sync::Arc;

use snn_formats::model::{
    delay_to_steps, quantize_weight, Dist, Model, Projection, Rule, Variates,
};
use snn_kernels::detmath;
use snn_kernels::registry::DistParams;
use snn_kernels::rng::{philox4x32_10_x32_to, CounterRng, Lanes, Purpose};
use snn_kernels::ziggurat::{normal_zig_with, ZigguratTables};

/// Normal variates by the ziggurat ([`normal_zig_with`]): one stream word
/// per variate in ~99% of cases, so that a synapse's source, weight and delay
/// usually fit in its stream's first Philox block.
pub struct Normals<'a> {
    rng: &'a mut CounterRng,
    tables: &'static ZigguratTables,
}

impl<'a> Normals<'a> {
    /// Start drawing from `rng`.
    #[inline]
    pub fn new(rng: &'a mut CounterRng) -> Self {
        Normals {
            rng,
            tables: ZigguratTables::get(),
        }
    }
    /// The next standard normal variate.
    #[inline]
    pub fn next_normal(&mut self) -> f64 {
        normal_zig_with(self.tables, self.rng)
    }
    /// The underlying stream (for uniform draws).
    #[inline]
    pub fn rng(&mut self) -> &mut CounterRng {
        self.rng
    }
}

/// The ziggurat normals and the stream's uniforms, for [`Dist::draw`].
impl Variates for Normals<'_> {
    #[inline]
    fn normal(&mut self) -> f64 {
        self.next_normal()
    }
    #[inline]
    fn open01(&mut self) -> f64 {
        self.rng.open01()
    }
}

/// Draw from a resolved distribution: normals from `z` (redrawn until inside
/// the bounds, or clamped), uniforms `min + (max - min) * open01()`.
#[inline]
pub fn draw(d: &Dist, z: &mut Normals) -> f64 {
    d.draw(z)
}

/// The device form of `d` (`SnnDist` of `kernels/cuda/connect.cu`), for the
/// GPU builder.
pub fn device_dist(d: &Dist) -> DistParams {
    match *d {
        Dist::Constant(v) => DistParams::constant(v),
        Dist::Normal {
            mean,
            std,
            min,
            max,
            clip,
        } => DistParams::normal(mean, std, min, max, clip),
        Dist::Uniform { min, max } => DistParams::uniform(min, max),
    }
}

/// How a projection's sources are determined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    /// Each synapse's stream draws its source.
    PerSynapse,
    /// The rule lists the sources; the synapse streams draw weight and delay.
    Listed,
}

/// A projection prepared for drawing.
#[derive(Clone, Debug)]
pub struct ProjPlan {
    /// The projection.
    pub proj: Projection,
    /// Source population size.
    pub n_src: u64,
    /// Global id of the first source neuron.
    pub src_first: u64,
    /// Target population size.
    pub n_tgt: u64,
    /// Global id of the first target neuron.
    pub tgt_first: u64,
    /// Source mode.
    pub mode: SourceMode,
    /// Autapses must be avoided (same population, not allowed).
    pub exclude_self: bool,
    /// ln(1 - p) for `pairwise_bernoulli`.
    pub ln_1mp: f64,
    /// Network seed.
    pub seed: u64,
    /// Weight fraction bits.
    pub frac_bits: u32,
    /// dt.
    pub dt_ms: f64,
    /// Rule `sonata_edges`: the edges of the rank's own targets.
    pub explicit: Option<Arc<ExplicitEdges>>,
}

/// The synapses of a `sonata_edges` projection onto some of its targets,
/// read from the edge file: per target (population index) its edges in
/// file order (CSR).
#[derive(Clone, Debug, Default)]
pub struct ExplicitEdges {
    /// Per target `t`, its edges are `offsets[t] .. offsets[t + 1]`.
    offsets: Vec<u64>,
    /// Source (population index) of each edge.
    source: Vec<u32>,
    /// Stored weight of each edge (empty when the projection gives them).
    weight_fixed: Vec<i32>,
    /// Delay of each edge, steps (empty when the projection gives them).
    delay_steps: Vec<u32>,
}

impl ExplicitEdges {
    /// Read the edges of projection `proj` of `model` onto the targets for
    /// which `own(target index)` holds, checking that the file still holds
    /// the edges the config was loaded with (number and checksum).
    pub fn load(
        model: &Model,
        proj: &Projection,
        own: &dyn Fn(u64) -> bool,
    ) -> Result<ExplicitEdges, crate::BuildError> {
        use snn_formats::sonata_edges::{EdgeReader, EdgeSelection};
        let Some(src) = &proj.edges else {
            return Err(crate::BuildError::Internal(format!(
                "projection {} has rule sonata_edges but no edges",
                proj.index
            )));
        };
        let n_src = model.populations[proj.source].size;
        let n_tgt = model.populations[proj.target].size;
        let sel = EdgeSelection {
            file: src.file.clone(),
            population: src.population.clone(),
            edge_type_id: src.edge_type_id,
            source_population: model.populations[proj.source].name.clone(),
            target_population: model.populations[proj.target].name.clone(),
            weight_per_edge: src.weight_per_edge,
            delay_per_edge: src.delay_per_edge,
            syn_weight: src.syn_weight,
            nsyns: src.nsyns,
        };
        let reader = EdgeReader::open(&sel)?;
        let frac = model.weight_frac_bits;
        let dt = model.dt_ms;
        let changed = |what: String| {
            snn_formats::FormatError::Mismatch {
            path: src.file.clone(),
            message: format!(
                "/edges/{}: {what}: the file changed since the config was loaded (build from the config again)",
                src.population
            ),
        }
        };
        // Pass 1, targets only: the own targets' edge counts.
        let mut offsets = vec![0u64; n_tgt as usize + 1];
        reader.for_each_target_block(|targets| {
            for &t in targets {
                if t >= n_tgt {
                    return Err(changed(format!("an edge onto node {t}")));
                }
                if own(t) {
                    offsets[t as usize + 1] += 1;
                }
            }
            Ok(())
        })?;
        for t in 0..n_tgt as usize {
            offsets[t + 1] += offsets[t];
        }
        // Pass 2: every edge onto an own target, in file order within its
        // target (a stable counting sort).
        let m = offsets[n_tgt as usize] as usize;
        let mut next = offsets.clone();
        let mut source = crate::memory::zeroed::<u32>(m, "the sources of the file's edges")?;
        let mut weight_fixed = crate::memory::zeroed::<i32>(
            if src.weight_per_edge { m } else { 0 },
            "the weights of the file's edges",
        )?;
        let mut delay_steps = crate::memory::zeroed::<u32>(
            if src.delay_per_edge { m } else { 0 },
            "the delays of the file's edges",
        )?;
        // The ranges the model was resolved with (the weights' fixed point,
        // the delays' fit next to the targets): every value read must lie
        // in them, whatever the config claimed.
        let range = |d: &Dist| match *d {
            Dist::Constant(v) => (v, v),
            Dist::Uniform { min, max } => (min, max),
            Dist::Normal { min, max, .. } => (min, max),
        };
        let (w_range, d_range) = (range(&proj.weight_pa), range(&proj.delay_ms));
        let outside = |x: f64, (lo, hi): (f64, f64)| !(x >= lo && x <= hi);
        let (n, checksum) = reader.for_each_block(|b| {
            for i in 0..b.source.len() {
                let (s, t) = (b.source[i], b.target[i]);
                if s >= n_src || t >= n_tgt {
                    return Err(changed(format!("edge with node ids {s} -> {t}")));
                }
                if b.weight.get(i).is_some_and(|&w| outside(w, w_range))
                    || b.delay.get(i).is_some_and(|&d| outside(d, d_range))
                {
                    return Err(changed(format!(
                        "edge {s} -> {t} has a weight or delay outside the config's weight_range {w_range:?} or delay_range {d_range:?}"
                    )));
                }
                if !own(t) {
                    continue;
                }
                let k = next[t as usize] as usize;
                if k >= offsets[t as usize + 1] as usize {
                    return Err(changed(format!("more edges onto node {t}")));
                }
                next[t as usize] += 1;
                source[k] = s as u32;
                if let Some(x) = weight_fixed.get_mut(k) {
                    *x = b.weight.get(i).map_or(0, |&w| quantize_weight(w, frac));
                }
                if let Some(x) = delay_steps.get_mut(k) {
                    *x = b.delay.get(i).map_or(0, |&d| delay_to_steps(d, dt));
                }
            }
            Ok(())
        })?;
        if n != src.n || checksum != src.checksum {
            return Err(changed(format!(
                "{n} edges with checksum {checksum:016x}, not {} with {:016x}",
                src.n, src.checksum
            ))
            .into());
        }
        Ok(ExplicitEdges {
            offsets,
            source,
            weight_fixed,
            delay_steps,
        })
    }

    /// Bytes held per edge (source, weight, delay).
    pub const BYTES_PER_EDGE: f64 = 12.0;

    fn range(&self, t: u64) -> std::ops::Range<usize> {
        let t = t as usize;
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }
}

impl ProjPlan {
    /// Prepare projection `proj` of `model`.
    pub fn new(model: &Model, proj: &Projection) -> ProjPlan {
        let s = &model.populations[proj.source];
        let t = &model.populations[proj.target];
        let mode = match proj.rule {
            Rule::FixedTotalNumber { .. } => SourceMode::PerSynapse,
            Rule::SonataEdges { .. } => SourceMode::Listed,
            Rule::FixedIndegree { .. } if proj.allow_multapses => SourceMode::PerSynapse,
            _ => SourceMode::Listed,
        };
        let ln_1mp = match proj.rule {
            Rule::PairwiseBernoulli { p } => detmath::ln(1.0 - p),
            _ => 0.0,
        };
        ProjPlan {
            proj: proj.clone(),
            n_src: s.size,
            src_first: s.first_id,
            n_tgt: t.size,
            tgt_first: t.first_id,
            mode,
            exclude_self: !proj.allow_autapses && proj.source == proj.target,
            ln_1mp,
            seed: model.seed,
            frac_bits: model.weight_frac_bits,
            dt_ms: model.dt_ms,
            explicit: None,
        }
    }

    /// The streams of synapses `k0..k0 + n` (`n <= 32`) of target `t`,
    /// their first blocks computed 32 at a time (vectorised Philox): the
    /// same streams as `CounterRng::new(seed, Synapse, projection, t, k)`.
    #[inline]
    fn synapse_rngs(&self, t: u64, k0: u64, n: usize) -> impl Iterator<Item = CounterRng> + '_ {
        let w0 = ((Purpose::Synapse as u32) << 24) | self.proj.index;
        // The counters made in registers (see `philox4x32_10_x32_to`).
        let counters = [
            Lanes::Same(0),
            Lanes::Same(w0),
            Lanes::Same(t as u32),
            Lanes::Iota(k0 as u32),
        ];
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        let mut first = [[0u32; 32]; 4];
        let [a, b, c, d] = &mut first;
        philox4x32_10_x32_to(&counters, key, &mut [a, b, c, d]);
        (0..n).map(move |j| {
            CounterRng::with_first_block(
                self.seed,
                Purpose::Synapse,
                self.proj.index,
                t as u32,
                (k0 + j as u64) as u32,
                [first[0][j], first[1][j], first[2][j], first[3][j]],
            )
        })
    }

    /// Call `f(k, stream)` for synapses `0..n` of target `t` in order.
    #[inline]
    fn for_each_stream(&self, t: u64, n: u64, mut f: impl FnMut(u64, &mut CounterRng)) {
        let mut k0 = 0u64;
        while k0 < n {
            let m = (n - k0).min(32) as usize;
            for (j, mut rng) in self.synapse_rngs(t, k0, m).enumerate() {
                f(k0 + j as u64, &mut rng);
            }
            k0 += m as u64;
        }
    }

    /// Draw the source of a per-synapse stream.
    #[inline]
    fn draw_source(&self, rng: &mut CounterRng, t: u64) -> u64 {
        loop {
            let s = rng.below(self.n_src);
            if !(self.exclude_self && s == t) {
                return s;
            }
        }
    }

    /// The sources (population indices) of target `t` for `Listed` rules,
    /// in synapse order.
    pub fn listed_sources(&self, t: u64, out: &mut Vec<u64>) {
        out.clear();
        match self.proj.rule {
            Rule::OneToOne => {
                if !self.exclude_self {
                    out.push(t);
                }
            }
            Rule::AllToAll => {
                out.extend((0..self.n_src).filter(|&s| !(self.exclude_self && s == t)));
            }
            Rule::PairwiseBernoulli { p } => {
                if p <= 0.0 || self.n_src == 0 {
                    return;
                }
                let mut rng =
                    CounterRng::new(self.seed, Purpose::Bernoulli, self.proj.index, t as u32, 0);
                let mut s = 0u64;
                loop {
                    s = s.saturating_add(detmath::geometric_skip(&mut rng, self.ln_1mp));
                    if s >= self.n_src {
                        break;
                    }
                    if !(self.exclude_self && s == t) {
                        out.push(s);
                    }
                    s += 1;
                }
            }
            Rule::FixedIndegree { k } => {
                // Without multapses: k distinct sources (Floyd's algorithm),
                // sorted.
                let avail = self.n_src - u64::from(self.exclude_self);
                let k = k.min(avail);
                let mut rng =
                    CounterRng::new(self.seed, Purpose::NoMultapse, self.proj.index, t as u32, 0);
                let mut set = HashSet::with_capacity(k as usize);
                for j in avail - k..avail {
                    let r = rng.below(j + 1);
                    if !set.insert(r) {
                        set.insert(j);
                    }
                }
                out.extend(set);
                out.sort_unstable();
                if self.exclude_self {
                    for s in out.iter_mut() {
                        if *s >= t {
                            *s += 1;
                        }
                    }
                }
            }
            Rule::FixedTotalNumber { .. } => {}
            Rule::SonataEdges { .. } => {
                if let Some(e) = &self.explicit {
                    out.extend(e.source[e.range(t)].iter().map(|&s| s as u64));
                }
            }
        }
    }

    /// Call `f(source_index)` for each synapse of target `t` (in synapse
    /// order) given its in-degree for `PerSynapse` rules.
    #[inline]
    pub fn for_each_source(
        &self,
        t: u64,
        indegree: u64,
        scratch: &mut Vec<u64>,
        mut f: impl FnMut(u64),
    ) {
        match self.mode {
            SourceMode::PerSynapse => {
                self.for_each_stream(t, indegree, |_, rng| f(self.draw_source(rng, t)));
            }
            SourceMode::Listed => {
                self.listed_sources(t, scratch);
                for &s in scratch.iter() {
                    f(s);
                }
            }
        }
    }

    /// Call `f(source_index, weight_fixed, delay_steps)` for each synapse of
    /// target `t`, in synapse order.
    #[inline]
    pub fn for_each_synapse(
        &self,
        t: u64,
        indegree: u64,
        scratch: &mut Vec<u64>,
        mut f: impl FnMut(u64, i32, u32),
    ) {
        let w = &self.proj.weight_pa;
        let d = &self.proj.delay_ms;
        match (self.mode, self.explicit.as_deref()) {
            (SourceMode::PerSynapse, _) => {
                self.for_each_stream(t, indegree, |_, rng| {
                    let s = self.draw_source(rng, t);
                    let mut z = Normals::new(rng);
                    let wq = quantize_weight(draw(w, &mut z), self.frac_bits);
                    let ds = delay_to_steps(draw(d, &mut z), self.dt_ms);
                    f(s, wq, ds);
                });
            }
            (SourceMode::Listed, Some(e)) => {
                let range = e.range(t);
                let (w_file, d_file) = (!e.weight_fixed.is_empty(), !e.delay_steps.is_empty());
                if w_file && d_file {
                    for k in range {
                        f(e.source[k] as u64, e.weight_fixed[k], e.delay_steps[k]);
                    }
                    return;
                }
                let first = range.start;
                self.for_each_stream(t, range.len() as u64, |k, rng| {
                    let k = first + k as usize;
                    let mut z = Normals::new(rng);
                    let wq = if w_file {
                        e.weight_fixed[k]
                    } else {
                        quantize_weight(draw(w, &mut z), self.frac_bits)
                    };
                    let ds = if d_file {
                        e.delay_steps[k]
                    } else {
                        delay_to_steps(draw(d, &mut z), self.dt_ms)
                    };
                    f(e.source[k] as u64, wq, ds);
                });
            }
            (SourceMode::Listed, None) => {
                self.listed_sources(t, scratch);
                self.for_each_stream(t, scratch.len() as u64, |k, rng| {
                    let mut z = Normals::new(rng);
                    let wq = quantize_weight(draw(w, &mut z), self.frac_bits);
                    let ds = delay_to_steps(draw(d, &mut z), self.dt_ms);
                    f(scratch[k as usize], wq, ds);
                });
            }
        }
    }
}

/// In-degrees of a `fixed_total_number` projection: the multinomial split of
/// `n_total` over `n_tgt` targets by a binary tree of binomial draws. Only
/// the subtrees that contain a target with `wanted(index)` in their range
/// (checked by `range_wanted(lo, hi)`) are expanded; `out[i]` receives the
/// in-degree of target `i` for expanded leaves (others stay 0).
pub fn split_total_number(
    seed: u64,
    projection: u32,
    n_total: u64,
    n_tgt: u64,
    range_wanted: &dyn Fn(u64, u64) -> bool,
    out: &mut [u32],
) {
    if n_tgt == 0 {
        return;
    }
    // (lo, hi, n, node id)
    let mut stack: Vec<(u64, u64, u64, u64)> = vec![(0, n_tgt, n_total, 1)];
    while let Some((lo, hi, n, node)) = stack.pop() {
        if n == 0 || !range_wanted(lo, hi) {
            continue;
        }
        if hi - lo == 1 {
            out[lo as usize] = u32::try_from(n).unwrap_or(u32::MAX);
            continue;
        }
        let mid = lo + (hi - lo) / 2;
        let p = (mid - lo) as f64 / (hi - lo) as f64;
        let mut rng = CounterRng::new(
            seed,
            Purpose::TotalNumberSplit,
            projection,
            node as u32,
            (node >> 32) as u32,
        );
        let left = detmath::binomial(&mut rng, n, p);
        stack.push((mid, hi, n - left, 2 * node + 1));
        stack.push((lo, mid, left, 2 * node));
    }
}
