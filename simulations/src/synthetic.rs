//! Built-in synthetic workloads, generated from a seed.
//!
//! They let the simulator run with no input at all, and they cover the shapes
//! that make autoscaling settings cost money: a diurnal web service (HPA and
//! sizing), bursty batch (scale-up lag and waste while idle), a memory leak
//! (OOM kills when limits are tight), and an idle-heavy service (requests
//! sized for rare peaks). The same seed gives the same trace, bit for bit.

use crate::trace::{Sample, Trace, WorkloadTrace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

const DAY: f64 = 86_400.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The shape of a synthetic workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticKind {
    /// Day/night cycle peaking mid-afternoon, quieter at weekends, with noise;
    /// memory follows load a little (caches).
    DiurnalWeb,
    /// Mostly idle; jobs arrive at random (Poisson) and run at near peak for a
    /// random (exponential) time.
    BurstyBatch,
    /// Steady CPU; memory grows linearly and drops back at each restart.
    MemoryLeak,
    /// Near idle, with a short spike to peak about once a day.
    IdleHeavy,
}

/// Parameters of one synthetic workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyntheticSpec {
    /// The shape.
    pub kind: SyntheticKind,
    /// Peak total CPU demand, in cores.
    pub peak_cores: f64,
    /// Baseline total memory demand, in bytes.
    pub base_memory_bytes: f64,
}

impl SyntheticSpec {
    /// A spec with the given shape and size.
    #[must_use]
    pub fn new(kind: SyntheticKind, peak_cores: f64, base_memory_bytes: f64) -> Self {
        SyntheticSpec {
            kind,
            peak_cores,
            base_memory_bytes,
        }
    }
}

/// A standard normal variate (Box–Muller), from the seeded generator only.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// An exponential variate with the given mean.
fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Generates `steps` samples, `step` seconds apart from `start`, for one
/// workload. `seed` fixes every random choice.
#[must_use]
#[allow(clippy::cast_precision_loss)] // step counts are far below 2^52
pub fn generate(
    name: &str,
    spec: &SyntheticSpec,
    start: i64,
    step: i64,
    steps: usize,
    seed: u64,
) -> WorkloadTrace {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let peak = spec.peak_cores.max(0.0);
    let base_mem = spec.base_memory_bytes.max(0.0);
    let step_f = step as f64;
    let mut samples = Vec::with_capacity(steps);
    // State for the shapes that carry it between steps.
    let mut job_left = 0.0_f64; // bursty: seconds of the running job left
    let mut job_level = 0.0_f64;
    let mut leaked = 0.0_f64; // memory leak: bytes leaked since restart
    let restart_every = 3.0 * DAY;
    let mut since_restart = 0.0_f64;
    let mut spike_left = 0.0_f64; // idle-heavy: seconds of spike left

    for i in 0..steps {
        let t = start + step * i as i64;
        let tf = t as f64;
        let (cpu, mem) = match spec.kind {
            SyntheticKind::DiurnalWeb => {
                // Peak at 15:00, trough at 03:00; weekends (days 5 and 6 of each
                // week from the start) run at 70%.
                let phase = 2.0 * PI * ((tf / DAY).fract() - 15.0 / 24.0);
                let daily = 0.5 * (1.0 + phase.cos());
                let day_index = ((tf - start as f64) / DAY).floor() as i64;
                let weekly = if day_index.rem_euclid(7) >= 5 {
                    0.7
                } else {
                    1.0
                };
                let noise = (1.0 + 0.08 * normal(&mut rng)).max(0.0);
                let load = (0.12 + 0.88 * daily) * weekly;
                (peak * load * noise, base_mem * (1.0 + 0.3 * load))
            }
            SyntheticKind::BurstyBatch => {
                if job_left <= 0.0 {
                    // On average three jobs a day, each 40 minutes long.
                    let p_start = 1.0 - (-3.0 * step_f / DAY).exp();
                    if rng.random::<f64>() < p_start {
                        job_left = exponential(&mut rng, 2400.0).max(step_f);
                        job_level = 0.6 + 0.4 * rng.random::<f64>();
                    }
                }
                let level = if job_left > 0.0 {
                    job_left -= step_f;
                    job_level
                } else {
                    0.04
                };
                let noise = (1.0 + 0.05 * normal(&mut rng)).max(0.0);
                (peak * level * noise, base_mem * (0.3 + 0.7 * level))
            }
            SyntheticKind::MemoryLeak => {
                since_restart += step_f;
                if since_restart >= restart_every {
                    since_restart = 0.0;
                    leaked = 0.0;
                } else {
                    // Leaks about half its baseline a day.
                    leaked += base_mem * 0.5 * step_f / DAY;
                }
                let noise = (1.0 + 0.1 * normal(&mut rng)).max(0.0);
                (peak * 0.35 * noise, base_mem + leaked)
            }
            SyntheticKind::IdleHeavy => {
                if spike_left <= 0.0 {
                    let p_spike = 1.0 - (-step_f / DAY).exp();
                    if rng.random::<f64>() < p_spike {
                        spike_left = 600.0_f64.max(step_f);
                    }
                }
                let level = if spike_left > 0.0 {
                    spike_left -= step_f;
                    1.0
                } else {
                    0.02
                };
                let noise = (1.0 + 0.05 * normal(&mut rng)).max(0.0);
                (peak * level * noise, base_mem)
            }
        };
        samples.push(Sample {
            t,
            cpu_cores: cpu,
            memory_bytes: mem,
        });
    }
    WorkloadTrace {
        name: name.to_owned(),
        samples,
    }
}

/// The built-in workload set used when no scenario is given: one of each
/// shape, sized like a small production namespace.
#[must_use]
pub fn builtin_specs() -> Vec<(&'static str, SyntheticSpec)> {
    vec![
        (
            "web",
            SyntheticSpec::new(SyntheticKind::DiurnalWeb, 12.0, 6.0 * GIB),
        ),
        (
            "batch",
            SyntheticSpec::new(SyntheticKind::BurstyBatch, 16.0, 8.0 * GIB),
        ),
        (
            "leaky",
            SyntheticSpec::new(SyntheticKind::MemoryLeak, 1.0, 1.0 * GIB),
        ),
        (
            "idle",
            SyntheticSpec::new(SyntheticKind::IdleHeavy, 4.0, 2.0 * GIB),
        ),
    ]
}

/// Generates several workloads; each gets its own seed derived from `seed` and
/// its position, so adding a workload does not change the others.
#[must_use]
pub fn generate_all(
    specs: &[(impl AsRef<str>, SyntheticSpec)],
    start: i64,
    step: i64,
    steps: usize,
    seed: u64,
) -> Trace {
    let mut workloads: Vec<WorkloadTrace> = specs
        .iter()
        .enumerate()
        .map(|(i, (name, spec))| {
            let derived = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            generate(name.as_ref(), spec, start, step, steps, derived)
        })
        .collect();
    workloads.sort_by(|a, b| a.name.cmp(&b.name));
    Trace { workloads }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK_5M: usize = 7 * 288;

    fn cpu(w: &WorkloadTrace) -> Vec<f64> {
        w.samples.iter().map(|s| s.cpu_cores).collect()
    }

    #[test]
    fn same_seed_same_trace_other_seed_other_trace() {
        let specs = builtin_specs();
        let a = generate_all(&specs, 0, 300, WEEK_5M, 7);
        let b = generate_all(&specs, 0, 300, WEEK_5M, 7);
        let c = generate_all(&specs, 0, 300, WEEK_5M, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.workloads.len(), 4);
        assert!(a.workloads.iter().all(|w| w.samples.len() == WEEK_5M));
    }

    #[test]
    fn diurnal_peaks_in_the_afternoon_and_dips_at_weekends() {
        let spec = SyntheticSpec::new(SyntheticKind::DiurnalWeb, 10.0, GIB);
        let w = generate("web", &spec, 0, 300, WEEK_5M, 1);
        let c = cpu(&w);
        let at = |day: usize, hour: usize| c[day * 288 + hour * 12];
        assert!(
            at(1, 15) > 3.0 * at(1, 3),
            "15:00 {} vs 03:00 {}",
            at(1, 15),
            at(1, 3)
        );
        let weekday: f64 = (0..288).map(|i| c[288 + i]).sum();
        let weekend: f64 = (0..288).map(|i| c[5 * 288 + i]).sum();
        assert!(weekend < 0.8 * weekday);
        assert!(c.iter().all(|v| *v >= 0.0 && *v <= 10.0 * 1.5));
    }

    #[test]
    fn bursty_batch_is_mostly_idle_with_jobs() {
        let spec = SyntheticSpec::new(SyntheticKind::BurstyBatch, 10.0, GIB);
        let c = cpu(&generate("b", &spec, 0, 300, WEEK_5M, 3));
        let busy = c.iter().filter(|v| **v > 3.0).count();
        assert!(busy > 0, "some jobs ran");
        assert!(
            busy < c.len() / 3,
            "mostly idle: {busy} busy steps of {}",
            c.len()
        );
    }

    #[test]
    fn memory_leak_grows_then_restarts() {
        let spec = SyntheticSpec::new(SyntheticKind::MemoryLeak, 1.0, GIB);
        let w = generate("l", &spec, 0, 300, WEEK_5M, 3);
        let m: Vec<f64> = w.samples.iter().map(|s| s.memory_bytes).collect();
        assert!(m[287] > m[0] * 1.4, "leaks about half a baseline a day");
        let drops = m.windows(2).filter(|p| p[1] < p[0]).count();
        assert_eq!(drops, 2, "restarts every three days in a week");
    }

    #[test]
    fn idle_heavy_spikes_rarely() {
        let spec = SyntheticSpec::new(SyntheticKind::IdleHeavy, 4.0, GIB);
        let c = cpu(&generate("i", &spec, 0, 300, WEEK_5M, 11));
        let spikes = c.iter().filter(|v| **v > 2.0).count();
        assert!(spikes > 0 && spikes < 60, "{spikes} spike steps in a week");
        let mean = c.iter().sum::<f64>() / c.len() as f64;
        assert!(mean < 0.1 * 4.0);
    }
}
