//! The network guard: which addresses deliveries may reach, checked on the resolved address of every
//! new connection (and on an IP literal in the URL). It owns the rules of what an address *is*: the
//! unspecified addresses reach the local host, so they count as loopback; an IPv6 address that embeds an
//! IPv4 one (IPv4-mapped, IPv4-compatible, NAT64, 6to4) is judged by the IPv4 rules too. It never
//! decides what is blocked by policy beyond the default link-local and metadata ranges: that is the
//! operator's `webhook.blocked_networks` / `allowed_networks`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses deliveries may reach.
#[derive(Debug, Clone)]
pub struct NetworkGuard {
    allowed: Vec<IpNet>,
    blocked: Vec<IpNet>,
}

/// Link-local, cloud metadata and unspecified ranges, refused unless allowed.
pub fn default_blocked() -> Vec<IpNet> {
    [
        "169.254.0.0/16",
        "fe80::/10",
        "100.100.100.200/32",
        "fd00:ec2::254/128",
        "0.0.0.0/8",
        "::/128",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

impl NetworkGuard {
    pub fn new(allowed: Vec<IpNet>, mut blocked: Vec<IpNet>) -> Self {
        blocked.extend(default_blocked());
        NetworkGuard { allowed, blocked }
    }

    /// Whether a delivery may connect to `ip`: one of its forms (see [`spellings`]) is allowed, or none
    /// is blocked. An unspecified address is allowed only through the loopback it reaches, so a loopback
    /// block covers it even where the unspecified range is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let forms = spellings(ip);
        let allowed = forms
            .iter()
            .filter(|f| !f.is_unspecified())
            .any(|f| self.allowed.iter().any(|n| n.contains(f)));
        allowed
            || !forms
                .iter()
                .any(|f| self.blocked.iter().any(|n| n.contains(f)))
    }
}

/// The address and every address it reaches or embeds: an unspecified address is also the loopback
/// address of its family (and of IPv4, for `::`); an IPv6 address embedding an IPv4 one is also that
/// IPv4 address (and its own spellings).
pub fn spellings(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    match ip {
        IpAddr::V4(v4) => add_v4(&mut out, v4),
        IpAddr::V6(v6) if v6.is_unspecified() => {
            out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
            add_v4(&mut out, Ipv4Addr::UNSPECIFIED);
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                add_v4(&mut out, v4);
            }
        }
    }
    out
}

fn add_v4(out: &mut Vec<IpAddr>, v4: Ipv4Addr) {
    if !out.contains(&IpAddr::V4(v4)) {
        out.push(IpAddr::V4(v4));
    }
    if v4.is_unspecified() {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}

/// The IPv4 address an IPv6 spelling carries: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated, but routed by some stacks), NAT64 `64:ff9b::a.b.c.d` and the local-use `64:ff9b:1::/48`,
/// and 6to4 `2002:AABB:CCDD::/48`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // `::1` is IPv6's loopback, not an IPv4-compatible 0.0.0.1.
        [0, 0, 0, 0, 0, 0, 0, 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 1, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Resolves names and drops the addresses the guard refuses, so a name that later resolves elsewhere
/// cannot slip past: the check runs on every new connection.
pub(crate) struct GuardedResolver(pub(crate) Arc<NetworkGuard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to blocked networks (webhook.allowed_networks)")
                        .into();
                return Err(err);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn loopback_blocked() -> NetworkGuard {
        NetworkGuard::new(
            vec![],
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        )
    }

    #[test]
    fn the_guard_refuses_metadata_ranges_unless_allowed() {
        let g = NetworkGuard::new(vec![], vec![]);
        assert!(!g.permits(ip("169.254.169.254")));
        assert!(!g.permits(ip("fe80::1")));
        assert!(!g.permits(ip("::ffff:169.254.169.254")));
        assert!(g.permits(ip("127.0.0.1")));
        assert!(g.permits(ip("::1")));
        assert!(g.permits(ip("10.1.2.3")));
        let g = NetworkGuard::new(
            vec!["169.254.169.254/32".parse().unwrap()],
            vec!["10.0.0.0/8".parse().unwrap()],
        );
        assert!(g.permits(ip("169.254.169.254")));
        assert!(!g.permits(ip("169.254.1.1")));
        assert!(!g.permits(ip("10.1.2.3")));
    }

    #[test]
    fn unspecified_addresses_are_refused_by_default_and_count_as_loopback() {
        let g = NetworkGuard::new(vec![], vec![]);
        for spelled in ["::", "0:0:0:0:0:0:0:0", "0.0.0.0", "::ffff:0.0.0.0"] {
            assert!(!g.permits(ip(spelled)), "{spelled}");
        }
        // An operator who allows the unspecified range still has a loopback block apply to it.
        let g = NetworkGuard::new(
            vec!["::/128".parse().unwrap(), "0.0.0.0/8".parse().unwrap()],
            vec!["127.0.0.0/8".parse().unwrap()],
        );
        assert!(!g.permits(ip("::")));
        assert!(!g.permits(ip("0.0.0.0")));
    }

    #[test]
    fn every_ipv6_spelling_of_a_blocked_ipv4_address_is_refused() {
        let g = NetworkGuard::new(vec![], vec![]);
        for spelled in [
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(!g.permits(ip(spelled)), "{spelled}");
        }
        let g = loopback_blocked();
        for spelled in [
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(!g.permits(ip(spelled)), "{spelled}");
        }
    }

    #[test]
    fn ordinary_addresses_stay_permitted_when_loopback_is_blocked() {
        let g = loopback_blocked();
        assert!(!g.permits(ip("::1")));
        assert!(!g.permits(ip("127.0.0.2")));
        assert!(g.permits(ip("10.0.0.1")));
        assert!(g.permits(ip("2001:db8::1")));
        assert!(g.permits(ip("64:ff9b::a00:1")));
        assert!(g.permits(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn an_allowed_ipv4_network_admits_its_ipv6_spellings() {
        let g = NetworkGuard::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            vec!["::ffff:0:0/96".parse().unwrap()],
        );
        assert!(g.permits(ip("::ffff:10.1.2.3")));
        assert!(!g.permits(ip("::ffff:11.1.2.3")));
    }
}
