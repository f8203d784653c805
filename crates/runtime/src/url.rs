//! Request URLs built from a server URL as a user configures it.

/// `base` with `path` appended to its path. `base` may carry a path prefix
/// (Prometheus behind a proxy at `/prometheus`) and a query string (a
/// proxy's token): the query stays, after the new path, as
/// prometheus-adapter keeps it; a fragment, never sent to a server, is
/// dropped. Request parameters added later join the kept query.
#[must_use]
pub fn join(base: &str, path: &str) -> String {
    let base = base.split('#').next().unwrap_or_default();
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, query),
        None => (base, ""),
    };
    let mut out = String::with_capacity(base.len() + path.len() + 1);
    out.push_str(head.trim_end_matches('/'));
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::join;
    use rstest::rstest;

    #[rstest]
    #[case("http://prom:9090", "http://prom:9090/api/v1/query")]
    #[case("http://prom:9090/", "http://prom:9090/api/v1/query")]
    #[case("https://proxy/prometheus/", "https://proxy/prometheus/api/v1/query")]
    #[case("https://proxy/prometheus", "https://proxy/prometheus/api/v1/query")]
    #[case(
        "https://u:p@proxy/prom?token=t0ken",
        "https://u:p@proxy/prom/api/v1/query?token=t0ken"
    )]
    #[case("http://prom:9090/?a=1&b=2", "http://prom:9090/api/v1/query?a=1&b=2")]
    #[case("http://prom:9090?", "http://prom:9090/api/v1/query")]
    #[case("http://prom:9090/#top", "http://prom:9090/api/v1/query")]
    fn joins_paths_keeping_the_query(#[case] base: &str, #[case] want: &str) {
        assert_eq!(join(base, "/api/v1/query"), want);
        assert_eq!(join(base, "api/v1/query"), want);
    }
}
