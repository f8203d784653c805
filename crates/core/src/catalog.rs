//! The price catalog: instance types with their shapes and hourly prices,
//! plus operator overrides (spot prices, discounts, custom node groups).
//!
//! Parsed from text (CSV, YAML); reading files is the caller's business.

use crate::expander::{NodePrice, NodeTemplate, PriceInputs, PricingError, PricingModel};
use crate::resources::Resources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MIB: i64 = 1024 * 1024;
const GIB_PER_MIB: f64 = 1.0 / 1024.0;

/// How a node is bought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    /// On-demand.
    #[default]
    OnDemand,
    /// Spot (interruptible).
    Spot,
}

/// How a mixed-instances group is priced from its instance types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixedPricePolicy {
    /// The first override (what Cluster Autoscaler assumes).
    #[default]
    First,
    /// The cheapest type.
    Cheapest,
    /// The mean over the types.
    Mean,
}

/// USD per vCPU-hour and per GiB-hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rates {
    /// USD per vCPU per hour.
    pub usd_per_vcpu_hour: f64,
    /// USD per GiB of memory per hour.
    pub usd_per_gib_hour: f64,
}

impl Rates {
    /// Hourly value of an amount of CPU and memory.
    #[must_use]
    pub fn price(&self, r: Resources) -> f64 {
        r.cpu_cores() * self.usd_per_vcpu_hour + r.memory_gib() * self.usd_per_gib_hour
    }
}

/// One EC2 instance type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceType {
    /// Name, e.g. `m5.large`.
    pub name: String,
    /// vCPUs.
    pub vcpu: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// GPUs.
    pub gpus: u32,
    /// CPU architectures (`x86_64`, `arm64`, …).
    pub architectures: Vec<String>,
    /// Current generation (false: previous generation).
    pub current_generation: bool,
    /// Burstable (t-family): only a baseline share of CPU is sustained.
    pub burstable: bool,
    /// Bare metal.
    pub bare_metal: bool,
    /// On-demand list price, USD per hour (Linux).
    pub on_demand_usd_per_hour: f64,
}

impl InstanceType {
    /// Capacity as CPU millicores and memory bytes.
    #[must_use]
    #[allow(clippy::cast_possible_wrap)] // vCPU and MiB counts are far below i64::MAX
    pub fn resources(&self) -> Resources {
        Resources::new(
            i64::from(self.vcpu) * 1000,
            (self.memory_mib as i64).saturating_mul(MIB),
        )
    }
}

/// Which instance types to consider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeFilter {
    /// Include burstable (t-family) types.
    pub burstable: bool,
    /// Include previous-generation types.
    pub previous_generation: bool,
    /// Include GPU types.
    pub gpu: bool,
    /// Include bare-metal types.
    pub bare_metal: bool,
}

impl Default for TypeFilter {
    /// Leaves out burstable and previous-generation types, whose list prices
    /// do not buy the capacity they advertise (see REFERENCE "Cost model").
    fn default() -> Self {
        TypeFilter {
            burstable: false,
            previous_generation: false,
            gpu: true,
            bare_metal: true,
        }
    }
}

impl TypeFilter {
    /// Every type.
    pub const ALL: TypeFilter = TypeFilter {
        burstable: true,
        previous_generation: true,
        gpu: true,
        bare_metal: true,
    };

    /// True when `t` passes the filter.
    #[must_use]
    pub fn accepts(&self, t: &InstanceType) -> bool {
        (self.burstable || !t.burstable)
            && (self.previous_generation || t.current_generation)
            && (self.gpu || t.gpus == 0)
            && (self.bare_metal || !t.bare_metal)
    }
}

/// A node group configured in the overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroupSpec {
    /// Instance types, first = launch template / first mixed override.
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// On-demand or spot.
    #[serde(default)]
    pub capacity_type: CapacityType,
    /// Explicit on-demand-equivalent price (custom or negotiated), USD/hour.
    pub usd_per_hour: Option<f64>,
    /// Explicit spot price, USD/hour.
    pub spot_usd_per_hour: Option<f64>,
    /// Custom vCPUs (instead of the first type's).
    pub vcpu: Option<u32>,
    /// Custom memory in MiB.
    pub memory_mib: Option<u64>,
    /// Custom GPUs.
    pub gpus: Option<u32>,
    /// Pricing policy for this group's types (default: the catalog's).
    pub price_policy: Option<MixedPricePolicy>,
}

/// Operator overrides, from YAML.
///
/// ```yaml
/// mixedInstancesPolicy: cheapest     # first | cheapest | mean
/// spotPrices: { m5.large: 0.035 }
/// spotDiscount: { "*": 0.6, c5.xlarge: 0.7 }   # fraction off on-demand when no spot price
/// onDemandDiscount: { "*": 0.05 }              # e.g. an enterprise discount
/// rates: { usdPerVcpuHour: 0.04, usdPerGibHour: 0.005 }
/// nodeGroups:
///   spot-general: { instanceTypes: [m5.large, m5a.large], capacityType: spot }
///   on-prem-big: { usdPerHour: 1.2, vcpu: 64, memoryMib: 262144 }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    /// Default policy for mixed-instances groups.
    #[serde(default)]
    pub mixed_instances_policy: MixedPricePolicy,
    /// Known spot prices by instance type.
    #[serde(default)]
    pub spot_prices: BTreeMap<String, f64>,
    /// Fraction off on-demand for spot, by type or `*`.
    #[serde(default)]
    pub spot_discount: BTreeMap<String, f64>,
    /// Fraction off the on-demand list price, by type or `*`.
    #[serde(default)]
    pub on_demand_discount: BTreeMap<String, f64>,
    /// Fixed rates instead of ones fitted to the catalog.
    pub rates: Option<Rates>,
    /// Node groups by id.
    #[serde(default)]
    pub node_groups: BTreeMap<String, NodeGroupSpec>,
}

/// A catalog could not be built or asked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// The CSV header lacks a column.
    #[error("catalog CSV: missing column {column:?} in the header")]
    MissingColumn {
        /// Column name.
        column: &'static str,
    },
    /// The CSV is malformed at a line.
    #[error("catalog CSV line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What the reader said.
        message: String,
    },
    /// A field has a bad value.
    #[error("catalog CSV line {line}, field {field:?}: {value:?} {reason}")]
    Field {
        /// 1-based line.
        line: u64,
        /// Column name.
        field: &'static str,
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An instance type is listed twice.
    #[error("catalog CSV line {line}: instance type {name:?} already listed on line {first}")]
    DuplicateType {
        /// 1-based line of the repeat.
        line: u64,
        /// 1-based line of the first listing.
        first: u64,
        /// Type name.
        name: String,
    },
    /// The CSV has no data rows.
    #[error("catalog CSV has no instance types")]
    Empty,
    /// The overrides are not valid YAML for [`Overrides`].
    #[error("catalog overrides: {0}")]
    Yaml(String),
    /// An override value is out of range.
    #[error("catalog overrides, field {field}: {reason}")]
    Override {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// An instance type is not in the catalog.
    #[error("instance type {0:?} is not in the catalog")]
    UnknownType(String),
    /// A node group is not configured.
    #[error("node group {0:?} is not configured in the catalog overrides")]
    UnknownGroup(String),
    /// A group has neither instance types nor a custom price and shape.
    #[error("node group {0:?} has no instance types and no custom price and shape")]
    Unpriceable(String),
    /// No types pass the filter used to fit rates.
    #[error("no instance types to fit per-vCPU and per-GiB rates to")]
    NoTypesForRates,
}

/// Instance types and prices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    types: BTreeMap<String, InstanceType>,
    overrides: Overrides,
    /// Computed once: pod prices are asked for every pending pod.
    rates: Option<Rates>,
}

const COLUMNS: [&str; 9] = [
    "instance_type",
    "vcpu",
    "memory_mib",
    "gpus",
    "architectures",
    "current_generation",
    "burstable",
    "bare_metal",
    "on_demand_usd_per_hour",
];

impl Catalog {
    /// Parses instance types from CSV with the columns of
    /// `aws-ec2-us-east-1.csv` (any order; extra columns ignored).
    pub fn from_csv(text: &str) -> Result<Catalog, CatalogError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| csv_error(text, &e))?.clone();
        let mut index = [0usize; 9];
        for (slot, column) in index.iter_mut().zip(COLUMNS) {
            *slot = headers
                .iter()
                .position(|h| h == column)
                .ok_or(CatalogError::MissingColumn { column })?;
        }
        let mut types = BTreeMap::new();
        let mut starts: BTreeMap<String, u64> = BTreeMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(text, &e))?;
            let start = record.position().map_or(0, csv::Position::byte);
            let field = |i: usize| record.get(index[i]).unwrap_or("");
            let t = parse_row(&field).map_err(|(i, reason)| CatalogError::Field {
                line: line_at(text, start),
                field: COLUMNS[i],
                value: field(i).to_owned(),
                reason,
            })?;
            if let Some(&first) = starts.get(&t.name) {
                return Err(CatalogError::DuplicateType {
                    line: line_at(text, start),
                    first: line_at(text, first),
                    name: t.name,
                });
            }
            starts.insert(t.name.clone(), start);
            types.insert(t.name.clone(), t);
        }
        if types.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut catalog = Catalog {
            types,
            overrides: Overrides::default(),
            rates: None,
        };
        catalog.rates = catalog.compute_rates().ok();
        Ok(catalog)
    }

    /// Applies overrides parsed from YAML (replacing any earlier ones).
    pub fn with_overrides_yaml(self, text: &str) -> Result<Catalog, CatalogError> {
        let overrides: Overrides =
            serde_yaml::from_str(text).map_err(|e| CatalogError::Yaml(e.to_string()))?;
        self.with_overrides(overrides)
    }

    /// Applies overrides after checking every price, discount and reference.
    pub fn with_overrides(mut self, overrides: Overrides) -> Result<Catalog, CatalogError> {
        let bad = |field: String, reason: &str| CatalogError::Override {
            field,
            reason: reason.to_owned(),
        };
        let price_ok = |v: f64| v.is_finite() && v >= 0.0;
        for (name, &p) in &overrides.spot_prices {
            self.known(name, &format!("spotPrices.{name}"))?;
            if !price_ok(p) {
                return Err(bad(format!("spotPrices.{name}"), "must be a price ≥ 0"));
            }
        }
        for (map, label) in [
            (&overrides.spot_discount, "spotDiscount"),
            (&overrides.on_demand_discount, "onDemandDiscount"),
        ] {
            for (name, &d) in map {
                if name != "*" {
                    self.known(name, &format!("{label}.{name}"))?;
                }
                if !(0.0..1.0).contains(&d) {
                    return Err(bad(
                        format!("{label}.{name}"),
                        "must be a fraction in [0, 1)",
                    ));
                }
            }
        }
        if let Some(r) = overrides.rates
            && !(price_ok(r.usd_per_vcpu_hour) && price_ok(r.usd_per_gib_hour))
        {
            return Err(bad("rates".into(), "rates must be prices ≥ 0"));
        }
        for (id, g) in &overrides.node_groups {
            for (i, name) in g.instance_types.iter().enumerate() {
                self.known(name, &format!("nodeGroups.{id}.instanceTypes[{i}]"))?;
            }
            for (field, v) in [
                ("usdPerHour", g.usd_per_hour),
                ("spotUsdPerHour", g.spot_usd_per_hour),
            ] {
                if v.is_some_and(|v| !price_ok(v)) {
                    return Err(bad(
                        format!("nodeGroups.{id}.{field}"),
                        "must be a price ≥ 0",
                    ));
                }
            }
            let custom_shape = g.vcpu.is_some() && g.memory_mib.is_some();
            if g.instance_types.is_empty() && !(custom_shape && g.usd_per_hour.is_some()) {
                return Err(CatalogError::Unpriceable(id.clone()));
            }
            if g.vcpu == Some(0) || g.memory_mib == Some(0) {
                return Err(bad(
                    format!("nodeGroups.{id}"),
                    "vcpu and memoryMib must be > 0",
                ));
            }
        }
        self.overrides = overrides;
        self.rates = self.compute_rates().ok();
        Ok(self)
    }

    fn known(&self, name: &str, field: &str) -> Result<(), CatalogError> {
        if self.types.contains_key(name) {
            Ok(())
        } else {
            Err(CatalogError::Override {
                field: field.to_owned(),
                reason: format!("instance type {name:?} is not in the catalog"),
            })
        }
    }

    /// The overrides in force.
    #[must_use]
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// Number of instance types.
    #[must_use]
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when the catalog has no instance types.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// One instance type by name.
    #[must_use]
    pub fn instance_type(&self, name: &str) -> Option<&InstanceType> {
        self.types.get(name)
    }

    /// Instance types passing `filter`, by name.
    pub fn instance_types<'a>(
        &'a self,
        filter: &'a TypeFilter,
    ) -> impl Iterator<Item = &'a InstanceType> + 'a {
        self.types.values().filter(|t| filter.accepts(t))
    }

    fn lookup(&self, name: &str) -> Result<&InstanceType, CatalogError> {
        self.types
            .get(name)
            .ok_or_else(|| CatalogError::UnknownType(name.to_owned()))
    }

    fn discount(map: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
        map.get(name).or_else(|| map.get("*")).copied()
    }

    /// On-demand USD/hour of a type, after any on-demand discount.
    pub fn on_demand_price(&self, name: &str) -> Result<f64, CatalogError> {
        let t = self.lookup(name)?;
        let d = Self::discount(&self.overrides.on_demand_discount, name).unwrap_or(0.0);
        Ok(t.on_demand_usd_per_hour * (1.0 - d))
    }

    /// Spot USD/hour of a type: its known spot price, else the on-demand list
    /// price less the spot discount; `None` when neither is configured.
    pub fn spot_price(&self, name: &str) -> Result<Option<f64>, CatalogError> {
        let t = self.lookup(name)?;
        if let Some(&p) = self.overrides.spot_prices.get(name) {
            return Ok(Some(p));
        }
        Ok(Self::discount(&self.overrides.spot_discount, name)
            .map(|d| t.on_demand_usd_per_hour * (1.0 - d)))
    }

    /// Prices a list of types (a mixed-instances group) under `policy`.
    pub fn price_of_types(
        &self,
        names: &[String],
        policy: MixedPricePolicy,
    ) -> Result<NodePrice, CatalogError> {
        let mut prices = Vec::with_capacity(names.len());
        for name in names {
            prices.push(NodePrice {
                on_demand_usd_per_hour: self.on_demand_price(name)?,
                spot_usd_per_hour: self.spot_price(name)?,
            });
        }
        let Some(first) = prices.first().copied() else {
            return Err(CatalogError::Unpriceable(String::new()));
        };
        Ok(match policy {
            MixedPricePolicy::First => first,
            // The cheapest by on-demand price; its own spot price comes along.
            MixedPricePolicy::Cheapest => prices
                .into_iter()
                .min_by(|a, b| {
                    a.on_demand_usd_per_hour
                        .total_cmp(&b.on_demand_usd_per_hour)
                })
                .unwrap_or(first),
            MixedPricePolicy::Mean => {
                #[allow(clippy::cast_precision_loss)]
                let n = prices.len() as f64;
                let od = prices.iter().map(|p| p.on_demand_usd_per_hour).sum::<f64>() / n;
                let spot = prices
                    .iter()
                    .map(|p| p.spot_usd_per_hour)
                    .sum::<Option<f64>>()
                    .map(|s| s / n);
                NodePrice {
                    on_demand_usd_per_hour: od,
                    spot_usd_per_hour: spot,
                }
            }
        })
    }

    fn group(&self, id: &str) -> Result<&NodeGroupSpec, CatalogError> {
        self.overrides
            .node_groups
            .get(id)
            .ok_or_else(|| CatalogError::UnknownGroup(id.to_owned()))
    }

    /// Price of one node of a configured group: its custom prices if set, else
    /// its types under its (or the catalog's) mixed-instances policy.
    pub fn group_price(&self, id: &str) -> Result<NodePrice, CatalogError> {
        let g = self.group(id)?;
        let policy = g
            .price_policy
            .unwrap_or(self.overrides.mixed_instances_policy);
        let from_types = if g.instance_types.is_empty() {
            None
        } else {
            Some(self.price_of_types(&g.instance_types, policy)?)
        };
        let on_demand = g
            .usd_per_hour
            .or(from_types.map(|p| p.on_demand_usd_per_hour))
            .ok_or_else(|| CatalogError::Unpriceable(id.to_owned()))?;
        let spot = g
            .spot_usd_per_hour
            .or(from_types.and_then(|p| p.spot_usd_per_hour));
        Ok(NodePrice {
            on_demand_usd_per_hour: on_demand,
            spot_usd_per_hour: spot,
        })
    }

    /// A node template for a configured group: the custom shape, else the
    /// first instance type's (as CA does for mixed-instances groups).
    /// Allocatable equals capacity; callers subtract system reservations.
    pub fn group_template(&self, id: &str, exists: bool) -> Result<NodeTemplate, CatalogError> {
        let g = self.group(id)?;
        let first = g
            .instance_types
            .first()
            .map(|n| self.lookup(n))
            .transpose()?;
        let vcpu = g.vcpu.or(first.map(|t| t.vcpu));
        let memory_mib = g.memory_mib.or(first.map(|t| t.memory_mib));
        let (Some(vcpu), Some(memory_mib)) = (vcpu, memory_mib) else {
            return Err(CatalogError::Unpriceable(id.to_owned()));
        };
        #[allow(clippy::cast_possible_wrap)]
        let capacity = Resources::new(
            i64::from(vcpu) * 1000,
            (memory_mib as i64).saturating_mul(MIB),
        );
        Ok(NodeTemplate {
            capacity,
            allocatable: capacity,
            max_pods: 110,
            gpus: g.gpus.or(first.map(|t| t.gpus)).unwrap_or(0),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            price: PriceInputs {
                instance_types: g.instance_types.clone(),
                capacity_type: g.capacity_type,
                usd_per_hour: None,
            },
            exists,
        })
    }

    /// The per-vCPU-hour and per-GiB-hour rates: the configured ones, else
    /// [`Catalog::fit_rates`] over current-generation, non-burstable, non-GPU
    /// types (computed once, when the catalog is built).
    pub fn rates(&self) -> Result<Rates, CatalogError> {
        self.rates.ok_or(CatalogError::NoTypesForRates)
    }

    fn compute_rates(&self) -> Result<Rates, CatalogError> {
        if let Some(r) = self.overrides.rates {
            return Ok(r);
        }
        self.fit_rates(&TypeFilter {
            gpu: false,
            ..TypeFilter::default()
        })
    }

    /// Fits `price ≈ a·vCPU + b·GiB` over the types passing `filter`,
    /// minimising the squared *relative* error (so small and large types count
    /// alike), with both rates kept ≥ 0. Uses on-demand prices after discounts.
    pub fn fit_rates(&self, filter: &TypeFilter) -> Result<Rates, CatalogError> {
        // Normal equations of Σ (a·x + b·y − 1)², x = vcpu/p, y = GiB/p.
        let (mut sxx, mut sxy, mut syy, mut sx, mut sy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut n = 0usize;
        for t in self.instance_types(filter) {
            let p = self.on_demand_price(&t.name)?;
            if p <= 0.0 {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let (x, y) = (f64::from(t.vcpu) / p, t.memory_mib as f64 * GIB_PER_MIB / p);
            sxx += x * x;
            sxy += x * y;
            syy += y * y;
            sx += x;
            sy += y;
            n += 1;
        }
        if n == 0 {
            return Err(CatalogError::NoTypesForRates);
        }
        let det = sxx * syy - sxy * sxy;
        let (a, b) = if det.abs() > f64::EPSILON * sxx * syy {
            ((sx * syy - sy * sxy) / det, (sy * sxx - sx * sxy) / det)
        } else {
            (-1.0, -1.0)
        };
        if a >= 0.0 && b >= 0.0 {
            return Ok(Rates {
                usd_per_vcpu_hour: a,
                usd_per_gib_hour: b,
            });
        }
        // Constrained optimum lies on an axis: fit one rate alone, keep the better.
        let a_only = if sxx > 0.0 { sx / sxx } else { 0.0 };
        let b_only = if syy > 0.0 { sy / syy } else { 0.0 };
        let err_a = a_only * a_only * sxx - 2.0 * a_only * sx;
        let err_b = b_only * b_only * syy - 2.0 * b_only * sy;
        Ok(if err_a <= err_b {
            Rates {
                usd_per_vcpu_hour: a_only,
                usd_per_gib_hour: 0.0,
            }
        } else {
            Rates {
                usd_per_vcpu_hour: 0.0,
                usd_per_gib_hour: b_only,
            }
        })
    }
}

/// 1-based line of a byte offset. The csv crate's own line count is off by
/// one for CRLF files (the AWS file uses CRLF), so count newlines directly;
/// only done on the error path.
fn line_at(text: &str, byte: u64) -> u64 {
    let bytes = text.as_bytes();
    let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    // With CRLF the reported start can sit on the previous line's `\n`.
    while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    let newlines = bytes[..end].iter().filter(|&&b| b == b'\n').count();
    u64::try_from(newlines)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

fn csv_error(text: &str, e: &csv::Error) -> CatalogError {
    CatalogError::Csv {
        line: e.position().map_or(0, |p| line_at(text, p.byte())),
        message: e.to_string(),
    }
}

type RowError = (usize, &'static str);

fn parse_row<'r>(field: &dyn Fn(usize) -> &'r str) -> Result<InstanceType, RowError> {
    let name = field(0);
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err((0, "is not an instance type name"));
    }
    let vcpu: u32 = field(1).parse().map_err(|_| (1, "is not a whole number"))?;
    if vcpu == 0 {
        return Err((1, "must be > 0"));
    }
    let memory_mib: u64 = field(2).parse().map_err(|_| (2, "is not a whole number"))?;
    if memory_mib == 0 {
        return Err((2, "must be > 0"));
    }
    let gpus: u32 = field(3).parse().map_err(|_| (3, "is not a whole number"))?;
    let architectures: Vec<String> = field(4).split_whitespace().map(str::to_owned).collect();
    if architectures.is_empty() {
        return Err((4, "lists no architecture"));
    }
    let flag = |i: usize| match field(i) {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err((i, "is not true or false")),
    };
    let price: f64 = field(8).parse().map_err(|_| (8, "is not a number"))?;
    if !price.is_finite() || price < 0.0 {
        return Err((8, "must be a price ≥ 0"));
    }
    Ok(InstanceType {
        name: name.to_owned(),
        vcpu,
        memory_mib,
        gpus,
        architectures,
        current_generation: flag(5)?,
        burstable: flag(6)?,
        bare_metal: flag(7)?,
        on_demand_usd_per_hour: price,
    })
}

impl CatalogError {
    fn pricing(self, subject: &str) -> PricingError {
        PricingError {
            subject: subject.to_owned(),
            reason: self.to_string(),
        }
    }
}

impl PricingModel for Catalog {
    /// An explicit template price wins; then a configured group; then the
    /// template's instance types under the catalog's mixed-instances policy.
    fn node_price(&self, id: &str, template: &NodeTemplate) -> Result<NodePrice, PricingError> {
        if let Some(p) = template.price.usd_per_hour {
            return Ok(NodePrice {
                on_demand_usd_per_hour: p,
                spot_usd_per_hour: None,
            });
        }
        if self.overrides.node_groups.contains_key(id) {
            return self.group_price(id).map_err(|e| e.pricing(id));
        }
        if template.price.instance_types.is_empty() {
            return Err(PricingError {
                subject: id.to_owned(),
                reason: "template names no instance type and no price".into(),
            });
        }
        self.price_of_types(
            &template.price.instance_types,
            self.overrides.mixed_instances_policy,
        )
        .map_err(|e| e.pricing(id))
    }

    fn pod_price(&self, requests: Resources) -> Result<f64, PricingError> {
        Ok(self.rates().map_err(|e| e.pricing("pod"))?.price(requests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const HEADER: &str = "instance_type,vcpu,memory_mib,gpus,architectures,current_generation,burstable,bare_metal,on_demand_usd_per_hour";

    fn small() -> Catalog {
        Catalog::from_csv(&format!(
            "{HEADER}
m5.large,2,8192,0,x86_64,true,false,false,0.096
m5a.large,2,8192,0,x86_64,true,false,false,0.086
c5.xlarge,4,8192,0,x86_64,true,false,false,0.17
r5.large,2,16384,0,x86_64,true,false,false,0.126
t3.micro,2,1024,0,x86_64,true,true,false,0.0104
m1.small,1,1740,0,i386 x86_64,false,false,false,0.044
p3.2xlarge,8,62464,1,x86_64,true,false,false,3.06
"
        ))
        .unwrap()
    }

    fn real_csv() -> String {
        let base = std::env::var("TAILOR_SHARED_DATA")
            .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
        let path = format!("{base}/aws/aws-ec2-us-east-1.csv");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    #[test]
    fn loads_the_real_catalog() {
        let c = Catalog::from_csv(&real_csv()).unwrap();
        assert_eq!(c.len(), 1340);
        let m = c.instance_type("m5.large").unwrap();
        assert_eq!((m.vcpu, m.memory_mib, m.gpus), (2, 8192, 0));
        assert!((m.on_demand_usd_per_hour - 0.096).abs() < 1e-12);
        assert_eq!(m.resources(), Resources::new(2000, 8 * 1024 * MIB));
        assert_eq!(
            c.instance_type("m1.small").unwrap().architectures,
            vec!["i386", "x86_64"]
        );
        let all = c.instance_types(&TypeFilter::ALL).count();
        let default = c.instance_types(&TypeFilter::default()).count();
        assert_eq!(all, 1340);
        assert!(default < all);
        assert!(
            c.instance_types(&TypeFilter::default())
                .all(|t| !t.burstable && t.current_generation)
        );
        // Fitted rates land in the range AWS list prices imply for general-purpose
        // capacity: a few cents per vCPU-hour, well under a cent per GiB-hour.
        let r = c.rates().unwrap();
        assert!((0.005..0.08).contains(&r.usd_per_vcpu_hour), "{r:?}");
        assert!((0.0005..0.015).contains(&r.usd_per_gib_hour), "{r:?}");
        // The fit reproduces a general-purpose type's price within 35%.
        let m5 = c.instance_type("m5.xlarge").unwrap();
        let fitted = r.price(m5.resources());
        assert!(
            (fitted / m5.on_demand_usd_per_hour - 1.0).abs() < 0.35,
            "{fitted}"
        );
    }

    #[rstest]
    #[case(
        "m5.large,2,8192,0,x86_64,true,false,false,0.096\nbad,x,1,0,x86_64,true,false,false,1",
        "catalog CSV line 3, field \"vcpu\": \"x\" is not a whole number"
    )]
    #[case(
        "m5.large,0,8192,0,x86_64,true,false,false,0.096",
        "catalog CSV line 2, field \"vcpu\": \"0\" must be > 0"
    )]
    #[case(
        "m5.large,2,-1,0,x86_64,true,false,false,0.096",
        "catalog CSV line 2, field \"memory_mib\": \"-1\" is not a whole number"
    )]
    #[case(
        "m5.large,2,8192,0,,true,false,false,0.096",
        "catalog CSV line 2, field \"architectures\": \"\" lists no architecture"
    )]
    #[case(
        "m5.large,2,8192,0,x86_64,yes,false,false,0.096",
        "catalog CSV line 2, field \"current_generation\": \"yes\" is not true or false"
    )]
    #[case(
        "m5.large,2,8192,0,x86_64,true,false,false,",
        "catalog CSV line 2, field \"on_demand_usd_per_hour\": \"\" is not a number"
    )]
    #[case(
        "m5.large,2,8192,0,x86_64,true,false,false,-0.1",
        "catalog CSV line 2, field \"on_demand_usd_per_hour\": \"-0.1\" must be a price ≥ 0"
    )]
    #[case(
        "m5.large,2,8192,0,x86_64,true,false,false,NaN",
        "catalog CSV line 2, field \"on_demand_usd_per_hour\": \"NaN\" must be a price ≥ 0"
    )]
    #[case(
        ",2,8192,0,x86_64,true,false,false,1",
        "catalog CSV line 2, field \"instance_type\": \"\" is not an instance type name"
    )]
    #[case(
        "m5.large,2,8192,0,x86_64,true,false,false,0.096\nm5.large,2,8192,0,x86_64,true,false,false,0.096",
        "catalog CSV line 3: instance type \"m5.large\" already listed on line 2"
    )]
    #[case("m5.large,2,8192,0,x86_64,true,false", "catalog CSV line 2:")]
    #[case("", "catalog CSV has no instance types")]
    fn malformed_rows_name_line_and_field(#[case] rows: &str, #[case] message: &str) {
        let err = Catalog::from_csv(&format!("{HEADER}\n{rows}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(message), "{err}");
    }

    #[test]
    fn malformed_row_in_the_real_file_is_located() {
        let mut text = real_csv();
        text.push_str("x1.broken,4,notanumber,0,x86_64,true,false,false,1.0\n");
        let err = Catalog::from_csv(&text).unwrap_err();
        assert_eq!(
            err,
            CatalogError::Field {
                line: 1342,
                field: "memory_mib",
                value: "notanumber".into(),
                reason: "is not a whole number"
            }
        );
    }

    #[test]
    fn crlf_lines_are_counted_right() {
        let text = format!(
            "{HEADER}\r\nm5.large,2,8192,0,x86_64,true,false,false,0.096\r\nm5.xlarge,4,x,0,x86_64,true,false,false,0.192\r\n"
        );
        match Catalog::from_csv(&text).unwrap_err() {
            CatalogError::Field { line, field, .. } => assert_eq!((line, field), (3, "memory_mib")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_column_is_named() {
        let err = Catalog::from_csv("instance_type,vcpu\nm5.large,2\n").unwrap_err();
        assert_eq!(
            err,
            CatalogError::MissingColumn {
                column: "memory_mib"
            }
        );
    }

    const OVERRIDES: &str = r#"
mixedInstancesPolicy: first
spotPrices: { m5.large: 0.035 }
spotDiscount: { "*": 0.6, c5.xlarge: 0.7 }
onDemandDiscount: { r5.large: 0.5 }
nodeGroups:
  mixed: { instanceTypes: [m5.large, m5a.large, c5.xlarge] }
  mixed-cheapest: { instanceTypes: [m5.large, m5a.large, c5.xlarge], pricePolicy: cheapest }
  mixed-mean: { instanceTypes: [m5.large, m5a.large], pricePolicy: mean, capacityType: spot }
  custom: { usdPerHour: 1.5, vcpu: 64, memoryMib: 262144 }
"#;

    #[rstest]
    #[case("mixed", 0.096, Some(0.035))]
    #[case("mixed-cheapest", 0.086, Some(0.086 * 0.4))]
    #[case("mixed-mean", (0.096 + 0.086) / 2.0, Some((0.035 + 0.086 * 0.4) / 2.0))]
    #[case("custom", 1.5, None)]
    fn group_prices(#[case] id: &str, #[case] on_demand: f64, #[case] spot: Option<f64>) {
        let c = small().with_overrides_yaml(OVERRIDES).unwrap();
        let p = c.group_price(id).unwrap();
        assert!(
            (p.on_demand_usd_per_hour - on_demand).abs() < 1e-12,
            "{p:?}"
        );
        match (p.spot_usd_per_hour, spot) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{a} != {b}"),
            (a, b) => assert_eq!(a, b),
        }
    }

    #[test]
    fn type_prices_apply_discounts() {
        let c = small().with_overrides_yaml(OVERRIDES).unwrap();
        assert!((c.on_demand_price("r5.large").unwrap() - 0.063).abs() < 1e-12);
        assert!((c.spot_price("c5.xlarge").unwrap().unwrap() - 0.051).abs() < 1e-12);
        assert_eq!(c.spot_price("m5.large").unwrap(), Some(0.035));
        assert_eq!(small().spot_price("m5.large").unwrap(), None);
        assert_eq!(
            c.on_demand_price("z9.huge").unwrap_err(),
            CatalogError::UnknownType("z9.huge".into())
        );
    }

    #[test]
    fn group_templates_take_the_first_type_or_custom_shape() {
        let c = small().with_overrides_yaml(OVERRIDES).unwrap();
        let t = c.group_template("mixed", true).unwrap();
        assert_eq!(t.capacity, Resources::new(2000, 8192 * MIB));
        assert_eq!(t.price.instance_types[0], "m5.large");
        let t = c.group_template("custom", false).unwrap();
        assert_eq!(t.capacity, Resources::new(64_000, 262_144 * MIB));
        assert!(!t.exists);
        let t = c.group_template("mixed-mean", true).unwrap();
        assert_eq!(t.price.capacity_type, CapacityType::Spot);
        assert!(c.group_template("nope", true).is_err());
    }

    #[test]
    fn catalog_is_a_pricing_model() {
        let c = small().with_overrides_yaml(OVERRIDES).unwrap();
        let mut t = c.group_template("mixed-mean", true).unwrap();
        let p = c.node_price("mixed-mean", &t).unwrap();
        assert!((p.billed(CapacityType::Spot) - (0.035 + 0.0344) / 2.0).abs() < 1e-12);
        // An unconfigured group is priced from its template's types.
        t.price.instance_types = vec!["c5.xlarge".into()];
        let p = c.node_price("asg-from-tags", &t).unwrap();
        assert!((p.on_demand_usd_per_hour - 0.17).abs() < 1e-12);
        t.price.instance_types = vec!["nope".into()];
        let err = c.node_price("asg-from-tags", &t).unwrap_err().to_string();
        assert_eq!(
            err,
            "no price for asg-from-tags: instance type \"nope\" is not in the catalog"
        );
        t.price.usd_per_hour = Some(0.5);
        assert_eq!(
            c.node_price("asg-from-tags", &t)
                .unwrap()
                .on_demand_usd_per_hour,
            0.5
        );
        assert!(c.pod_price(Resources::new(1000, 1024 * MIB)).unwrap() > 0.0);
    }

    #[rstest]
    #[case(
        "spotPrices: { z1.big: 1 }",
        "catalog overrides, field spotPrices.z1.big: instance type \"z1.big\" is not in the catalog"
    )]
    #[case(
        "spotPrices: { m5.large: -1 }",
        "catalog overrides, field spotPrices.m5.large: must be a price ≥ 0"
    )]
    #[case(
        "spotDiscount: { \"*\": 1.5 }",
        "catalog overrides, field spotDiscount.*: must be a fraction in [0, 1)"
    )]
    #[case(
        "nodeGroups: { g: { instanceTypes: [m5.large, nope] } }",
        "catalog overrides, field nodeGroups.g.instanceTypes[1]: instance type \"nope\""
    )]
    #[case(
        "nodeGroups: { g: { vcpu: 4 } }",
        "node group \"g\" has no instance types and no custom price and shape"
    )]
    #[case(
        "nodeGroups: { g: { instanceTypes: [m5.large], usdPerHour: .nan } }",
        "catalog overrides, field nodeGroups.g.usdPerHour: must be a price ≥ 0"
    )]
    #[case(
        "mixedInstancesPolicy: priciest",
        "catalog overrides: mixedInstancesPolicy: unknown variant"
    )]
    #[case("spotPrice: {}", "catalog overrides: unknown field `spotPrice`")]
    fn bad_overrides_are_clear_errors(#[case] yaml: &str, #[case] message: &str) {
        let err = small().with_overrides_yaml(yaml).unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
    }

    #[test]
    fn rate_fit_recovers_exact_rates() {
        // Prices built from exact rates are recovered exactly.
        let (a, b) = (0.03, 0.004);
        let rows: String = [(2u32, 4u64), (4, 8), (2, 16), (8, 16), (16, 128)]
            .iter()
            .enumerate()
            .map(|(i, &(v, g))| {
                let p = a * f64::from(v) + b * g as f64;
                format!(
                    "x{i}.large,{v},{},0,x86_64,true,false,false,{p}\n",
                    g * 1024
                )
            })
            .collect();
        let c = Catalog::from_csv(&format!("{HEADER}\n{rows}")).unwrap();
        let r = c.rates().unwrap();
        assert!((r.usd_per_vcpu_hour - a).abs() < 1e-9, "{r:?}");
        assert!((r.usd_per_gib_hour - b).abs() < 1e-9, "{r:?}");
        let fixed = c
            .with_overrides_yaml("rates: { usdPerVcpuHour: 0.05, usdPerGibHour: 0.001 }")
            .unwrap();
        assert_eq!(fixed.rates().unwrap().usd_per_vcpu_hour, 0.05);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_rows_never_panic(rows in "[a-z0-9., \\n\"-]{0,200}") {
            let _ = Catalog::from_csv(&format!("{HEADER}\n{rows}"));
        }

        #[test]
        fn arbitrary_overrides_never_panic(yaml in "[a-zA-Z0-9:{}\\[\\], .\\n*-]{0,120}") {
            let _ = small().with_overrides_yaml(&yaml);
        }
    }

    #[test]
    fn rates_need_eligible_types() {
        let c = Catalog::from_csv(&format!(
            "{HEADER}\nt3.micro,2,1024,0,x86_64,true,true,false,0.0104\n"
        ))
        .unwrap();
        assert_eq!(c.rates(), Err(CatalogError::NoTypesForRates));
        assert!(c.pod_price(Resources::new(1000, MIB)).is_err());
        let c = c
            .with_overrides_yaml("rates: { usdPerVcpuHour: 0.04, usdPerGibHour: 0.005 }")
            .unwrap();
        assert!((c.pod_price(Resources::new(1000, 1024 * MIB)).unwrap() - 0.045).abs() < 1e-12);
    }

    #[test]
    fn filters_leave_out_burstable_previous_gen_and_gpu() {
        let c = small();
        let names = |f: TypeFilter| {
            c.instance_types(&f)
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(TypeFilter {
                gpu: false,
                ..TypeFilter::default()
            }),
            vec!["c5.xlarge", "m5.large", "m5a.large", "r5.large"]
        );
        assert!(names(TypeFilter::default()).contains(&"p3.2xlarge".to_owned()));
        assert!(
            names(TypeFilter {
                burstable: true,
                ..TypeFilter::default()
            })
            .contains(&"t3.micro".to_owned())
        );
        assert!(
            names(TypeFilter {
                previous_generation: true,
                ..TypeFilter::default()
            })
            .contains(&"m1.small".to_owned())
        );
        assert_eq!(names(TypeFilter::ALL).len(), 7);
    }
}
