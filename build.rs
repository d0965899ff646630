//! Marks builds made without root (and on hosts whose cgroups cannot be used), so that
//! tests which need them show as ignored, with the reason, instead of passing without
//! running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cloonix_not_root)");
    println!("cargo::rerun-if-changed=build.rs");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(String::from));
    if euid.as_deref() != Some("0") {
        println!("cargo::rustc-cfg=cloonix_not_root");
    }
    // Hosts whose cgroups crun can use (a unified cgroup2 hierarchy, and CAP_SYS_RESOURCE
    // for its device filter) or cloonix can (v1 hierarchies): the tests of enforced
    // limits run only there.
    println!("cargo::rustc-check-cfg=cfg(cloonix_no_cgroups)");
    let unified = std::process::Command::new("stat")
        .args(["-fc", "%T", "/sys/fs/cgroup"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "cgroup2fs");
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    // Or v1 hierarchies for the four controllers cloonix manages itself.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let v1 = ["pids", "memory", "cpu", "devices"].iter().all(|c| {
        mounts.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 3
                && f[2] == "cgroup"
                && f[3].split(',').any(|o| o == "rw")
                && f[3].split(',').any(|o| o == *c)
        })
    });
    let crun_can = unified && effective & (1 << 24) != 0;
    if !crun_can && !v1 {
        println!("cargo::rustc-cfg=cloonix_no_cgroups");
    }
}
