//! A lab's own Open vSwitch: ovsdb-server and ovs-vswitchd started in its switch namespace
//! with their files under the lab's directory (never the host's default database or
//! daemons), and a small OVSDB client (RFC 7047 JSON-RPC over the unix socket).
//! Every row cloonix writes carries `external_ids` `cloonix-lab` and `cloonix-owner`.

use super::process::{self, Identity, Launch};
use super::{HostError, Result, io, run};
use crate::graph::names::{LABEL_LAB, LABEL_OWNER};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

pub fn socket(dir: &Path) -> PathBuf {
    dir.join("db.sock")
}

/// The two daemons, by role: the program and the name of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Db,
    Switch,
}

impl Daemon {
    fn program(self) -> &'static str {
        match self {
            Daemon::Db => "ovsdb-server",
            Daemon::Switch => "ovs-vswitchd",
        }
    }
}

fn launch(daemon: Daemon, dir: &Path, netns: &Path) -> Result<Identity> {
    let s = |p: &str| dir.join(p).display().to_string();
    let name = daemon.program();
    let mut args = match daemon {
        Daemon::Db => vec![s("conf.db"), format!("--remote=punix:{}", s("db.sock"))],
        Daemon::Switch => vec![format!("unix:{}", s("db.sock"))],
    };
    // In the foreground, so that the pid cloonix records is the daemon's own; the pid
    // file is written for OVS's own tools and never read by cloonix.
    args.extend([
        format!("--pidfile={}", s(&format!("{name}.pid"))),
        format!("--unixctl={}", s(&format!("{name}.ctl"))),
        format!("--log-file={}", s(&format!("{name}.log"))),
        "--no-chdir".into(),
    ]);
    let env = ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"]
        .iter()
        .map(|k| (k.to_string(), dir.display().to_string()))
        .collect();
    process::launch(&Launch {
        program: name,
        args,
        env,
        netns: Some(netns),
        log: Some(&dir.join(format!("{name}.out"))),
        private_mounts: false,
        ready_fd: None,
        pass: &[],
        user: None,
    })
}

/// Starts ovsdb-server in `netns` with its files in `dir`, and waits for its socket.
pub fn start_db(dir: &Path, netns: &Path) -> Result<Identity> {
    std::fs::create_dir_all(dir).map_err(io("create the OVS directory"))?;
    let db = dir.join("conf.db");
    if !db.exists() {
        if !Path::new(SCHEMA).exists() {
            return Err(HostError::Missing {
                program: "ovsdb-server".into(),
                package: "openvswitch-switch",
            });
        }
        run(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(SCHEMA),
            "create the OVS database",
        )?;
    }
    let _ = std::fs::remove_file(socket(dir));
    let id = launch(Daemon::Db, dir, netns)?;
    wait_for(&socket(dir), &id, &dir.join("ovsdb-server.log"))?;
    // ovs-vswitchd expects the one root row that `ovs-vsctl init` would make; a database
    // left by an interrupted start may lack it.
    let mut db = Ovsdb::connect(dir)?;
    let rows = db.transact(vec![
        json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["_uuid"]}),
    ])?;
    if rows[0]["rows"].as_array().is_none_or(|r| r.is_empty()) {
        db.transact(vec![
            json!({"op": "insert", "table": "Open_vSwitch", "row": {}}),
        ])?;
    }
    Ok(id)
}

/// Where a lab's bridges switch frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// The kernel's (the openvswitch module).
    System,
    /// ovs-vswitchd's own, in user space, with TSO: frames move between its ports as
    /// 64 KiB TCP segments (measured: 6 to 10 Gbit/s TCP across a lan here, against
    /// 0.5 without TSO and about 2 with AF_XDP ports, which cannot carry TSO; see the
    /// README's benchmark), and no thread polls while the lab is idle.
    Netdev,
}

impl Datapath {
    pub fn as_str(self) -> &'static str {
        match self {
            Datapath::System => "system",
            Datapath::Netdev => "netdev",
        }
    }

    fn parse(s: &str) -> Option<Datapath> {
        match s {
            "system" => Some(Datapath::System),
            "netdev" => Some(Datapath::Netdev),
            _ => None,
        }
    }
}

/// The kernel datapath where the openvswitch module is loaded or loads, else userspace.
pub fn choose_datapath() -> Datapath {
    let loaded = || Path::new("/sys/module/openvswitch").exists();
    if loaded() {
        return Datapath::System;
    }
    let _ = Command::new("modprobe")
        .args(["-q", "openvswitch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match loaded() {
        true => Datapath::System,
        false => Datapath::Netdev,
    }
}

const LABEL_DATAPATH: &str = "cloonix-datapath";

/// Records the lab's datapath in its database, with the settings ovs-vswitchd reads once
/// when it starts: so this runs before it does.
pub fn set_datapath(dir: &Path, dp: Datapath) -> Result<()> {
    let other: Vec<[&str; 2]> = match dp {
        Datapath::Netdev => vec![["userspace-tso-enable", "true"]],
        Datapath::System => Vec::new(),
    };
    Ovsdb::connect(dir)?.transact(vec![
        json!({"op": "update", "table": "Open_vSwitch", "where": [],
        "row": {"other_config": ["map", other],
                "external_ids": ["map", [[LABEL_DATAPATH, dp.as_str()]]]}}),
    ])?;
    Ok(())
}

/// The datapath recorded in the lab's database (userspace where none is).
pub fn datapath(db: &mut Ovsdb) -> Result<Datapath> {
    let res = db.transact(vec![
        json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}),
    ])?;
    let ids = &res[0]["rows"][0]["external_ids"][1];
    let found = ids.as_array().into_iter().flatten().find_map(|kv| {
        (kv[0] == LABEL_DATAPATH).then(|| kv[1].as_str().and_then(Datapath::parse))?
    });
    Ok(found.unwrap_or(Datapath::Netdev))
}

/// Starts ovs-vswitchd in `netns`, on the database in `dir`.
pub fn start_switch(dir: &Path, netns: &Path) -> Result<Identity> {
    launch(Daemon::Switch, dir, netns)
}

/// Daemons of the lab that no record names (an apply killed while starting them): the
/// OVS programs running in the lab's switch namespace.
pub fn unrecorded(netns: &Path) -> Vec<Identity> {
    [Daemon::Switch, Daemon::Db]
        .iter()
        .filter_map(|d| process::which(d.program()))
        .flat_map(|exe| process::find(&exe, &[netns.to_path_buf()]))
        .collect()
}

fn wait_for(path: &Path, daemon: &Identity, log: &Path) -> Result<()> {
    let start = Instant::now();
    while UnixStream::connect(path).is_err() {
        if !daemon.alive() || start.elapsed() > Duration::from_secs(10) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(HostError::Ovsdb(format!(
                "{} did not come up: {}",
                path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `external_ids` that mark a row as this lab's, owned by `owner` (a resource id).
pub fn labels(owner: &str) -> Value {
    json!([
        "map",
        [[LABEL_LAB, lab_of_owner(owner)], [LABEL_OWNER, owner]]
    ])
}

fn lab_of_owner(owner: &str) -> &str {
    owner.split('/').nth(1).unwrap_or_default()
}

/// A connection to a lab's database.
pub struct Ovsdb {
    stream: UnixStream,
    reader: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<BufReader<UnixStream>>,
        Value,
    >,
    next_id: u64,
}

impl Ovsdb {
    /// Connects to the database whose files are in `dir`.
    pub fn connect(dir: &Path) -> Result<Ovsdb> {
        let stream = UnixStream::connect(socket(dir)).map_err(io("connect to the lab's OVSDB"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io("OVSDB socket"))?;
        let reader = serde_json::Deserializer::from_reader(BufReader::new(
            stream.try_clone().map_err(io("OVSDB socket"))?,
        ))
        .into_iter();
        Ok(Ovsdb {
            stream,
            reader,
            next_id: 1,
        })
    }

    /// Runs `ops` as one transaction; the result of each operation, or the first error.
    pub fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut params = vec![json!("Open_vSwitch")];
        params.extend(ops);
        let request = json!({"method": "transact", "params": params, "id": id});
        self.stream
            .write_all(request.to_string().as_bytes())
            .map_err(io("write to OVSDB"))?;
        loop {
            let msg = self
                .reader
                .next()
                .ok_or_else(|| HostError::Ovsdb("connection closed".into()))?
                .map_err(|e| HostError::Ovsdb(e.to_string()))?;
            if msg["method"] == "echo" {
                let reply = json!({"result": msg["params"], "error": null, "id": msg["id"]});
                let _ = self.stream.write_all(reply.to_string().as_bytes());
                continue;
            }
            if msg["id"] != json!(id) {
                continue;
            }
            if !msg["error"].is_null() {
                return Err(HostError::Ovsdb(msg["error"].to_string()));
            }
            let results = msg["result"].as_array().cloned().unwrap_or_default();
            if let Some(err) = results.iter().find(|r| !r["error"].is_null()) {
                return Err(HostError::Ovsdb(format!(
                    "{} {}",
                    err["error"], err["details"]
                )));
            }
            return Ok(results);
        }
    }
}

/// Runs `ops` and waits until ovs-vswitchd has applied them to the datapath (as
/// `ovs-vsctl` does: bump `next_cfg`, wait for `cur_cfg` to reach it), so that when a step
/// is done, traffic flows.
pub fn transact_applied(db: &mut Ovsdb, mut ops: Vec<Value>) -> Result<()> {
    ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                    "mutations": [["next_cfg", "+=", 1]]}));
    ops.push(
        json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}),
    );
    let res = db.transact(ops)?;
    let target = res
        .last()
        .and_then(|r| r["rows"][0]["next_cfg"].as_i64())
        .unwrap_or(0);
    let start = Instant::now();
    loop {
        let res = db.transact(vec![
            json!({"op": "select", "table": "Open_vSwitch", "where": [],
                                          "columns": ["cur_cfg"]}),
        ])?;
        if res[0]["rows"][0]["cur_cfg"].as_i64().unwrap_or(0) >= target {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(HostError::Ovsdb(
                "ovs-vswitchd did not apply the change within 30 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A bridge as the database holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRow {
    pub owner: Option<String>,
    pub mtu: Option<u32>,
    /// Its ports other than its own internal one, by name, with their owners.
    pub ports: BTreeMap<String, Option<String>>,
}

/// Every bridge of the lab's database with its ports, in one transaction.
pub fn dump(db: &mut Ovsdb) -> Result<BTreeMap<String, BridgeRow>> {
    let res = db.transact(vec![
        json!({"op": "select", "table": "Bridge", "where": [], "columns": ["name", "ports", "external_ids"]}),
        json!({"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "external_ids"]}),
        json!({"op": "select", "table": "Interface", "where": [], "columns": ["name", "mtu_request"]}),
    ])?;
    let rows = |i: usize| res[i]["rows"].as_array().cloned().unwrap_or_default();
    let mut ports = BTreeMap::new();
    for p in rows(1) {
        let uuid = p["_uuid"][1].as_str().unwrap_or_default().to_string();
        ports.insert(
            uuid,
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                owner(&p["external_ids"]),
            ),
        );
    }
    let mtus: BTreeMap<String, u32> = rows(2)
        .iter()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_string(),
                i["mtu_request"].as_u64()? as u32,
            ))
        })
        .collect();
    let mut out = BTreeMap::new();
    for b in rows(0) {
        let name = b["name"].as_str().unwrap_or_default().to_string();
        let mut members = BTreeMap::new();
        for uuid in set_members(&b["ports"]) {
            if let Some((pname, powner)) = ports.get(&uuid)
                && *pname != name
            {
                members.insert(pname.clone(), powner.clone());
            }
        }
        let row = BridgeRow {
            owner: owner(&b["external_ids"]),
            mtu: mtus.get(&name).copied(),
            ports: members,
        };
        out.insert(name, row);
    }
    Ok(out)
}

/// The uuids of an OVSDB set (or of a single uuid).
pub(super) fn set_members(v: &Value) -> Vec<String> {
    match v[0].as_str() {
        Some("uuid") => vec![v[1].as_str().unwrap_or_default().to_string()],
        Some("set") => v[1]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u[1].as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn owner(ids: &Value) -> Option<String> {
    ids[1].as_array()?.iter().find_map(|kv| {
        (kv[0] == LABEL_OWNER)
            .then(|| kv[1].as_str().map(String::from))
            .flatten()
    })
}

/// Makes many bridges at once, `(name, mtu, owner)` each, in one transaction applied by
/// ovs-vswitchd once; a bridge that is there already (an interrupted apply made it) only
/// gets its MTU.
pub fn add_new_bridges(db: &mut Ovsdb, bridges: &[(&str, u32, &str)]) -> Result<()> {
    let existing = dump(db)?;
    let dp = datapath(db)?.as_str();
    let mut ops = Vec::new();
    let mut members = Vec::new();
    for (i, (name, mtu, owner)) in bridges.iter().enumerate() {
        if existing.contains_key(*name) {
            ops.push(set_mtu(name, *mtu));
            continue;
        }
        let (iface, port, br) = (format!("iface{i}"), format!("port{i}"), format!("br{i}"));
        ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": iface,
                        "row": {"name": name, "type": "internal", "mtu_request": mtu, "external_ids": labels(owner)}}));
        ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
                        "row": {"name": name, "interfaces": ["named-uuid", iface], "external_ids": labels(owner)}}));
        ops.push(json!({"op": "insert", "table": "Bridge", "uuid-name": br,
                        "row": {"name": name, "ports": ["named-uuid", port], "datapath_type": dp,
                                "external_ids": labels(owner)}}));
        members.push(json!(["named-uuid", br]));
    }
    if !members.is_empty() {
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                        "mutations": [["bridges", "insert", ["set", members]]]}));
    }
    transact_applied(db, ops)
}

pub fn set_bridge_mtu(db: &mut Ovsdb, name: &str, mtu: u32) -> Result<()> {
    db.transact(vec![set_mtu(name, mtu)])?;
    Ok(())
}

/// The operation that sets the MTU of a bridge's own interface.
fn set_mtu(name: &str, mtu: u32) -> Value {
    json!({"op": "update", "table": "Interface", "where": [["name", "==", name]],
           "row": {"mtu_request": mtu}})
}

pub(super) fn uuid_of(db: &mut Ovsdb, table: &str, name: &str) -> Result<Option<Value>> {
    let res = db.transact(vec![json!({"op": "select", "table": table,
                                      "where": [["name", "==", name]], "columns": ["_uuid"]})])?;
    Ok(res[0]["rows"]
        .as_array()
        .and_then(|r| r.first())
        .map(|r| r["_uuid"].clone()))
}

pub fn del_bridge(db: &mut Ovsdb, name: &str) -> Result<()> {
    let Some(uuid) = uuid_of(db, "Bridge", name)? else {
        return Ok(());
    };
    db.transact(vec![
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
                            "mutations": [["bridges", "delete", ["set", [uuid]]]]}),
    ])?;
    Ok(())
}

/// Moves port `ifname` to `bridge`; one whose row vanished meanwhile is made anew there.
pub fn move_port(db: &mut Ovsdb, bridge: &str, ifname: &str, owner: &str) -> Result<()> {
    let Some(uuid) = uuid_of(db, "Port", ifname)? else {
        return add_new_ports(db, &[(bridge, ifname, owner)]);
    };
    transact_applied(
        db,
        vec![
            json!({"op": "mutate", "table": "Bridge", "where": [["ports", "includes", uuid]],
                   "mutations": [["ports", "delete", ["set", [uuid]]]]}),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                   "mutations": [["ports", "insert", ["set", [uuid]]]]}),
        ],
    )
}

/// Attaches many new ports at once, `(bridge, ifname, owner)` each: one transaction and
/// one reconfiguration of ovs-vswitchd instead of one per port, which grows with the
/// bridge. Rows left under the same names (their devices made anew) are removed first, in
/// a transaction of their own that is applied before (see [`del_port`]).
pub fn add_new_ports(db: &mut Ovsdb, ports: &[(&str, &str, &str)]) -> Result<()> {
    let res = db.transact(vec![
        json!({"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name"]}),
    ])?;
    let wanted: std::collections::BTreeSet<&str> = ports.iter().map(|(_, n, _)| *n).collect();
    let stale: Vec<Value> = res[0]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["name"].as_str().is_some_and(|n| wanted.contains(n)))
        .map(|r| {
            let uuid = r["_uuid"].clone();
            json!({"op": "mutate", "table": "Bridge", "where": [["ports", "includes", uuid]],
                   "mutations": [["ports", "delete", ["set", [uuid]]]]})
        })
        .collect();
    if !stale.is_empty() {
        transact_applied(db, stale)?;
    }
    let mut ops = Vec::new();
    let mut by_bridge: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (i, (bridge, ifname, owner)) in ports.iter().enumerate() {
        let (iface, port) = (format!("iface{i}"), format!("port{i}"));
        ops.push(
            json!({"op": "insert", "table": "Interface", "uuid-name": iface,
                        "row": {"name": ifname, "external_ids": labels(owner)}}),
        );
        ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port,
                        "row": {"name": ifname, "interfaces": ["named-uuid", iface], "external_ids": labels(owner)}}));
        by_bridge
            .entry(bridge)
            .or_default()
            .push(json!(["named-uuid", port]));
    }
    for (bridge, members) in by_bridge {
        ops.push(
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                        "mutations": [["ports", "insert", ["set", members]]]}),
        );
    }
    transact_applied(db, ops)
}

pub fn del_port(db: &mut Ovsdb, ifname: &str) -> Result<()> {
    let Some(uuid) = uuid_of(db, "Port", ifname)? else {
        return Ok(());
    };
    // Applied before returning: a port removed and added again at once would be merged by
    // ovs-vswitchd into no change, keeping a stale handle on a device made anew.
    transact_applied(
        db,
        vec![
            json!({"op": "mutate", "table": "Bridge", "where": [["ports", "includes", uuid]],
                    "mutations": [["ports", "delete", ["set", [uuid]]]]}),
        ],
    )
}
