//! The client's address: the peer's, or, when the peer is a trusted reverse proxy, the address
//! the proxies say they received the request from (`X-Forwarded-For`, else `Forwarded`). The
//! chain is read from the right, skipping trusted proxies, so a client cannot choose its address
//! by writing the header itself.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::TrustedProxies;

pub fn client_ip(trusted: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let forwarded_for: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(parse_address)
        .collect();
    let chain = if forwarded_for.is_empty() {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for")
                        .then(|| parse_address(value))?
                })
            })
            .collect()
    } else {
        forwarded_for
    };
    chain
        .into_iter()
        .rev()
        .find(|address| !trusted.contains(*address))
        .unwrap_or(peer)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = text.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|inner| inner.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).expect("proxies");
        let spoofed = headers(&[("x-forwarded-for", "6.6.6.6")]);
        // Without trusted proxies, the header is the client's own words.
        assert_eq!(
            client_ip(&none, ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        // From an untrusted peer too.
        assert_eq!(
            client_ip(&proxies, ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        // Behind the proxy: the rightmost address that is not a proxy; what the client
        // prepended is ignored.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(
            client_ip(&proxies, ip("10.0.0.1"), &chain),
            ip("198.51.100.7")
        );
        let standard = headers(&[(
            "forwarded",
            "for=198.51.100.8;proto=https, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(client_ip(&proxies, ip("::1"), &standard), ip("2001:db8::1"));
        // A proxy that sent nothing usable: the proxy itself.
        assert_eq!(
            client_ip(&proxies, ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_parse_and_match_networks() {
        let proxies = TrustedProxies::parse(&["192.168.0.0/16", "2001:db8::/32"]).expect("parse");
        assert!(proxies.contains(ip("192.168.7.7")));
        assert!(proxies.contains(ip("::ffff:192.168.1.1")));
        assert!(!proxies.contains(ip("192.169.0.1")));
        assert!(proxies.contains(ip("2001:db8:ffff::1")));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local"]).is_err());
    }
}
