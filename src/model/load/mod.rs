//! From a spanned YAML tree to a [`Topology`], checking everything the spec's "Validation"
//! section lists and collecting every error instead of stopping at the first one.
//! Which items touch the host (and need `--allow-host`) is decided here too.

mod addresses;
mod checks;
mod container;
mod endpoints;
mod input;
mod reader;

use super::*;
use crate::diag::{Diagnostics, Pos};
use crate::yaml::{self, Key, Node, Value};
pub use input::{MAX_FILE_BYTES, STDIN};
use reader::{Cx, RESERVED_LANS};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// A loaded, valid file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub topology: Topology,
    /// What the file would do to the host; refused unless the user passes `--allow-host`.
    pub host_items: Vec<HostItem>,
    /// Where each endpoint (`NAME`) and each of its fields (`NAME.FIELD`) is written, so
    /// that what is found wrong after loading (a host name taken, say) can be pointed at.
    pub positions: BTreeMap<String, Pos>,
}

impl Loaded {
    /// Where endpoint `name`'s `field` is written, or the endpoint itself.
    pub fn position(&self, name: &str, field: Option<&str>) -> Pos {
        field
            .and_then(|f| self.positions.get(&format!("{name}.{f}")))
            .or_else(|| self.positions.get(name))
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
    }
}

/// One thing in the file that reaches into the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostItem {
    #[serde(flatten)]
    pub pos: Pos,
    pub what: String,
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {what}, not a topology file")]
    NotAFile { path: String, what: &'static str },
    #[error("{path} is larger than {} MiB, the most a topology file may hold", limit >> 20)]
    TooLarge { path: String, limit: u64 },
    #[error("{} error(s) in {path}", diagnostics.0.len())]
    Invalid {
        path: String,
        source_text: String,
        diagnostics: Diagnostics,
    },
}

impl LoadError {
    /// The errors as the spec shows them: `PATH:LINE:COLUMN: error: MESSAGE`, line, hint;
    /// an error of the whole file as `PATH: error: MESSAGE`.
    pub fn render(&self) -> String {
        match self {
            LoadError::Invalid {
                path,
                source_text,
                diagnostics,
            } => diagnostics.render(path, source_text),
            LoadError::Read { path, source } => format!("{path}: error: cannot read: {source}\n"),
            LoadError::NotAFile { path, what } => {
                format!("{path}: error: this is {what}, not a topology file\n")
            }
            LoadError::TooLarge { path, limit } => format!(
                "{path}: error: larger than {} MiB, the most a topology file may hold\n",
                limit >> 20
            ),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            LoadError::Read { path, .. }
            | LoadError::NotAFile { path, .. }
            | LoadError::TooLarge { path, .. }
            | LoadError::Invalid { path, .. } => path,
        }
    }
}

/// Loads and validates a topology file, or standard input for `-`. Relative paths in it are
/// relative to its directory (standard input's: the current directory).
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let input::Text { shown, text, dir } = input::read(path)?;
    load_str(&text, &dir).map_err(|diagnostics| LoadError::Invalid {
        path: shown,
        source_text: text,
        diagnostics,
    })
}

/// Validates `text` as if it were a file in `dir`.
pub fn load_str(text: &str, dir: &Path) -> Result<Loaded, Diagnostics> {
    let (root, mut diags) = yaml::parse(text);
    let mut cx = Cx {
        diags: Vec::new(),
        dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        lans: BTreeMap::new(),
        addresses: HashMap::new(),
        endpoints: BTreeMap::new(),
        images: BTreeSet::new(),
        macs: BTreeMap::new(),
        tap_subnets: Vec::new(),
        host: Vec::new(),
        positions: BTreeMap::new(),
        omitted: 0,
    };
    let topology = match root {
        Some(root) => cx.topology(root),
        None if diags.is_empty() => {
            cx.err(
                Pos { line: 1, col: 1 },
                "the file is empty",
                "start with `name: mylab`",
            );
            None
        }
        None => None,
    };
    diags.append(&mut cx.diags);
    match topology {
        Some(topology) if diags.is_empty() && cx.omitted == 0 => Ok(Loaded {
            topology,
            host_items: cx.host,
            positions: cx.positions,
        }),
        _ => Err(Diagnostics::bounded(diags, cx.omitted)),
    }
}

pub use checks::tcp_target;
pub use reader::is_name;

impl Cx {
    fn topology(&mut self, mut root: Node) -> Option<Topology> {
        let endpoint_items = take_endpoints(&mut root);
        let mut f = self.fields(&root, "the topology")?;
        let name = f.req(self, "name", "start the file with `name: mylab`");
        let lans = f.opt("lans");
        let images = f.opt("images");
        let endpoints_node = f.opt("endpoints");
        let checks = f.opt("checks");
        f.finish(self, "the topology");
        let name = name.and_then(|n| self.name(n, "lab name"));

        // `self.lans` and `self.images` get every declared name, valid or not: a reference
        // to a declaration that was refused is not an error of its own.
        let lans = lans.map(|n| self.lans(n)).unwrap_or_default();
        let images = images.map(|n| self.images(n)).unwrap_or_default();

        // Endpoints are named before they are read so that checks can refer to them.
        let mut endpoints = BTreeMap::new();
        let endpoint_items = endpoint_items.unwrap_or_else(|| {
            // Absent, empty, or not a mapping: `fields` reports the last.
            if let Some(node) = endpoints_node {
                self.fields(node, "endpoints");
            }
            Vec::new()
        });
        // Only checks refer to endpoints by name; without checks, a large file is spared
        // a second copy of every name.
        if checks.is_some() {
            for (key, value) in &endpoint_items {
                let kind = kind_of(value);
                self.endpoints.insert(key.name.clone(), kind);
            }
        }
        for (key, value) in endpoint_items {
            self.remember_positions(&key, &value);
            let ok = self.key_name(&key, "endpoint name");
            let before = self.diags.len();
            match self.endpoint(&key.name, &value) {
                Some(ep) if ok => {
                    endpoints.insert(key.name, ep);
                }
                // Never drop an endpoint silently: that would be a lab without it.
                None if self.diags.len() == before => self.err(
                    key.pos,
                    format!("internal error: endpoint `{}` could not be read", key.name),
                    "please report this file",
                ),
                _ => {}
            }
            // `value` goes here: a large file's tree shrinks as its endpoints are read.
        }
        let checks = checks
            .map(|n| {
                let items = self.seq(n, "checks");
                items.iter().filter_map(|c| self.check(c)).collect()
            })
            .unwrap_or_default();
        Some(Topology {
            name: name?,
            lans,
            images,
            endpoints,
            checks,
        })
    }

    /// Keeps where an endpoint's fields are written, for what the host refuses once the
    /// file is loaded (a tap's name taken, a kind without a driver, an image not built).
    /// Only for endpoints such refusals can concern, so that a large file of plain
    /// containers is not held twice: every field of other kinds, a container's `image`.
    fn remember_positions(&mut self, key: &Key, value: &Node) {
        let Value::Map(fields) = &value.value else {
            return;
        };
        let container = kind_of(value) == "cnt";
        for (field, node) in fields {
            if !container || field.name == "image" || field.name == "runtime" {
                self.positions
                    .insert(format!("{}.{}", key.name, field.name), node.pos);
                self.positions.insert(key.name.clone(), key.pos);
            }
        }
    }

    fn lans(&mut self, node: &Node) -> BTreeMap<String, Lan> {
        let mut lans = BTreeMap::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
                    if let Value::Scalar(declared, _) = &item.value {
                        self.declare_lan(declared);
                    }
                    let Some(name) = self.name(item, "lan name") else {
                        continue;
                    };
                    if lans.insert(name.clone(), Lan::default()).is_some() {
                        self.err(
                            item.pos,
                            format!("lan `{name}` is listed twice"),
                            "list each lan once",
                        );
                    }
                    self.reserved_lan(&name, item.pos);
                }
            }
            _ => {
                let Some(f) = self.fields(node, "lans") else {
                    return lans;
                };
                for (key, value) in f.items {
                    self.declare_lan(&key.name);
                    let ok = self.key_name(key, "lan name");
                    self.reserved_lan(&key.name, key.pos);
                    if let Some(lan) = self.lan(value)
                        && ok
                    {
                        lans.insert(key.name.clone(), lan);
                    }
                }
            }
        }
        lans
    }

    fn declare_lan(&mut self, name: &str) {
        let id = self.lans.len();
        self.lans.entry(name.to_string()).or_insert(id);
    }

    fn reserved_lan(&mut self, name: &str, pos: Pos) {
        if RESERVED_LANS.contains(&name) {
            self.err(
                pos,
                format!("`{name}` is reserved by Open vSwitch"),
                "choose another lan name",
            );
        }
    }

    fn lan(&mut self, node: &Node) -> Option<Lan> {
        let mut f = self.fields(node, "a lan")?;
        let mtu = f.opt("mtu");
        let spy = f.opt("spy");
        f.finish(self, "a lan");
        let mut lan = Lan::default();
        if let Some(n) = mtu {
            lan.mtu = self.number(n, "mtu", (576.0, 9000.0))?;
        }
        if let Some(n) = spy {
            lan.spy = self.bool(n, "spy")?;
        }
        Some(lan)
    }

    fn images(&mut self, node: &Node) -> BTreeMap<String, Image> {
        let mut images = BTreeMap::new();
        let Some(f) = self.fields(node, "images") else {
            return images;
        };
        for (key, value) in f.items {
            self.images.insert(key.name.clone());
            let ok = self.key_name(key, "image name");
            if key.name == BUILTIN_IMAGE {
                self.err(
                    key.pos,
                    "`busybox` is the built-in image",
                    "give your image another name",
                );
            }
            let Some(mut f) = self.fields(value, "an image") else {
                continue;
            };
            let debian = f.req(
                self,
                "debian",
                "write `debian: {suite: bookworm, packages: [...]}`",
            );
            f.finish(self, "an image");
            let Some(debian) = debian else { continue };
            let Some(mut d) = self.fields(debian, "a debian image") else {
                continue;
            };
            let suite = d.req(self, "suite", "e.g. `suite: bookworm`");
            let packages = d.opt("packages");
            d.finish(self, "a debian image");
            let suite = suite.and_then(|s| self.suite(s));
            let packages: Vec<String> = packages
                .map(|p| {
                    let items = self.seq(p, "packages");
                    items.iter().filter_map(|p| self.package(p)).collect()
                })
                .unwrap_or_default();
            if let (Some(suite), true) = (suite, ok) {
                images.insert(
                    key.name.clone(),
                    Image {
                        debian: DebianImage { suite, packages },
                    },
                );
            }
        }
        images
    }

    /// A package name as Debian policy has it (with an optional `:arch`): it reaches
    /// mmdebstrap, and cannot start with `-`, so it is never read as an option.
    fn package(&mut self, node: &Node) -> Option<String> {
        let p = self.string(node, "package")?;
        if !is_package(&p) {
            self.err(
                node.pos,
                format!("`{p}` is not a Debian package name"),
                "lowercase letters, digits, `+` `-` `.`, starting with a letter or digit, e.g. `iproute2` (or `name:arch`)",
            );
            return None;
        }
        Some(p)
    }

    /// A suite or codename (`bookworm`, `stable`, `bookworm-backports`): it names apt
    /// indexes and reaches mmdebstrap, so nothing else is accepted.
    fn suite(&mut self, node: &Node) -> Option<String> {
        let s = self.string(node, "suite")?;
        let b = s.as_bytes();
        let ok = (1..=40).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-.".contains(c));
        if !ok {
            self.err(
                node.pos,
                format!("`{s}` is not a Debian suite"),
                "e.g. `bookworm`, `trixie` or `stable`",
            );
            return None;
        }
        Some(s)
    }
}

/// Debian policy 5.6.1: at least two characters of `[a-z0-9+.-]`, the first alphanumeric;
/// optionally `:ARCH` (`[a-z0-9-]`, e.g. `libc6:i386`).
pub(super) fn is_package(p: &str) -> bool {
    let (name, arch) = match p.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (p, None),
    };
    let b = name.as_bytes();
    let name_ok = b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        let a = a.as_bytes();
        !a.is_empty()
            && a[0].is_ascii_lowercase()
            && a.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    });
    name_ok && arch_ok
}

pub(super) const KINDS: [&str; 7] = ["cnt", "kvm", "nat", "tap", "phy", "a2b", "c2c"];

fn kind_of(node: &Node) -> &'static str {
    if let Value::Map(items) = &node.value
        && let Some((
            _,
            Node {
                value: Value::Scalar(k, _),
                ..
            },
        )) = items.iter().find(|(k, _)| k.name == "kind")
    {
        return KINDS.iter().find(|x| *x == k).copied().unwrap_or("unknown");
    }
    "unknown"
}

/// Moves the `endpoints:` mapping out of the root, leaving it empty there, so that each
/// endpoint's part of the tree can be freed once it is read: in a large file that part is
/// nearly all of it, and the tree and the model need not both be whole at once.
fn take_endpoints(root: &mut Node) -> Option<Vec<(Key, Node)>> {
    let Value::Map(items) = &mut root.value else {
        return None;
    };
    match &mut items
        .iter_mut()
        .find(|(k, _)| k.name == "endpoints")?
        .1
        .value
    {
        Value::Map(endpoints) => Some(std::mem::take(endpoints)),
        _ => None,
    }
}

/// A field that is absent is empty; one that is present is what its reader made of it
/// (`None` when it was invalid, with the error already reported).
pub(super) fn present_or_empty<T: Default>(read: Option<Option<T>>) -> Option<T> {
    read.unwrap_or_else(|| Some(T::default()))
}
