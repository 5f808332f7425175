//! Every mistake a user can make in a model config gives an error whose
//! message is one line naming the file, the field and the problem
//! (see `ARCHITECTURE.md`); `--set` reaches every field.

use snn_formats::config::parse_config;
use snn_formats::model::{Dist, Model, Rule};

const FILE: &str = "my-model.toml";

const NETWORK: &str = r#"
[network]
name = "t"
dt_ms = 0.1
"#;

const POPULATIONS: &str = r#"
[[populations]]
name = "L23E"
size = 100

[[populations]]
name = "L23I"
size = 20
"#;

const PROJECTION: &str = r#"
[[projections]]
source = "L23E"
target = "L23I"
rule = "fixed_indegree"
indegree = 10
weight = 1.0
delay = 1.0
"#;

fn valid() -> String {
    format!("{NETWORK}{POPULATIONS}{PROJECTION}")
}

/// Parse and resolve `text` (named [`FILE`]) with overrides.
fn load(text: &str, overrides: &[&str]) -> Result<Model, String> {
    let ov: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let cfg = parse_config(text, FILE, &ov).map_err(|e| e.to_string())?;
    Model::resolve(&cfg, FILE).map_err(|e| e.to_string())
}

/// The error message of a config that must be rejected, checked to be one
/// line naming the file and every string of `must_contain` (the field path
/// and the problem).
#[track_caller]
fn rejected(text: &str, overrides: &[&str], must_contain: &[&str]) -> String {
    let msg = match load(text, overrides) {
        Ok(_) => {
            panic!("config was accepted, expected an error containing {must_contain:?}:\n{text}")
        }
        Err(m) => m,
    };
    assert!(!msg.contains('\n'), "error is not one line: {msg:?}");
    assert!(!msg.trim().is_empty());
    assert!(
        msg.starts_with(FILE),
        "error does not start with the file name: {msg}"
    );
    for s in must_contain {
        assert!(msg.contains(s), "error {msg:?} does not contain {s:?}");
    }
    msg
}

fn projection(body: &str) -> String {
    format!("{NETWORK}{POPULATIONS}\n[[projections]]\n{body}\n")
}

#[test]
fn the_valid_base_config_resolves() {
    let m = load(&valid(), &[]).expect("valid config");
    assert_eq!(m.populations.len(), 2);
    assert_eq!(m.projections[0].rule, Rule::FixedIndegree { k: 10 });
}

#[test]
fn unknown_population_in_projection_source() {
    let text = valid().replace("source = \"L23E\"", "source = \"L99E\"");
    rejected(
        &text,
        &[],
        &[
            "projections[0].source",
            "unknown population",
            "L99E",
            "L23E, L23I",
        ],
    );
}

#[test]
fn unknown_population_in_projection_target() {
    let text = valid().replace("target = \"L23I\"", "target = \"L5E\"");
    rejected(
        &text,
        &[],
        &["projections[0].target", "unknown population", "L5E"],
    );
}

#[test]
fn negative_population_size() {
    let text = valid().replace("size = 20", "size = -5");
    rejected(&text, &[], &["populations[1].size", ">= 0", "-5"]);
}

#[test]
fn connection_probability_above_one() {
    let text = projection(
        r#"source = "L23E"
target = "L23I"
rule = "fixed_total_number"
connection_probability = 1.5
weight = 1.0
delay = 1.0"#,
    );
    rejected(
        &text,
        &[],
        &["projections[0].connection_probability", "1.5", "[0, 1"],
    );
}

#[test]
fn pairwise_bernoulli_negative_probability() {
    let text = projection(
        r#"source = "L23E"
target = "L23I"
rule = "pairwise_bernoulli"
p = -0.1
weight = 1.0
delay = 1.0"#,
    );
    rejected(&text, &[], &["projections[0].p", "-0.1"]);
}

#[test]
fn pairwise_bernoulli_probability_above_one() {
    let text = projection(
        r#"source = "L23E"
target = "L23I"
rule = "pairwise_bernoulli"
p = 1.01
weight = 1.0
delay = 1.0"#,
    );
    rejected(&text, &[], &["projections[0].p", "1.01", "[0, 1]"]);
}

#[test]
fn constant_delay_below_half_a_step() {
    let text = valid().replace("delay = 1.0", "delay = 0.01");
    rejected(&text, &[], &["projections[0].delay", "0.01", "dt/2"]);
    // Exactly dt/2 rounds to one step (as in NEST) and is accepted.
    let text = valid().replace("delay = 1.0", "delay = 0.05");
    load(&text, &[]).expect("delay of dt/2 is accepted");
}

#[test]
fn normal_delay_without_lower_bound() {
    let text = valid().replace(
        "delay = 1.0",
        "delay = { distribution = \"normal\", mean = 1.5, std = 0.75 }",
    );
    rejected(&text, &[], &["projections[0].delay", "below dt/2", "min"]);
    let text = valid().replace(
        "delay = 1.0",
        "delay = { distribution = \"normal\", mean = 1.5, std = 0.75, min = 0.05 }",
    );
    load(&text, &[]).expect("normal delay with min = dt/2");
}

#[test]
fn delay_below_dt_via_set_on_dt() {
    // A delay that is fine at dt = 0.1 is too short at dt = 1.
    rejected(
        &valid(),
        &["network.dt_ms=4.0"],
        &["projections[0].delay", "dt/2"],
    );
}

#[test]
fn unknown_field() {
    let text = valid().replace("size = 100", "sizee = 100");
    rejected(&text, &[], &["populations[0]", "sizee", "unknown field"]);
}

#[test]
fn unknown_top_level_section() {
    let text = format!("{}\n[simulaton]\nt_ms = 5\n", valid());
    rejected(&text, &[], &["simulaton", "unknown field"]);
}

#[test]
fn wrong_type() {
    let text = valid().replace("size = 100", "size = \"ten\"");
    rejected(&text, &[], &["populations[0].size", "invalid type", "ten"]);
}

#[test]
fn missing_required_field() {
    let text = valid().replace("rule = \"fixed_indegree\"\n", "");
    rejected(&text, &[], &["projections[0]", "missing field", "rule"]);
}

#[test]
fn unknown_rule_name() {
    let text = valid().replace("rule = \"fixed_indegree\"", "rule = \"fixed_outdegree\"");
    rejected(&text, &[], &["projections[0].rule", "fixed_outdegree"]);
}

#[test]
fn toml_syntax_error_names_the_line() {
    // Line 7 of this text is broken.
    let text =
        "[network]\nname = \"t\"\n\n[[populations]]\nname = \"A\"\nsize = 10\nweight = = 3\n";
    let msg = rejected(text, &[], &["syntax"]);
    assert!(
        msg.starts_with(&format!("{FILE}:7:")),
        "line 7 expected: {msg}"
    );
}

#[test]
fn toml_syntax_error_at_the_start_of_a_line() {
    // Line 6 starts with a character that cannot start a key.
    let text = "[network]\nname = \"t\"\n\n[[populations]]\nname = \"A\"\n@size = 10\n";
    let msg = rejected(text, &[], &["syntax"]);
    assert!(
        msg.starts_with(&format!("{FILE}:6:")),
        "line 6 expected: {msg}"
    );
}

#[test]
fn toml_syntax_error_unclosed_string() {
    let text = format!("{}\n[[populations]]\nname = \"C\nsize = 3\n", valid());
    let lines = text.lines().count();
    let msg = rejected(&text, &[], &["syntax"]);
    let line_of_error = lines - 1; // the `name = "C` line
    assert!(
        msg.starts_with(&format!("{FILE}:{line_of_error}:")),
        "line {line_of_error} expected: {msg}"
    );
}

#[test]
fn set_without_equals() {
    rejected(
        &valid(),
        &["scale.neurons"],
        &["--set scale.neurons", "key=value"],
    );
}

#[test]
fn set_with_empty_key() {
    rejected(&valid(), &["=3"], &["--set =3", "key"]);
}

#[test]
fn set_unknown_array_element_name() {
    rejected(
        &valid(),
        &["populations.L99E.size=1"],
        &["--set populations.L99E.size=1", "L99E", "populations"],
    );
}

#[test]
fn set_array_index_out_of_range() {
    rejected(
        &valid(),
        &["populations.5.size=1"],
        &["--set populations.5.size=1", "5", "out of range"],
    );
}

#[test]
fn set_unknown_field_is_caught() {
    rejected(
        &valid(),
        &["populations.L23E.sise=1"],
        &["populations[0]", "sise", "unknown field"],
    );
}

#[test]
fn set_wrong_type() {
    rejected(
        &valid(),
        &["populations.L23E.size=ten"],
        &["populations[0].size", "invalid type"],
    );
}

#[test]
fn set_through_a_scalar() {
    rejected(
        &valid(),
        &["network.name.x=1"],
        &["--set network.name.x=1", "network.name", "not a table"],
    );
}

#[test]
fn unknown_neuron_model() {
    let text = valid().replace(
        "size = 100",
        "size = 100\nparams = { model = \"iaf_cond_exp\" }",
    );
    rejected(
        &text,
        &[],
        &[
            "populations[0].params.model",
            "unknown neuron model",
            "iaf_cond_exp",
        ],
    );
}

/// A parameter the population's model does not have is an error naming it
/// and what the model takes; from `[neuron_defaults]` (shared by the
/// models of a config) it applies only where it fits.
#[test]
fn parameter_the_model_lacks() {
    let text = valid().replace(
        "size = 100",
        "size = 100\nparams = { model = \"iaf_psc_delta\", tau_syn_ex = 0.5 }",
    );
    rejected(
        &text,
        &[],
        &[
            "populations[0].params.tau_syn_ex",
            "iaf_psc_delta has no parameter tau_syn_ex",
            "C_m, tau_m, t_ref, E_L, V_th, V_reset, I_e",
        ],
    );
    let text = valid().replace(
        "size = 100",
        "size = 100\nparams = { model = \"spike_generator\", C_m = 200.0 }",
    );
    rejected(
        &text,
        &[],
        &["populations[0].params.C_m", "spike_generator"],
    );
    let text = format!(
        "{}\n[neuron_defaults]\ntau_syn_ex = 0.5\n",
        valid().replace(
            "size = 100",
            "size = 100\nparams = { model = \"iaf_psc_delta\" }"
        )
    );
    let m = load(&text, &[]).expect("defaults apply where they fit");
    assert_eq!(m.populations[0].params.model.name(), "iaf_psc_delta");
    assert_eq!(m.populations[1].params.tau_syn_ex, 0.5);
}

#[test]
fn unknown_neuron_model_in_defaults() {
    let text = format!("{}\n[neuron_defaults]\nmodel = \"hh_psc_alpha\"\n", valid());
    rejected(
        &text,
        &[],
        &[
            "neuron_defaults.model",
            "unknown neuron model",
            "hh_psc_alpha",
        ],
    );
}

#[test]
fn invalid_parameter_in_defaults_names_neuron_defaults() {
    let text = format!(
        "{}\n[neuron_defaults]\nV_th = -55.0\nV_reset = -40.0\n",
        valid()
    );
    rejected(&text, &[], &["neuron_defaults.V_reset", "V_th"]);
    let text = format!("{}\n[neuron_defaults]\ntau_m = 0.0\n", valid());
    rejected(&text, &[], &["neuron_defaults.tau_m", "> 0"]);
    // A population's own value is named as such even when defaults exist.
    let text = format!(
        "{}\n[neuron_defaults]\ntau_m = 10.0\n",
        valid().replace("size = 20", "size = 20\nparams = { tau_m = -1.0 }")
    );
    rejected(&text, &[], &["populations[1].params.tau_m", "> 0"]);
}

#[test]
fn reset_not_below_threshold() {
    let text = valid().replace(
        "size = 20",
        "size = 20\nparams = { V_th = -55.0, V_reset = -55.0 }",
    );
    rejected(&text, &[], &["populations[1].params.V_reset", "V_th"]);
    let text = valid().replace(
        "size = 20",
        "size = 20\nparams = { V_th = -55.0, V_reset = -50.0 }",
    );
    rejected(&text, &[], &["populations[1].params.V_reset", "V_th"]);
}

#[test]
fn non_positive_membrane_parameters() {
    let text = valid().replace("size = 20", "size = 20\nparams = { C_m = 0.0 }");
    rejected(&text, &[], &["populations[1].params.C_m", "> 0"]);
    let text = valid().replace("size = 20", "size = 20\nparams = { tau_m = -10.0 }");
    rejected(&text, &[], &["populations[1].params.tau_m", "> 0"]);
}

#[test]
fn unknown_population_in_recording() {
    let text = format!("{}\n[recording]\nspikes = [\"L23E\", \"L4E\"]\n", valid());
    rejected(
        &text,
        &[],
        &["recording.spikes[1]", "unknown population", "L4E"],
    );
}

#[test]
fn recording_neuron_outside_population() {
    let text = format!(
        "{}\n[recording]\nV_m = [{{ population = \"L23I\", neurons = [0, 20] }}]\n",
        valid()
    );
    rejected(&text, &[], &["recording.V_m[0].neurons", "20", "L23I"]);
}

#[test]
fn population_placement_missing_a_population() {
    let text = format!(
        "{}\n[placement]\nscheme = \"population\"\npopulation_ranks = {{ L23E = 0 }}\n",
        valid()
    );
    rejected(&text, &[], &["placement.population_ranks", "L23I"]);
}

#[test]
fn population_placement_unknown_population() {
    let text = format!(
        "{}\n[placement]\nscheme = \"population\"\npopulation_ranks = {{ L23E = 0, L23I = 1, X = 2 }}\n",
        valid()
    );
    rejected(
        &text,
        &[],
        &["placement.population_ranks", "unknown population", "X"],
    );
}

#[test]
fn fixed_indegree_without_multapses_needs_enough_sources() {
    // L23I (20 neurons) -> L23E: 21 distinct sources requested.
    let text = projection(
        r#"source = "L23I"
target = "L23E"
rule = "fixed_indegree"
indegree = 21
allow_multapses = false
weight = 1.0
delay = 1.0"#,
    );
    rejected(
        &text,
        &[],
        &["projections[0].indegree", "21", "20", "allow_multapses"],
    );
    // 20 is possible.
    load(&text.replace("indegree = 21", "indegree = 20"), &[]).expect("20 distinct sources of 20");
    // Without autapses inside one population, only n - 1 sources exist.
    let text = projection(
        r#"source = "L23I"
target = "L23I"
rule = "fixed_indegree"
indegree = 20
allow_multapses = false
allow_autapses = false
weight = 1.0
delay = 1.0"#,
    );
    rejected(&text, &[], &["projections[0].indegree", "19"]);
    // With multapses any number is fine.
    load(
        &text.replace("allow_multapses = false", "allow_multapses = true"),
        &[],
    )
    .expect("multapses");
}

#[test]
fn rule_parameters_missing_or_misplaced() {
    let text = valid().replace("indegree = 10\n", "");
    rejected(&text, &[], &["projections[0].indegree", "fixed_indegree"]);
    let text = valid().replace("indegree = 10", "indegree = 10\np = 0.5");
    rejected(&text, &[], &["projections[0].p", "not used"]);
}

#[test]
fn scale_must_be_positive() {
    rejected(&valid(), &["scale.neurons=0"], &["scale.neurons", "> 0"]);
    rejected(&valid(), &["scale.indegree=-1"], &["scale.indegree", "> 0"]);
}

#[test]
fn non_finite_weight() {
    let text = valid().replace("weight = 1.0", "weight = nan");
    rejected(&text, &[], &["projections[0].weight: ", "finite"]);
    let text = valid().replace(
        "weight = 1.0",
        "weight = { distribution = \"normal\", mean = inf, std = 1.0 }",
    );
    rejected(&text, &[], &["projections[0].weight.mean", "finite"]);
}

#[test]
fn duplicate_population_name() {
    let text = valid().replace("name = \"L23I\"", "name = \"L23E\"");
    rejected(&text, &[], &["populations[1].name", "duplicate", "L23E"]);
}

#[test]
fn load_config_names_the_real_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("wrong.toml");
    std::fs::write(
        &path,
        valid().replace("source = \"L23E\"", "source = \"Q\""),
    )
    .expect("write");
    let cfg = snn_formats::load_config(&path, &[]).expect("parses");
    let origin = path.display().to_string();
    let msg = Model::resolve(&cfg, &origin)
        .expect_err("unknown population")
        .to_string();
    assert!(
        msg.starts_with(&origin) && msg.contains("projections[0].source"),
        "{msg}"
    );

    let missing = tmp.path().join("absent.toml");
    let msg = snn_formats::load_config(&missing, &[])
        .expect_err("missing file")
        .to_string();
    assert!(msg.contains("absent.toml") && !msg.contains('\n'), "{msg}");
}

// ---- --set reaches every field ---------------------------------------

#[test]
fn set_nested_field_by_population_name() {
    let m = load(&valid(), &["populations.L23E.size=10"]).expect("override");
    assert_eq!(m.populations[0].size, 10);
    assert_eq!(m.populations[1].size, 20);
    assert_eq!(m.populations[1].first_id, 10);
}

#[test]
fn set_nested_field_by_index() {
    let m = load(
        &valid(),
        &["populations.1.size=7", "populations.0.params.tau_m=12.5"],
    )
    .expect("override");
    assert_eq!(m.populations[1].size, 7);
    assert_eq!(m.populations[0].params.tau_m, 12.5);
    assert_eq!(m.populations[1].params.tau_m, 10.0);
}

#[test]
fn set_new_field_creates_tables() {
    let m = load(
        &valid(),
        &["populations.L23I.params.V_th=-40.0", "scale.neurons=0.5"],
    )
    .expect("override");
    assert_eq!(m.populations[1].params.V_th, -40.0);
    assert_eq!(m.populations[0].size, 50);
    assert_eq!(m.populations[1].size, 10);
}

#[test]
fn set_inline_table_value() {
    let m = load(
        &valid(),
        &["projections.0.weight={ distribution = \"normal\", mean = 1.0, std = 0.1 }"],
    )
    .expect("override");
    match m.projections[0].weight_pa {
        Dist::Normal { mean, std, .. } => {
            assert_eq!(mean, 1.0);
            assert_eq!(std, 0.1);
        }
        ref d => panic!("weight not replaced: {d:?}"),
    }
    // The replaced value is validated like one written in the file.
    rejected(
        &valid(),
        &["projections.0.weight={ distribution = \"normal\", mean = 1.0, std = -0.1 }"],
        &["projections[0].weight.std", ">= 0"],
    );
}

#[test]
fn set_string_values_bare_and_quoted() {
    let m = load(
        &valid(),
        &["network.name=other", "projections.0.target=\"L23E\""],
    )
    .expect("override");
    assert_eq!(m.name, "other");
    assert_eq!(m.projections[0].target, 0);
}

#[test]
fn set_later_override_wins() {
    let m = load(
        &valid(),
        &["populations.L23E.size=10", "populations.L23E.size=30"],
    )
    .expect("override");
    assert_eq!(m.populations[0].size, 30);
}
