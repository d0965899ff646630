//! `cloonix validate FILE`: every error of the file at once, exit 0 or 1.

use super::Output;
use super::out::{err, outln};
use cloonix::model::load;
use std::path::Path;

pub fn run(file: &Path, output: Output) -> i32 {
    let path = file.display().to_string();
    let result = load(file);
    if output == Output::Json {
        let report = match &result {
            Ok(loaded) => serde_json::json!({
                "file": path, "valid": true, "errors": [], "host_items": loaded.host_items,
            }),
            Err(e) => super::load_failure(e),
        };
        outln!("{}", serde_json::to_string_pretty(&report).expect("json"));
        return i32::from(result.is_err());
    }
    match result {
        Ok(loaded) => {
            outln!("{path}: valid (lab {})", loaded.topology.name);
            for h in &loaded.host_items {
                outln!(
                    "{path}:{}:{}: needs --allow-host: {}",
                    h.pos.line,
                    h.pos.col,
                    h.what
                );
            }
            0
        }
        Err(e) => {
            err!("{}", e.render());
            1
        }
    }
}
