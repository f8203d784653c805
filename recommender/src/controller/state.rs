//! The controller's cluster state: which running container feeds which
//! (VPA, container name) aggregate, and the aggregates themselves. Pure: the
//! caller passes in pods, samples and the time.
//!
//! Keying. Upstream keys aggregates by (namespace, pod label set, container
//! name) and merges those a VPA selects when it recommends. Tailor keys them by
//! (VPA, container name) directly — the key of upstream's checkpoints — so a
//! checkpoint loads into exactly one aggregate and a recommendation needs no
//! merge. A pod matched by two VPAs feeds the first in `namespace/name` order
//! (upstream leaves that case undefined and warns).

use crate::prom::{ContainerKey, History};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tailor_core::recommender::{
    AggregateContainerState, ContainerCheckpoint, ContainerState, RecommenderError,
    RecommenderOptions, Timestamp,
};
use tailor_core::resources::Resources;

/// A VPA: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VpaKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl VpaKey {
    /// A key from its parts.
    #[must_use]
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        VpaKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for VpaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One aggregate: a VPA and a container name (the checkpoint's key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AggregateKey {
    /// The VPA.
    pub vpa: VpaKey,
    /// The container name.
    pub container: String,
}

/// A running container as the controller sees it: where it reports and its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedContainer {
    /// Namespace, pod and container name (as in the Prometheus series).
    pub key: ContainerKey,
    /// The VPA it belongs to.
    pub vpa: VpaKey,
    /// Its current requests (CPU samples are weighted by them).
    pub request: Resources,
}

/// What happened to the samples given to [`ClusterState::add_history`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// CPU samples aggregated.
    pub cpu: u64,
    /// Memory samples aggregated.
    pub memory: u64,
    /// NaN, infinite or negative samples, skipped.
    pub invalid: u64,
    /// Duplicate or out-of-order samples, dropped.
    pub dropped: u64,
    /// Samples of containers no VPA tracks, ignored.
    pub untracked: u64,
}

impl std::ops::AddAssign for SampleStats {
    fn add_assign(&mut self, o: Self) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        self.invalid += o.invalid;
        self.dropped += o.dropped;
        self.untracked += o.untracked;
    }
}

/// An OOM kill seen in a pod's status (see [`super::oom`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomEvent {
    /// Namespace, pod and container.
    pub container: ContainerKey,
    /// When the killed container finished.
    pub timestamp: Timestamp,
    /// The container's memory request then, bytes (0 when none).
    pub memory_request_bytes: i64,
}

/// What became of the OOM kills given to [`ClusterState::record_ooms`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OomStats {
    /// Recorded as memory samples (the bump).
    pub recorded: u64,
    /// Of a container no VPA tracks, ignored.
    pub untracked: u64,
    /// Older than the container's current memory aggregation interval, or
    /// with a negative request: discarded (as upstream).
    pub discarded: u64,
}

#[derive(Clone, Debug)]
struct Tracked {
    aggregate: AggregateKey,
    state: ContainerState,
}

/// Every tracked container and aggregate.
#[derive(Debug)]
pub struct ClusterState {
    options: RecommenderOptions,
    aggregates: BTreeMap<AggregateKey, AggregateContainerState>,
    containers: HashMap<ContainerKey, Tracked>,
    // Aggregates restored from a checkpoint take no sample at or before the
    // checkpoint's last sample: Prometheus history would count it twice.
    cutoffs: HashMap<AggregateKey, Timestamp>,
}

/// `key`'s aggregate, created empty when it has none yet. The key is cloned
/// only then. A free function so callers can hold other fields of the state
/// borrowed meanwhile.
fn aggregate_entry<'m>(
    aggregates: &'m mut BTreeMap<AggregateKey, AggregateContainerState>,
    options: &RecommenderOptions,
    key: &AggregateKey,
    now: Timestamp,
) -> Result<&'m mut AggregateContainerState, RecommenderError> {
    if !aggregates.contains_key(key) {
        let state = AggregateContainerState::new(&options.aggregation, now)?;
        aggregates.insert(key.clone(), state);
    }
    aggregates
        .get_mut(key)
        .ok_or(RecommenderError::IncompatibleHistograms {
            reason: "aggregate vanished while inserting",
        })
}

impl ClusterState {
    /// An empty state.
    ///
    /// # Errors
    /// Invalid options (checked once here so every later step can rely on them).
    pub fn new(options: RecommenderOptions) -> Result<Self, RecommenderError> {
        options.validate()?;
        Ok(ClusterState {
            options,
            aggregates: BTreeMap::new(),
            containers: HashMap::new(),
            cutoffs: HashMap::new(),
        })
    }

    /// The options the state was built with.
    #[must_use]
    pub fn options(&self) -> &RecommenderOptions {
        &self.options
    }

    /// Number of aggregates.
    #[must_use]
    pub fn aggregate_count(&self) -> usize {
        self.aggregates.len()
    }

    /// Number of tracked containers.
    #[must_use]
    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    fn aggregate_mut(
        &mut self,
        key: &AggregateKey,
        now: Timestamp,
    ) -> Result<&mut AggregateContainerState, RecommenderError> {
        aggregate_entry(&mut self.aggregates, &self.options, key, now)
    }

    /// Replaces the set of running containers: new ones start tracking, known
    /// ones get their current requests (and VPA), vanished ones are forgotten.
    /// Their aggregates stay (history outlives pods). Creates an empty
    /// aggregate for every (VPA, container) seen, so a VPA whose pods have no
    /// samples yet still has its containers listed.
    ///
    /// # Errors
    /// Only when the options cannot build a histogram (already validated).
    pub fn sync_containers<'a>(
        &mut self,
        observed: impl IntoIterator<Item = &'a ObservedContainer>,
        now: Timestamp,
    ) -> Result<(), RecommenderError> {
        // Keys are borrowed and cloned only for containers seen for the first
        // time: every loop passes every running container through here, and
        // cloning their names each time was most of a loop's transient memory.
        let mut seen: HashSet<&ContainerKey> = HashSet::new();
        let ClusterState {
            options,
            aggregates,
            containers,
            ..
        } = self;
        for c in observed {
            seen.insert(&c.key);
            match containers.get_mut(&c.key) {
                Some(t) if t.aggregate.vpa == c.vpa && t.aggregate.container == c.key.container => {
                    t.state.request = c.request;
                    aggregate_entry(aggregates, options, &t.aggregate, now)?;
                }
                _ => {
                    let aggregate = AggregateKey {
                        vpa: c.vpa.clone(),
                        container: c.key.container.clone(),
                    };
                    aggregate_entry(aggregates, options, &aggregate, now)?;
                    let state = ContainerState::new(c.request, &options.aggregation);
                    containers.insert(c.key.clone(), Tracked { aggregate, state });
                }
            }
        }
        containers.retain(|k, _| seen.contains(k));
        Ok(())
    }

    /// Adds usage samples to the tracked containers' aggregates. Samples of a
    /// container not tracked go to `resolve(key)`'s aggregate when it names one
    /// (the initial history load, for pods that no longer run), else are
    /// counted as untracked. Bad samples are counted, never aggregated.
    ///
    /// # Errors
    /// Only when the options cannot build a histogram (already validated).
    pub fn add_history(
        &mut self,
        history: &History,
        mut resolve: impl FnMut(&ContainerKey) -> Option<(VpaKey, Resources)>,
        now: Timestamp,
    ) -> Result<SampleStats, RecommenderError> {
        let mut stats = SampleStats::default();
        let keys: BTreeSet<&ContainerKey> =
            history.cpu.keys().chain(history.memory.keys()).collect();
        let empty: Vec<(Timestamp, f64)> = Vec::new();
        for key in keys {
            let cpu = history.cpu.get(key).unwrap_or(&empty);
            let memory = history.memory.get(key).unwrap_or(&empty);
            // A container that is not running gets a throw-away window state.
            let mut temporary;
            let tracked = match self.containers.get_mut(key) {
                Some(t) => t,
                None => match resolve(key) {
                    Some((vpa, request)) => {
                        temporary = Tracked {
                            aggregate: AggregateKey {
                                vpa,
                                container: key.container.clone(),
                            },
                            state: ContainerState::new(request, &self.options.aggregation),
                        };
                        &mut temporary
                    }
                    None => {
                        stats.untracked += (cpu.len() + memory.len()) as u64;
                        continue;
                    }
                },
            };
            let aggregate_key = tracked.aggregate.clone();
            let mut state = tracked.state.clone();
            let cutoff = self.cutoffs.get(&aggregate_key).copied();
            let (cpu, memory) = match cutoff {
                Some(c) => {
                    let (old_cpu, new_cpu) = split_at_cutoff(cpu, c);
                    let (old_mem, new_mem) = split_at_cutoff(memory, c);
                    stats.dropped += (old_cpu + old_mem) as u64;
                    (new_cpu, new_mem)
                }
                None => (cpu.as_slice(), memory.as_slice()),
            };
            let aggregate = self.aggregate_mut(&aggregate_key, now)?;
            for &(t, v) in cpu {
                match state.add_cpu_sample(aggregate, t, v) {
                    Ok(true) => stats.cpu += 1,
                    Ok(false) => stats.dropped += 1,
                    Err(_) => stats.invalid += 1,
                }
            }
            for &(t, v) in memory {
                match state.add_memory_sample(aggregate, t, v) {
                    Ok(true) => stats.memory += 1,
                    Ok(false) => stats.dropped += 1,
                    Err(_) => stats.invalid += 1,
                }
            }
            if let Some(t) = self.containers.get_mut(key) {
                t.state = state;
            }
        }
        Ok(stats)
    }

    /// Records OOM kills of tracked containers: the container's memory need
    /// (its request or the interval's peak, bumped) becomes the interval's
    /// memory sample, as upstream's recommender does. Call after the
    /// containers are synced and the samples added.
    pub fn record_ooms(&mut self, ooms: &[OomEvent]) -> OomStats {
        let mut stats = OomStats::default();
        for oom in ooms {
            let Some(tracked) = self.containers.get_mut(&oom.container) else {
                stats.untracked += 1;
                continue;
            };
            let Some(aggregate) = self.aggregates.get_mut(&tracked.aggregate) else {
                stats.untracked += 1;
                continue;
            };
            match tracked
                .state
                .record_oom(aggregate, oom.timestamp, oom.memory_request_bytes)
            {
                Ok(()) => stats.recorded += 1,
                Err(e) => {
                    stats.discarded += 1;
                    tracing::debug!(container = ?oom.container, error = %e, "OOM discarded");
                }
            }
        }
        stats
    }

    /// Loads a checkpoint into the (VPA, container) aggregate, replacing what
    /// it held; rejected checkpoints change nothing.
    ///
    /// # Errors
    /// An unsupported version or malformed histogram.
    pub fn load_checkpoint(
        &mut self,
        key: &AggregateKey,
        checkpoint: &ContainerCheckpoint,
        now: Timestamp,
    ) -> Result<(), RecommenderError> {
        let mut state = AggregateContainerState::new(&self.options.aggregation, now)?;
        state.load_checkpoint(checkpoint)?;
        match state.last_sample_start {
            Some(t) => self.cutoffs.insert(key.clone(), t),
            None => self.cutoffs.remove(key),
        };
        self.aggregates.insert(key.clone(), state);
        Ok(())
    }

    /// The aggregates of one VPA, by container name.
    #[must_use]
    pub fn aggregates_of(&self, vpa: &VpaKey) -> BTreeMap<String, AggregateContainerState> {
        self.aggregates
            .range(aggregate_range(vpa))
            .map(|(k, s)| (k.container.clone(), s.clone()))
            .collect()
    }

    /// Every aggregate key (for checkpoints).
    pub fn aggregate_keys(&self) -> impl Iterator<Item = &AggregateKey> {
        self.aggregates.keys()
    }

    /// The checkpoint of one aggregate, stamped `now`.
    #[must_use]
    pub fn checkpoint(&self, key: &AggregateKey, now: Timestamp) -> Option<ContainerCheckpoint> {
        self.aggregates
            .get(key)
            .map(|s| s.save_checkpoint(Some(now)))
    }

    /// Garbage collection: drops aggregates of VPAs not in `live_vpas`, and
    /// aggregates no running container feeds that saw no sample for a whole
    /// memory aggregation window (as upstream). Returns the dropped keys.
    pub fn garbage_collect(
        &mut self,
        live_vpas: &BTreeSet<VpaKey>,
        now: Timestamp,
    ) -> Vec<AggregateKey> {
        let fed: BTreeSet<&AggregateKey> = self.containers.values().map(|t| &t.aggregate).collect();
        let window = self.options.aggregation.memory_aggregation_interval_secs
            * self.options.aggregation.memory_aggregation_interval_count;
        let dropped: Vec<AggregateKey> = self
            .aggregates
            .iter()
            .filter(|(k, s)| {
                !live_vpas.contains(&k.vpa) || (!fed.contains(k) && s.is_expired(now, window))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &dropped {
            self.aggregates.remove(k);
            self.cutoffs.remove(k);
        }
        self.containers
            .retain(|_, t| live_vpas.contains(&t.aggregate.vpa));
        dropped
    }

    /// Heap bytes held by the aggregates' histograms (a lower bound of the
    /// state's memory; the RSS example measures the whole process).
    #[must_use]
    pub fn histogram_heap_bytes(&self) -> usize {
        self.aggregates
            .values()
            .map(AggregateContainerState::heap_bytes)
            .sum()
    }
}

/// Samples at or before `cutoff` (counted) and the rest (time-ordered input).
fn split_at_cutoff(
    samples: &[(Timestamp, f64)],
    cutoff: Timestamp,
) -> (usize, &[(Timestamp, f64)]) {
    let n = samples.partition_point(|&(t, _)| t <= cutoff);
    (n, &samples[n..])
}

fn aggregate_range(vpa: &VpaKey) -> std::ops::RangeInclusive<AggregateKey> {
    // Container names are non-empty DNS labels, so "" sorts first and any
    // name is below "\u{10FFFF}".
    AggregateKey {
        vpa: vpa.clone(),
        container: String::new(),
    }..=AggregateKey {
        vpa: vpa.clone(),
        container: "\u{10FFFF}".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const T0: Timestamp = 1_700_000_000;

    fn ck(ns: &str, pod: &str, c: &str) -> ContainerKey {
        ContainerKey {
            namespace: ns.into(),
            pod: pod.into(),
            container: c.into(),
        }
    }

    fn observed(pod: &str, c: &str, vpa: &str) -> ObservedContainer {
        ObservedContainer {
            key: ck("shop", pod, c),
            vpa: VpaKey::new("shop", vpa),
            request: Resources::new(500, 256 << 20),
        }
    }

    fn state() -> ClusterState {
        ClusterState::new(RecommenderOptions::default()).unwrap()
    }

    fn history(key: &ContainerKey, cpu: &[(Timestamp, f64)], mem: &[(Timestamp, f64)]) -> History {
        let mut h = History::default();
        h.cpu.insert(key.clone(), cpu.to_vec());
        h.memory.insert(key.clone(), mem.to_vec());
        h
    }

    #[test]
    fn samples_of_tracked_containers_reach_their_vpa_aggregate() {
        let mut s = state();
        s.sync_containers(
            &[
                observed("web-0", "app", "web"),
                observed("web-0", "proxy", "web"),
            ],
            T0,
        )
        .unwrap();
        let h = history(
            &ck("shop", "web-0", "app"),
            &[(T0, 0.5), (T0 + 60, 0.7)],
            &[(T0, 1e8)],
        );
        let stats = s.add_history(&h, |_| None, T0).unwrap();
        assert_eq!(stats.cpu, 2);
        assert_eq!(stats.memory, 1);
        let aggs = s.aggregates_of(&VpaKey::new("shop", "web"));
        assert_eq!(aggs.keys().collect::<Vec<_>>(), ["app", "proxy"]);
        assert_eq!(aggs["app"].total_samples_count, 2);
        assert_eq!(aggs["proxy"].total_samples_count, 0);
        assert!(s.aggregates_of(&VpaKey::new("shop", "we")).is_empty());
        assert!(s.aggregates_of(&VpaKey::new("shop", "web2")).is_empty());
    }

    #[rstest]
    #[case(f64::NAN)]
    #[case(-1.0)]
    #[case(f64::INFINITY)]
    fn bad_samples_are_counted_not_aggregated(#[case] bad: f64) {
        let mut s = state();
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        let h = history(
            &ck("shop", "web-0", "app"),
            &[(T0, bad), (T0 + 60, 0.2)],
            &[(T0, bad)],
        );
        let stats = s.add_history(&h, |_| None, T0).unwrap();
        assert_eq!((stats.cpu, stats.memory, stats.invalid), (1, 0, 2));
        assert_eq!(
            s.aggregates_of(&VpaKey::new("shop", "web"))["app"].total_samples_count,
            1
        );
    }

    #[test]
    fn repeated_samples_are_dropped_across_calls() {
        let mut s = state();
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        let h = history(
            &ck("shop", "web-0", "app"),
            &[(T0, 0.5), (T0 + 60, 0.5)],
            &[],
        );
        s.add_history(&h, |_| None, T0).unwrap();
        let again = s.add_history(&h, |_| None, T0).unwrap();
        assert_eq!((again.cpu, again.dropped), (0, 2));
    }

    #[test]
    fn untracked_samples_use_the_resolver_or_are_counted() {
        let mut s = state();
        let gone = ck("shop", "web-old", "app");
        let h = history(&gone, &[(T0, 0.5)], &[(T0, 1e8)]);
        let stats = s.add_history(&h, |_| None, T0).unwrap();
        assert_eq!(stats.untracked, 2);
        assert_eq!(s.aggregate_count(), 0);
        let stats = s
            .add_history(
                &h,
                |_| Some((VpaKey::new("shop", "web"), Resources::new(100, 0))),
                T0,
            )
            .unwrap();
        assert_eq!((stats.cpu, stats.memory), (1, 1));
        assert_eq!(s.container_count(), 0, "a resolved dead pod is not tracked");
        assert_eq!(
            s.aggregates_of(&VpaKey::new("shop", "web"))["app"].total_samples_count,
            1
        );
    }

    #[test]
    fn vanished_pods_are_forgotten_but_history_stays() {
        let mut s = state();
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        s.add_history(
            &history(&ck("shop", "web-0", "app"), &[(T0, 0.5)], &[]),
            |_| None,
            T0,
        )
        .unwrap();
        s.sync_containers(&[], T0 + 60).unwrap();
        assert_eq!(s.container_count(), 0);
        assert_eq!(s.aggregate_count(), 1);
    }

    #[test]
    fn gc_drops_deleted_vpas_and_expired_unfed_aggregates() {
        let mut s = state();
        s.sync_containers(
            &[
                observed("web-0", "app", "web"),
                observed("db-0", "db", "db"),
                observed("old-0", "x", "old"),
            ],
            T0,
        )
        .unwrap();
        for key in [ck("shop", "web-0", "app"), ck("shop", "old-0", "x")] {
            s.add_history(&history(&key, &[(T0, 0.5)], &[]), |_| None, T0)
                .unwrap();
        }
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        let live: BTreeSet<VpaKey> =
            [VpaKey::new("shop", "web"), VpaKey::new("shop", "old")].into();
        // Within the window: only the deleted VPA's aggregate goes.
        let dropped = s.garbage_collect(&live, T0 + 3600);
        assert_eq!(
            dropped,
            vec![AggregateKey {
                vpa: VpaKey::new("shop", "db"),
                container: "db".into()
            }]
        );
        // Eight days on, the unfed one expires; the fed one stays.
        let dropped = s.garbage_collect(&live, T0 + 8 * 86_400);
        assert_eq!(
            dropped,
            vec![AggregateKey {
                vpa: VpaKey::new("shop", "old"),
                container: "x".into()
            }]
        );
        assert_eq!(s.aggregate_count(), 1);
    }

    #[test]
    fn ooms_bump_the_tracked_containers_memory_and_others_are_counted() {
        let mut s = state();
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        // 200 MiB used; the request is 256 MiB (see `observed`).
        s.add_history(
            &history(&ck("shop", "web-0", "app"), &[], &[(T0, 200.0 * 1048576.0)]),
            |_| None,
            T0,
        )
        .unwrap();
        let peak = |s: &ClusterState| {
            s.aggregates_of(&VpaKey::new("shop", "web"))["app"]
                .memory_peaks
                .percentile(1.0)
        };
        let before = peak(&s);
        let oom = |pod: &str, at: Timestamp| OomEvent {
            container: ck("shop", pod, "app"),
            timestamp: at,
            memory_request_bytes: 256 << 20,
        };
        let stats = s.record_ooms(&[
            oom("web-0", T0 + 60),
            oom("gone-0", T0 + 60),
            // Before the current memory aggregation interval (a day).
            oom("web-0", T0 - 2 * 86_400),
        ]);
        assert_eq!(
            stats,
            OomStats {
                recorded: 1,
                untracked: 1,
                discarded: 1
            }
        );
        // max(256 MiB + 100 MiB, 256 MiB × 1.2) = 356 MiB replaces the 200 MiB peak.
        let after = peak(&s);
        assert!(before < 210.0 * 1048576.0, "{before}");
        assert!(after >= 356.0 * 1048576.0, "{after}");
    }

    #[test]
    fn checkpoint_round_trip_keeps_the_histograms() {
        let mut s = state();
        s.sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        let cpu: Vec<_> = (0..100)
            .map(|i| (T0 + i * 60, 0.1 + i as f64 * 0.01))
            .collect();
        s.add_history(
            &history(&ck("shop", "web-0", "app"), &cpu, &[(T0, 3e8)]),
            |_| None,
            T0,
        )
        .unwrap();
        let key = AggregateKey {
            vpa: VpaKey::new("shop", "web"),
            container: "app".into(),
        };
        let cp = s.checkpoint(&key, T0 + 6000).unwrap();
        let mut fresh = state();
        fresh.load_checkpoint(&key, &cp, T0 + 6000).unwrap();
        assert_eq!(fresh.checkpoint(&key, T0 + 6000).unwrap(), cp);
        let bad = ContainerCheckpoint {
            version: "v2".into(),
            ..cp
        };
        assert!(fresh.load_checkpoint(&key, &bad, T0).is_err());
        // The same history again (Prometheus after a restart) is not counted twice.
        fresh
            .sync_containers(&[observed("web-0", "app", "web")], T0)
            .unwrap();
        let mut again = cpu.clone();
        again.push((T0 + 7000, 0.3));
        let stats = fresh
            .add_history(
                &history(&ck("shop", "web-0", "app"), &again, &[(T0, 3e8)]),
                |_| None,
                T0,
            )
            .unwrap();
        assert_eq!((stats.cpu, stats.dropped), (1, 101));
        assert_eq!(
            fresh.aggregates_of(&VpaKey::new("shop", "web"))["app"].total_samples_count,
            101
        );
    }
}
