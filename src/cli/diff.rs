//! `cloonix diff FILE`: the observed lab against the file, both in canonical form, then the
//! plan. Exit 0 no changes, 2 changes pending, 1 error.

use super::Output;
use super::out::{errln, out, outln};
use cloonix::graph::{self, Graph};
use cloonix::model::to_yaml;
use cloonix::plan::{self, render_text};
use std::path::Path;

pub fn run(file: &Path, verbose: bool, output: Output) -> i32 {
    let Some(loaded) = super::load(file, output) else {
        return 1;
    };
    let Some(desired) = super::desired(&loaded) else {
        return 1;
    };
    let observed = cloonix::observe::observe(&loaded.topology.name);
    let plan = plan::plan(&desired, &observed);
    let path = file.display().to_string();
    let lab = cloonix::host::Lab::new(&loaded.topology.name);
    let refused = match super::refusals(&loaded, &desired, &lab) {
        Ok(r) => r,
        Err(e) => {
            errln!("cloonix: {e}");
            return 1;
        }
    };
    let text_diff = unified(&observed, &desired, &path);
    if output == Output::Json {
        let report = serde_json::json!({
            "lab": plan.lab,
            "changes": !plan.is_empty(),
            "counts": plan.counts(),
            "items": plan.items,
            "diff": text_diff,
            "host_items": loaded.host_items,
            "refusals": refused.iter().map(|r| serde_json::json!({
                "line": r.pos.line, "col": r.pos.col, "message": r.message,
                "allowed_with_allow_host": r.host_item,
            })).collect::<Vec<_>>(),
            "steps": plan.steps,
            "waves": plan.waves,
        });
        outln!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        out!("{text_diff}");
        if !text_diff.is_empty() {
            outln!();
        }
        out!("{}", render_text(&plan, &path, verbose));
        for (title, host) in [
            ("Needs --allow-host:", true),
            ("apply would refuse:", false),
        ] {
            let these: Vec<&super::Refused> =
                refused.iter().filter(|r| r.host_item == host).collect();
            if !these.is_empty() {
                outln!("\n{title}");
                for r in these {
                    outln!("  {path}:{}:{}: {}", r.pos.line, r.pos.col, r.message);
                }
            }
        }
    }
    if plan.is_empty() { 0 } else { 2 }
}

/// A unified diff of two labs in canonical form; empty when they render the same.
pub fn unified(observed: &Graph, desired: &Graph, file: &str) -> String {
    let before = if observed.is_empty() {
        String::new()
    } else {
        to_yaml(&graph::to_topology(observed))
    };
    let after = to_yaml(&graph::to_topology(desired));
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("observed lab {}", observed.lab), file)
        .to_string()
}
