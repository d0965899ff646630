//! A nat's router, all inside its own namespace and nothing in the host's: forwarding on,
//! one nftables table (masquerade out of the uplink; TCP to the gateway's address to the
//! host's loopback, and nothing else to the uplink's own subnet or link-local), slirp4netns as the uplink to the host's world in user space, dnsmasq
//! for DHCP and the DNS relay.
//!
//! slirp4netns gives the namespace a `tap0` in 10.0.2.0/24: the host's 127.0.0.1 answers
//! at 10.0.2.2, and 10.0.2.3 forwards DNS to the host's resolv.conf. It runs in a private
//! mount namespace: its sandbox, run as root in the host's, unmounts every namespace under
//! /run/netns (measured here).

use super::process::{self, Identity, Launch};
use super::{HostError, Result, io, netns};
use crate::model::units::Resolver;
use ipnet::Ipv4Net;
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix,
};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The router's interface on the lan, and its uplink.
pub const LAN_IF: &str = "eth0";
pub const UPLINK_IF: &str = "tap0";
/// Where the host's loopback answers through the uplink, and its DNS forwarder.
pub const HOST_LOOPBACK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const HOST_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
const TABLE: &str = "cloonix";

/// The `i`-th address of `subnet`.
pub fn host(subnet: &Ipv4Net, i: u32) -> Ipv4Addr {
    crate::model::Nat::address(subnet, i)
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn text(s: impl Into<Cow<'static, str>>) -> Expression<'static> {
    Expression::String(s.into())
}

/// The nat's table: a guest's TCP to the gateway goes to the host's loopback; what leaves
/// through the uplink is masqueraded.
pub fn ruleset(gateway: Ipv4Addr) -> nftables::schema::Nftables<'static> {
    let chain = |name: &'static str, hook, prio| Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(if hook == NfHook::Forward {
            NfChainType::Filter
        } else {
            NfChainType::NAT
        }),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Default::default()
    };
    let rule = |chain: &'static str, expr: Vec<Statement<'static>>| Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Default::default()
    };
    let daddr = Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "ip".into(),
            field: "daddr".into(),
        },
    )));
    let net = |a: Ipv4Addr, len: u32| {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(text(a.to_string())),
            len,
        }))
    };
    let mut batch = nftables::batch::Batch::new();
    batch.add(NfListObject::Table(Table {
        family: NfFamily::IP,
        name: TABLE.into(),
        ..Default::default()
    }));
    batch.add(NfListObject::Chain(chain(
        "prerouting",
        NfHook::Prerouting,
        -100,
    )));
    batch.add(NfListObject::Chain(chain(
        "postrouting",
        NfHook::Postrouting,
        100,
    )));
    batch.add(NfListObject::Chain(chain("forward", NfHook::Forward, 0)));
    // The host's side of the uplink is reached only the one way the spec gives: TCP to the
    // gateway, turned into the host's loopback above. Straight to 10.0.2.0/24 (the host's
    // loopback on every port, UDP too) and to link-local (a cloud's metadata service and
    // the machine's credentials) the lab gets nothing.
    batch.add(NfListObject::Rule(rule(
        "forward",
        vec![
            matches(meta(MetaKey::Iifname), text(LAN_IF)),
            matches(daddr.clone(), net(Ipv4Addr::new(10, 0, 2, 0), 24)),
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: "status".into(),
                    family: None,
                    dir: None,
                })),
                right: text("dnat"),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ],
    )));
    for (a, len) in [
        (Ipv4Addr::new(10, 0, 2, 0), 24),
        (Ipv4Addr::new(169, 254, 0, 0), 16),
    ] {
        batch.add(NfListObject::Rule(rule(
            "forward",
            vec![
                matches(meta(MetaKey::Iifname), text(LAN_IF)),
                matches(daddr.clone(), net(a, len)),
                Statement::Drop(None),
            ],
        )));
    }
    batch.add(NfListObject::Rule(rule(
        "prerouting",
        vec![
            matches(meta(MetaKey::Iifname), text(LAN_IF)),
            matches(daddr, text(gateway.to_string())),
            matches(meta(MetaKey::L4proto), text("tcp")),
            Statement::DNAT(Some(NAT {
                addr: Some(text(HOST_LOOPBACK.to_string())),
                family: None,
                port: None,
                flags: None,
            })),
        ],
    )));
    batch.add(NfListObject::Rule(rule(
        "postrouting",
        vec![
            matches(meta(MetaKey::Oifname), text(UPLINK_IF)),
            Statement::Masquerade(None),
        ],
    )));
    batch.to_nftables()
}

/// Turns forwarding on and loads the table, in namespace `ns` (the `nft` that loads it is
/// started from a thread inside it, and so runs there).
pub fn configure(ns: &str, gateway: Ipv4Addr) -> Result<()> {
    let rules = ruleset(gateway);
    netns::within(ns, move || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(io("turn forwarding on in the nat"))?;
        // A table left by an earlier start goes first: loading is then the same each time.
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", TABLE])
            .stderr(std::process::Stdio::null())
            .status();
        nftables::helper::apply_ruleset(&rules).map_err(|e| match e {
            nftables::helper::NftablesError::NftExecution { .. } => HostError::Missing {
                program: "nft".into(),
                package: "nftables",
            },
            other => HostError::Other(format!("load the nat's nftables table: {other}")),
        })
    })
}

/// Starts slirp4netns as the uplink of namespace `ns`, and waits until it is ready.
pub fn start_uplink(ns: &str, log: &Path) -> Result<Identity> {
    let path = netns::path(ns).display().to_string();
    process::launch(&Launch {
        program: "slirp4netns",
        args: vec![
            "--configure".into(),
            "--mtu=65520".into(),
            "--netns-type=path".into(),
            "--enable-sandbox".into(),
            "--enable-seccomp".into(),
            "--ready-fd=3".into(),
            path,
            UPLINK_IF.into(),
        ],
        env: Vec::new(),
        netns: None,
        log: Some(log),
        private_mounts: true,
        ready_fd: Some(3),
        pass: &[],
        user: None,
    })
}

/// The `--server` of dnsmasq for a resolver: one on the host's loopback is reached through
/// the uplink's alias of it.
fn server(r: &Resolver) -> String {
    let ip = match r.0.ip() {
        std::net::IpAddr::V4(a) if a.is_loopback() => std::net::IpAddr::V4(HOST_LOOPBACK),
        other => other,
    };
    format!("{ip}#{}", r.0.port())
}

/// Starts dnsmasq in namespace `ns`: DHCP from `.10` with the gateway `.2` and the DNS
/// relay `.3` of `subnet`, relaying to `dns` (default: the host's resolvers, through the
/// uplink's forwarder); its leases in `dir`. Waits until it answers DHCP.
pub fn start_dhcp_dns(
    ns: &str,
    subnet: &Ipv4Net,
    dns: &[Resolver],
    dir: &Path,
) -> Result<Identity> {
    std::fs::create_dir_all(dir).map_err(io("create the nat's directory"))?;
    let (gw, relay) = (host(subnet, 2), host(subnet, 3));
    let last = Ipv4Addr::from(u32::from(subnet.broadcast()) - 1);
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".into(),
        "--no-hosts".into(),
        "--no-resolv".into(),
        "--bind-interfaces".into(),
        format!("--listen-address={relay}"),
        "--except-interface=lo".into(),
        format!(
            "--dhcp-range={},{last},{},12h",
            host(subnet, 10),
            subnet.netmask()
        ),
        "--dhcp-authoritative".into(),
        "--dhcp-sequential-ip".into(),
        "--no-ping".into(),
        format!("--dhcp-option=option:router,{gw}"),
        format!("--dhcp-option=option:dns-server,{relay}"),
        format!("--dhcp-leasefile={}", dir.join("leases").display()),
        "--pid-file=".into(),
        "--log-facility=-".into(),
        "--user=nobody".into(),
    ];
    match dns {
        [] => args.push(format!("--server={HOST_DNS}")),
        list => args.extend(list.iter().map(|r| format!("--server={}", server(r)))),
    }
    let path = netns::path(ns);
    let id = process::launch(&Launch {
        program: "dnsmasq",
        args,
        env: Vec::new(),
        netns: Some(&path),
        log: Some(&dir.join("dnsmasq.log")),
        private_mounts: false,
        ready_fd: None,
        pass: &[],
        user: None,
    })?;
    // Up once it holds its DHCP socket (port 67), in its namespace's socket table.
    let t0 = Instant::now();
    loop {
        let udp = std::fs::read_to_string(format!("/proc/{}/net/udp", id.pid)).unwrap_or_default();
        if udp.lines().any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| a.ends_with(":0043"))
        }) {
            return Ok(id);
        }
        if !id.alive() || t0.elapsed() > Duration::from_secs(10) {
            let log = std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default();
            return Err(HostError::Other(format!(
                "dnsmasq did not start: {}",
                log.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The nat processes of these namespaces that no record names (an apply killed while
/// starting them): dnsmasq in one of them, and a slirp4netns that serves one of them
/// (known by its program and the namespace it names).
pub fn unrecorded(namespaces: &[String]) -> Vec<Identity> {
    let paths: Vec<std::path::PathBuf> = namespaces.iter().map(|n| netns::path(n)).collect();
    let mut out: Vec<Identity> = process::which("dnsmasq")
        .map(|exe| process::find(&exe, &paths))
        .unwrap_or_default();
    if let Some(exe) = process::which("slirp4netns") {
        let args: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        out.extend(process::find_with_arg(&exe, &args));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sends_the_gateways_tcp_to_the_hosts_loopback() {
        let json = serde_json::to_string(&ruleset(Ipv4Addr::new(172, 17, 0, 2))).unwrap();
        for want in [
            "\"dnat\"",
            "\"10.0.2.2\"",
            "\"172.17.0.2\"",
            "\"masquerade\"",
            "\"tap0\"",
            "\"169.254.0.0\"",
            "\"drop\"",
        ] {
            assert!(json.contains(want), "{want} in {json}");
        }
    }

    #[test]
    fn loopback_resolvers_go_through_the_uplink() {
        let r = |s: &str| server(&s.parse().unwrap());
        assert_eq!(r("127.0.0.1:5353"), "10.0.2.2#5353");
        assert_eq!(r("9.9.9.9"), "9.9.9.9#53");
    }
}
