//! `tailor-updater` binary.

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tailor_runtime::tls::install_crypto_provider();
    let cli = tailor_updater::run::Cli::parse();
    match tailor_updater::run::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
