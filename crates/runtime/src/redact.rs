//! Credentials kept out of logs and error messages.

/// `raw` as it may be shown: a user name or password (`user:pass@`) becomes
/// `***@`, and a query string or fragment (where tokens are often passed)
/// becomes `?***`. Everything else (scheme, host, port, path) stays, so the
/// message still says which server was meant. Works on strings that do not
/// parse as URLs too: an invalid flag value is shown the same way.
#[must_use]
pub fn url(raw: &str) -> String {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let (kept, hidden) = raw.split_at(end);
    let authority_start = kept.find("://").map_or(0, |i| i + 3);
    let authority_end = kept[authority_start..]
        .find('/')
        .map_or(kept.len(), |i| authority_start + i);
    let mut shown = String::with_capacity(raw.len());
    match kept[authority_start..authority_end].rfind('@') {
        Some(at) => {
            shown.push_str(&kept[..authority_start]);
            shown.push_str("***");
            shown.push_str(&kept[authority_start + at..]);
        }
        None => shown.push_str(kept),
    }
    if !hidden.is_empty() {
        shown.push_str("?***");
    }
    shown
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    #[rstest]
    #[case("http://prometheus:9090", "http://prometheus:9090")]
    #[case("https://prom.example/sub/path", "https://prom.example/sub/path")]
    #[case("http://alice:s3cret@prom:9090", "http://***@prom:9090")]
    #[case("http://alice@prom:9090/api", "http://***@prom:9090/api")]
    // A password holding `@` is hidden whole.
    #[case("http://a:p@ss@prom:9090", "http://***@prom:9090")]
    #[case("http://prom:9090/?token=s3cret", "http://prom:9090/?***")]
    #[case("http://prom:9090?token=s3cret&x=1", "http://prom:9090?***")]
    #[case("http://prom:9090#s3cret", "http://prom:9090?***")]
    #[case("https://u:p@prom/x?token=t#f", "https://***@prom/x?***")]
    // An `@` in the path or query is not userinfo.
    #[case("http://prom/a@b", "http://prom/a@b")]
    #[case("http://prom/q?u=a@b", "http://prom/q?***")]
    // Not a URL: still no credentials.
    #[case("alice:s3cret@prom:9090", "***@prom:9090")]
    #[case("", "")]
    fn hides_credentials_and_keeps_the_server(#[case] raw: &str, #[case] shown: &str) {
        assert_eq!(super::url(raw), shown);
    }
}
