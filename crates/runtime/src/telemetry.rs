//! Logging initialisation from [`LogArgs`].

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt as _};

use crate::args::{LogArgs, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-level` is not a valid EnvFilter directive.
    #[error("invalid --log-level {directive:?}: {source}")]
    Filter {
        /// The directive as given.
        directive: String,
        /// What the parser objected to.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (init called twice).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Builds a subscriber for `args` that writes to `writer` (for tests and tools).
/// `ansi` colours text lines; turn it off unless writing to a terminal.
pub fn subscriber<W>(
    args: &LogArgs,
    writer: W,
    ansi: bool,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&args.log_level).map_err(|source| TelemetryError::Filter {
        directive: args.log_level.clone(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    Ok(match args.log_format {
        LogFormat::Text => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(ansi)
                    .with_target(true),
            ),
        ),
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_ansi(false)
                    .with_writer(writer),
            ),
        ),
    })
}

/// Installs the global subscriber for `args`, writing to standard error
/// (coloured only when standard error is a terminal).
pub fn init(args: &LogArgs) -> Result<(), TelemetryError> {
    use std::io::IsTerminal as _;
    let subscriber = subscriber(args, std::io::stderr, std::io::stderr().is_terminal())?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(level: &str, format: LogFormat) -> String {
        let buffer = Buffer::default();
        let args = LogArgs {
            log_level: level.to_owned(),
            log_format: format,
        };
        let subscriber = subscriber(&args, buffer.clone(), false).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(vpa = "web", "recommendation written");
            tracing::debug!("hidden at info");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_are_json_objects_with_fields() {
        let out = capture("info", LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(value["message"], "recommendation written");
        assert_eq!(value["vpa"], "web");
        assert_eq!(value["level"], "INFO");
    }

    #[test]
    fn text_lines_are_plain_and_filtered() {
        let out = capture("info", LogFormat::Text);
        assert!(out.contains("recommendation written"), "{out}");
        assert!(out.contains("vpa=\"web\""), "{out}");
        assert!(!out.contains("hidden at info"), "{out}");
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err());
    }

    #[test]
    fn directives_with_module_overrides_apply() {
        let out = capture("warn,tailor_runtime=debug", LogFormat::Text);
        assert!(out.contains("hidden at info"), "{out}");
    }

    #[test]
    fn bad_directive_is_named() {
        let args = LogArgs {
            log_level: "info,=[".to_owned(),
            log_format: LogFormat::Text,
        };
        let err = subscriber(&args, std::io::sink, false).err().unwrap();
        assert!(err.to_string().contains("info,=["), "{err}");
    }
}
