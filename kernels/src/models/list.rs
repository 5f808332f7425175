// The neuron models of snn: the one list.
//
// Read with `include!` twice, each time with a `neuron_models!` of its own:
// by snn-kernels (`models/mod.rs`: the model's arithmetic, `Block`, the
// device kinds and the generated header `models.cuh`) and by snn-formats
// (`model.rs`: the config's names and parameters, `NeuronModel`). A model is
// its module `kernels/src/models/<name>.rs` with `<name>.cuh` beside it, and
// one entry here: its variant, its NEST name, its module, the NEST
// parameters a config may set, and the charge (pA ms) one unit of weight
// carries into the membrane, which the compensating DC uses
// (`|p, excitatory|`, `p` the resolved `NeuronParams`). See
// `kernels/README.md`, "Adding a neuron model".
neuron_models! {
    /// Leaky integrate-and-fire neuron with exponentially decaying
    /// postsynaptic currents (NEST `iaf_psc_exp`); weights in pA.
    IafPscExp = "iaf_psc_exp" in iaf_psc_exp,
        params [C_m, tau_m, tau_syn_ex, tau_syn_in, t_ref, E_L, V_th, V_reset, I_e],
        charge |p, excitatory| if excitatory { p.tau_syn_ex } else { p.tau_syn_in };
    /// Leaky integrate-and-fire neuron with alpha-shaped postsynaptic
    /// currents (NEST `iaf_psc_alpha`); weights in pA (the current's peak).
    IafPscAlpha = "iaf_psc_alpha" in iaf_psc_alpha,
        params [C_m, tau_m, tau_syn_ex, tau_syn_in, t_ref, E_L, V_th, V_reset, I_e],
        charge |p, excitatory| std::f64::consts::E * if excitatory { p.tau_syn_ex } else { p.tau_syn_in };
    /// Leaky integrate-and-fire neuron with delta synapses: an input spike
    /// makes the membrane potential jump by its weight (NEST
    /// `iaf_psc_delta`); weights in mV.
    IafPscDelta = "iaf_psc_delta" in iaf_psc_delta,
        params [C_m, tau_m, t_ref, E_L, V_th, V_reset, I_e],
        charge |p, _excitatory| p.C_m;
}
