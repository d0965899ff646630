//! Each endpoint kind's fields, after `kind` has said which.

use super::super::units;
use super::super::*;
use super::checks::ParsedIp;
use super::reader::{Cx, Fields, is_ifname};
use super::{KINDS, present_or_empty};
use crate::diag::{Pos, did_you_mean};
use crate::yaml::{Node, Value};
use std::path::Path;

impl Cx {
    pub(super) fn endpoint(&mut self, name: &str, node: &Node) -> Option<Endpoint> {
        let mut f = self.fields(node, "an endpoint")?;
        let kind_node = f.req(
            self,
            "kind",
            "e.g. `kind: cnt` (or kvm, nat, tap, phy, a2b, c2c)",
        )?;
        let kind = self.string(kind_node, "kind")?;
        let what = format!("a `{kind}` endpoint");
        let ep = match kind.as_str() {
            "cnt" => self.container(&mut f).map(Endpoint::Cnt),
            "kvm" => self.vm(&mut f).map(Endpoint::Kvm),
            "nat" => self.nat(&mut f).map(Endpoint::Nat),
            "tap" => self.tap(name, &mut f).map(Endpoint::Tap),
            "phy" => self.phy(&mut f).map(Endpoint::Phy),
            "a2b" => self.a2b(&mut f).map(Endpoint::A2b),
            "c2c" => self.c2c(&mut f).map(Endpoint::C2c),
            _ => {
                let hint = match did_you_mean(&kind, KINDS) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => format!("the kinds are: {}", KINDS.join(", ")),
                };
                self.err(
                    kind_node.pos,
                    format!("unknown endpoint kind `{kind}`"),
                    hint,
                );
                return None;
            }
        };
        f.finish(self, &what);
        ep
    }
    pub(super) fn vm(&mut self, f: &mut Fields) -> Option<Vm> {
        let cpu = f.opt("cpu");
        let ram = f.opt("ram");
        let image = f.opt("image");
        let accel = f.opt("accel");
        let eth = f.opt("eth");
        let files = f.opt("files");
        let run = f.opt("run");
        let cpu = match cpu {
            Some(n) => self.number(n, "cpu", (1.0, 64.0)),
            None => Some(1),
        };
        let ram = match ram {
            Some(n) => self.number(n, "ram", (32.0, 1_048_576.0)),
            None => Some(DEFAULT_VM_RAM),
        };
        let image = match image {
            None => Some(None),
            Some(n) => self.vm_image(n).map(Some),
        };
        let accel = match accel {
            None => Some(Accel::Auto),
            Some(n) => match self.string(n, "accel")?.as_str() {
                "auto" => Some(Accel::Auto),
                "kvm" => Some(Accel::Kvm),
                "tcg" => Some(Accel::Tcg),
                other => {
                    self.err(
                        n.pos,
                        format!("unknown accel `{other}`"),
                        "use `auto`, `kvm` or `tcg`",
                    );
                    None
                }
            },
        };
        let eth = present_or_empty(eth.map(|n| self.eth_list(n, true)));
        let files = present_or_empty(files.map(|n| self.files(n)));
        let run = present_or_empty(run.map(|n| self.commands(n)));
        Some(Vm {
            cpu: cpu?,
            ram: ram?,
            image: image?,
            accel: accel?,
            eth: eth?,
            files: files?,
            run: run?,
        })
    }

    pub(super) fn vm_image(&mut self, node: &Node) -> Option<VmImage> {
        if let Value::Scalar(..) = node.value {
            let path = self.host_path(node, "disk image", false)?;
            return self.disk_chain(node, &path).then_some(VmImage::Disk(path));
        }
        let mut f = self.fields(node, "a VM image")?;
        let kernel = f.req(self, "kernel", "a disk path, or `{kernel, initrd, append}`");
        let initrd = f.opt("initrd");
        let append = f.opt("append");
        f.finish(self, "a VM image");
        let kernel = self.host_path(kernel?, "kernel", false);
        let initrd = match initrd {
            Some(n) => self.host_path(n, "initrd", false).map(Some),
            None => Some(None),
        };
        let append = match append {
            Some(n) => self.string(n, "append").map(Some),
            None => Some(None),
        };
        Some(VmImage::Kernel {
            kernel: kernel?,
            initrd: initrd?,
            append: append?,
        })
    }

    /// Checks a disk image's backing chain: every file it names must be plain, typed and
    /// (without `--allow-host`) inside the topology's directory.
    fn disk_chain(&mut self, node: &Node, top: &str) -> bool {
        let (chain, problems) = qcow2::chain(Path::new(top), Some(&self.dir.clone()));
        for p in problems {
            match p {
                qcow2::Problem::Outside(path) if path == Path::new(top) => {}
                qcow2::Problem::Outside(path) => self.host_item(
                    node.pos,
                    format!(
                        "backing file `{}` of disk image `{top}` is outside the topology's directory",
                        path.display()
                    ),
                ),
                qcow2::Problem::Refused(why) => self.err(
                    node.pos,
                    format!("disk image `{top}` cannot be used: {why}"),
                    "a qcow2 image whose backing files are plain qcow2 or raw files, with their formats given, and no external data file",
                ),
            }
        }
        chain.is_some()
    }

    pub(super) fn nat(&mut self, f: &mut Fields) -> Option<Nat> {
        let lan = f.req(self, "lan", "the lan it routes for: `lan: lan1`");
        let subnet = f.opt("subnet");
        let dns = f.opt("dns");
        let dns: Option<Vec<units::Resolver>> = match dns {
            None => Some(Vec::new()),
            Some(n) => {
                let nodes: Vec<&Node> = match &n.value {
                    Value::Seq(items) => items.iter().collect(),
                    _ => vec![n],
                };
                let parsed: Vec<Option<units::Resolver>> =
                    nodes.iter().map(|n| self.parse(n, "resolver")).collect();
                parsed.into_iter().collect()
            }
        };
        let lan_pos = lan.map(|n| n.pos);
        let subnet_pos = subnet.map(|n| n.pos);
        let lan = lan.and_then(|n| self.lan_ref(n));
        let subnet = match subnet {
            None => Some(default_nat_subnet()),
            Some(n) => {
                let s = self.string(n, "subnet")?;
                match s.parse::<ipnet::Ipv4Net>() {
                    Ok(net) if net.prefix_len() > 28 => {
                        self.err(
                            n.pos,
                            format!("subnet `{s}` is too small"),
                            "it needs .2, .3 and leases from .10: at most /28",
                        );
                        None
                    }
                    Ok(net)
                        if net.contains(&std::net::Ipv4Addr::new(10, 0, 2, 0))
                            || "10.0.2.0/24"
                                .parse::<ipnet::Ipv4Net>()
                                .is_ok_and(|u| u.contains(&net)) =>
                    {
                        self.err(
                            n.pos,
                            format!("subnet `{s}` overlaps 10.0.2.0/24"),
                            "the nat's uplink to the host uses 10.0.2.0/24: choose another, e.g. `172.17.0.0/24`",
                        );
                        None
                    }
                    Ok(net) if net.network() != net.addr() => {
                        self.err(
                            n.pos,
                            format!("`{s}` is not a network address"),
                            format!("write `{}`", net.trunc()),
                        );
                        None
                    }
                    Ok(net) => Some(net),
                    Err(_) => {
                        self.err(
                            n.pos,
                            format!("`{s}` is not an IPv4 subnet"),
                            "e.g. `172.17.0.0/24`",
                        );
                        None
                    }
                }
            }
        };
        // The gateway and the resolver are the nat's addresses on its lan: an interface
        // given one of them would answer for it half of the time.
        let mut ok = true;
        if let (Some(l), Some(net), Some(pos)) = (&lan, &subnet, subnet_pos.or(lan_pos)) {
            let id = self.lans[l];
            for i in [2, 3] {
                ok &= self.claim(id, std::net::IpAddr::V4(Nat::address(net, i)), pos);
            }
        }
        if !ok {
            return None;
        }
        Some(Nat {
            lan: lan?,
            subnet: subnet?,
            dns: dns?,
        })
    }

    pub(super) fn tap(&mut self, endpoint: &str, f: &mut Fields) -> Option<Tap> {
        let lan = f.req(self, "lan", "the lan its peer is on: `lan: lan1`");
        let name = f.opt("name");
        let ip = f.opt("ip");
        let lan = lan.and_then(|n| self.lan_ref(n));
        let name = match name {
            Some(n) => {
                let s = self.string(n, "tap name")?;
                if !is_ifname(&s) {
                    self.err(
                        n.pos,
                        format!("invalid interface name `{s}`"),
                        "at most 15 letters, digits, `-`, `_` or `.`",
                    );
                    return None;
                }
                Some(Some(s))
            }
            None if is_ifname(endpoint) => Some(None),
            None => None,
        };
        let ip = match ip {
            Some(n) => self
                .cidrs(n, lan.as_deref())
                .filter(|c| self.tap_subnets_free(endpoint, n.pos, c)),
            None => Some(Vec::new()),
        };
        Some(Tap {
            lan: lan?,
            name: name?,
            ip: ip?,
        })
    }

    /// Whether the tap's subnets overlap no other tap's (an error for each that does):
    /// the host would route both networks through one of them, and the other tap's
    /// traffic would go out of the wrong interface, or reach the wrong lan.
    fn tap_subnets_free(&mut self, endpoint: &str, pos: Pos, cidrs: &[Cidr]) -> bool {
        let mut free = true;
        for c in cidrs {
            let net = c.0.trunc();
            let clash = self
                .tap_subnets
                .iter()
                .filter(|(_, name, _)| name != endpoint)
                .find(|(other, _, _)| {
                    other.contains(&net.network()) || net.contains(&other.network())
                })
                .map(|(other, name, at)| (*other, name.clone(), *at));
            match clash {
                Some((other, name, at)) => {
                    self.err(
                        pos,
                        format!("tap subnet {net} overlaps {other} of tap `{name}`"),
                        format!(
                            "line {} gives it to `{name}`; the host would route both through one tap: give each tap a subnet of its own",
                            at.line
                        ),
                    );
                    free = false;
                }
                None => self.tap_subnets.push((net, endpoint.to_string(), pos)),
            }
        }
        free
    }

    pub(super) fn phy(&mut self, f: &mut Fields) -> Option<Phy> {
        let lan = f.req(self, "lan", "the lan to plug it into: `lan: lan1`");
        let device = f.req(self, "device", "the host interface, e.g. `device: eth1`");
        let lan = lan.and_then(|n| self.lan_ref(n));
        let device_node = device?;
        let device = self.string(device_node, "device")?;
        if !is_ifname(&device) {
            self.err(
                device_node.pos,
                format!("invalid interface name `{device}`"),
                "a host interface name, e.g. `eth1`",
            );
            return None;
        }
        self.host_item(
            device_node.pos,
            format!("host interface `{device}` borrowed into the lab"),
        );
        Some(Phy { lan: lan?, device })
    }

    pub(super) fn a2b(&mut self, f: &mut Fields) -> Option<A2b> {
        let a = f.req(self, "a", "the first lan: `a: lan1`");
        let b = f.req(self, "b", "the second lan: `b: lan2`");
        let a_to_b = f.opt("a_to_b");
        let b_to_a = f.opt("b_to_a");
        let a_lan = a.and_then(|n| self.lan_ref(n));
        let b_lan = b.and_then(|n| self.lan_ref(n));
        if let (Some(x), Some(y), Some(node)) = (&a_lan, &b_lan, b)
            && x == y
        {
            self.err(
                node.pos,
                "an a2b joins two different lans",
                "give `b` another lan than `a`",
            );
            return None;
        }
        let a_to_b = a_to_b
            .map(|n| self.impairment(n))
            .unwrap_or(Some(Impairment::default()));
        let b_to_a = b_to_a
            .map(|n| self.impairment(n))
            .unwrap_or(Some(Impairment::default()));
        Some(A2b {
            a: a_lan?,
            b: b_lan?,
            a_to_b: a_to_b?,
            b_to_a: b_to_a?,
        })
    }

    pub(super) fn impairment(&mut self, node: &Node) -> Option<Impairment> {
        let mut f = self.fields(node, "an impairment")?;
        let delay = f.opt("delay").map(|n| self.parse(n, "delay"));
        let jitter = f.opt("jitter").map(|n| self.parse(n, "jitter"));
        let loss = f.opt("loss").map(|n| self.parse(n, "loss"));
        let rate = f.opt("rate").map(|n| self.parse(n, "rate"));
        f.finish(self, "an impairment");
        fn lift<T>(v: Option<Option<T>>) -> Option<Option<T>> {
            match v {
                None => Some(None),
                Some(None) => None,
                Some(Some(x)) => Some(Some(x)),
            }
        }
        Some(Impairment {
            delay: lift(delay)?,
            jitter: lift(jitter)?,
            loss: lift(loss)?,
            rate: lift(rate)?,
        })
    }

    pub(super) fn c2c(&mut self, f: &mut Fields) -> Option<C2c> {
        let lan = f.req(self, "lan", "the lan of this lab to link: `lan: lan1`");
        let role = f.req(
            self,
            "role",
            "`role: master` (connects) or `role: slave` (listens)",
        );
        let peer = f.opt("peer");
        let port = f.opt("port");
        let bind = f.opt("bind");
        let peer_lab = f.req(self, "peer_lab", "the other lab's name");
        let peer_lan = f.req(self, "peer_lan", "the other lab's lan");
        let lan = lan.and_then(|n| self.lan_ref(n));
        let role = match self.string(role?, "role")?.as_str() {
            "master" => C2cRole::Master,
            "slave" => C2cRole::Slave,
            other => {
                self.err(
                    f.pos,
                    format!("unknown role `{other}`"),
                    "use `master` or `slave`",
                );
                return None;
            }
        };
        let peer_lab = peer_lab.and_then(|n| self.name(n, "peer lab name"));
        let peer_lan = peer_lan.and_then(|n| self.name(n, "peer lan name"));
        let (peer, port, bind) = match role {
            C2cRole::Master => {
                for n in [port, bind].into_iter().flatten() {
                    self.err(
                        n.pos,
                        "`port` and `bind` are for the slave side",
                        "a master names its peer: `peer: host:port`",
                    );
                }
                let Some(p) = peer else {
                    self.err(
                        f.pos,
                        "a c2c master needs `peer`",
                        "the slave's `host:port`",
                    );
                    return None;
                };
                let s = self.string(p, "peer")?;
                let valid = s.rsplit_once(':').is_some_and(|(h, port)| {
                    !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !valid {
                    self.err(
                        p.pos,
                        format!("`{s}` is not `host:port`"),
                        "e.g. `127.0.0.1:47000`",
                    );
                    return None;
                }
                (Some(s), None, None)
            }
            C2cRole::Slave => {
                if let Some(p) = peer {
                    self.err(
                        p.pos,
                        "`peer` is for the master side",
                        "a slave listens: `port: 47000`",
                    );
                }
                let Some(p) = port else {
                    self.err(
                        f.pos,
                        "a c2c slave needs `port`",
                        "the UDP port to listen on",
                    );
                    return None;
                };
                let port = self.number::<u16>(p, "port", (1.0, 65535.0))?;
                let bind = match bind {
                    Some(n) => {
                        let addr = self.parse::<ParsedIp>(n, "bind address")?.0;
                        if !addr.is_loopback() {
                            self.host_item(
                                n.pos,
                                format!("c2c slave listening on {addr}, beyond loopback"),
                            );
                        }
                        Some(addr)
                    }
                    None => None,
                };
                (None, Some(port), bind)
            }
        };
        Some(C2c {
            lan: lan?,
            role,
            peer,
            port,
            bind,
            peer_lab: peer_lab?,
            peer_lan: peer_lan?,
        })
    }
}
