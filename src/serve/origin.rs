//! Who may talk to the upload server: requests must name this server in `Host`, come from its
//! own page (or no page) in `Origin`, and a POST must carry a header no cross-site form can set.
//!
//! Why each: a page on another site can make the operator's browser POST a film here (a plain
//! form needs no permission), and with DNS rebinding it can even read the answers, because its
//! own name then points at this device. The `Host` check defeats rebinding (the browser sends
//! the attacker's name), the `Origin` check refuses a cross-site request outright, and the
//! required `X-Requested-With` header makes any cross-site POST need a CORS preflight, which this
//! server never grants.

use std::net::{IpAddr, SocketAddr};

/// The header the page sets on every POST (and API clients must too).
pub const REQUESTED_WITH: &str = "x-requested-with";

/// Whether `host` (the request's `Host` header) names this server: an IP address (a rebinding
/// attacker cannot make the browser send one for its own name), `localhost`, or one of the
/// configured `names`, each with or without a port.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    let name = strip_port(host);
    if name.is_empty() {
        return false;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(host))
}

/// Whether an `Origin` header is this server itself (scheme `http`, the same host and port as
/// the request's `Host`). `null` and every other site are refused.
pub fn origin_allowed(origin: &str, host: &str) -> bool {
    let origin = origin.trim();
    origin
        .strip_prefix("http://")
        .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()))
}

/// `name:port`, `[v6]:port`, `v6`, or `name` without its port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8080
        return rest.split_once(']').map_or(host, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has more than one colon and no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The names `serve` answers to besides IP addresses and localhost: the configured ones, and
/// the listening address itself.
pub fn names(configured: &[String], listen: SocketAddr) -> Vec<String> {
    let mut n: Vec<String> = configured.iter().map(|s| s.trim().to_string()).collect();
    n.push(listen.to_string());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_addresses_localhost_or_configured_names() {
        let names = vec!["cxr-unit-7.local".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "192.168.1.20:8080",
            "192.168.1.20",
            "[::1]:8080",
            "::1",
            "localhost:8080",
            "LOCALHOST",
            "cxr-unit-7.local:8080",
            "cxr-unit-7.local",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "",
            ":8080",
            "127.0.0.1.evil.example",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn only_the_servers_own_origin_is_allowed() {
        assert!(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!origin_allowed("http://evil.example", "127.0.0.1:8080"));
        assert!(!origin_allowed("null", "127.0.0.1:8080"));
        assert!(!origin_allowed(
            "https://127.0.0.1:8080.evil.example",
            "127.0.0.1:8080"
        ));
    }
}
