//! `moto_server` (the AWS mock) on a loopback port, and SDK clients pointed at it.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tempfile::TempDir;

use crate::process::{self, MOTO_SERVER, OwnedChild};
use crate::{Error, Result};

/// How often a port collision is retried.
const START_ATTEMPTS: usize = 3;

/// The region every client built here uses.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`, killed on drop. Each instance has its own empty state.
#[derive(Debug)]
pub struct Moto {
    child: OwnedChild,
    endpoint: String,
    _dir: TempDir,
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self> {
        let binary = MOTO_SERVER.locate()?;
        let dir = tempfile::Builder::new()
            .prefix("tailor-moto-")
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = process::free_port()?;
            let args = vec![
                "--host".to_owned(),
                "127.0.0.1".to_owned(),
                "--port".to_owned(),
                port.to_string(),
            ];
            let log = dir.path().join(format!("moto-{attempt}.log"));
            let mut child = OwnedChild::spawn(&binary, &args, log)?;
            let endpoint = format!("http://127.0.0.1:{port}");
            let ready = format!("{endpoint}/moto-api/data.json");
            match child
                .wait_ready(&ready, port, Duration::from_secs(60))
                .await
            {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        endpoint,
                        _dir: dir,
                    });
                }
                Err(Error::EarlyExit { ref stderr, .. })
                    if attempt < START_ATTEMPTS && stderr.contains("already in use") => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Process id of the server (to check it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// An AWS SDK config for this endpoint: dummy static credentials, `us-east-1`,
    /// and an HTTP client on rustls with the ring provider. Reads no environment.
    pub fn sdk_config(&self) -> SdkConfig {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new("testing", "testing", None, None, "tailor-testkit");
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .endpoint_url(self.endpoint.clone())
            .http_client(http_client)
            .build()
    }

    /// An Auto Scaling client talking to this moto.
    pub fn autoscaling_client(&self) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.sdk_config())
    }
}
