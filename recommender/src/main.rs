//! `tailor-recommender` binary.

use clap::Parser as _;
use tailor_recommender::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Recommend(args) => tailor_recommender::cli::recommend(&args)
            .await
            .map(|out| print!("{out}")),
        Command::Run(args) => tailor_recommender::controller::run::run(*args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
