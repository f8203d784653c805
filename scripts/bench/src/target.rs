//! The URL to load, and the loopback-only rule.

use std::net::{IpAddr, SocketAddr};

use http::Uri;

use crate::Error;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (h2 only with prior knowledge).
    Http,
    /// HTTP over TLS.
    Https,
}

/// A parsed, resolved target.
#[derive(Clone, Debug)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// The host as written in the URL, without IPv6 brackets: the TLS server
    /// name unless `--server-name` overrides it.
    pub host: String,
    /// `host:port` as written, for the `Host` header and `:authority`.
    pub authority: String,
    /// The path and query sent in each request.
    pub path_and_query: String,
    /// Where to connect; connections are spread over these in turn.
    pub addrs: Vec<SocketAddr>,
}

/// Whether `ip` is a loopback address: 127.0.0.0/8, `::1`, or `::ffff:127.x.y.z`.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn is_localhost_name(host: &str) -> bool {
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
}

/// Splits `url` into scheme, host, port and path; checks nothing about the host.
pub fn parse(url: &str) -> Result<(Scheme, String, u16, String, String), Error> {
    let bad = |reason: &str| Error::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if !url.contains("://") {
        return Err(bad("no scheme: write https://HOST:PORT/PATH"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        Some(other) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
        None => return Err(bad("no scheme: write https://HOST:PORT/PATH")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "user information in the URL is not supported; use -H Authorization:...",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = authority.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_owned();
    Ok((
        scheme,
        host.to_owned(),
        port,
        authority.as_str().to_owned(),
        path,
    ))
}

/// Parses `url` and resolves its host. Without `allow_non_loopback`, only a
/// loopback IP literal or `localhost` (keeping only its loopback addresses)
/// is accepted, so a mistyped URL cannot load someone else's server.
pub async fn resolve(url: &str, allow_non_loopback: bool) -> Result<Target, Error> {
    let (scheme, host, port, authority, path_and_query) = parse(url)?;
    let literal = host.parse::<IpAddr>().ok();
    if !allow_non_loopback {
        let allowed = match literal {
            Some(ip) => is_loopback(ip),
            None => is_localhost_name(&host),
        };
        if !allowed {
            return Err(Error::NotLoopback { host });
        }
    }
    let addrs: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| Error::Resolve {
                host: host.clone(),
                source,
            })?
            .filter(|addr| allow_non_loopback || is_loopback(addr.ip()))
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Error::Resolve {
            host,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no (loopback) address found",
            ),
        });
    }
    Ok(Target {
        scheme,
        host,
        authority,
        path_and_query,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("https://127.0.0.1:8443/mutate", "127.0.0.1", 8443, "/mutate")]
    #[case("https://127.1.2.3/x?y=1", "127.1.2.3", 443, "/x?y=1")]
    #[case("https://[::1]:9/", "::1", 9, "/")]
    #[case("http://localhost:8080", "localhost", 8080, "/")]
    fn parses(#[case] url: &str, #[case] host: &str, #[case] port: u16, #[case] path: &str) {
        let (_, h, p, _, path_and_query) = parse(url).unwrap();
        assert_eq!((h.as_str(), p, path_and_query.as_str()), (host, port, path));
    }

    #[rstest]
    #[case("127.0.0.1:8443/mutate", "no scheme")]
    #[case("ftp://127.0.0.1/", "is not http or https")]
    #[case("https://user:pw@127.0.0.1/", "user information")]
    #[case("https:// bad", "https:// bad")]
    fn rejects_malformed(#[case] url: &str, #[case] says: &str) {
        let err = parse(url).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert!(err.contains(url), "{err} names the URL");
    }

    #[rstest]
    #[case("https://10.0.0.1/")]
    #[case("https://[2001:db8::1]:443/")]
    #[case("https://example.com/")]
    #[case("https://localhost.example.com/")]
    #[case("https://0.0.0.0:8443/")]
    #[case("https://[::]:8443/")]
    #[tokio::test]
    async fn refuses_non_loopback(#[case] url: &str) {
        let err = resolve(url, false).await.unwrap_err();
        assert!(matches!(err, Error::NotLoopback { .. }), "{err}");
        assert!(err.to_string().contains("--allow-non-loopback"), "{err}");
    }

    #[rstest]
    #[case("https://127.0.0.1:1/", "127.0.0.1:1")]
    #[case("https://127.9.9.9:1/", "127.9.9.9:1")]
    #[case("https://[::1]:1/", "[::1]:1")]
    #[case("https://[::ffff:127.0.0.1]:1/", "[::ffff:127.0.0.1]:1")]
    #[tokio::test]
    async fn accepts_loopback(#[case] url: &str, #[case] addr: &str) {
        let target = resolve(url, false).await.unwrap();
        assert_eq!(target.addrs, vec![addr.parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn localhost_keeps_only_loopback_addresses() {
        let target = resolve("https://localhost:1/", false).await.unwrap();
        assert!(
            target.addrs.iter().all(|a| is_loopback(a.ip())),
            "{target:?}"
        );
    }

    #[tokio::test]
    async fn non_loopback_ip_allowed_when_asked() {
        // A literal address: no resolution, no connection.
        let target = resolve("https://192.0.2.1:8443/", true).await.unwrap();
        assert_eq!(
            target.addrs,
            vec!["192.0.2.1:8443".parse::<SocketAddr>().unwrap()]
        );
    }
}
