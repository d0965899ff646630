//! Containers that podman and docker run (`runtime: podman|docker`), and engine images for
//! crun (`image: podman:REF`), on the real host: the tests start their own dockerd (its own
//! directories and socket, no host networking changed) and stop it at the end, build their
//! images locally from Debian's static busybox, and use podman's default store with the
//! settings cloonix writes for it. Every lab and image name starts with `e-`.

mod common;

use common::{Lab, leftovers};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A dockerd of a test's own: data, exec root and socket in a directory of its own,
/// started with no effect on the host's networking; stopped and removed when dropped.
struct Dockerd {
    dir: PathBuf,
    child: Child,
    host: String,
}

impl Dockerd {
    fn start(name: &str) -> Dockerd {
        let dir = std::env::temp_dir().join(format!("cloonix-{name}"));
        Dockerd::clean(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let p = |n: &str| dir.join(n).display().to_string();
        let child = Command::new("dockerd")
            .args(["--data-root", &p("data"), "--exec-root", &p("exec")])
            .args(["--pidfile", &p("dockerd.pid")])
            .arg(format!("--host=unix://{}", sock.display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
            ])
            .args(["--ip-masq=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("dockerd is installed (apt-get install docker.io)");
        let d = Dockerd {
            host: format!("unix://{}", sock.display()),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer: {}",
                std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .output()
            .unwrap()
    }

    /// What a dockerd leaves once stopped: its data root bind-mounted on itself.
    fn clean(dir: &Path) {
        let _ = Command::new("umount")
            .arg(dir.join("data"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Its containers first: with some running, dockerd waits for each to stop.
        let ids = self.docker(&["ps", "--all", "--quiet"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "--force", id]);
        }
        // SAFETY: kill of our own child's pid, which it keeps until we wait for it.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Dockerd::clean(&self.dir);
    }
}

/// A root filesystem of Debian's static busybox, as a tar an engine imports: one link per
/// applet, a user database, `/tmp`, and `extra` files.
fn busybox_tar(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    };
    for (dir, mode) in [("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, dir, &b""[..]).unwrap();
    }
    let busybox = std::fs::read("/bin/busybox").expect("apt-get install busybox-static");
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet == "busybox" {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ];
    for (path, text) in files.iter().chain(extra) {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// What the test image runs: it notes what is there when it starts (files, interfaces),
/// then ends; cloonix keeps the container up.
const CMD: &str =
    r#"CMD ["/bin/sh", "-c", "ls /www > /tmp/at-start 2>&1; ip -o link >> /tmp/at-start"]"#;

/// Imports the busybox root as `reference` with `engine` (its program and environment).
fn import(engine: &mut Command, reference: &str, extra: &[(&str, &str)]) {
    let mut child = engine
        .args(["import", "--change", CMD, "--change", "ENV PATH=/bin"])
        .args(["-", reference])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&busybox_tar(extra))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import of {reference}: {err}");
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().unwrap()
}

/// A podman image of the test's own, removed when dropped.
struct PodmanImage(&'static str);

impl PodmanImage {
    fn build(reference: &'static str, extra: &[(&str, &str)]) -> PodmanImage {
        let _ = podman(&["rmi", "--force", reference]);
        import(&mut Command::new("podman"), reference, extra);
        PodmanImage(reference)
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", self.0]);
    }
}

/// Removes the image cache's export of the engine image `id` (made from a test's image,
/// it is the test's own) and its lock; its cache id.
fn forget_export(id: &str) -> Option<String> {
    let root = Path::new("/var/lib/cloonix/images");
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let Ok(meta) = std::fs::read(entry.path().join("meta.json")) else {
            continue;
        };
        let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
        if meta["source"]["image_id"] == id {
            let name = entry.file_name().to_string_lossy().into_owned();
            std::fs::remove_dir_all(entry.path()).unwrap();
            let _ = std::fs::remove_file(root.join(".locks").join(format!("{name}.lock")));
            return Some(name);
        }
    }
    None
}

/// The lab's containers that an engine still has.
fn engine_containers(engine: &mut Command, lab: &str) -> String {
    let out = engine
        .args(["ps", "--all", "--quiet"])
        .arg(format!("--filter=label=cloonix-lab={lab}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The engine's own word on the container's start (its `State.StartedAt`) and init pid.
fn started(engine: &mut Command, name: &str) -> String {
    let out = engine
        .args([
            "inspect",
            "--format",
            "{{.State.Pid}} {{.State.StartedAt}}",
            name,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const WEB: &str = "    files:\n      /www/index.html: {content: \"hello\\n\"}\n    run: [\"httpd -p 80 -h /www\"]\n";

fn mix(extra_lan: bool) -> String {
    let (lans, p2, d2) = if extra_lan {
        (
            "[l1, l2]",
            ", {lan: l2, ip: 10.2.0.2/24}",
            ", {lan: l2, ip: 10.2.0.3/24}",
        )
    } else {
        ("[l1]", "", "")
    };
    format!(
        "lans: {lans}\nendpoints:\n\
         \x20 c:\n    kind: cnt\n    eth: [{{lan: l1, ip: 10.1.0.1/24}}]\n{WEB}\
         \x20 p:\n    kind: cnt\n    runtime: podman\n    image: localhost/e-mix:1\n    eth: [{{lan: l1, ip: 10.1.0.2/24}}{p2}]\n{WEB}\
         \x20 d:\n    kind: cnt\n    runtime: docker\n    image: e-mix:1\n    eth: [{{lan: l1, ip: 10.1.0.3/24}}{d2}]\n{WEB}\
         \x20 x:\n    kind: cnt\n    image: docker:e-mix:1\n    eth: [{{lan: l1, ip: 10.1.0.4/24}}]\n"
    )
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn crun_podman_and_docker_share_a_lan_and_change_live() {
    let dockerd = Dockerd::start("e-dockerd");
    import(
        Command::new("docker").env("DOCKER_HOST", &dockerd.host),
        "e-mix:1",
        &[],
    );
    let _image = PodmanImage::build("localhost/e-mix:1", &[]);
    let lab = Lab::with_env("e-mix", &[("DOCKER_HOST", &dockerd.host)]);
    let docker = || {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &dockerd.host);
        c
    };

    let t = Instant::now();
    let yaml = mix(false);
    lab.apply(&yaml);
    eprintln!(
        "apply of crun + podman + docker + docker image for crun: {:?}",
        t.elapsed()
    );

    // Everyone reaches everyone, and talks TCP.
    let ips = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"];
    for from in ["c", "p", "d", "x"] {
        for to in ips {
            assert!(lab.ping(from, to), "{from} → {to}");
        }
    }
    for (from, to) in [
        ("c", "10.1.0.2"),
        ("p", "10.1.0.3"),
        ("d", "10.1.0.1"),
        ("x", "10.1.0.2"),
    ] {
        assert!(lab.tcp(from, to), "TCP {from} → {to}");
    }
    // exec: output and exit codes, told apart as for crun.
    for ep in ["c", "p", "d", "x"] {
        let (code, out) = lab.exec(ep, "cat /www/index.html 2>/dev/null || echo none; hostname");
        assert_eq!(code, 0, "{ep}");
        let want = if ep == "x" {
            "none\nx\n"
        } else {
            &format!("hello\n{ep}\n")
        };
        assert_eq!(out, want, "{ep}");
        let code = |argv: &[&str]| {
            let mut args = vec!["exec", "e-mix", ep, "--"];
            args.extend(argv);
            lab.cloonix(&args).status.code()
        };
        assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7), "{ep}");
        assert_eq!(code(&["nosuchcmd"]), Some(127), "{ep}");
        assert_eq!(code(&["/etc/passwd"]), Some(126), "{ep}");
    }
    // Files and interfaces were there before the image's own command started; it ended,
    // and its container stays up.
    for ep in ["p", "d"] {
        let (_, at_start) = lab.exec(ep, "cat /tmp/at-start");
        assert!(
            at_start.starts_with("index.html\n") && at_start.contains("eth0"),
            "{ep}: {at_start}"
        );
    }
    assert!(
        lab.exec("x", "cat /.dockerenv && echo from-docker")
            .1
            .contains("from-docker")
    );
    // Each engine holds its container to the pids limit crun's containers get.
    for (mut engine, name) in [(Command::new("podman"), "e-mix.p"), (docker(), "e-mix.d")] {
        let out = engine
            .args(["inspect", "--format", "{{.HostConfig.PidsLimit}}", name])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "1024",
            "{name}"
        );
    }

    // A live edit: an interface more for the podman and the docker container.
    let before = (lab.init_start("p"), lab.init_start("d"));
    let engine_before = (
        started(Command::new("podman").arg("container"), "e-mix.p"),
        started(docker().arg("container"), "e-mix.d"),
    );
    let edited = mix(true);
    let out = lab.apply(&edited);
    assert!(
        out.contains("Plan: 3 to create, 0 to update, 0 to replace, 0 to destroy."),
        "{out}"
    );
    assert_eq!(
        (lab.init_start("p"), lab.init_start("d")),
        before,
        "a container restarted"
    );
    assert_eq!(
        (
            started(Command::new("podman").arg("container"), "e-mix.p"),
            started(docker().arg("container"), "e-mix.d"),
        ),
        engine_before
    );
    assert!(
        lab.ping("p", "10.2.0.3") && lab.ping("d", "10.2.0.2"),
        "over l2"
    );
    assert!(
        lab.tcp("p", "10.2.0.3") && lab.tcp("d", "10.2.0.2"),
        "TCP over l2"
    );
    assert_eq!(lab.diff_code(&edited), 0);

    // Removed behind cloonix's back: drift, which apply makes good.
    assert!(
        podman(&["rm", "--force", "--time=0", "e-mix.p"])
            .status
            .success()
    );
    assert_eq!(lab.diff_code(&edited), 2);
    lab.apply(&edited);
    assert!(lab.ping_again("c", "10.1.0.2") && lab.ping_again("d", "10.2.0.2"));
    assert!(lab.tcp("c", "10.1.0.2"));
    assert_eq!(lab.diff_code(&edited), 0);

    let t = Instant::now();
    assert!(lab.cloonix(&["destroy", "e-mix"]).status.success());
    eprintln!("destroy: {:?}", t.elapsed());
    assert_eq!(engine_containers(&mut docker(), "e-mix"), "");
    assert_eq!(engine_containers(&mut Command::new("podman"), "e-mix"), "");
    assert_eq!(leftovers("e-mix"), Vec::<String>::new());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/cloonix/labs/e-mix/") && !mounts.contains("cloonix_e-mix"));
    let id = docker()
        .args(["image", "inspect", "--format", "{{.Id}}", "e-mix:1"])
        .output()
        .unwrap();
    let export = forget_export(String::from_utf8_lossy(&id.stdout).trim());
    assert!(
        export.is_some_and(|e| !mounts.contains(&e)),
        "the docker image's export"
    );
    drop(lab);
    drop(dockerd);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_podman_image_is_exported_once_for_two_endpoints_and_two_labs() {
    let _image = PodmanImage::build(
        "localhost/e-exp:1",
        &[("etc/e-mark", "from the podman image\n")],
    );
    let one = Lab::new("e-exp1");
    let two = Lab::new("e-exp2");
    let endpoint = |name: &str, ip: &str| {
        format!(
            "  {name}:\n    kind: cnt\n    image: podman:localhost/e-exp:1\n    eth: [{{lan: l1, ip: {ip}}}]\n"
        )
    };
    let yaml1 = format!(
        "lans: [l1]\nendpoints:\n{}{}",
        endpoint("a", "10.3.0.1/24"),
        endpoint("b", "10.3.0.2/24")
    );
    let out = one.apply(&yaml1);
    assert_eq!(out.matches("exporting podman image").count(), 1, "{out}");
    let out = two.apply(&format!(
        "lans: [l1]\nendpoints:\n{}",
        endpoint("a", "10.3.0.1/24")
    ));
    assert_eq!(out.matches("exporting podman image").count(), 0, "{out}");
    for (lab, ep) in [(&one, "a"), (&one, "b"), (&two, "a")] {
        assert_eq!(lab.exec(ep, "cat /etc/e-mark").1, "from the podman image\n");
    }
    assert!(one.ping("a", "10.3.0.2"));
    // One cache entry, made from the image's id, that both labs use; no container of the
    // export is left.
    let images = one.cloonix(&["images", "-o", "json"]);
    let images: serde_json::Value = serde_json::from_slice(&images.stdout).unwrap();
    let id = String::from_utf8_lossy(
        &podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/e-exp:1",
        ])
        .stdout,
    )
    .trim()
    .to_string();
    let entries: Vec<&serde_json::Value> = images
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["source"]["image_id"] == id.as_str())
        .collect();
    assert_eq!(entries.len(), 1, "{images}");
    assert_eq!(entries[0]["labs"], serde_json::json!(["e-exp1", "e-exp2"]));
    assert_eq!(
        podman(&["ps", "--all", "--quiet", "--filter=label=cloonix-export=1"]).stdout,
        b""
    );
    drop(one);
    drop(two);
    for lab in ["e-exp1", "e-exp2"] {
        assert_eq!(leftovers(lab), Vec::<String>::new());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let entry = entries[0]["id"].as_str().unwrap();
    assert!(!mounts.contains(entry), "the export is still mounted");
    assert_eq!(forget_export(&id).as_deref(), Some(entry));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_missing_engine_or_image_is_named_and_nothing_is_touched() {
    let lab = Lab::with_env(
        "e-miss",
        &[("DOCKER_HOST", "unix:///nonexistent/e-docker.sock")],
    );
    let file = lab.file(
        "lans: [l1]\nendpoints:\n\
         \x20 p:\n    kind: cnt\n    runtime: podman\n    image: localhost/e-nosuch:1\n    eth: [{lan: l1}]\n\
         \x20 d:\n    kind: cnt\n    runtime: docker\n    image: e-nosuch:1\n\
         \x20 x:\n    kind: cnt\n    image: podman:localhost/e-nosuch:2\n",
    );
    let out = lab.cloonix(&["apply", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "lab.yaml:7:12: error: image `localhost/e-nosuch:1` is not in podman's local store"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "lab.yaml:15:12: error: image `localhost/e-nosuch:2` is not in podman's local store"
        ),
        "{err}"
    );
    assert!(
        err.contains("cannot reach a docker daemon at unix:///nonexistent/e-docker.sock"),
        "{err}"
    );
    assert!(err.contains("nothing was touched"), "{err}");
    assert!(!Path::new("/run/cloonix/e-miss").exists());
    assert_eq!(leftovers("e-miss"), Vec::<String>::new());
    // Without the program at all, the package to install is named.
    let bare = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["apply", &file])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(
        err.contains("`podman` is not installed: apt-get install podman"),
        "{err}"
    );
    assert!(
        err.contains("`docker` is not installed: apt-get install docker.io"),
        "{err}"
    );
}
