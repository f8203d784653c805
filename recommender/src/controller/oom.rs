//! OOM kills seen in pod status, as upstream's OOM observer sees them: when a
//! pod update shows a container newly terminated with reason `OOMKilled`, or
//! restarted (Running → Running, restart count up) with its last termination
//! `OOMKilled`. Pure: the pod cache passes the old and the new pod.
//!
//! As upstream, a pod seen for the first time reports nothing (its last
//! termination may be days old and already in the usage history); native
//! sidecars and eviction Events are not observed.

use super::r#loop::PodInfo;
use super::state::OomEvent;
use crate::prom::ContainerKey;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use tailor_core::recommender::Timestamp;

/// The reason the kubelet gives a container killed for exceeding its memory limit.
pub const OOM_KILLED: &str = "OOMKilled";

/// A container's run state, as much as OOM detection needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting, or no state reported.
    Waiting,
    /// Running.
    Running,
    /// Terminated; `oom_at` is its `finishedAt` when the reason is `OOMKilled`.
    Terminated {
        /// `finishedAt` of an `OOMKilled` termination (None: another reason,
        /// or no `finishedAt` to date it by).
        oom_at: Option<Timestamp>,
    },
}

/// What the controller keeps of one container status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatusInfo {
    /// Container name.
    pub name: String,
    /// `restartCount`.
    pub restart_count: i32,
    /// `state`.
    pub state: RunState,
    /// `lastState.terminated.finishedAt` when its reason is `OOMKilled`.
    pub last_oom_at: Option<Timestamp>,
}

fn oom_finished_at(state: Option<&ContainerState>) -> Option<Timestamp> {
    let t = state?.terminated.as_ref()?;
    if t.reason.as_deref() != Some(OOM_KILLED) {
        return None;
    }
    t.finished_at.as_ref().map(|f| f.0.as_second())
}

/// The container statuses of `pod` (not init containers).
#[must_use]
pub fn container_statuses(pod: &Pod) -> Vec<ContainerStatusInfo> {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| {
            let state = match &c.state {
                Some(s) if s.terminated.is_some() => RunState::Terminated {
                    oom_at: oom_finished_at(Some(s)),
                },
                Some(s) if s.running.is_some() => RunState::Running,
                _ => RunState::Waiting,
            };
            ContainerStatusInfo {
                name: c.name.clone(),
                restart_count: c.restart_count,
                state,
                last_oom_at: oom_finished_at(c.last_state.as_ref()),
            }
        })
        .collect()
}

fn memory_request(pod: &PodInfo, container: &str) -> i64 {
    pod.containers
        .iter()
        .find(|(name, _)| name == container)
        .map_or(0, |(_, r)| r.memory_bytes)
}

/// The OOM kills that the update from `old` to `new` shows (upstream's rules):
/// - newly OOM-killed: `state` is terminated `OOMKilled` and the old state was
///   not terminated, or the restart count went up; dated by that
///   termination's `finishedAt`, with the new pod's memory request;
/// - killed and restarted between two looks: running before and after, the
///   restart count up, `lastState` terminated `OOMKilled`; dated by its
///   `finishedAt`, with the old pod's memory request (the killed instance's).
#[must_use]
pub fn observe(old: &PodInfo, new: &PodInfo) -> Vec<OomEvent> {
    let mut out = Vec::new();
    for status in &new.statuses {
        let Some(before) = old.statuses.iter().find(|s| s.name == status.name) else {
            continue;
        };
        let restarted = status.restart_count > before.restart_count;
        let before_terminated = matches!(before.state, RunState::Terminated { .. });
        let event = match status.state {
            RunState::Terminated { oom_at: Some(at) } if !before_terminated || restarted => {
                Some((at, memory_request(new, &status.name)))
            }
            RunState::Running if before.state == RunState::Running && restarted => status
                .last_oom_at
                .map(|at| (at, memory_request(old, &status.name))),
            _ => None,
        };
        if let Some((timestamp, memory_request_bytes)) = event {
            out.push(OomEvent {
                container: ContainerKey {
                    namespace: new.namespace.clone(),
                    pod: new.name.clone(),
                    container: status.name.clone(),
                },
                timestamp,
                memory_request_bytes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::{Value, json};

    const FINISHED: &str = "2026-12-01T10:00:00Z";
    const FINISHED_TS: Timestamp = 1_796_119_200;

    fn pod(memory: &str, status: Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": "1", "memory": memory}}},
                {"name": "sidecar"}
            ]},
            "status": {"phase": "Running", "containerStatuses": [
                status,
                {"name": "sidecar", "restartCount": 0, "image": "x", "imageID": "", "ready": true,
                 "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}
            ]}
        }))
        .unwrap();
        PodInfo::from_pod(&pod)
    }

    fn status(restarts: i32, state: Value, last: Value) -> Value {
        json!({"name": "app", "restartCount": restarts, "image": "x", "imageID": "", "ready": false,
               "state": state, "lastState": last})
    }

    fn running() -> Value {
        json!({"running": {"startedAt": "2026-12-01T10:00:05Z"}})
    }

    fn terminated(reason: &str) -> Value {
        json!({"terminated": {"exitCode": 137, "reason": reason, "finishedAt": FINISHED}})
    }

    fn waiting() -> Value {
        json!({"waiting": {"reason": "CrashLoopBackOff"}})
    }

    fn oom(memory: i64) -> Vec<OomEvent> {
        vec![OomEvent {
            container: ContainerKey {
                namespace: "shop".into(),
                pod: "web-0".into(),
                container: "app".into(),
            },
            timestamp: FINISHED_TS,
            memory_request_bytes: memory,
        }]
    }

    const GI: i64 = 1 << 30;
    const MI512: i64 = 512 << 20;

    #[rstest]
    // Running, then terminated OOMKilled: new pod's request.
    #[case(status(0, running(), json!({})), status(0, terminated("OOMKilled"), json!({})), oom(GI))]
    // Crash-looping: terminated → terminated with the restart count up.
    #[case(status(1, terminated("OOMKilled"), json!({})), status(2, terminated("OOMKilled"), json!({})), oom(GI))]
    // The same terminated status seen again (resync): nothing.
    #[case(status(1, terminated("OOMKilled"), json!({})), status(1, terminated("OOMKilled"), json!({})), vec![])]
    // Killed and restarted between two looks: old pod's request.
    #[case(status(0, running(), json!({})), status(1, running(), terminated("OOMKilled")), oom(MI512))]
    // Restarted for another reason.
    #[case(status(0, running(), json!({})), status(1, running(), terminated("Error")), vec![])]
    // Terminated for another reason.
    #[case(status(0, running(), json!({})), status(0, terminated("Completed"), json!({})), vec![])]
    // Waiting → Running after a crash loop: the OOM was already counted.
    #[case(status(2, waiting(), terminated("OOMKilled")), status(3, running(), terminated("OOMKilled")), vec![])]
    fn upstream_rules(#[case] before: Value, #[case] after: Value, #[case] want: Vec<OomEvent>) {
        let old = pod("512Mi", before);
        let new = pod("1Gi", after);
        assert_eq!(observe(&old, &new), want);
    }

    #[test]
    fn a_container_new_in_the_pod_reports_nothing_and_no_finished_at_cannot_be_dated() {
        let old: PodInfo = pod("1Gi", status(0, running(), json!({})));
        let mut old_without_app = old.clone();
        old_without_app.statuses.retain(|s| s.name != "app");
        let new = pod("1Gi", status(0, terminated("OOMKilled"), json!({})));
        assert!(observe(&old_without_app, &new).is_empty());
        let undated = pod(
            "1Gi",
            status(
                0,
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
                json!({}),
            ),
        );
        assert!(observe(&old, &undated).is_empty());
    }
}
