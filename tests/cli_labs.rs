//! The command line's contract where it meets a real lab: what destroy waits for, a shell
//! without a terminal, and an apply that takes over a lab made from another file.

mod common;

use common::Lab;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn destroy_returns_when_a_taps_host_interface_is_gone() {
    let lab = Lab::new("t-tapgone");
    let yaml = "lans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: cl-tap0, ip: 10.85.0.1/24}\n  a: {kind: cnt, eth: [{lan: l}]}\n";
    for round in 0..4 {
        lab.apply(yaml);
        let out = lab.cloonix(&["destroy", "t-tapgone"]);
        assert!(out.status.success());
        let still = Command::new("ip")
            .args(["link", "show", "cl-tap0"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(
            !still,
            "round {round}: the tap was still there when destroy returned"
        );
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_shell_without_a_terminal_reads_its_standard_input() {
    let lab = Lab::new("t-shell");
    lab.apply("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l}]}\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(["shell", "t-shell", "a"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from-stdin; exit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-stdin\n");
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn an_apply_from_another_file_says_whose_lab_it_changes() {
    let lab = Lab::new("t-other");
    let yaml = "lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l}]}\n";
    let first = lab.file(yaml);
    let out = lab.cloonix(&["apply", &first]);
    assert!(out.status.success());
    let other = lab.dir.join("other.yaml");
    std::fs::write(&other, format!("name: t-other\n{yaml}")).unwrap();
    let out = lab.cloonix(&["apply", other.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "note: lab t-other was last applied from {first} at "
        )),
        "{text}"
    );
    // From the same file again: nothing to say.
    let out = lab.cloonix(&["apply", other.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("was last applied from"));
}

/// Runs cloonix with its standard output closed at once, as `| true` or `| head -c0` do.
fn with_stdout_closed(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_closed_stdout_never_stops_the_work() {
    let lab = Lab::new("t-pipe");
    let file =
        lab.file("lans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 10.0.0.1/24}]}\n");
    let out = with_stdout_closed(&["apply", &file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        lab.exec("a", "true").0,
        0,
        "apply stopped when its stdout closed"
    );
    for args in [
        vec!["status", "t-pipe"],
        vec!["status", "t-pipe", "-o", "yaml"],
        vec!["status", "t-pipe", "-o", "json"],
        vec!["diff", &file],
        vec!["images"],
    ] {
        let out = with_stdout_closed(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && out.status.code() != Some(101),
            "{args:?}: {err}"
        );
    }
    let out = with_stdout_closed(&["destroy", "t-pipe"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !std::path::Path::new("/run/cloonix/t-pipe").exists(),
        "destroy stopped"
    );
}
