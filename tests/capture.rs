//! `cloonix capture` on real labs: what it writes is read by tcpdump and tshark (the
//! reader Wireshark shares), it stops cleanly on a signal, a closed stdout and `-c N`, its
//! mirror is gone after it ends (and, when it was killed, after the next apply), a lan
//! with `spy: false` refuses it, and it cannot change the lab's traffic. Also `cloonix
//! graph` of a running lab. Labs and names start with `g-`.

mod common;

use common::Lab;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TWO: &str = "lans: [lan1]
endpoints:
  a: {kind: cnt, eth: [{lan: lan1, ip: 10.0.0.1/24}]}
  b: {kind: cnt, eth: [{lan: lan1, ip: 10.0.0.2/24}]}
";

fn cloonix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloonix"))
}

/// A capture running in the background, writing to a file of its own.
struct Capture {
    child: Child,
    pub file: PathBuf,
}

impl Capture {
    /// Starts `cloonix capture LAB TARGET -w FILE ARGS` and waits until it captures: its
    /// header is in the file (written once its port is up and listened to; another
    /// capture's mirror would not say this one is there).
    fn start(lab: &Lab, target: &str, args: &[&str]) -> Capture {
        let file = lab.dir.join(format!("{}.pcap", target.replace('.', "-")));
        let child = cloonix()
            .args(["capture", &lab.name, target, "-w"])
            .arg(&file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::fs::metadata(&file).map_or(0, |m| m.len()) < 24 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the capture did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!mirrors(&lab.name).is_empty());
        Capture { child, file }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, by its pid, which we have not waited for yet.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the capture to end (at most `within`): its exit code and stderr.
    fn wait(mut self, within: Duration) -> (i32, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("the capture did not end within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.code().unwrap_or(-1), err)
    }
}

/// The capture mirrors and ports of a lab's OVSDB (empty when it has no database).
fn mirrors(lab: &str) -> Vec<String> {
    let lab = cloonix::host::Lab::new(lab);
    match lab.db() {
        Ok(mut db) => cloonix::host::mirror::list(&mut db)
            .unwrap()
            .into_iter()
            .map(|r| r.ifname)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The interfaces of the lab's switch namespace that captures made.
fn capture_devices(lab: &str) -> Vec<String> {
    cloonix::host::link::dump(Some(&format!("cloonix_{lab}")))
        .unwrap()
        .into_keys()
        .filter(|n| n.starts_with("cx_"))
        .collect()
}

/// A pcap file as a reader decodes it, one line per frame.
fn read_with(reader: &str, file: &Path) -> String {
    let out = match reader {
        "tcpdump" => Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(file)
            .output(),
        _ => Command::new("tshark").arg("-r").arg(file).output(),
    }
    .unwrap_or_else(|e| panic!("{reader}: {e} (./run installs it)"));
    assert!(
        out.status.success(),
        "{reader} cannot read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_lan_capture_is_read_by_tcpdump_and_tshark_and_leaves_nothing() {
    let lab = Lab::new("g-cap1");
    lab.apply(TWO);
    let cap = Capture::start(&lab, "lan1", &[]);
    let file = cap.file.clone();
    assert!(lab.ping_again("a", "10.0.0.2"));
    cap.signal(libc::SIGINT);
    let (code, err) = cap.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("packets captured"), "{err}");
    let tcpdump = read_with("tcpdump", &file);
    assert!(
        tcpdump.contains("10.0.0.1 > 10.0.0.2: ICMP echo request"),
        "{tcpdump}"
    );
    assert!(
        tcpdump.contains("10.0.0.2 > 10.0.0.1: ICMP echo reply"),
        "{tcpdump}"
    );
    let tshark = read_with("tshark", &file);
    assert!(tshark.contains("Echo (ping) request"), "{tshark}");
    let counted: usize = err
        .lines()
        .find_map(|l| l.strip_suffix(" packets captured")?.parse().ok())
        .unwrap_or_else(|| panic!("no count: {err}"));
    assert_eq!(
        tcpdump.lines().count(),
        counted,
        "the count on stderr is the file's"
    );
    assert!(mirrors(&lab.name).is_empty(), "{:?}", mirrors(&lab.name));
    assert!(capture_devices(&lab.name).is_empty());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn count_stops_after_n_frames_and_sigterm_stops_cleanly() {
    let lab = Lab::new("g-cap2");
    lab.apply(TWO);
    let cap = Capture::start(&lab, "a.eth0", &["-c", "5"]);
    let file = cap.file.clone();
    lab.exec("a", "ping -c 6 -i 0.2 10.0.0.2");
    let (code, err) = cap.wait(Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("5 packets captured"), "{err}");
    assert_eq!(read_with("tcpdump", &file).lines().count(), 5);
    assert!(mirrors(&lab.name).is_empty());

    let cap = Capture::start(&lab, "lan1", &[]);
    cap.signal(libc::SIGTERM);
    let (code, err) = cap.wait(Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    assert!(mirrors(&lab.name).is_empty());
    assert!(capture_devices(&lab.name).is_empty());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_closed_stdout_ends_the_capture_even_while_the_lan_is_quiet() {
    let lab = Lab::new("g-cap3");
    lab.apply(TWO);
    let mut child = cloonix()
        .args(["capture", &lab.name, "lan1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The pcap header comes first, at once; then the reader leaves.
    let mut header = [0u8; 24];
    child
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(&header[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still capturing");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(mirrors(&lab.name).is_empty());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_killed_capture_leaves_a_mirror_that_the_next_apply_removes() {
    let lab = Lab::new("g-cap4");
    lab.apply(TWO);
    let cap = Capture::start(&lab, "lan1", &[]);
    cap.signal(libc::SIGKILL);
    let _ = cap.wait(Duration::from_secs(10));
    assert_eq!(mirrors(&lab.name).len(), 1, "SIGKILL leaves the mirror");
    assert_eq!(capture_devices(&lab.name).len(), 1);
    // Observe counts it as the lab's, not as drift: the plan is empty.
    let out = lab.apply(TWO);
    assert!(out.contains("No changes."), "{out}");
    assert!(out.contains("removed what killed captures left"), "{out}");
    assert!(mirrors(&lab.name).is_empty());
    assert!(capture_devices(&lab.name).is_empty());
    assert!(lab.ping_again("a", "10.0.0.2"));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_port_capture_sees_its_port_only_and_no_capture_changes_the_traffic() {
    let lab = Lab::new("g-cap5");
    lab.apply(&format!(
        "{TWO}  c: {{kind: cnt, eth: [{{lan: lan1, ip: 10.0.0.3/24}}]}}\n"
    ));
    let on_a = Capture::start(&lab, "a.eth0", &[]);
    let all = Capture::start(&lab, "lan1", &[]);
    let (a_file, all_file) = (on_a.file.clone(), all.file.clone());
    // Frames sent out of the capture ports, as if the host spoke on them: OVS drops them.
    inject(
        &format!("cloonix_{}", lab.name),
        &capture_devices(&lab.name),
        50,
    );
    assert!(lab.ping_again("b", "10.0.0.3"));
    assert!(lab.ping_again("a", "10.0.0.2"));
    for cap in [on_a, all] {
        cap.signal(libc::SIGINT);
        assert_eq!(cap.wait(Duration::from_secs(10)).0, 0);
    }
    let a = read_with("tcpdump", &a_file);
    assert!(a.contains("10.0.0.1 > 10.0.0.2: ICMP echo request"), "{a}");
    assert!(!a.contains("10.0.0.3: ICMP"), "b to c is not a's: {a}");
    let everything = read_with("tcpdump", &all_file);
    assert!(
        everything.contains("10.0.0.2 > 10.0.0.3: ICMP echo request"),
        "{everything}"
    );
    for text in [&a, &everything] {
        assert!(
            !text.contains("0x88b5"),
            "an injected frame got into the lan: {text}"
        );
    }
}

/// Sends `n` broadcast frames of the local experimental ethertype 0x88b5 out of each of
/// `devices` in namespace `ns`.
fn inject(ns: &str, devices: &[String], n: usize) {
    for dev in devices {
        let name = std::ffi::CString::new(dev.as_str()).unwrap();
        cloonix::host::netns::within(ns, move || {
            // SAFETY: a packet socket of our own, closed on return; plain syscalls.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0);
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                addr.sll_family = libc::AF_PACKET as u16;
                addr.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
                addr.sll_halen = 6;
                addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
                let mut frame = vec![0xffu8; 6];
                frame.extend([0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5]);
                frame.extend([0x78; 50]);
                for _ in 0..n {
                    let sent = libc::sendto(
                        fd,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        size_of::<libc::sockaddr_ll>() as u32,
                    );
                    assert_eq!(
                        sent,
                        frame.len() as isize,
                        "{}",
                        std::io::Error::last_os_error()
                    );
                }
                libc::close(fd);
            }
            Ok(())
        })
        .unwrap();
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn spy_false_refuses_a_capture_and_ends_a_running_one() {
    let lab = Lab::new("g-cap6");
    lab.apply(TWO);
    let running = Capture::start(&lab, "a.eth0", &[]);
    lab.apply(&TWO.replace("lans: [lan1]", "lans: {lan1: {spy: false}}"));
    let (code, err) = running.wait(Duration::from_secs(10));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("closed to capture"), "{err}");
    assert!(mirrors(&lab.name).is_empty());
    for target in ["lan1", "a.eth0"] {
        let out = lab.cloonix(&["capture", &lab.name, target, "-w", "/dev/null"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("lan lan1 of lab g-cap6 is closed to capture (spy: false)"),
            "{err}"
        );
    }
    assert!(
        mirrors(&lab.name).is_empty(),
        "a refused capture touched nothing"
    );
    let out = lab.cloonix(&["capture", &lab.name, "lan9", "-w", "/dev/null"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no lan lan9; its lans: lan1"));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn destroy_ends_a_running_capture() {
    let lab = Lab::new("g-cap7");
    lab.apply(TWO);
    let cap = Capture::start(&lab, "lan1", &[]);
    assert!(lab.cloonix(&["destroy", &lab.name]).status.success());
    let (code, err) = cap.wait(Duration::from_secs(10));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("capture stopped"), "{err}");
    assert!(
        common::leftovers(&lab.name).is_empty(),
        "{:?}",
        common::leftovers(&lab.name)
    );
}

/// Each shipped demo's own traffic, read by tshark: OSPF hellos where it runs OSPF (they
/// come by themselves, on a lan between two FRR routers), else the ICMP of a ping across
/// its first lan. The demos that ship later are covered as they land.
#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn shipped_demos_show_their_own_traffic_in_tshark() {
    for (i, path) in shipped().into_iter().enumerate() {
        let text = std::fs::read_to_string(&path).unwrap();
        let loaded = cloonix::model::load(&path).unwrap();
        let t = loaded.topology;
        if t.endpoints.len() > 8 {
            continue; // the large benchmark demos: their small siblings show the same
        }
        if !loaded.host_items.is_empty() {
            continue; // needs --allow-host (privileged FRR): not run by the suite
        }
        let lab = Lab::new(&format!("g-demo{i}"));
        // A copy with the lab's name, beside a copy of what its `source:` paths name.
        let dir = lab.dir.join("demo");
        copy_dir(path.parent().unwrap(), &dir);
        let file = dir.join(path.file_name().unwrap());
        let renamed = text.replacen(
            &format!("name: {}", t.name),
            &format!("name: {}", lab.name),
            1,
        );
        std::fs::write(&file, renamed).unwrap();
        let out = lab.cloonix(&["apply", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let routers = lan_of_routers(&t);
        let lan = routers
            .clone()
            .unwrap_or_else(|| t.lans.keys().next().unwrap().clone());
        let cap = Capture::start(&lab, &lan, &[]);
        let file = cap.file.clone();
        if routers.is_some() {
            std::thread::sleep(Duration::from_secs(25)); // two hello intervals
        } else {
            let (from, to) = pair_on(&t, &lan);
            assert!(lab.ping_again(&from, &to));
        }
        cap.signal(libc::SIGINT);
        let (code, err) = cap.wait(Duration::from_secs(10));
        assert_eq!(code, 0, "{}: {err}", path.display());
        let tshark = read_with("tshark", &file);
        let expected = match routers {
            Some(_) => "Hello Packet",
            None => "Echo (ping) request",
        };
        assert!(tshark.contains(expected), "{}: {tshark}", path.display());
    }
}

/// A lan between two or more containers whose image is built with FRR, if there is one.
fn lan_of_routers(t: &cloonix::model::Topology) -> Option<String> {
    let frr = |image: &str| {
        t.images
            .get(image)
            .is_some_and(|i| i.debian.packages.iter().any(|p| p == "frr"))
    };
    let on = |lan: &str| -> Vec<bool> {
        t.endpoints
            .values()
            .filter_map(|ep| match ep {
                cloonix::model::Endpoint::Cnt(c) if c.eth.iter().any(|e| e.lan == lan) => {
                    Some(frr(&c.image))
                }
                _ => None,
            })
            .collect()
    };
    t.lans
        .keys()
        .find(|lan| {
            let on = on(lan);
            on.len() >= 2 && on.iter().all(|r| *r)
        })
        .cloned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Every topology shipped in topologies/.
fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Two containers with an address on `lan`: one to ping from, the other's address.
fn pair_on(t: &cloonix::model::Topology, lan: &str) -> (String, String) {
    let on: Vec<(String, String)> = t
        .endpoints
        .iter()
        .filter_map(|(name, ep)| match ep {
            cloonix::model::Endpoint::Cnt(c) => c
                .eth
                .iter()
                .find(|e| e.lan == lan && !e.ip.is_empty())
                .map(|e| (name.clone(), e.ip[0].0.addr().to_string())),
            _ => None,
        })
        .collect();
    assert!(on.len() >= 2, "no two containers on {lan}");
    (on[0].0.clone(), on[1].1.clone())
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_running_lab_is_drawn_as_its_file() {
    let lab = Lab::new("g-graph");
    lab.apply(TWO);
    let file = lab.dir.join("lab.yaml");
    let of_file = lab.cloonix(&["graph", file.to_str().unwrap()]);
    let of_lab = lab.cloonix(&["graph", &lab.name]);
    assert!(of_lab.status.success());
    assert_eq!(
        String::from_utf8_lossy(&of_file.stdout),
        String::from_utf8_lossy(&of_lab.stdout)
    );
    let out = lab.cloonix(&["graph", "g-nolab"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lab g-nolab"));
}
