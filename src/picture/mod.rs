//! `cloonix graph`: a lab as a picture. A topology (from a file, or read back from a
//! running lab) becomes a [`Picture`] — lans, endpoints with their kind, and a link per
//! interface labelled with its name and addresses — which [`dot`] and [`mermaid`] write
//! as text, and [`svg`] draws through Graphviz. Pure except for [`svg`].

pub mod dot;
pub mod mermaid;

use crate::host::HostError;
use crate::model::{Endpoint, Impairment, Topology};
use std::io::Write;
use std::process::{Command, Stdio};

/// What is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub lab: String,
    pub lans: Vec<Node>,
    pub endpoints: Vec<Node>,
    pub links: Vec<Link>,
}

/// A lan or an endpoint: its name, its kind (`lan` for a lan) and lines that say more.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: &'static str,
    pub notes: Vec<String>,
}

/// An endpoint's interface on a lan, with lines for its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub endpoint: String,
    pub lan: String,
    pub label: Vec<String>,
}

/// How a kind is drawn, so that kinds are told apart by their shape: Graphviz's shape
/// name, and Mermaid's brackets around the label.
pub fn shape(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "lan" => ("ellipse", "([", "])"),
        "cnt" => ("box", "[", "]"),
        "kvm" => ("box3d", "[[", "]]"),
        "nat" => ("hexagon", "{{", "}}"),
        "tap" => ("cds", ">", "]"),
        "phy" => ("parallelogram", "[/", "/]"),
        "a2b" => ("diamond", "{", "}"),
        "c2c" => ("trapezium", "[/", "\\]"),
        _ => ("box", "[", "]"),
    }
}

impl Picture {
    /// The picture of a topology; lans and endpoints in name order.
    pub fn of(t: &Topology) -> Picture {
        let lans = t
            .lans
            .iter()
            .map(|(name, lan)| {
                let mut notes = Vec::new();
                if lan.mtu != crate::model::DEFAULT_MTU {
                    notes.push(format!("mtu {}", lan.mtu));
                }
                if !lan.spy {
                    notes.push("spy: false".into());
                }
                Node {
                    name: name.clone(),
                    kind: "lan",
                    notes,
                }
            })
            .collect();
        let mut p = Picture {
            lab: t.name.clone(),
            lans,
            endpoints: Vec::new(),
            links: Vec::new(),
        };
        for (name, ep) in &t.endpoints {
            p.endpoint(name, ep);
        }
        p
    }

    fn link(&mut self, endpoint: &str, lan: &str, label: Vec<String>) {
        self.links.push(Link {
            endpoint: endpoint.into(),
            lan: lan.into(),
            label,
        });
    }

    fn endpoint(&mut self, name: &str, ep: &Endpoint) {
        let mut notes = Vec::new();
        let iface = |n: &str, ips: &[crate::model::units::Cidr]| {
            std::iter::once(n.to_string())
                .chain(ips.iter().map(|ip| ip.to_string()))
                .collect::<Vec<_>>()
        };
        match ep {
            Endpoint::Cnt(c) => {
                for e in &c.eth {
                    self.link(name, &e.lan, iface(&e.name, &e.ip));
                }
            }
            Endpoint::Kvm(v) => {
                for e in &v.eth {
                    self.link(name, &e.eth.lan, iface(&e.eth.name, &e.eth.ip));
                }
            }
            Endpoint::Nat(n) => {
                let gw = n
                    .subnet
                    .hosts()
                    .nth(1)
                    .map(|a| format!("{a}/{}", n.subnet.prefix_len()));
                self.link(name, &n.lan, gw.into_iter().collect());
                notes.push("DHCP, DNS, NAT".into());
            }
            Endpoint::Tap(t) => {
                let host = t.name.as_deref().unwrap_or(name);
                self.link(name, &t.lan, iface(host, &t.ip));
                notes.push("on the host".into());
            }
            Endpoint::Phy(p) => {
                self.link(name, &p.lan, vec![p.device.clone()]);
            }
            Endpoint::A2b(a) => {
                self.link(name, &a.a, vec!["a".into()]);
                self.link(name, &a.b, vec!["b".into()]);
                for (dir, imp) in [("a→b", &a.a_to_b), ("b→a", &a.b_to_a)] {
                    if let Some(text) = impairment(imp) {
                        notes.push(format!("{dir} {text}"));
                    }
                }
            }
            Endpoint::C2c(c) => {
                self.link(name, &c.lan, Vec::new());
                notes.push(format!("to {}:{}", c.peer_lab, c.peer_lan));
            }
        }
        self.endpoints.push(Node {
            name: name.into(),
            kind: ep.kind(),
            notes,
        });
    }
}

/// An impairment in a few words: `40ms ±5ms 1% loss 10mbit`.
fn impairment(i: &Impairment) -> Option<String> {
    let parts: Vec<String> = [
        i.delay.map(|d| d.to_string()),
        i.jitter.map(|j| format!("±{j}")),
        i.loss.map(|l| format!("{l} loss")),
        i.rate.map(|r| r.to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Draws DOT text as SVG with Graphviz's `dot`.
pub fn svg(dot: &str) -> Result<String, HostError> {
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(HostError::Missing {
                program: "dot".into(),
                package: "graphviz",
            });
        }
        Err(e) => return Err(crate::host::io("run dot")(e)),
    };
    let mut stdin = child.stdin.take().expect("piped");
    let text = dot.to_string();
    // Written from a thread: dot may fill its output pipe before it has read all input.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(crate::host::io("run dot"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(HostError::Command {
            what: "dot -Tsvg".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| HostError::Other("dot wrote no UTF-8".into()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lab with one of several kinds: two containers on a lan, a nat, an a2b to a second
    /// lan that is closed to capture.
    pub fn small() -> Topology {
        let text = "name: small\n\
            lans: {lan1: {}, lan2: {mtu: 9000, spy: false}}\n\
            endpoints:\n\
            \x20 r1: {kind: cnt, eth: [{lan: lan1, ip: [10.0.0.1/24, 'fd00::1/64']}]}\n\
            \x20 r2: {kind: cnt, eth: [{lan: lan1, ip: 10.0.0.2/24}, {name: up, lan: lan2}]}\n\
            \x20 gw: {kind: nat, lan: lan1}\n\
            \x20 wan: {kind: a2b, a: lan1, b: lan2, a_to_b: {delay: 40ms, loss: 1%}}\n";
        crate::model::load_str(text, std::path::Path::new("."))
            .expect("valid")
            .topology
    }

    #[test]
    fn every_interface_is_a_link_with_its_addresses() {
        let p = Picture::of(&small());
        assert_eq!(p.lans.len(), 2);
        assert_eq!(p.endpoints.len(), 4);
        let r1 = p.links.iter().find(|l| l.endpoint == "r1").unwrap();
        assert_eq!(r1.label, ["eth0", "10.0.0.1/24", "fd00::1/64"]);
        let gw = p.links.iter().find(|l| l.endpoint == "gw").unwrap();
        assert_eq!(gw.label, ["172.17.0.2/24"]);
        let wan = p.endpoints.iter().find(|e| e.name == "wan").unwrap();
        assert_eq!(wan.notes, ["a→b 40ms 1% loss"]);
        assert_eq!(p.lans[1].notes, ["mtu 9000", "spy: false"]);
    }

    #[test]
    fn kinds_have_shapes_of_their_own() {
        let kinds = ["lan", "cnt", "kvm", "nat", "tap", "phy", "a2b", "c2c"];
        let mut dot: Vec<_> = kinds.iter().map(|k| shape(k).0).collect();
        let mut mermaid: Vec<_> = kinds.iter().map(|k| (shape(k).1, shape(k).2)).collect();
        dot.sort();
        dot.dedup();
        mermaid.sort();
        mermaid.dedup();
        assert_eq!(dot.len(), kinds.len());
        assert_eq!(mermaid.len(), kinds.len());
    }
}
