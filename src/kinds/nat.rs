//! A nat: the lab's way out. Its router namespace holds the gateway (.2) and DNS relay (.3)
//! addresses on the lan (the veth kind makes them), and this kind runs the rest there:
//! forwarding and the nftables table, slirp4netns as the uplink, dnsmasq for DHCP and DNS.
//! The two processes are known by their recorded identities; a dead one is drift.

use super::{Facts, HostView, Refusal, Seen, StepCx};
use crate::graph::{NatSpec, Resource, ResourceId};
use crate::host::nat;
use crate::host::process::{self, Identity};
use crate::host::{HostError, Lab, Result};
use crate::status::{Health, LabStatus};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub uplink: Option<Identity>,
    pub dhcp_dns: Option<Identity>,
}

pub struct Driver;

fn dir(lab: &Lab, endpoint: &str) -> PathBuf {
    lab.run.join("nat").join(endpoint)
}

fn alive(i: &Option<Identity>) -> bool {
    i.as_ref().is_some_and(Identity::alive)
}

impl super::Driver for Driver {
    type Spec = NatSpec;
    type Receipt = Receipt;

    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, s: &NatSpec) -> Vec<Refusal> {
        let mut out: Vec<Refusal> = ["slirp4netns", "dnsmasq", "nft"]
            .iter()
            .filter(|p| process::which(p).is_none())
            .map(|p| {
                Refusal::new(
                    "kind",
                    format!(
                        "a nat needs `{p}`: apt-get install {}",
                        crate::host::package_of(p)
                    ),
                )
            })
            .collect();
        for r in &s.dns {
            let ip = r.0.ip();
            if ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST {
                out.push(Refusal::new(
                    "dns",
                    format!("resolver {r}: of the host's loopback, a nat reaches 127.0.0.1 only"),
                ));
            }
        }
        out
    }

    fn create(cx: &StepCx, s: &NatSpec) -> Result<Receipt> {
        let ns = cx.lab.endpoint_ns(cx.name());
        // What an interrupted start left without a record.
        process::kill_all(&nat::unrecorded(std::slice::from_ref(&ns)))?;
        nat::configure(&ns, nat::host(&s.subnet, 2))?;
        let dir = dir(cx.lab, cx.name());
        std::fs::create_dir_all(&dir).map_err(crate::host::io("create the nat's directory"))?;
        let mut receipt = Receipt {
            uplink: Some(nat::start_uplink(&ns, &dir.join("slirp4netns.log"))?),
            dhcp_dns: None,
        };
        cx.checkpoint(&receipt)?;
        receipt.dhcp_dns = Some(nat::start_dhcp_dns(&ns, &s.subnet, &s.dns, &dir)?);
        Ok(receipt)
    }

    /// Its resolvers changed: dnsmasq starts anew with them; the uplink keeps running.
    fn update(cx: &StepCx, _before: &NatSpec, s: &NatSpec, mut r: Receipt) -> Result<Receipt> {
        if let Some(old) = r.dhcp_dns.take() {
            old.stop(Duration::from_secs(2))?;
        }
        let ns = cx.lab.endpoint_ns(cx.name());
        r.dhcp_dns = Some(nat::start_dhcp_dns(
            &ns,
            &s.subnet,
            &s.dns,
            &dir(cx.lab, cx.name()),
        )?);
        Ok(r)
    }

    /// Both processes go before the namespace: slirp4netns would keep it alive.
    fn destroy(cx: &StepCx, _s: &NatSpec, r: Receipt) -> Result<()> {
        for p in [r.dhcp_dns, r.uplink].into_iter().flatten() {
            p.stop(Duration::from_secs(2))?;
        }
        process::kill_all(&nat::unrecorded(&[cx.lab.endpoint_ns(cx.name())]))?;
        match std::fs::remove_dir_all(dir(cx.lab, cx.name())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::host::io("remove the nat's files")(e))
            }
            _ => Ok(()),
        }
    }

    fn observe(
        _lab: &Lab,
        _facts: &Facts,
        _id: &ResourceId,
        _s: &mut NatSpec,
        r: &Receipt,
    ) -> Seen {
        match alive(&r.uplink) && alive(&r.dhcp_dns) {
            true => Seen::Present,
            false => Seen::Gone,
        }
    }

    fn report(
        _lab: &Lab,
        r: &Resource,
        s: &NatSpec,
        rc: &Receipt,
        _seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = "nat".into();
        ep.notes.push(format!(
            "gateway {}, DNS {}, leases from {}",
            nat::host(&s.subnet, 2),
            nat::host(&s.subnet, 3),
            nat::host(&s.subnet, 10)
        ));
        for (what, p) in [("slirp4netns", &rc.uplink), ("dnsmasq", &rc.dhcp_dns)] {
            if !alive(p) {
                ep.problems.push(format!("{what} is not running"));
                ep.state = ep.state.max(Health::Down);
            }
        }
    }

    /// The nat processes of every endpoint namespace of the lab, in one pass.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let namespaces = crate::host::netns::list(&lab.endpoint_ns(""));
        match process::kill_all(&nat::unrecorded(&namespaces)) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("nat processes".into(), e)],
        }
    }
}
