//! The desired lab: every resource a topology needs, with its dependencies.

use super::names::{derived_mac, port_name};
use super::*;
use crate::model::{self, Endpoint, Eth, Topology};
use petgraph::stable_graph::NodeIndex as Node;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("interfaces {0} and {1} would get the same switch-side name {2}; rename one of them")]
    NameCollision(String, String, String),
}

/// Builds the graph of everything `t` asks for.
pub fn desired(t: &Topology) -> Result<Graph, BuildError> {
    let mut b = Builder {
        g: Graph::new(&t.name),
        t,
        peers: BTreeMap::new(),
        switch: Node::end(),
        bridges: HashMap::new(),
        namespaces: HashMap::new(),
    };
    let ns = b.add("switch", Item::Lab, Spec::SwitchNs(SwitchNs {}), &[]);
    b.switch = ns;
    let ovs = b.add("ovs", Item::Lab, Spec::Ovs(Ovs {}), &[(ns, Dep::LivesIn)]);
    for (name, lan) in &t.lans {
        let spec = Spec::Bridge(Bridge {
            mtu: lan.mtu,
            spy: lan.spy,
        });
        let bridge = b.add(name, Item::Lan(name.clone()), spec, &[(ovs, Dep::LivesIn)]);
        b.bridges.insert(name, bridge);
    }
    for (name, ep) in &t.endpoints {
        b.endpoint(name, ep)?;
    }
    Ok(b.g)
}

struct Builder<'t> {
    g: Graph,
    t: &'t Topology,
    /// Switch-side names given so far, to catch two hashed names meeting.
    peers: BTreeMap<String, String>,
    switch: Node,
    bridges: HashMap<&'t str, Node>,
    namespaces: HashMap<String, Node>,
}

impl Builder<'_> {
    fn add(&mut self, name: &str, item: Item, spec: Spec, deps: &[(Node, Dep)]) -> Node {
        let id = self.g.id(spec.kind(), name);
        self.g.add(Resource::new(id, item, spec), deps)
    }

    fn switch(&self) -> Node {
        self.switch
    }

    fn peer_name(&mut self, endpoint: &str, iface: &str) -> Result<String, BuildError> {
        let peer = port_name(endpoint, iface);
        let who = format!("{endpoint}.{iface}");
        if let Some(other) = self.peers.insert(peer.clone(), who.clone()) {
            return Err(BuildError::NameCollision(other, who, peer));
        }
        Ok(peer)
    }

    fn endpoint(&mut self, name: &str, ep: &Endpoint) -> Result<(), BuildError> {
        let item = Item::Endpoint(name.to_string());
        let needs_ns = !matches!(ep, Endpoint::Kvm(_) | Endpoint::Tap(_) | Endpoint::Phy(_));
        // An engine's container comes first: its namespace is the endpoint's.
        let engine = match ep {
            Endpoint::Cnt(c) => c.runtime.engine().map(|e| (e, self.engine(name, c, e))),
            _ => None,
        };
        let ns = needs_ns.then(|| {
            let spec = Spec::EndpointNs(EndpointNs {
                kind: ep.kind().into(),
                engine: engine.map(|(e, _)| e),
            });
            let deps: Vec<(Node, Dep)> =
                engine.map(|(_, n)| (n, Dep::LivesIn)).into_iter().collect();
            let ns = self.add(name, item.clone(), spec, &deps);
            self.namespaces.insert(name.to_string(), ns);
            ns
        });
        let inner = Netns::Endpoint(name.to_string());
        match ep {
            Endpoint::Cnt(c) => self.container(name, c, ns.expect("cnt has a netns")),
            Endpoint::Kvm(v) => self.vm(name, v),
            Endpoint::Nat(n) => {
                // The router's side of the lan: the gateway (.2) and the DNS relay (.3).
                let host = |i: u32| {
                    let ip = std::net::Ipv4Addr::from(u32::from(n.subnet.network()) + i);
                    model::units::Cidr(ipnet::IpNet::V4(
                        ipnet::Ipv4Net::new(ip, n.subnet.prefix_len()).expect("a valid prefix"),
                    ))
                };
                let ips = [host(2), host(3)];
                let link = self.link(
                    name,
                    "eth0",
                    &n.lan,
                    inner,
                    "eth0",
                    &ips,
                    None,
                    item.clone(),
                )?;
                let helper = Spec::Nat(NatSpec {
                    subnet: n.subnet,
                    dns: n.dns.clone(),
                });
                let ns = ns.expect("nat has a netns");
                self.add(
                    name,
                    item,
                    helper,
                    &[(ns, Dep::LivesIn), (link, Dep::After)],
                );
                Ok(())
            }
            Endpoint::Tap(t) => {
                let ifname = t.name.clone().unwrap_or_else(|| name.to_string());
                self.link(name, "tap", &t.lan, Netns::Host, &ifname, &t.ip, None, item)?;
                Ok(())
            }
            Endpoint::Phy(p) => {
                // In the switch namespace it goes by a name of cloonix's, which no bridge
                // or port of the lab can have.
                let ifname = self.peer_name(name, "phy")?;
                let spec = Spec::Phy(PhySpec {
                    device: p.device.clone(),
                    ifname: ifname.clone(),
                    mtu: self.t.lans[&p.lan].mtu,
                });
                let sw = self.switch();
                let phy = self.add(name, item.clone(), spec, &[(sw, Dep::LivesIn)]);
                self.port(name, "phy", &ifname, &p.lan, phy, item);
                Ok(())
            }
            Endpoint::A2b(a) => {
                let ns = ns.expect("a2b has a netns");
                let la = self.link(name, "a", &a.a, inner.clone(), "a", &[], None, item.clone())?;
                let lb = self.link(name, "b", &a.b, inner, "b", &[], None, item.clone())?;
                let helper = Spec::A2b(A2bSpec {
                    a_to_b: a.a_to_b,
                    b_to_a: a.b_to_a,
                });
                self.add(
                    name,
                    item,
                    helper,
                    &[(ns, Dep::LivesIn), (la, Dep::After), (lb, Dep::After)],
                );
                Ok(())
            }
            Endpoint::C2c(c) => {
                let link =
                    self.link(name, "eth0", &c.lan, inner, "eth0", &[], None, item.clone())?;
                let helper = Spec::C2c(C2cSpec {
                    role: c.role,
                    peer: c.peer.clone(),
                    port: c.port,
                    bind: c.bind,
                    peer_lab: c.peer_lab.clone(),
                    peer_lan: c.peer_lan.clone(),
                });
                let ns = ns.expect("c2c has a netns");
                self.add(
                    name,
                    item,
                    helper,
                    &[(ns, Dep::LivesIn), (link, Dep::After)],
                );
                Ok(())
            }
        }
    }

    /// A veth from `ns` to the switch namespace, and its port on `lan`'s bridge.
    #[allow(clippy::too_many_arguments)]
    fn link(
        &mut self,
        endpoint: &str,
        iface: &str,
        lan: &str,
        ns: Netns,
        ifname: &str,
        ips: &[model::units::Cidr],
        mac: Option<model::units::Mac>,
        item: Item,
    ) -> Result<Node, BuildError> {
        let peer = self.peer_name(endpoint, iface)?;
        let spec = Spec::Veth(Veth {
            endpoint: endpoint.into(),
            iface: iface.into(),
            ns: ns.clone(),
            ifname: ifname.into(),
            peer: peer.clone(),
            mac: mac.unwrap_or_else(|| derived_mac(&self.t.name, endpoint, iface)),
            ips: ips.to_vec(),
            mtu: self.t.lans[lan].mtu,
        });
        let sw = self.switch();
        let mut deps = vec![(sw, Dep::LivesIn)];
        if let Netns::Endpoint(e) = &ns {
            deps.push((self.namespaces[e], Dep::LivesIn));
        }
        let veth = self.add(&format!("{endpoint}.{iface}"), item.clone(), spec, &deps);
        self.port(endpoint, iface, &peer, lan, veth, item);
        Ok(veth)
    }

    fn port(
        &mut self,
        endpoint: &str,
        iface: &str,
        ifname: &str,
        lan: &str,
        on: Node,
        item: Item,
    ) -> Node {
        let spec = Spec::Port(Port {
            endpoint: endpoint.into(),
            iface: iface.into(),
            ifname: ifname.into(),
            lan: lan.into(),
        });
        let bridge = self.bridges[lan];
        self.add(
            &format!("{endpoint}.{iface}"),
            item,
            spec,
            &[(on, Dep::LivesIn), (bridge, Dep::After)],
        )
    }

    /// An engine's container: the endpoint's files go in it; its namespace, interfaces and
    /// the container resource that lets its command go come after it.
    fn engine(&mut self, name: &str, c: &model::Container, engine: model::Engine) -> Node {
        let files = c
            .files
            .iter()
            .map(|(path, f)| {
                let file = model::File {
                    content: Some(f.content.clone().unwrap_or_default()),
                    source: None,
                    mode: f.mode.clone(),
                };
                (path.clone(), file)
            })
            .collect();
        let spec = EngineSpec {
            engine,
            image: c.image.clone(),
            env: c.env.clone(),
            sysctl: c.sysctl.clone(),
            privileged: c.privileged,
            cpu: c.cpu,
            ram: c.ram,
            files,
            instance: instance_hash(&(engine, &c.image), &container_spec(c)),
        };
        self.add(name, Item::Endpoint(name.into()), Spec::Engine(spec), &[])
    }

    fn container(&mut self, name: &str, c: &model::Container, ns: Node) -> Result<(), BuildError> {
        if c.runtime.engine().is_some() {
            return self.engine_container(name, c, ns);
        }
        let image = match c.image.as_str() {
            model::BUILTIN_IMAGE => ImageRef::Builtin,
            n => match (self.t.images.get(n), model::Engine::image_of(n)) {
                (Some(img), _) => ImageRef::Recipe {
                    name: n.into(),
                    debian: img.debian.clone(),
                },
                (None, Some((engine, reference))) => ImageRef::Engine {
                    engine,
                    reference: reference.into(),
                },
                (None, None) => ImageRef::Dir { path: n.into() },
            },
        };
        let spec = container_spec(c);
        let instance = instance_hash(&image, &spec);
        let item = Item::Endpoint(name.to_string());
        let rootfs = self.add(
            name,
            item.clone(),
            Spec::Rootfs(Rootfs { image, instance }),
            &[],
        );
        let mut deps = vec![(rootfs, Dep::LivesIn), (ns, Dep::LivesIn)];
        for (path, file) in &c.files {
            let spec = Spec::File(FileSpec {
                endpoint: name.into(),
                path: path.clone(),
                content: file.content.clone().unwrap_or_default(),
                mode: file.mode.clone(),
            });
            let f = self.add(
                &format!("{name}:{path}"),
                item.clone(),
                spec,
                &[(rootfs, Dep::LivesIn)],
            );
            deps.push((f, Dep::After));
        }
        for eth in &c.eth {
            let link = self.eth(name, eth)?;
            deps.push((link, Dep::After));
        }
        self.add(name, item, Spec::Container(spec), &deps);
        Ok(())
    }

    /// The container resource of an engine's endpoint: it lives in the engine's container
    /// and its namespace, and comes once the interfaces are there.
    fn engine_container(
        &mut self,
        name: &str,
        c: &model::Container,
        ns: Node,
    ) -> Result<(), BuildError> {
        let item = Item::Endpoint(name.to_string());
        let engine = self
            .g
            .handle(&self.g.id(Kind::Engine, name))
            .expect("the engine's container is added with the endpoint");
        let mut deps = vec![(engine, Dep::LivesIn), (ns, Dep::LivesIn)];
        for eth in &c.eth {
            let link = self.eth(name, eth)?;
            deps.push((link, Dep::After));
        }
        self.add(name, item, Spec::Container(container_spec(c)), &deps);
        Ok(())
    }
}

fn container_spec(c: &model::Container) -> ContainerSpec {
    ContainerSpec {
        runtime: c.runtime,
        image: c.image.clone(),
        run: c.run.clone(),
        run_timeout: c.run_timeout,
        env: c.env.clone(),
        sysctl: c.sysctl.clone(),
        privileged: c.privileged,
        cpu: c.cpu,
        ram: c.ram,
    }
}

impl Builder<'_> {
    fn eth(&mut self, endpoint: &str, eth: &Eth) -> Result<Node, BuildError> {
        let item = Item::Interface(endpoint.into(), eth.name.clone());
        let ns = Netns::Endpoint(endpoint.into());
        self.link(
            endpoint, &eth.name, &eth.lan, ns, &eth.name, &eth.ip, eth.mac, item,
        )
    }

    /// A VM and its NICs. Each NIC's tap is made before the VM starts (a new qemu opens
    /// them all), and a NIC added or removed later is hot-plugged: the NICs live in the
    /// switch namespace, and the VM comes after them.
    fn vm(&mut self, name: &str, v: &model::Vm) -> Result<(), BuildError> {
        let sw = self.switch();
        let agent = !matches!(v.image, Some(model::VmImage::Kernel { .. }));
        let mut deps = vec![(sw, Dep::LivesIn)];
        let mut nics = Vec::new();
        for e in &v.eth {
            let item = Item::Interface(name.into(), e.eth.name.clone());
            let tap = self.peer_name(name, &e.eth.name)?;
            let nic = Nic {
                endpoint: name.into(),
                iface: e.eth.name.clone(),
                mac: e
                    .eth
                    .mac
                    .unwrap_or_else(|| derived_mac(&self.t.name, name, &e.eth.name)),
                model: e.model,
                ips: e.eth.ip.clone(),
                tap: tap.clone(),
                mtu: self.t.lans[&e.eth.lan].mtu,
                agent,
            };
            nics.push(nic.clone());
            let node = self.add(
                &format!("{name}.{}", e.eth.name),
                item.clone(),
                Spec::Nic(nic),
                &[(sw, Dep::LivesIn)],
            );
            self.port(name, &e.eth.name, &tap, &e.eth.lan, node, item);
            deps.push((node, Dep::After));
        }
        let spec = Spec::Vm(VmSpec {
            cpu: v.cpu,
            ram: v.ram,
            image: v.image.clone(),
            accel: v.accel,
            run: v.run.clone(),
            files: v.files.clone(),
            nics,
        });
        self.add(name, Item::Endpoint(name.into()), spec, &deps);
        Ok(())
    }
}

/// Identifies one incarnation of a container: everything whose change replaces it.
fn instance_hash(image: &impl serde::Serialize, spec: &ContainerSpec) -> String {
    let text = serde_json::to_string(&(
        image,
        spec.run.clone(),
        &spec.env,
        &spec.sysctl,
        spec.privileged,
        spec.cpu,
        spec.ram,
    ))
    .expect("plain data serializes");
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
