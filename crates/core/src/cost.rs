//! The cost model: node-type prices, per-vCPU and per-GiB rates, a pod's share
//! of its node, and the fluid lower bound on what a demand can cost.
//!
//! The fluid bound is the 2-resource linear programme
//! `min Σ pᵢxᵢ  s.t.  Σ Cᵢxᵢ ≥ c,  Σ Mᵢxᵢ ≥ m,  x ≥ 0` over node types `i`
//! (price `p`, CPU `C`, memory `M`), which any real packing can only match or
//! exceed. An optimal vertex uses at most two types.
//!
//! [`FluidLowerBound::new`] precomputes, once, the types that can ever be
//! optimal: each type's capacity bought per dollar is a point; only the points on
//! the upper-right convex hull of those points matter, sorted by the angle of
//! their CPU:memory mix. A query then binary-searches the hull for the two
//! neighbours that bracket the demand's mix and solves their 2×2 system:
//! `O(n log n)` setup, `O(log h)` per query (h = hull size, usually 2–5), no
//! allocation. [`fluid_lower_bound_exhaustive`] is the direct `O(n²)`
//! enumeration of single types and pairs, kept as the reference it is tested
//! against.

use serde::{Deserialize, Serialize};

use crate::resources::Resources;

/// Millicores in one vCPU.
pub const MILLIS_PER_VCPU: f64 = 1000.0;
/// Bytes in one GiB.
pub const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Seconds in one hour, for turning per-hour prices into per-step costs.
pub const SECONDS_PER_HOUR: f64 = 3600.0;

/// One purchasable node shape and its price.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeType {
    /// Instance type name (`m5.large`).
    pub name: String,
    /// Allocatable CPU, millicores.
    pub cpu_millis: i64,
    /// Allocatable memory, bytes.
    pub memory_bytes: i64,
    /// On-demand price, $/hour.
    pub price_per_hour: f64,
}

impl NodeType {
    /// The node's capacity as [`Resources`].
    #[must_use]
    pub fn capacity(&self) -> Resources {
        Resources::new(self.cpu_millis, self.memory_bytes)
    }

    fn validate(&self) -> Result<(), CostError> {
        if self.cpu_millis <= 0 || self.memory_bytes <= 0 {
            return Err(CostError::ZeroCapacity {
                name: self.name.clone(),
                cpu_millis: self.cpu_millis,
                memory_bytes: self.memory_bytes,
            });
        }
        if !(self.price_per_hour.is_finite() && self.price_per_hour > 0.0) {
            return Err(CostError::InvalidPrice {
                name: self.name.clone(),
                price_per_hour: self.price_per_hour,
            });
        }
        Ok(())
    }
}

/// Bad input to the cost model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CostError {
    /// No node types to price with.
    #[error("no node types given")]
    NoNodeTypes,
    /// A node type without CPU or memory cannot cover anything.
    #[error(
        "node type {name} has no capacity (cpu {cpu_millis}m, memory {memory_bytes} bytes); both must be positive"
    )]
    ZeroCapacity {
        /// The type.
        name: String,
        /// CPU given.
        cpu_millis: i64,
        /// Memory given.
        memory_bytes: i64,
    },
    /// A price that is zero, negative or not a number.
    #[error("node type {name} has price {price_per_hour} $/h; it must be finite and positive")]
    InvalidPrice {
        /// The type.
        name: String,
        /// Price given.
        price_per_hour: f64,
    },
    /// A negative demand.
    #[error("demand must be non-negative, got cpu {cpu_millis}m, memory {memory_bytes} bytes")]
    NegativeDemand {
        /// CPU given.
        cpu_millis: i64,
        /// Memory given.
        memory_bytes: i64,
    },
    /// A rate that is negative or not a number.
    #[error(
        "rates must be finite and non-negative, got {per_vcpu_hour} $/vCPU-h, {per_gib_hour} $/GiB-h"
    )]
    InvalidRates {
        /// Per-vCPU rate given.
        per_vcpu_hour: f64,
        /// Per-GiB rate given.
        per_gib_hour: f64,
    },
}

/// Prices of one vCPU-hour and one GiB-hour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// $ per vCPU per hour.
    pub per_vcpu_hour: f64,
    /// $ per GiB per hour.
    pub per_gib_hour: f64,
}

impl Rates {
    /// Explicit rates; both must be finite and non-negative.
    pub fn new(per_vcpu_hour: f64, per_gib_hour: f64) -> Result<Self, CostError> {
        let ok = |r: f64| r.is_finite() && r >= 0.0;
        if ok(per_vcpu_hour) && ok(per_gib_hour) {
            Ok(Rates {
                per_vcpu_hour,
                per_gib_hour,
            })
        } else {
            Err(CostError::InvalidRates {
                per_vcpu_hour,
                per_gib_hour,
            })
        }
    }

    /// Rates fitted to a catalog: the non-negative least-squares fit of
    /// `price ≈ a·vCPU + b·GiB` over its types, so a catalog priced linearly
    /// gives back its exact rates. `O(n)`.
    pub fn from_catalog(types: &[NodeType]) -> Result<Self, CostError> {
        if types.is_empty() {
            return Err(CostError::NoNodeTypes);
        }
        let (mut xx, mut xy, mut yy, mut xp, mut yp) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for t in types {
            t.validate()?;
            let x = t.cpu_millis as f64 / MILLIS_PER_VCPU;
            let y = t.memory_bytes as f64 / BYTES_PER_GIB;
            let p = t.price_per_hour;
            xx += x * x;
            xy += x * y;
            yy += y * y;
            xp += x * p;
            yp += y * p;
        }
        // Sum of squared errors of (a, b), expanded so it needs no second pass.
        let sse =
            |a: f64, b: f64| a * a * xx + b * b * yy + 2.0 * a * b * xy - 2.0 * (a * xp + b * yp);
        let det = xx * yy - xy * xy;
        // Relative threshold: proportional shapes make the system singular.
        if det > 1e-12 * xx * yy {
            let a = (xp * yy - yp * xy) / det;
            let b = (yp * xx - xp * xy) / det;
            if a >= 0.0 && b >= 0.0 {
                return Rates::new(a, b);
            }
        }
        // The constrained optimum lies on an axis: CPU only or memory only.
        let cpu_only = (xp / xx).max(0.0);
        let mem_only = (yp / yy).max(0.0);
        if sse(cpu_only, 0.0) <= sse(0.0, mem_only) {
            Rates::new(cpu_only, 0.0)
        } else {
            Rates::new(0.0, mem_only)
        }
    }

    /// What `amount` costs per hour at these rates.
    #[must_use]
    pub fn cost_per_hour(&self, amount: Resources) -> f64 {
        self.per_vcpu_hour * amount.cpu_millis as f64 / MILLIS_PER_VCPU
            + self.per_gib_hour * amount.memory_bytes as f64 / BYTES_PER_GIB
    }

    /// A pod's share of its node's price, $/hour: the node price times the pod's
    /// requests as a fraction of the node's capacity, CPU and memory weighted by
    /// these rates. Shares of a fully requested node add up to its price.
    #[must_use]
    pub fn pod_share_per_hour(&self, node: &NodeType, requests: Resources) -> f64 {
        let whole = self.cost_per_hour(node.capacity());
        if whole <= 0.0 {
            return 0.0;
        }
        node.price_per_hour * self.cost_per_hour(requests) / whole
    }
}

/// Part of a fluid mix: how many (fractional) nodes of which type.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MixPart {
    /// Index into the node types the bound was built from.
    pub type_index: usize,
    /// Fractional node count, ≥ 0.
    pub nodes: f64,
}

/// The cheapest fractional cover of one demand.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FluidMix {
    /// Its price, $/hour.
    pub cost_per_hour: f64,
    /// Up to two node types (none for a zero demand).
    pub parts: [Option<MixPart>; 2],
}

impl FluidMix {
    const ZERO: FluidMix = FluidMix {
        cost_per_hour: 0.0,
        parts: [None, None],
    };

    /// Capacity the mix buys, in (fractional) millicores and bytes.
    #[must_use]
    pub fn capacity(&self, types: &[NodeType]) -> (f64, f64) {
        self.parts
            .iter()
            .flatten()
            .filter_map(|p| types.get(p.type_index).map(|t| (t, p.nodes)))
            .fold((0.0, 0.0), |(c, m), (t, n)| {
                (c + n * t.cpu_millis as f64, m + n * t.memory_bytes as f64)
            })
    }
}

/// A hull vertex: one type's capacity per dollar.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    type_index: usize,
    cpu_per_dollar: f64,
    mem_per_dollar: f64,
    cpu: f64,
    mem: f64,
    price: f64,
}

/// The fluid lower bound for one set of node types, with the candidate types
/// precomputed so each query is `O(log h)` and allocation-free.
#[derive(Clone, Debug)]
pub struct FluidLowerBound {
    /// Upper-right hull, CPU-heaviest first (angle of (cpu, mem) increasing).
    hull: Vec<Candidate>,
}

fn demand_f64(demand: Resources) -> Result<(f64, f64), CostError> {
    if demand.cpu_millis < 0 || demand.memory_bytes < 0 {
        return Err(CostError::NegativeDemand {
            cpu_millis: demand.cpu_millis,
            memory_bytes: demand.memory_bytes,
        });
    }
    Ok((demand.cpu_millis as f64, demand.memory_bytes as f64))
}

fn single(c: &Candidate, cpu: f64, mem: f64) -> FluidMix {
    let nodes = (cpu / c.cpu).max(mem / c.mem);
    FluidMix {
        cost_per_hour: nodes * c.price,
        parts: [
            Some(MixPart {
                type_index: c.type_index,
                nodes,
            }),
            None,
        ],
    }
}

/// Both resources exactly covered by two types, if that needs no negative count.
fn pair(a: &Candidate, b: &Candidate, cpu: f64, mem: f64) -> Option<FluidMix> {
    let det = a.cpu * b.mem - b.cpu * a.mem;
    if det == 0.0 {
        return None;
    }
    let xa = (cpu * b.mem - b.cpu * mem) / det;
    let xb = (a.cpu * mem - cpu * a.mem) / det;
    if xa < 0.0 || xb < 0.0 {
        return None;
    }
    Some(FluidMix {
        cost_per_hour: xa * a.price + xb * b.price,
        parts: [
            Some(MixPart {
                type_index: a.type_index,
                nodes: xa,
            }),
            Some(MixPart {
                type_index: b.type_index,
                nodes: xb,
            }),
        ],
    })
}

fn candidates(types: &[NodeType]) -> Result<Vec<Candidate>, CostError> {
    if types.is_empty() {
        return Err(CostError::NoNodeTypes);
    }
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.validate()?;
            let (cpu, mem) = (t.cpu_millis as f64, t.memory_bytes as f64);
            Ok(Candidate {
                type_index: i,
                cpu_per_dollar: cpu / t.price_per_hour,
                mem_per_dollar: mem / t.price_per_hour,
                cpu,
                mem,
                price: t.price_per_hour,
            })
        })
        .collect()
}

/// `(b − a) × (c − a)`: positive when `b` bulges outward between `a` and `c`.
fn turn(a: &Candidate, b: &Candidate, c: &Candidate) -> f64 {
    let (abx, aby) = (
        b.cpu_per_dollar - a.cpu_per_dollar,
        b.mem_per_dollar - a.mem_per_dollar,
    );
    let (acx, acy) = (
        c.cpu_per_dollar - a.cpu_per_dollar,
        c.mem_per_dollar - a.mem_per_dollar,
    );
    abx * acy - aby * acx
}

impl FluidLowerBound {
    /// Precomputes the candidate types. Errors on an empty list or a type with
    /// no CPU, no memory, or a non-positive price. `O(n log n)`.
    pub fn new(types: &[NodeType]) -> Result<Self, CostError> {
        let mut points = candidates(types)?;
        // CPU per dollar descending; ties by memory per dollar descending.
        points.sort_by(|a, b| {
            b.cpu_per_dollar
                .total_cmp(&a.cpu_per_dollar)
                .then(b.mem_per_dollar.total_cmp(&a.mem_per_dollar))
        });
        let mut hull: Vec<Candidate> = Vec::with_capacity(points.len());
        for p in points {
            // Pareto: with less CPU per dollar it must buy strictly more memory.
            if hull
                .last()
                .is_some_and(|last| p.mem_per_dollar <= last.mem_per_dollar)
            {
                continue;
            }
            // Concave chain: drop vertices that no mix of neighbours needs.
            while hull.len() >= 2 {
                let n = hull.len();
                if turn(&hull[n - 2], &hull[n - 1], &p) > 0.0 {
                    break;
                }
                hull.pop();
            }
            hull.push(p);
        }
        Ok(FluidLowerBound { hull })
    }

    /// How many types can ever be part of an optimal mix.
    #[must_use]
    pub fn candidate_count(&self) -> usize {
        self.hull.len()
    }

    /// The cheapest fractional mix covering `demand` (millicores, bytes).
    /// `O(log h)`, no allocation.
    pub fn solve(&self, demand: Resources) -> Result<FluidMix, CostError> {
        let (cpu, mem) = demand_f64(demand)?;
        if cpu == 0.0 && mem == 0.0 {
            return Ok(FluidMix::ZERO);
        }
        let (Some(first), Some(last)) = (self.hull.first(), self.hull.last()) else {
            return Err(CostError::NoNodeTypes);
        };
        // Demand's mix relative to a vertex: > 0 when the demand is more
        // memory-heavy than the vertex's per-dollar capacity.
        let side = |c: &Candidate| c.cpu_per_dollar * mem - c.mem_per_dollar * cpu;
        if side(first) <= 0.0 {
            // CPU binds on the CPU-cheapest type alone.
            return Ok(single(first, cpu, mem));
        }
        if side(last) >= 0.0 {
            return Ok(single(last, cpu, mem));
        }
        // First vertex the demand is not more memory-heavy than; 0 < j < len.
        let j = self.hull.partition_point(|c| side(c) > 0.0);
        let (a, b) = (&self.hull[j - 1], &self.hull[j]);
        // The bracketing pair always solves with non-negative counts; fall back
        // to the better single type should rounding say otherwise.
        Ok(pair(a, b, cpu, mem).unwrap_or_else(|| {
            let (sa, sb) = (single(a, cpu, mem), single(b, cpu, mem));
            if sa.cost_per_hour <= sb.cost_per_hour {
                sa
            } else {
                sb
            }
        }))
    }

    /// The bound's price for `demand`, $/hour.
    pub fn cost_per_hour(&self, demand: Resources) -> Result<f64, CostError> {
        self.solve(demand).map(|m| m.cost_per_hour)
    }

    /// The bound in $ over a series of demands, each held for `step_seconds`.
    /// `O(k log h)` for `k` steps, no allocation.
    pub fn total_cost<I>(&self, demands: I, step_seconds: f64) -> Result<f64, CostError>
    where
        I: IntoIterator<Item = Resources>,
    {
        let mut per_hour_sum = 0.0;
        for d in demands {
            per_hour_sum += self.cost_per_hour(d)?;
        }
        Ok(per_hour_sum * step_seconds / SECONDS_PER_HOUR)
    }
}

/// The fluid bound by direct enumeration of every single type and every pair,
/// `O(n²)`. The reference [`FluidLowerBound::solve`] is checked against.
pub fn fluid_lower_bound_exhaustive(
    types: &[NodeType],
    demand: Resources,
) -> Result<FluidMix, CostError> {
    let all = candidates(types)?;
    let (cpu, mem) = demand_f64(demand)?;
    if cpu == 0.0 && mem == 0.0 {
        return Ok(FluidMix::ZERO);
    }
    let mut best: Option<FluidMix> = None;
    let mut consider = |m: FluidMix| {
        if best.is_none_or(|b| m.cost_per_hour < b.cost_per_hour) {
            best = Some(m);
        }
    };
    for (i, a) in all.iter().enumerate() {
        consider(single(a, cpu, mem));
        for b in &all[i + 1..] {
            if let Some(m) = pair(a, b, cpu, mem) {
                consider(m);
            }
        }
    }
    best.ok_or(CostError::NoNodeTypes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const GIB: i64 = 1024 * 1024 * 1024;

    fn t(name: &str, vcpu: i64, gib: i64, price: f64) -> NodeType {
        NodeType {
            name: name.into(),
            cpu_millis: vcpu * 1000,
            memory_bytes: gib * GIB,
            price_per_hour: price,
        }
    }

    /// A balanced small type, a memory-heavy and a CPU-heavy one.
    fn catalog() -> Vec<NodeType> {
        vec![
            t("small", 2, 4, 0.10),
            t("mem", 2, 16, 0.15),
            t("cpu", 8, 8, 0.30),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
    }

    #[rstest]
    // small×2 = $0.20, but 2/7 mem + 3/7 cpu covers 4 vCPU / 8 GiB exactly for $1.2/7.
    #[case::mix_beats_every_single(4, 8, 1.2 / 7.0, &[(1, 2.0 / 7.0), (2, 3.0 / 7.0)])]
    #[case::one_cpu_node(8, 8, 0.30, &[(2, 1.0)])]
    // Memory binds: two mem nodes hold 32 GiB.
    #[case::memory_heavy(2, 32, 0.30, &[(1, 2.0)])]
    // CPU binds: 16 vCPU on cpu nodes (2 of them) hold 16 GiB ≥ 1.
    #[case::cpu_heavy(16, 1, 0.60, &[(2, 2.0)])]
    #[case::nothing(0, 0, 0.0, &[])]
    fn fluid_bound_hand_computed(
        #[case] vcpu: i64,
        #[case] gib: i64,
        #[case] cost: f64,
        #[case] mix: &[(usize, f64)],
    ) {
        let types = catalog();
        let demand = Resources::new(vcpu * 1000, gib * GIB);
        for got in [
            FluidLowerBound::new(&types).unwrap().solve(demand).unwrap(),
            fluid_lower_bound_exhaustive(&types, demand).unwrap(),
        ] {
            assert!(close(got.cost_per_hour, cost), "{got:?}");
            let mut parts: Vec<(usize, f64)> = got
                .parts
                .iter()
                .flatten()
                .filter(|p| p.nodes > 1e-12)
                .map(|p| (p.type_index, p.nodes))
                .collect();
            parts.sort_by_key(|p| p.0);
            assert_eq!(parts.len(), mix.len(), "{got:?}");
            for ((ti, n), (ei, en)) in parts.iter().zip(mix) {
                assert_eq!(ti, ei);
                assert!(close(*n, *en), "{n} vs {en}");
            }
        }
    }

    #[test]
    fn dominated_types_are_not_candidates() {
        let mut types = catalog();
        // Dearer than `small` for the same shape; buys less of both per dollar than `mem`.
        types.push(t("small-dear", 2, 4, 0.11));
        types.push(t("mid", 4, 10, 0.30));
        let b = FluidLowerBound::new(&types).unwrap();
        // `small` itself lies inside the hull: a cpu/mem mix always beats it.
        let mut kept: Vec<usize> = b.hull.iter().map(|c| c.type_index).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 2]);
        assert_eq!(b.candidate_count(), 2);
    }

    #[test]
    fn total_cost_sums_steps() {
        let b = FluidLowerBound::new(&catalog()).unwrap();
        let steps = [
            Resources::new(8000, 8 * GIB),
            Resources::new(16_000, GIB),
            Resources::ZERO,
        ];
        // (0.30 + 0.60 + 0) $/h for 30 min each.
        let got = b.total_cost(steps, 1800.0).unwrap();
        assert!(close(got, 0.45), "{got}");
    }

    #[rstest]
    #[case::empty(vec![], CostError::NoNodeTypes)]
    #[case::no_cpu(vec![t("x", 0, 4, 0.1)], CostError::ZeroCapacity { name: "x".into(), cpu_millis: 0, memory_bytes: 4 * GIB })]
    #[case::no_memory(vec![t("x", 2, 0, 0.1)], CostError::ZeroCapacity { name: "x".into(), cpu_millis: 2000, memory_bytes: 0 })]
    #[case::free(vec![t("x", 2, 4, 0.0)], CostError::InvalidPrice { name: "x".into(), price_per_hour: 0.0 })]
    fn bad_catalogs_are_errors(#[case] types: Vec<NodeType>, #[case] expected: CostError) {
        assert_eq!(FluidLowerBound::new(&types).unwrap_err(), expected);
        assert_eq!(
            fluid_lower_bound_exhaustive(&types, Resources::new(1, 1)).unwrap_err(),
            expected
        );
        assert_eq!(Rates::from_catalog(&types).unwrap_err(), expected);
    }

    #[test]
    fn nan_price_and_negative_demand_are_errors() {
        let err = FluidLowerBound::new(&[t("x", 2, 4, f64::NAN)]).unwrap_err();
        assert!(matches!(err, CostError::InvalidPrice { .. }));
        let b = FluidLowerBound::new(&catalog()).unwrap();
        assert_eq!(
            b.solve(Resources::new(-1, 0)).unwrap_err(),
            CostError::NegativeDemand {
                cpu_millis: -1,
                memory_bytes: 0
            }
        );
    }

    #[test]
    fn rates_recover_a_linear_catalog() {
        // price = 0.04 $/vCPU-h + 0.005 $/GiB-h exactly.
        let price = |v: i64, g: i64| 0.04 * v as f64 + 0.005 * g as f64;
        let types = vec![
            t("a", 2, 8, price(2, 8)),
            t("b", 4, 8, price(4, 8)),
            t("c", 8, 64, price(8, 64)),
        ];
        let r = Rates::from_catalog(&types).unwrap();
        assert!(close(r.per_vcpu_hour, 0.04), "{r:?}");
        assert!(close(r.per_gib_hour, 0.005), "{r:?}");
    }

    #[test]
    fn rates_stay_non_negative() {
        // Memory-rich types are cheaper: unconstrained fit would price memory below 0.
        let types = vec![t("a", 2, 2, 0.20), t("b", 2, 16, 0.10), t("c", 4, 4, 0.40)];
        let r = Rates::from_catalog(&types).unwrap();
        assert!(r.per_vcpu_hour >= 0.0 && r.per_gib_hour >= 0.0, "{r:?}");
        assert!(close(r.per_gib_hour, 0.0), "{r:?}");
        // Proportional shapes (singular system) still fit.
        let r = Rates::from_catalog(&[t("a", 2, 4, 0.1), t("b", 4, 8, 0.2)]).unwrap();
        assert!(
            close(r.cost_per_hour(Resources::new(2000, 4 * GIB)), 0.1),
            "{r:?}"
        );
    }

    #[rstest]
    #[case::half_of_both(2000, 8, 0.5)]
    #[case::whole_node(4000, 16, 1.0)]
    // CPU costs 0.04 × 4 = 0.16 of the node's 0.24 weighted value; memory 0.08.
    #[case::cpu_only(4000, 0, 0.16 / 0.24)]
    #[case::nothing(0, 0, 0.0)]
    fn pod_share_by_rates(#[case] cpu: i64, #[case] gib: i64, #[case] fraction: f64) {
        let r = Rates::new(0.04, 0.005).unwrap();
        let node = t("n", 4, 16, 0.30);
        let got = r.pod_share_per_hour(&node, Resources::new(cpu, gib * GIB));
        assert!(close(got, 0.30 * fraction), "{got}");
    }

    #[test]
    fn explicit_rates_are_validated() {
        assert!(Rates::new(-0.1, 0.0).is_err());
        assert!(Rates::new(0.1, f64::INFINITY).is_err());
        assert!(Rates::new(0.0, 0.0).is_ok());
    }

    /// The real EC2 catalog beside the project (current-generation, non-burstable).
    fn ec2_catalog() -> Vec<NodeType> {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = ["../shared", "../../shared"]
            .iter()
            .map(|s| root.join(s).join("data/aws/aws-ec2-us-east-1.csv"))
            .find(|p| p.exists())
            .expect("the EC2 catalog in ../shared/data/aws (see DESIGN.md)");
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (vcpu, mib, current, burstable, price) = (
            col("vcpu"),
            col("memory_mib"),
            col("current_generation"),
            col("burstable"),
            col("on_demand_usd_per_hour"),
        );
        lines
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let p: f64 = f[price].parse().ok()?;
                (f[current] == "true" && f[burstable] == "false" && p > 0.0).then(|| NodeType {
                    name: f[0].into(),
                    cpu_millis: f[vcpu].parse::<i64>().unwrap() * 1000,
                    memory_bytes: f[mib].parse::<i64>().unwrap() * 1024 * 1024,
                    price_per_hour: p,
                })
            })
            .collect()
    }

    #[test]
    fn ec2_catalog_hull_matches_exhaustive() {
        let types = ec2_catalog();
        assert!(types.len() > 500, "{} types", types.len());
        let b = FluidLowerBound::new(&types).unwrap();
        assert!(b.candidate_count() >= 2 && b.candidate_count() < 20);
        // From 1 GiB to 32 GiB per vCPU, small to large.
        for (vcpu, gib) in [
            (1, 1),
            (4, 16),
            (10, 10),
            (64, 256),
            (100, 3200),
            (3, 96),
            (500, 700),
        ] {
            let d = Resources::new(vcpu * 1000, gib * GIB);
            let fast = b.solve(d).unwrap();
            let slow = fluid_lower_bound_exhaustive(&types, d).unwrap();
            assert!(
                close(fast.cost_per_hour, slow.cost_per_hour),
                "{d:?}: {fast:?} vs {slow:?}"
            );
        }
    }

    fn arb_types() -> impl Strategy<Value = Vec<NodeType>> {
        prop::collection::vec(
            (1i64..=96, 1i64..=768, 1u32..=5000).prop_map(|(v, g, cents)| NodeType {
                name: format!("t{v}x{g}"),
                cpu_millis: v * 1000,
                memory_bytes: g * GIB,
                price_per_hour: f64::from(cents) / 100.0,
            }),
            1..12,
        )
    }

    proptest! {
        #[test]
        fn hull_search_matches_exhaustive(
            types in arb_types(),
            cpu in 0i64..2_000_000,
            gib in 0i64..8_000,
        ) {
            let demand = Resources::new(cpu, gib * GIB);
            let fast = FluidLowerBound::new(&types).unwrap().solve(demand).unwrap();
            let slow = fluid_lower_bound_exhaustive(&types, demand).unwrap();
            prop_assert!(close(fast.cost_per_hour, slow.cost_per_hour),
                "{fast:?} vs {slow:?}");
            // The mix really covers the demand and costs what it says.
            let (c, m) = fast.capacity(&types);
            prop_assert!(c >= cpu as f64 * (1.0 - 1e-9) && m >= (gib * GIB) as f64 * (1.0 - 1e-9));
            let priced: f64 = fast.parts.iter().flatten()
                .map(|p| p.nodes * types[p.type_index].price_per_hour).sum();
            prop_assert!(close(priced, fast.cost_per_hour));
        }

        /// No integral packing is cheaper than the bound, and neither is any single
        /// type covering the demand on its own.
        #[test]
        fn bound_is_below_packings_and_single_type_covers(
            types in arb_types(),
            pods in prop::collection::vec((1i64..=1000, 1i64..=1024), 1..80),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 80),
        ) {
            let b = FluidLowerBound::new(&types).unwrap();
            let demand = pods.iter().fold(Resources::ZERO, |acc, &(c, m)| {
                Resources::new(acc.cpu_millis + c, acc.memory_bytes + m * 1024 * 1024)
            });
            let bound = b.cost_per_hour(demand).unwrap();
            // First-fit onto nodes of arbitrary types (each pod fits any type:
            // ≤ 1 vCPU and ≤ 1 GiB).
            let mut nodes: Vec<(usize, i64, i64)> = vec![];
            for (i, &(c, m)) in pods.iter().enumerate() {
                let m = m * 1024 * 1024;
                if let Some(n) = nodes.iter_mut().find(|n| n.1 >= c && n.2 >= m) {
                    n.1 -= c;
                    n.2 -= m;
                } else {
                    let ti = picks[i].index(types.len());
                    nodes.push((ti, types[ti].cpu_millis - c, types[ti].memory_bytes - m));
                }
            }
            let packing: f64 = nodes.iter().map(|n| types[n.0].price_per_hour).sum();
            prop_assert!(bound <= packing * (1.0 + 1e-9), "bound {bound} > packing {packing}");
            for ty in &types {
                let cover = (demand.cpu_millis as f64 / ty.cpu_millis as f64)
                    .max(demand.memory_bytes as f64 / ty.memory_bytes as f64)
                    * ty.price_per_hour;
                prop_assert!(bound <= cover * (1.0 + 1e-9), "bound {bound} > {} cover {cover}", ty.name);
            }
        }
    }
}
