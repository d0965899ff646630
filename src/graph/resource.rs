//! The resources a lab is made of, one variant per real object, and what each of their
//! attributes means for a change: done in place, or a reason to replace the object.
//!
//! The spec's live-change table lives here, in the `fields` of each resource: an attribute
//! marked `replace` is one the table says replaces its endpoint; every other is in place.

use crate::model::units::{Cidr, Duration, Mac};
use crate::model::{
    Accel, C2cRole, Command, DebianImage, Engine, File, Impairment, NicModel, Runtime, VmImage,
};
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
    /// A container made and run by podman or docker from its own image store.
    Engine,
    Vm,
    /// A NIC of a VM.
    Nic,
    /// The way out of a lab: DHCP, DNS and NAT to the host's world.
    Nat,
    /// An impairment between two lans.
    A2b,
    /// A link to a lan of another lab.
    C2c,
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
            Kind::Engine => "engine",
            Kind::Vm => "vm",
            Kind::Nic => "nic",
            Kind::Nat => "nat",
            Kind::A2b => "a2b",
            Kind::C2c => "c2c",
            Kind::Phy => "phy",
        }
    }

    /// Every kind, in the order a sweep after an interrupted apply visits them: what runs
    /// in a namespace goes before the namespace, the namespaces before the lab's files.
    pub const ALL: [Kind; 16] = [
        Kind::Container,
        Kind::Engine,
        Kind::Vm,
        Kind::Nic,
        Kind::Nat,
        Kind::A2b,
        Kind::C2c,
        Kind::Phy,
        Kind::File,
        Kind::Rootfs,
        Kind::Port,
        Kind::Veth,
        Kind::Bridge,
        Kind::Ovs,
        Kind::EndpointNs,
        Kind::SwitchNs,
    ];
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
    /// Set on an observed resource whose state cloonix cannot vouch for (its `run`
    /// commands were interrupted, say): the planner replaces it, giving this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tainted: Option<String>,
}

impl Resource {
    pub fn new(id: ResourceId, item: Item, spec: Spec) -> Resource {
        Resource {
            id,
            item,
            spec,
            tainted: None,
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

/// What a resource is, one variant per kind, each with its own payload: the drivers
/// (`crate::kinds`) take the payload of their kind only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Spec {
    SwitchNs(SwitchNs),
    Ovs(Ovs),
    Bridge(Bridge),
    EndpointNs(EndpointNs),
    Veth(Veth),
    Port(Port),
    Rootfs(Rootfs),
    File(FileSpec),
    Container(ContainerSpec),
    Engine(EngineSpec),
    Vm(VmSpec),
    Nic(Nic),
    Nat(NatSpec),
    A2b(A2bSpec),
    C2c(C2cSpec),
    Phy(PhySpec),
}

impl Spec {
    /// The kind of resource this is.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::SwitchNs(_) => Kind::SwitchNs,
            Spec::Ovs(_) => Kind::Ovs,
            Spec::Bridge(_) => Kind::Bridge,
            Spec::EndpointNs(_) => Kind::EndpointNs,
            Spec::Veth(_) => Kind::Veth,
            Spec::Port(_) => Kind::Port,
            Spec::Rootfs(_) => Kind::Rootfs,
            Spec::File(_) => Kind::File,
            Spec::Container(_) => Kind::Container,
            Spec::Engine(_) => Kind::Engine,
            Spec::Vm(_) => Kind::Vm,
            Spec::Nic(_) => Kind::Nic,
            Spec::Nat(_) => Kind::Nat,
            Spec::A2b(_) => Kind::A2b,
            Spec::C2c(_) => Kind::C2c,
            Spec::Phy(_) => Kind::Phy,
        }
    }
}

/// The lab's switch namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchNs {}

/// The lab's own ovsdb-server and ovs-vswitchd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ovs {}

/// A lan's bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bridge {
    pub mtu: u32,
    pub spy: bool,
}

/// An endpoint's network namespace; `kind` is the endpoint's kind in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointNs {
    pub kind: String,
    /// Set when the namespace is that of a container this engine runs, bound under the
    /// endpoint's name once the engine started it; else cloonix makes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
}

/// A host interface borrowed into the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhySpec {
    /// Its name on the host.
    pub device: String,
    /// Its name in the switch namespace while the lab has it.
    pub ifname: String,
    /// The MTU of its lan.
    pub mtu: u32,
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
    Recipe {
        name: String,
        debian: DebianImage,
    },
    Dir {
        path: String,
    },
    /// An image of an engine's local store, exported into the image cache.
    Engine {
        engine: Engine,
        reference: String,
    },
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
            ImageRef::Engine { engine, reference } => write!(f, "{engine}:{reference}"),
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
    /// crun: this resource is the container. podman, docker: the container is an
    /// [`EngineSpec`] resource; this one starts its image's command and runs `run`.
    #[serde(default)]
    pub runtime: Runtime,
    pub image: String,
    pub run: Vec<Command>,
    pub run_timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub sysctl: BTreeMap<String, String>,
    pub privileged: bool,
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
}

/// A container made by podman or docker from an image of its store, with no network of
/// its own, and started with its image's command held back until cloonix lets it go
/// (once its files and interfaces are in place).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSpec {
    pub engine: Engine,
    /// The engine's image reference.
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub sysctl: BTreeMap<String, String>,
    pub privileged: bool,
    pub cpu: Option<f64>,
    pub ram: Option<u32>,
    /// Files by absolute path (content inlined, no `source`), in place before the image's
    /// command starts.
    pub files: BTreeMap<String, File>,
    /// A hash of everything that replaces the endpoint (its `run` too).
    pub instance: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmSpec {
    pub cpu: u32,
    pub ram: u32,
    pub image: Option<VmImage>,
    pub accel: Accel,
    pub run: Vec<Command>,
    pub files: BTreeMap<String, File>,
    /// The NICs a new qemu of this VM starts with: copies of its [`Nic`] resources, which
    /// are what the planner compares (a NIC changes by hot-plug, never by a new qemu).
    /// Not among its fields, so a NIC's change never touches the VM resource.
    #[serde(default)]
    pub nics: Vec<Nic>,
}

/// Two VMs are the same VM whatever NICs they would start with: NICs are compared as the
/// resources they are (see `nics`), so a lab whose NICs were hot-plugged matches its file.
impl PartialEq for VmSpec {
    fn eq(&self, o: &VmSpec) -> bool {
        let VmSpec {
            cpu,
            ram,
            image,
            accel,
            run,
            files,
            nics: _,
        } = self;
        (cpu, ram, image, accel, run, files)
            == (&o.cpu, &o.ram, &o.image, &o.accel, &o.run, &o.files)
    }
}

/// A NIC of a VM: its tap in the switch namespace (the port of its lan hangs on it) and,
/// while the VM runs, its device in qemu and its name and addresses in the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    pub endpoint: String,
    pub iface: String,
    pub mac: Mac,
    pub model: NicModel,
    pub ips: Vec<Cidr>,
    /// The tap in the switch namespace, which is also the OVS port's name.
    pub tap: String,
    /// The MTU of its lan.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Whether the guest runs cloonix's initramfs and agent (the built-in guest, or a disk
    /// it boots), which name and address the NIC inside; a kernel of the user's does not.
    /// Follows the VM's image, whose change replaces the VM: not compared.
    #[serde(default)]
    pub agent: bool,
}

fn default_mtu() -> u32 {
    1500
}

/// A nat's router: DHCP, DNS relay and NAT to the host's world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatSpec {
    pub subnet: ipnet::Ipv4Net,
    pub dns: Vec<crate::model::units::Resolver>,
}

/// An a2b's impairments, per direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct A2bSpec {
    pub a_to_b: Impairment,
    pub b_to_a: Impairment,
}

/// A c2c's side of a link to another lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct C2cSpec {
    pub role: C2cRole,
    pub peer: Option<String>,
    pub port: Option<u16>,
    pub bind: Option<std::net::IpAddr>,
    pub peer_lab: String,
    pub peer_lan: String,
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
    fn field(mut self, name: &'static str, value: impl Serialize, in_place: bool) -> Self {
        self.push(name, value, in_place);
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
            Spec::SwitchNs(_) | Spec::Ovs(_) => f,
            Spec::Bridge(b) => f.place("mtu", b.mtu).place("spy", b.spy),
            // Named as the container's field, whose change it follows.
            Spec::EndpointNs(ns) => f
                .replace("kind", &ns.kind)
                .replace("runtime", ns.engine.map_or("crun", |e| e.as_str())),
            // An endpoint's interface is renamed in place; a tap's host interface is
            // made anew under its new name (the host's names are not cloonix's to move).
            Spec::Veth(v) => f
                .field("name", &v.ifname, v.ns != Netns::Host)
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
                .replace("runtime", c.runtime)
                .replace("image", &c.image)
                .replace("run", &c.run)
                .place("run_timeout", c.run_timeout)
                .replace("env", &c.env)
                .replace("sysctl", &c.sysctl)
                .replace("privileged", c.privileged)
                .replace("cpu", c.cpu)
                .replace("ram", c.ram),
            Spec::Engine(e) => f
                .replace("runtime", e.engine)
                .replace("image", &e.image)
                .replace("env", &e.env)
                .replace("sysctl", &e.sysctl)
                .replace("privileged", e.privileged)
                .replace("cpu", e.cpu)
                .replace("ram", e.ram)
                .place("files", &e.files)
                .replace("instance", &e.instance),
            Spec::Vm(v) => f
                .replace("cpu", v.cpu)
                .replace("ram", v.ram)
                .replace("image", &v.image)
                .replace("accel", v.accel)
                .replace("run", &v.run)
                .place("files", &v.files),
            // A model is a new device (hot-plugged in place of the old one); a MAC is
            // the same device unplugged and plugged again; addresses change in the guest.
            Spec::Nic(n) => f
                .place("mac", n.mac)
                .place("ip", &n.ips)
                .place("mtu", n.mtu)
                .replace("model", n.model)
                .replace("tap", &n.tap),
            Spec::Nat(n) => f.replace("subnet", n.subnet).place("dns", &n.dns),
            Spec::A2b(a) => f.place("a_to_b", a.a_to_b).place("b_to_a", a.b_to_a),
            Spec::C2c(c) => f
                .replace("role", c.role)
                .replace("peer", &c.peer)
                .replace("port", c.port)
                .replace("bind", c.bind)
                .replace("peer_lab", &c.peer_lab)
                .replace("peer_lan", &c.peer_lan),
            Spec::Phy(p) => f
                .replace("device", &p.device)
                .replace("ifname", &p.ifname)
                .place("mtu", p.mtu),
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
            Spec::Phy(p) => vec![
                ("host".into(), p.device.clone()),
                (String::new(), p.ifname.clone()),
            ],
            Spec::SwitchNs(_)
            | Spec::Ovs(_)
            | Spec::Bridge(_)
            | Spec::EndpointNs(_)
            | Spec::Port(_)
            | Spec::Rootfs(_)
            | Spec::File(_)
            | Spec::Container(_)
            | Spec::Engine(_)
            | Spec::Vm(_)
            | Spec::Nat(_)
            | Spec::A2b(_)
            | Spec::C2c(_) => Vec::new(),
        }
    }
}
