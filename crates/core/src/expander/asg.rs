//! Node templates for AWS Auto Scaling groups, built the way Cluster
//! Autoscaler builds them: the instance type's shape from the catalog, then
//! the group's `k8s.io/cluster-autoscaler/node-template/...` tags for labels,
//! taints and resources.

use super::{NodeTemplate, PriceInputs};
use crate::catalog::{CapacityType, Catalog, CatalogError};
use crate::quantity::{self, Quantity};
use crate::resources::Resources;
use crate::scheduling::{Taint, TaintEffect};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Auto-discovery tag every CA-managed group carries.
pub const ENABLED_TAG: &str = "k8s.io/cluster-autoscaler/enabled";
/// Prefix of the per-cluster auto-discovery tag (`…/<cluster-name>`).
pub const CLUSTER_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/";
/// Prefix of node-template label tags (`…/label/<key>` = value).
pub const LABEL_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/node-template/label/";
/// Prefix of node-template taint tags (`…/taint/<key>` = `value:Effect`).
pub const TAINT_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/node-template/taint/";
/// Prefix of node-template resource tags (`…/resources/<name>` = quantity).
pub const RESOURCE_TAG_PREFIX: &str = "k8s.io/cluster-autoscaler/node-template/resources/";

/// Pods per node when no `resources/pods` tag says otherwise (CA's default).
pub const DEFAULT_MAX_PODS: u32 = 110;

const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";

/// The per-cluster discovery tag key, `k8s.io/cluster-autoscaler/<cluster>`.
#[must_use]
pub fn cluster_tag(cluster: &str) -> String {
    format!("{CLUSTER_TAG_PREFIX}{cluster}")
}

/// An Auto Scaling group as discovered: what the AWS API said, flattened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsgDescription {
    /// `AutoScalingGroupName`.
    pub name: String,
    /// `MinSize`.
    pub min_size: u32,
    /// `MaxSize`.
    pub max_size: u32,
    /// `DesiredCapacity`.
    pub desired: u32,
    /// Instance types in CA's order of preference: the mixed-instances
    /// overrides (CA takes the first), else the launch configuration's type,
    /// else the launch template's, else the types of the group's running
    /// instances.
    pub instance_types: Vec<String>,
    /// The mixed-instances distribution buys only spot capacity.
    pub spot: bool,
    /// Tags, key → value.
    pub tags: BTreeMap<String, String>,
    /// EC2 instance ids currently in the group.
    pub instance_ids: Vec<String>,
    /// Availability zones, in the order AWS lists them.
    pub zones: Vec<String>,
    /// Why the group's launch template could not be read, if it was needed.
    #[serde(default)]
    pub launch_template_error: Option<String>,
}

/// A group's template could not be built; names the group and the cause.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// Nothing says which instance type the group launches.
    #[error(
        "Auto Scaling group {group:?}: no instance type found (no mixed-instances override, launch configuration, launch template type or running instance{}); add the tag {LABEL_TAG_PREFIX}{INSTANCE_TYPE_LABEL} or a nodeGroups entry in the catalog overrides",
        cause.as_ref().map(|c| format!("; {c}")).unwrap_or_default()
    )]
    NoInstanceType {
        /// Group name.
        group: String,
        /// Why the launch template did not say, when it was read.
        cause: Option<String>,
    },
    /// The catalog cannot shape or price the group.
    #[error("Auto Scaling group {group:?}: {error}")]
    Catalog {
        /// Group name.
        group: String,
        /// What the catalog said.
        error: CatalogError,
    },
    /// A taint tag is not `value:Effect` with a known effect.
    #[error(
        "Auto Scaling group {group:?}, tag {key:?}: {value:?} is not value:Effect (Effect one of NoSchedule, PreferNoSchedule, NoExecute)"
    )]
    BadTaint {
        /// Group name.
        group: String,
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
    /// A resource tag is not a valid quantity.
    #[error("Auto Scaling group {group:?}, tag {key:?}: {value:?} {reason}")]
    BadResource {
        /// Group name.
        group: String,
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

fn kube_arch(aws: &str) -> &str {
    match aws {
        "x86_64" | "x86_64_mac" => "amd64",
        "arm64" | "arm64_mac" => "arm64",
        "i386" => "386",
        other => other,
    }
}

fn taint(group: &str, key: &str, taint_key: &str, value: &str) -> Result<Taint, TemplateError> {
    let bad = || TemplateError::BadTaint {
        group: group.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let (taint_value, effect) = value.split_once(':').ok_or_else(bad)?;
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => return Err(bad()),
    };
    if taint_key.is_empty() {
        return Err(bad());
    }
    Ok(Taint {
        key: taint_key.to_owned(),
        value: taint_value.to_owned(),
        effect,
    })
}

/// Applies one `resources/<name>` tag; names other than cpu, memory, pods and
/// nvidia.com/gpu are not modelled and are ignored.
fn apply_resource(
    group: &str,
    key: &str,
    name: &str,
    value: &str,
    template: &mut NodeTemplate,
) -> Result<(), TemplateError> {
    let bad = |reason: String| TemplateError::BadResource {
        group: group.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let parsed = match name {
        "cpu" | "memory" | "pods" | "nvidia.com/gpu" => {
            Quantity::parse(value).map_err(|e| bad(e.to_string()))?
        }
        _ => return Ok(()),
    };
    if parsed.milli_value().is_ok_and(|m| m < 0) {
        return Err(bad("is negative".into()));
    }
    match name {
        "cpu" => {
            template.capacity.cpu_millis =
                quantity::cpu_millis(value).map_err(|e| bad(e.to_string()))?;
        }
        "memory" => {
            template.capacity.memory_bytes =
                quantity::memory_bytes(value).map_err(|e| bad(e.to_string()))?;
        }
        "pods" => {
            let n = parsed.value().map_err(|e| bad(e.to_string()))?;
            template.max_pods = u32::try_from(n).map_err(|_| bad("is out of range".into()))?;
        }
        _ => {
            let n = parsed.value().map_err(|e| bad(e.to_string()))?;
            template.gpus = u32::try_from(n).map_err(|_| bad("is out of range".into()))?;
        }
    }
    Ok(())
}

/// True when the labels say the nodes are spot (EKS or Karpenter spelling).
fn spot_by_labels(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get("eks.amazonaws.com/capacityType")
        .map(String::as_str)
        == Some("SPOT")
        || labels.get("karpenter.sh/capacity-type").map(String::as_str) == Some("spot")
}

/// The template node of `asg`, as Cluster Autoscaler would build it.
///
/// Shape: a `nodeGroups` entry of the catalog overrides named like the group
/// wins; else the first instance type (tag `…/label/node.kubernetes.io/instance-type`
/// when AWS names none). Labels: `kubernetes.io/os`, `kubernetes.io/arch`,
/// the instance type, region and zone (first zone), then the label tags.
/// Taints from the taint tags; `resources/` tags replace capacity (cpu,
/// memory, pods, nvidia.com/gpu). Allocatable equals capacity, as in CA.
pub fn node_template(
    asg: &AsgDescription,
    catalog: &Catalog,
) -> Result<NodeTemplate, TemplateError> {
    let group = asg.name.as_str();
    let catalog_err = |error| TemplateError::Catalog {
        group: group.to_owned(),
        error,
    };
    let tag_labels: BTreeMap<String, String> = asg
        .tags
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(LABEL_TAG_PREFIX)
                .filter(|key| !key.is_empty())
                .map(|key| (key.to_owned(), v.clone()))
        })
        .collect();
    let mut instance_types = asg.instance_types.clone();
    if instance_types.is_empty()
        && let Some(t) = tag_labels.get(INSTANCE_TYPE_LABEL)
    {
        instance_types.push(t.clone());
    }
    let configured = catalog.overrides().node_groups.contains_key(group);
    let mut template = if configured {
        catalog.group_template(group, true).map_err(catalog_err)?
    } else {
        let first = instance_types
            .first()
            .ok_or_else(|| TemplateError::NoInstanceType {
                group: group.to_owned(),
                cause: asg.launch_template_error.clone(),
            })?;
        let t = catalog
            .instance_type(first)
            .ok_or_else(|| catalog_err(CatalogError::UnknownType(first.clone())))?;
        let capacity: Resources = t.resources();
        NodeTemplate {
            capacity,
            allocatable: capacity,
            max_pods: DEFAULT_MAX_PODS,
            gpus: t.gpus,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            price: PriceInputs {
                instance_types: instance_types.clone(),
                capacity_type: CapacityType::OnDemand,
                usd_per_hour: None,
            },
            exists: true,
        }
    };
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/os".to_owned(), "linux".to_owned());
    if let Some(first) = template
        .price
        .instance_types
        .first()
        .or(instance_types.first())
    {
        labels.insert(INSTANCE_TYPE_LABEL.to_owned(), first.clone());
        if let Some(arch) = catalog
            .instance_type(first)
            .and_then(|t| t.architectures.first())
        {
            labels.insert("kubernetes.io/arch".to_owned(), kube_arch(arch).to_owned());
        }
    }
    if let Some(zone) = asg.zones.first() {
        labels.insert("topology.kubernetes.io/zone".to_owned(), zone.clone());
        let region = zone.trim_end_matches(|c: char| c.is_ascii_lowercase());
        if !region.is_empty() && region != zone {
            labels.insert(
                "topology.kubernetes.io/region".to_owned(),
                region.to_owned(),
            );
        }
    }
    labels.extend(tag_labels);
    for (key, value) in &asg.tags {
        if let Some(taint_key) = key.strip_prefix(TAINT_TAG_PREFIX) {
            template.taints.push(taint(group, key, taint_key, value)?);
        } else if let Some(name) = key.strip_prefix(RESOURCE_TAG_PREFIX) {
            apply_resource(group, key, name, value, &mut template)?;
        }
    }
    template.allocatable = template.capacity;
    if asg.spot || spot_by_labels(&labels) {
        template.price.capacity_type = CapacityType::Spot;
    }
    template.labels = labels;
    template.exists = true;
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GIB: i64 = 1 << 30;

    fn catalog() -> Catalog {
        Catalog::from_csv(
            "instance_type,vcpu,memory_mib,gpus,architectures,current_generation,burstable,bare_metal,on_demand_usd_per_hour\n\
             m6i.large,2,8192,0,x86_64,true,false,false,0.096\n\
             m6g.xlarge,4,16384,0,arm64,true,false,false,0.154\n\
             g5.xlarge,4,16384,1,x86_64,true,false,false,1.006\n",
        )
        .unwrap()
    }

    fn asg(types: &[&str], tags: &[(&str, &str)]) -> AsgDescription {
        AsgDescription {
            name: "workers".into(),
            min_size: 0,
            max_size: 10,
            desired: 1,
            instance_types: types.iter().map(|t| (*t).to_owned()).collect(),
            spot: false,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            instance_ids: vec![],
            zones: vec!["us-east-1b".into(), "us-east-1a".into()],
            launch_template_error: None,
        }
    }

    #[test]
    fn shape_labels_taints_and_resources_from_tags() {
        let a = asg(
            &["m6g.xlarge", "m6i.large"],
            &[
                (ENABLED_TAG, "true"),
                (
                    "k8s.io/cluster-autoscaler/node-template/label/pool",
                    "general",
                ),
                (
                    "k8s.io/cluster-autoscaler/node-template/taint/dedicated",
                    "batch:NoSchedule",
                ),
                (
                    "k8s.io/cluster-autoscaler/node-template/taint/empty",
                    ":NoExecute",
                ),
                (
                    "k8s.io/cluster-autoscaler/node-template/resources/pods",
                    "58",
                ),
                (
                    "k8s.io/cluster-autoscaler/node-template/resources/memory",
                    "15Gi",
                ),
                (
                    "k8s.io/cluster-autoscaler/node-template/resources/ephemeral-storage",
                    "100Gi",
                ),
            ],
        );
        let t = node_template(&a, &catalog()).unwrap();
        // The first mixed-instances override, as CA does.
        assert_eq!(t.capacity, Resources::new(4000, 15 * GIB));
        assert_eq!(t.allocatable, t.capacity);
        assert_eq!(t.max_pods, 58);
        assert_eq!(t.price.instance_types, vec!["m6g.xlarge", "m6i.large"]);
        assert_eq!(t.price.capacity_type, CapacityType::OnDemand);
        let expected: BTreeMap<String, String> = [
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "arm64"),
            ("node.kubernetes.io/instance-type", "m6g.xlarge"),
            ("topology.kubernetes.io/zone", "us-east-1b"),
            ("topology.kubernetes.io/region", "us-east-1"),
            ("pool", "general"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(t.labels, expected);
        assert_eq!(
            t.taints,
            vec![
                Taint {
                    key: "dedicated".into(),
                    value: "batch".into(),
                    effect: TaintEffect::NoSchedule
                },
                Taint {
                    key: "empty".into(),
                    value: String::new(),
                    effect: TaintEffect::NoExecute
                },
            ]
        );
    }

    #[test]
    fn no_instance_type_says_why_the_launch_template_did_not() {
        let mut a = asg(&[], &[]);
        a.launch_template_error = Some("launch template lt-1 version $Latest: refused".into());
        let err = node_template(&a, &catalog()).unwrap_err().to_string();
        assert!(
            err.contains(
                "running instance; launch template lt-1 version $Latest: refused); add the tag"
            ),
            "{err}"
        );
    }

    #[rstest]
    #[case(&[], &[("k8s.io/cluster-autoscaler/node-template/label/node.kubernetes.io/instance-type", "g5.xlarge")], Ok((4000, 1)))]
    #[case(&["g5.xlarge"], &[("k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu", "4"), ("k8s.io/cluster-autoscaler/node-template/resources/cpu", "3500m")], Ok((3500, 4)))]
    #[case(&[], &[], Err("no instance type found"))]
    #[case(&["c7i.large"], &[], Err("instance type \"c7i.large\" is not in the catalog"))]
    #[case(&["m6i.large"], &[("k8s.io/cluster-autoscaler/node-template/taint/x", "NoSchedule")], Err("is not value:Effect"))]
    #[case(&["m6i.large"], &[("k8s.io/cluster-autoscaler/node-template/taint/x", "v:Sometimes")], Err("is not value:Effect"))]
    #[case(&["m6i.large"], &[("k8s.io/cluster-autoscaler/node-template/resources/memory", "lots")], Err("\"lots\""))]
    #[case(&["m6i.large"], &[("k8s.io/cluster-autoscaler/node-template/resources/pods", "-1")], Err("is negative"))]
    fn table(
        #[case] types: &[&str],
        #[case] tags: &[(&str, &str)],
        #[case] expected: Result<(i64, u32), &str>,
    ) {
        match (node_template(&asg(types, tags), &catalog()), expected) {
            (Ok(t), Ok((cpu, gpus))) => assert_eq!((t.capacity.cpu_millis, t.gpus), (cpu, gpus)),
            (Err(e), Err(text)) => {
                let msg = e.to_string();
                assert!(msg.contains(text), "{msg}");
                assert!(msg.contains("\"workers\""), "names the group: {msg}");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn spot_from_distribution_or_labels_and_configured_groups() {
        let mut a = asg(&["m6i.large"], &[]);
        a.spot = true;
        assert_eq!(
            node_template(&a, &catalog()).unwrap().price.capacity_type,
            CapacityType::Spot
        );
        let a = asg(
            &["m6i.large"],
            &[(
                "k8s.io/cluster-autoscaler/node-template/label/eks.amazonaws.com/capacityType",
                "SPOT",
            )],
        );
        assert_eq!(
            node_template(&a, &catalog()).unwrap().price.capacity_type,
            CapacityType::Spot
        );
        let c = catalog()
            .with_overrides_yaml(
                "nodeGroups:\n  workers: { instanceTypes: [m6i.large], capacityType: spot }\n",
            )
            .unwrap();
        let t = node_template(&asg(&["g5.xlarge"], &[]), &c).unwrap();
        assert_eq!(t.capacity, Resources::new(2000, 8 * GIB));
        assert_eq!(t.price.capacity_type, CapacityType::Spot);
    }

    #[test]
    fn cluster_tag_is_ca_spelling() {
        assert_eq!(cluster_tag("prod"), "k8s.io/cluster-autoscaler/prod");
    }
}
