//! `cloonix capture LAB TARGET`: the live frames of a lan, or of one port of it, from an
//! OVS mirror to a port made for the capture (`host::mirror`), read in process with an
//! AF_PACKET socket (`host::packet`) and written as pcap ([`pcap`]).
//!
//! A capture is not part of the lab's desired state: it is made when the command starts
//! and removed when it ends. Its OVSDB rows carry the lab's labels and the identity of
//! the capturing process, so that what a killed capture leaves is recognised and removed
//! by [`reap`], which the next apply, the next capture and destroy run.

pub mod pcap;

use crate::graph::Spec;
use crate::host::packet::{self, Listener};
use crate::host::process::Identity;
use crate::host::{HostError, Lab, mirror, ovs};
use crate::kinds::Seen;
use crate::observe::{Observation, observe_lab};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the user asked to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Lan(String),
    /// `ENDPOINT.IFACE`: one port, both ways.
    Port {
        endpoint: String,
        iface: String,
    },
}

impl Target {
    /// Names of lans have no `.`; a port is always `ENDPOINT.IFACE`.
    pub fn parse(s: &str) -> Target {
        match s.split_once('.') {
            Some((endpoint, iface)) => Target::Port {
                endpoint: endpoint.into(),
                iface: iface.into(),
            },
            None => Target::Lan(s.into()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Target::Lan(l) => write!(f, "lan {l}"),
            Target::Port { endpoint, iface } => write!(f, "port {endpoint}.{iface}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no lab {0}")]
    NoLab(String),
    #[error("lab {lab} has no {target}; {known}")]
    Unknown {
        lab: String,
        target: Target,
        known: String,
    },
    #[error("lan {lan} of lab {lab} is closed to capture (spy: false)")]
    Closed { lab: String, lan: String },
    #[error("{what} of lab {lab} is down; `cloonix apply` brings it back")]
    Down { lab: String, what: String },
    #[error("{0}")]
    Host(#[from] HostError),
}

/// Where a target's frames are: its lan's bridge and, for a port, the OVS port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub bridge: String,
    pub port: Option<String>,
    pub mtu: u32,
}

/// Finds `target` in an observed lab; refused when its lan has `spy: false`.
pub fn resolve(obs: &Observation, target: &Target) -> Result<Place, CaptureError> {
    let lab = &obs.lab.name;
    if !obs.exists() {
        return Err(CaptureError::NoLab(lab.clone()));
    }
    let lan = |name: &str| {
        obs.entries.iter().find_map(|e| match &e.resource.spec {
            Spec::Bridge(b) if e.resource.id.name == name => Some((b, &e.seen)),
            _ => None,
        })
    };
    let (lan_name, port) = match target {
        Target::Lan(l) => (l.clone(), None),
        Target::Port { endpoint, iface } => {
            let found = obs.entries.iter().find_map(|e| match &e.resource.spec {
                Spec::Port(p) if p.endpoint == *endpoint && p.iface == *iface => Some((p, &e.seen)),
                _ => None,
            });
            let Some((p, seen)) = found else {
                return Err(unknown(obs, target));
            };
            if *seen == Seen::Gone {
                return Err(CaptureError::Down {
                    lab: lab.clone(),
                    what: target.to_string(),
                });
            }
            (p.lan.clone(), Some(p.ifname.clone()))
        }
    };
    let Some((bridge, seen)) = lan(&lan_name) else {
        return Err(unknown(obs, target));
    };
    if !bridge.spy {
        return Err(CaptureError::Closed {
            lab: lab.clone(),
            lan: lan_name,
        });
    }
    if *seen == Seen::Gone {
        return Err(CaptureError::Down {
            lab: lab.clone(),
            what: format!("lan {lan_name}"),
        });
    }
    Ok(Place {
        bridge: lan_name,
        port,
        mtu: bridge.mtu,
    })
}

/// What can be captured in the lab, for a message about a target it lacks.
fn unknown(obs: &Observation, target: &Target) -> CaptureError {
    let mut lans = Vec::new();
    let mut ports = Vec::new();
    for e in &obs.entries {
        match &e.resource.spec {
            Spec::Bridge(_) => lans.push(e.resource.id.name.clone()),
            Spec::Port(p) => ports.push(format!("{}.{}", p.endpoint, p.iface)),
            _ => {}
        }
    }
    let list = |v: &[String]| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    let known = match target {
        Target::Lan(_) => format!("its lans: {}", list(&lans)),
        Target::Port { .. } => format!("its ports: {}", list(&ports)),
    };
    CaptureError::Unknown {
        lab: obs.lab.name.clone(),
        target: target.clone(),
        known,
    }
}

/// The name of a capture's port: `cx_PID_N`. It has a `_`, which no lan name has, and no
/// `.`, which every readable endpoint port name has; hashed port names are `ch` and hex.
pub fn port_name(pid: u32) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("cx_{pid}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A running capture: its mirror, its port and the socket reading it. Removed by
/// [`Session::stop`], or when dropped.
pub struct Session {
    lab: Lab,
    db: ovs::Ovsdb,
    ifname: String,
    listener: Listener,
    /// What is captured, for messages.
    pub target: Target,
    stopped: bool,
}

impl Session {
    /// Sets up a capture of `target` in `lab`: refuses a lan closed to capture, removes
    /// what killed captures of the lab left, adds the mirror and its port, and listens.
    pub fn start(lab: &Lab, target: Target) -> Result<Session, CaptureError> {
        let place = resolve(&observe_lab(lab), &target)?;
        let mut db = lab.db()?;
        mirror::reap(&mut db, &lab.name)?;
        let pid = std::process::id();
        let owner = Identity::of(pid as i32)
            .ok_or_else(|| HostError::Other("cannot read this process's identity".into()))?;
        let ifname = port_name(pid);
        mirror::add(
            &mut db,
            &mirror::Spy {
                lab: &lab.name,
                bridge: &place.bridge,
                port: place.port.as_deref(),
                ifname: &ifname,
                mtu: place.mtu,
                owner,
            },
        )?;
        let listener = match packet::listen(&lab.switch_ns(), &ifname) {
            Ok(l) => l,
            Err(e) => {
                let _ = mirror::remove(&mut db, &ifname);
                return Err(e.into());
            }
        };
        Ok(Session {
            lab: lab.clone(),
            db,
            ifname,
            listener,
            target,
            stopped: false,
        })
    }

    pub fn listener(&mut self) -> &mut Listener {
        &mut self.listener
    }

    /// The capture's port, as OVS and the switch namespace name it.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Why the capture cannot go on, if it cannot: its lan or port went away, or the lab.
    pub fn check(&mut self) -> Option<String> {
        match mirror::state(&mut self.db, &self.ifname) {
            Ok(mirror::State::Running) => None,
            Ok(mirror::State::Gone) => Some(format!(
                "{} of lab {} was removed or closed to capture",
                self.what_lan(),
                self.lab.name
            )),
            Ok(mirror::State::PortGone) => Some(format!(
                "{} of lab {} was removed",
                self.target, self.lab.name
            )),
            Err(_) => Some(format!("lab {}'s switch is gone", self.lab.name)),
        }
    }

    fn what_lan(&self) -> String {
        match &self.target {
            Target::Lan(_) => self.target.to_string(),
            Target::Port { .. } => format!("the lan of {}", self.target),
        }
    }

    /// Removes the mirror and its port.
    pub fn stop(mut self) -> Result<(), HostError> {
        self.stopped = true;
        self.remove()
    }

    /// On a new connection if the first one broke; a database that is gone took the
    /// mirror with it (the lab was destroyed).
    fn remove(&mut self) -> Result<(), HostError> {
        match mirror::remove(&mut self.db, &self.ifname) {
            Ok(()) => Ok(()),
            Err(e) => match self.lab.db() {
                Ok(mut db) => mirror::remove(&mut db, &self.ifname).map_err(|_| e),
                Err(_) => Ok(()),
            },
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.remove();
        }
    }
}

/// Removes what captures of `lab` left when they were killed; their port names. A lab
/// whose database does not answer has none.
pub fn reap(lab: &Lab) -> Result<Vec<String>, HostError> {
    match lab.db() {
        Ok(mut db) => mirror::reap(&mut db, &lab.name),
        Err(_) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("lan12"), Target::Lan("lan12".into()));
        assert_eq!(
            Target::parse("r1.eth0"),
            Target::Port {
                endpoint: "r1".into(),
                iface: "eth0".into()
            }
        );
        assert_eq!(Target::parse("wan.a").to_string(), "port wan.a");
    }

    #[test]
    fn capture_ports_meet_no_other_name() {
        let name = port_name(4_194_304);
        assert!(name.len() <= 15, "{name}");
        assert!(name.contains('_') && !name.contains('.'));
        assert!(!crate::model::is_name(&name));
        assert_ne!(port_name(1), port_name(1));
    }
}
