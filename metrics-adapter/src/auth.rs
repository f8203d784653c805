//! Who is calling: the front-proxy client certificate (kube-apiserver's,
//! verified by rustls against `--requestheader-client-ca-file` during the
//! handshake), its common name checked against
//! `--requestheader-allowed-names`, and the original user from the
//! `X-Remote-User`/`X-Remote-Group` headers the aggregator adds.
//!
//! A certificate from another CA never gets past the TLS handshake. When
//! `--authentication-token-webhook` is on, a request without a certificate
//! may present a bearer token, verified by a TokenReview (answers cached
//! briefly); otherwise it gets a 401 `Status`.
//!
//! With `--authorization-mode=Webhook`, metric reads (not discovery, which
//! any authenticated caller may read) are authorized by a
//! SubjectAccessReview for the caller, with a decision cache.

use std::time::Duration;

use http::request::Parts;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tailor_runtime::tls::PeerCertificate;

use crate::api::Status;

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// User name.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// Verifies bearer tokens with TokenReview, caching the answers.
#[derive(Clone)]
pub struct TokenReviewer {
    client: kube::Client,
    cache: moka::future::Cache<String, Option<Identity>>,
}

impl std::fmt::Debug for TokenReviewer {
    // The cache keys are tokens: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer").finish_non_exhaustive()
    }
}

impl TokenReviewer {
    /// A reviewer caching answers for `ttl`.
    #[must_use]
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        TokenReviewer {
            client,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The identity behind `token`, `None` when the API server says it is
    /// not authenticated.
    ///
    /// # Errors
    /// The TokenReview call failed (not cached).
    pub async fn review(&self, token: &str) -> Result<Option<Identity>, kube::Error> {
        if let Some(hit) = self.cache.get(token).await {
            return Ok(hit);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let identity = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|u| Identity {
                user: u.username.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
            });
        self.cache.insert(token.to_owned(), identity.clone()).await;
        Ok(identity)
    }
}

/// What a metrics request asks for, as kube-apiserver's RequestInfo sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, if any.
    pub namespace: Option<String>,
    /// Resource (`pods`, `metrics`, or the external metric name).
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (the custom metric name for object requests).
    pub subresource: Option<String>,
}

impl RequestAttributes {
    /// The attributes of a metric read; `None` for discovery and anything
    /// that is not a metric path (authenticated callers may read those).
    #[must_use]
    pub fn of_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/apis/")?;
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let [group, version, tail @ ..] = segs.as_slice() else {
            return None;
        };
        let (namespace, tail) = match tail {
            ["namespaces", ns, more @ ..] if !more.is_empty() => (Some((*ns).to_owned()), more),
            _ => (None, tail),
        };
        let [resource, more @ ..] = tail else {
            return None;
        };
        Some(RequestAttributes {
            group: (*group).to_owned(),
            version: (*version).to_owned(),
            namespace,
            resource: (*resource).to_owned(),
            name: more.first().map(|s| (*s).to_owned()),
            subresource: more.get(1).map(|s| (*s).to_owned()),
        })
    }
}

/// Authorizes metric reads with SubjectAccessReview, caching decisions.
#[derive(Clone)]
pub struct AccessReviewer {
    client: kube::Client,
    cache: moka::future::Cache<(Identity, RequestAttributes), bool>,
}

impl std::fmt::Debug for AccessReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessReviewer").finish_non_exhaustive()
    }
}

impl AccessReviewer {
    /// A reviewer caching decisions for `ttl`.
    #[must_use]
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        AccessReviewer {
            client,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Whether `who` may `get` `what`.
    ///
    /// # Errors
    /// The SubjectAccessReview call failed (not cached).
    pub async fn allowed(
        &self,
        who: &Identity,
        what: &RequestAttributes,
    ) -> Result<bool, kube::Error> {
        let key = (who.clone(), what.clone());
        if let Some(hit) = self.cache.get(&key).await {
            return Ok(hit);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.user.clone()),
                groups: Some(who.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(what.group.clone()),
                    version: Some(what.version.clone()),
                    namespace: what.namespace.clone(),
                    resource: Some(what.resource.clone()),
                    name: what.name.clone(),
                    subresource: what.subresource.clone(),
                    verb: Some("get".to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.cache.insert(key, allowed).await;
        Ok(allowed)
    }
}

/// Authentication settings.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// `--requestheader-allowed-names`: accepted certificate common names;
    /// empty accepts any certificate the CA signed (as upstream).
    pub allowed_names: Vec<String>,
    /// `--requestheader-username-headers`.
    pub username_headers: Vec<String>,
    /// `--requestheader-group-headers`.
    pub group_headers: Vec<String>,
    /// Bearer tokens, when `--authentication-token-webhook` is on.
    pub tokens: Option<TokenReviewer>,
    /// SubjectAccessReview, when `--authorization-mode=Webhook`.
    pub access: Option<AccessReviewer>,
}

impl Auth {
    /// Upstream's default header names.
    #[must_use]
    pub fn new(allowed_names: Vec<String>) -> Self {
        Auth {
            allowed_names,
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            tokens: None,
            access: None,
        }
    }

    /// Authenticates a request.
    ///
    /// # Errors
    /// A 401 `Status` naming what is missing.
    pub async fn authenticate(&self, req: &Parts) -> Result<Identity, Status> {
        let Some(peer) = req.extensions.get::<PeerCertificate>() else {
            return self.bearer(req).await;
        };
        let cn = peer.common_name.clone().unwrap_or_default();
        if !self.allowed_names.is_empty() && !self.allowed_names.contains(&cn) {
            return Err(Status::new(
                401,
                format!(
                    "Unauthorized: client certificate common name {cn:?} is not in --requestheader-allowed-names"
                ),
            ));
        }
        let header = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .flat_map(|n| req.headers.get_all(n.as_str()))
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect()
        };
        let user = header(&self.username_headers).into_iter().next();
        Ok(match user {
            Some(user) => Identity {
                user,
                groups: header(&self.group_headers),
            },
            // Called directly with a front-proxy certificate: the
            // certificate's own names.
            None => Identity {
                user: cn,
                groups: peer.organisations.clone(),
            },
        })
    }

    async fn bearer(&self, req: &Parts) -> Result<Identity, Status> {
        let token = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match (&self.tokens, token) {
            (Some(reviewer), Some(token)) => match reviewer.review(token).await {
                Ok(Some(identity)) => Ok(identity),
                Ok(None) => Err(Status::new(
                    401,
                    "Unauthorized: the bearer token was not accepted by TokenReview",
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "TokenReview failed");
                    Err(Status::new(
                        401,
                        "Unauthorized: the bearer token could not be verified (TokenReview failed)",
                    ))
                }
            },
            (Some(_), None) => Err(Status::new(
                401,
                "Unauthorized: no client certificate and no bearer token",
            )),
            (None, _) => Err(Status::new(
                401,
                "Unauthorized: no client certificate; requests must come through kube-apiserver's front proxy (--requestheader-client-ca-file)",
            )),
        }
    }

    /// Authorizes an authenticated request. Discovery, OpenAPI and health
    /// are open to every authenticated caller (the aggregator polls them as
    /// `system:kube-aggregator`); metric reads go to SubjectAccessReview
    /// when `--authorization-mode=Webhook`, else are allowed (kube-apiserver
    /// has authorized the original user for the aggregated API already).
    ///
    /// # Errors
    /// 403 when denied, 503 when the review cannot be made.
    pub async fn authorize(&self, identity: &Identity, req: &Parts) -> Result<(), Status> {
        let Some(reviewer) = &self.access else {
            return Ok(());
        };
        let Some(attrs) = RequestAttributes::of_path(req.uri.path()) else {
            return Ok(());
        };
        match reviewer.allowed(identity, &attrs).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Status::new(
                403,
                format!(
                    "Forbidden: user {:?} cannot get resource {:?} in API group {:?}{}",
                    identity.user,
                    attrs.resource,
                    attrs.group,
                    attrs
                        .namespace
                        .as_deref()
                        .map(|n| format!(" in the namespace {n:?}"))
                        .unwrap_or_default()
                ),
            )),
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                Err(Status::new(
                    503,
                    "cannot authorize the request: SubjectAccessReview failed",
                ))
            }
        }
    }
}
