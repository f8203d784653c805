//! What a simulation run produces: a per-step time series and a summary, written
//! as CSV, `summary.json`, a self-contained HTML report with SVG charts, and a
//! terminal table.
//!
//! Everything here is deterministic: numbers are printed with fixed precision
//! and maps are ordered, so the same run gives byte-identical files.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

/// One step of the simulated cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Seconds since the simulation started.
    pub t: i64,
    /// What the nodes cost during this step, in USD.
    pub cost_usd: f64,
    /// Nodes per node group (same order as [`Report::node_groups`]).
    pub nodes: Vec<u32>,
    /// CPU allocatable on all nodes, cores.
    pub allocatable_cpu_cores: f64,
    /// CPU requested by scheduled pods, cores.
    pub requested_cpu_cores: f64,
    /// CPU demanded by workloads, cores.
    pub demanded_cpu_cores: f64,
    /// CPU actually served (demand less throttling and pending), cores.
    pub used_cpu_cores: f64,
    /// Memory allocatable on all nodes, GiB.
    pub allocatable_memory_gib: f64,
    /// Memory requested by scheduled pods, GiB.
    pub requested_memory_gib: f64,
    /// Memory used by workloads, GiB.
    pub used_memory_gib: f64,
    /// Pods waiting for a node.
    pub pending_pods: u32,
    /// Running replicas over all workloads.
    pub replicas: u32,
    /// Fluid lower bound on cost for this step's usage, USD.
    pub lower_bound_usage_usd: f64,
    /// Fluid lower bound on cost for this step's requests, USD.
    pub lower_bound_requests_usd: f64,
}

/// How waste splits, in USD over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WasteBreakdown {
    /// Requests above usage (paid for, not used).
    pub sizing_slack_usd: f64,
    /// Allocatable above requests on nodes that are needed.
    pub packing_loss_usd: f64,
    /// Nodes kept after they stopped being needed.
    pub scale_down_lag_usd: f64,
}

/// The headline numbers of a run (`summary.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The strategy (policy set) this run used.
    pub strategy: String,
    /// The seed every random choice came from.
    pub seed: u64,
    /// Simulated hours.
    pub hours: f64,
    /// What the nodes cost over the run, USD.
    pub total_cost_usd: f64,
    /// Average cost per hour, USD.
    pub cost_per_hour_usd: f64,
    /// Fluid lower bound for the usage, USD.
    pub lower_bound_usage_usd: f64,
    /// Fluid lower bound for the requests, USD.
    pub lower_bound_requests_usd: f64,
    /// total cost / lower bound on usage.
    pub cost_over_lower_bound_usage: f64,
    /// total cost / lower bound on requests.
    pub cost_over_lower_bound_requests: f64,
    /// Where the money above the usage bound went.
    pub waste: WasteBreakdown,
    /// CPU demanded but not served (throttled or pending), core-hours.
    pub unserved_cpu_core_hours: f64,
    /// Unserved CPU as a fraction of demand.
    pub unserved_cpu_fraction: f64,
    /// OOM kills.
    pub oom_kills: u64,
    /// OOM kills per workload-day divided by the average task count (Autopilot).
    pub relative_oom_rate: f64,
    /// Minutes pods spent pending, summed over pods.
    pub pending_pod_minutes: f64,
    /// Mean of (limit − p95 usage)/limit per workload-day (Autopilot).
    pub relative_slack_mean: f64,
    /// Pods evicted to apply new requests.
    pub evictions: u64,
    /// Pods resized in place.
    pub resizes: u64,
    /// Nodes added.
    pub node_scale_ups: u64,
    /// Nodes removed.
    pub node_scale_downs: u64,
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Node group names, in the order of [`StepRecord::nodes`].
    pub node_groups: Vec<String>,
    /// Seconds per step.
    pub step_seconds: i64,
    /// The time series.
    pub steps: Vec<StepRecord>,
    /// The headline numbers.
    pub summary: Summary,
}

/// Formats a float with fixed precision, never `-0`.
fn num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_owned()
    } else {
        s
    }
}

/// Escapes text for HTML and SVG.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Report {
    /// Writes the time series as CSV, one row per step.
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        let mut header = vec![
            "t_seconds".to_owned(),
            "cost_usd".into(),
            "allocatable_cpu_cores".into(),
            "requested_cpu_cores".into(),
            "demanded_cpu_cores".into(),
            "used_cpu_cores".into(),
            "allocatable_memory_gib".into(),
            "requested_memory_gib".into(),
            "used_memory_gib".into(),
            "pending_pods".into(),
            "replicas".into(),
            "lower_bound_usage_usd".into(),
            "lower_bound_requests_usd".into(),
        ];
        header.extend(
            self.node_groups
                .iter()
                .map(|g| csv_field(&format!("nodes_{g}"))),
        );
        writeln!(out, "{}", header.join(","))?;
        for s in &self.steps {
            let mut row = vec![
                s.t.to_string(),
                num(s.cost_usd, 6),
                num(s.allocatable_cpu_cores, 3),
                num(s.requested_cpu_cores, 3),
                num(s.demanded_cpu_cores, 3),
                num(s.used_cpu_cores, 3),
                num(s.allocatable_memory_gib, 3),
                num(s.requested_memory_gib, 3),
                num(s.used_memory_gib, 3),
                s.pending_pods.to_string(),
                s.replicas.to_string(),
                num(s.lower_bound_usage_usd, 6),
                num(s.lower_bound_requests_usd, 6),
            ];
            row.extend(s.nodes.iter().map(u32::to_string));
            writeln!(out, "{}", row.join(","))?;
        }
        Ok(())
    }

    /// The summary as pretty JSON (stable field order).
    pub fn summary_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(&self.summary)?;
        s.push('\n');
        Ok(s)
    }

    /// Writes `timeseries.csv`, `summary.json` and `report.html` into `dir`
    /// (created if missing).
    pub fn write_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut csv = io::BufWriter::new(std::fs::File::create(dir.join("timeseries.csv"))?);
        self.write_csv(&mut csv)?;
        csv.flush()?;
        let json = self.summary_json().map_err(io::Error::other)?;
        std::fs::write(dir.join("summary.json"), json)?;
        std::fs::write(dir.join("report.html"), self.html())?;
        Ok(())
    }

    /// The headline numbers as an aligned table for a terminal.
    #[must_use]
    pub fn table(&self) -> String {
        let s = &self.summary;
        let rows: Vec<(&str, String)> = vec![
            ("scenario", format!("{} ({})", s.scenario, s.strategy)),
            (
                "simulated",
                format!("{} h, seed {}", num(s.hours, 1), s.seed),
            ),
            ("total cost", format!("${}", num(s.total_cost_usd, 2))),
            ("cost per hour", format!("${}", num(s.cost_per_hour_usd, 3))),
            (
                "lower bound (usage)",
                format!(
                    "${}  (cost is {}x)",
                    num(s.lower_bound_usage_usd, 2),
                    num(s.cost_over_lower_bound_usage, 2)
                ),
            ),
            (
                "lower bound (requests)",
                format!(
                    "${}  (cost is {}x)",
                    num(s.lower_bound_requests_usd, 2),
                    num(s.cost_over_lower_bound_requests, 2)
                ),
            ),
            (
                "waste: sizing slack",
                format!("${}", num(s.waste.sizing_slack_usd, 2)),
            ),
            (
                "waste: packing loss",
                format!("${}", num(s.waste.packing_loss_usd, 2)),
            ),
            (
                "waste: scale-down lag",
                format!("${}", num(s.waste.scale_down_lag_usd, 2)),
            ),
            (
                "relative slack (mean)",
                format!("{}%", num(100.0 * s.relative_slack_mean, 1)),
            ),
            (
                "unserved CPU",
                format!(
                    "{} core-h ({}% of demand)",
                    num(s.unserved_cpu_core_hours, 2),
                    num(100.0 * s.unserved_cpu_fraction, 3)
                ),
            ),
            (
                "OOM kills",
                format!(
                    "{} (relative rate {})",
                    s.oom_kills,
                    num(s.relative_oom_rate, 4)
                ),
            ),
            ("pending pod-minutes", num(s.pending_pod_minutes, 1)),
            (
                "evictions / resizes",
                format!("{} / {}", s.evictions, s.resizes),
            ),
            (
                "node scale-ups / downs",
                format!("{} / {}", s.node_scale_ups, s.node_scale_downs),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }

    /// A self-contained HTML page: the summary and three SVG charts (cost over
    /// time, CPU requests vs usage, nodes by group). No scripts, no external
    /// resources.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // chart coordinates
    pub fn html(&self) -> String {
        let hours: Vec<f64> = self.steps.iter().map(|s| s.t as f64 / 3600.0).collect();
        let step_hours = self.step_seconds as f64 / 3600.0;
        let cost_rate = |v: f64| {
            if step_hours > 0.0 {
                v / step_hours
            } else {
                0.0
            }
        };
        let cost = Chart {
            title: "Cost per hour (USD)",
            series: vec![
                Series::line(
                    "nodes",
                    "#d62728",
                    self.steps.iter().map(|s| cost_rate(s.cost_usd)).collect(),
                ),
                Series::line(
                    "lower bound (requests)",
                    "#ff7f0e",
                    self.steps
                        .iter()
                        .map(|s| cost_rate(s.lower_bound_requests_usd))
                        .collect(),
                ),
                Series::line(
                    "lower bound (usage)",
                    "#2ca02c",
                    self.steps
                        .iter()
                        .map(|s| cost_rate(s.lower_bound_usage_usd))
                        .collect(),
                ),
            ],
            stacked: false,
        };
        let cpu = Chart {
            title: "CPU (cores): allocatable, requested, demanded, used",
            series: vec![
                Series::line(
                    "allocatable",
                    "#7f7f7f",
                    self.steps.iter().map(|s| s.allocatable_cpu_cores).collect(),
                ),
                Series::line(
                    "requested",
                    "#1f77b4",
                    self.steps.iter().map(|s| s.requested_cpu_cores).collect(),
                ),
                Series::line(
                    "demanded",
                    "#9467bd",
                    self.steps.iter().map(|s| s.demanded_cpu_cores).collect(),
                ),
                Series::line(
                    "used",
                    "#2ca02c",
                    self.steps.iter().map(|s| s.used_cpu_cores).collect(),
                ),
            ],
            stacked: false,
        };
        const PALETTE: [&str; 8] = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        ];
        let nodes = Chart {
            title: "Nodes by group",
            series: self
                .node_groups
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    Series::line(
                        g,
                        PALETTE[i % PALETTE.len()],
                        self.steps
                            .iter()
                            .map(|s| f64::from(s.nodes.get(i).copied().unwrap_or(0)))
                            .collect(),
                    )
                })
                .collect(),
            stacked: true,
        };
        let mut page = String::new();
        let title = format!(
            "Tailor simulation: {} ({})",
            escape_html(&self.summary.scenario),
            escape_html(&self.summary.strategy)
        );
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>\nbody{{font-family:system-ui,sans-serif;margin:2rem;max-width:980px;color:#222}}\ntable{{border-collapse:collapse}}td{{padding:2px 12px;border-bottom:1px solid #eee}}td:first-child{{color:#555}}\nsvg{{display:block;margin:1.5rem 0}}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n<table>\n"
        );
        for line in self.table().lines() {
            if let Some((k, v)) = line.split_once("  ") {
                let _ = writeln!(
                    page,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape_html(k.trim()),
                    escape_html(v.trim())
                );
            }
        }
        page.push_str("</table>\n");
        for chart in [&cost, &cpu, &nodes] {
            page.push_str(&chart.svg(&hours));
        }
        page.push_str("</body>\n</html>\n");
        page
    }
}

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

impl<'a> Series<'a> {
    fn line(name: &'a str, color: &'a str, values: Vec<f64>) -> Self {
        Series {
            name,
            color,
            values,
        }
    }
}

struct Chart<'a> {
    title: &'a str,
    series: Vec<Series<'a>>,
    stacked: bool,
}

impl Chart<'_> {
    /// Renders the chart; long series are thinned to at most ~1,000 points per
    /// line (keeping each bucket's maximum so peaks stay visible).
    #[allow(clippy::cast_precision_loss)]
    fn svg(&self, hours: &[f64]) -> String {
        const W: f64 = 940.0;
        const H: f64 = 260.0;
        const LEFT: f64 = 60.0;
        const RIGHT: f64 = 10.0;
        const TOP: f64 = 30.0;
        const BOTTOM: f64 = 40.0;
        let n = hours.len();
        // Cumulative values for stacked charts.
        let mut lines: Vec<Vec<f64>> = Vec::with_capacity(self.series.len());
        let mut running = vec![0.0; n];
        for s in &self.series {
            if self.stacked {
                for (acc, v) in running.iter_mut().zip(&s.values) {
                    *acc += v;
                }
                lines.push(running.clone());
            } else {
                lines.push(s.values.clone());
            }
        }
        let max_y = lines
            .iter()
            .flatten()
            .copied()
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let max_x = hours.last().copied().unwrap_or(0.0).max(1e-9);
        let x = |h: f64| LEFT + (W - LEFT - RIGHT) * h / max_x;
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / max_y);
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\">\n<text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{t}</text>",
            t = escape_html(self.title)
        );
        // Axes with four gridlines.
        for i in 0..=4 {
            let v = max_y * f64::from(i) / 4.0;
            let yy = y(v);
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
                W - RIGHT,
                LEFT - 4.0,
                yy + 3.0,
                num(v, if max_y < 10.0 { 2 } else { 0 })
            );
        }
        for i in 0..=4 {
            let h = max_x * f64::from(i) / 4.0;
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{} h</text>",
                x(h),
                H - BOTTOM + 14.0,
                num(h, 0)
            );
        }
        let stride = n.div_ceil(1000).max(1);
        for (s, values) in self.series.iter().zip(&lines) {
            let mut points = String::new();
            for chunk_start in (0..n).step_by(stride) {
                let end = (chunk_start + stride).min(n);
                let peak = values[chunk_start..end]
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                let _ = write!(points, "{:.1},{:.1} ", x(hours[chunk_start]), y(peak));
            }
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                s.color,
                points.trim_end()
            );
        }
        // Legend below the plot.
        let mut lx = LEFT;
        for s in &self.series {
            let _ = writeln!(
                svg,
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>",
                H - 16.0,
                s.color,
                lx + 14.0,
                H - 7.0,
                escape_html(s.name)
            );
            lx += 24.0 + 7.0 * s.name.len() as f64;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let steps = (0..4)
            .map(|i| StepRecord {
                t: i * 300,
                cost_usd: 0.1,
                nodes: vec![1, u32::try_from(i).unwrap()],
                allocatable_cpu_cores: 4.0,
                requested_cpu_cores: 2.0,
                demanded_cpu_cores: 1.0,
                used_cpu_cores: 1.0,
                pending_pods: 0,
                replicas: 2,
                lower_bound_usage_usd: 0.02,
                lower_bound_requests_usd: 0.05,
                ..StepRecord::default()
            })
            .collect();
        Report {
            node_groups: vec!["on-demand".into(), "spot, \"cheap\"".into()],
            step_seconds: 300,
            steps,
            summary: Summary {
                scenario: "demo <&>".into(),
                strategy: "fixed".into(),
                seed: 7,
                total_cost_usd: 0.4,
                ..Summary::default()
            },
        }
    }

    #[test]
    fn csv_has_a_row_per_step_and_quotes_names() {
        let mut out = Vec::new();
        sample().write_csv(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].ends_with(",nodes_on-demand,\"nodes_spot, \"\"cheap\"\"\""));
        assert_eq!(
            lines[3],
            "600,0.100000,4.000,2.000,1.000,1.000,0.000,0.000,0.000,0,2,0.020000,0.050000,1,2"
        );
    }

    #[test]
    fn summary_json_has_the_documented_fields() {
        let json: serde_json::Value =
            serde_json::from_str(&sample().summary_json().unwrap()).unwrap();
        for field in [
            "total_cost_usd",
            "lower_bound_usage_usd",
            "lower_bound_requests_usd",
            "unserved_cpu_core_hours",
            "unserved_cpu_fraction",
            "oom_kills",
            "pending_pod_minutes",
            "relative_slack_mean",
            "evictions",
            "resizes",
            "node_scale_ups",
            "node_scale_downs",
        ] {
            assert!(json.get(field).is_some(), "summary.json lacks {field}");
        }
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let html = sample().html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains("demo &lt;&amp;&gt;"));
        assert!(!html.contains("demo <&>"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
    }

    #[test]
    fn output_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        sample().write_dir(&a).unwrap();
        sample().write_dir(&b).unwrap();
        for f in ["timeseries.csv", "summary.json", "report.html"] {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{f} differs"
            );
        }
    }

    #[test]
    fn negative_zero_is_printed_as_zero() {
        assert_eq!(num(-0.0, 2), "0.00");
        assert_eq!(num(-0.0001, 2), "0.00");
        assert_eq!(num(-1.5, 1), "-1.5");
    }
}
