//! Turns a scenario's workload sources into demand on the simulation's grid.
//!
//! Each workload becomes one value per step: total CPU (millicores) and memory
//! (bytes) demanded at that moment. Traces are read relative to the scenario
//! file, resampled (latest sample at or before each step) and scaled; synthetic
//! sources are generated from the scenario's seed.

use crate::scenario::{Scenario, WorkloadSpec};
use crate::synthetic::{SyntheticSpec, generate};
use crate::trace::{self, Trace, TraceError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tailor_core::quantity::memory_bytes;

/// One workload's demand per step.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    /// The workload.
    pub name: String,
    /// CPU demanded per step, millicores.
    pub cpu_millis: Vec<i64>,
    /// Memory demanded per step, bytes.
    pub memory_bytes: Vec<i64>,
}

/// A workload's demand could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DemandError {
    /// The trace could not be read.
    #[error("workloads[{workload}].trace: {source}")]
    Trace {
        /// The workload.
        workload: String,
        /// Why.
        #[source]
        source: TraceError,
    },
    /// The trace holds no workload of the given name, or several and none was
    /// named.
    #[error("workloads[{workload}].trace.workload: {message}")]
    Selection {
        /// The workload.
        workload: String,
        /// What is wrong.
        message: String,
    },
    /// A field that validation accepted could not be used (a bug if seen).
    #[error("workloads[{workload}]: {message}")]
    Invalid {
        /// The workload.
        workload: String,
        /// What is wrong.
        message: String,
    },
}

/// Number of steps a scenario simulates.
#[must_use]
pub fn step_count(scenario: &Scenario) -> usize {
    let steps = scenario.duration.seconds() / scenario.step.seconds().max(1);
    usize::try_from(steps).unwrap_or(0)
}

/// Converts cores/bytes as floats to integer units, clamping to ≥ 0.
#[allow(clippy::cast_possible_truncation)] // values are clamped first
fn to_units(v: f64, per_unit: f64) -> i64 {
    let x = (v * per_unit).round();
    if x.is_finite() && x > 0.0 {
        x.min(1e15) as i64
    } else {
        0
    }
}

/// Builds every workload's demand. `base_dir` is the scenario file's folder;
/// files read once are shared between workloads that name them.
pub fn build(scenario: &Scenario, base_dir: &Path) -> Result<Vec<Demand>, DemandError> {
    let steps = step_count(scenario);
    let step = scenario.step.seconds();
    let mut cache: BTreeMap<PathBuf, Trace> = BTreeMap::new();
    let mut out = Vec::with_capacity(scenario.workloads.len());
    for (index, w) in scenario.workloads.iter().enumerate() {
        let series = if let Some(s) = &w.synthetic {
            let base = memory_bytes(&s.base_memory).map_err(|e| DemandError::Invalid {
                workload: w.name.clone(),
                message: e.to_string(),
            })?;
            #[allow(clippy::cast_precision_loss)]
            let spec = SyntheticSpec::new(s.kind, s.peak_cores, base as f64);
            // Each workload draws from its own stream so that adding one leaves
            // the others unchanged.
            let seed = scenario.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let trace = generate(&w.name, &spec, 0, step, steps, seed);
            trace
                .samples
                .iter()
                .map(|s| (s.cpu_cores, s.memory_bytes))
                .collect::<Vec<_>>()
        } else {
            trace_series(w, base_dir, &mut cache, step, steps)?
        };
        out.push(Demand {
            name: w.name.clone(),
            cpu_millis: series.iter().map(|(c, _)| to_units(*c, 1000.0)).collect(),
            memory_bytes: series.iter().map(|(_, m)| to_units(*m, 1.0)).collect(),
        });
    }
    Ok(out)
}

fn trace_series(
    w: &WorkloadSpec,
    base_dir: &Path,
    cache: &mut BTreeMap<PathBuf, Trace>,
    step: i64,
    steps: usize,
) -> Result<Vec<(f64, f64)>, DemandError> {
    let Some(t) = &w.trace else {
        return Err(DemandError::Invalid {
            workload: w.name.clone(),
            message: "no demand source".into(),
        });
    };
    let path = base_dir.join(&t.path);
    if !cache.contains_key(&path) {
        let trace = trace::read_file(
            &path,
            t.format,
            t.planetlab.unwrap_or_default(),
            t.alibaba,
            t.google,
        )
        .map_err(|source| DemandError::Trace {
            workload: w.name.clone(),
            source,
        })?;
        cache.insert(path.clone(), trace);
    }
    let trace = &cache[&path];
    let chosen = match &t.workload {
        Some(name) => trace
            .workloads
            .iter()
            .find(|x| &x.name == name)
            .ok_or_else(|| DemandError::Selection {
                workload: w.name.clone(),
                message: format!(
                    "{} has no workload `{name}` (it has {})",
                    path.display(),
                    trace
                        .workloads
                        .iter()
                        .take(5)
                        .map(|x| format!("`{}`", x.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
        None if trace.workloads.len() == 1 => &trace.workloads[0],
        None => {
            return Err(DemandError::Selection {
                workload: w.name.clone(),
                message: format!(
                    "{} holds {} workloads; name one with `workload:`",
                    path.display(),
                    trace.workloads.len()
                ),
            });
        }
    };
    // The trace's own start is the simulation's time zero.
    let start = chosen.samples.first().map_or(0, |s| s.t);
    let scale = t.scale.unwrap_or(1.0);
    Ok(chosen
        .resample(start, step, steps)
        .into_iter()
        .map(|(c, m)| (c * scale, m * scale))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(workloads: &str) -> Scenario {
        let text = format!(
            "name: t\nduration: 1h\nstep: 5m\nworkloads:\n{workloads}nodeGroups:\n  - name: g\n    instanceType: x\n    maxSize: 1\n    cpu: \"4\"\n    memory: 8Gi\n    pricePerHour: 0.1\n"
        );
        Scenario::from_yaml("t.yaml", &text).unwrap()
    }

    #[test]
    fn synthetic_demand_is_on_the_grid_and_seeded() {
        let s = scenario(
            "  - name: web\n    synthetic: {kind: diurnal-web, peakCores: 4, baseMemory: 1Gi}\n    requests: {cpu: 500m, memory: 1Gi}\n",
        );
        let a = build(&s, Path::new(".")).unwrap();
        let b = build(&s, Path::new(".")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].cpu_millis.len(), 12);
        assert!(a[0].memory_bytes.iter().all(|m| *m >= 1 << 30));
    }

    #[test]
    fn native_trace_selected_scaled_and_resampled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.csv"),
            "timestamp,workload,cpu_cores,memory_bytes\n100,a,1,1000\n700,a,2,2000\n100,b,9,9\n",
        )
        .unwrap();
        let s = scenario(
            "  - name: a\n    trace: {path: t.csv, format: native, workload: a, scale: 2}\n    requests: {cpu: 500m, memory: 1Gi}\n",
        );
        let d = build(&s, dir.path()).unwrap();
        assert_eq!(&d[0].cpu_millis[..4], &[2000, 2000, 4000, 4000]);
        assert_eq!(d[0].memory_bytes[3], 4000);

        let s = scenario(
            "  - name: a\n    trace: {path: t.csv, format: native}\n    requests: {cpu: 500m, memory: 1Gi}\n",
        );
        let err = build(&s, dir.path()).unwrap_err().to_string();
        assert!(err.contains("holds 2 workloads; name one"), "{err}");

        let s = scenario(
            "  - name: a\n    trace: {path: t.csv, format: native, workload: zz}\n    requests: {cpu: 500m, memory: 1Gi}\n",
        );
        let err = build(&s, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("has no workload `zz` (it has `a`, `b`)"),
            "{err}"
        );
    }

    #[test]
    fn missing_trace_file_is_named() {
        let s = scenario(
            "  - name: a\n    trace: {path: nope.csv, format: native}\n    requests: {cpu: 500m, memory: 1Gi}\n",
        );
        let err = build(&s, Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("workloads[a].trace: /nonexistent/nope.csv:"),
            "{err}"
        );
    }
}
