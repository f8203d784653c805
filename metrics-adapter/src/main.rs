//! `tailor-metrics-adapter`: see the library's `run`.

use clap::Parser as _;
use tailor_metrics_adapter::run::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tailor_runtime::tls::install_crypto_provider();
    run(Cli::parse()).await
}
