//! `tailor-expander`: picks the node group to grow, by price or least waste.
//!
//! The decisions themselves are `tailor_core::expander`; this crate converts
//! Kubernetes objects into the core's types ([`convert`]), reads Cluster
//! Autoscaler's `BestOptionsRequest` in JSON and protobuf ([`request`], with
//! [`outer`] reading the request in place and [`lean`] messages for the
//! pods), runs
//! one decision ([`engine`]), explains it ([`output`]), serves CA's gRPC
//! expander protocol over TLS ([`grpc`]), and grows AWS Auto Scaling groups
//! itself in the AWS mode ([`aws`], with [`asg`] for AWS and [`cluster`] for
//! Kubernetes).

pub mod asg;
pub mod aws;
pub mod cli;
pub mod cluster;
pub mod convert;
pub mod engine;
pub mod grpc;
pub mod lean;
pub mod outer;
pub mod output;
pub mod request;
pub mod wire;

pub use cli::{Cli, Command};
pub use engine::{DecideError, Expander, Explanation, Request};

/// Runs a parsed command line; returns what `decide` prints.
pub async fn run(cli: Cli) -> anyhow::Result<Option<String>> {
    match cli.command {
        Command::Decide(args) => cli::decide(&args).map(Some),
        Command::Serve(args) => {
            init_tracing(&args.log_filter)?;
            cli::serve(&args).await.map(|()| None)
        }
        Command::Aws(args) => aws::run(*args).await,
    }
}

fn init_tracing(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log-filter {filter:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}
