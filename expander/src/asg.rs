//! The AWS side of the AWS mode: discover Auto Scaling groups by Cluster
//! Autoscaler's tags and set a group's desired capacity. Thin on purpose:
//! what to do is decided in `tailor_core::expander::scaleup`.
//!
//! Actions called: `autoscaling:DescribeAutoScalingGroups`,
//! `autoscaling:DescribeLaunchConfigurations` (only for groups launched
//! from a launch configuration), `ec2:DescribeLaunchTemplateVersions` (only
//! for groups whose launch template names the instance type, without
//! mixed-instances overrides) and `autoscaling:SetDesiredCapacity`.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter, LaunchTemplateSpecification};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tailor_core::expander::asg::{AsgDescription, ENABLED_TAG, cluster_tag};

/// An AWS call failed (after the SDK's retries); names the call.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS kept throttling the call through every retry.
    #[error(
        "{operation}: throttled by AWS through every retry ({code}: {message}); lower the loop frequency or raise --aws-max-attempts"
    )]
    Throttled {
        /// The API action.
        operation: &'static str,
        /// AWS error code.
        code: String,
        /// AWS message.
        message: String,
    },
    /// AWS refused the call.
    #[error("{operation}: AWS answered {code}: {message}")]
    Service {
        /// The API action.
        operation: &'static str,
        /// AWS error code.
        code: String,
        /// AWS message.
        message: String,
    },
    /// The call did not get an answer (network, timeout, credentials).
    #[error("{operation}: {message}")]
    Transport {
        /// The API action.
        operation: &'static str,
        /// What went wrong, with its causes.
        message: String,
    },
    /// A group in the answer is not usable; names it.
    #[error("{operation}: Auto Scaling group {group:?}: {reason}")]
    Malformed {
        /// The API action.
        operation: &'static str,
        /// The group.
        group: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl AwsError {
    /// A stable label for metrics.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            AwsError::Throttled { .. } => "throttled",
            AwsError::Service { .. } => "service",
            AwsError::Transport { .. } => "transport",
            AwsError::Malformed { .. } => "malformed",
        }
    }

    /// The API action that failed.
    #[must_use]
    pub const fn operation(&self) -> &'static str {
        match self {
            AwsError::Throttled { operation, .. }
            | AwsError::Service { operation, .. }
            | AwsError::Transport { operation, .. }
            | AwsError::Malformed { operation, .. } => operation,
        }
    }

    fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &err {
            SdkError::ServiceError(_) => {
                let code = err.code().unwrap_or("Unknown").to_owned();
                let message = err.message().unwrap_or("").to_owned();
                if is_throttling(&code) {
                    AwsError::Throttled {
                        operation,
                        code,
                        message,
                    }
                } else {
                    AwsError::Service {
                        operation,
                        code,
                        message,
                    }
                }
            }
            _ => AwsError::Transport {
                operation,
                message: DisplayErrorContext(&err).to_string(),
            },
        }
    }
}

/// Error codes AWS uses for rate limiting (the SDK retries them with backoff).
#[must_use]
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException"
    )
}

/// How the SDK client is built.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// Endpoint override (moto, a VPC endpoint); `AWS_ENDPOINT_URL` also works.
    pub endpoint_url: Option<String>,
    /// Region override; else the standard chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Attempts per call, the first included (throttling and transient errors
    /// are retried with exponential backoff and jitter).
    pub max_attempts: u32,
    /// Limit on one call, its retries included.
    pub operation_timeout: Duration,
}

/// Loads the SDK configuration: credentials and region from the standard AWS
/// chain (environment, profile, web identity / IRSA, container, IMDS), an
/// HTTP client on rustls (ring), standard retries with backoff.
pub async fn sdk_config(options: &AwsOptions) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(retry_config(options.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(options.operation_timeout)
                .build(),
        );
    if let Some(url) = &options.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// Standard retry mode: exponential backoff with jitter from 100 ms, and
/// throttling errors retried like transient ones.
#[must_use]
pub fn retry_config(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(20))
}

/// An Auto Scaling client, with EC2 for launch templates.
#[derive(Clone, Debug)]
pub struct AsgClient {
    client: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
}

fn count(v: Option<i32>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// A launch template as a group names it, and the version it launches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateRef {
    /// `LaunchTemplateId` (preferred when AWS gives both).
    pub id: Option<String>,
    /// `LaunchTemplateName`.
    pub name: Option<String>,
    /// `$Default`, `$Latest` or a version number; AWS's default is `$Default`.
    pub version: String,
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = self.id.as_deref().or(self.name.as_deref()).unwrap_or("?");
        write!(f, "launch template {which} version {}", self.version)
    }
}

fn template_ref(spec: &LaunchTemplateSpecification) -> Option<TemplateRef> {
    let id = spec.launch_template_id().filter(|s| !s.is_empty());
    let name = spec.launch_template_name().filter(|s| !s.is_empty());
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(TemplateRef {
        id: id.map(str::to_owned),
        name: name.map(str::to_owned),
        version: spec
            .version()
            .filter(|v| !v.is_empty())
            .unwrap_or("$Default")
            .to_owned(),
    })
}

/// The launch template whose instance type a group launches, when nothing
/// the group itself says names the type: no mixed-instances override and no
/// launch configuration. The group's own template, else the one of its
/// mixed-instances policy.
pub fn template_to_read(g: &AutoScalingGroup) -> Option<TemplateRef> {
    let mip = g.mixed_instances_policy();
    let overrides = mip
        .and_then(|m| m.launch_template())
        .is_some_and(|lt| lt.overrides().iter().any(|o| o.instance_type().is_some()));
    if overrides || g.launch_configuration_name().is_some() {
        return None;
    }
    g.launch_template()
        .or_else(|| mip?.launch_template()?.launch_template_specification())
        .and_then(template_ref)
}

/// What a launch template version says, or why it could not be read.
pub type TemplateTypes = HashMap<TemplateRef, Result<String, String>>;

/// Flattens one group; `launch_config_types` maps launch configurations to
/// their instance types, `template_types` launch templates to theirs.
fn describe(
    g: &AutoScalingGroup,
    launch_config_types: &HashMap<String, String>,
    template_types: &TemplateTypes,
) -> Result<AsgDescription, AwsError> {
    let name = g.auto_scaling_group_name().unwrap_or_default().to_owned();
    let malformed = |reason| AwsError::Malformed {
        operation: "DescribeAutoScalingGroups",
        group: name.clone(),
        reason,
    };
    if name.is_empty() {
        return Err(malformed("no AutoScalingGroupName"));
    }
    let (Some(min), Some(max), Some(desired)) = (g.min_size(), g.max_size(), g.desired_capacity())
    else {
        return Err(malformed("MinSize, MaxSize or DesiredCapacity missing"));
    };
    if min < 0 || max < min || desired < 0 {
        return Err(malformed(
            "MinSize, MaxSize or DesiredCapacity out of order",
        ));
    }
    let mip = g.mixed_instances_policy();
    let mut instance_types: Vec<String> = mip
        .and_then(|m| m.launch_template())
        .map(|lt| {
            lt.overrides()
                .iter()
                .filter_map(|o| o.instance_type().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if instance_types.is_empty()
        && let Some(t) = g
            .launch_configuration_name()
            .and_then(|lc| launch_config_types.get(lc))
    {
        instance_types.push(t.clone());
    }
    let mut launch_template_error = None;
    if instance_types.is_empty()
        && let Some(r) = template_to_read(g)
    {
        match template_types.get(&r) {
            Some(Ok(t)) => instance_types.push(t.clone()),
            Some(Err(e)) => launch_template_error = Some(format!("{r}: {e}")),
            None => {}
        }
    }
    if instance_types.is_empty() {
        // Nothing names the type (say, attribute-based instance
        // requirements): the running instances say what the group launches.
        let mut seen = BTreeSet::new();
        for i in g.instances() {
            if let Some(t) = i.instance_type()
                && seen.insert(t)
            {
                instance_types.push(t.to_owned());
            }
        }
    }
    let spot = mip
        .and_then(|m| m.instances_distribution())
        .is_some_and(|d| {
            d.on_demand_base_capacity().unwrap_or(0) == 0
                && d.on_demand_percentage_above_base_capacity() == Some(0)
        });
    let tags: BTreeMap<String, String> = g
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect();
    Ok(AsgDescription {
        name,
        min_size: count(Some(min)),
        max_size: count(Some(max)),
        desired: count(Some(desired)),
        instance_types,
        spot,
        tags,
        instance_ids: g
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect(),
        zones: g.availability_zones().to_vec(),
        launch_template_error,
    })
}

impl AsgClient {
    /// A client on `config`.
    #[must_use]
    pub fn new(config: &SdkConfig) -> AsgClient {
        AsgClient {
            client: aws_sdk_autoscaling::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
        }
    }

    /// Wraps existing SDK clients.
    #[must_use]
    pub fn from_clients(
        client: aws_sdk_autoscaling::Client,
        ec2: aws_sdk_ec2::Client,
    ) -> AsgClient {
        AsgClient { client, ec2 }
    }

    /// The groups tagged `k8s.io/cluster-autoscaler/enabled` and
    /// `k8s.io/cluster-autoscaler/<cluster>` (both keys, any value: CA's
    /// `--node-group-auto-discovery=asg:tag=…` form), sorted by name.
    pub async fn discover(&self, cluster: &str) -> Result<Vec<AsgDescription>, AwsError> {
        const OP: &str = "DescribeAutoScalingGroups";
        let filter = |key: String| Filter::builder().name("tag-key").values(key).build();
        let mut pages = self
            .client
            .describe_auto_scaling_groups()
            .filters(filter(ENABLED_TAG.to_owned()))
            .filters(filter(cluster_tag(cluster)))
            .into_paginator()
            .send();
        let mut groups = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk(OP, e))?;
            groups.extend(page.auto_scaling_groups().iter().cloned());
        }
        // Both tags must be present; a filter-less endpoint would return all.
        let wanted = cluster_tag(cluster);
        groups.retain(|g| {
            let has = |k: &str| g.tags().iter().any(|t| t.key() == Some(k));
            has(ENABLED_TAG) && has(&wanted)
        });
        let names: Vec<String> = groups
            .iter()
            .filter(|g| {
                g.mixed_instances_policy()
                    .and_then(|m| m.launch_template())
                    .is_none_or(|lt| lt.overrides().is_empty())
            })
            .filter_map(|g| g.launch_configuration_name().map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let launch_config_types = self.launch_configuration_types(names).await?;
        let templates: BTreeSet<TemplateRef> = groups.iter().filter_map(template_to_read).collect();
        let template_types = self.launch_template_types(templates).await?;
        let mut out = groups
            .iter()
            .map(|g| describe(g, &launch_config_types, &template_types))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn launch_configuration_types(
        &self,
        names: Vec<String>,
    ) -> Result<HashMap<String, String>, AwsError> {
        const OP: &str = "DescribeLaunchConfigurations";
        let mut out = HashMap::new();
        // The API takes at most 50 names per call.
        for chunk in names.chunks(50) {
            let mut pages = self
                .client
                .describe_launch_configurations()
                .set_launch_configuration_names(Some(chunk.to_vec()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| AwsError::from_sdk(OP, e))?;
                for lc in page.launch_configurations() {
                    if let (Some(n), Some(t)) = (lc.launch_configuration_name(), lc.instance_type())
                    {
                        out.insert(n.to_owned(), t.to_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The instance type of each launch template version, as CA reads it.
    /// AWS refusing one template (deleted, no permission) is that template's
    /// error, kept for the group's report; throttling and transport errors
    /// end the discovery, as for the other calls.
    async fn launch_template_types(
        &self,
        templates: BTreeSet<TemplateRef>,
    ) -> Result<TemplateTypes, AwsError> {
        const OP: &str = "DescribeLaunchTemplateVersions";
        let mut out = HashMap::with_capacity(templates.len());
        for t in templates {
            // The API takes an id or a name, not both.
            let mut call = self.ec2.describe_launch_template_versions();
            call = match &t.id {
                Some(id) => call.launch_template_id(id),
                None => call.set_launch_template_name(t.name.clone()),
            };
            let answer = match call.versions(&t.version).send().await {
                Ok(output) => output
                    .launch_template_versions()
                    .first()
                    .and_then(|v| v.launch_template_data())
                    .and_then(|d| d.instance_type())
                    .map(|i| i.as_str().to_owned())
                    .ok_or_else(|| "names no instance type".to_owned()),
                Err(e) => match AwsError::from_sdk(OP, e) {
                    e @ AwsError::Service { .. } => Err(e.to_string()),
                    e => return Err(e),
                },
            };
            out.insert(t, answer);
        }
        Ok(out)
    }

    /// Sets a group's desired capacity, ignoring cooldowns (as CA does).
    pub async fn set_desired(&self, group: &str, desired: u32) -> Result<(), AwsError> {
        const OP: &str = "SetDesiredCapacity";
        let desired = i32::try_from(desired).map_err(|_| AwsError::Malformed {
            operation: OP,
            group: group.to_owned(),
            reason: "desired capacity out of range",
        })?;
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(group)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_autoscaling::types::{
        Instance, InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides,
        MixedInstancesPolicy, TagDescription,
    };

    fn base(name: &str) -> aws_sdk_autoscaling::types::builders::AutoScalingGroupBuilder {
        AutoScalingGroup::builder()
            .auto_scaling_group_name(name)
            .min_size(1)
            .max_size(5)
            .desired_capacity(2)
            .availability_zones("us-east-1c")
            .tags(
                TagDescription::builder()
                    .key(ENABLED_TAG)
                    .value("true")
                    .build(),
            )
    }

    fn instance(id: &str, t: &str) -> Instance {
        Instance::builder().instance_id(id).instance_type(t).build()
    }

    #[test]
    fn mixed_instances_overrides_come_first_and_spot_is_read() {
        let policy = MixedInstancesPolicy::builder()
            .launch_template(
                LaunchTemplate::builder()
                    .overrides(
                        LaunchTemplateOverrides::builder()
                            .instance_type("m6i.large")
                            .build(),
                    )
                    .overrides(
                        LaunchTemplateOverrides::builder()
                            .instance_type("m5.large")
                            .build(),
                    )
                    .build(),
            )
            .instances_distribution(
                InstancesDistribution::builder()
                    .on_demand_base_capacity(0)
                    .on_demand_percentage_above_base_capacity(0)
                    .build(),
            )
            .build();
        let g = base("spot")
            .mixed_instances_policy(policy)
            .launch_configuration_name("ignored")
            .instances(instance("i-1", "m5.large"))
            .build();
        let lc = HashMap::from([("ignored".to_owned(), "c5.large".to_owned())]);
        let d = describe(&g, &lc, &TemplateTypes::new()).unwrap();
        assert_eq!(d.instance_types, ["m6i.large", "m5.large"]);
        assert!(d.spot);
        assert_eq!((d.min_size, d.desired, d.max_size), (1, 2, 5));
        assert_eq!(d.instance_ids, ["i-1"]);
        assert_eq!(d.tags[ENABLED_TAG], "true");
    }

    #[test]
    fn launch_configuration_then_running_instances() {
        let lc = HashMap::from([("lc".to_owned(), "c5.large".to_owned())]);
        let g = base("a").launch_configuration_name("lc").build();
        assert_eq!(
            describe(&g, &lc, &TemplateTypes::new())
                .unwrap()
                .instance_types,
            ["c5.large"]
        );
        let g = base("b")
            .instances(instance("i-1", "r5.large"))
            .instances(instance("i-2", "r5.large"))
            .build();
        let d = describe(&g, &lc, &TemplateTypes::new()).unwrap();
        assert_eq!(d.instance_types, ["r5.large"]);
        assert!(!d.spot);
        let g = base("c").max_size(0).build();
        let err = describe(&g, &lc, &TemplateTypes::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DescribeAutoScalingGroups: Auto Scaling group \"c\": MinSize, MaxSize or DesiredCapacity out of order"
        );
    }

    fn spec(name: &str, version: Option<&str>) -> LaunchTemplateSpecification {
        LaunchTemplateSpecification::builder()
            .launch_template_name(name)
            .set_version(version.map(str::to_owned))
            .build()
    }

    fn mixed_policy(
        template: LaunchTemplateSpecification,
        instance_type: Option<&str>,
    ) -> MixedInstancesPolicy {
        let mut lt = LaunchTemplate::builder().launch_template_specification(template);
        if let Some(t) = instance_type {
            lt = lt.overrides(LaunchTemplateOverrides::builder().instance_type(t).build());
        }
        MixedInstancesPolicy::builder()
            .launch_template(lt.build())
            .build()
    }

    #[test]
    fn launch_templates_are_read_only_when_nothing_else_names_the_type() {
        let plain = base("plain").launch_template(spec("nodes", None)).build();
        let wanted = TemplateRef {
            id: None,
            name: Some("nodes".into()),
            version: "$Default".into(),
        };
        assert_eq!(template_to_read(&plain), Some(wanted.clone()));
        assert_eq!(wanted.to_string(), "launch template nodes version $Default");
        // A mixed-instances policy without overrides launches its template's type.
        let mixed = base("mixed")
            .mixed_instances_policy(mixed_policy(spec("spot", Some("$Latest")), None))
            .build();
        assert_eq!(
            template_to_read(&mixed).map(|r| (r.name, r.version)),
            Some((Some("spot".into()), "$Latest".into()))
        );
        // Overrides or a launch configuration name the type already.
        let overridden = base("o")
            .mixed_instances_policy(mixed_policy(spec("spot", Some("3")), Some("m5.large")))
            .build();
        assert_eq!(template_to_read(&overridden), None);
        let lc = base("lc").launch_configuration_name("lc").build();
        assert_eq!(template_to_read(&lc), None);

        let lcs = HashMap::new();
        let mut types = TemplateTypes::new();
        types.insert(wanted.clone(), Ok("c6i.xlarge".into()));
        let d = describe(&plain, &lcs, &types).unwrap();
        assert_eq!(d.instance_types, ["c6i.xlarge"]);
        assert_eq!(d.launch_template_error, None);
        // A template AWS refused: the running instances, and the reason kept.
        types.insert(
            wanted,
            Err("DescribeLaunchTemplateVersions: AWS answered X: y".into()),
        );
        let running = base("plain")
            .launch_template(spec("nodes", None))
            .instances(instance("i-1", "r5.large"))
            .build();
        let d = describe(&running, &lcs, &types).unwrap();
        assert_eq!(d.instance_types, ["r5.large"]);
        assert_eq!(
            d.launch_template_error.as_deref(),
            Some(
                "launch template nodes version $Default: DescribeLaunchTemplateVersions: AWS answered X: y"
            )
        );
    }

    #[test]
    fn throttling_codes() {
        assert!(is_throttling("Throttling"));
        assert!(is_throttling("RequestLimitExceeded"));
        assert!(!is_throttling("ValidationError"));
    }
}
