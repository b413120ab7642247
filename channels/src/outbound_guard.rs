//! Calls to URLs a tenant configured (a mobile app's push hook) must not reach the gateway's own
//! network: a tenant could otherwise make the server call its loopback, private or cloud
//! metadata addresses (server-side request forgery) and read the answer back from the delivery
//! state.
//!
//! The rules ([`DestinationPolicy`], both relaxations off by default):
//! - the scheme is `https` (`http` only with `allow_http`);
//! - every address the host resolves to is global: not loopback, private, link-local, shared
//!   (CGNAT), documentation, benchmarking, multicast, reserved or unspecified, in IPv4 or IPv6
//!   (IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address inside), unless
//!   `allow_private`. One non-global address refuses the whole host;
//! - the connection goes to an address that was checked: [`guarded_client`] resolves through
//!   [`GuardedResolver`], which checks the addresses it hands to the connector, so a DNS answer
//!   that changes between a check and the connection (DNS rebinding) cannot slip through;
//! - redirects are never followed and no proxy from the environment is used (a proxy would
//!   resolve the host itself).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Where tenant-configured URLs may point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Accept `http://` URLs (tests, private deployments). Default: https only.
    pub allow_http: bool,
    /// Accept hosts that resolve to loopback, private, link-local and other non-global addresses
    /// (tests, private deployments). Default: global addresses only.
    pub allow_private: bool,
}

/// Why a destination is refused. Stable codes; never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("the url is not a valid absolute url")]
    BadUrl,
    #[error("the url must use https")]
    Scheme,
    #[error("the url's host is not allowed (loopback, private, link-local or another non-global address)")]
    NotGlobal,
    #[error("the url's host could not be resolved")]
    Unresolved,
}

impl DestinationError {
    pub fn code(&self) -> &'static str {
        match self {
            DestinationError::BadUrl => "bad_url",
            DestinationError::Scheme => "scheme_not_allowed",
            DestinationError::NotGlobal => "destination_not_allowed",
            DestinationError::Unresolved => "unresolved",
        }
    }
}

/// True when `ip` is a globally routable unicast address.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", includes 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_global_v4(v4);
    }
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded_v4 = |from: usize| {
        Ipv4Addr::new(
            octets[from],
            octets[from + 1],
            octets[from + 2],
            octets[from + 3],
        )
    };
    match segments {
        // unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 well-known prefix 64:ff9b::/96: judged by the IPv4 address inside.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => is_global_v4(embedded_v4(12)),
        // 64:ff9b:1::/48 local-use NAT64
        [0x64, 0xff9b, 1, ..] => false,
        // discard-only 100::/64
        [0x100, 0, 0, 0, ..] => false,
        // Teredo 2001::/32, ORCHIDv2 2001:20::/28, documentation 2001:db8::/32, IETF 2001::/23
        [0x2001, second, ..]
            if second < 0x200 || second == 0x0db8 || (0x20..0x30).contains(&second) =>
        {
            false
        }
        // 6to4 2002::/16: judged by the IPv4 address inside.
        [0x2002, ..] => is_global_v4(embedded_v4(2)),
        // documentation 3fff::/20
        [0x3fff, second, ..] if second < 0x1000 => false,
        [first, ..] => {
            !((first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (first & 0xff00) == 0xff00) // multicast
        }
    }
}

/// Checks a URL before it is stored or called: it parses, its scheme is allowed, and a host
/// that is an IP literal (or `localhost`) is allowed. Host names are checked again, after
/// resolution, when the URL is called.
pub fn check_url(url: &str, policy: DestinationPolicy) -> Result<reqwest::Url, DestinationError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| DestinationError::BadUrl)?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(DestinationError::Scheme),
    }
    let host = parsed.host_str().ok_or(DestinationError::BadUrl)?;
    let allowed = match literal_ip(host) {
        Some(ip) => is_global(ip),
        None => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            !(name == "localhost" || name.ends_with(".localhost"))
        }
    };
    if allowed || policy.allow_private {
        Ok(parsed)
    } else {
        Err(DestinationError::NotGlobal)
    }
}

/// The address of an IP-literal host (`[...]` around IPv6 as URLs write it).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves `url`'s host and checks every address (see [`check_url`] for the URL itself). The
/// call then goes through [`guarded_client`], which checks again what it connects to.
pub async fn check_destination(
    url: &str,
    policy: DestinationPolicy,
) -> Result<reqwest::Url, DestinationError> {
    let parsed = check_url(url, policy)?;
    if policy.allow_private {
        return Ok(parsed);
    }
    if let Some(host) = parsed.host_str().filter(|host| literal_ip(host).is_none()) {
        resolve_checked(host, false).await?;
    }
    Ok(parsed)
}

async fn resolve_checked(
    name: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, DestinationError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|_| DestinationError::Unresolved)?
        .collect();
    if addrs.is_empty() {
        return Err(DestinationError::Unresolved);
    }
    if !allow_private && addrs.iter().any(|addr| !is_global(addr.ip())) {
        return Err(DestinationError::NotGlobal);
    }
    Ok(addrs)
}

/// A DNS resolver for reqwest that hands the connector only checked addresses: the connection
/// goes to an address that passed [`is_global`] (unless private hosts are allowed), whatever
/// the name resolves to by then.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let name = name.as_str().to_owned();
        Box::pin(async move {
            match resolve_checked(&name, allow_private).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(error) => Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The HTTP client for tenant-configured URLs: checked DNS, no redirects, no proxy, a timeout.
/// IP-literal hosts do not go through a resolver: check the URL with [`check_destination`]
/// before every call.
pub fn guarded_client(timeout: Duration, policy: DestinationPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: policy.allow_private,
        }))
        .build()
        // Only fails when the TLS backend cannot start; the default client would follow
        // redirects, so build the plainest client that does not.
        .unwrap_or_else(|_| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver {
                    allow_private: policy.allow_private,
                }))
                .build()
                .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test setup")
    }

    #[test]
    fn only_global_addresses_are_global() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            "::127.0.0.1",
            "fec0::1",
        ] {
            assert!(!is_global(ip(refused)), "{refused} must not be global");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_global(ip(allowed)), "{allowed} is global");
        }
    }

    #[test]
    fn urls_must_be_https_and_not_name_a_private_host() {
        let strict = DestinationPolicy::default();
        assert_eq!(
            check_url("http://push.example/hook", strict),
            Err(DestinationError::Scheme)
        );
        assert_eq!(
            check_url("ftp://push.example/hook", strict),
            Err(DestinationError::Scheme)
        );
        assert_eq!(
            check_url("not a url", strict),
            Err(DestinationError::BadUrl)
        );
        for private in [
            "https://127.0.0.1/hook",
            "https://10.0.0.5:8443/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/hook",
            "https://api.localhost./hook",
            "https://2130706433/hook", // 127.0.0.1 as one number
            "https://0x7f.1/hook",
        ] {
            assert_eq!(
                check_url(private, strict),
                Err(DestinationError::NotGlobal),
                "{private}"
            );
        }
        assert!(check_url("https://push.example/hook?key=1", strict).is_ok());
        assert!(check_url("https://8.8.8.8/hook", strict).is_ok());
        let relaxed = DestinationPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:9/hook", relaxed).is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let strict = DestinationPolicy {
            allow_http: true,
            allow_private: false,
        };
        // `localhost` is refused by name; a name that resolves to loopback is refused after
        // resolution (`localhost.` with a trailing dot is caught by name too, so use the
        // resolver directly).
        assert_eq!(
            resolve_checked("localhost", false).await.map(|_| ()),
            Err(DestinationError::NotGlobal)
        );
        assert!(resolve_checked("localhost", true).await.is_ok());
        assert_eq!(
            check_destination("http://localhost:1/hook", strict)
                .await
                .map(|_| ()),
            Err(DestinationError::NotGlobal)
        );
    }

    #[tokio::test]
    async fn the_guarded_client_neither_connects_to_loopback_nor_follows_redirects() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A local server that redirects every request, counting connections.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("test setup");
        let port = listener.local_addr().expect("test setup").port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/next\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let timeout = Duration::from_secs(5);
        // Strict: `localhost` resolves to loopback, so the resolver refuses and nothing connects.
        let strict = guarded_client(
            timeout,
            DestinationPolicy {
                allow_http: true,
                allow_private: false,
            },
        );
        let refused = strict
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await;
        assert!(refused.is_err());
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "never connected"
        );
        // Relaxed: it connects, and the redirect comes back as is, not followed.
        let relaxed = guarded_client(
            timeout,
            DestinationPolicy {
                allow_http: true,
                allow_private: true,
            },
        );
        let answer = relaxed
            .post(format!("http://localhost:{port}/hook"))
            .send()
            .await
            .expect("test setup");
        assert_eq!(answer.status().as_u16(), 302);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the redirect was not followed"
        );
    }
}
