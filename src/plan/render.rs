//! The plan as people read it: one line per file item with `+`, `-`, `~` or `-/+`, the
//! low-level steps beneath with `-v`, and the closing count.

use super::{ItemChange, ItemOp, Plan};
use crate::graph::Item;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Plan {
    /// Counts file items (lans, endpoints, interfaces), not resources.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for i in self.items.iter().filter(|i| i.counted()) {
            match i.op {
                ItemOp::Create => c.create += 1,
                ItemOp::Update => c.update += 1,
                ItemOp::Replace => c.replace += 1,
                ItemOp::Destroy => c.destroy += 1,
            }
        }
        c
    }
}

fn sign(op: ItemOp) -> &'static str {
    match op {
        ItemOp::Create => "+",
        ItemOp::Update => "~",
        ItemOp::Replace => "-/+",
        ItemOp::Destroy => "-",
    }
}

fn headline(c: &ItemChange, lab: &str) -> String {
    let what = match (&c.item, &c.renamed_from) {
        (Item::Lab, _) => format!("lab {lab}"),
        (Item::Interface(e, i), Some(from)) => format!("interface {e}.{from} → {e}.{i}"),
        (item, _) => item.to_string(),
    };
    let note = match (c.op, &c.reason, &c.renamed_from) {
        (ItemOp::Replace, Some(r), _) => format!(" (replace: {r})"),
        (_, _, Some(_)) => " (renamed: an entry before it was removed or moved)".into(),
        (ItemOp::Update, _, _) => " (update in place)".into(),
        _ => String::new(),
    };
    format!("{} {what}{note}", sign(c.op))
}

/// The plan as text; `file` names the desired side in the closing line.
pub fn render_text(plan: &Plan, file: &str, verbose: bool) -> String {
    if plan.is_empty() {
        return format!("No changes. Lab {} matches {file}.\n", plan.lab);
    }
    let mut out = String::new();
    let mut open_endpoint: Option<&str> = None;
    for c in &plan.items {
        let indent = match &c.item {
            Item::Interface(e, _) => {
                if open_endpoint != Some(e.as_str()) {
                    let _ = writeln!(out, "  endpoint {e}:");
                    open_endpoint = Some(e);
                }
                "      "
            }
            Item::Endpoint(e) => {
                open_endpoint = Some(e);
                "  "
            }
            _ => {
                open_endpoint = None;
                "  "
            }
        };
        let _ = writeln!(out, "{indent}{}", headline(c, &plan.lab));
        for d in &c.details {
            let _ = writeln!(out, "{indent}    {d}");
        }
        if verbose {
            for &i in &c.steps {
                let s = &plan.steps[i];
                let _ = writeln!(out, "{indent}    · {} {}", s.op_name(), s.id);
            }
        }
    }
    let c = plan.counts();
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to replace, {} to destroy.",
        c.create, c.update, c.replace, c.destroy
    );
    out
}
