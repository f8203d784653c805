//! Amounts of CPU and memory, in the integer units Kubernetes itself uses
//! internally: CPU in millicores, memory in bytes.
//!
//! Decisions work in these exact integers so that two runs (live and simulated)
//! agree to the millicore. Every operation that can overflow has a checked form.
//!
//! [`ResourceList`] is the open-ended Kubernetes form (`cpu`, `memory`,
//! `nvidia.com/gpu`, `ephemeral-storage`, ... → [`Quantity`]); it converts to
//! and from [`Resources`] at the edges.

use crate::quantity::{Format, Quantity, QuantityError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A resource that Tailor reasons about directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceName {
    /// CPU, measured in millicores.
    Cpu,
    /// Memory, measured in bytes.
    Memory,
}

impl ResourceName {
    /// Both resources, in a fixed order (CPU first), for loops over resources.
    pub const ALL: [ResourceName; 2] = [ResourceName::Cpu, ResourceName::Memory];

    /// The name Kubernetes uses in a `ResourceList` (`cpu`, `memory`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceName::Cpu => "cpu",
            ResourceName::Memory => "memory",
        }
    }

    /// Parses a Kubernetes resource name; `None` for anything else.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cpu" => Some(ResourceName::Cpu),
            "memory" => Some(ResourceName::Memory),
            _ => None,
        }
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An arithmetic operation on resources left the range of `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{resource} amount overflowed while computing {operation}")]
pub struct ResourceOverflow {
    /// Which resource overflowed.
    pub resource: ResourceName,
    /// The operation that overflowed (`add`, `sub`, `mul`).
    pub operation: &'static str,
}

/// CPU (millicores) and memory (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Resources {
    /// No CPU and no memory.
    pub const ZERO: Resources = Resources {
        cpu_millis: 0,
        memory_bytes: 0,
    };

    /// Builds an amount from millicores and bytes.
    #[must_use]
    pub const fn new(cpu_millis: i64, memory_bytes: i64) -> Self {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    /// The amount of one resource.
    #[must_use]
    pub const fn get(&self, name: ResourceName) -> i64 {
        match name {
            ResourceName::Cpu => self.cpu_millis,
            ResourceName::Memory => self.memory_bytes,
        }
    }

    /// A copy with one resource replaced.
    #[must_use]
    pub const fn with(mut self, name: ResourceName, value: i64) -> Self {
        match name {
            ResourceName::Cpu => self.cpu_millis = value,
            ResourceName::Memory => self.memory_bytes = value,
        }
        self
    }

    /// Applies `f` to each resource.
    #[must_use]
    pub fn map(self, mut f: impl FnMut(ResourceName, i64) -> i64) -> Self {
        Resources {
            cpu_millis: f(ResourceName::Cpu, self.cpu_millis),
            memory_bytes: f(ResourceName::Memory, self.memory_bytes),
        }
    }

    /// Combines two amounts resource by resource.
    #[must_use]
    pub fn zip(self, other: Self, mut f: impl FnMut(ResourceName, i64, i64) -> i64) -> Self {
        Resources {
            cpu_millis: f(ResourceName::Cpu, self.cpu_millis, other.cpu_millis),
            memory_bytes: f(ResourceName::Memory, self.memory_bytes, other.memory_bytes),
        }
    }

    fn try_zip(
        self,
        other: Self,
        operation: &'static str,
        f: impl Fn(i64, i64) -> Option<i64>,
    ) -> Result<Self, ResourceOverflow> {
        let cpu_millis = f(self.cpu_millis, other.cpu_millis).ok_or(ResourceOverflow {
            resource: ResourceName::Cpu,
            operation,
        })?;
        let memory_bytes = f(self.memory_bytes, other.memory_bytes).ok_or(ResourceOverflow {
            resource: ResourceName::Memory,
            operation,
        })?;
        Ok(Resources {
            cpu_millis,
            memory_bytes,
        })
    }

    /// `self + other`, or an error naming the resource that overflowed.
    pub fn checked_add(self, other: Self) -> Result<Self, ResourceOverflow> {
        self.try_zip(other, "add", i64::checked_add)
    }

    /// `self - other`, or an error naming the resource that overflowed.
    pub fn checked_sub(self, other: Self) -> Result<Self, ResourceOverflow> {
        self.try_zip(other, "sub", i64::checked_sub)
    }

    /// `self × factor`, or an error naming the resource that overflowed.
    pub fn checked_mul(self, factor: i64) -> Result<Self, ResourceOverflow> {
        self.try_zip(Resources::new(factor, factor), "mul", i64::checked_mul)
    }

    /// `self + other`, clamped at the bounds of `i64`.
    #[must_use]
    pub fn saturating_add(self, other: Self) -> Self {
        self.zip(other, |_, a, b| a.saturating_add(b))
    }

    /// `self - other`, clamped at the bounds of `i64`.
    #[must_use]
    pub fn saturating_sub(self, other: Self) -> Self {
        self.zip(other, |_, a, b| a.saturating_sub(b))
    }

    /// The larger amount of each resource.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        self.zip(other, |_, a, b| a.max(b))
    }

    /// The smaller amount of each resource.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        self.zip(other, |_, a, b| a.min(b))
    }

    /// Negative amounts raised to zero.
    #[must_use]
    pub fn non_negative(self) -> Self {
        self.map(|_, v| v.max(0))
    }

    /// True when every resource of `self` is at most that of `capacity`.
    #[must_use]
    pub fn fits_within(&self, capacity: &Self) -> bool {
        self.cpu_millis <= capacity.cpu_millis && self.memory_bytes <= capacity.memory_bytes
    }

    /// True when both amounts are zero.
    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.cpu_millis == 0 && self.memory_bytes == 0
    }

    /// CPU in cores, for reporting and cost.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // reporting only; exact maths stays in i64
    pub fn cpu_cores(&self) -> f64 {
        self.cpu_millis as f64 / 1000.0
    }

    /// Memory in GiB, for reporting and cost.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // reporting only; exact maths stays in i64
    pub fn memory_gib(&self) -> f64 {
        self.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0)
    }
}

impl std::iter::Sum for Resources {
    /// Saturating sum: totals over a cluster never wrap around.
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Resources::ZERO, Resources::saturating_add)
    }
}

/// A resource in a [`ResourceList`] failed to convert or to combine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("resource {resource}: {source}")]
pub struct ResourceListError {
    /// The resource name (`cpu`, `memory`, `nvidia.com/gpu`, ...).
    pub resource: String,
    /// What went wrong with its quantity.
    #[source]
    pub source: QuantityError,
}

/// Kubernetes' `ResourceList`: resource name → quantity, ordered by name so
/// that serialised lists and iteration are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ResourceList(BTreeMap<String, Quantity>);

impl<'de> Deserialize<'de> for ResourceList {
    /// A map of quantity strings; a bad value's error names its resource.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ResourceList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of resource names to Kubernetes quantities")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ResourceList, A::Error> {
                use serde::de::Error;
                let mut out = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let quantity = map
                        .next_value::<Quantity>()
                        .map_err(|e| A::Error::custom(format_args!("resource {name}: {e}")))?;
                    out.insert(name, quantity);
                }
                Ok(ResourceList(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl ResourceList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        ResourceList(BTreeMap::new())
    }

    /// The quantity of one resource, if listed.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Quantity> {
        self.0.get(name)
    }

    /// Sets one resource, returning the quantity it replaced.
    pub fn insert(&mut self, name: impl Into<String>, quantity: Quantity) -> Option<Quantity> {
        self.0.insert(name.into(), quantity)
    }

    /// Builder form of [`ResourceList::insert`].
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, quantity: Quantity) -> Self {
        self.insert(name, quantity);
        self
    }

    /// Removes one resource, returning its quantity.
    pub fn remove(&mut self, name: &str) -> Option<Quantity> {
        self.0.remove(name)
    }

    /// Resources in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Quantity)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of listed resources.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no resource is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying map.
    #[must_use]
    pub fn as_map(&self) -> &BTreeMap<String, Quantity> {
        &self.0
    }

    /// Parses `(name, quantity string)` pairs; the error names the resource.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ResourceListError> {
        pairs
            .into_iter()
            .map(|(name, value)| {
                Quantity::parse(value)
                    .map(|q| (name.to_owned(), q))
                    .map_err(|source| ResourceListError {
                        resource: name.to_owned(),
                        source,
                    })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(ResourceList)
    }

    /// Resource-wise `self + other`; a resource missing on one side counts as
    /// zero. The error names the resource whose sum is not representable.
    pub fn checked_add(&self, other: &Self) -> Result<Self, ResourceListError> {
        self.combine(other, Quantity::checked_add)
    }

    /// Resource-wise `self - other`; a resource missing on one side counts as
    /// zero, so the result may hold negative quantities.
    pub fn checked_sub(&self, other: &Self) -> Result<Self, ResourceListError> {
        self.combine(other, Quantity::checked_sub)
    }

    fn combine(
        &self,
        other: &Self,
        op: impl Fn(&Quantity, &Quantity) -> Result<Quantity, QuantityError>,
    ) -> Result<Self, ResourceListError> {
        let mut out = self.0.clone();
        for (name, right) in &other.0 {
            let left = self.0.get(name).copied().unwrap_or_default();
            let value = op(&left, right).map_err(|source| ResourceListError {
                resource: name.clone(),
                source,
            })?;
            out.insert(name.clone(), value);
        }
        Ok(ResourceList(out))
    }

    /// CPU in millicores and memory in bytes, each rounded away from zero like
    /// Kubernetes' `MilliValue()`/`Value()`; a missing resource is zero and other
    /// resources are ignored. The error names the resource that does not fit.
    pub fn to_resources(&self) -> Result<Resources, ResourceListError> {
        let convert = |name: ResourceName| -> Result<i64, ResourceListError> {
            let Some(q) = self.0.get(name.as_str()) else {
                return Ok(0);
            };
            match name {
                ResourceName::Cpu => q.milli_value(),
                ResourceName::Memory => q.value(),
            }
            .map_err(|source| ResourceListError {
                resource: name.as_str().to_owned(),
                source,
            })
        };
        Ok(Resources {
            cpu_millis: convert(ResourceName::Cpu)?,
            memory_bytes: convert(ResourceName::Memory)?,
        })
    }
}

impl From<Resources> for ResourceList {
    /// `cpu` as a DecimalSI milli-quantity, `memory` as BinarySI bytes, as
    /// Kubernetes builds them (`1500m`, `128Mi`).
    fn from(r: Resources) -> Self {
        ResourceList::new()
            .with(
                ResourceName::Cpu.as_str(),
                Quantity::from_milli(r.cpu_millis, Format::DecimalSI),
            )
            .with(
                ResourceName::Memory.as_str(),
                Quantity::from_int(r.memory_bytes, Format::BinarySI),
            )
    }
}

impl TryFrom<&ResourceList> for Resources {
    type Error = ResourceListError;

    fn try_from(list: &ResourceList) -> Result<Self, Self::Error> {
        list.to_resources()
    }
}

impl FromIterator<(String, Quantity)> for ResourceList {
    fn from_iter<I: IntoIterator<Item = (String, Quantity)>>(iter: I) -> Self {
        ResourceList(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a ResourceList {
    type Item = (&'a String, &'a Quantity);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Quantity>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        Resources::new(100, 10),
        Resources::new(50, 5),
        Resources::new(150, 15)
    )]
    #[case(Resources::new(-1, 0), Resources::new(1, 0), Resources::ZERO)]
    fn adds(#[case] a: Resources, #[case] b: Resources, #[case] sum: Resources) {
        assert_eq!(a.checked_add(b), Ok(sum));
        assert_eq!(a.saturating_add(b), sum);
    }

    #[test]
    fn overflow_names_the_resource() {
        let err = Resources::new(1, i64::MAX)
            .checked_add(Resources::new(1, 1))
            .unwrap_err();
        assert_eq!(err.resource, ResourceName::Memory);
        assert_eq!(
            err.to_string(),
            "memory amount overflowed while computing add"
        );
        let err = Resources::new(i64::MIN, 0)
            .checked_sub(Resources::new(1, 0))
            .unwrap_err();
        assert_eq!(err.resource, ResourceName::Cpu);
        assert!(Resources::new(i64::MAX / 2 + 1, 0).checked_mul(2).is_err());
        assert_eq!(
            Resources::new(3, 4).checked_mul(2),
            Ok(Resources::new(6, 8))
        );
    }

    #[test]
    fn saturating_and_elementwise() {
        let big = Resources::new(i64::MAX, i64::MIN);
        assert_eq!(
            big.saturating_add(Resources::new(1, -1)),
            Resources::new(i64::MAX, i64::MIN)
        );
        let a = Resources::new(100, 900);
        let b = Resources::new(200, 300);
        assert_eq!(a.max(b), Resources::new(200, 900));
        assert_eq!(a.min(b), Resources::new(100, 300));
        assert!(b.min(a).fits_within(&a));
        assert!(!b.fits_within(&a));
        assert_eq!(Resources::new(-5, 7).non_negative(), Resources::new(0, 7));
        assert_eq!(
            [a, b].into_iter().sum::<Resources>(),
            Resources::new(300, 1200)
        );
    }

    #[test]
    fn names_round_trip() {
        for name in ResourceName::ALL {
            assert_eq!(ResourceName::parse(name.as_str()), Some(name));
            assert_eq!(Resources::ZERO.with(name, 7).get(name), 7);
        }
        assert_eq!(ResourceName::parse("nvidia.com/gpu"), None);
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        ResourceList::parse(pairs.iter().copied()).unwrap()
    }

    #[rstest]
    #[case(&[("cpu", "1500m"), ("memory", "128Mi")], Resources::new(1500, 134_217_728))]
    #[case(&[("cpu", "2"), ("memory", "1G")], Resources::new(2000, 1_000_000_000))]
    #[case(&[("cpu", "0.1m"), ("memory", "100m")], Resources::new(1, 1))]
    #[case(&[("cpu", "-0.1m"), ("memory", "-1.5")], Resources::new(-1, -2))]
    #[case(&[("nvidia.com/gpu", "1")], Resources::ZERO)]
    #[case(&[("memory", "262144k"), ("ephemeral-storage", "1Gi")], Resources::new(0, 262_144_000))]
    fn list_to_resources_rounds_away_from_zero(
        #[case] pairs: &[(&str, &str)],
        #[case] expected: Resources,
    ) {
        let l = list(pairs);
        assert_eq!(l.to_resources(), Ok(expected));
        assert_eq!(Resources::try_from(&l), Ok(expected));
    }

    #[rstest]
    #[case("cpu", "9223372036854775808m")]
    #[case("cpu", "10E")]
    #[case("memory", "9223372036854775808")]
    #[case("memory", "1e30")]
    fn conversion_overflow_names_the_resource(#[case] name: &str, #[case] value: &str) {
        let err = list(&[(name, value)]).to_resources().unwrap_err();
        assert_eq!(err.resource, name);
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("resource {name}: quantity ")),
            "{message}"
        );
        assert!(message.contains("does not fit in i64"), "{message}");
    }

    #[test]
    fn parse_error_names_resource_and_input() {
        let err = ResourceList::parse([("cpu", "1"), ("nvidia.com/gpu", "5Zi")]).unwrap_err();
        assert_eq!(err.resource, "nvidia.com/gpu");
        assert_eq!(
            err.to_string(),
            "resource nvidia.com/gpu: quantity \"5Zi\" is malformed: unknown suffix"
        );
    }

    #[test]
    fn resources_to_list_uses_kubernetes_formats() {
        let l = ResourceList::from(Resources::new(1500, 134_217_728));
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.get("cpu").map(ToString::to_string).as_deref(),
            Some("1500m")
        );
        assert_eq!(
            l.get("memory").map(ToString::to_string).as_deref(),
            Some("128Mi")
        );
        assert_eq!(l.to_resources(), Ok(Resources::new(1500, 134_217_728)));
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"cpu":"1500m","memory":"128Mi"}"#
        );
        let back: ResourceList =
            serde_json::from_str(r#"{"cpu":"1.5","memory":"0.125Gi","nvidia.com/gpu":"2"}"#)
                .unwrap();
        assert_eq!(back.get("cpu"), l.get("cpu"));
        assert_eq!(back.get("memory"), l.get("memory"));
        assert_eq!(
            back.get("nvidia.com/gpu")
                .map(ToString::to_string)
                .as_deref(),
            Some("2")
        );
        let err = serde_json::from_str::<ResourceList>(r#"{"cpu":"1","memory":"1.2.3"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("resource memory: quantity \"1.2.3\" is malformed"),
            "{err}"
        );
    }

    #[test]
    fn list_arithmetic_is_checked_and_names_the_resource() {
        let a = list(&[("cpu", "500m"), ("memory", "1Gi"), ("nvidia.com/gpu", "1")]);
        let b = list(&[
            ("cpu", "1500m"),
            ("memory", "512Mi"),
            ("ephemeral-storage", "1G"),
        ]);
        let sum = a.checked_add(&b).unwrap();
        let shown: Vec<(String, String)> = sum
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("cpu", "2"),
                ("ephemeral-storage", "1G"),
                ("memory", "1536Mi"),
                ("nvidia.com/gpu", "1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let diff = a.checked_sub(&b).unwrap();
        assert_eq!(
            diff.get("cpu").map(ToString::to_string).as_deref(),
            Some("-1")
        );
        assert_eq!(
            diff.get("ephemeral-storage")
                .map(ToString::to_string)
                .as_deref(),
            Some("-1G")
        );
        assert_eq!(
            diff.checked_add(&b).unwrap(),
            a.checked_add(&list(&[("ephemeral-storage", "0")])).unwrap()
        );
        let huge = list(&[("nvidia.com/gpu", "1e2147483647")]);
        let err = huge
            .checked_add(&list(&[("nvidia.com/gpu", "1")]))
            .unwrap_err();
        assert_eq!(err.resource, "nvidia.com/gpu");
        assert!(err.to_string().contains("overflowed"), "{err}");
    }

    #[test]
    fn reporting_units() {
        let r = Resources::new(1500, 3 * 1024 * 1024 * 1024);
        assert!((r.cpu_cores() - 1.5).abs() < 1e-12);
        assert!((r.memory_gib() - 3.0).abs() < 1e-12);
    }
}
