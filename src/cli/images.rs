//! `cloonix images [prune]`: the image cache, and which labs use each entry; prune
//! removes the entries no lab uses (never one being built).

use super::Output;
use super::out::{errln, outln};
use cloonix::apply;
use cloonix::host::cache;

#[derive(clap::Subcommand, Clone, Copy)]
pub enum Action {
    /// Remove the cached images that no lab uses.
    Prune,
}

pub fn run(action: Option<Action>, output: Output) -> i32 {
    match action {
        None => list(output),
        Some(Action::Prune) => prune(output),
    }
}

fn list(output: Output) -> i32 {
    let users = apply::image_users();
    let entries = cache::list();
    if output == Output::Json {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|m| {
                let mut v = serde_json::to_value(m).expect("json");
                v["labs"] = serde_json::json!(users.get(&m.id).cloned().unwrap_or_default());
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list).expect("json"));
        return 0;
    }
    let recipes: Vec<String> = entries
        .iter()
        .map(|m| {
            let r = recipe(m);
            match r.chars().count() > RECIPE_WIDTH {
                true => format!(
                    "{}...",
                    r.chars().take(RECIPE_WIDTH - 3).collect::<String>()
                ),
                false => r,
            }
        })
        .collect();
    let width = recipes.iter().map(|r| r.len()).max().unwrap_or(0).max(6);
    outln!(
        "{:<28} {:>9}  {:<20}  {:<width$}  USED BY",
        "IMAGE",
        "SIZE",
        "CREATED",
        "RECIPE"
    );
    for (m, r) in entries.iter().zip(&recipes) {
        let labs: Vec<String> = users.get(&m.id).into_iter().flatten().cloned().collect();
        outln!(
            "{:<28} {:>8.1}M  {:<20}  {r:<width$}  {}",
            m.id,
            m.size as f64 / (1 << 20) as f64,
            m.created,
            if labs.is_empty() {
                "-".to_string()
            } else {
                labs.join(", ")
            }
        );
    }
    0
}

/// The most of a recipe the table shows (`-o json` has all of it).
const RECIPE_WIDTH: usize = 48;

/// What an entry was made from, in a few words: a Debian recipe's suite and packages,
/// else the short values of its source (an engine image's id, a program's hash).
fn recipe(m: &cache::Meta) -> String {
    let s = &m.source;
    if m.kind == "debian" {
        let packages: Vec<&str> = s["packages"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        return format!(
            "{}: {}",
            s["suite"].as_str().unwrap_or("?"),
            packages.join(" ")
        );
    }
    let Some(fields) = s.as_object() else {
        return m.kind.clone();
    };
    let words: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(v) => {
                let v = v.strip_prefix("sha256:").unwrap_or(v);
                Some(format!("{k} {}", v.chars().take(12).collect::<String>()))
            }
            serde_json::Value::Number(n) => Some(format!("{k} {n}")),
            _ => None,
        })
        .collect();
    format!("{} ({})", m.kind, words.join(", "))
}

fn prune(output: Output) -> i32 {
    // No apply is between finding an image and mounting it meanwhile, of any lab.
    let _lock = match apply::ImagesLock::take(|| errln!("waiting for applies and destroys to end"))
    {
        Ok(l) => l,
        Err(e) => {
            errln!("cloonix: {e}");
            return 1;
        }
    };
    let in_use = apply::image_users().into_keys().collect();
    match cache::prune(&in_use) {
        Ok(removed) => {
            if output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&removed).expect("json"));
            } else if removed.is_empty() {
                outln!("Nothing to prune.");
            } else {
                for m in &removed {
                    outln!(
                        "removed {} ({:.1}M)",
                        m.id,
                        m.size as f64 / (1 << 20) as f64
                    );
                }
            }
            0
        }
        Err(e) => {
            errln!("cloonix: {e}");
            1
        }
    }
}
