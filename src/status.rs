//! A lab's status, as `cloonix status LAB` shows it and `-o json` prints it. Each resource
//! kind adds its own lines (`crate::kinds::Driver::report`); what the last apply asked for
//! and the lab lacks is added from a plan against it.
//!
//! The JSON shape (stable; later kinds add fields, never rename them):
//!
//! ```text
//! { "lab": "ring",
//!   "state": "up" | "degraded" | "down",
//!   "switch": { "state": "up"|"down"|"missing", "datapath": "netdev",
//!               "daemons": { "ovsdb-server": {"pid": 12, "running": true}, ... } },
//!   "lans": { "lan12": { "state": "up"|"missing", "mtu": 1500 } },
//!   "endpoints": { "r1": { "kind": "cnt", "state": "up"|"degraded"|"down"|"missing",
//!       "pid": 345,                      // its main process, where it has one
//!       "interfaces": { "eth0": { "state": "up"|"missing", "lan": "lan12",
//!                                 "mac": "02:..", "ips": ["10.0.12.1/24"] } },
//!       "run": [ { "command": "...", "exit_code": 0, "output": "", "timed_out": false } ],
//!       "notes": [ "cpu/ram limits not enforced: ..." ],
//!       "a2b": { "a_to_b": { "settings": {"delay": "40ms"}, "forwarded": 10, "forwarded_bytes": 980,
//!                            "dropped_loss": 0, "dropped_queue": 0, "queued": 0 }, "b_to_a": {...} },
//!       "c2c": { "state": "up"|"down", "role": "master", "local": "127.0.0.1:40000",
//!                "peer": "127.0.0.1:47000", "vni": 1234, "last_seen_ms": 420, "loss": 0.0,
//!                "frames_out": 5, "frames_in": 5, "dropped": 0 },
//!       "problems": [ "interface eth1 is gone" ] } },
//!   "pending": [ "+ endpoint r3" ],       // what the last apply wanted and the lab lacks
//!   "last_apply": { "file": "ring.yaml", "at": "2026-11-23T12:00:00Z", "ok": true },
//!   "notes": [ "this host's cgroups cannot be used ..." ],
//!   "topology": { ... } }                 // the lab as a topology file (canonical form)
//! ```

use crate::host::crun::RunResult;
use crate::model::{C2cRole, Impairment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    /// Running, but a part of it is gone.
    Degraded,
    /// Made, but not running.
    Down,
    /// Recorded, but gone.
    Missing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
            Health::Down => "down",
            Health::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessStatus {
    pub pid: i32,
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchStatus {
    pub state: Health,
    /// Which datapath the lab's bridges use.
    pub datapath: Option<String>,
    pub daemons: BTreeMap<String, ProcessStatus>,
}

impl Default for SwitchStatus {
    fn default() -> Self {
        SwitchStatus {
            state: Health::Missing,
            datapath: None,
            daemons: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LanStatus {
    pub state: Health,
    pub mtu: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceStatus {
    pub state: Health,
    pub lan: Option<String>,
    pub mac: Option<String>,
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    pub kind: String,
    pub state: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub interfaces: BTreeMap<String, InterfaceStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<RunResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// An a2b's settings and counters, per direction, as its helper reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a2b: Option<A2bStatus>,
    /// A c2c's link, as its helper reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c2c: Option<C2cStatus>,
}

/// Frames, bytes and drops of one direction of an a2b.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Wire frames sent on (a TSO segment counts as the frames it stands for).
    pub forwarded: u64,
    /// Their Ethernet bytes.
    pub forwarded_bytes: u64,
    pub dropped_loss: u64,
    /// Dropped because the rate's queue was full.
    pub dropped_queue: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectionStatus {
    pub settings: Impairment,
    #[serde(flatten)]
    pub counters: Counters,
    /// Frames waiting in the helper now (delayed or shaped).
    pub queued: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct A2bStatus {
    pub a_to_b: DirectionStatus,
    pub b_to_a: DirectionStatus,
}

/// One side of a c2c link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2cStatus {
    /// Up while keepalives (or frames) from the peer arrive, down after 3 s without.
    pub state: Health,
    pub role: C2cRole,
    /// The UDP address this side sends from and listens on.
    pub local: String,
    /// The peer's address: the master's from its file, the slave's as last heard.
    pub peer: Option<String>,
    /// The VXLAN network identifier of the link (set it on a kernel VXLAN far side).
    pub vni: u32,
    /// How long ago the peer was last heard from.
    pub last_seen_ms: Option<u64>,
    /// Keepalives lost, in percent, over the last 20.
    pub loss: f64,
    /// Frames sent to and received from the peer.
    pub frames_out: u64,
    pub frames_in: u64,
    /// Datagrams refused: another VNI, not VXLAN, a frame too big.
    pub dropped: u64,
}

impl EndpointStatus {
    /// The interface's entry, made on first use (the veth, the port and the NIC each
    /// fill in what they know).
    pub fn interface(&mut self, name: &str) -> &mut InterfaceStatus {
        self.interfaces
            .entry(name.to_string())
            .or_insert_with(|| InterfaceStatus {
                state: Health::Up,
                lan: None,
                mac: None,
                ips: Vec::new(),
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LastApply {
    pub file: String,
    pub at: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub lab: String,
    pub state: Health,
    pub switch: SwitchStatus,
    pub lans: BTreeMap<String, LanStatus>,
    pub endpoints: BTreeMap<String, EndpointStatus>,
    pub pending: Vec<String>,
    pub last_apply: Option<LastApply>,
    /// What holds for the whole lab on this host (e.g. that cgroups cannot be used).
    pub notes: Vec<String>,
}

impl LabStatus {
    /// Adds a lab-wide note once.
    pub fn note(&mut self, text: &str) {
        if !self.notes.iter().any(|n| n == text) {
            self.notes.push(text.to_string());
        }
    }

    pub fn new(lab: &str) -> LabStatus {
        LabStatus {
            lab: lab.to_string(),
            state: Health::Up,
            switch: SwitchStatus::default(),
            lans: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            pending: Vec::new(),
            last_apply: None,
            notes: Vec::new(),
        }
    }

    /// The endpoint's entry, made on first use; the resource that knows the endpoint's
    /// kind sets it.
    pub fn endpoint(&mut self, name: &str) -> &mut EndpointStatus {
        self.endpoints
            .entry(name.to_string())
            .or_insert_with(|| EndpointStatus {
                kind: String::new(),
                state: Health::Up,
                pid: None,
                interfaces: BTreeMap::new(),
                run: Vec::new(),
                notes: Vec::new(),
                problems: Vec::new(),
                a2b: None,
                c2c: None,
            })
    }

    /// Derives the overall states once every resource has reported: an endpoint with a
    /// problem is degraded (unless worse already), and the lab is as bad as its worst part.
    pub fn settle(&mut self) {
        let mut worst = self.switch.state;
        for ep in self.endpoints.values_mut() {
            if !ep.problems.is_empty() && ep.state == Health::Up {
                ep.state = Health::Degraded;
            }
            worst = worst.max(ep.state);
        }
        for lan in self.lans.values() {
            worst = worst.max(lan.state);
        }
        if !self.pending.is_empty() {
            worst = worst.max(Health::Degraded);
        }
        self.state = match worst {
            Health::Up => Health::Up,
            Health::Degraded => Health::Degraded,
            Health::Down | Health::Missing => Health::Down,
        };
    }
}
