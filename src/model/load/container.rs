//! The fields of a container and the parts endpoints share: interfaces, files, commands,
//! environment and sysctls.

use super::super::units::{Duration, Mac};
use super::super::*;
use super::present_or_empty;
use super::reader::{Cx, Fields, is_eth_name};
use crate::diag::{Pos, did_you_mean};
use crate::yaml::{Key, Node, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path};

impl Cx {
    pub(super) fn container(&mut self, f: &mut Fields) -> Option<Container> {
        let runtime = f.opt("runtime");
        let image = f.opt("image");
        let eth = f.opt("eth");
        let files = f.opt("files");
        let run = f.opt("run");
        let run_timeout = f.opt("run_timeout");
        let env = f.opt("env");
        let sysctl = f.opt("sysctl");
        let privileged = f.opt("privileged");
        let cpu = f.opt("cpu");
        let ram = f.opt("ram");

        let runtime = match runtime {
            Some(n) => self.runtime(n),
            None => Some(Runtime::Crun),
        };
        let image = match (image, runtime.and_then(Runtime::engine)) {
            (Some(n), Some(engine)) => self.engine_reference(n, engine),
            (Some(n), None) => self.container_image(n),
            (None, Some(engine)) => {
                self.err(
                    f.pos,
                    format!("a {engine} container needs `image`"),
                    format!("the reference of an image in {engine}'s local store, e.g. `image: localhost/frr:latest`"),
                );
                None
            }
            (None, None) => Some(BUILTIN_IMAGE.to_string()),
        };
        let eth = present_or_empty(eth.map(|n| self.eths(n)));
        let files = present_or_empty(files.map(|n| self.files(n)));
        let run = present_or_empty(run.map(|n| self.commands(n)));
        let run_timeout = match run_timeout {
            Some(n) => self.parse::<Duration>(n, "run_timeout"),
            None => Some(DEFAULT_RUN_TIMEOUT),
        };
        let env = present_or_empty(env.map(|n| self.env(n)));
        let sysctl = present_or_empty(sysctl.map(|n| self.sysctl(n)));
        let privileged = match privileged {
            Some(n) => {
                let p = self.bool(n, "privileged");
                if p == Some(true) {
                    self.host_item(n.pos, "a privileged container".into());
                }
                p
            }
            None => Some(false),
        };
        let cpu = cpu.map(|n| self.number::<f64>(n, "cpu", (0.01, 1024.0)));
        let ram = ram.map(|n| self.number::<u32>(n, "ram", (16.0, 1_048_576.0)));
        Some(Container {
            runtime: runtime?,
            image: image?,
            eth: eth?,
            files: files?,
            run: run?,
            run_timeout: run_timeout?,
            env: env?,
            sysctl: sysctl?,
            privileged: privileged?,
            cpu: cpu.map(|c| c.ok_or(())).transpose().ok()?,
            ram: ram.map(|r| r.ok_or(())).transpose().ok()?,
        })
    }

    fn runtime(&mut self, node: &Node) -> Option<Runtime> {
        match self.string(node, "runtime")?.as_str() {
            "crun" => Some(Runtime::Crun),
            "podman" => Some(Runtime::Podman),
            "docker" => Some(Runtime::Docker),
            other => {
                let hint = match did_you_mean(other, ["crun", "podman", "docker"]) {
                    Some(r) => format!("did you mean `{r}`?"),
                    None => "use `crun` (the default), `podman` or `docker`".into(),
                };
                self.err(node.pos, format!("unknown runtime `{other}`"), hint);
                None
            }
        }
    }

    /// An image reference for `engine`, checked against the reference grammar: it reaches
    /// the engine's command line, where nothing else may be read into it.
    fn reference(&mut self, node: &Node, engine: Engine, r: &str) -> Option<()> {
        match super::super::reference::check(r) {
            Ok(()) => Some(()),
            Err(why) => {
                self.err(
                    node.pos,
                    format!("`{r}` is not an image reference of {engine}'s: {why}"),
                    "e.g. `localhost/frr:latest`, `quay.io/frrouting/frr:9.1.0`",
                );
                None
            }
        }
    }

    fn engine_reference(&mut self, node: &Node, engine: Engine) -> Option<String> {
        let image = self.string(node, "image")?;
        if let Some((named, r)) = Engine::image_of(&image) {
            self.err(
                node.pos,
                format!("a {engine} container's image is {engine}'s own reference, not `{image}`"),
                format!("write `image: {r}`; `{named}:REF` is for crun containers"),
            );
            return None;
        }
        self.reference(node, engine, &image)?;
        Some(image)
    }

    pub(super) fn container_image(&mut self, node: &Node) -> Option<String> {
        let image = self.string(node, "image")?;
        if image == BUILTIN_IMAGE || self.images.contains(&image) {
            return Some(image);
        }
        if let Some((engine, r)) = Engine::image_of(&image) {
            self.reference(node, engine, r)?;
            return Some(image);
        }
        if image.contains('/') || image.starts_with('.') {
            return self.host_path(node, "image directory", true);
        }
        let suggestion = (!self.full())
            .then(|| {
                let names = self.images.iter().map(String::as_str);
                did_you_mean(&image, names.chain([BUILTIN_IMAGE]))
            })
            .flatten();
        let hint = match suggestion {
            Some(i) => format!("did you mean `{i}`?"),
            None => "use `busybox`, a name from `images:`, a directory path such as `./rootfs`, \
                     or `podman:REF` / `docker:REF`"
                .into(),
        };
        self.err(node.pos, format!("unknown image `{image}`"), hint);
        None
    }

    /// Reads `eth:`; `None` when any entry is invalid.
    pub(super) fn eths(&mut self, node: &Node) -> Option<Vec<Eth>> {
        self.eth_list(node, false)
            .map(|v| v.into_iter().map(|e| e.eth).collect())
    }

    pub(super) fn eth_list(&mut self, node: &Node, vm: bool) -> Option<Vec<VmEth>> {
        let items = self.seq(node, "eth");
        let mut out = Vec::new();
        let mut ok = true;
        let mut names: BTreeMap<String, Pos> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            match self.eth(item, i, vm) {
                Some(e) => {
                    if let Some(first) = names.insert(e.eth.name.clone(), item.pos) {
                        self.err(
                            item.pos,
                            format!("interface `{}` is defined twice", e.eth.name),
                            format!(
                                "the first is at line {}; give this one another `name`",
                                first.line
                            ),
                        );
                        ok = false;
                    }
                    out.push(e);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn eth(&mut self, node: &Node, index: usize, vm: bool) -> Option<VmEth> {
        let mut f = self.fields(node, "an eth entry")?;
        let lan = f.req(
            self,
            "lan",
            "every interface is plugged into a lan: `lan: lan1`",
        );
        let ip = f.opt("ip");
        let mac = f.opt("mac");
        let name = f.opt("name");
        let model = if vm { f.opt("model") } else { None };
        f.finish(self, "an eth entry");
        let name = match name {
            Some(n) => {
                let s = self.string(n, "interface name")?;
                if !is_eth_name(&s) || s == "lo" {
                    self.err(
                        n.pos,
                        format!("invalid interface name `{s}`"),
                        "a lowercase letter, then up to 14 lowercase letters, digits or `_`",
                    );
                    return None;
                }
                s
            }
            None => format!("eth{index}"),
        };
        let lan = lan.and_then(|n| self.lan_ref(n));
        let ip = match ip {
            Some(n) => self.cidrs(n, lan.as_deref()),
            None => Some(Vec::new()),
        };
        let mac = match mac {
            Some(n) => {
                let m = self.parse::<Mac>(n, "MAC address")?;
                if let Some(first) = self.macs.insert(m, n.pos) {
                    self.err(
                        n.pos,
                        format!("MAC {m} is used twice"),
                        format!("it is already given at line {}", first.line),
                    );
                }
                Some(Some(m))
            }
            None => Some(None),
        };
        let model = match model {
            Some(n) => match self.string(n, "model")?.as_str() {
                "virtio" => Some(NicModel::Virtio),
                "e1000" => Some(NicModel::E1000),
                other => {
                    self.err(
                        n.pos,
                        format!("unknown NIC model `{other}`"),
                        "use `virtio` or `e1000`",
                    );
                    None
                }
            },
            None => Some(NicModel::Virtio),
        };
        Some(VmEth {
            eth: Eth {
                name,
                lan: lan?,
                ip: ip?,
                mac: mac?,
            },
            model: model?,
        })
    }

    pub(super) fn files(&mut self, node: &Node) -> Option<BTreeMap<String, File>> {
        let f = self.fields(node, "files")?;
        let mut files = BTreeMap::new();
        let mut ok = true;
        for (key, value) in f.items {
            match self.file(key, value) {
                Some(file) => {
                    files.insert(key.name.clone(), file);
                }
                None => ok = false,
            }
        }
        ok.then_some(files)
    }

    pub(super) fn file(&mut self, key: &Key, node: &Node) -> Option<File> {
        let path = Path::new(&key.name);
        let clean = path.is_absolute()
            && path.components().count() > 1
            && path
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && !key.name.ends_with('/');
        if !clean || key.name.contains('\0') || key.name.len() > 4096 {
            self.err(
                key.pos,
                format!("invalid file path `{}`", key.name.escape_debug()),
                "an absolute path inside the endpoint, without `..`, e.g. `/etc/frr/frr.conf`",
            );
        } else if ["/proc", "/sys", "/dev"]
            .iter()
            .any(|k| path.starts_with(k))
        {
            // The kernel's files, in a running endpoint: not the image's to hold, and
            // cloonix would write them with its own powers.
            self.err(
                key.pos,
                format!("file path `{}` is in /proc, /sys or /dev", key.name),
                "files go into the endpoint's own filesystem; set sysctls with `sysctl:`",
            );
        }
        let mut f = self.fields(node, "a file")?;
        let content = f.opt("content");
        let source = f.opt("source");
        let mode = f.opt("mode");
        f.finish(self, "a file");
        let mode = match mode {
            Some(n) => {
                let m = self.string(n, "mode")?;
                let ok = (3..=4).contains(&m.len())
                    && m.bytes().all(|c| (b'0'..=b'7').contains(&c))
                    && (m.len() == 3 || m.starts_with('0'));
                if !ok {
                    self.err(
                        n.pos,
                        format!("invalid mode `{m}`"),
                        "octal permission bits, quoted: `\"0755\"`",
                    );
                    return None;
                }
                Some(format!("0{}", &m[m.len() - 3..]))
            }
            None => None,
        };
        let content = match (content, source) {
            (Some(c), None) => self.string(c, "content")?,
            (None, Some(s)) => self.source(s)?,
            (Some(_), Some(s)) => {
                self.err(
                    s.pos,
                    "a file has `content` or `source`, not both",
                    "keep one of them",
                );
                return None;
            }
            (None, None) => {
                self.err(
                    f.pos,
                    "a file needs `content` or `source`",
                    "e.g. `{content: \"hello\\n\"}`",
                );
                return None;
            }
        };
        let source = source.and_then(|s| self.string(s, "source"));
        clean.then_some(File {
            content: Some(content),
            source,
            mode,
        })
    }

    /// Reads a `source` file: relative, regular, and inside the topology's directory.
    pub(super) fn source(&mut self, node: &Node) -> Option<String> {
        let s = self.string(node, "source")?;
        let hint = "a regular file relative to the topology file, inside its directory";
        if Path::new(&s).is_absolute() {
            self.err(node.pos, format!("source `{s}` is an absolute path"), hint);
            return None;
        }
        let real = match self.dir.join(&s).canonicalize() {
            Ok(r) => r,
            Err(e) => {
                self.err(node.pos, format!("source `{s}`: {e}"), hint);
                return None;
            }
        };
        if !real.starts_with(&self.dir) {
            self.err(
                node.pos,
                format!("source `{s}` leaves the topology's directory"),
                hint,
            );
            return None;
        }
        if !real.is_file() {
            self.err(
                node.pos,
                format!("source `{s}` is not a regular file"),
                hint,
            );
            return None;
        }
        match std::fs::read(&real).map(String::from_utf8) {
            Ok(Ok(text)) => Some(text),
            Ok(Err(_)) => {
                self.err(
                    node.pos,
                    format!("source `{s}` is not UTF-8 text"),
                    "files are text for now",
                );
                None
            }
            Err(e) => {
                self.err(node.pos, format!("source `{s}`: {e}"), hint);
                None
            }
        }
    }

    pub(super) fn commands(&mut self, node: &Node) -> Option<Vec<Command>> {
        let items = self.seq(node, "run");
        let cmds: Vec<Option<Command>> = items.iter().map(|n| self.command(n)).collect();
        cmds.into_iter().collect()
    }

    pub(super) fn command(&mut self, node: &Node) -> Option<Command> {
        match &node.value {
            Value::Scalar(s, _) => Some(Command::Shell(s.clone())),
            Value::Seq(items) if !items.is_empty() => {
                let argv: Vec<Option<String>> =
                    items.iter().map(|n| self.string(n, "argument")).collect();
                argv.into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Command::Argv)
            }
            _ => {
                self.err(
                    node.pos,
                    "a command is a string (run by /bin/sh -c) or a non-empty argv list",
                    "e.g. `\"ip route add default via 10.0.0.1\"` or `[/bin/busybox, httpd]`",
                );
                None
            }
        }
    }

    pub(super) fn env(&mut self, node: &Node) -> Option<BTreeMap<String, String>> {
        let f = self.fields(node, "env")?;
        let mut env = BTreeMap::new();
        let mut ok = true;
        for (key, value) in f.items {
            let k = key.name.as_bytes();
            let valid = !k.is_empty()
                && (k[0].is_ascii_alphabetic() || k[0] == b'_')
                && k.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
            if !valid {
                self.err(
                    key.pos,
                    format!("invalid variable name `{}`", key.name),
                    "letters, digits and `_`",
                );
                ok = false;
            }
            match self.string(value, "an environment value") {
                Some(v) => {
                    env.insert(key.name.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(env)
    }

    pub(super) fn sysctl(&mut self, node: &Node) -> Option<BTreeMap<String, String>> {
        let f = self.fields(node, "sysctl")?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in f.items {
            let parts: Vec<&str> = key.name.split('.').collect();
            let valid = parts.len() >= 3
                && parts[0] == "net"
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                });
            if !valid {
                self.err(
                    key.pos,
                    format!("sysctl `{}` is not a namespaced net.* key", key.name),
                    "only keys under `net.` are per network namespace, e.g. `net.ipv4.ip_forward`",
                );
                ok = false;
            }
            match self.string(value, "a sysctl value") {
                // What a sysctl holds: numbers, words, a few separators. Nothing that an
                // engine's command line would split (`,`) or read as more (`=`, controls).
                Some(v)
                    if v.is_empty()
                        || !v
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b" \t._:/-".contains(&c)) =>
                {
                    self.err(
                        value.pos,
                        format!(
                            "sysctl value `{}` has characters a sysctl does not take",
                            v.escape_debug()
                        ),
                        "letters, digits, spaces and `._:/-`, e.g. `1` or `4096 87380 6291456`",
                    );
                    ok = false;
                }
                Some(v) => {
                    out.insert(key.name.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}
