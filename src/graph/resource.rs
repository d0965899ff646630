//! The resources a lab is made of, one variant per real object, and what each of their
//! attributes means for a change: done in place, or a reason to replace the object.
//!
//! The spec's live-change table lives here, in the `fields` of each resource: an attribute
//! marked `replace` is one the table says replaces its endpoint; every other is in place.

use crate::model::units::{Cidr, Duration, Mac};
use crate::model::{Accel, C2cRole, Command, DebianImage, File, Impairment, NicModel, VmImage};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The lab's switch namespace.
    SwitchNs,
    /// The lab's ovsdb-server and ovs-vswitchd.
    Ovs,
    Bridge,
    /// A network namespace of one endpoint.
    EndpointNs,
    /// A veth pair between an endpoint (or the host) and the switch namespace.
    Veth,
    /// An OVS port on a bridge.
    Port,
    /// An endpoint's copy-on-write root filesystem.
    Rootfs,
    /// A file written into an endpoint.
    File,
    Container,
    Vm,
    /// A NIC of a VM.
    Nic,
    /// A user-space helper process: nat, a2b, c2c.
    Helper,
    /// A host interface borrowed into the lab.
    Phy,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SwitchNs => "switch-ns",
            Kind::Ovs => "ovs",
            Kind::Bridge => "bridge",
            Kind::EndpointNs => "endpoint-ns",
            Kind::Veth => "veth",
            Kind::Port => "port",
            Kind::Rootfs => "rootfs",
            Kind::File => "file",
            Kind::Container => "container",
            Kind::Vm => "vm",
            Kind::Nic => "nic",
            Kind::Helper => "helper",
            Kind::Phy => "phy",
        }
    }
}

/// A resource's identity: stable across applies, and carrying its lab.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceId {
    pub kind: Kind,
    /// Before `lab` so that comparisons, which the planner makes by the million, decide on
    /// the part that differs within one lab.
    pub name: String,
    pub lab: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind.as_str(), self.lab, self.name)
    }
}

/// The item of the topology file a resource belongs to; plans are shown at this level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "item", content = "name", rename_all = "lowercase")]
pub enum Item {
    Lab,
    Lan(String),
    Endpoint(String),
    /// An interface: endpoint and interface name.
    Interface(String, String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Item::Lab => write!(f, "lab"),
            Item::Lan(n) => write!(f, "lan {n}"),
            Item::Endpoint(n) => write!(f, "endpoint {n}"),
            Item::Interface(e, i) => write!(f, "interface {e}.{i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    pub item: Item,
    pub spec: Spec,
}

impl Resource {
    /// The endpoint kind a resource serves, for messages.
    pub fn spec_kind(&self) -> &'static str {
        match &self.spec {
            Spec::Vm(_) | Spec::Nic(_) => "kvm",
            Spec::Helper(Helper::Nat { .. }) => "nat",
            Spec::Helper(Helper::A2b { .. }) => "a2b",
            Spec::Helper(Helper::C2c { .. }) => "c2c",
            Spec::Phy { .. } => "phy",
            _ => "cnt",
        }
    }
}

/// Where one end of a veth lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Netns {
    Host,
    Endpoint(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Spec {
    SwitchNs,
    Ovs,
    Bridge { mtu: u32, spy: bool },
    EndpointNs { kind: String },
    Veth(Veth),
    Port(Port),
    Rootfs(Rootfs),
    File(FileSpec),
    Container(ContainerSpec),
    Vm(VmSpec),
    Nic(Nic),
    Helper(Helper),
    Phy { device: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Veth {
    pub endpoint: String,
    /// The interface's name in the file (`eth0`; `a`/`b` for an a2b).
    pub iface: String,
    pub ns: Netns,
    /// Its name where it lives (the endpoint, or the host for a tap).
    pub ifname: String,
    /// The switch-side end, which is also the OVS port's name.
    pub peer: String,
    pub mac: Mac,
    pub ips: Vec<Cidr>,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub endpoint: String,
    pub iface: String,
    /// The interface in the switch namespace that the port attaches.
    pub ifname: String,
    pub lan: String,
}

/// The image a root filesystem is made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum ImageRef {
    Builtin,
    Recipe { name: String, debian: DebianImage },
    Dir { path: String },
}

impl fmt::Display for ImageRef {
    /// As the file names it, with a recipe's contents so that a changed recipe shows.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ImageRef::Builtin => f.write_str(crate::model::BUILTIN_IMAGE),
            ImageRef::Recipe { name, debian } => {
                write!(
                    f,
                    "{name} (debian {}: {})",
                    debian.suite,
                    debian.packages.join(" ")
                )
            }
            ImageRef::Dir { path } => f.write_str(path),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rootfs {
    pub image: ImageRef,
    /// A hash of everything that replaces the endpoint, so that any such change gives it a
    /// fresh root (and, since files and container live in it, rewrites and restarts them).
    pub instance: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSpec {
    pub endpoint: String,
    pub path: String,
    pub content: String,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    pub run: Vec<Command>,
    pub run_timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub sysctl: BTreeMap<String, String>,
    pub privileged: bool,
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    pub cpu: u32,
    pub ram: u32,
    pub image: Option<VmImage>,
    pub accel: Accel,
    pub run: Vec<Command>,
    pub files: BTreeMap<String, File>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub endpoint: String,
    pub iface: String,
    pub mac: Mac,
    pub model: NicModel,
    pub ips: Vec<Cidr>,
    /// The tap in the switch namespace, which is also the OVS port's name.
    pub tap: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "helper", rename_all = "lowercase")]
pub enum Helper {
    Nat {
        subnet: ipnet::Ipv4Net,
    },
    A2b {
        a_to_b: Impairment,
        b_to_a: Impairment,
    },
    C2c {
        role: C2cRole,
        peer: Option<String>,
        port: Option<u16>,
        bind: Option<std::net::IpAddr>,
        peer_lab: String,
        peer_lan: String,
    },
}

/// One attribute of a resource as the planner compares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: &'static str,
    pub value: String,
    /// Whether a change is applied to the running object (else it is replaced).
    pub in_place: bool,
}

struct Fields(Vec<Field>);

impl Fields {
    fn place(mut self, name: &'static str, value: impl Serialize) -> Self {
        self.push(name, value, true);
        self
    }
    fn replace(mut self, name: &'static str, value: impl Serialize) -> Self {
        self.push(name, value, false);
        self
    }
    fn push(&mut self, name: &'static str, value: impl Serialize, in_place: bool) {
        let value = match serde_json::to_value(value).expect("plain data serializes") {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        self.0.push(Field {
            name,
            value,
            in_place,
        });
    }
}

impl Spec {
    /// The attributes the planner compares, with whether each can change in place.
    pub fn fields(&self) -> Vec<Field> {
        let f = Fields(Vec::new());
        let f = match self {
            Spec::SwitchNs | Spec::Ovs => f,
            Spec::Bridge { mtu, spy } => f.place("mtu", mtu).place("spy", spy),
            Spec::EndpointNs { kind } => f.replace("kind", kind),
            Spec::Veth(v) => f
                .place("name", &v.ifname)
                .place("mac", v.mac)
                .place("ip", &v.ips)
                .place("mtu", v.mtu)
                .replace("netns", &v.ns)
                .replace("peer", &v.peer),
            Spec::Port(p) => f.place("lan", &p.lan).replace("ifname", &p.ifname),
            Spec::Rootfs(r) => f
                .replace("image", r.image.to_string())
                .replace("instance", &r.instance),
            Spec::File(x) => f.place("content", &x.content).place("mode", &x.mode),
            Spec::Container(c) => f
                .replace("image", &c.image)
                .replace("run", &c.run)
                .place("run_timeout", c.run_timeout)
                .replace("env", &c.env)
                .replace("sysctl", &c.sysctl)
                .replace("privileged", c.privileged)
                .replace("cpu", c.cpu)
                .replace("ram", c.ram),
            Spec::Vm(v) => f
                .replace("cpu", v.cpu)
                .replace("ram", v.ram)
                .replace("image", &v.image)
                .replace("accel", v.accel)
                .replace("run", &v.run)
                .place("files", &v.files),
            Spec::Nic(n) => f
                .place("mac", n.mac)
                .place("ip", &n.ips)
                .replace("model", n.model)
                .replace("tap", &n.tap),
            Spec::Helper(Helper::Nat { subnet }) => f.replace("subnet", subnet),
            Spec::Helper(Helper::A2b { a_to_b, b_to_a }) => {
                f.place("a_to_b", a_to_b).place("b_to_a", b_to_a)
            }
            Spec::Helper(Helper::C2c {
                role,
                peer,
                port,
                bind,
                peer_lab,
                peer_lan,
            }) => f
                .replace("role", role)
                .replace("peer", peer)
                .replace("port", port)
                .replace("bind", bind)
                .replace("peer_lab", peer_lab)
                .replace("peer_lan", peer_lan),
            Spec::Phy { device } => f.replace("device", device),
        };
        f.0
    }

    /// Host objects (namespace, name) that this resource's creation needs free; a plan
    /// frees them (destroys their old holder) before creating it.
    pub fn claims(&self) -> Vec<(String, String)> {
        match self {
            Spec::Veth(v) => {
                let inner = match &v.ns {
                    Netns::Host => "host".to_string(),
                    Netns::Endpoint(e) => e.clone(),
                };
                vec![(inner, v.ifname.clone()), (String::new(), v.peer.clone())]
            }
            Spec::Nic(n) => vec![(String::new(), n.tap.clone())],
            Spec::Phy { device } => vec![("host".into(), device.clone())],
            _ => Vec::new(),
        }
    }
}
