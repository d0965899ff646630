//! The endpoints through which a lab meets its host: a tap (an interface on the host) and
//! a phy (a host interface borrowed into the lab and given back), on the real host.
//! The interfaces the tests borrow or collide with are their own veth pairs.

mod common;

use common::{HostPair, Lab, busybox, leftovers};
use std::process::{Command, Stdio};

const TAP: &str = "lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: hf-tap0, ip: 10.81.0.1/24}\n  a:\n    kind: cnt\n    eth: [{lan: l, ip: 10.81.0.2/24}]\n    files: {/www/index.html: {content: \"hello\\n\"}}\n    run: [\"httpd -p 80 -h /www\"]\n";

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn the_host_reaches_a_container_through_a_tap_and_back() {
    let lab = Lab::new("t-tapnet");
    lab.apply(TAP);
    let ping = busybox(&["ping", "-c", "1", "-W", "2", "10.81.0.2"]);
    assert!(
        ping.status.success(),
        "the host does not reach the container"
    );
    let page = Command::new("/bin/busybox")
        .args(["nc", "-w", "3", "10.81.0.2", "80"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    page.stdin
        .as_ref()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = page.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello"),
        "TCP host → container"
    );
    // And the other way: a listener of the host's. busybox nc binds without SO_REUSEADDR,
    // so a port of the last run may still be in TIME_WAIT: a port of this run's own.
    let port = (20_000 + std::process::id() % 20_000).to_string();
    // Its stdin a pipe kept open: at end of input busybox nc would close the connection
    // as soon as it accepts it, sometimes before the peer's line has come.
    let mut listener = Command::new("/bin/busybox")
        .args(["nc", "-l", "-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Tried until the host's listener has the line: it takes a moment to bind, and it
    // takes one connection only, so what counts is what it received.
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        lab.exec(
            "a",
            &format!("echo from-the-lab | nc -w 2 10.81.0.1 {port}"),
        );
        if listener.try_wait().unwrap().is_some() {
            break;
        }
    }
    let _ = listener.kill();
    let got = listener.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("from-the-lab"),
        "TCP container → host"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_tap_changes_live() {
    let lab = Lab::new("t-tapedit");
    lab.apply(
        &TAP.replace("10.81.", "10.84.")
            .replace("hf-tap0", "hf-tap1"),
    );
    let start = lab.init_start("a");
    // A new address: in place.
    let two = TAP
        .replace("10.81.", "10.84.")
        .replace("hf-tap0", "hf-tap1")
        .replace("ip: 10.84.0.1/24}", "ip: [10.84.0.1/24, 10.82.0.1/24]}");
    let out = lab.apply(&two);
    assert!(out.contains("~ endpoint t (update in place)"), "{out}");
    let addrs = Command::new("ip")
        .args(["-o", "addr", "show", "dev", "hf-tap1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addrs.stdout).contains("10.82.0.1/24"));
    // A new name: made anew under it; the old one is gone from the host.
    let renamed = two.replace("hf-tap1", "hf-tap8");
    let out = lab.apply(&renamed);
    assert!(
        out.contains("-/+ endpoint t (replace: name hf-tap1 → hf-tap8)"),
        "{out}"
    );
    assert!(
        !Command::new("ip")
            .args(["link", "show", "hf-tap1"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    assert!(
        busybox(&["ping", "-c", "1", "-W", "2", "10.84.0.2"])
            .status
            .success()
    );
    assert_eq!(lab.init_start("a"), start, "the container was restarted");
    // Deleted behind cloonix's back: drift, repaired.
    assert!(
        Command::new("ip")
            .args(["link", "del", "hf-tap8"])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(lab.diff_code(&renamed), 2);
    lab.apply(&renamed);
    assert!(
        busybox(&["ping", "-c", "3", "-W", "2", "10.84.0.2"])
            .status
            .success()
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_device_that_cannot_move_is_refused_untouched() {
    let lab = Lab::new("t-phybr");
    // A Linux bridge of the test's own: it cannot leave its namespace.
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    ip(&["link", "del", "hf-br0"]);
    assert!(ip(&["link", "add", "hf-br0", "type", "bridge"]));
    assert!(ip(&["addr", "add", "198.51.100.201/32", "dev", "hf-br0"]));
    assert!(ip(&["link", "set", "hf-br0", "alias", "bridge-alias"]));
    assert!(ip(&["link", "set", "hf-br0", "up"]));
    let state = || {
        let out = Command::new("ip")
            .args(["-d", "-o", "link", "show", "hf-br0"])
            .output()
            .unwrap();
        let addr = Command::new("ip")
            .args(["-o", "addr", "show", "hf-br0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&addr.stdout)
    };
    let file = lab.file(&phy_lab("hf-br0"));
    for _ in 0..2 {
        let out = lab.cloonix(&["apply", "--allow-host", &file]);
        assert_eq!(out.status.code(), Some(1));
        let s = state();
        assert!(
            s.contains("alias bridge-alias")
                && s.contains("198.51.100.201/32")
                && s.contains(",UP"),
            "{s}"
        );
    }
    assert!(lab.cloonix(&["destroy", "t-phybr"]).status.success());
    let s = state();
    assert!(
        s.contains("alias bridge-alias") && s.contains(",UP"),
        "destroy touched the bridge: {s}"
    );
    ip(&["link", "del", "hf-br0"]);
}

fn phy_lab(device: &str) -> String {
    format!(
        "lans: [l]\nendpoints:\n  p: {{kind: phy, lan: l, device: {device}}}\n  a: {{kind: cnt, eth: [{{lan: l, ip: 10.83.0.2/24}}]}}\n"
    )
}

/// How the phy's host end looks while the host has it: name, MTU, state, alias, address.
fn as_given(pair: &HostPair) -> String {
    let d = pair.describe();
    assert!(d.contains("198.51.100.200/32"), "{d}");
    assert!(
        d.contains("mtu 1400") && d.contains("alias user-alias") && d.contains("state"),
        "{d}"
    );
    d
}

fn borrowed_pair() -> HostPair {
    let pair = HostPair::new("hf-phy0", "hf-phy1", "198.51.100.200/32");
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    ip(&["link", "set", "hf-phy0", "mtu", "1400"]);
    ip(&["link", "set", "hf-phy0", "alias", "user-alias"]);
    ip(&["addr", "add", "10.83.0.1/24", "dev", "hf-phy1"]);
    pair
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_phy_carries_traffic_and_goes_back_as_it_was() {
    let lab = Lab::new("t-phy");
    let pair = borrowed_pair();
    as_given(&pair);
    let file = lab.file(&phy_lab("hf-phy0"));
    let out = lab.cloonix(&["apply", &file]);
    assert_eq!(out.status.code(), Some(1), "a phy without --allow-host");
    assert!(String::from_utf8_lossy(&out.stderr).contains("host interface `hf-phy0` borrowed"));
    assert_eq!(leftovers("t-phy"), Vec::<String>::new());
    let out = lab.cloonix(&["apply", "--allow-host", &file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !pair.describe().contains("hf-phy0"),
        "it is still on the host"
    );
    assert!(
        lab.ping("a", "10.83.0.1"),
        "the lab reaches the host's end through the phy"
    );
    let out = lab.cloonix(&["destroy", "t-phy"]);
    assert!(out.status.success());
    as_given(&pair);
    assert_eq!(leftovers("t-phy"), Vec::<String>::new());

    // Killed part-way through applies, it still goes back at destroy.
    for made in [1, 2, 4, 6] {
        lab.kill_after(&["apply", "--allow-host", &file], "created", made);
        let out = lab.cloonix(&["destroy", "t-phy"]);
        assert!(out.status.success(), "killed after {made}");
        let d = pair.describe();
        assert!(
            d.contains("hf-phy0"),
            "killed after {made}: not given back: {d}"
        );
        assert_eq!(
            leftovers("t-phy"),
            Vec::<String>::new(),
            "killed after {made}"
        );
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_phy_that_is_not_there_is_refused_touching_nothing() {
    let lab = Lab::new("t-nophy");
    let file = lab.file(&phy_lab("hf-none0"));
    let out = lab.cloonix(&["apply", "--allow-host", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(":4:34: error: host interface `hf-none0` does not exist"),
        "{err}"
    );
    assert_eq!(leftovers("t-nophy"), Vec::<String>::new());
}

/// A process of the test's own, killed when dropped.
struct Own(std::process::Child);

impl Drop for Own {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str]) -> Own {
    Own(Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_nat_gives_a_lease_a_resolver_and_the_hosts_loopback() {
    let lab = Lab::new("t-nat");
    // The test's own web server and resolver, on the host's loopback only.
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "from-the-host\n").unwrap();
    let _web = spawn(
        "python3",
        &[
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            www.to_str().unwrap(),
            "18091",
        ],
    );
    let _dns = spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=15391",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--address=/web.test/172.17.0.2",
            "--local=/test/",
            "--pid-file=",
        ],
    );
    let yaml = "lans: [l]\nendpoints:\n  gw: {kind: nat, lan: l, dns: [\"127.0.0.1:15391\"]}\n  a: {kind: cnt, eth: [{lan: l}]}\n";
    lab.apply(yaml);
    let (code, out) = lab.exec(
        "a",
        "udhcpc -i eth0 -q -n -t 5 && ip -4 addr show eth0 && ip route && cat /etc/resolv.conf",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("inet 172.17.0.10/24"), "{out}");
    assert!(out.contains("default via 172.17.0.2"), "{out}");
    assert!(out.contains("nameserver 172.17.0.3"), "{out}");
    let fetch = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web.test 18091";
    let mut page = String::new();
    for _ in 0..20 {
        page = lab.exec("a", fetch).1;
        if page.contains("from-the-host") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        page.contains("from-the-host"),
        "no page through the nat: {page}"
    );
    // Straight at the uplink's view of the host's loopback, the same server is out of reach:
    // the gateway's TCP is the one way in. (The probe is a GET to the test's own server.)
    let (_, direct) = lab.exec(
        "a",
        "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 10.0.2.2 18091",
    );
    assert!(
        !direct.contains("from-the-host"),
        "the host's loopback answered at 10.0.2.2: {direct}"
    );

    // Its DHCP and DNS server killed behind cloonix's back: drift, restarted by apply.
    let record = std::fs::read_to_string("/run/cloonix/t-nat/intent/nat@gw.json").unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let pid = record["receipt"]["dhcp_dns"]["pid"].as_i64().unwrap() as i32;
    cloonix::host::process::Identity::of(pid)
        .unwrap()
        .stop(std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(lab.diff_code(yaml), 2, "a dead dnsmasq is drift");
    lab.apply(yaml);
    let (code, out) = lab.exec("a", "udhcpc -i eth0 -q -n -t 5");
    assert_eq!(code, 0, "no lease after the repair: {out}");

    let out = lab.cloonix(&["destroy", "t-nat"]);
    assert!(out.status.success());
    assert_eq!(leftovers("t-nat"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_nat_killed_while_starting_leaves_nothing_after_destroy() {
    let lab = Lab::new("t-natkill");
    let file = lab.file(
        "lans: [l]\nendpoints:\n  gw: {kind: nat, lan: l}\n  a: {kind: cnt, eth: [{lan: l}]}\n",
    );
    for made in [2, 4, 6, 8] {
        lab.kill_after(&["apply", &file], "created", made);
        let out = lab.cloonix(&["destroy", "t-natkill"]);
        assert!(out.status.success(), "killed after {made}");
        assert_eq!(
            leftovers("t-natkill"),
            Vec::<String>::new(),
            "killed after {made}"
        );
    }
}
