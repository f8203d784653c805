//! `tailor-expander` binary.

use clap::Parser as _;
use std::io::Write as _;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // ring only; whoever installed first wins, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = tailor_expander::Cli::parse();
    match tailor_expander::run(cli).await {
        Ok(Some(text)) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
