//! `tailor-admission-webhook`: see the library's `run`.

use clap::Parser as _;
use tailor_admission_webhook::run::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tailor_runtime::tls::install_crypto_provider();
    run(Cli::parse()).await
}
