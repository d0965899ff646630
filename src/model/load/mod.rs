//! From a spanned YAML tree to a [`Topology`], checking everything the spec's "Validation"
//! section lists and collecting every error instead of stopping at the first one.
//! Which items touch the host (and need `--allow-host`) is decided here too.

mod checks;
mod container;
mod endpoints;
mod reader;

use super::*;
use crate::diag::{Diagnostics, Pos};
use crate::yaml::{self, Key, Node, Value};
use reader::{Cx, RESERVED_LANS};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
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
    #[error("{} error(s) in {path}", diagnostics.0.len())]
    Invalid {
        path: String,
        source_text: String,
        diagnostics: Diagnostics,
    },
}

impl LoadError {
    /// The errors as the spec shows them: `PATH:LINE:COLUMN: error: MESSAGE`, line, hint.
    pub fn render(&self) -> String {
        match self {
            LoadError::Invalid {
                path,
                source_text,
                diagnostics,
            } => diagnostics.render(path, source_text),
            other => format!("{path}: error: {other}\n", path = other.path()),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            LoadError::Read { path, .. } | LoadError::Invalid { path, .. } => path,
        }
    }
}

/// Loads and validates a topology file; relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    load_str(&text, dir).map_err(|diagnostics| LoadError::Invalid {
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
        lans: BTreeSet::new(),
        endpoints: BTreeMap::new(),
        images: BTreeSet::new(),
        macs: BTreeMap::new(),
        host: Vec::new(),
        positions: BTreeMap::new(),
    };
    let topology = match &root {
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
    diags.sort_by_key(|d| d.pos);
    match topology {
        Some(topology) if diags.is_empty() => Ok(Loaded {
            topology,
            host_items: cx.host,
            positions: cx.positions,
        }),
        _ => Err(Diagnostics(diags)),
    }
}

pub use reader::is_name;

impl Cx {
    fn topology(&mut self, root: &Node) -> Option<Topology> {
        let mut f = self.fields(root, "the topology")?;
        let name = f.req(self, "name", "start the file with `name: mylab`");
        let lans = f.opt("lans");
        let images = f.opt("images");
        let endpoints_node_opt = f.opt("endpoints");
        let checks = f.opt("checks");
        f.finish(self, "the topology");
        let name = name.and_then(|n| self.name(n, "lab name"));

        let lans = lans.map(|n| self.lans(n)).unwrap_or_default();
        self.lans = lans.keys().cloned().collect();
        let images = images.map(|n| self.images(n)).unwrap_or_default();
        self.images = images.keys().cloned().collect();

        // Endpoints are named before they are read so that checks can refer to them.
        let mut endpoints = BTreeMap::new();
        if let Some(node) = endpoints_node(self, endpoints_node_opt) {
            for (key, value) in node {
                let kind = kind_of(value);
                self.endpoints.insert(key.name.clone(), kind);
                self.positions.insert(key.name.clone(), key.pos);
                if let Value::Map(fields) = &value.value {
                    for (field, node) in fields {
                        let at = format!("{}.{}", key.name, field.name);
                        self.positions.insert(at, node.pos);
                    }
                }
            }
            for (key, value) in node {
                let ok = self.key_name(key, "endpoint name");
                let before = self.diags.len();
                match self.endpoint(&key.name, value) {
                    Some(ep) if ok => {
                        endpoints.insert(key.name.clone(), ep);
                    }
                    // Never drop an endpoint silently: that would be a lab without it.
                    None if self.diags.len() == before => self.err(
                        key.pos,
                        format!("internal error: endpoint `{}` could not be read", key.name),
                        "please report this file",
                    ),
                    _ => {}
                }
            }
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

    fn lans(&mut self, node: &Node) -> BTreeMap<String, Lan> {
        let mut lans = BTreeMap::new();
        match &node.value {
            Value::Seq(items) => {
                for item in items {
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
            let suite = suite.and_then(|s| self.string(s, "suite"));
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

    fn package(&mut self, node: &Node) -> Option<String> {
        let p = self.string(node, "package")?;
        let ok = !p.is_empty()
            && p.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.:".contains(&c));
        if !ok {
            self.err(
                node.pos,
                format!("`{p}` is not a Debian package name"),
                "e.g. `iproute2`",
            );
            return None;
        }
        Some(p)
    }
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

fn endpoints_node<'n>(cx: &mut Cx, node: Option<&'n Node>) -> Option<&'n [(Key, Node)]> {
    let f = cx.fields(node?, "endpoints")?;
    Some(f.items)
}

/// A field that is absent is empty; one that is present is what its reader made of it
/// (`None` when it was invalid, with the error already reported).
pub(super) fn present_or_empty<T: Default>(read: Option<Option<T>>) -> Option<T> {
    read.unwrap_or_else(|| Some(T::default()))
}
