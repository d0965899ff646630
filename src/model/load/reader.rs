//! The reader's primitives: one mapping's keys taken one by one, scalars of each type, names
//! and references, each reporting its own error and returning `None` when it failed.

use super::super::units::Mac;
use super::HostItem;
use crate::diag::{Diagnostic, MAX_ERRORS, Pos, did_you_mean};
use crate::yaml::{Key, Node, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

pub const NAME_HINT: &str =
    "a name is a lowercase letter, then up to 11 lowercase letters, digits or `-`";

/// Names the switch namespace already uses for its own devices.
pub(super) const RESERVED_LANS: [&str; 3] = ["ovs-netdev", "ovs-system", "lo"];

pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=12).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(super) fn is_eth_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=15).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// A Linux interface name as the host accepts it.
pub(super) fn is_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Names for a hint: all of them when there are a few, else the first few and how many more.
pub(super) fn few<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 8;
    let n = names.len();
    let mut text = names.take(SHOWN).collect::<Vec<_>>().join(", ");
    if n > SHOWN {
        text.push_str(&format!(" and {} more", n - SHOWN));
    }
    text
}

pub(super) struct Cx {
    pub(super) diags: Vec<Diagnostic>,
    pub(super) dir: PathBuf,
    /// Every lan the file declares, valid or not, and a number for each.
    pub(super) lans: BTreeMap<String, usize>,
    /// Where each address on a lan (by its number) was first given.
    pub(super) addresses: HashMap<(usize, IpAddr), Pos>,
    pub(super) endpoints: BTreeMap<String, &'static str>,
    pub(super) images: BTreeSet<String>,
    pub(super) macs: BTreeMap<Mac, Pos>,
    /// Each tap's subnets so far, with its name and where they were given: two taps
    /// whose subnets overlap would give the host two routes to one network.
    pub(super) tap_subnets: Vec<(ipnet::IpNet, String, Pos)>,
    pub(super) host: Vec<HostItem>,
    pub(super) positions: BTreeMap<String, Pos>,
    /// Errors found past [`MAX_ERRORS`], counted but not kept.
    pub(super) omitted: usize,
}

/// The keys of one mapping, taken one by one; what is left over is unknown.
pub(super) struct Fields<'n> {
    pub(super) pos: Pos,
    pub(super) items: &'n [(Key, Node)],
    pub(super) taken: Vec<bool>,
    pub(super) known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    pub(super) fn opt(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        let i = self.items.iter().position(|(k, _)| k.name == key)?;
        self.taken[i] = true;
        Some(&self.items[i].1)
    }

    pub(super) fn req(&mut self, cx: &mut Cx, key: &'static str, hint: &str) -> Option<&'n Node> {
        let node = self.opt(key);
        if node.is_none() {
            cx.err(self.pos, format!("missing `{key}`"), hint);
        }
        node
    }

    /// Reports every key that was not taken, suggesting the closest known one.
    pub(super) fn finish(&self, cx: &mut Cx, what: &str) {
        for ((key, _), taken) in self.items.iter().zip(&self.taken) {
            if *taken {
                continue;
            }
            let hint = match did_you_mean(&key.name, self.known.iter().copied()) {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("{what} takes: {}", self.known.join(", ")),
            };
            cx.err(
                key.pos,
                format!("unknown key `{}` in {what}", key.name),
                hint,
            );
        }
    }
}
impl Cx {
    pub(super) fn err(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        if self.full() {
            self.omitted += 1;
        } else {
            self.diags.push(Diagnostic::new(pos, message, hint));
        }
    }

    /// Whether errors are only counted now: a hint that costs a search is not worth making.
    pub(super) fn full(&self) -> bool {
        self.diags.len() >= MAX_ERRORS
    }

    pub(super) fn host_item(&mut self, pos: Pos, what: String) {
        self.host.push(HostItem { pos, what });
    }

    pub(super) fn fields<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        let items: &[(Key, Node)] = match &node.value {
            Value::Map(items) => items,
            Value::Null => &[],
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a mapping, not {}", node.kind_name()),
                    "write `key: value` pairs, or `{}`",
                );
                return None;
            }
        };
        Some(Fields {
            pos: node.pos,
            items,
            taken: vec![false; items.len()],
            known: Vec::new(),
        })
    }

    pub(super) fn seq<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a list, not {}", node.kind_name()),
                    "write `[a, b]` or one `- item` per line",
                );
                &[]
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(s, _) => Some(s.clone()),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a text, not {}", node.kind_name()),
                    "write a single value",
                );
                None
            }
        }
    }

    pub(super) fn parse<T: FromStr<Err = String>>(&mut self, node: &Node, what: &str) -> Option<T> {
        let s = self.string(node, what)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(node.pos, format!("invalid {what}: {e}"), "");
                None
            }
        }
    }

    pub(super) fn number<T: FromStr>(
        &mut self,
        node: &Node,
        what: &str,
        range: (f64, f64),
    ) -> Option<T> {
        let ok = match &node.value {
            Value::Scalar(s, true) => s
                .parse::<f64>()
                .ok()
                .filter(|n| *n >= range.0 && *n <= range.1),
            _ => None,
        };
        let parsed = match (ok, &node.value) {
            (Some(_), Value::Scalar(s, _)) => s.parse::<T>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.err(
                node.pos,
                format!("{what} must be a number from {} to {}", range.0, range.1),
                "write an unquoted number, e.g. `1500`",
            );
        }
        parsed
    }

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar(s, true) if s == "true" => Some(true),
            Value::Scalar(s, true) if s == "false" => Some(false),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be true or false"),
                    "write `true` or `false`",
                );
                None
            }
        }
    }

    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if is_name(&s) {
            Some(s)
        } else {
            self.err(node.pos, format!("invalid {what} `{s}`"), NAME_HINT);
            None
        }
    }

    pub(super) fn key_name(&mut self, key: &Key, what: &str) -> bool {
        if is_name(&key.name) {
            return true;
        }
        self.err(key.pos, format!("invalid {what} `{}`", key.name), NAME_HINT);
        false
    }

    pub(super) fn lan_ref(&mut self, node: &Node) -> Option<String> {
        let lan = self.string(node, "lan")?;
        if self.lans.contains_key(&lan) {
            return Some(lan);
        }
        let suggestion = (!self.full())
            .then(|| did_you_mean(&lan, self.lans.keys().map(String::as_str)))
            .flatten();
        let hint = match suggestion {
            Some(l) => format!("did you mean `{l}`?"),
            None if self.lans.is_empty() => format!("declare it: `lans: [{lan}]`"),
            None => format!(
                "the lans are: {}; or add `{lan}` to `lans:`",
                few(self.lans.keys().map(String::as_str))
            ),
        };
        self.err(node.pos, format!("undefined lan `{lan}`"), hint);
        None
    }

    /// A path named by the file: relative ones are relative to its directory, and one that
    /// ends up outside that directory is a host item.
    pub(super) fn host_path(&mut self, node: &Node, what: &str, want_dir: bool) -> Option<String> {
        let s = self.string(node, what)?;
        let full = self.dir.join(&s);
        let Ok(real) = full.canonicalize() else {
            self.err(
                node.pos,
                format!("{what} `{s}` does not exist"),
                "paths are relative to the topology file's directory",
            );
            return None;
        };
        if want_dir != real.is_dir() {
            let want = if want_dir {
                "a directory"
            } else {
                "a regular file"
            };
            self.err(node.pos, format!("{what} `{s}` is not {want}"), "");
            return None;
        }
        // Such a path would be read as more options where it meets a mount or a command
        // line (an image directory is an overlay layer): `x,upperdir=/etc` or `img:/etc`.
        let unsafe_char = real
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .find(|&&b| matches!(b, b',' | b':' | b'\\' | b'=') || b < 0x20 || b == 0x7f);
        if let Some(&b) = unsafe_char {
            self.err(
                node.pos,
                format!("{what} `{}` has {:?} in its path", real.display(), b as char),
                "rename it: paths cloonix hands to the host may not hold `,` `:` `\\` `=` or control characters",
            );
            return None;
        }
        if !real.starts_with(&self.dir) {
            self.host_item(
                node.pos,
                format!(
                    "{what} `{}` is outside the topology's directory",
                    real.display()
                ),
            );
        } else if want_dir && real == self.dir {
            self.host_item(
                node.pos,
                format!(
                    "{what} `{}` is the topology's own directory",
                    real.display()
                ),
            );
        }
        Some(real.display().to_string())
    }
}
