//! The OVSDB rows of a capture: an OVS mirror on a lan's bridge that copies the lan's
//! traffic (or one port's, both ways) to an internal port made for the capture, which
//! cloonix reads (see `host::packet`). OVS reserves a mirror's output port for the mirror:
//! nothing is forwarded to it but the copies, and whatever it sends is dropped, so a
//! capture cannot change the lab's traffic.
//!
//! Every row carries the lab's labels and `cloonix-capture: PID:START`, the identity of
//! the process that reads it. A capture removes its rows when it ends; one that was killed
//! leaves them, and [`reap`] (run by the next apply, the next capture and destroy) removes
//! the rows whose process is gone.

use super::ovs::{Ovsdb, set_members, transact_applied, uuid_of};
use super::process::Identity;
use super::{HostError, Result};
use crate::graph::names::{LABEL_LAB, LABEL_OWNER};
use serde_json::{Value, json};

/// The `external_ids` key that holds the capturing process's identity.
pub const LABEL_CAPTURE: &str = "cloonix-capture";

/// A capture to set up.
#[derive(Debug, Clone)]
pub struct Spy<'a> {
    pub lab: &'a str,
    /// The lan's bridge.
    pub bridge: &'a str,
    /// The OVS port whose traffic is copied, both ways; None: every port of the bridge.
    pub port: Option<&'a str>,
    /// The internal port made for the capture; also the mirror's name. Never a name a lan
    /// or an endpoint's port can have (see `crate::capture::port_name`).
    pub ifname: &'a str,
    /// The lan's MTU, so that no copy is too large for the port.
    pub mtu: u32,
    /// The process that reads the copies.
    pub owner: Identity,
}

fn labels(lab: &str, ifname: &str, owner: Identity) -> Value {
    json!([
        "map",
        [
            [LABEL_LAB, lab],
            [LABEL_OWNER, format!("capture/{lab}/{ifname}")],
            [LABEL_CAPTURE, format!("{}:{}", owner.pid, owner.start)],
        ]
    ])
}

/// Adds the capture port and its mirror in one transaction, and waits until ovs-vswitchd
/// has made the port's device. Fails, leaving nothing, when the bridge is gone or the
/// selected port is not on it.
pub fn add(db: &mut Ovsdb, s: &Spy) -> Result<()> {
    let selected =
        match s.port {
            Some(port) => Some(uuid_of(db, "Port", port)?.ok_or_else(|| {
                HostError::Other(format!("port {port} is not on lan {}", s.bridge))
            })?),
            None => None,
        };
    let ids = labels(s.lab, s.ifname, s.owner);
    let mut mirror = json!({"name": s.ifname, "output_port": ["named-uuid", "port"],
                            "external_ids": ids});
    match &selected {
        Some(uuid) => {
            mirror["select_src_port"] = uuid.clone();
            mirror["select_dst_port"] = uuid.clone();
        }
        None => mirror["select_all"] = json!(true),
    }
    let mut on_bridge = vec![json!(["name", "==", s.bridge])];
    if let Some(uuid) = &selected {
        on_bridge.push(json!(["ports", "includes", uuid]));
    }
    let ops = vec![
        json!({"op": "insert", "table": "Interface", "uuid-name": "iface",
               "row": {"name": s.ifname, "type": "internal", "mtu_request": s.mtu,
                       "external_ids": ids}}),
        json!({"op": "insert", "table": "Port", "uuid-name": "port",
               "row": {"name": s.ifname, "interfaces": ["named-uuid", "iface"],
                       "external_ids": ids}}),
        json!({"op": "insert", "table": "Mirror", "uuid-name": "mirror", "row": mirror}),
        // Rows no bridge refers to are dropped by the database itself: if the bridge is
        // gone or the port left it, this matches nothing and nothing stays.
        json!({"op": "mutate", "table": "Bridge", "where": on_bridge,
               "mutations": [["ports", "insert", ["set", [["named-uuid", "port"]]]],
                             ["mirrors", "insert", ["set", [["named-uuid", "mirror"]]]]]}),
        json!({"op": "select", "table": "Mirror", "where": [["name", "==", s.ifname]],
               "columns": ["_uuid"]}),
    ];
    let res = db.transact(ops)?;
    if res[3]["count"].as_u64() != Some(1) {
        return Err(HostError::Other(match s.port {
            Some(port) => format!("port {port} left lan {}", s.bridge),
            None => format!("lan {} is gone", s.bridge),
        }));
    }
    transact_applied(db, Vec::new())
}

/// What the database says of a capture while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its mirror copies what it was set up for.
    Running,
    /// Its mirror is gone: the lan was removed or closed to capture.
    Gone,
    /// The port it copied is gone (its mirror now copies nothing).
    PortGone,
}

/// The state of the capture whose port is `ifname`.
pub fn state(db: &mut Ovsdb, ifname: &str) -> Result<State> {
    let res = db.transact(vec![json!({"op": "select", "table": "Mirror",
        "where": [["name", "==", ifname]], "columns": ["select_all", "select_src_port"]})])?;
    let Some(row) = res[0]["rows"].as_array().and_then(|r| r.first()) else {
        return Ok(State::Gone);
    };
    let selects =
        row["select_all"] == json!(true) || !set_members(&row["select_src_port"]).is_empty();
    Ok(if selects {
        State::Running
    } else {
        State::PortGone
    })
}

/// Removes a capture's mirror and port (and so the port's device); gone already is fine.
pub fn remove(db: &mut Ovsdb, ifname: &str) -> Result<()> {
    let mirror = uuid_of(db, "Mirror", ifname)?;
    let port = uuid_of(db, "Port", ifname)?;
    let mut ops = Vec::new();
    if let Some(m) = mirror {
        ops.push(
            json!({"op": "mutate", "table": "Bridge", "where": [["mirrors", "includes", m]],
                        "mutations": [["mirrors", "delete", ["set", [m]]]]}),
        );
    }
    if let Some(p) = port {
        ops.push(
            json!({"op": "mutate", "table": "Bridge", "where": [["ports", "includes", p]],
                        "mutations": [["ports", "delete", ["set", [p]]]]}),
        );
    }
    if ops.is_empty() {
        return Ok(());
    }
    transact_applied(db, ops)
}

/// A capture as its rows say: its port's name, its lab and the process that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub ifname: String,
    pub lab: String,
    pub owner: Option<Identity>,
}

/// Every capture of the database: its mirrors and capture ports, by name (a port without
/// a mirror is listed too, so that nothing of a capture can be missed).
pub fn list(db: &mut Ovsdb) -> Result<Vec<Row>> {
    let res = db.transact(vec![
        json!({"op": "select", "table": "Mirror", "where": [], "columns": ["name", "external_ids"]}),
        json!({"op": "select", "table": "Port", "where": [], "columns": ["name", "external_ids"]}),
    ])?;
    let mut out: Vec<Row> = Vec::new();
    for table in [0, 1] {
        for r in res[table]["rows"].as_array().into_iter().flatten() {
            let ids = &r["external_ids"];
            let (Some(capture), Some(lab)) = (label(ids, LABEL_CAPTURE), label(ids, LABEL_LAB))
            else {
                continue;
            };
            let ifname = r["name"].as_str().unwrap_or_default().to_string();
            if out.iter().any(|o| o.ifname == ifname) {
                continue;
            }
            out.push(Row {
                ifname,
                lab,
                owner: parse_identity(&capture),
            });
        }
    }
    Ok(out)
}

/// Removes the captures of `lab` whose reading process is gone (killed, so it could not
/// remove them itself); their names.
pub fn reap(db: &mut Ovsdb, lab: &str) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for row in list(db)? {
        if row.lab == lab && !row.owner.is_some_and(|o| o.alive()) {
            remove(db, &row.ifname)?;
            gone.push(row.ifname);
        }
    }
    Ok(gone)
}

/// Removes every capture on `bridge`, running or not: the lan was closed to capture.
pub fn remove_on_bridge(db: &mut Ovsdb, bridge: &str) -> Result<Vec<String>> {
    let res = db.transact(vec![
        json!({"op": "select", "table": "Bridge", "where": [["name", "==", bridge]],
               "columns": ["mirrors"]}),
        json!({"op": "select", "table": "Mirror", "where": [], "columns": ["_uuid", "name"]}),
    ])?;
    let on: Vec<String> = res[0]["rows"]
        .as_array()
        .and_then(|r| r.first())
        .map(|b| set_members(&b["mirrors"]))
        .unwrap_or_default();
    let mut gone = Vec::new();
    for m in res[1]["rows"].as_array().into_iter().flatten() {
        let uuid = m["_uuid"][1].as_str().unwrap_or_default();
        if on.iter().any(|u| u == uuid) {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            remove(db, &name)?;
            gone.push(name);
        }
    }
    Ok(gone)
}

fn parse_identity(s: &str) -> Option<Identity> {
    let (pid, start) = s.split_once(':')?;
    Some(Identity {
        pid: pid.parse().ok()?,
        start: start.parse().ok()?,
    })
}

fn label(ids: &Value, key: &str) -> Option<String> {
    ids[1].as_array()?.iter().find_map(|kv| {
        (kv[0] == key)
            .then(|| kv[1].as_str().map(String::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_read_back() {
        assert_eq!(
            parse_identity("12:345"),
            Some(Identity {
                pid: 12,
                start: 345
            })
        );
        assert_eq!(parse_identity("12"), None);
        assert_eq!(parse_identity("x:1"), None);
    }

    #[test]
    fn rows_are_labelled_with_lab_and_reader() {
        let ids = labels("demo", "cx_7", Identity { pid: 7, start: 9 });
        assert_eq!(label(&ids, LABEL_LAB).as_deref(), Some("demo"));
        assert_eq!(label(&ids, LABEL_CAPTURE).as_deref(), Some("7:9"));
        assert_eq!(
            label(&ids, LABEL_OWNER).as_deref(),
            Some("capture/demo/cx_7")
        );
    }
}
