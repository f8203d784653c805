//! The AWS mode's scale-up decision: which group to grow, by how many nodes,
//! within its MaxSize and the cluster-wide caps; and the provisioning
//! tracker that backs off groups whose nodes do not arrive.
//!
//! Pure: the caller lists groups, nodes and pods, passes the clock in, and
//! applies the plan.

use super::{Chain, ExpansionContext, ExpansionOption, NodeTemplate, Step};
use crate::resources::Resources;
use crate::scheduling::{PodRequest, pack_first_fit_decreasing};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Pods with a priority below this never trigger a scale-up (CA's default).
pub const DEFAULT_EXPENDABLE_CUTOFF: i32 = -10;

/// One discovered group, with what the cluster says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupState {
    /// Group id (the ASG name).
    pub id: String,
    /// MinSize.
    pub min: u32,
    /// MaxSize.
    pub max: u32,
    /// DesiredCapacity.
    pub desired: u32,
    /// Its instances registered as Kubernetes nodes.
    pub registered: u32,
    /// What a new node looks like.
    pub template: NodeTemplate,
    /// How the provisioning tracker sees the group.
    pub health: GroupHealth,
}

impl GroupState {
    /// Requested but not yet registered nodes.
    #[must_use]
    pub fn upcoming(&self) -> u32 {
        self.desired.saturating_sub(self.registered)
    }
}

/// The provisioning tracker's view of a group, for one plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHealth {
    /// In backoff: not offered for scale-up.
    pub backed_off: bool,
    /// Its upcoming nodes timed out: pending pods no longer wait for them.
    pub given_up: bool,
    /// Recent provisioning failures (reset after a quiet period).
    pub failures: u32,
}

/// Cluster-wide limits, as CA's `--cores-total`/`--memory-total` maxima.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCaps {
    /// Total CPU cores of all nodes, registered and upcoming.
    pub max_cores: u64,
    /// Total memory of all nodes, GiB.
    pub max_memory_gib: u64,
}

impl ClusterCaps {
    fn limit(&self) -> Resources {
        let cap = |v: u64, unit: i64| i64::try_from(v).unwrap_or(i64::MAX).saturating_mul(unit);
        Resources::new(cap(self.max_cores, 1000), cap(self.max_memory_gib, 1 << 30))
    }
}

/// What the plan needs besides the groups.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// Discovered groups (the plan reads them in id order).
    pub groups: &'a [GroupState],
    /// Unschedulable pending pods.
    pub pending: &'a [PodRequest],
    /// Summed capacity of every registered node in the cluster.
    pub registered_capacity: Resources,
    /// Registered nodes in the cluster (sizes the price expander).
    pub registered_nodes: usize,
    /// Cluster-wide caps.
    pub caps: ClusterCaps,
    /// Pods with a lower priority are ignored.
    pub expendable_cutoff: i32,
    /// Seed of the chain's random pick.
    pub seed: u64,
}

/// Why a group was not offered to the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Skip {
    /// DesiredCapacity is already MaxSize.
    AtMaxSize,
    /// Backed off after its nodes did not arrive in time.
    BackedOff,
    /// A cluster-wide cap leaves no room for one more node of it.
    ClusterCap {
        /// `--max-cores-total` or `--max-memory-total`.
        flag: String,
    },
    /// None of the pending pods fits its template.
    NoPodFits,
    /// It failed more recently than a group that can take the pods.
    FailedBefore {
        /// Its recent failures.
        failures: u32,
    },
}

/// Grow one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUp {
    /// The group.
    pub group: String,
    /// DesiredCapacity now.
    pub from: u32,
    /// DesiredCapacity to set (≤ MaxSize).
    pub to: u32,
    /// Pods the new nodes take, `namespace/name`.
    pub pods: Vec<String>,
}

/// What the plan found and decided.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Pending pods considered (not expendable).
    pub pending: usize,
    /// Pods ignored as expendable.
    pub expendable: usize,
    /// Pods that fit nodes already requested and not yet registered.
    pub on_upcoming: usize,
    /// Groups not offered, with why.
    pub skipped: BTreeMap<String, Skip>,
    /// Options offered to the chain: group → (nodes, pods).
    pub options: BTreeMap<String, (u32, usize)>,
    /// The chain's steps.
    pub steps: Vec<Step>,
    /// The scale-up, if any.
    pub scale_up: Option<ScaleUp>,
    /// Pods no group can take, `namespace/name`.
    pub unhelped: Vec<String>,
}

/// Decides one scale-up.
///
/// Pending pods below the expendable cutoff are dropped; the rest are first
/// packed onto upcoming nodes (requested, not registered, not given up), so
/// a second run over the same state asks for nothing more. The remaining
/// pods are packed (first-fit decreasing) onto each eligible group's
/// template, within MaxSize − desired and the cluster caps; among groups
/// that can take pods, only those with the fewest recent failures are
/// offered, so a failed spot group is not retried before its fallbacks.
/// The chain picks one option.
#[must_use]
pub fn plan(input: &PlanInput<'_>, chain: &Chain) -> Plan {
    let mut out = Plan::default();
    let mut groups: Vec<&GroupState> = input.groups.iter().collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));

    let mut pods: Vec<&PodRequest> = Vec::with_capacity(input.pending.len());
    for pod in input.pending {
        if pod.priority < input.expendable_cutoff {
            out.expendable += 1;
        } else {
            pods.push(pod);
        }
    }
    out.pending = pods.len();

    // Everything registered or on its way counts against the caps.
    let mut total = input.registered_capacity;
    let mut upcoming_nodes = 0usize;
    for g in &groups {
        let n = i64::from(g.upcoming());
        total = total.saturating_add(Resources::new(
            g.template.capacity.cpu_millis.saturating_mul(n),
            g.template.capacity.memory_bytes.saturating_mul(n),
        ));
        upcoming_nodes += g.upcoming() as usize;
    }

    // Pods that upcoming nodes will take are not planned for again.
    for g in &groups {
        let upcoming = g.upcoming();
        if upcoming == 0 || g.health.given_up || pods.is_empty() {
            continue;
        }
        let owned: Vec<PodRequest> = pods.iter().map(|p| (*p).clone()).collect();
        let packing =
            pack_first_fit_decreasing(&owned, &g.template.shape(), Some(upcoming as usize));
        let mut placed = vec![false; pods.len()];
        for i in packing.placed() {
            placed[i] = true;
        }
        out.on_upcoming += packing.placed().count();
        let mut keep = placed.iter().map(|p| !p);
        pods.retain(|_| keep.next().unwrap_or(true));
    }
    if pods.is_empty() {
        return out;
    }

    let owned: Vec<PodRequest> = pods.iter().map(|p| (*p).clone()).collect();
    let limit = input.caps.limit();
    let room = limit.saturating_sub(total);
    let mut candidates: Vec<(ExpansionOption, u32, u32)> = Vec::new();
    let mut helped = vec![false; owned.len()];
    for g in &groups {
        if g.health.backed_off {
            out.skipped.insert(g.id.clone(), Skip::BackedOff);
            continue;
        }
        if g.desired >= g.max {
            out.skipped.insert(g.id.clone(), Skip::AtMaxSize);
            continue;
        }
        let headroom = g.max - g.desired;
        let by = |room: i64, per: i64| {
            if per <= 0 {
                u32::MAX
            } else {
                u32::try_from((room.max(0)) / per).unwrap_or(u32::MAX)
            }
        };
        let by_cpu = by(room.cpu_millis, g.template.capacity.cpu_millis);
        let by_mem = by(room.memory_bytes, g.template.capacity.memory_bytes);
        let allowed = headroom.min(by_cpu).min(by_mem);
        if allowed == 0 {
            let flag = if by_cpu == 0 {
                "--max-cores-total"
            } else {
                "--max-memory-total"
            };
            out.skipped.insert(
                g.id.clone(),
                Skip::ClusterCap {
                    flag: flag.to_owned(),
                },
            );
            continue;
        }
        let packing =
            pack_first_fit_decreasing(&owned, &g.template.shape(), Some(allowed as usize));
        if packing.node_count() == 0 {
            out.skipped.insert(g.id.clone(), Skip::NoPodFits);
            continue;
        }
        let placed: Vec<PodRequest> = packing.placed().map(|i| owned[i].clone()).collect();
        for i in packing.placed() {
            helped[i] = true;
        }
        let nodes = u32::try_from(packing.node_count()).unwrap_or(u32::MAX);
        candidates.push((
            ExpansionOption {
                node_group_id: g.id.clone(),
                node_count: nodes,
                pods: placed,
                debug: String::new(),
            },
            g.desired,
            g.health.failures,
        ));
    }
    out.unhelped = owned
        .iter()
        .zip(&helped)
        .filter(|(_, h)| !**h)
        .map(|(p, _)| p.name.clone())
        .collect();
    let Some(fewest) = candidates.iter().map(|c| c.2).min() else {
        return out;
    };
    let mut options = Vec::with_capacity(candidates.len());
    let mut desired = HashMap::with_capacity(candidates.len());
    for (option, from, failures) in candidates {
        if failures > fewest {
            out.skipped.insert(
                option.node_group_id.clone(),
                Skip::FailedBefore { failures },
            );
            continue;
        }
        out.options.insert(
            option.node_group_id.clone(),
            (option.node_count, option.pods.len()),
        );
        desired.insert(option.node_group_id.clone(), from);
        options.push(option);
    }
    let templates: HashMap<String, NodeTemplate> = groups
        .iter()
        .filter(|g| desired.contains_key(&g.id))
        .map(|g| (g.id.clone(), g.template.clone()))
        .collect();
    let ctx = ExpansionContext {
        templates: &templates,
        cluster_node_count: input.registered_nodes + upcoming_nodes,
        seed: input.seed,
    };
    let decision = chain.decide(&options, &ctx);
    out.steps = decision.steps;
    if let Some(chosen) = decision.chosen {
        let from = desired.get(&chosen.node_group_id).copied().unwrap_or(0);
        out.scale_up = Some(ScaleUp {
            group: chosen.node_group_id.clone(),
            from,
            to: from.saturating_add(chosen.node_count),
            pods: chosen.pods.iter().map(|p| p.name.clone()).collect(),
        });
    }
    out
}

/// Timing of the provisioning tracker, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffConfig {
    /// Requested nodes that have not registered after this long time out
    /// (CA's `--max-node-provision-time`, 15m).
    pub max_provision_secs: u64,
    /// First backoff (CA's `--initial-node-group-backoff-duration`, 5m).
    pub initial_secs: u64,
    /// Longest backoff (CA's `--max-node-group-backoff-duration`, 30m).
    pub max_secs: u64,
    /// Failures are forgotten this long after the last one
    /// (CA's `--node-group-backoff-reset-timeout`, 3h).
    pub reset_secs: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            max_provision_secs: 15 * 60,
            initial_secs: 5 * 60,
            max_secs: 30 * 60,
            reset_secs: 3 * 3600,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Track {
    /// Waiting since, for this desired capacity.
    waiting: Option<(u64, u32)>,
    /// Gave up on nodes for this desired capacity.
    given_up_at: Option<u32>,
    backoff_until: u64,
    failures: u32,
    last_failure: u64,
}

/// What [`Provisioning::observe`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observation {
    /// Every requested node is registered.
    Complete,
    /// Nodes are on their way, within the provision time.
    Waiting,
    /// The nodes did not arrive in time: the group is now backed off.
    TimedOut {
        /// Consecutive recent failures, this one included.
        failures: u32,
        /// Backed off until (seconds, the caller's clock).
        until: u64,
    },
    /// Still timed out from an earlier observation.
    GivenUp,
}

/// Tracks, per group, whether requested nodes arrive in time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioning {
    config: BackoffConfig,
    groups: BTreeMap<String, Track>,
}

impl Provisioning {
    /// An empty tracker.
    #[must_use]
    pub fn new(config: BackoffConfig) -> Self {
        Provisioning {
            config,
            groups: BTreeMap::new(),
        }
    }

    /// Feeds one observation of a group (at `now`, seconds).
    pub fn observe(&mut self, id: &str, desired: u32, registered: u32, now: u64) -> Observation {
        let config = self.config;
        let t = self.groups.entry(id.to_owned()).or_default();
        if t.failures > 0 && now >= t.last_failure.saturating_add(config.reset_secs) {
            t.failures = 0;
        }
        if registered >= desired {
            if t.waiting.take().is_some() {
                // Nodes arrived: the group works again.
                t.failures = 0;
            }
            t.given_up_at = None;
            return Observation::Complete;
        }
        if t.given_up_at == Some(desired) {
            return Observation::GivenUp;
        }
        t.given_up_at = None;
        let since = match t.waiting {
            Some((since, d)) if d == desired => since,
            // A new request restarts the clock.
            _ => {
                t.waiting = Some((now, desired));
                now
            }
        };
        if now.saturating_sub(since) < config.max_provision_secs {
            return Observation::Waiting;
        }
        t.waiting = None;
        t.given_up_at = Some(desired);
        t.failures = t.failures.saturating_add(1);
        t.last_failure = now;
        let shift = (t.failures - 1).min(20);
        let backoff = config
            .initial_secs
            .saturating_mul(1u64 << shift)
            .min(config.max_secs);
        t.backoff_until = now.saturating_add(backoff);
        Observation::TimedOut {
            failures: t.failures,
            until: t.backoff_until,
        }
    }

    /// Records a scale-up just applied, so the clock starts now.
    pub fn scaled_up(&mut self, id: &str, desired: u32, now: u64) {
        let t = self.groups.entry(id.to_owned()).or_default();
        t.waiting = Some((now, desired));
        t.given_up_at = None;
    }

    /// The group as the planner needs it.
    #[must_use]
    pub fn health(&self, id: &str, now: u64) -> GroupHealth {
        let Some(t) = self.groups.get(id) else {
            return GroupHealth::default();
        };
        let failures =
            if t.failures > 0 && now < t.last_failure.saturating_add(self.config.reset_secs) {
                t.failures
            } else {
                0
            };
        GroupHealth {
            backed_off: now < t.backoff_until,
            given_up: t.given_up_at.is_some(),
            failures,
        }
    }

    /// Forgets groups no longer discovered.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.groups.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CapacityType;
    use crate::expander::{ChainConfig, PriorityFilter};
    use crate::scheduling::{Taint, TaintEffect, Toleration, TolerationOperator};
    use rstest::rstest;

    const GIB: i64 = 1 << 30;

    fn template(cpu: i64, mem_gib: i64) -> NodeTemplate {
        NodeTemplate {
            capacity: Resources::new(cpu, mem_gib * GIB),
            allocatable: Resources::new(cpu, mem_gib * GIB),
            max_pods: 110,
            exists: true,
            ..NodeTemplate::default()
        }
    }

    fn group(id: &str, desired: u32, registered: u32, max: u32, t: NodeTemplate) -> GroupState {
        GroupState {
            id: id.into(),
            min: 0,
            max,
            desired,
            registered,
            template: t,
            health: GroupHealth::default(),
        }
    }

    fn pods(n: usize, cpu: i64, mem_gib: i64) -> Vec<PodRequest> {
        (0..n)
            .map(|i| PodRequest::new(format!("ns/p{i}"), Resources::new(cpu, mem_gib * GIB)))
            .collect()
    }

    const NO_CAPS: ClusterCaps = ClusterCaps {
        max_cores: 320_000,
        max_memory_gib: 6_400_000,
    };

    fn input<'a>(groups: &'a [GroupState], pending: &'a [PodRequest]) -> PlanInput<'a> {
        PlanInput {
            groups,
            pending,
            registered_capacity: Resources::ZERO,
            registered_nodes: 0,
            caps: NO_CAPS,
            expendable_cutoff: DEFAULT_EXPENDABLE_CUTOFF,
            seed: 1,
        }
    }

    fn chain(spec: &str) -> Chain {
        Chain::build(spec, &ChainConfig::default()).unwrap()
    }

    #[test]
    fn grows_the_least_wasteful_group_by_the_packed_node_count() {
        let groups = [
            group("big", 1, 1, 10, template(8000, 32)),
            group("small", 1, 1, 10, template(2000, 8)),
        ];
        let p = pods(6, 1500, 2);
        let plan = plan(&input(&groups, &p), &chain("least-waste"));
        assert_eq!(plan.options["small"], (6, 6));
        assert_eq!(plan.options["big"], (2, 6));
        // small: 0.25 + 0.75 = 1.0; big (16 cores, 64 GiB for 9 cores, 12 GiB): 1.25.
        let up = plan.scale_up.unwrap();
        assert_eq!((up.group.as_str(), up.from, up.to), ("small", 1, 7));
        assert_eq!(up.pods.len(), 6);
        assert!(plan.unhelped.is_empty());
    }

    #[rstest]
    // MaxSize bounds the nodes asked for: 3 more at most, 3 pods helped.
    #[case(7, NO_CAPS, Some((7, 10)), 3)]
    // Already at MaxSize.
    #[case(10, NO_CAPS, None, 6)]
    // One registered 4-core node; a 16-core cap leaves room for 3 more.
    #[case(3, ClusterCaps { max_cores: 16, max_memory_gib: 1000 }, Some((3, 6)), 3)]
    // 16 GiB registered; an 80 GiB cap leaves room for 4 more.
    #[case(3, ClusterCaps { max_cores: 1000, max_memory_gib: 80 }, Some((3, 7)), 2)]
    // No room at all.
    #[case(3, ClusterCaps { max_cores: 4, max_memory_gib: 1000 }, None, 6)]
    fn bounds(
        #[case] desired: u32,
        #[case] caps: ClusterCaps,
        #[case] expected: Option<(u32, u32)>,
        #[case] unhelped: usize,
    ) {
        // One pod per node: 4-core nodes, 3-core pods.
        let groups = [group("g", desired, desired, 10, template(4000, 16))];
        let p = pods(6, 3000, 1);
        let mut i = input(&groups, &p);
        i.caps = caps;
        i.registered_capacity = Resources::new(4000, 16 * GIB);
        let plan = plan(&i, &chain("least-waste"));
        assert_eq!(plan.scale_up.as_ref().map(|u| (u.from, u.to)), expected);
        assert_eq!(plan.unhelped.len(), unhelped, "{plan:?}");
        if expected.is_none() {
            assert!(plan.skipped.contains_key("g"));
        }
    }

    #[test]
    fn expendable_pods_never_trigger_a_scale_up() {
        let groups = [group("g", 0, 0, 10, template(4000, 16))];
        let mut p = pods(3, 1000, 1);
        p[0].priority = -11;
        p[1].priority = -100;
        p[2].priority = -10; // at the cutoff: not expendable
        let plan = plan(&input(&groups, &p), &chain("least-waste"));
        assert_eq!((plan.expendable, plan.pending), (2, 1));
        assert_eq!(plan.scale_up.unwrap().pods, vec!["ns/p2"]);
        p[2].priority = -11;
        let plan2 = super::plan(&input(&groups, &p), &chain("least-waste"));
        assert_eq!(plan2.scale_up, None);
    }

    #[test]
    fn upcoming_nodes_make_a_second_run_idempotent() {
        let p = pods(4, 1500, 1);
        let before = [group("g", 1, 1, 10, template(4000, 16))];
        let first = plan(&input(&before, &p), &chain("least-waste"));
        let up = first.scale_up.unwrap();
        assert_eq!((up.from, up.to), (1, 3));
        // Same pods, desired raised, nodes not registered yet: nothing more.
        let after = [group("g", 3, 1, 10, template(4000, 16))];
        let second = plan(&input(&after, &p), &chain("least-waste"));
        assert_eq!(second.scale_up, None);
        assert_eq!(second.on_upcoming, 4);
        // Once given up on, the pods need a new option again.
        let mut given_up = after.clone();
        given_up[0].health.given_up = true;
        let third = plan(&input(&given_up, &p), &chain("least-waste"));
        assert_eq!(third.scale_up.map(|u| (u.from, u.to)), Some((3, 5)));
    }

    #[test]
    fn constraints_decide_which_groups_can_take_pods() {
        let mut gpu = template(8000, 32);
        gpu.taints = vec![Taint {
            key: "gpu".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        }];
        let mut labelled = template(4000, 16);
        labelled.labels.insert("pool".into(), "batch".into());
        let groups = [
            group("gpu", 0, 0, 5, gpu),
            group("batch", 0, 0, 5, labelled),
            group("plain", 0, 0, 5, template(4000, 16)),
        ];
        let mut p = pods(2, 1000, 1);
        p[0].node_selector.insert("pool".into(), "batch".into());
        p[1].tolerations = vec![Toleration {
            key: "gpu".into(),
            operator: TolerationOperator::Exists,
            ..Toleration::default()
        }];
        let plan = plan(&input(&groups, &p), &chain("most-pods"));
        assert_eq!(plan.options["gpu"], (1, 1));
        assert_eq!(plan.options["batch"], (1, 2));
        assert_eq!(plan.options["plain"], (1, 1));
        assert_eq!(plan.scale_up.unwrap().group, "batch");
    }

    fn spot_and_on_demand() -> Vec<GroupState> {
        let mut spot = template(4000, 16);
        spot.price.capacity_type = CapacityType::Spot;
        vec![
            group("spot-a", 0, 0, 10, spot.clone()),
            group("spot-b", 0, 0, 10, spot),
            group("on-demand", 0, 0, 10, template(4000, 16)),
        ]
    }

    fn priority_chain() -> Chain {
        let config = ChainConfig {
            priorities: Some(
                PriorityFilter::from_yaml("50:\n  - spot-a\n40:\n  - spot-b\n10:\n  - on-demand\n")
                    .unwrap(),
            ),
            ..ChainConfig::default()
        };
        Chain::build("priority", &config).unwrap()
    }

    /// The spot → on-demand fallback: each spot group that fails to deliver
    /// is backed off, and a failed group is not retried while a group with
    /// fewer failures can take the pods, so the chain reaches on-demand
    /// instead of cycling between spot groups.
    #[test]
    fn spot_fallback_reaches_on_demand_without_cycling() {
        let config = BackoffConfig::default();
        let mut tracker = Provisioning::new(config);
        let mut groups = spot_and_on_demand();
        let mut p = pods(1, 1000, 1);
        let chain = priority_chain();
        let mut now = 0u64;
        let mut picks = Vec::new();
        for _ in 0..6 {
            for g in &mut groups {
                tracker.observe(&g.id, g.desired, g.registered, now);
                g.health = tracker.health(&g.id, now);
            }
            let plan = plan(&input(&groups, &p), &chain);
            if let Some(up) = plan.scale_up {
                picks.push(up.group.clone());
                let g = groups.iter_mut().find(|g| g.id == up.group).unwrap();
                g.desired = up.to;
                tracker.scaled_up(&g.id, g.desired, now);
                if g.id == "on-demand" {
                    // On-demand capacity arrives and the pod runs there.
                    g.registered = g.desired;
                    p.clear();
                }
            }
            now += config.max_provision_secs;
        }
        assert_eq!(picks, vec!["spot-a", "spot-b", "on-demand"]);
    }

    #[test]
    fn provisioning_times_out_backs_off_and_resets() {
        let config = BackoffConfig {
            max_provision_secs: 900,
            initial_secs: 300,
            max_secs: 1800,
            reset_secs: 10_800,
        };
        let mut t = Provisioning::new(config);
        assert_eq!(t.observe("g", 2, 2, 0), Observation::Complete);
        t.scaled_up("g", 3, 10);
        assert_eq!(t.observe("g", 3, 2, 100), Observation::Waiting);
        assert_eq!(
            t.observe("g", 3, 2, 910),
            Observation::TimedOut {
                failures: 1,
                until: 1210
            }
        );
        let h = t.health("g", 911);
        assert!(h.backed_off && h.given_up);
        assert_eq!(h.failures, 1);
        assert_eq!(t.observe("g", 3, 2, 1000), Observation::GivenUp);
        assert!(!t.health("g", 1210).backed_off);
        // Asked again: a second failure doubles the backoff.
        t.scaled_up("g", 4, 1300);
        assert_eq!(
            t.observe("g", 4, 2, 2200),
            Observation::TimedOut {
                failures: 2,
                until: 2800
            }
        );
        // Capped at max_secs.
        for k in 0..4u64 {
            t.scaled_up("g", 5 + u32::try_from(k).unwrap(), 3000 + k * 1000);
            t.observe("g", 5 + u32::try_from(k).unwrap(), 2, 3900 + k * 1000);
        }
        let h = t.health("g", 6900);
        assert!(h.backed_off);
        assert_eq!(h.failures, 6);
        // Forgotten after the reset timeout.
        assert_eq!(t.health("g", 6900 + 10_800).failures, 0);
        // Arrival clears failures.
        t.scaled_up("g", 9, 7000);
        assert_eq!(t.observe("g", 9, 9, 7100), Observation::Complete);
        assert_eq!(
            t.health("g", 7100),
            GroupHealth::default().with_backoff(true)
        );
    }

    impl GroupHealth {
        fn with_backoff(mut self, b: bool) -> Self {
            self.backed_off = b;
            self
        }
    }
}
