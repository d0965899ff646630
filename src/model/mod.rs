//! The topology file as Rust types. Their doc comments are what users read in the JSON
//! Schema (and in their editor through it), so they speak to the person writing the file.
//!
//! Loading goes through [`load`], which checks a spanned YAML tree field by field and
//! reports every error at once; serde is used only to write the canonical form back out.

mod emit;
mod load;
pub mod qcow2;
pub mod reference;
pub mod units;

pub use emit::to_yaml;
pub use load::{
    HostItem, LoadError, Loaded, MAX_FILE_BYTES, STDIN, is_name, load, load_str, tcp_target,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use units::{Cidr, Duration, Mac, Percent, Rate};

/// One lab: its lans, endpoints, images and checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The lab's name and identity: applying any file with this name reconciles that lab.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,11}$"))]
    pub name: String,
    /// The lans (Open vSwitch bridges): a list of names, or a map of name to options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "LansSchema")]
    pub lans: BTreeMap<String, Lan>,
    /// Container root filesystems built from packages, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Image>,
    /// The endpoints, by name (`[a-z][a-z0-9-]{0,11}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Assertions that `cloonix apply --wait` and `cloonix check` wait on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// How `lans:` may be written: `[lan1, lan2]` or `{lan1: {}, lan2: {mtu: 9000}}`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LansSchema {
    Names(Vec<String>),
    Map(BTreeMap<String, Lan>),
}

pub const DEFAULT_MTU: u32 = 1500;

/// A lan: an Open vSwitch bridge in the lab's switch namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// The MTU of the bridge and of every interface on it (default 1500).
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    #[schemars(range(min = 576, max = 9000))]
    pub mtu: u32,
    /// Whether the lan's ports may be captured with `cloonix capture` (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub spy: bool,
}

impl Default for Lan {
    fn default() -> Self {
        Lan {
            mtu: DEFAULT_MTU,
            spy: true,
        }
    }
}

/// A root filesystem recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Build with mmdebstrap from the host's package sources.
    pub debian: DebianImage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DebianImage {
    /// The Debian suite, e.g. `bookworm`, fetched from the mirrors this host's apt uses.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9.-]{0,39}$"))]
    pub suite: String,
    /// Packages to install on top of the `minbase` variant (Essential and apt), by name
    /// (`name` or `name:arch`).
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[a-z0-9][a-z0-9+.-]+(:[a-z][a-z0-9-]*)?$")))]
    pub packages: Vec<String>,
}

/// An endpoint; `kind` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Endpoint {
    /// A container run by crun on a copy-on-write view of its image.
    Cnt(Container),
    /// A qemu virtual machine.
    Kvm(Vm),
    /// The way out: a user-space router to the host's world, with DHCP and DNS.
    Nat(Nat),
    /// An interface on the host, whose peer is on a lan.
    Tap(Tap),
    /// A real host interface borrowed into the lab and given back.
    Phy(Phy),
    /// An impairment between two lans: loss, delay, jitter and rate, per direction.
    A2b(A2b),
    /// A link to a lan of another lab, over UDP.
    C2c(C2c),
}

impl Endpoint {
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Cnt(_) => "cnt",
            Endpoint::Kvm(_) => "kvm",
            Endpoint::Nat(_) => "nat",
            Endpoint::Tap(_) => "tap",
            Endpoint::Phy(_) => "phy",
            Endpoint::A2b(_) => "a2b",
            Endpoint::C2c(_) => "c2c",
        }
    }
}

pub const BUILTIN_IMAGE: &str = "busybox";

/// What runs a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// crun, driven by cloonix, on a copy-on-write view of the image.
    #[default]
    Crun,
    /// podman runs it from its own image store; cloonix manages its interfaces.
    Podman,
    /// docker runs it from its own image store; cloonix manages its interfaces.
    Docker,
}

impl Runtime {
    /// The engine that runs the container, if not crun.
    pub fn engine(self) -> Option<Engine> {
        match self {
            Runtime::Crun => None,
            Runtime::Podman => Some(Engine::Podman),
            Runtime::Docker => Some(Engine::Docker),
        }
    }

    fn is_crun(&self) -> bool {
        *self == Runtime::Crun
    }
}

/// A container engine with an image store of its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Podman,
    Docker,
}

impl Engine {
    pub const ALL: [Engine; 2] = [Engine::Podman, Engine::Docker];

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Podman => "podman",
            Engine::Docker => "docker",
        }
    }

    /// An engine image named for crun (`podman:REF`, `docker:REF`): its engine and
    /// reference.
    pub fn image_of(image: &str) -> Option<(Engine, &str)> {
        Engine::ALL.into_iter().find_map(|e| {
            image
                .strip_prefix(e.as_str())
                .and_then(|r| r.strip_prefix(':'))
                .map(|r| (e, r))
        })
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// What runs it: `crun` (default), or `podman` or `docker`, which run it from their own
    /// image store, with no network of their own; cloonix manages its interfaces either way.
    #[serde(default, skip_serializing_if = "Runtime::is_crun")]
    pub runtime: Runtime,
    /// For crun: `busybox` (built in), a name from `images:`, a root filesystem directory
    /// (relative to the topology file; outside its directory needs `--allow-host`), or
    /// `podman:REF` / `docker:REF`, an image of that engine's local store exported once
    /// into a cached root filesystem. For podman and docker: an image reference of the
    /// engine's local store (cloonix never pulls).
    #[serde(default = "builtin_image")]
    pub image: String,
    /// The interfaces, in order; each is known by its `name` (default `eth<position>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eth: Vec<Eth>,
    /// Files written into the container before it starts, by absolute path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, File>,
    /// Commands run in order once the interfaces are up and addressed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<Command>,
    /// How long each `run` command may take (default 60s).
    #[serde(
        default = "default_run_timeout",
        skip_serializing_if = "is_default_run_timeout"
    )]
    pub run_timeout: Duration,
    /// Environment of the container's processes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub env: BTreeMap<String, String>,
    /// Namespaced `net.*` sysctls, e.g. `net.ipv4.ip_forward: 1`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, ScalarSchema>")]
    pub sysctl: BTreeMap<String, String>,
    /// All capabilities and devices; needs `--allow-host`. Default false: the default OCI
    /// capabilities plus NET_ADMIN and NET_RAW.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// CPU limit, in CPUs (e.g. `0.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<u32>,
}

/// A network interface of a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Eth {
    /// The interface name inside the endpoint (default `eth<position>`).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,14}$"), transform = no_default)]
    pub name: String,
    /// The lan it is plugged into.
    pub lan: String,
    /// Addresses with prefix length: one, or a list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "OneOrMany<Cidr>")]
    pub ip: Vec<Cidr>,
    /// Its MAC address (default: derived from lab, endpoint and interface name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
}

/// A value written as text, a number or a boolean; cloonix reads it as text.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ScalarSchema {
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// A file's content, given inline or read from a file beside the topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// The content itself. In the canonical form every file is inlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A regular file, relative to the topology file, that may not leave its directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Permission bits in octal, e.g. `"0755"` (default `"0644"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^0?[0-7]{3}$"))]
    pub mode: Option<String>,
}

/// A command: a string run by `/bin/sh -c`, or an argv list (for images without a shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Virtual CPUs (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cpu: u32,
    /// Memory in MiB (default 256).
    #[serde(default = "default_ram", skip_serializing_if = "is_default_ram")]
    pub ram: u32,
    /// The disk or kernel to boot (default: the built-in Debian kernel with a busybox initramfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<VmImage>,
    /// `auto` (KVM where the CPU has vmx/svm and /dev/kvm opens, TCG otherwise), `kvm` or `tcg`.
    #[serde(default, skip_serializing_if = "Accel::is_auto")]
    pub accel: Accel,
    /// The NICs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eth: Vec<VmEth>,
    /// Files written into the guest, where the image supports it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, File>,
    /// Commands run in the guest once it is up, where the image supports it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<Command>,
}

/// A qcow2 disk (used through a copy-on-write overlay, never written), or a kernel to boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum VmImage {
    Disk(String),
    Kernel {
        kernel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        initrd: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        append: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    fn is_auto(&self) -> bool {
        *self == Accel::Auto
    }
}

/// A NIC of a virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmEth {
    #[serde(flatten)]
    pub eth: Eth,
    /// The NIC model (default virtio).
    #[serde(default, skip_serializing_if = "NicModel::is_virtio")]
    pub model: NicModel,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NicModel {
    #[default]
    Virtio,
    E1000,
}

impl NicModel {
    fn is_virtio(&self) -> bool {
        *self == NicModel::Virtio
    }
}

pub const DEFAULT_NAT_SUBNET: &str = "172.17.0.0/24";

/// The way out of the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    /// The lan it routes for.
    pub lan: String,
    /// Its subnet (default 172.17.0.0/24): gateway `.2`, DNS `.3`, leases from `.10`.
    #[serde(
        default = "default_nat_subnet",
        skip_serializing_if = "is_default_nat_subnet"
    )]
    #[schemars(with = "String")]
    pub subnet: ipnet::Ipv4Net,
    /// Upstream resolvers of its DNS relay, `IP` or `IP:PORT` (`127.0.0.1:PORT` is a
    /// resolver on the host's loopback); default: those of the host's resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<units::Resolver>,
}

impl Nat {
    /// The `i`-th address of `subnet`: the gateway is 2, the resolver 3, leases from 10.
    pub fn address(subnet: &ipnet::Ipv4Net, i: u32) -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::from(u32::from(subnet.network()) + i)
    }
}

/// A host interface whose peer is on a lan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    pub lan: String,
    /// Its name on the host (default the endpoint's name), at most 15 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Addresses on the host side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "OneOrMany<Cidr>")]
    pub ip: Vec<Cidr>,
}

/// A host interface borrowed into the lab; needs `--allow-host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Phy {
    pub lan: String,
    /// The host interface, e.g. `eth1`.
    pub device: String,
}

/// An impairment between two lans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct A2b {
    pub a: String,
    pub b: String,
    /// Impairment of frames going from `a` to `b`.
    #[serde(default, skip_serializing_if = "Impairment::is_none")]
    pub a_to_b: Impairment,
    /// Impairment of frames going from `b` to `a`.
    #[serde(default, skip_serializing_if = "Impairment::is_none")]
    pub b_to_a: Impairment,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

impl Impairment {
    fn is_none(&self) -> bool {
        *self == Impairment::default()
    }
}

/// A link to another lab over UDP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct C2c {
    pub lan: String,
    /// `master` knows the peer's address and keeps trying it; `slave` listens.
    pub role: C2cRole,
    /// `host:port` of the slave (master only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The UDP port to listen on (slave only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The address to listen on (slave only; default 127.0.0.1; beyond loopback needs `--allow-host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<std::net::IpAddr>,
    /// The other lab's name.
    pub peer_lab: String,
    /// The other lab's lan.
    pub peer_lan: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum C2cRole {
    Master,
    Slave,
}

/// An assertion, retried until `within`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The endpoint it runs in.
    pub from: String,
    /// An address to ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    /// `HOST:PORT` to open a TCP connection to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// A command to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Command>,
    /// The exit code `exec` must give (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_exit: Option<i32>,
    /// Text that `exec`'s output must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_output: Option<String>,
    /// How long to keep retrying (default 30s).
    #[serde(default = "default_within")]
    pub within: Duration,
}

/// Optional in the file, but its default (`eth<position>`) is no constant: drop the `""`
/// that `#[serde(default)]` would show editors.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

fn default_mtu() -> u32 {
    DEFAULT_MTU
}
fn is_default_mtu(v: &u32) -> bool {
    *v == DEFAULT_MTU
}
fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
pub const DEFAULT_VM_RAM: u32 = 256;
fn default_ram() -> u32 {
    DEFAULT_VM_RAM
}
fn is_default_ram(v: &u32) -> bool {
    *v == DEFAULT_VM_RAM
}
fn builtin_image() -> String {
    BUILTIN_IMAGE.into()
}
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration(60_000);
fn default_run_timeout() -> Duration {
    DEFAULT_RUN_TIMEOUT
}
fn is_default_run_timeout(v: &Duration) -> bool {
    *v == DEFAULT_RUN_TIMEOUT
}
pub const DEFAULT_CHECK_WITHIN: Duration = Duration(30_000);
fn default_within() -> Duration {
    DEFAULT_CHECK_WITHIN
}
pub fn default_nat_subnet() -> ipnet::Ipv4Net {
    DEFAULT_NAT_SUBNET.parse().expect("valid constant")
}
fn is_default_nat_subnet(v: &ipnet::Ipv4Net) -> bool {
    *v == default_nat_subnet()
}

/// The JSON Schema of the topology file, as `cloonix schema` prints it.
pub fn schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    // No `$id`: an identifier that looks like an address should serve the schema, and no
    // site does. Files point at the schema by path (see the shipped topologies).
    let mut schema = generator.into_root_schema_for::<Topology>();
    schema.insert("title".into(), "cloonix topology".into());
    schema.to_value()
}
