//! Planner snapshots: each folder of `tests/fixtures/plans/` holds an observed lab, a
//! desired lab and the plan expected between them (items, steps and waves). Run with
//! `UPDATE_FIXTURES=1` to rewrite the expectations, then read the diff before committing.

use cloonix::graph::{self, Graph};
use cloonix::model::load;
use cloonix::plan::{self, render_text};
use std::fmt::Write;
use std::path::Path;

fn graph_of(path: &Path, lab: &str) -> Graph {
    if std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        return Graph::new(lab);
    }
    let loaded = load(path).unwrap_or_else(|e| panic!("{}", e.render()));
    graph::desired(&loaded.topology).unwrap()
}

fn lab_name(dir: &Path) -> String {
    for f in ["desired.yaml", "observed.yaml"] {
        if let Ok(l) = load(&dir.join(f)) {
            return l.topology.name;
        }
    }
    panic!("no lab in {}", dir.display())
}

fn render(dir: &Path) -> String {
    let lab = lab_name(dir);
    let observed = graph_of(&dir.join("observed.yaml"), &lab);
    let desired = graph_of(&dir.join("desired.yaml"), &lab);
    let plan = plan::plan(&desired, &observed);
    let simulated = plan::simulate(&plan, &observed, &desired).expect("the plan plays out");
    let diff = simulated.differences(&desired);
    assert!(
        diff.is_empty(),
        "{}: the plan does not reach the desired lab: {diff:#?}",
        dir.display()
    );
    let mut out = render_text(&plan, "desired.yaml", true);
    for (i, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "wave {}:", i + 1);
        for &s in wave {
            let step = &plan.steps[s];
            let why = step
                .replace
                .as_deref()
                .map(|r| format!(" (replace: {r})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:?} {}{why}", step.op, step.id);
        }
    }
    // Image paths are resolved to absolute ones; keep snapshots independent of the checkout.
    out.replace(
        &dir.canonicalize().unwrap().display().to_string(),
        "$FIXTURE",
    )
}

#[test]
fn plans_match_their_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans");
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut failed = Vec::new();
    for dir in dirs {
        let got = render(&dir);
        let file = dir.join("expected.plan");
        if update {
            std::fs::write(&file, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        if got != want {
            let diff = similar::TextDiff::from_lines(&want, &got)
                .unified_diff()
                .to_string();
            failed.push(format!("{}:\n{diff}", dir.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "plans differ from their snapshots:\n{}",
        failed.join("\n")
    );
}
