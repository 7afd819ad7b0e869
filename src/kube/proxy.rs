//! Which proxy carries the requests to the API server, decided here and nowhere else: the
//! kubeconfig's `proxy-url`, else `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` read the way Go's
//! `httpproxy.FromEnvironment` reads them (and so kubectl and client-go). ureq's own reading of
//! the environment is not used: it also takes `ALL_PROXY`, picks a variable whatever the URL's
//! scheme, and knows no CIDR, port or loopback rule in `NO_PROXY`.

use std::net::IpAddr;

/// The proxy chosen for the API server and the setting it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Proxy URL, with a scheme (`http://` is added when the setting has none).
    pub url: String,
    /// `proxy-url`, `HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY` or `http_proxy`.
    pub from: &'static str,
}

/// The proxy for `server` (the API base URL): `proxy_url` when the kubeconfig gives one,
/// else the variable for the URL's scheme unless `NO_PROXY` (or the loopback rule) exempts
/// the host. `env` reads a variable (an empty value counts as unset, as in Go).
pub fn choose(
    server: &str,
    proxy_url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Choice>, String> {
    if let Some(url) = proxy_url {
        return with_scheme(url, "proxy-url").map(|url| {
            Some(Choice {
                url,
                from: "proxy-url",
            })
        });
    }
    let get = |name: &'static str| env(name).filter(|v| !v.is_empty()).map(|v| (name, v));
    let Some((scheme, host, port)) = split_url(server) else {
        return Ok(None);
    };
    let proxy = match scheme.as_str() {
        "https" => get("HTTPS_PROXY").or_else(|| get("https_proxy")),
        "http" => get("HTTP_PROXY").or_else(|| get("http_proxy")),
        _ => None,
    };
    let Some((from, value)) = proxy else {
        return Ok(None);
    };
    let no_proxy = get("NO_PROXY")
        .or_else(|| get("no_proxy"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    if bypass(&host, port, &no_proxy) {
        return Ok(None);
    }
    with_scheme(&value, from).map(|url| Some(Choice { url, from }))
}

/// `value` as a proxy URL: `http://` is assumed without a scheme (as Go does); only HTTP
/// proxies (`http://`, `https://`) can be used.
fn with_scheme(value: &str, from: &str) -> Result<String, String> {
    match value.split_once("://") {
        None => Ok(format!("http://{value}")),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => Ok(value.to_string()),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => Ok(value.to_string()),
        Some((scheme, _)) => Err(format!(
            "{from} {}: {scheme}:// proxies are not supported (only http:// and https://)",
            redact(value)
        )),
    }
}

/// A proxy URL for messages: its `user:password@` replaced by `***@`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("***{}", &rest[at..]),
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Scheme (lower case), host (lower case, IPv6 without brackets) and port (or the scheme's
/// default) of an absolute URL.
fn split_url(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = split_host_port(authority);
    let port = match (port, scheme.as_str()) {
        (Some(p), _) => p.parse().ok()?,
        (None, "https") => 443,
        (None, "http") => 80,
        (None, _) => return None,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (s, None),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (s, None),
    }
}

/// Whether `host:port` is reached directly: `localhost` and loopback addresses always are
/// (as in Go); else when a `NO_PROXY` entry matches: `*`, an IP or a CIDR, a domain that
/// matches itself and its subdomains, `.domain` or `*.domain` for subdomains only, each
/// (but a CIDR) with an optional `:port`.
fn bypass(host: &str, port: u16, no_proxy: &str) -> bool {
    let ip = host.parse::<IpAddr>().ok().map(canonical);
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    for entry in no_proxy.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            if let (Some(ip), Ok(net), Ok(bits)) = (ip, net.parse::<IpAddr>(), bits.parse()) {
                if in_cidr(ip, canonical(net), bits) {
                    return true;
                }
            }
            continue;
        }
        let (name, entry_port) = match entry.parse::<IpAddr>() {
            Ok(_) => (entry.as_str(), None),
            Err(_) => split_host_port(&entry),
        };
        if entry_port.is_some_and(|p| p.parse() != Ok(port)) || name.is_empty() {
            continue;
        }
        if let Ok(entry_ip) = name.parse::<IpAddr>() {
            if ip == Some(canonical(entry_ip)) {
                return true;
            }
            continue;
        }
        let (suffix, itself) = match name.strip_prefix("*.").or(name.strip_prefix('.')) {
            Some(domain) => (domain, false),
            None => (name, true),
        };
        let subdomain = host
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.'));
        if subdomain || (itself && host == suffix) {
            return true;
        }
    }
    false
}

/// An IPv4-mapped IPv6 address as IPv4, so that both forms match alike.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is in `net/bits` (a prefix longer than the address matches nothing).
fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        (u128::MAX << (width - bits)) & (u128::MAX >> (128 - width))
    };
    ip & mask == net & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(server: &str, vars: &[(&str, &str)]) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        choose(server, None, &env)
            .unwrap()
            .map(|c| format!("{} {}", c.from, c.url))
    }

    #[test]
    fn the_url_scheme_picks_the_variable_and_upper_case_wins() {
        let all = [
            ("HTTPS_PROXY", "http://up-s:1"),
            ("https_proxy", "http://low-s:1"),
            ("HTTP_PROXY", "http://up:1"),
            ("http_proxy", "http://low:1"),
            ("ALL_PROXY", "http://all:1"),
        ];
        assert_eq!(
            pick("https://api.example.com:6443", &all).as_deref(),
            Some("HTTPS_PROXY http://up-s:1")
        );
        assert_eq!(
            pick("http://api.example.com", &all).as_deref(),
            Some("HTTP_PROXY http://up:1")
        );
        // Lower case is the fallback, an empty value counts as unset, ALL_PROXY is not read.
        let lower = [
            ("HTTPS_PROXY", ""),
            ("https_proxy", "low-s:3128"),
            ("ALL_PROXY", "http://all:1"),
        ];
        assert_eq!(
            pick("https://10.96.0.1", &lower).as_deref(),
            Some("https_proxy http://low-s:3128")
        );
        assert_eq!(pick("http://10.96.0.1", &lower), None);
        assert_eq!(pick("https://10.96.0.1", &[("HTTP_PROXY", "x:1")]), None);
    }

    #[test]
    fn no_proxy_entries_match_as_in_go() {
        let cases: &[(&str, &str, bool)] = &[
            ("https://10.96.0.1", "10.0.0.0/8", true),
            ("https://10.96.0.1", "10.96.0.0/12", true),
            ("https://10.96.0.1", "10.128.0.0/9", false),
            ("https://10.96.0.1", "0.0.0.0/0", true),
            ("https://10.96.0.1", "10.96.0.1/33", false),
            ("https://10.96.0.1", "10.96.0.1", true),
            ("https://10.96.0.1", "10.96.0.1:443", true),
            ("https://10.96.0.1", "10.96.0.1:6443", false),
            ("https://10.96.0.10", "10.96.0.1", false),
            ("https://[fd00::1]:6443", "fd00::/8", true),
            ("https://[fd00::1]:6443", "fd00::1", true),
            ("https://[fd00::1]:6443", "[fd00::1]:6443", true),
            ("https://[fd00::1]:6443", "[fd00::1]:443", false),
            ("https://api.example.com", "example.com", true),
            ("https://example.com", "example.com", true),
            ("https://API.Example.COM", "EXAMPLE.com", true),
            ("https://api.example.com", ".example.com", true),
            ("https://example.com", ".example.com", false),
            ("https://api.example.com", "*.example.com", true),
            ("https://example.com", "*.example.com", false),
            ("https://notexample.com", "example.com", false),
            ("https://api.example.com:6443", "example.com:6443", true),
            ("https://api.example.com:6443", "example.com:443", false),
            ("https://api.example.com", "example.com:443", true),
            ("https://api.example.com", "other.org, *", true),
            (
                "https://api.example.com",
                " other.org ,, example.com ",
                true,
            ),
            ("https://api.example.com", "other.org,10.0.0.0/8", false),
            ("https://api.example.com", "", false),
        ];
        for (server, no_proxy, direct) in cases {
            let got = pick(
                server,
                &[("HTTPS_PROXY", "http://proxy:3128"), ("NO_PROXY", no_proxy)],
            );
            assert_eq!(
                got.is_none(),
                *direct,
                "{server} with NO_PROXY={no_proxy:?}"
            );
        }
        // NO_PROXY wins over no_proxy; no_proxy is the fallback.
        let both = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("NO_PROXY", "other.org"),
            ("no_proxy", "example.com"),
        ];
        assert!(pick("https://api.example.com", &both).is_some());
        let lower = [
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("no_proxy", "example.com"),
        ];
        assert!(pick("https://api.example.com", &lower).is_none());
    }

    #[test]
    fn localhost_and_loopback_are_never_proxied() {
        for server in [
            "https://localhost:6443",
            "https://127.0.0.1:6443",
            "https://127.1.2.3",
            "https://[::1]:6443",
            "https://[::ffff:127.0.0.1]:6443",
        ] {
            assert_eq!(
                pick(server, &[("HTTPS_PROXY", "http://p:1")]),
                None,
                "{server}"
            );
        }
    }

    #[test]
    fn proxy_url_wins_and_unsupported_schemes_are_refused() {
        let env = |_: &str| Some("http://env:1".to_string());
        let chosen = choose("https://10.0.0.1", Some("http://kc:3128"), &env).unwrap();
        assert_eq!(
            chosen,
            Some(Choice {
                url: "http://kc:3128".into(),
                from: "proxy-url"
            })
        );
        // A kubeconfig proxy-url is used even for loopback, as client-go does.
        assert!(choose("https://127.0.0.1", Some("http://kc:1"), &env)
            .unwrap()
            .is_some());
        let socks = |_: &str| Some("socks5://user:secret@proxy:1080".to_string());
        let err = choose("https://10.0.0.1", None, &socks).unwrap_err();
        assert_eq!(
            err,
            "HTTPS_PROXY socks5://***@proxy:1080: socks5:// proxies are not supported (only http:// and https://)"
        );
        assert!(!err.contains("secret"));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("http://u:p@proxy:1/x@y"), "http://***@proxy:1/x@y");
        assert_eq!(redact("u:p@proxy:1"), "***@proxy:1");
        assert_eq!(redact("http://proxy:1"), "http://proxy:1");
    }
}
