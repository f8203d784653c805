//! `tailor-sim`: what would these autoscaling settings cost on my workloads,
//! and what would they break?

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tailor_sim::compare::{BASELINE, Comparison, Row, Shard, jobs};
use tailor_sim::engine::{self, setup::with_strategy};
use tailor_sim::scenario::Scenario;

/// Replays workloads (traces or built-in synthetic ones) through Tailor's
/// autoscaling decisions on a virtual clock and reports cost, waste and SLO
/// damage (throttled CPU, OOM kills, pending pods).
#[derive(Parser, Debug)]
#[command(name = "tailor-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate one scenario and write timeseries.csv, summary.json and report.html.
    Run {
        /// Scenario YAML (see docs/scenario.example.yaml). Without it, the
        /// built-in one-week scenario runs.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
        /// Which of the scenario's `strategies` to apply (default: the scenario as written).
        #[arg(long, value_name = "NAME", default_value = BASELINE)]
        strategy: String,
        /// Output directory (created; existing files in it are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replace the scenario's seed.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
    },
    /// Run the baseline and every strategy of each scenario side by side, mark
    /// the cost/SLO Pareto front, write compare.csv and compare.json.
    Compare {
        /// Scenario YAML files (repeatable). Without any, the built-in scenario.
        #[arg(long, value_name = "FILE")]
        scenario: Vec<PathBuf>,
        /// Output directory (created; existing files in it are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Run only this shard of the (scenario × strategy) jobs: `i/n` runs
        /// jobs whose index modulo n is i. Combine shard outputs with `merge`.
        #[arg(long, value_name = "i/n")]
        shard: Option<Shard>,
        /// Replace every scenario's seed.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
    },
    /// Merge the compare.json of shard output directories into one comparison.
    Merge {
        /// Shard output directories (each holding compare.json).
        #[arg(required = true, value_name = "DIR")]
        inputs: Vec<PathBuf>,
        /// Output directory for the merged compare.csv and compare.json.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Loads a scenario and the folder its relative paths start from.
fn load(path: Option<&Path>, seed: Option<u64>) -> Result<(Scenario, PathBuf), String> {
    let (mut scenario, base) = match path {
        None => (
            Scenario::builtin().map_err(|e| e.to_string())?,
            PathBuf::from("."),
        ),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read the scenario: {e}", p.display()))?;
            let s =
                Scenario::from_yaml(&p.display().to_string(), &text).map_err(|e| e.to_string())?;
            let base = p
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            (s, base)
        }
    };
    if let Some(seed) = seed {
        scenario.seed = seed;
    }
    Ok((scenario, base))
}

fn simulate(
    scenario: &Scenario,
    base: &Path,
    strategy: &str,
    label: &str,
) -> Result<tailor_sim::report::Report, String> {
    let spec = if strategy == BASELINE {
        None
    } else {
        Some(
            scenario
                .strategies
                .iter()
                .find(|s| s.name == strategy)
                .ok_or_else(|| {
                    let known: Vec<&str> = std::iter::once(BASELINE)
                        .chain(scenario.strategies.iter().map(|s| s.name.as_str()))
                        .collect();
                    format!(
                        "{label}: no strategy named {strategy:?} (known: {})",
                        known.join(", ")
                    )
                })?,
        )
    };
    let effective = with_strategy(scenario, spec);
    engine::run(&effective, strategy, base).map_err(|e| format!("{label}: {e}"))
}

fn write_out(out: &Path, what: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<(), String> {
    what(out).map_err(|e| format!("{}: cannot write the output: {e}", out.display()))
}

fn real_main(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            scenario,
            strategy,
            out,
            seed,
        } => {
            let label = scenario.as_ref().map_or_else(
                || "<built-in scenario>".to_owned(),
                |p| p.display().to_string(),
            );
            let (s, base) = load(scenario.as_deref(), seed)?;
            // Everything is computed before the output directory is touched.
            let report = simulate(&s, &base, &strategy, &label)?;
            write_out(&out, |d| report.write_dir(d))?;
            print!("{}", report.table());
            println!("wrote {}", out.display());
        }
        Command::Compare {
            scenario,
            out,
            shard,
            seed,
        } => {
            let files: Vec<Option<PathBuf>> = if scenario.is_empty() {
                vec![None]
            } else {
                scenario.into_iter().map(Some).collect()
            };
            let mut loaded = Vec::with_capacity(files.len());
            for f in &files {
                loaded.push(load(f.as_deref(), seed)?);
            }
            let scenarios: Vec<Scenario> = loaded.iter().map(|(s, _)| s.clone()).collect();
            let mut rows = Vec::new();
            for job in jobs(&scenarios) {
                if shard.is_some_and(|s| !s.owns(job.index)) {
                    continue;
                }
                let (s, base) = &loaded[job.scenario];
                let label = files[job.scenario].as_ref().map_or_else(
                    || "<built-in scenario>".to_owned(),
                    |p| p.display().to_string(),
                );
                let report = simulate(s, base, &job.strategy, &label)?;
                rows.push(Row {
                    job: job.index,
                    pareto: false,
                    summary: report.summary,
                });
            }
            let comparison = Comparison::new(rows);
            write_out(&out, |d| comparison.write_dir(d))?;
            print!("{}", comparison.table());
            println!("wrote {}", out.display());
        }
        Command::Merge { inputs, out } => {
            let mut parts = Vec::with_capacity(inputs.len());
            for dir in &inputs {
                let path = dir.join("compare.json");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
                let c: Comparison = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not a compare.json: {e}", path.display()))?;
                parts.push(c);
            }
            let merged = Comparison::merge(parts)?;
            write_out(&out, |d| merged.write_dir(d))?;
            print!("{}", merged.table());
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tailor-sim: error: {e}");
            ExitCode::FAILURE
        }
    }
}
