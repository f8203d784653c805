//! Side-by-side comparison of strategies: the job list (scenarios ×
//! strategies), deterministic sharding, the cost/SLO Pareto front and the
//! `compare.csv` / `compare.json` files that `merge` reads back.

use crate::report::Summary;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The strategy name of a scenario as written.
pub const BASELINE: &str = "baseline";

/// `--shard i/n`: this process runs jobs whose index ≡ i (mod n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard {s:?} is not i/n (e.g. 0/4)"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {s:?}: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether job `job` belongs to this shard.
    #[must_use]
    pub fn owns(&self, job: usize) -> bool {
        job % self.count == self.index
    }
}

/// One job of a sweep: a scenario (by position in the list) and a strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Position in the whole sweep (stable across shards).
    pub index: usize,
    /// Index into the scenario list.
    pub scenario: usize,
    /// Strategy name (`baseline` or one of the scenario's `strategies`).
    pub strategy: String,
}

/// Every job of a sweep, in order: per scenario, baseline then its strategies.
#[must_use]
pub fn jobs(scenarios: &[Scenario]) -> Vec<Job> {
    let mut out = Vec::new();
    for (si, s) in scenarios.iter().enumerate() {
        for name in std::iter::once(BASELINE).chain(s.strategies.iter().map(|x| x.name.as_str())) {
            out.push(Job {
                index: out.len(),
                scenario: si,
                strategy: name.to_owned(),
            });
        }
    }
    out
}

/// One row of a comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The job's position in the sweep (rows are sorted by it).
    pub job: usize,
    /// On the cost/SLO Pareto front of its scenario.
    pub pareto: bool,
    /// The run's summary (names the scenario and strategy).
    pub summary: Summary,
}

/// A comparison: rows sorted by job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The rows.
    pub rows: Vec<Row>,
}

/// `a` dominates `b`: no worse in cost, unserved CPU and OOM kills, better in one.
fn dominates(a: &Summary, b: &Summary) -> bool {
    let ka = (a.total_cost_usd, a.unserved_cpu_core_hours, a.oom_kills);
    let kb = (b.total_cost_usd, b.unserved_cpu_core_hours, b.oom_kills);
    ka.0 <= kb.0 && ka.1 <= kb.1 && ka.2 <= kb.2 && (ka.0 < kb.0 || ka.1 < kb.1 || ka.2 < kb.2)
}

impl Comparison {
    /// Builds a comparison from rows (any order), sorting and marking the front.
    #[must_use]
    pub fn new(mut rows: Vec<Row>) -> Self {
        rows.sort_by_key(|r| r.job);
        let flags: Vec<bool> = rows
            .iter()
            .map(|r| {
                !rows.iter().any(|o| {
                    o.summary.scenario == r.summary.scenario && dominates(&o.summary, &r.summary)
                })
            })
            .collect();
        for (r, f) in rows.iter_mut().zip(flags) {
            r.pareto = f;
        }
        Comparison { rows }
    }

    /// Merges shard outputs (rows appearing twice are an error).
    pub fn merge(parts: Vec<Comparison>) -> Result<Self, String> {
        let mut rows: Vec<Row> = parts.into_iter().flat_map(|c| c.rows).collect();
        rows.sort_by_key(|r| r.job);
        if let Some(w) = rows.windows(2).find(|w| w[0].job == w[1].job) {
            return Err(format!(
                "job {} ({} / {}) appears in two inputs",
                w[0].job, w[0].summary.scenario, w[0].summary.strategy
            ));
        }
        Ok(Comparison::new(rows))
    }

    /// `compare.json`.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// `compare.csv`: one row per run with the headline numbers.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "job,scenario,strategy,pareto,total_cost_usd,cost_per_hour_usd,lower_bound_usage_usd,\
lower_bound_requests_usd,unserved_cpu_core_hours,unserved_cpu_fraction,oom_kills,\
pending_pod_minutes,relative_slack_mean,evictions,resizes,node_scale_ups,node_scale_downs\n",
        );
        for r in &self.rows {
            let s = &r.summary;
            let _ = writeln!(
                out,
                "{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.6},{},{:.1},{:.4},{},{},{},{}",
                r.job,
                csv_field(&s.scenario),
                csv_field(&s.strategy),
                r.pareto,
                s.total_cost_usd,
                s.cost_per_hour_usd,
                s.lower_bound_usage_usd,
                s.lower_bound_requests_usd,
                s.unserved_cpu_core_hours,
                s.unserved_cpu_fraction,
                s.oom_kills,
                s.pending_pod_minutes,
                s.relative_slack_mean,
                s.evictions,
                s.resizes,
                s.node_scale_ups,
                s.node_scale_downs
            );
        }
        out
    }

    /// A side-by-side table for a terminal; `*` marks the Pareto front.
    #[must_use]
    pub fn table(&self) -> String {
        let header = [
            "",
            "scenario",
            "strategy",
            "cost $",
            "$/h",
            "cost/LB",
            "unserved core-h",
            "OOMs",
            "pending pod-min",
            "evictions",
            "resizes",
        ];
        let rows: Vec<[String; 11]> = self
            .rows
            .iter()
            .map(|r| {
                let s = &r.summary;
                [
                    if r.pareto { "*".into() } else { String::new() },
                    s.scenario.clone(),
                    s.strategy.clone(),
                    format!("{:.2}", s.total_cost_usd),
                    format!("{:.3}", s.cost_per_hour_usd),
                    format!("{:.2}", s.cost_over_lower_bound_usage),
                    format!("{:.2}", s.unserved_cpu_core_hours),
                    s.oom_kills.to_string(),
                    format!("{:.0}", s.pending_pod_minutes),
                    s.evictions.to_string(),
                    s.resizes.to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: &[&str], out: &mut String| {
            let parts: Vec<String> = cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i < 3 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        line(&header, &mut out);
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            line(&cells, &mut out);
        }
        out.push_str("* = on the cost / SLO (unserved CPU, OOM kills) Pareto front\n");
        out
    }

    /// Writes `compare.csv` and `compare.json` into `dir` (created if missing).
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("compare.csv"), self.to_csv())?;
        std::fs::write(
            dir.join("compare.json"),
            self.to_json().map_err(std::io::Error::other)?,
        )?;
        Ok(())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn row(job: usize, cost: f64, unserved: f64, ooms: u64) -> Row {
        Row {
            job,
            pareto: false,
            summary: Summary {
                scenario: "s".into(),
                strategy: format!("st{job}"),
                total_cost_usd: cost,
                unserved_cpu_core_hours: unserved,
                oom_kills: ooms,
                ..Summary::default()
            },
        }
    }

    #[rstest]
    #[case("0/1", Some((0, 1)))]
    #[case("3/4", Some((3, 4)))]
    #[case("4/4", None)]
    #[case("1/0", None)]
    #[case("x/2", None)]
    #[case("2", None)]
    fn parses_shards(#[case] s: &str, #[case] want: Option<(usize, usize)>) {
        let got = s.parse::<Shard>().ok().map(|s| (s.index, s.count));
        assert_eq!(got, want);
    }

    #[test]
    fn shards_partition_jobs() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for job in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.owns(job)).count(), 1);
        }
    }

    #[test]
    fn marks_the_pareto_front() {
        let c = Comparison::new(vec![
            row(2, 10.0, 5.0, 0), // cheapest-ish, some damage
            row(0, 20.0, 0.0, 0), // no damage
            row(1, 25.0, 1.0, 0), // dominated by job 0
            row(3, 10.0, 5.0, 3), // dominated by job 2
        ]);
        let flags: Vec<(usize, bool)> = c.rows.iter().map(|r| (r.job, r.pareto)).collect();
        assert_eq!(flags, vec![(0, true), (1, false), (2, true), (3, false)]);
    }

    #[test]
    fn merge_rejects_duplicates_and_sorts() {
        let a = Comparison::new(vec![row(1, 1.0, 0.0, 0)]);
        let b = Comparison::new(vec![row(0, 2.0, 0.0, 0)]);
        let m = Comparison::merge(vec![a.clone(), b]).unwrap();
        assert_eq!(m.rows.iter().map(|r| r.job).collect::<Vec<_>>(), vec![0, 1]);
        assert!(Comparison::merge(vec![a.clone(), a]).is_err());
    }

    #[test]
    fn json_round_trips() {
        let c = Comparison::new(vec![row(0, 1.5, 0.25, 2)]);
        let back: Comparison = serde_json::from_str(&c.to_json().unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
