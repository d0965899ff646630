//! The open-demos of topologies/ as a CI job runs them: `apply --wait` from nothing passes
//! every check, the image is built once and shared, a cut link is routed around while the
//! routers keep running, a check that cannot pass fails the apply in its time, and
//! destroy leaves nothing. Each test copies a demo under a lab name of its own (`o-`).

mod common;

use cloonix::host::{cache, debian};
use cloonix::model::DebianImage;
use common::{Lab, NEEDS_ROOT, leftovers};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn topologies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies")
}

/// The demo `name` of topologies/ as lab `lab.name`, with the configs it reads beside it.
fn demo(lab: &Lab, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(topologies().join(format!("{name}.yaml"))).unwrap();
    let text = text.replace(
        &format!("\nname: {name}\n"),
        &format!("\nname: {}\n", lab.name),
    );
    assert!(text.contains(&format!("\nname: {}\n", lab.name)));
    let conf = lab.dir.join("ospf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::copy(topologies().join("ospf/bird.conf"), conf.join("bird.conf")).unwrap();
    let path = lab.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn apply_wait(lab: &Lab, file: &Path) -> Output {
    lab.cloonix(&["apply", "--wait", file.to_str().unwrap()])
}

/// The recipe of the demos' image, and its cache id on this host.
fn bird_image() -> (DebianImage, String) {
    let loaded = cloonix::model::load(&topologies().join("ospf-square.yaml")).unwrap();
    let recipe = loaded.topology.images["bird"].debian.clone();
    let id = debian::cache_id(&recipe).unwrap();
    (recipe, id)
}

/// The labs `cloonix images` says use image `id`.
fn users(lab: &Lab, id: &str) -> Vec<String> {
    let out = lab.cloonix(&["images", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .map(|m| {
            m["labs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn ospf_square_from_nothing_passes_every_check_and_destroy_leaves_nothing() {
    let _ = NEEDS_ROOT;
    let lab = Lab::new("o-sq1");
    let file = demo(&lab, "ospf-square");
    let out = apply_wait(&lab, &file);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("All 12 checks of lab o-sq1 passed"),
        "{report}"
    );
    // The image it was built on is listed, with this lab as a user.
    let (_, id) = bird_image();
    assert!(users(&lab, &id).contains(&"o-sq1".to_string()));
    // Checks are not lab state: the lab matches its file.
    assert_eq!(
        lab.cloonix(&["diff", file.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let out = lab.cloonix(&["destroy", "o-sq1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(leftovers("o-sq1"), Vec::<String>::new());
    assert!(!users(&lab, &id).contains(&"o-sq1".to_string()));
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_second_lab_reuses_the_image_the_first_built() {
    let first = Lab::new("o-ln1");
    let out = apply_wait(&first, &demo(&first, "ospf-line"));
    assert!(out.status.success(), "{}", text(&out));
    let (_, id) = bird_image();
    let built = cache::meta(&id).expect("the image is in the cache");
    let second = Lab::new("o-ln2");
    let out = apply_wait(&second, &demo(&second, "ospf-line"));
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("building image"), "{report}");
    assert_eq!(cache::meta(&id).unwrap().created, built.created);
    let users = users(&second, &id);
    assert!(
        users.contains(&"o-ln1".to_string()) && users.contains(&"o-ln2".to_string()),
        "{users:?}"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_side_of_the_square_taken_away_is_routed_around_and_every_router_keeps_running() {
    let lab = Lab::new("o-sq2");
    let file = demo(&lab, "ospf-square");
    let out = apply_wait(&lab, &file);
    assert!(out.status.success(), "{}", text(&out));
    let routers = ["r1", "r2", "r3", "r4"];
    let before: Vec<u64> = routers.iter().map(|r| lab.init_start(r)).collect();
    // r1 reaches h2 straight over lan12.
    let (_, route) = lab.exec("r1", "ip route get 10.1.2.10");
    assert!(route.contains("via 10.0.12.2"), "{route}");
    let cut = std::fs::read_to_string(&file)
        .unwrap()
        .replace("lans: [lan12, ", "lans: [")
        .replace("      - {name: eth0, lan: lan12, ip: 10.0.12.1/24}\n", "")
        .replace("      - {name: eth0, lan: lan12, ip: 10.0.12.2/24}\n", "");
    assert!(!cut.contains("lan: lan12") && !cut.contains("[lan12"));
    std::fs::write(&file, cut).unwrap();
    let out = apply_wait(&lab, &file);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("All 12 checks of lab o-sq2 passed"),
        "{report}"
    );
    // The way round, through r4 and r3; no router was restarted, those on the cut link
    // (r1, r2) included.
    let (_, route) = lab.exec("r1", "ip route get 10.1.2.10");
    assert!(route.contains("via 10.0.41.4"), "{route}");
    let after: Vec<u64> = routers.iter().map(|r| lab.init_start(r)).collect();
    assert_eq!(before, after);
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_check_that_cannot_pass_fails_apply_wait_within_its_time_naming_it() {
    let lab = Lab::new("o-fail");
    let file = lab.file(
        "lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 10.0.0.1/24}]}\n  \
         b: {kind: cnt, eth: [{lan: l, ip: 10.0.0.2/24}], run: [\"httpd -p 80 -h /etc\"]}\n\
         checks:\n  - {from: a, ping: 10.0.0.2, within: 20s}\n  \
         - {from: a, tcp: \"10.0.0.2:80\", within: 20s}\n  \
         - {from: a, ping: 10.0.0.99, within: 4s}\n",
    );
    let started = Instant::now();
    let out = lab.cloonix(&["apply", "--wait", &file]);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The failing check ends the wait at its own `within`, not the longest one.
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(
        stdout.contains("1 of 3 checks of lab o-fail failed")
            && stdout.contains("#3 (a: ping 10.0.0.99)"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL #3"), "{stdout}");
    // `check LAB` runs the last apply's checks; -o json says the same.
    let out = lab.cloonix(&["check", "o-fail", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["passed"], 2);
    assert_eq!(report["checks"][2]["ok"], false);
    assert_eq!(report["checks"][2]["check"], "ping 10.0.0.99");
    // --timeout cuts the wait short; the checks that can pass still do.
    let out = lab.cloonix(&["check", &file, "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1));
    // A file without the failing check passes, and exits 0.
    let good = file.replace("lab.yaml", "good.yaml");
    let text_ok = std::fs::read_to_string(&file)
        .unwrap()
        .replace("  - {from: a, ping: 10.0.0.99, within: 4s}\n", "");
    std::fs::write(&good, text_ok).unwrap();
    let out = lab.cloonix(&["check", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A recipe only this test uses, so that it can be built afresh.
const FRESH: &str = "{suite: bookworm, packages: [iputils-ping, netcat-openbsd]}";

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn two_applies_that_need_a_new_image_at_once_build_it_once() {
    let a = Lab::new("o-img1");
    let b = Lab::new("o-img2");
    let yaml = format!(
        "images:\n  tools:\n    debian: {FRESH}\nlans: [l]\nendpoints:\n  \
         d: {{kind: cnt, image: tools, eth: [{{lan: l, ip: 10.0.0.1/24}}]}}\n  \
         w: {{kind: cnt, eth: [{{lan: l, ip: 10.0.0.2/24}}], run: [\"httpd -p 80 -h /etc\"]}}\n\
         checks:\n  - {{from: d, ping: 10.0.0.2, within: 20s}}\n  \
         - {{from: d, tcp: \"10.0.0.2:80\", within: 20s}}\n  \
         - {{from: d, exec: \"nc -h\", expect_output: OpenBSD, within: 5s}}\n"
    );
    let recipe = DebianImage {
        suite: "bookworm".into(),
        packages: vec!["iputils-ping".into(), "netcat-openbsd".into()],
    };
    let id = debian::cache_id(&recipe).unwrap();
    // Left by an earlier run: made unusable first, then removed, as prune does.
    let entry = Path::new(cloonix::host::IMAGE_ROOT).join(&id);
    let _ = std::fs::remove_file(entry.join("meta.json"));
    let _ = std::fs::remove_dir_all(&entry);
    let (fa, fb) = (a.file(&yaml), b.file(&yaml));
    let spawn = |f: &str| {
        Command::new(env!("CARGO_BIN_EXE_cloonix"))
            .args(["apply", "--wait", f])
            .output()
            .unwrap()
    };
    let (oa, ob) = std::thread::scope(|s| {
        let ta = s.spawn(|| spawn(&fa));
        let tb = s.spawn(|| spawn(&fb));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let (ra, rb) = (text(&oa), text(&ob));
    assert!(oa.status.success(), "{ra}");
    assert!(ob.status.success(), "{rb}");
    let building = format!("building image {id}");
    let waiting = format!("waiting for another build of image {id}");
    let built = [&ra, &rb].iter().filter(|r| r.contains(&building)).count();
    assert_eq!(built, 1, "{ra}\n----\n{rb}");
    assert!(
        ra.contains(&waiting) || rb.contains(&waiting),
        "{ra}\n----\n{rb}"
    );
    // The build's stages were told as notes.
    assert!(
        [&ra, &rb].iter().any(|r| r.contains("image tools: ")),
        "{ra}"
    );
    assert_eq!(users(&a, &id), ["o-img1", "o-img2"]);
    // Once no lab uses it, the image goes as prune would take it: nothing is left behind.
    drop((a, b));
    let _ = std::fs::remove_file(entry.join("meta.json"));
    std::fs::remove_dir_all(&entry).unwrap();
}
