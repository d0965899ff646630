//! A c2c: the helper process that carries the frames of the endpoint's port `eth0` to a lan
//! of another lab over UDP, in VXLAN (see `crate::helper::c2c`).
//!
//! The UDP socket is made here, in cloonix's own network namespace (the host's, where the
//! peer is reachable), and handed to the helper, which lives in the endpoint's namespace
//! with `eth0`. The slave's socket listens on `bind` (127.0.0.1 by default); the master's
//! sends from loopback to a loopback peer, and otherwise from the address that routes to
//! its peer, on the peer's port where it is free (a kernel VXLAN device sends to the port
//! it listens on). Both sides derive the same VNI from what both files say: the two labs'
//! names and the slave's port.

use super::{Facts, Seen, StepCx};
use crate::graph::names::port_name;
use crate::graph::{C2cSpec, Resource, ResourceId};
use crate::host::process::Identity;
use crate::host::{HostError, Lab, Result, helper, netns};
use crate::model::C2cRole;
use crate::status::{Health, LabStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsFd;

const KIND: &str = "c2c";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    pub helper: Option<Identity>,
}

pub struct Driver;

/// The link's VNI: the same on both sides, never 0.
pub fn vni(lab: &str, peer_lab: &str, port: u16) -> u32 {
    let (x, y) = if lab <= peer_lab {
        (lab, peer_lab)
    } else {
        (peer_lab, lab)
    };
    let d = Sha256::digest(format!("cloonix-c2c/{x}/{y}/{port}").as_bytes());
    (u32::from_be_bytes([0, d[0], d[1], d[2]])).max(1)
}

/// The peer's address, and the UDP socket this side uses.
fn socket(s: &C2cSpec) -> Result<(Option<SocketAddr>, UdpSocket, u16)> {
    let err = |what: String| move |e: std::io::Error| HostError::Other(format!("{what}: {e}"));
    match s.role {
        C2cRole::Slave => {
            let port = s.port.unwrap_or_default();
            let ip = s.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let at = SocketAddr::new(ip, port);
            let udp = UdpSocket::bind(at).map_err(err(format!("listen on UDP {at}")))?;
            Ok((None, udp, port))
        }
        C2cRole::Master => {
            let text = s.peer.clone().unwrap_or_default();
            let peer = text
                .to_socket_addrs()
                .map_err(err(format!("resolve the peer {text}")))?
                .next()
                .ok_or_else(|| HostError::Other(format!("the peer {text} has no address")))?;
            let any = match peer {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let udp = if peer.ip().is_loopback() {
                UdpSocket::bind(SocketAddr::new(peer.ip(), 0))
            } else {
                let probe = UdpSocket::bind(SocketAddr::new(any, 0))
                    .and_then(|p| p.connect(peer).map(|_| p))
                    .and_then(|p| p.local_addr());
                let ip = probe.map(|a| a.ip()).unwrap_or(any);
                UdpSocket::bind(SocketAddr::new(ip, peer.port()))
                    .or_else(|_| UdpSocket::bind(SocketAddr::new(ip, 0)))
            }
            .map_err(err(format!("open a UDP socket toward {peer}")))?;
            Ok((Some(peer), udp, peer.port()))
        }
    }
}

fn start(cx: &StepCx, s: &C2cSpec) -> Result<Receipt> {
    let (lab, name) = (cx.lab, cx.name());
    helper::stop(lab, name, KIND, None)?;
    // VXLAN carries wire frames with their checksums done: no offloads toward the helper.
    // Frames from the helper are merged back into TCP segments (GRO) for the switch.
    let dev = port_name(name, "eth0");
    netns::within(&lab.switch_ns(), move || {
        netns::set_tx_checksum(&dev, false)?;
        netns::set_gro(&dev, true)
    })?;
    let (peer, udp, port) = socket(s)?;
    // Room for bursts while a helper waits for a CPU (FORCE: beyond the sysctl maximum;
    // cloonix is root): a full socket drops frames that TCP then sends again. Measured:
    // with the default 208 KiB, 7% of a TCP stream's frames were lost between helpers.
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        let size: libc::c_int = 8 << 20;
        // SAFETY: setsockopt on a socket we own, with a value of the size given.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&udp),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let role = match s.role {
        C2cRole::Master => "master",
        C2cRole::Slave => "slave",
    };
    let mut args = vec![
        "--role".to_string(),
        role.into(),
        "--vni".into(),
        vni(&lab.name, &s.peer_lab, port).to_string(),
    ];
    if let Some(p) = peer {
        args.extend(["--peer".into(), p.to_string()]);
    }
    let id = helper::start(lab, name, KIND, args, Some(udp.as_fd()))?;
    Ok(Receipt { helper: Some(id) })
}

impl super::Driver for Driver {
    type Spec = C2cSpec;
    type Receipt = Receipt;

    fn create(cx: &StepCx, s: &C2cSpec) -> Result<Receipt> {
        start(cx, s)
    }

    /// Every field of a c2c replaces it; only a helper found dead comes here.
    fn update(cx: &StepCx, _before: &C2cSpec, s: &C2cSpec, r: Receipt) -> Result<Receipt> {
        match r.helper.as_ref().is_some_and(Identity::alive) {
            true => Ok(r),
            false => start(cx, s),
        }
    }

    fn destroy(cx: &StepCx, _s: &C2cSpec, r: Receipt) -> Result<()> {
        helper::stop(cx.lab, cx.name(), KIND, r.helper)
    }

    fn observe(lab: &Lab, _f: &Facts, id: &ResourceId, _s: &mut C2cSpec, r: &Receipt) -> Seen {
        if !r.helper.as_ref().is_some_and(Identity::alive) {
            return Seen::Gone;
        }
        match helper::query(lab, &id.name) {
            Ok(_) => Seen::Present,
            Err(_) => Seen::Tainted("its helper does not answer on its control socket".into()),
        }
    }

    fn report(
        lab: &Lab,
        r: &Resource,
        _s: &C2cSpec,
        rc: &Receipt,
        seen: &Seen,
        out: &mut LabStatus,
    ) {
        let ep = out.endpoint(&r.id.name);
        ep.kind = KIND.into();
        super::report_process(
            ep,
            seen,
            rc.helper.map(|h| h.pid),
            "its helper is not running",
        );
        if *seen == Seen::Present {
            ep.c2c = helper::query(lab, &r.id.name).ok().and_then(|r| r.c2c);
            if let Some(c) = &ep.c2c
                && c.state != Health::Up
            {
                ep.state = ep.state.max(Health::Down);
                ep.problems.push(match &c.peer {
                    Some(p) => format!("no word from its peer {p}"),
                    None => "no peer has reached it yet".into(),
                });
            }
        }
    }

    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let stray = helper::unrecorded(lab, None, KIND);
        match crate::host::process::kill_all(&stray) {
            Ok(()) => Vec::new(),
            Err(e) => vec![("c2c helpers".into(), e)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_one_vni() {
        assert_eq!(vni("east", "west", 47000), vni("west", "east", 47000));
        assert_ne!(vni("east", "west", 47000), vni("east", "west", 47001));
        assert!(vni("a", "b", 1) < 1 << 24);
    }
}
