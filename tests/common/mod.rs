//! What the tests that build real labs share: a lab with its own name and a guard that
//! destroys it even when the test fails, and a list of what a lab may leave on the host.
//! Those tests need root (CI runs as root); built without it, they show as ignored.

#![allow(dead_code)]

use cloonix::host::Lab as HostLab;
use cloonix::host::process::Identity;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The reason a real-lab test is ignored when the suite is built without root.
pub const NEEDS_ROOT: &str = "needs root: run the suite as root, as CI does";

pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    /// Environment of every cloonix command of this lab (`DOCKER_HOST`, say).
    pub env: Vec<(String, String)>,
}

impl Lab {
    /// A fresh lab of that name (any leftover of an earlier run destroyed first).
    pub fn new(name: &str) -> Lab {
        Lab::with_env(name, &[])
    }

    /// A fresh lab whose cloonix commands run with `env` added to the test's environment.
    pub fn with_env(name: &str, env: &[(&str, &str)]) -> Lab {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "{NEEDS_ROOT}");
        let dir = std::env::temp_dir().join(format!("cloonix-test-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            name: name.to_string(),
            dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        lab.cloonix(&["destroy", name]);
        lab
    }

    pub fn file(&self, yaml: &str) -> String {
        let path = self.dir.join("lab.yaml");
        std::fs::write(&path, format!("name: {}\n{yaml}", self.name)).unwrap();
        path.display().to_string()
    }

    pub fn cloonix(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cloonix"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Runs `cloonix ARGS` and kills it with SIGKILL as soon as it has reported `n` progress
    /// lines containing `word`; how many it reported (fewer when it ended first).
    pub fn kill_after(&self, args: &[&str], word: &str, n: usize) -> usize {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cloonix"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut progress = std::io::BufReader::new(child.stderr.take().unwrap());
        let (mut line, mut seen) = (String::new(), 0);
        while seen < n && std::io::BufRead::read_line(&mut progress, &mut line).unwrap() > 0 {
            seen += usize::from(line.contains(word));
            line.clear();
        }
        let _ = child.kill();
        let _ = child.wait();
        seen
    }

    /// Applies `yaml`, asserting success.
    pub fn apply(&self, yaml: &str) -> String {
        let file = self.file(yaml);
        let out = self.cloonix(&["apply", &file]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "apply failed:\n{text}");
        text
    }

    pub fn diff_code(&self, yaml: &str) -> i32 {
        let file = self.file(yaml);
        self.cloonix(&["diff", &file]).status.code().unwrap()
    }

    pub fn exec(&self, node: &str, cmd: &str) -> (i32, String) {
        let out = self.cloonix(&["exec", &self.name, node, "--", "sh", "-c", cmd]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn ping(&self, from: &str, to: &str) -> bool {
        self.exec(from, &format!("ping -c 1 -W 2 {to}")).0 == 0
    }

    /// Up to three pings: after a failed one, the kernel takes a moment to resolve the
    /// neighbour again.
    pub fn ping_again(&self, from: &str, to: &str) -> bool {
        self.exec(from, &format!("ping -c 3 -W 2 {to}")).0 == 0
    }

    /// A TCP round trip through the lab: busybox nc serving a page, fetched with nc.
    pub fn tcp(&self, from: &str, to: &str) -> bool {
        let (_, out) = self.exec(
            from,
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {to} 80"),
        );
        out.contains("hello")
    }

    /// The start time of the container's pid 1: unchanged means never restarted.
    pub fn init_start(&self, node: &str) -> u64 {
        let status = cloonix::observe::observe_lab(&HostLab::new(&self.name)).status();
        let pid = status.endpoints[node].pid.expect("container runs");
        Identity::of(pid).expect("container runs").start
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.cloonix(&["destroy", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(
                out.status.success(),
                "destroy failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

/// Everything a lab may leave on the host.
pub fn leftovers(lab: &str) -> Vec<String> {
    let mut out = Vec::new();
    let prefix = format!("cloonix_{lab}");
    for ns in cloonix::host::netns::list(&prefix) {
        if ns == prefix || ns.starts_with(&format!("{prefix}_")) {
            out.push(format!("namespace {ns}"));
        }
    }
    let dir = format!("/run/cloonix/{lab}");
    if std::path::Path::new(&dir).exists() {
        out.push(dir.clone());
    }
    // Its cgroups: crun's on cgroup2, cloonix's own in each v1 hierarchy.
    for hierarchy in ["", "pids/", "memory/", "cpu/", "devices/"] {
        let cg = format!("/sys/fs/cgroup/{hierarchy}cloonix/{lab}");
        if std::path::Path::new(&cg).exists() {
            out.push(cg);
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    out.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&format!("{dir}/")))
            .map(String::from),
    );
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    // Processes that name the lab's files or one of its namespaces (slirp4netns does).
    let netns = format!("/run/netns/cloonix_{lab}");
    out.extend(
        ps.lines()
            .filter(|l| {
                l.contains(&format!("{dir}/"))
                    || l.contains(&format!("{netns}_"))
                    || l.split_whitespace().any(|a| a == netns)
            })
            .map(String::from),
    );
    out
}

/// A host veth pair made by a test (this kernel has no dummy interfaces), with `addr` on
/// its first end, up; both ends removed when dropped. The test's own bait or borrowed NIC.
pub struct HostPair {
    pub name: String,
    pub peer: String,
}

impl HostPair {
    pub fn new(name: &str, peer: &str, addr: &str) -> HostPair {
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        ip(&["link", "del", name]);
        assert!(ip(&[
            "link", "add", name, "type", "veth", "peer", "name", peer
        ]));
        assert!(ip(&["addr", "add", addr, "dev", name]));
        assert!(ip(&["link", "set", name, "up"]));
        assert!(ip(&["link", "set", peer, "up"]));
        HostPair {
            name: name.to_string(),
            peer: peer.to_string(),
        }
    }

    /// `ip -d -o link` and `ip -o addr` of the first end: how the host has it now.
    pub fn describe(&self) -> String {
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        run(&["-d", "-o", "link", "show", "dev", &self.name])
            + &run(&["-o", "addr", "show", "dev", &self.name])
    }
}

impl Drop for HostPair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Runs busybox on the host (which may have no ping or nc of its own).
pub fn busybox(args: &[&str]) -> Output {
    Command::new("/bin/busybox").args(args).output().unwrap()
}
