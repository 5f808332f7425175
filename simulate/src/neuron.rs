//! The neuron models the engines run: those of
//! [`snn_kernels::models`], where each model is one module (its Rust
//! update, which the CPU engine runs, and its CUDA update, which the GPU
//! engine runs, side by side) registered in one list; the module
//! documentation there gives the models' equations, NEST 3.10's update
//! order and the event timing the engines follow.
//!
//! This module connects them to the resolved model: [`block`] makes the
//! [`Block`] of a population from its [`NeuronParams`].

use snn_formats::model::{NeuronModel, NeuronParams};
pub use snn_kernels::models::{refractory_steps, Block, ModelId, ModelParams};

/// The model of the list of models that `model` names; `None` for
/// `spike_generator`, which is not a neuron.
pub fn model_id(model: NeuronModel) -> Option<ModelId> {
    ModelId::from_nest_name(model.name())
}

/// The parameters of `p` as the models read them.
pub fn model_params(p: &NeuronParams) -> ModelParams {
    ModelParams {
        C_m: p.C_m,
        tau_m: p.tau_m,
        tau_syn_ex: p.tau_syn_ex,
        tau_syn_in: p.tau_syn_in,
        t_ref: p.t_ref,
        E_L: p.E_L,
        V_th: p.V_th,
        V_reset: p.V_reset,
        I_e: p.I_e,
    }
}

/// A block of `n` neurons of `p.model` with step `dt_ms` and initial
/// potentials `v_m_init(i)` (mV); `None` for a model that is not a neuron
/// (`spike_generator`).
pub fn block(
    p: &NeuronParams,
    dt_ms: f64,
    n: usize,
    v_m_init: impl Fn(usize) -> f64,
) -> Option<Block> {
    let id = model_id(p.model)?;
    Some(Block::new(id, &model_params(p), dt_ms, n, v_m_init))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every neuron model of the config's vocabulary has its arithmetic,
    /// and the other way round (both come from one list).
    #[test]
    fn every_model_has_an_update() {
        let neurons: Vec<NeuronModel> = NeuronModel::ALL
            .iter()
            .copied()
            .filter(|&m| m != NeuronModel::SpikeGenerator)
            .collect();
        assert_eq!(neurons.len(), ModelId::ALL.len());
        for (m, id) in neurons.iter().zip(ModelId::ALL) {
            assert_eq!(model_id(*m), Some(*id));
        }
        assert_eq!(model_id(NeuronModel::SpikeGenerator), None);
    }
}
