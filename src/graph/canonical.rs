//! From a graph back to a topology: the canonical form in which `diff` shows both the
//! observed and the desired lab, and which `status -o yaml` prints. Both sides go through
//! this one function, so comments, key order, defaults and `source` vs `content` never
//! show as differences; only what the graph holds does.

use super::names::{derived_mac, iface_order};
use super::*;
use crate::model::{self, Endpoint, Eth, Topology, units::Mac};
use std::collections::BTreeMap;

/// The topology that describes `g`. A partly observed endpoint shows what was found.
pub fn to_topology(g: &Graph) -> Topology {
    let mut t = Topology {
        name: g.lab.clone(),
        lans: BTreeMap::new(),
        images: BTreeMap::new(),
        endpoints: BTreeMap::new(),
        checks: Vec::new(),
    };
    let mut by_endpoint: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for r in g.resources() {
        match (&r.item, &r.spec) {
            (Item::Lan(name), Spec::Bridge(b)) => {
                t.lans.insert(
                    name.clone(),
                    model::Lan {
                        mtu: b.mtu,
                        spy: b.spy,
                    },
                );
            }
            (Item::Endpoint(e) | Item::Interface(e, _), _) => {
                by_endpoint.entry(e).or_default().push(r)
            }
            _ => {}
        }
    }
    for (name, rs) in by_endpoint {
        let ep = Parts::new(&g.lab, name, &rs).endpoint(&mut t.images);
        if let Some(ep) = ep {
            t.endpoints.insert(name.to_string(), ep);
        }
    }
    t
}

struct Parts<'a> {
    lab: &'a str,
    name: &'a str,
    rs: &'a [&'a Resource],
}

impl<'a> Parts<'a> {
    fn new(lab: &'a str, name: &'a str, rs: &'a [&'a Resource]) -> Self {
        Parts { lab, name, rs }
    }

    fn find<T>(&self, f: impl Fn(&'a Spec) -> Option<T>) -> Option<T> {
        self.rs.iter().find_map(|r| f(&r.spec))
    }

    fn port_lan(&self, iface: &str) -> String {
        self.find(|s| match s {
            Spec::Port(p) if p.iface == iface => Some(p.lan.clone()),
            _ => None,
        })
        .unwrap_or_default()
    }

    fn mac(&self, iface: &str, mac: Mac) -> Option<Mac> {
        (mac != derived_mac(self.lab, self.name, iface)).then_some(mac)
    }

    fn kind(&self) -> Option<&'a str> {
        self.find(|s| match s {
            Spec::EndpointNs(ns) => Some(ns.kind.as_str()),
            Spec::Container(_) | Spec::Rootfs(_) | Spec::File(_) | Spec::Engine(_) => Some("cnt"),
            Spec::Vm(_) | Spec::Nic(_) => Some("kvm"),
            Spec::Phy(_) => Some("phy"),
            Spec::Veth(Veth {
                ns: Netns::Host, ..
            }) => Some("tap"),
            _ => None,
        })
    }

    fn endpoint(&self, images: &mut BTreeMap<String, model::Image>) -> Option<Endpoint> {
        Some(match self.kind()? {
            "cnt" => Endpoint::Cnt(self.container(images)),
            "kvm" => Endpoint::Kvm(self.vm()),
            "nat" => {
                let spec = self.find(|s| match s {
                    Spec::Nat(n) => Some(n.clone()),
                    _ => None,
                });
                Endpoint::Nat(model::Nat {
                    lan: self.port_lan("eth0"),
                    subnet: spec
                        .as_ref()
                        .map(|n| n.subnet)
                        .unwrap_or_else(model::default_nat_subnet),
                    dns: spec.map(|n| n.dns).unwrap_or_default(),
                })
            }
            "tap" => {
                let veth = self.find(|s| match s {
                    Spec::Veth(v) => Some(v),
                    _ => None,
                });
                Endpoint::Tap(model::Tap {
                    lan: self.port_lan("tap"),
                    name: veth.map(|v| v.ifname.clone()).filter(|n| n != self.name),
                    ip: veth.map(|v| v.ips.clone()).unwrap_or_default(),
                })
            }
            "phy" => Endpoint::Phy(model::Phy {
                lan: self.port_lan("phy"),
                device: self
                    .find(|s| match s {
                        Spec::Phy(p) => Some(p.device.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
            }),
            "a2b" => {
                let (a_to_b, b_to_a) = self
                    .find(|s| match s {
                        Spec::A2b(a) => Some((a.a_to_b, a.b_to_a)),
                        _ => None,
                    })
                    .unwrap_or_default();
                Endpoint::A2b(model::A2b {
                    a: self.port_lan("a"),
                    b: self.port_lan("b"),
                    a_to_b,
                    b_to_a,
                })
            }
            "c2c" => {
                let lan = self.port_lan("eth0");
                let c = self.find(|s| match s {
                    Spec::C2c(c) => Some(c.clone()),
                    _ => None,
                })?;
                Endpoint::C2c(model::C2c {
                    lan,
                    role: c.role,
                    peer: c.peer,
                    port: c.port,
                    bind: c.bind,
                    peer_lab: c.peer_lab,
                    peer_lan: c.peer_lan,
                })
            }
            _ => return None,
        })
    }

    fn eths(&self) -> Vec<Eth> {
        let mut eths: Vec<Eth> = self
            .rs
            .iter()
            .filter_map(|r| match (&r.item, &r.spec) {
                (Item::Interface(..), Spec::Veth(v)) => Some(Eth {
                    name: v.iface.clone(),
                    lan: self.port_lan(&v.iface),
                    ip: v.ips.clone(),
                    mac: self.mac(&v.iface, v.mac),
                }),
                _ => None,
            })
            .collect();
        eths.sort_by_key(|a| iface_order(&a.name));
        eths
    }

    fn container(&self, images: &mut BTreeMap<String, model::Image>) -> model::Container {
        let spec = self.find(|s| match s {
            Spec::Container(c) => Some(c.clone()),
            _ => None,
        });
        let image = self.find(|s| match s {
            Spec::Rootfs(r) => Some(&r.image),
            _ => None,
        });
        let engine = self.find(|s| match s {
            Spec::Engine(e) => Some(e),
            _ => None,
        });
        let image_name = match image {
            Some(ImageRef::Recipe { name, debian }) => {
                images.insert(
                    name.clone(),
                    model::Image {
                        debian: debian.clone(),
                    },
                );
                name.clone()
            }
            Some(image @ (ImageRef::Dir { .. } | ImageRef::Engine { .. })) => image.to_string(),
            Some(ImageRef::Builtin) => model::BUILTIN_IMAGE.into(),
            None => match (&spec, engine) {
                (Some(c), _) => c.image.clone(),
                (None, Some(e)) => e.image.clone(),
                (None, None) => String::new(),
            },
        };
        let mut files: BTreeMap<String, model::File> = self
            .rs
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::File(f) => Some((
                    f.path.clone(),
                    model::File {
                        content: Some(f.content.clone()),
                        source: None,
                        mode: f.mode.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        if let Some(e) = engine {
            files.extend(e.files.clone());
        }
        // Of an endpoint whose container is gone, its namespace may still say whose it was.
        let from_ns = self.find(|s| match s {
            Spec::EndpointNs(ns) => ns.engine,
            _ => None,
        });
        let runtime = match engine.map(|e| e.engine).or(from_ns) {
            Some(model::Engine::Podman) => model::Runtime::Podman,
            Some(model::Engine::Docker) => model::Runtime::Docker,
            None => model::Runtime::Crun,
        };
        let spec = spec.unwrap_or(ContainerSpec {
            runtime,
            image: image_name.clone(),
            run: Vec::new(),
            run_timeout: model::DEFAULT_RUN_TIMEOUT,
            env: engine.map(|e| e.env.clone()).unwrap_or_default(),
            sysctl: engine.map(|e| e.sysctl.clone()).unwrap_or_default(),
            privileged: engine.is_some_and(|e| e.privileged),
            cpu: engine.and_then(|e| e.cpu),
            ram: engine.and_then(|e| e.ram),
        });
        model::Container {
            runtime: spec.runtime,
            image: image_name,
            eth: self.eths(),
            files,
            run: spec.run,
            run_timeout: spec.run_timeout,
            env: spec.env,
            sysctl: spec.sysctl,
            privileged: spec.privileged,
            cpu: spec.cpu,
            ram: spec.ram,
        }
    }

    fn vm(&self) -> model::Vm {
        let spec = self.find(|s| match s {
            Spec::Vm(v) => Some(v.clone()),
            _ => None,
        });
        let mut eth: Vec<model::VmEth> = self
            .rs
            .iter()
            .filter_map(|r| match &r.spec {
                Spec::Nic(n) => Some(model::VmEth {
                    eth: Eth {
                        name: n.iface.clone(),
                        lan: self.port_lan(&n.iface),
                        ip: n.ips.clone(),
                        mac: self.mac(&n.iface, n.mac),
                    },
                    model: n.model,
                }),
                _ => None,
            })
            .collect();
        eth.sort_by_key(|a| iface_order(&a.eth.name));
        let spec = spec.unwrap_or(VmSpec {
            cpu: 1,
            ram: model::DEFAULT_VM_RAM,
            image: None,
            accel: model::Accel::Auto,
            run: Vec::new(),
            files: BTreeMap::new(),
            nics: Vec::new(),
        });
        model::Vm {
            cpu: spec.cpu,
            ram: spec.ram,
            image: spec.image,
            accel: spec.accel,
            eth,
            files: spec.files,
            run: spec.run,
        }
    }
}
