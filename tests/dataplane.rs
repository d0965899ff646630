//! The data plane on the real host: the datapath a lab gets, a2b helpers changed live and
//! repaired when they die, c2c links between two labs, and the bad input of both kinds.
//! Timing accuracy lives in `dataplane_accuracy.rs` (release build, one at a time).

mod common;

use common::{Lab, leftovers};
use serde_json::Value;
use std::time::{Duration, Instant};

fn status(lab: &Lab) -> Value {
    let out = lab.cloonix(&["status", &lab.name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).expect("status -o json")
}

fn pid_of(lab: &Lab, ep: &str) -> i64 {
    status(lab)["endpoints"][ep]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("{ep} has a pid"))
}

/// Median of the round-trip times of `n` pings from `from` to `to`, in ms.
fn rtt_p50(lab: &Lab, from: &str, to: &str, n: usize) -> f64 {
    let (_, out) = lab.exec(from, &format!("ping -c {n} -i 0.05 -W 2 {to}"));
    let mut t: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert!(!t.is_empty(), "no replies: {out}");
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

const TWO_LANS: &str = "lans: [la, lb]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: la, ip: [10.71.0.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: lb, ip: [10.71.0.2/24]}]}\n";

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_lab_says_which_datapath_it_got() {
    let lab = Lab::new("d-path");
    lab.apply("lans: [l]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: l, ip: [10.70.0.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: l, ip: [10.70.0.2/24]}]}\n");
    let want = match std::path::Path::new("/sys/module/openvswitch").exists() {
        true => "system",
        false => "netdev",
    };
    assert_eq!(status(&lab)["switch"]["datapath"], want);
    assert!(lab.ping("c1", "10.70.0.2"));
    let text = lab.cloonix(&["status", "d-path"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("datapath {want}")));
}

/// Everything else about a lan is shared between the two datapaths; this one needs the
/// kernel's openvswitch module, which the development machine and its CI lack.
#[test]
#[ignore = "needs the openvswitch kernel module, which this host lacks (run with --ignored where it loads)"]
fn the_kernel_datapath_where_the_module_loads() {
    let lab = Lab::new("d-kern");
    lab.apply("lans: [l]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: l, ip: [10.69.0.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: l, ip: [10.69.0.2/24]}]}\n");
    assert_eq!(status(&lab)["switch"]["datapath"], "system");
    assert!(lab.ping("c1", "10.69.0.2"));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_a2b_setting_changes_live_in_the_same_helper() {
    let lab = Lab::new("d-live");
    let with = |delay: &str| {
        format!("{TWO_LANS}  w: {{kind: a2b, a: la, b: lb, a_to_b: {{delay: {delay}}}}}\n")
    };
    lab.apply(&with("50ms"));
    let rtt = rtt_p50(&lab, "c1", "10.71.0.2", 10);
    assert!((49.0..60.0).contains(&rtt), "{rtt} ms");
    let st = status(&lab);
    assert_eq!(st["endpoints"]["w"]["kind"], "a2b");
    assert_eq!(
        st["endpoints"]["w"]["a2b"]["a_to_b"]["settings"]["delay"],
        "50ms"
    );
    assert!(st["endpoints"]["w"]["a2b"]["a_to_b"]["forwarded"].as_u64() >= Some(10));
    let helper = pid_of(&lab, "w");
    let inits = (lab.init_start("c1"), lab.init_start("c2"));
    let daemons = st["switch"]["daemons"].clone();

    let out = lab.apply(&with("10ms"));
    assert!(out.contains("1 to update"), "{out}");
    let changed = Instant::now();
    // The new delay holds within a second: frames already under way keep theirs.
    std::thread::sleep(Duration::from_millis(300));
    let rtt = rtt_p50(&lab, "c1", "10.71.0.2", 10);
    assert!(changed.elapsed() < Duration::from_secs(3));
    assert!((9.0..20.0).contains(&rtt), "{rtt} ms");
    assert_eq!(pid_of(&lab, "w"), helper, "the helper kept its pid");
    assert_eq!((lab.init_start("c1"), lab.init_start("c2")), inits);
    assert_eq!(status(&lab)["switch"]["daemons"], daemons);
    assert_eq!(lab.diff_code(&with("10ms")), 0);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_dead_helper_is_drift_that_apply_repairs() {
    let lab = Lab::new("d-dead");
    let yaml = format!("{TWO_LANS}  w: {{kind: a2b, a: la, b: lb}}\n");
    lab.apply(&yaml);
    assert!(lab.ping("c1", "10.71.0.2"));
    let pid = pid_of(&lab, "w");
    let id = cloonix::host::process::Identity::of(pid as i32).unwrap();
    id.stop(Duration::from_secs(1)).unwrap();
    assert_eq!(lab.diff_code(&yaml), 2, "a dead helper shows in diff");
    assert_eq!(status(&lab)["endpoints"]["w"]["state"], "down");
    lab.apply(&yaml);
    assert_ne!(pid_of(&lab, "w"), pid);
    assert!(lab.ping_again("c1", "10.71.0.2"));
    assert_eq!(lab.diff_code(&yaml), 0);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_interrupted_apply_leaves_no_helper_behind() {
    let lab = Lab::new("d-sweep");
    let yaml = format!("{TWO_LANS}  w: {{kind: a2b, a: la, b: lb}}\n");
    let file = lab.file(&yaml);
    // Killed once its helper has started: destroy still stops it.
    lab.kill_after(&["apply", &file], "created a2b", 1);
    let out = lab.cloonix(&["destroy", "d-sweep"]);
    assert!(out.status.success());
    assert!(
        leftovers("d-sweep").is_empty(),
        "{:?}",
        leftovers("d-sweep")
    );
    lab.apply(&yaml);
    let out = lab.cloonix(&["destroy", "d-sweep"]);
    assert!(out.status.success());
    assert!(
        leftovers("d-sweep").is_empty(),
        "{:?}",
        leftovers("d-sweep")
    );
}

/// A master lab and a slave lab, their files joined by a c2c on `port`.
fn c2c_pair(m_name: &str, s_name: &str, port: u16) -> (Lab, Lab, String, String) {
    let master = Lab::new(m_name);
    let slave = Lab::new(s_name);
    let m = format!(
        "lans: [l]\nendpoints:\n  c1: {{kind: cnt, eth: [{{lan: l, ip: [10.72.0.1/24]}}]}}\n  x: {{kind: c2c, lan: l, role: master, peer: \"127.0.0.1:{port}\", peer_lab: {s_name}, peer_lan: l}}\n"
    );
    let s = format!(
        "lans: [l]\nendpoints:\n  c2: {{kind: cnt, eth: [{{lan: l, ip: [10.72.0.2/24]}}]}}\n  x: {{kind: c2c, lan: l, role: slave, port: {port}, peer_lab: {m_name}, peer_lan: l}}\n"
    );
    (master, slave, m, s)
}

fn link_state(lab: &Lab) -> String {
    status(lab)["endpoints"]["x"]["c2c"]["state"]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn two_labs_joined_by_c2c_ping_and_the_master_follows_its_peer() {
    let (master, slave, m, s) = c2c_pair("d-mst", "d-slv", 47311);
    master.apply(&m);
    slave.apply(&s);
    wait_for("the link up", Duration::from_secs(10), || {
        link_state(&master) == "up"
    });
    assert!(master.ping_again("c1", "10.72.0.2"));
    assert!(slave.ping("c2", "10.72.0.1"));
    let st = status(&master);
    let c = &st["endpoints"]["x"]["c2c"];
    assert_eq!(c["vni"], status(&slave)["endpoints"]["x"]["c2c"]["vni"]);
    assert!(c["frames_out"].as_u64() > Some(0));
    let helper = pid_of(&master, "x");
    let init = master.init_start("c1");

    assert!(slave.cloonix(&["destroy", "d-slv"]).status.success());
    wait_for("the master's link down", Duration::from_secs(10), || {
        link_state(&master) == "down"
    });
    assert_eq!(status(&master)["endpoints"]["x"]["state"], "down");

    slave.apply(&s);
    wait_for("the link up again", Duration::from_secs(10), || {
        link_state(&master) == "up"
    });
    assert!(master.ping_again("c1", "10.72.0.2"));
    assert_eq!(pid_of(&master, "x"), helper, "the master was not touched");
    assert_eq!(master.init_start("c1"), init);
    assert_eq!(master.diff_code(&m), 0);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_c2c_field_change_replaces_it() {
    let (master, slave, m, s) = c2c_pair("d-mst2", "d-slv2", 47313);
    master.apply(&m);
    slave.apply(&s);
    let before = pid_of(&master, "x");
    let m2 = m.replace("peer_lan: l}", "peer_lan: l2}");
    let out = master.apply(&m2);
    assert!(out.contains("replace"), "{out}");
    assert_ne!(pid_of(&master, "x"), before);
}

/// Bad data-plane input: exit 1, each error at its line and column.
#[test]
fn bad_a2b_and_c2c_input_is_refused_with_its_position() {
    let dir = std::env::temp_dir().join(format!("cloonix-d-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("a_to_b: {delay: -5ms}", "3:56", "delay"),
        ("a_to_b: {delay: 50}", "3:56", "delay"),
        ("b_to_a: {loss: 150%}", "3:55", "at most 100%"),
    ];
    for (imp, pos, word) in cases {
        let file = dir.join("a.yaml");
        std::fs::write(
            &file,
            format!(
                "name: d-bad\nlans: [l, m]\nendpoints: {{w: {{kind: a2b, a: l, b: m, {imp}}}}}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloonix"))
            .args(["validate", file.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{imp}: {err}");
        assert!(
            err.contains(&format!("a.yaml:{pos}: error:")),
            "{imp}: {err}"
        );
        assert!(err.contains(word), "{imp}: {err}");
    }
    let file = dir.join("c.yaml");
    std::fs::write(
        &file,
        "name: d-bad\nlans: [l]\nendpoints:\n  x: {kind: c2c, lan: l, role: master, peer_lab: o, peer_lan: l}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("c.yaml:4:6: error: a c2c master needs `peer`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_slave_beyond_loopback_needs_allow_host() {
    let lab = Lab::new("d-bind");
    let file = lab.file("lans: [l]\nendpoints:\n  x: {kind: c2c, lan: l, role: slave, port: 47312, bind: 0.0.0.0, peer_lab: o, peer_lan: l}\n");
    let out = lab.cloonix(&["apply", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lab.yaml:4:"), "{err}");
    assert!(err.contains("beyond loopback"), "{err}");
    assert!(leftovers("d-bind").is_empty());
}

/// The far side of a c2c master may be a kernel VXLAN device: here one in a namespace of
/// the test's own, reached over a host veth pair, set to the VNI the master shows.
#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_kernel_vxlan_device_can_be_the_far_side() {
    use std::process::Command;
    let ip = |args: &str| {
        Command::new("ip")
            .args(args.split_whitespace())
            .status()
            .unwrap()
            .success()
    };
    let _ = ip("netns del d-vxns");
    let pair = common::HostPair::new("d-vxh", "d-vxp", "10.74.0.1/24");
    assert!(ip("netns add d-vxns"));
    struct Ns;
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", "d-vxns"]).status();
        }
    }
    let _ns = Ns;
    assert!(ip("link set d-vxp netns d-vxns"));
    assert!(ip("-n d-vxns addr add 10.74.0.2/24 dev d-vxp"));
    assert!(ip("-n d-vxns link set d-vxp up"));
    let lab = Lab::new("d-kvx");
    lab.apply("lans: [l]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: l, ip: [10.75.0.1/24]}]}\n  x: {kind: c2c, lan: l, role: master, peer: \"10.74.0.2:4789\", peer_lab: kernel, peer_lan: vx}\n");
    let st = status(&lab);
    let c = &st["endpoints"]["x"]["c2c"];
    assert_eq!(
        c["local"], "10.74.0.1:4789",
        "it listens where the kernel sends"
    );
    let vni = c["vni"].as_u64().unwrap();
    assert!(ip(&format!(
        "-n d-vxns link add vx0 type vxlan id {vni} local 10.74.0.2 remote 10.74.0.1 dstport 4789"
    )));
    assert!(ip("-n d-vxns addr add 10.75.0.9/24 dev vx0"));
    assert!(ip("-n d-vxns link set vx0 up"));
    assert!(
        lab.ping_again("c1", "10.75.0.9"),
        "across the kernel's VXLAN"
    );
    // The kernel never answers keepalives; frames from it still count as word.
    assert_eq!(status(&lab)["endpoints"]["x"]["c2c"]["state"], "up");
    drop(pair);
}
