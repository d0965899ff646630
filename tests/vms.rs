//! VMs on the real host: qemu (TCG here: this CPU advertises no vmx/svm), the built-in
//! guest, NICs hot-plugged over QMP, exec through the guest's agent, the serial console,
//! disks through overlays. Each test has its own `k-` lab and destroys it even when it
//! fails. A VM boots in a few seconds under TCG; each test boots as few as it can.

mod common;

use common::{Lab, leftovers};
use std::path::Path;
use std::process::Command;

const WEB: &str = "    files:\n      /www/index.html: {content: \"hello\\n\"}\n    run: [\"httpd -p 80 -h /www\"]\n";

/// The guest's uptime in seconds.
fn uptime(lab: &Lab, vm: &str) -> f64 {
    let (code, out) = lab.exec(vm, "cut -d' ' -f1 /proc/uptime");
    assert_eq!(code, 0, "uptime of {vm}: {out}");
    out.trim().parse().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What a lab left beyond `leftovers`: its VM state directory (overlays) and qemu.
fn vm_leftovers(lab: &str) -> Vec<String> {
    let mut out = leftovers(lab);
    let state = format!("/var/lib/cloonix/labs/{lab}");
    if Path::new(&state).exists() {
        out.push(state);
    }
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    out.extend(
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| l.contains(&format!("cloonix_{lab}_")) && l.contains("qemu"))
            .map(String::from),
    );
    // A tap that outlived its switch namespace would have landed in the host's.
    let host = cloonix::host::link::dump(None).unwrap();
    out.extend(
        host.keys()
            .filter(|n| ["vm1.", "v1.", "v2."].iter().any(|p| n.starts_with(p)))
            .map(|n| format!("host interface {n}")),
    );
    out
}

/// `cloonix console` on a terminal (a pty): keys reach the guest's shell, Ctrl-] leaves
/// at once with exit 0, and the terminal is as it was.
fn console_on_a_terminal(lab: &str, vm: &str) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors, which are owned below.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: both were just opened and are owned by nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let before = rustix::termios::tcgetattr(&slave).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["console", lab, vm])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut m = std::fs::File::from(master);
    std::thread::sleep(std::time::Duration::from_millis(500));
    m.write_all(b"echo PTY$((2*21))\r").unwrap();
    let reader = {
        let mut m = m.try_clone().unwrap();
        std::thread::spawn(move || {
            let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
            while !String::from_utf8_lossy(&seen).contains("PTY42") {
                match m.read(&mut buf) {
                    Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            String::from_utf8_lossy(&seen).into_owned()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !reader.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no echo from the console"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(reader.join().unwrap().contains("PTY42"));
    m.write_all(&[0x1d]).unwrap();
    let left = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        left.elapsed() < std::time::Duration::from_secs(2),
        "Ctrl-] did not leave"
    );
    let after = rustix::termios::tcgetattr(&slave).unwrap();
    assert_eq!(
        (after.local_modes, after.input_modes, after.output_modes),
        (before.local_modes, before.input_modes, before.output_modes),
        "the terminal was not restored"
    );
}

fn one_lan(extra_eth: &str, extra: &str) -> String {
    format!(
        "lans: [lan1, lan2]\nendpoints:\n  vm1:\n    kind: kvm\n    eth:\n      - {{lan: lan1, ip: 10.61.1.10/24}}\n{extra_eth}{WEB}  c1:\n    kind: cnt\n    eth: [{{lan: lan1, ip: 10.61.1.20/24}}]\n{WEB}{extra}"
    )
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_vm_and_a_container_share_a_lan_and_the_vm_takes_nics_live() {
    let lab = Lab::new("k-lan");
    lab.apply(&one_lan("", ""));
    // Both ways: ICMP, and TCP to a web server on each side.
    assert!(lab.ping_again("vm1", "10.61.1.20"));
    assert!(lab.ping("c1", "10.61.1.10"));
    assert!(lab.tcp("vm1", "10.61.1.20"), "vm1 fetches c1's page");
    assert!(lab.tcp("c1", "10.61.1.10"), "c1 fetches vm1's page");
    // exec: output and exit code, sh's 127 and 126, as for containers.
    let out = lab.cloonix(&[
        "exec",
        "k-lan",
        "vm1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let code = |argv: &[&str]| {
        let mut args = vec!["exec", "k-lan", "vm1", "--"];
        args.extend(argv);
        lab.cloonix(&args).status.code()
    };
    assert_eq!(code(&["no-such-command"]), Some(127));
    assert_eq!(code(&["/www/index.html"]), Some(126));
    assert_eq!(code(&["echo", "it's", "$(reboot)"]), Some(0));
    let status = text(&lab.cloonix(&["status", "k-lan"]));
    assert!(
        status.contains("accel tcg") || status.contains("accel kvm"),
        "{status}"
    );
    // qemu runs as a user of its own, with no capabilities, under seccomp.
    let s = cloonix::observe::observe_lab(&cloonix::host::Lab::new("k-lan")).status();
    let pid = s.endpoints["vm1"].pid.unwrap();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(field("Uid:"), "0", "{proc_status}");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    // The serial console without a terminal: input goes in, the shell's output comes back.
    let mut console = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["console", "k-lan", "vm1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    console
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo CON$((6*7))SOLE\n")
        .unwrap();
    let out = console.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CON42SOLE"));
    console_on_a_terminal("k-lan", "vm1");

    // A second NIC, on another lan, into the running VM.
    let before = uptime(&lab, "vm1");
    let eth1 = "      - {lan: lan2, ip: 10.61.2.10/24}\n";
    let c2 = "  c2:\n    kind: cnt\n    eth: [{lan: lan2, ip: 10.61.2.20/24}]\n";
    let out = lab.apply(&one_lan(eth1, c2));
    assert!(out.contains("+ interface vm1.eth1"), "{out}");
    assert!(
        !out.contains("endpoint vm1 ("),
        "the VM itself is not touched: {out}"
    );
    let after = uptime(&lab, "vm1");
    assert!(after > before, "vm1 rebooted: uptime {before} then {after}");
    let (_, addr) = lab.exec("vm1", "ip -4 addr show eth1");
    assert!(addr.contains("10.61.2.10/24"), "{addr}");
    assert!(lab.ping_again("c2", "10.61.2.10"));
    assert!(lab.tcp("vm1", "10.61.1.20"), "eth0 still carries traffic");
    // And out again.
    let out = lab.apply(&one_lan("", c2));
    assert!(out.contains("- interface vm1.eth1"), "{out}");
    assert!(uptime(&lab, "vm1") > after, "vm1 rebooted on unplug");
    assert_ne!(
        lab.exec("vm1", "ip link show eth1").0,
        0,
        "eth1 is still there"
    );
    assert_eq!(lab.diff_code(&one_lan("", c2)), 0);
    assert!(lab.ping("vm1", "10.61.1.20"));

    let out = lab.cloonix(&["destroy", "k-lan"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(vm_leftovers("k-lan"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn two_vms_and_three_containers_on_two_lans_come_up_in_one_apply() {
    let lab = Lab::new("k-many");
    let yaml = "lans: [a, b]\nendpoints:\n\
        \x20 v1: {kind: kvm, eth: [{lan: a, ip: 10.62.1.1/24}, {lan: b, ip: 10.62.2.1/24}]}\n\
        \x20 v2: {kind: kvm, ram: 192, eth: [{lan: b, ip: 10.62.2.2/24}]}\n\
        \x20 c1: {kind: cnt, eth: [{lan: a, ip: 10.62.1.11/24}]}\n\
        \x20 c2: {kind: cnt, eth: [{lan: a, ip: 10.62.1.12/24}]}\n\
        \x20 c3: {kind: cnt, eth: [{lan: b, ip: 10.62.2.13/24}]}\n\
        checks:\n\
        \x20 - {from: v1, ping: 10.62.1.11, within: 20s}\n\
        \x20 - {from: v2, exec: \"cat /proc/uptime\", expect_output: \".\", within: 20s}\n";
    lab.apply(yaml);
    // Checks run from VMs too, through their agent.
    let checked = lab.cloonix(&["check", "k-many"]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(lab.ping_again("v1", "10.62.1.11"));
    assert!(lab.ping("v1", "10.62.1.12"));
    assert!(lab.ping_again("v1", "10.62.2.2"), "VM to VM");
    assert!(lab.ping("v2", "10.62.2.13"));
    assert!(lab.ping("c3", "10.62.2.1"));
    assert_eq!(lab.diff_code(yaml), 0);
    // A VM whose qemu died is drift, and apply starts it again.
    let status = cloonix::observe::observe_lab(&cloonix::host::Lab::new("k-many")).status();
    let qemu = cloonix::host::process::Identity::of(status.endpoints["v2"].pid.unwrap()).unwrap();
    qemu.stop(std::time::Duration::ZERO).unwrap();
    let shown = text(&lab.cloonix(&["status", "k-many"]));
    assert!(shown.contains("its qemu is not running"), "{shown}");
    assert_eq!(lab.diff_code(yaml), 2);
    lab.apply(yaml);
    assert!(lab.ping_again("v1", "10.62.2.2"), "v2 is back");
    let out = lab.cloonix(&["destroy", "k-many"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(vm_leftovers("k-many"), Vec::<String>::new());
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_apply_killed_while_a_vm_boots_is_completed_by_the_next() {
    let lab = Lab::new("k-kill");
    let yaml = "lans: [l]\nendpoints:\n  vm1: {kind: kvm, eth: [{lan: l, ip: 10.63.0.1/24}]}\n  c1: {kind: cnt, eth: [{lan: l, ip: 10.63.0.2/24}]}\n";
    let file = lab.file(yaml);
    let mut apply = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["apply", &file])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // qemu has started (its QMP socket is there) and the guest is booting.
    let qmp = Path::new("/run/cloonix/k-kill/vm/vm1/qmp.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !qmp.exists() {
        assert!(std::time::Instant::now() < deadline, "qemu never started");
        assert!(apply.try_wait().unwrap().is_none(), "apply ended first");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    apply.kill().unwrap();
    apply.wait().unwrap();
    assert_eq!(
        lab.diff_code(yaml),
        2,
        "the killed apply left nothing to do"
    );
    lab.apply(yaml);
    assert_eq!(lab.diff_code(yaml), 0);
    assert!(lab.ping_again("vm1", "10.63.0.2"));
    let out = lab.cloonix(&["destroy", "k-kill"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(vm_leftovers("k-kill"), Vec::<String>::new());
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
}

/// A tiny root filesystem (busybox and an init that marks the disk) in a two-layer qcow2
/// chain: `top.qcow2` backed by `base.qcow2`.
fn make_disk(dir: &Path) {
    let root = dir.join("rootfs");
    for d in ["bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let init =
        "#!/bin/busybox sh\necho booted-from-disk > /booted\nexec /bin/busybox sleep 2147483647\n";
    std::fs::write(root.join("sbin/init"), init).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("sbin/init"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let raw = dir.join("root.raw");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-d"])
        .arg(&root)
        .arg(&raw)
        .arg("24M"));
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(dir.join("base.qcow2")));
    run(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            "base.qcow2",
        ])
        .arg(dir.join("top.qcow2"))
        .current_dir(dir));
    std::fs::remove_file(raw).unwrap();
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_disk_is_used_through_an_overlay_and_never_written() {
    let lab = Lab::new("k-disk");
    make_disk(&lab.dir);
    let base = lab.dir.join("base.qcow2");
    let top = lab.dir.join("top.qcow2");
    let before = (sha256(&base), sha256(&top));
    let yaml = "lans: [l]\nendpoints:\n  vm1:\n    kind: kvm\n    image: top.qcow2\n    eth: [{lan: l, ip: 10.64.0.1/24}]\n    files:\n      /etc/motd: {content: \"on disk\\n\"}\n  c1: {kind: cnt, eth: [{lan: l, ip: 10.64.0.2/24}]}\n";
    lab.apply(yaml);
    // The disk's own init ran; the agent answers from inside the disk's root.
    let (code, out) = lab.exec("vm1", "cat /booted /etc/motd");
    assert_eq!((code, out.as_str()), (0, "booted-from-disk\non disk\n"));
    let (code, _) = lab.exec(
        "vm1",
        "echo written > /by-test && sync && grep -q written /by-test",
    );
    assert_eq!(code, 0);
    assert!(lab.ping_again("vm1", "10.64.0.2"));
    let overlay = Path::new("/var/lib/cloonix/labs/k-disk/vm/vm1/overlay.qcow2");
    assert!(overlay.exists());
    let out = lab.cloonix(&["destroy", "k-disk"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!overlay.exists());
    assert_eq!(
        (sha256(&base), sha256(&top)),
        before,
        "the disk was written"
    );
    assert_eq!(vm_leftovers("k-disk"), Vec::<String>::new());
    // A disk without a root filesystem ends its VM at once, saying why.
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "empty.qcow2", "16M"])
        .current_dir(&lab.dir));
    let file = lab.file("lans: [l]\nendpoints:\n  vm1: {kind: kvm, image: empty.qcow2}\n");
    let started = std::time::Instant::now();
    let out = lab.cloonix(&["apply", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no ext4 root filesystem"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_nic_model_change_is_a_hot_plug_and_the_vm_keeps_running() {
    let lab = Lab::new("k-model");
    // A kernel of the user's (the built-in guest's, copied): its NICs may be e1000.
    let guest = cloonix::host::guest::builtin(&|_| {}).unwrap();
    std::fs::copy(&guest.kernel, lab.dir.join("vmlinuz")).unwrap();
    std::fs::copy(&guest.initrd, lab.dir.join("initrd")).unwrap();
    let yaml = |model: &str| {
        format!(
            "lans: [l]\nendpoints:\n  vm1:\n    kind: kvm\n    image: {{kernel: vmlinuz, initrd: initrd}}\n    eth: [{{lan: l, model: {model}}}]\n"
        )
    };
    lab.apply(&yaml("virtio"));
    let pid = |lab: &Lab| {
        let s = cloonix::observe::observe_lab(&cloonix::host::Lab::new(&lab.name)).status();
        s.endpoints["vm1"].pid.unwrap()
    };
    let first = pid(&lab);
    // The guest is up (its agent answers) before a device is taken from it: an unplug
    // needs the guest's cooperation.
    cloonix::host::agent::Agent::connect(
        Path::new("/run/cloonix/k-model/vm/vm1/agent.sock"),
        Path::new("/run/cloonix/k-model/vm/vm1/agent.lock"),
        std::time::Duration::from_secs(120),
        &|| true,
    )
    .unwrap();
    let device_type = || {
        let path = Path::new("/run/cloonix/k-model/vm/vm1/qmp.sock");
        let mut q = cloonix::host::qmp::Qmp::connect(path, std::time::Duration::from_secs(10))
            .unwrap()
            .expect("qemu runs");
        let t = q
            .cmd(
                "qom-get",
                serde_json::json!({"path": "/machine/peripheral/nic-eth0", "property": "type"}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        t.as_str().unwrap().to_string()
    };
    assert_eq!(device_type(), "virtio-net-pci");
    let file = lab.file(&yaml("e1000"));
    let plan = text(&lab.cloonix(&["diff", &file]));
    assert!(
        plan.contains("-/+ interface vm1.eth0 (replace: model virtio → e1000)"),
        "{plan}"
    );
    lab.apply(&yaml("e1000"));
    assert_eq!(device_type(), "e1000");
    assert_eq!(pid(&lab), first, "the VM was restarted");
}

/// The line of the first occurrence of `needle` in `yaml` (1-based).
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines().position(|l| l.contains(needle)).unwrap() + 2
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn bad_vm_input_is_refused_at_its_line_and_nothing_starts() {
    let lab = Lab::new("k-bad");
    let d = &lab.dir;
    run(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "data_file=data.raw",
            "datafile.qcow2",
            "8M",
        ])
        .current_dir(d));
    let outside = std::env::temp_dir().join("cloonix-test-k-bad-outside");
    std::fs::create_dir_all(&outside).unwrap();
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "base.qcow2", "8M"])
        .current_dir(&outside));
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(outside.join("base.qcow2"))
        .arg("escapes.qcow2")
        .current_dir(d));
    let host_mib = cloonix::host::qemu::host_ram_mib().unwrap();
    let cases = [
        ("image: missing.qcow2", "does not exist"),
        ("ram: 0", "ram"),
        (
            &*format!("ram: {}", host_mib + 1024),
            "more than this host has",
        ),
        ("eth: [{lan: l, model: rtl8139}]", "unknown NIC model"),
        ("eth: [{lan: l, model: e1000}]", "virtio NICs only"),
        ("image: escapes.qcow2", "outside the topology's directory"),
        ("image: datafile.qcow2", "external data file"),
    ];
    for (field, want) in cases {
        let yaml = format!("lans: [l]\nendpoints:\n  vm1:\n    kind: kvm\n    {field}\n");
        let file = lab.file(&yaml);
        let out = lab.cloonix(&["apply", &file]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{field}: {said}");
        let at = format!("lab.yaml:{}:", line_of(&yaml, field));
        let line = said
            .lines()
            .find(|l| l.contains(&at) && l.contains("error"))
            .unwrap_or_else(|| panic!("{field}: no error at {at}: {said}"));
        assert!(said.contains(want), "{field}: {said}");
        let _ = line;
        assert_eq!(vm_leftovers("k-bad"), Vec::<String>::new(), "{field}");
    }
    let _ = std::fs::remove_dir_all(outside);
}
