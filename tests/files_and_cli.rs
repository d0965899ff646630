//! The checked-in schema, the shipped topologies and the command line's contract.

use cloonix::model::{load, schema};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["examples", "topologies"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    assert!(out.len() >= 2);
    out
}

#[test]
fn checked_in_schema_is_current() {
    let file = std::fs::read_to_string(root().join("schema/cloonix.schema.json")).unwrap();
    let on_disk: serde_json::Value = serde_json::from_str(&file).unwrap();
    assert!(
        on_disk == schema(),
        "schema/cloonix.schema.json is stale: run `cargo run -- schema > schema/cloonix.schema.json`"
    );
}

#[test]
fn shipped_topologies_validate_against_loader_and_schema() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    for path in shipped_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            "# yaml-language-server: $schema=../schema/cloonix.schema.json",
            "{} lacks the modeline",
            path.display()
        );
        if let Err(e) = load(&path) {
            panic!("{}", e.render());
        }
        let (root, _) = cloonix::yaml::parse(&text);
        let json = root.unwrap().to_json();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn schema_rejects_what_the_loader_rejects() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    for bad in [
        "name: x\nlanz: []\n",
        "lans: [a]\n",
        "name: x\nendpoints: {r: {kind: cnx}}\n",
        "name: x\nendpoints: {r: {kind: cnt, eth: [{lan: a, ipp: 1}]}}\n",
    ] {
        let (root, _) = cloonix::yaml::parse(bad);
        assert!(
            !validator.is_valid(&root.unwrap().to_json()),
            "schema accepts {bad:?}"
        );
        assert!(cloonix::model::load_str(bad, root_dir()).is_err());
    }
}

fn root_dir() -> &'static Path {
    root()
}

fn cloonix(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn validate_reports_file_line_column_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("cloonix-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "name: lab\nlans: [l]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: m}]}\n  r2: {kind: cnt, privileged: maybe}\n").unwrap();
    let path = bad.display().to_string();
    let (code, _, err) = cloonix(&["validate", &path]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("{path}:4:31: error: undefined lan `m`")),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{path}:5:31: error: privileged must be true or false"
        )),
        "{err}"
    );
    assert!(err.contains("= hint:"));
    let (code, out, _) = cloonix(&["validate", "-o", "json", &path]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["errors"][0]["line"], 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn diff_of_a_lab_not_running_plans_everything_and_exits_2() {
    let file = root().join("topologies/ring.yaml").display().to_string();
    let (code, out, _) = cloonix(&["diff", &file]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+name: ring"));
    assert!(
        out.contains("Plan: 20 to create, 0 to update, 0 to replace, 0 to destroy."),
        "{out}"
    );
    let (code, out, _) = cloonix(&["diff", "-o", "json", &file]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["counts"]["create"], 20);
    let (code, _, err) = cloonix(&["diff", "/nonexistent/x.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/x.yaml"));
}
