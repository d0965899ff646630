//! `cloonix exec LAB NODE -- CMD...` and `cloonix shell LAB NODE`: the command runs through
//! the endpoint's kind; its own exit code, 125 for cloonix's own errors, 126 not
//! executable, 127 not found.

use super::out::errln;
use cloonix::graph::Item;
use cloonix::host::{Lab, intent};
use cloonix::kinds::{self, ExecRequest};

pub fn run(lab: &str, node: &str, argv: &[String], tty: bool) -> i32 {
    // Not a name: no lab, and no path of the caller's choosing to read records from.
    if !cloonix::model::is_name(lab) {
        errln!("cloonix: no lab {lab}");
        return 125;
    }
    let lab = Lab::new(lab);
    // A VM's agent has no terminal to offer: a shell on a terminal is its serial console.
    if tty && let Ok(Some(console)) = super::console::socket(&lab, node) {
        return super::console::attach(&console, node);
    }
    let req = ExecRequest {
        argv,
        tty,
        capture: None,
    };
    let records = intent::read_all(&lab);
    let ran = records
        .iter()
        .filter(|r| r.resource.item == Item::Endpoint(node.to_string()))
        .find_map(|r| kinds::exec(&lab, &r.resource, &r.receipt, &req));
    match ran {
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            errln!("cloonix: {e}");
            125
        }
        None => {
            errln!(
                "cloonix: no endpoint {node} in lab {} runs commands",
                lab.name
            );
            125
        }
    }
}
