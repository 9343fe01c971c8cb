//! The rules an endpoint URL must follow (seed: Tencent's "Webhook Configuration" console page), each
//! with a stable code and a message for people, and the port-prefix rule for URL changes. The API
//! refuses a URL with its first broken rule; the console shows every broken rule as the operator types
//! (`POST /v1/webhooks/url-check`).

/// A broken URL rule: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UrlError {
    pub code: &'static str,
    pub message: String,
}

fn url_error(code: &'static str, message: impl Into<String>) -> UrlError {
    UrlError {
        code,
        message: message.into(),
    }
}

/// Longest domain name an endpoint may use.
pub const MAX_DOMAIN_LEN: usize = 63;
/// The longest URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks an endpoint URL against the rules; returns the parsed URL, or the first broken rule.
pub fn check_url(raw: &str) -> Result<url::Url, UrlError> {
    match broken_rules(raw).into_iter().next() {
        Some(e) => Err(e),
        None => url::Url::parse(raw)
            .map_err(|e| url_error("url_invalid", format!("the URL does not parse: {e}"))),
    }
}

/// Every rule `raw` breaks, one entry per rule, in the order the rules are listed; a URL that breaks
/// none but still does not parse gets `url_invalid`.
pub fn broken_rules(raw: &str) -> Vec<UrlError> {
    let mut broken = Vec::new();
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        broken.push(url_error(
            "url_scheme",
            "the URL must start with http:// or https://",
        ));
    }
    if raw.chars().any(char::is_whitespace) {
        broken.push(url_error("url_space", "the URL must not contain spaces"));
    }
    if raw.len() > MAX_URL_BYTES {
        broken.push(url_error(
            "url_too_long",
            format!("the URL must be at most {MAX_URL_BYTES} bytes"),
        ));
    }
    let mut forbidden: Vec<char> = Vec::new();
    for c in raw.chars().filter(|c| matches!(c, '!' | '$' | '&' | '?')) {
        if !forbidden.contains(&c) {
            forbidden.push(c);
        }
    }
    if !forbidden.is_empty() {
        let found: String = forbidden.iter().map(|c| format!("'{c}' ")).collect();
        broken.push(url_error(
            "url_forbidden_character",
            format!(
                "the URL must not contain {}(none of ! $ & ? are allowed; chathook appends the query string)",
                found
            ),
        ));
    }
    if raw.contains('#') {
        broken.push(url_error(
            "url_fragment",
            "the URL must not contain a fragment (#)",
        ));
    }
    let after_scheme = &raw[raw.find("://").map_or(0, |i| i + 3)..];
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => {
            broken.push(url_error(
                "url_userinfo",
                "the URL must not carry user:password@",
            ));
            host
        }
        None => authority,
    };
    if let Some(rest) = authority.strip_prefix('[') {
        match rest.find(']') {
            None => broken.push(url_error(
                "url_host_invalid",
                "an IPv6 host must be closed by ]",
            )),
            Some(end) if rest[..end].parse::<std::net::Ipv6Addr>().is_err() => {
                broken.push(url_error(
                    "url_host_invalid",
                    format!("{} is not an IPv6 address", &rest[..end]),
                ))
            }
            Some(_) => {}
        }
    } else {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if host.parse::<std::net::Ipv4Addr>().is_err() {
            broken_domain_rules(host, &mut broken);
        }
    }
    if broken.is_empty() {
        if let Err(e) = url::Url::parse(raw) {
            broken.push(url_error(
                "url_invalid",
                format!("the URL does not parse: {e}"),
            ));
        }
    }
    broken
}

/// The domain rules `domain` breaks, each once (naming the first label that breaks it).
fn broken_domain_rules(domain: &str, broken: &mut Vec<UrlError>) {
    if domain.is_empty() {
        broken.push(url_error("url_host_missing", "the URL has no host"));
        return;
    }
    if domain.len() > MAX_DOMAIN_LEN {
        broken.push(url_error(
            "url_domain_too_long",
            format!(
                "the domain is {} characters; at most {MAX_DOMAIN_LEN} are allowed",
                domain.len()
            ),
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        broken.push(url_error(
            "url_label_empty",
            "the domain has an empty label (two dots in a row, or a dot at an end)",
        ));
    }
    type Rule = (&'static str, fn(&str) -> bool, fn(&str) -> String);
    let rules: [Rule; 4] = [
        (
            "url_label_characters",
            |l| !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            |l| format!("the domain label '{l}' may hold only letters, digits and hyphens"),
        ),
        (
            "url_label_only_hyphens",
            |l| l.chars().all(|c| c == '-'),
            |l| format!("the domain label '{l}' is only hyphens"),
        ),
        (
            "url_label_hyphen_edge",
            |l| !l.chars().all(|c| c == '-') && (l.starts_with('-') || l.ends_with('-')),
            |l| format!("the domain label '{l}' must not start or end with a hyphen"),
        ),
        (
            "url_label_double_hyphen",
            |l| !l.chars().all(|c| c == '-') && l.contains("--"),
            |l| format!("the domain label '{l}' must not contain two hyphens in a row"),
        ),
    ];
    for (code, breaks, message) in rules {
        if let Some(label) = labels.iter().find(|l| !l.is_empty() && breaks(l)) {
            broken.push(url_error(code, message(label)));
        }
    }
}

/// The port a URL connects to (the scheme's default when none is written).
pub fn effective_port(url: &url::Url) -> u16 {
    url.port_or_known_default().unwrap_or(0)
}

/// True when changing from `old` to `new` hits the port-prefix rule: the ports differ and one's decimal
/// form starts with the other's (443 -> 4433, 80 -> 8080), a change that is easy to make by a typo.
pub fn port_prefix_conflict(old: u16, new: u16) -> bool {
    if old == new {
        return false;
    }
    let (a, b) = (old.to_string(), new.to_string());
    a.starts_with(&b) || b.starts_with(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(url: &str) -> Vec<&'static str> {
        broken_rules(url).iter().map(|e| e.code).collect()
    }

    #[test]
    fn each_url_rule_has_its_code() {
        let cases = [
            ("ftp://127.0.0.1/cb", "url_scheme"),
            ("127.0.0.1/cb", "url_scheme"),
            ("http://example.localhost/c b", "url_space"),
            ("http://127.0.0.1/c!b", "url_forbidden_character"),
            ("http://127.0.0.1/c$b", "url_forbidden_character"),
            ("http://127.0.0.1/c&b", "url_forbidden_character"),
            ("http://127.0.0.1/cb?x=1", "url_forbidden_character"),
            ("http://a--b.localhost/cb", "url_label_double_hyphen"),
            ("http://-ab.localhost/cb", "url_label_hyphen_edge"),
            ("http://ab-.localhost/cb", "url_label_hyphen_edge"),
            ("http://---.localhost/cb", "url_label_only_hyphens"),
            ("http://a_b.localhost/cb", "url_label_characters"),
            ("http://a..b/cb", "url_label_empty"),
            ("http://u:p@a.localhost/cb", "url_userinfo"),
            ("http://a.localhost/cb#x", "url_fragment"),
            ("http://[::g]/cb", "url_host_invalid"),
            ("http:///cb", "url_host_missing"),
        ];
        for (url, code) in cases {
            assert_eq!(check_url(url).unwrap_err().code, code, "{url}");
            assert_eq!(codes(url), [code], "{url}");
        }
        for ok in [
            "http://127.0.0.1/imcallback",
            "https://a-b.localhost/cb",
            "http://[::1]:8080/x",
            "HTTPS://Example.COM",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
            assert!(broken_rules(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn every_broken_rule_is_listed_once() {
        assert_eq!(
            codes("ftp://u@a_b.-c-.d--e.f_g/x y?z!#f"),
            [
                "url_scheme",
                "url_space",
                "url_forbidden_character",
                "url_fragment",
                "url_userinfo",
                "url_label_characters",
                "url_label_hyphen_edge",
                "url_label_double_hyphen",
            ]
        );
        let forbidden = &broken_rules("http://a.localhost/?&?&")[0];
        assert_eq!(
            forbidden.message,
            "the URL must not contain '?' '&' (none of ! $ & ? are allowed; chathook appends the query string)"
        );
    }

    #[test]
    fn the_domain_length_edge_is_63() {
        let at = format!("http://{}.localhost/cb", "a".repeat(53));
        let over = format!("http://{}.localhost/cb", "a".repeat(54));
        assert!(check_url(&at).is_ok());
        assert_eq!(check_url(&over).unwrap_err().code, "url_domain_too_long");
    }

    #[test]
    fn port_prefix_rule() {
        assert!(port_prefix_conflict(443, 4433));
        assert!(port_prefix_conflict(4433, 443));
        assert!(port_prefix_conflict(80, 8080));
        assert!(!port_prefix_conflict(443, 8443));
        assert!(!port_prefix_conflict(80, 80));
        assert_eq!(
            effective_port(&check_url("https://a.localhost/x").unwrap()),
            443
        );
    }
}
