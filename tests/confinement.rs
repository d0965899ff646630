//! A shared demo cannot reach the host that runs it: each test probes one way out, from
//! inside a real container of a real lab. Every probe is harmless if the hole it looks
//! for is open: it writes back the value it just read, plants only inside its own lab's
//! directories, and the router advertisement it sends has router lifetime 0 and the
//! documentation prefix 2001:db8::/64, on an interface its lab removes.

mod common;

use common::{Lab, leftovers};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The capability bits of `CapEff:` in /proc/self/status.
fn cap_eff(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff line")
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

const SYS_MODULE: u64 = 1 << 16;
const SYS_PTRACE: u64 = 1 << 19;
const SYS_ADMIN: u64 = 1 << 21;
const MKNOD: u64 = 1 << 27;

/// Writes each sysctl's current value back to it: succeeds only where it is writable,
/// and changes nothing either way.
const REWRITE: &str = "for f in /proc/sys/kernel/core_pattern /proc/sys/vm/swappiness; do \
    v=$(cat $f); if printf '%s\\n' \"$v\" > $f 2>/dev/null; then echo \"$f writable\"; \
    else echo \"$f refused\"; fi; done";

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_ordinary_container_is_confined() {
    let lab = Lab::new("t-conf");
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 10.0.0.1/24}]}\n  b: {kind: cnt, eth: [{lan: l, ip: 10.0.0.2/24}]}\n");
    let (_, out) = lab.exec("a", REWRITE);
    assert!(
        out.contains("core_pattern refused") && out.contains("swappiness refused"),
        "{out}"
    );

    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let (code, out) = lab.exec(
        "a",
        "sysctl -w net.ipv4.ip_forward=1 && cat /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!((code, out.lines().last()), (0, Some("1")), "{out}");
    assert_eq!(
        lab.exec("b", "cat /proc/sys/net/ipv4/ip_forward").1,
        "0\n",
        "it leaked into b"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward,
        "it leaked into the host"
    );

    // Where cgroups hold a device allow-list, a node may be made but not opened (the
    // first loop device: read-only, one byte, if the hole were open); elsewhere, no node.
    // Made in /dev, a tmpfs without nodev, so that only the allow-list can refuse it.
    let held = cloonix::host::cgroups::held();
    let (code, out) = lab.exec(
        "a",
        "(mknod /dev/disk b 7 0 && head -c1 /dev/disk >/dev/null) 2>&1",
    );
    assert_ne!(code, 0, "a block device was made and opened: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, _) = lab.exec("a", "unshare -U true");
    assert_ne!(code, 0, "a user namespace was made");
    let (_, status) = lab.exec("a", "cat /proc/self/status");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let caps = cap_eff(&status);
    for (name, bit) in [
        ("SYS_PTRACE", SYS_PTRACE),
        ("SYS_ADMIN", SYS_ADMIN),
        ("SYS_MODULE", SYS_MODULE),
    ] {
        assert_eq!(caps & bit, 0, "{name} in CapEff {caps:x}");
    }
    assert_eq!(
        caps & MKNOD != 0,
        held,
        "MKNOD without a device allow-list, or the reverse"
    );
    // What a router needs still works: addresses, routes, raw sockets.
    assert!(lab.ping("a", "10.0.0.2"));
    let (code, out) = lab.exec("a", "ip route add 192.0.2.0/24 via 10.0.0.2 && ip route");
    assert_eq!(code, 0, "{out}");

    // Where cgroups cannot hold a device allow-list, apply and status say so.
    let status = lab.cloonix(&["status", "t-conf"]);
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).contains("containers run without cgroups here"),
        !held
    );

    // Its writes are on disk under the lab's state directory, and go with the lab.
    lab.exec("a", "echo data > /written");
    let upper = "/var/lib/cloonix/labs/t-conf/ep/a/upper/written";
    assert_eq!(std::fs::read_to_string(upper).unwrap(), "data\n");
    assert!(lab.cloonix(&["destroy", "t-conf"]).status.success());
    assert!(!std::path::Path::new("/var/lib/cloonix/labs/t-conf").exists());
    assert_eq!(leftovers("t-conf"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_privileged_container_with_allow_host_is_not_confined() {
    let lab = Lab::new("t-priv");
    let file =
        lab.file("lans: [l]\nendpoints:\n  a: {kind: cnt, privileged: true, eth: [{lan: l}]}\n");
    let out = lab.cloonix(&["apply", "--allow-host", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, out) = lab.exec("a", REWRITE);
    assert!(out.contains("core_pattern writable"), "{out}");
    let (_, status) = lab.exec("a", "cat /proc/self/status");
    assert!(status.contains("Seccomp:\t0"), "{status}");
    assert_ne!(cap_eff(&status) & SYS_ADMIN, 0);
    assert_eq!(lab.exec("a", "unshare -U true").0, 0);
}

#[test]
fn image_directories_that_would_inject_mount_options_are_refused() {
    let dir = std::env::temp_dir().join(format!("cloonix-inject-{}", std::process::id()));
    for d in ["x,upperdir=y", "img:etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let file = dir.join("lab.yaml");
    std::fs::write(
        &file,
        "name: t-inject\nendpoints:\n  a: {kind: cnt, image: \"./x,upperdir=y\"}\n  b: {kind: cnt, image: ./img:etc}\n  c: {kind: cnt, image: .}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(":3:25: error: image directory") && err.contains("has ','"),
        "{err}"
    );
    assert!(
        err.contains(":4:25: error: image directory") && err.contains("has ':'"),
        "{err}"
    );
    std::fs::write(
        &file,
        "name: t-inject\nendpoints:\n  c: {kind: cnt, image: .}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("needs --allow-host: image directory")
            && text.contains("the topology's own directory"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs cloonix, killing it if it takes longer than `limit` (a hang is a failure).
fn within(lab: &Lab, args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cloonix {args:?} of lab {} hung", lab.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_fifo_or_device_node_at_a_files_path_is_neither_written_nor_read() {
    let lab = Lab::new("t-plant");
    let path = "/etc/cloonix-test-plant";
    let yaml = format!(
        "lans: [l]\nendpoints:\n  a:\n    kind: cnt\n    eth: [{{lan: l}}]\n    files: {{{path}: {{content: \"one\\n\"}}}}\n"
    );
    lab.apply(&yaml);
    let status = lab.cloonix(&["status", "t-plant", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let pid = json["endpoints"]["a"]["pid"].as_i64().unwrap().to_string();
    let planted = format!("/var/lib/cloonix/labs/t-plant/ep/a/merged{path}");
    for (what, plant) in [("fifo", "mkfifo"), ("device", "mknod")] {
        // Planted through the container's own view of its root (its mount namespace and
        // root directory), as a process in it with MKNOD would: a FIFO, or the node of
        // /dev/null (harmless even if it were opened), at a path no host has.
        let node = if plant == "mkfifo" { "" } else { " c 1 3" };
        let cmd = format!("rm -f {path} && {plant} {path}{node}");
        let ok = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "--root", "sh", "-c", &cmd])
            .status()
            .unwrap();
        assert!(ok.success(), "{what}: could not plant it");
        let limit = Duration::from_secs(30);
        let (code, text) = within(&lab, &["status", "t-plant"], limit);
        assert!(code.is_some(), "{what}: {text}");
        let file = lab.file(&yaml.replace("one", "two"));
        let (code, text) = within(&lab, &["apply", &file], limit);
        assert_eq!(code, Some(1), "{what}: {text}");
        assert!(
            text.contains("cloonix writes only regular files"),
            "{what}: {text}"
        );
        let meta = std::fs::symlink_metadata(&planted).unwrap();
        assert!(!meta.is_file(), "{what}: it was replaced by a write");
    }
    let (code, text) = within(&lab, &["destroy", "t-plant"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(leftovers("t-plant"), Vec::<String>::new());
}

/// A router advertisement for 2001:db8::/64 with router lifetime 0, sent from the lab's
/// switch namespace out of the tap's peer: what a container on its lan would send.
const SEND_RA: &str = r#"
import socket, struct, sys
dev = sys.argv[1]
src_mac = bytes.fromhex("02aabbccddee")
src = bytes.fromhex("fe80000000000000" + "00aabbfffeccddee")
dst = bytes.fromhex("ff020000000000000000000000000001")
prefix = bytes.fromhex("20010db8000000000000000000000000")
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
pio = struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + prefix
body = ra + pio
pseudo = src + dst + struct.pack("!I3xB", len(body), 58)
s = 0
data = pseudo + body
for i in range(0, len(data), 2):
    s += (data[i] << 8) + data[i + 1]
while s >> 16:
    s = (s & 0xFFFF) + (s >> 16)
body = body[:2] + struct.pack("!H", ~s & 0xFFFF) + body[4:]
ip6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src + dst
eth = bytes.fromhex("333300000001") + src_mac + b"\x86\xdd"
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((dev, 0))
for _ in range(3):
    sock.send(eth + ip6 + body)
"#;

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_router_advertisement_from_the_lab_leaves_the_host_unchanged() {
    let lab = Lab::new("t-ra");
    lab.apply("lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: ra-tap0, ip: 10.79.0.1/24}\n");
    for key in ["accept_ra", "autoconf", "accept_redirects"] {
        let v = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/ra-tap0/{key}")).unwrap();
        assert_eq!(v.trim(), "0", "{key}");
    }
    let sent = Command::new("ip")
        .args([
            "netns",
            "exec",
            "cloonix_t-ra",
            "python3",
            "-c",
            SEND_RA,
            "t.tap",
        ])
        .status()
        .unwrap();
    assert!(sent.success());
    std::thread::sleep(Duration::from_millis(500));
    let addrs = Command::new("ip")
        .args(["-6", "addr", "show", "dev", "ra-tap0"])
        .output()
        .unwrap();
    let routes = Command::new("ip")
        .args(["-6", "route", "show", "dev", "ra-tap0"])
        .output()
        .unwrap();
    let (addrs, routes) = (
        String::from_utf8_lossy(&addrs.stdout),
        String::from_utf8_lossy(&routes.stdout),
    );
    assert!(
        !addrs.contains("2001:db8"),
        "the advertisement configured an address: {addrs}"
    );
    assert!(
        !routes.contains("2001:db8"),
        "the advertisement added a route: {routes}"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_tap_address_over_the_hosts_own_networks_needs_allow_host() {
    let lab = Lab::new("t-over");
    // The host's own network here is the test's bait, in TEST-NET-2: if the check were
    // missing, the tap would only share a documentation network with it.
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    ip(&["link", "del", "ov-bait0"]);
    assert!(
        ip(&[
            "link", "add", "ov-bait0", "type", "veth", "peer", "name", "ov-bait1"
        ])
        .success()
    );
    assert!(ip(&["addr", "add", "198.51.100.1/24", "dev", "ov-bait0"]).success());
    let file = lab.file(
        "lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: ov-tap0, ip: 198.51.100.9/24}\n",
    );
    let out = lab.cloonix(&["apply", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "4:45: error: tap address 198.51.100.9/24 overlaps 198.51.100.1/24 of host interface ov-bait0"
        ) && err.contains("--allow-host"),
        "{err}"
    );
    assert_eq!(leftovers("t-over"), Vec::<String>::new());
    let out = lab.cloonix(&["apply", "--allow-host", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Applied again, its own address does not count against it.
    let out = lab.cloonix(&["apply", "--allow-host", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ip(&["link", "del", "ov-bait0"]);
    // Address space someone may route publicly needs the flag too. Class E (reserved,
    // routed by nobody) stands for it: if the check were missing, no one's traffic moves.
    let public = lab.dir.join("public.yaml");
    std::fs::write(
        &public,
        "name: t-over\nlans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: ov-tap1, ip: 240.0.0.1/24}\n",
    )
    .unwrap();
    let public = public.display().to_string();
    let out = lab.cloonix(&["apply", &public]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tap address 240.0.0.1/24 is not in private address space"),
        "{err}"
    );
    let out = lab.cloonix(&["apply", &file]);
    assert!(
        out.status.success(),
        "its own address and route counted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The file of a container's cgroups that holds `v2` on cgroup2 (crun's) or `v1` in the
/// v1 hierarchy `controller` (cloonix's own), read.
fn cgroup_value(lab: &str, ep: &str, controller: &str, v1: &str, v2: &str) -> String {
    let unified = format!("/sys/fs/cgroup/cloonix/{lab}/{ep}/{v2}");
    let own = format!("/sys/fs/cgroup/{controller}/cloonix/{lab}/{ep}/{v1}");
    std::fs::read_to_string(&unified)
        .or_else(|_| std::fs::read_to_string(&own))
        .unwrap_or_else(|e| panic!("neither {unified} nor {own}: {e}"))
        .trim()
        .to_string()
}

#[test]
#[cfg_attr(
    any(cloonix_not_root, cloonix_no_cgroups),
    ignore = "needs root and cgroups: cgroup2 with CAP_SYS_RESOURCE, or v1 pids, memory, cpu and devices hierarchies"
)]
fn where_cgroups_hold_devices_are_allow_listed_and_limits_enforced() {
    let lab = Lab::new("t-cgroup");
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, cpu: 0.5, ram: 64, eth: [{lan: l}]}\n  b: {kind: cnt, eth: [{lan: l}]}\n");
    let value = |ep, c, v1, v2| cgroup_value("t-cgroup", ep, c, v1, v2);
    let ram = value("a", "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(ram, (64u64 << 20).to_string());
    let cpu = value("a", "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(cpu == "50000" || cpu == "50000 100000", "{cpu}");
    assert_eq!(value("b", "pids", "pids.max", "pids.max"), "1024");

    // MKNOD is given, and the allow-list keeps what it makes from being opened (a read
    // of one byte of the first loop device, if it did not).
    // In /dev, a tmpfs without nodev: only the allow-list refuses it, with EPERM.
    let (code, out) = lab.exec("a", "(mknod /dev/disk b 7 0 && head -c1 /dev/disk) 2>&1");
    assert_ne!(code, 0, "a block device was opened: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(
        lab.exec("a", "mknod /dev/null2 c 1 3 && echo x > /dev/null2")
            .0,
        0
    );
    // The pids limit stops a fork loop (of 1,100 sleeps at most: harmless without it),
    // and the loop runs in b's cgroups (an exec joins them). The sleeps hold no pipe of
    // the exec's open, and go with the lab.
    lab.exec(
        "b",
        "i=0; while [ $i -lt 1100 ]; do sleep 600 >/dev/null 2>&1 & i=$((i+1)); done 2>/dev/null",
    );
    let current: u32 = value("b", "pids", "pids.current", "pids.current")
        .parse()
        .unwrap();
    assert!(
        (1000..=1024).contains(&current),
        "{current} processes in b's cgroup: the loop ran elsewhere, or past the limit"
    );
    // The memory limit stops a process that grows past it (to 96 MiB at most).
    let (code, out) = lab.exec("a", "head -c 100663296 /dev/zero | tail > /dev/null");
    assert_ne!(code, 0, "96 MiB held under a 64 MiB limit: {out}");

    let status = lab.cloonix(&["status", "t-cgroup"]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("without cgroups"));
    // An exec still running (its crun on the host side is in the cgroups too) does not
    // keep them from going with the lab.
    let mut running = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["exec", "t-cgroup", "a", "--", "sleep", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let destroyed = lab.cloonix(&["destroy", "t-cgroup"]);
    let _ = running.kill();
    let _ = running.wait();
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stdout)
    );
    assert_eq!(leftovers("t-cgroup"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn what_containers_write_is_out_of_local_users_reach() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("t-private");
    // Widened by hand (as an older cloonix made them): apply makes them private again.
    for root in ["/run/cloonix", "/var/lib/cloonix"] {
        std::fs::create_dir_all(root).unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l}]}\n");
    for root in ["/run/cloonix", "/var/lib/cloonix"] {
        let mode = std::fs::metadata(root).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{root} is {mode:o}");
    }
    // A setuid program made in the container sits where no local user can get to it.
    assert_eq!(
        lab.exec("a", "cp /bin/busybox /sushi && chmod 4755 /sushi")
            .0,
        0
    );
    let upper = "/var/lib/cloonix/labs/t-private/ep/a/upper/sushi";
    assert!(std::path::Path::new(upper).exists());
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "stat",
            upper,
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !nobody.success(),
        "an unprivileged user reached the container's setuid program"
    );
}

/// cloonix compiles the seccomp profile to BPF once and hands crun the program in the
/// annotation `run.oci.seccomp_bpf_data`. A wrong translation of the profile must show:
/// what the profile refuses is refused with its errno (EPERM, the profile's
/// `defaultErrnoRet`), what an argument condition allows works, and crun's own compile of
/// the same `linux.seccomp` section gives the very program the container runs under.
/// Harmless with no filter at all: `unshare -U true` makes a user namespace only for
/// `true`, and `linux32 -R true` turns off address randomisation only for `true`.
#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn the_precompiled_seccomp_filter_is_the_profile() {
    use base64::Engine;
    let lab = Lab::new("s-seccomp");
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 10.0.0.1/24}]}\n");

    // Not in the profile's allow list without SYS_ADMIN: the default action, EPERM.
    let (code, out) = lab.exec("a", "unshare -U true 2>&1");
    assert_ne!(code, 0, "a user namespace was made: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // personality is allowed for a few values only (SCMP_CMP_EQ on argument 0):
    // PER_LINUX32 (8) is one of them, PER_LINUX32|ADDR_NO_RANDOMIZE (0x40008) is not.
    let (code, out) = lab.exec("a", "linux32 true 2>&1");
    assert_eq!(code, 0, "personality(PER_LINUX32) refused: {out}");
    let (code, out) = lab.exec("a", "linux32 -R true 2>&1");
    assert_ne!(code, 0, "personality(0x40008) allowed: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // And ordinary syscalls work.
    let (code, out) = lab.exec("a", "linux64 uname -m && echo ok > /tmp/x && cat /tmp/x");
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("ok\n"), "{out}");

    // The program crun loaded is the annotation's, and is what crun itself compiles from
    // the section beside it.
    let host = cloonix::host::Lab::new("s-seccomp");
    let state = host.crun_root().join(host.container_id("a"));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("config.json")).unwrap()).unwrap();
    let data = config["annotations"]["run.oci.seccomp_bpf_data"]
        .as_str()
        .expect("the annotation is set");
    let program = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let loaded = std::fs::read(state.join("seccomp.bpf")).unwrap();
    assert_eq!(
        program, loaded,
        "crun did not load the annotation's program"
    );
    assert_eq!(
        crun_compiles(&config, &lab.dir),
        loaded,
        "crun's own compile of the section differs"
    );
}

/// The program crun 1.8 compiles from `config`'s `linux.seccomp` section: a container made
/// (never started) from the config without the annotation and without cgroups, in a crun
/// root of its own under `dir`; crun writes the program to its state before the start.
fn crun_compiles(config: &serde_json::Value, dir: &std::path::Path) -> Vec<u8> {
    let mut config = config.clone();
    config.as_object_mut().unwrap().remove("annotations");
    let linux = config["linux"].as_object_mut().unwrap();
    linux.remove("cgroupsPath");
    linux.remove("resources");
    let bundle = dir.join("crun-compiles");
    let root = dir.join("crun-root");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let id = "s-seccomp-crun-compiles";
    // crun 1.8 refuses a hybrid cgroup layout without cgroups unless it sees cgroup2, as
    // cloonix's own start does it: in a mount namespace of its own.
    let script = format!(
        "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && \
         crun --cgroup-manager=disabled --root {root} create --bundle {bundle} {id} && \
         cp {root}/{id}/seccomp.bpf {dir}/crun.bpf; \
         s=$?; crun --cgroup-manager=disabled --root {root} delete -f {id}; exit $s",
        root = root.display(),
        bundle = bundle.display(),
        dir = dir.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("crun.bpf")).unwrap()
}
