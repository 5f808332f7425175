//! The compensating DC of downscaled in-degrees, per neuron model: the mean
//! input of the full-scale network is `K_full * rate * w * charge`, where the
//! charge of a unit weight is the integral of the model's postsynaptic
//! current (`tau_syn` for `iaf_psc_exp`, `e tau_syn` for `iaf_psc_alpha`) or,
//! for `iaf_psc_delta` (weights in mV), `C_m`; with in-degrees scaled by `k`
//! the weights are divided by `sqrt(k)` and `(1 - sqrt(k))` of that mean
//! comes as DC. Checked against the closed form written out here.

use snn_formats::config::parse_config;
use snn_formats::model::Model;

#[test]
fn compensating_dc_per_model() {
    let text = r#"
[network]
name = "comp"
dt_ms = 0.1

[scale]
indegree = 0.25
compensate_indegree = true

[[populations]]
name = "S"
size = 400
mean_rate_Hz = 8.0

[[populations]]
name = "EXP"
size = 10
params = { model = "iaf_psc_exp", tau_syn_ex = 0.5, tau_syn_in = 3.0 }

[[populations]]
name = "ALPHA"
size = 10
params = { model = "iaf_psc_alpha", tau_syn_ex = 0.5, tau_syn_in = 3.0 }

[[populations]]
name = "DELTA"
size = 10
params = { model = "iaf_psc_delta", C_m = 200.0, I_e = 5.0 }

[[projections]]
source = "S"
target = "EXP"
rule = "fixed_indegree"
indegree = 100
weight = 80.0
delay = 1.0

[[projections]]
source = "S"
target = "ALPHA"
rule = "fixed_indegree"
indegree = 100
weight = -80.0
delay = 1.0

[[projections]]
source = "S"
target = "DELTA"
rule = "fixed_indegree"
indegree = 100
weight = 0.5
delay = 1.0
"#;
    let cfg = parse_config(text, "comp.toml", &[]).expect("config");
    let m = Model::resolve(&cfg, "comp.toml").expect("resolves");
    let (k_full, rate, f) = (100.0, 8.0, 1.0 - 0.25f64.sqrt());
    let dc = |charge: f64, w: f64| 0.001 * f * (charge * w * k_full * rate);
    let want = [
        ("EXP", dc(0.5, 80.0)),
        ("ALPHA", dc(std::f64::consts::E * 3.0, -80.0)),
        ("DELTA", 5.0 + dc(200.0, 0.5)),
    ];
    for (name, i_e) in want {
        let p = m.populations.iter().find(|p| p.name == name).expect(name);
        assert!(
            (p.params.I_e - i_e).abs() <= 1e-12 * i_e.abs(),
            "{name}: I_e {} pA, want {i_e}",
            p.params.I_e
        );
    }
}
