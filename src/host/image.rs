//! Root filesystems containers start from. The built-in `busybox` image is made once from
//! Debian's busybox-static, in the image cache, and shared read-only (each container gets
//! its own overlay).

use super::{HostError, Result, cache, io};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";

/// Bumped when the built-in image's layout changes, so that cached ones are rebuilt.
const LAYOUT: u32 = 3;

/// What `udhcpc` runs on a lease: address, default route and resolver from it. Busybox
/// ships none, and a container on a nat's lan is expected to `udhcpc` and be online.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
        while ip route del default dev "$interface" 2>/dev/null; do :; done
        for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
"#;

/// The built-in image's root filesystem, built on first use; looked up once per run of
/// cloonix (every container of a lab asks).
pub fn busybox(progress: &dyn Fn(&str)) -> Result<PathBuf> {
    static FOUND: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = found.as_ref().filter(|d| d.exists()) {
        return Ok(dir.clone());
    }
    let binary = std::fs::read(BUSYBOX).map_err(|_| HostError::Missing {
        program: "busybox".into(),
        package: "busybox-static",
    })?;
    let hash: String = Sha256::digest(&binary)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let source = serde_json::json!({"busybox": hash, "layout": LAYOUT});
    let dir = cache::get_or_build("busybox", source, progress, |dir| {
        build(&dir.join("rootfs"))
    })?;
    let root = dir.join("rootfs");
    *found = Some(root.clone());
    Ok(root)
}

fn build(root: &Path) -> Result<()> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/udhcpc",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run",
        "var/run",
        "www",
    ] {
        std::fs::create_dir_all(root.join(d)).map_err(io("build the busybox image"))?;
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).map_err(io("copy busybox"))?;
    let list = super::run(
        Command::new(BUSYBOX).arg("--list-full"),
        "list busybox applets",
    )?;
    for applet in list
        .lines()
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        let link = root.join(applet);
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        let _ = std::os::unix::fs::symlink(target, link);
    }
    let write = |path: &str, text: &str, mode: u32| -> Result<()> {
        let p = root.join(path);
        std::fs::write(&p, text).map_err(io(format!("write {path}")))?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(io(format!("write {path}")))
    };
    write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    write("etc/group", "root:x:0:\n", 0o644)?;
    // Where Debian's busybox-static looks for it.
    write("etc/udhcpc/default.script", UDHCPC_SCRIPT, 0o755)
}
