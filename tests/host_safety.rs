//! What a lab may and may not do to the host that runs it, and how it recovers from being
//! interrupted or damaged, on the real host. Every probe is harmless if the hole it looks
//! for is open: the interfaces it offers as bait are its own, and the process it offers is
//! a `sleep` of its own.

mod common;

use common::{Lab, leftovers};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A host veth pair made by the test (this kernel has no dummy interfaces), with an
/// address on its first end; removed when dropped.
struct HostPair(String);

impl HostPair {
    fn new(name: &str, peer: &str) -> HostPair {
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["link", "add", name, "type", "veth", "peer", "name", peer])
            .status()
            .unwrap()
            .success();
        assert!(ok, "could not make the bait interface {name}");
        let ok = Command::new("ip")
            .args(["addr", "add", "192.0.2.77/32", "dev", name])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        HostPair(name.to_string())
    }

    /// Its `ip -o addr` lines: still there, with its address, means untouched.
    fn addresses(&self) -> String {
        let out = Command::new("ip")
            .args(["-o", "addr", "show", "dev", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for HostPair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_tap_named_like_a_host_interface_is_refused_and_the_interface_kept() {
    let lab = Lab::new("t-taken");
    let bait = HostPair::new("hs-taken0", "hs-taken1");
    let file = lab.file(
        "lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: hs-taken0}\n  a: {kind: cnt, eth: [{lan: l}]}\n",
    );
    let out = lab.cloonix(&["apply", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:4:32: error: host interface `hs-taken0` exists"
        )),
        "{err}"
    );
    assert!(
        bait.addresses().contains("192.0.2.77/32"),
        "the host's interface was touched"
    );
    assert_eq!(
        leftovers("t-taken"),
        Vec::<String>::new(),
        "something was made"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_tap_is_marked_and_destroy_leaves_an_unmarked_interface_of_its_name() {
    let lab = Lab::new("t-mark");
    lab.apply("lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: hs-tap0, ip: 10.78.0.1/24}\n  a: {kind: cnt, eth: [{lan: l, ip: 10.78.0.2/24}]}\n");
    let link = Command::new("ip")
        .args(["-d", "-o", "link", "show", "hs-tap0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&link.stdout).contains("alias cloonix:t-mark:t"));
    assert!(
        lab.ping("a", "10.78.0.1"),
        "the container reaches the host through the tap"
    );
    // Behind cloonix's back the tap goes, and the host makes an interface of that name.
    assert!(
        Command::new("ip")
            .args(["link", "del", "hs-tap0"])
            .status()
            .unwrap()
            .success()
    );
    let bait = HostPair::new("hs-tap0", "hs-tap1");
    let out = lab.cloonix(&["destroy", "t-mark"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        bait.addresses().contains("192.0.2.77/32"),
        "destroy removed an unmarked interface"
    );
    assert_eq!(leftovers("t-mark"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_stale_pid_file_never_gets_a_process_killed() {
    let lab = Lab::new("t-stale");
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l}]}\n");
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let pid_file = "/run/cloonix/t-stale/ovs/ovs-vswitchd.pid";
    std::fs::write(pid_file, format!("{}\n", sleeper.id())).unwrap();
    let out = lab.cloonix(&["destroy", "t-stale"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "destroy killed the process a stale pid file named"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(leftovers("t-stale"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_killed_switch_shows_in_status_and_apply_restarts_it() {
    let lab = Lab::new("t-switch");
    let yaml = "lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 10.0.0.1/24}]}\n  b:\n    kind: cnt\n    eth: [{lan: l, ip: 10.0.0.2/24}]\n    files: {/www/index.html: {content: \"hello\\n\"}}\n    run: [\"httpd -p 80 -h /www\"]\n";
    lab.apply(yaml);
    let status = lab.cloonix(&["status", "t-switch", "-o", "json"]);
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["switch"]["datapath"], "netdev");
    let pid = json["switch"]["daemons"]["ovs-vswitchd"]["pid"]
        .as_i64()
        .unwrap();
    let start = cloonix::host::process::Identity::of(pid as i32).unwrap();
    start.stop(Duration::ZERO).unwrap();
    let status = lab.cloonix(&["status", "t-switch"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(
        text.contains("switch down") && text.contains("lan l"),
        "{text}"
    );
    assert_eq!(lab.diff_code(yaml), 2, "a dead daemon is drift");
    lab.apply(yaml);
    assert!(
        lab.ping("a", "10.0.0.2"),
        "traffic flows through the restarted switch"
    );
    assert!(lab.tcp("a", "10.0.0.2"), "TCP through the restarted switch");
    assert!(lab.cloonix(&["status", "t-switch"]).status.success());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_interrupted_run_replaces_the_endpoint_which_runs_it_once() {
    let lab = Lab::new("t-taint");
    let yaml = "lans: [l]\nendpoints:\n  a:\n    kind: cnt\n    eth: [{lan: l}]\n    run: [\"touch /started; sleep 2; echo once >> /ran\"]\n";
    let file = lab.file(yaml);
    let mut apply = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["apply", &file])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = "/var/lib/cloonix/labs/t-taint/ep/a/upper/started";
    let t0 = Instant::now();
    while !std::path::Path::new(started).exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the run command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    apply.kill().unwrap();
    apply.wait().unwrap();
    let diff = lab.cloonix(&["diff", &file]);
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(diff.status.code(), Some(2), "{text}");
    assert!(
        text.contains("-/+ endpoint a (replace: its run commands were interrupted)"),
        "{text}"
    );
    lab.apply(yaml);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lab.exec("a", "cat /ran").1,
        "once\n",
        "the command ran twice, or never"
    );
    assert_eq!(lab.diff_code(yaml), 0);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn destroying_a_lab_that_never_existed_says_so() {
    let lab = Lab::new("t-never");
    let out = lab.cloonix(&["destroy", "t-never"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Lab t-never: nothing to destroy."
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_container_running_without_a_record_is_found_by_apply_and_destroy() {
    use cloonix::host::process::Identity;
    let lab = Lab::new("t-unrec");
    let yaml = "lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l}]}\n";
    // As an apply killed between crun's start and the record leaves it: running, unrecorded.
    let orphan = |lab: &Lab| {
        lab.apply(yaml);
        let status = lab.cloonix(&["status", "t-unrec", "-o", "json"]);
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let pid = json["endpoints"]["a"]["pid"].as_i64().unwrap() as i32;
        std::fs::remove_file("/run/cloonix/t-unrec/intent/container@a.json").unwrap();
        Identity::of(pid).unwrap()
    };
    let first = orphan(&lab);
    lab.apply(yaml);
    assert!(
        !first.alive(),
        "the next apply left the unrecorded container running beside its own"
    );
    let second = orphan(&lab);
    assert!(lab.cloonix(&["destroy", "t-unrec"]).status.success());
    assert!(
        !second.alive(),
        "destroy left an unrecorded container running"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_container_that_fills_its_layer_with_a_deep_tree_is_still_destroyed() {
    let lab = Lab::new("t-deep");
    // Deeper than a process has descriptors by default, which a recursive removal holding
    // one per level ran out of, leaving a lab no destroy could remove.
    let yaml = "lans: [l]\nendpoints:\n  a:\n    kind: cnt\n    eth: [{lan: l}]\n    run: ['i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done']\n";
    lab.apply(yaml);
    // Run with the common default of 1024 descriptors, whatever this shell's limit is.
    let out = Command::new("sh")
        .args(["-c", "ulimit -n 1024 && exec \"$0\" destroy t-deep"])
        .arg(env!("CARGO_BIN_EXE_cloonix"))
        .envs(lab.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers("t-deep"), Vec::<String>::new());
    assert!(!std::path::Path::new("/var/lib/cloonix/labs/t-deep").exists());
}
