//! Full verification of a network directory (`snn-build verify`): file and
//! payload checksums, archive structure, every synapse, and the consistency
//! of the routing tables between ranks.

use snn_formats::{Check, FormatError, NetworkDir, Placement};

use crate::BuildError;

/// What was verified.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    /// Shards.
    pub shards: u32,
    /// Neurons.
    pub neurons: u64,
    /// Synapses.
    pub synapses: u64,
}

/// Verify everything; the first problem found is returned as an error naming
/// the file.
pub fn verify_network(net: &NetworkDir) -> Result<VerifyReport, BuildError> {
    let m = &net.manifest;
    let mpath = net.dir.join(snn_formats::manifest::MANIFEST_FILE);
    let model = m.model(&mpath)?;
    m.check_against_model(&model, &mpath)?;
    let placement = Placement::new(&model, m.n_ranks)?;
    let shards = (0..m.n_ranks)
        .map(|r| net.open_shard(r, Check::Full))
        .collect::<Result<Vec<_>, _>>()?;
    let bad =
        |r: u32, msg: String| -> BuildError { FormatError::corrupt(net.shard_path(r), msg).into() };
    let mut per_projection = vec![0u64; m.projections.len()];
    let (mut dmin, mut dmax) = (u32::MAX, 0u32);
    let mut neurons = 0u64;
    for (r, s) in shards.iter().enumerate() {
        let r = r as u32;
        let d = s.data();
        if d.n_neurons.to_native() != m.n_neurons
            || d.weight_frac_bits.to_native() != m.weight_frac_bits
        {
            return Err(bad(
                r,
                "neuron count or weight scale differs from the manifest".into(),
            ));
        }
        let owned = placement.owned(r);
        if d.local_to_global.len() != owned.len()
            || d.local_to_global
                .iter()
                .zip(&owned)
                .any(|(a, b)| a.to_native() != *b)
        {
            return Err(bad(
                r,
                "local neurons differ from the placement in the manifest".into(),
            ));
        }
        neurons += owned.len() as u64;
        #[allow(clippy::needless_range_loop)]
        for q in 0..m.n_ranks as usize {
            let (a, b) = (
                d.image_offsets[q].to_native() as usize,
                d.image_offsets[q + 1].to_native() as usize,
            );
            if let Some(g) = d.images[a..b]
                .iter()
                .find(|g| placement.locate(g.to_native()).0 != q as u32)
            {
                return Err(bad(
                    r,
                    format!(
                        "image of neuron {} listed under rank {q} which does not own it",
                        g.to_native()
                    ),
                ));
            }
            // The send table of q towards r must list exactly these neurons.
            let other = shards[q].data();
            let (sa, sb) = (
                other.send_offsets[r as usize].to_native() as usize,
                other.send_offsets[r as usize + 1].to_native() as usize,
            );
            let sends = &other.send[sa..sb];
            if sends.len() != b - a
                || sends.iter().zip(&d.images[a..b]).any(|(l, g)| {
                    other
                        .local_to_global
                        .get(l.to_native() as usize)
                        .map(|x| x.to_native())
                        != Some(g.to_native())
                })
            {
                return Err(bad(
                    r,
                    format!("images from rank {q} do not match that rank's send table"),
                ));
            }
        }
        if d.projection_synapses.len() != per_projection.len() {
            return Err(bad(
                r,
                "per-projection counts do not match the manifest".into(),
            ));
        }
        for (acc, x) in per_projection.iter_mut().zip(d.projection_synapses.iter()) {
            *acc += x.to_native();
        }
        if !d.syn_weight.is_empty() {
            dmin = dmin.min(d.min_delay_steps.to_native());
            dmax = dmax.max(d.max_delay_steps.to_native());
        }
    }
    let synapses: u64 = per_projection.iter().sum();
    let stored: u64 = shards
        .iter()
        .map(|s| s.data().syn_weight.len() as u64)
        .sum();
    if synapses != stored
        || synapses != m.total_synapses
        || per_projection
            .iter()
            .zip(&m.projections)
            .any(|(a, p)| *a != p.synapses)
    {
        return Err(
            FormatError::corrupt(&mpath, "synapse counts of shards and manifest differ").into(),
        );
    }
    if synapses > 0 && (dmin != m.min_delay_steps || dmax != m.max_delay_steps) {
        return Err(
            FormatError::corrupt(&mpath, "delay range of shards and manifest differ").into(),
        );
    }
    if neurons != m.n_neurons {
        return Err(FormatError::corrupt(&mpath, "shards do not cover all neurons").into());
    }
    Ok(VerifyReport {
        shards: m.n_ranks,
        neurons,
        synapses,
    })
}
