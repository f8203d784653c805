//! `tailor-load`: see the library and `README.md`.

use std::process::ExitCode;

use clap::Parser as _;
use tailor_load::{Cli, load};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let report = load::runtime(&cli).and_then(|rt| rt.block_on(load::run(&cli)));
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("tailor-load: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("tailor-load: cannot encode the report: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", report.table());
    }
    match cli.expect_status {
        Some(status) if !report.all_answered_with(status) => {
            eprintln!("tailor-load: not every request was answered with status {status}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
