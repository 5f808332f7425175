//! A rank's recorders: its spike file and V_m report, created for a new
//! run or reopened (truncated to the checkpoint's counts) for a resume, and
//! fed from the engine after every interval.

use std::path::Path;

use snn_formats::checkpoint::RankState;
use snn_formats::sonata::{ReportWriter, SpikeWriter};
use snn_formats::{FormatError, Model};

use crate::checkpoint::bytes_to_u64s;
use crate::plan::Plan;
use crate::rank::RankEngine;
use crate::run::spike_time_ms;
use crate::{io_err, SimError};

/// V_m recording of one rank.
pub(crate) struct VmRec {
    pub(crate) writer: ReportWriter,
    pub(crate) locals: Vec<usize>,
    pub(crate) file: String,
}

/// One rank's engine with its recorders.
pub(crate) struct RankRun {
    pub(crate) rank: u32,
    pub(crate) engine: Box<dyn RankEngine>,
    pub(crate) writer: SpikeWriter,
    pub(crate) spike_file: String,
    pub(crate) vm: Option<VmRec>,
    pub(crate) counts: Vec<u64>,
}

/// Where a rank's recorders write and what they record.
pub(crate) struct Outputs<'a> {
    /// The directory written into (a staging directory for a new run).
    pub(crate) dir: &'a Path,
    /// The run directory as the user named it (for error messages).
    pub(crate) shown: &'a Path,
    pub(crate) plan: &'a Plan,
    pub(crate) model: &'a Model,
    /// The checkpoint the state comes from (for error messages).
    pub(crate) checkpoint: Option<&'a Path>,
}

impl Outputs<'_> {
    /// Open rank `r`'s recorders and restore its engine from `state` (the
    /// rank's part of the checkpoint the run starts from, if any).
    pub(crate) fn open_rank(
        &self,
        mut engine: Box<dyn RankEngine>,
        r: u32,
        state: Option<&RankState>,
    ) -> Result<RankRun, SimError> {
        let (dir, plan, model) = (self.dir, self.plan, self.model);
        let dt = plan.run.dt_ms;
        let pop_names: Vec<String> = model.populations.iter().map(|p| p.name.clone()).collect();
        let recorder = |name: &str| -> Result<Vec<u64>, SimError> {
            state
                .and_then(|s| s.section(name))
                .and_then(bytes_to_u64s)
                .ok_or_else(|| {
                    SimError::Format(FormatError::corrupt(
                        self.checkpoint.unwrap_or(dir),
                        format!("rank {r}: section {name} missing or malformed"),
                    ))
                })
        };
        let fresh = plan.new_outputs || !plan.keep_counts;
        let spike_file = format!("spikes-rank-{r:05}.h5");
        let spath = dir.join(&spike_file);
        let (mut writer, counts) = if fresh {
            if plan.persistent && spath.exists() {
                std::fs::remove_file(&spath).map_err(io_err(&spath, "remove"))?;
            }
            (
                SpikeWriter::create(&spath, &pop_names)?,
                vec![0; model.populations.len()],
            )
        } else {
            let counts = recorder("recorder/spike_counts")?;
            (
                SpikeWriter::reopen_truncated(&spath, &pop_names, &counts)?,
                counts,
            )
        };
        // Errors name the files where the user will look for them, not
        // the staging directory they are written in.
        if plan.staged {
            writer.show_as(self.shown.join(&spike_file));
        }
        let (groups, locals) = vm_groups(model, &pop_names, engine.as_ref());
        let vm = if groups.is_empty() {
            None
        } else {
            let file = format!("vm-rank-{r:05}.h5");
            let vpath = dir.join(&file);
            // The first sample is taken after the first recorded step, or,
            // with `vm_from_start` (recording from step 0), it is the
            // initial state at t = 0.
            let t0 = if plan.run.vm_from_start {
                0.0
            } else {
                (plan.run.presim_steps + 1) as f64 * dt
            };
            let mut writer = if fresh {
                if plan.persistent && vpath.exists() {
                    std::fs::remove_file(&vpath).map_err(io_err(&vpath, "remove"))?;
                }
                let mut w = ReportWriter::create(&vpath, &groups, t0, dt)?;
                if plan.run.vm_from_start {
                    w.push_step(&engine.v_m_now(&locals)?)?;
                }
                w
            } else {
                let steps = recorder("recorder/vm_steps")?;
                ReportWriter::reopen_truncated(&vpath, &groups, t0, dt, steps[0] as usize)?
            };
            if plan.staged {
                writer.show_as(self.shown.join(&file));
            }
            Some(VmRec {
                writer,
                locals,
                file,
            })
        };
        let events = if plan.keep_counts && state.is_some() {
            recorder("stats/events")?[0]
        } else {
            0
        };
        if let Some(st) = state {
            engine.restore_state(&|name| st.section(name))?;
        }
        engine.set_events(events)?;
        engine.set_recording(
            plan.run.presim_steps,
            vm.as_ref().map(|v| &v.locals[..]).unwrap_or(&[]),
        )?;
        Ok(RankRun {
            rank: r,
            engine,
            writer,
            spike_file,
            vm,
            counts,
        })
    }
}

/// The V_m recording of the configured neurons owned by `engine`'s rank,
/// grouped by population in order of first appearance: the groups (name,
/// population-local ids) and the neurons' local indices, group after group.
fn vm_groups(
    model: &Model,
    pop_names: &[String],
    engine: &dyn RankEngine,
) -> (Vec<(String, Vec<u64>)>, Vec<usize>) {
    let d = engine.data();
    let mut groups: Vec<(String, Vec<u64>)> = Vec::new();
    let mut locals: Vec<Vec<usize>> = Vec::new();
    for &(p, i) in &model.recording.v_m {
        let g = model.populations[p].first_id + i;
        if let Ok(l) = d
            .local_to_global
            .binary_search_by(|x| x.to_native().cmp(&g))
        {
            match groups.iter().position(|x| x.0 == pop_names[p]) {
                Some(k) => {
                    groups[k].1.push(i);
                    locals[k].push(l);
                }
                None => {
                    groups.push((pop_names[p].clone(), vec![i]));
                    locals.push(vec![l]);
                }
            }
        }
    }
    (groups, locals.concat())
}

/// Hand the recorded spikes and V_m samples of `rr`'s engine to its writers
/// (all of them when `flush`; see [`RankEngine::take_recorded`]).
pub(crate) fn record(
    rr: &mut RankRun,
    flush: bool,
    recorded: &[bool],
    first_ids: &[u64],
    dt: f64,
) -> Result<(), SimError> {
    let rec = rr.engine.take_recorded(flush)?;
    if let Some(vm) = rr.vm.as_mut() {
        let width = vm.locals.len().max(1);
        for row in rec.vm.chunks(width) {
            vm.writer.push_step(row)?;
        }
    }
    // Disjoint field borrows: the engine is read while the writer and
    // counters are updated, so nothing needs copying.
    let first_local = rr.engine.pop_first_local();
    let d = rr.engine.data();
    for &(step, l) in &rec.spikes {
        let p = first_local.partition_point(|&f| f <= l as usize) - 1;
        if recorded[p] {
            let g = d.local_to_global[l as usize].to_native();
            rr.writer
                .push(p, g - first_ids[p], spike_time_ms(step, dt))?;
            rr.counts[p] += 1;
        }
    }
    Ok(())
}
