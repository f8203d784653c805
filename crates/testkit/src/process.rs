//! Finding binaries, picking ports, and owning child processes.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A binary the harness runs, its env override and how to install it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binary {
    pub name: &'static str,
    pub env: &'static str,
    pub hint: &'static str,
}

pub(crate) const PROMETHEUS: Binary = Binary {
    name: "prometheus",
    env: "TAILOR_PROMETHEUS",
    hint: "run scripts/test (it installs it) or `apt-get install prometheus`",
};

pub(crate) const PROMTOOL: Binary = Binary {
    name: "promtool",
    env: "TAILOR_PROMTOOL",
    hint: "run scripts/test (it installs it) or `apt-get install prometheus` (promtool ships with it)",
};

pub(crate) const MOTO_SERVER: Binary = Binary {
    name: "moto_server",
    env: "TAILOR_MOTO_SERVER",
    hint: "run scripts/test (it installs it) or `pip install 'moto[server]'`",
};

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Binary {
    /// The env override if set, else the first executable `name` on `PATH`.
    pub(crate) fn locate(&self) -> Result<PathBuf> {
        self.locate_in(std::env::var_os(self.env), std::env::var_os("PATH"))
    }

    /// [`Binary::locate`] with the environment passed in (tests cannot set env safely).
    fn locate_in(
        &self,
        override_value: Option<OsString>,
        path: Option<OsString>,
    ) -> Result<PathBuf> {
        if let Some(value) = override_value.filter(|v| !v.is_empty()) {
            let path = PathBuf::from(value);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(Error::BadOverride {
                    var: self.env,
                    path,
                })
            };
        }
        let path = path.unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(self.name))
            .find(|candidate| is_executable(candidate))
            .ok_or(Error::NotFound {
                binary: self.name,
                hint: self.hint,
            })
    }
}

/// A loopback port that was free a moment ago (the listener is closed on return).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Port)?;
    Ok(listener.local_addr().map_err(Error::Port)?.port())
}

/// Renders a command line for error messages.
pub(crate) fn command_line(program: &Path, args: &[impl AsRef<OsStr>]) -> String {
    let mut line = program.display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.as_ref().to_string_lossy());
    }
    line
}

/// The last `lines` lines of a log file, or a note that it could not be read.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A running child process that is killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct OwnedChild {
    child: Child,
    pub command: String,
    pub log: PathBuf,
}

impl OwnedChild {
    /// Spawns `program args` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(program: &Path, args: &[String], log: PathBuf) -> Result<Self> {
        let command = command_line(program, args);
        let out = File::create(&log).map_err(Error::io(&log))?;
        let err = out.try_clone().map_err(Error::io(&log))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(Self {
            child,
            command,
            log,
        })
    }

    /// The OS process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `url` until it answers 2xx, failing early if the process exits.
    pub(crate) async fn wait_ready(
        &mut self,
        url: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Http {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::EarlyExit {
                    command: self.command.clone(),
                    status,
                    port,
                    stderr: tail(&self.log, 20),
                });
            }
            if let Ok(response) = client.get(url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::NotReady {
                    command: self.command.clone(),
                    url: url.to_owned(),
                    waited: started.elapsed(),
                    stderr: tail(&self.log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        // SIGKILL then reap, so no zombie or orphan outlives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-shot command to completion, failing with its output tail.
pub(crate) fn run(program: &Path, args: &[String], log: PathBuf) -> Result<()> {
    let command = command_line(program, args);
    let out = File::create(&log).map_err(Error::io(&log))?;
    let err = out.try_clone().map_err(Error::io(&log))?;
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command,
            status,
            stderr: tail(&log, 20),
        })
    }
}

/// Runs a command and returns its stdout+stderr (for probing `--help`).
pub(crate) fn output(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command_line(program, args),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_install_command() {
        let missing = Binary {
            name: "tailor-testkit-no-such-binary",
            env: "TAILOR_TESTKIT_NO_SUCH_OVERRIDE",
            hint: "install it",
        };
        let err = missing
            .locate_in(None, Some("/nonexistent".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "tailor-testkit-no-such-binary not found: install it");
    }

    #[test]
    fn override_wins_over_path_and_must_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("fake");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = PROMETHEUS
            .locate_in(Some(exe.clone().into()), Some("/nonexistent".into()))
            .unwrap();
        assert_eq!(found, exe);

        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let err = PROMETHEUS
            .locate_in(Some(plain.into()), None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("TAILOR_PROMETHEUS="), "{err}");
    }

    #[test]
    fn found_on_path_when_not_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("moto_server");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(MOTO_SERVER.locate_in(None, Some(path)).unwrap(), exe);
        let err = MOTO_SERVER
            .locate_in(Some("".into()), Some("/nonexistent".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "moto_server not found: run scripts/test (it installs it) or `pip install 'moto[server]'`"
        );
    }

    #[test]
    fn hints_say_how_to_install() {
        assert!(PROMETHEUS.hint.contains("apt-get install prometheus"));
        assert!(MOTO_SERVER.hint.contains("pip install 'moto[server]'"));
        assert!(PROMTOOL.hint.contains("scripts/test"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert_eq!(tail(&path, 10), "a\nb\nc\nd");
    }
}
