//! Root filesystems containers start from. The built-in `busybox` image is made once from
//! Debian's busybox-static and shared read-only (each container gets its own overlay).

use super::{HostError, IMAGE_ROOT, Result, io};
use std::path::{Path, PathBuf};
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";

/// The built-in image's directory, built on first use.
pub fn busybox() -> Result<PathBuf> {
    let dir = Path::new(IMAGE_ROOT).join("busybox");
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    // Parallel steps of one apply build it once; other processes race to the rename below.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    if !Path::new(BUSYBOX).exists() {
        return Err(HostError::Missing {
            program: "busybox".into(),
            package: "busybox-static",
        });
    }
    // Built beside its final place and renamed in, so a half-built image is never used.
    let tmp = Path::new(IMAGE_ROOT).join(format!(".busybox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run",
        "var/run", "www",
    ] {
        std::fs::create_dir_all(tmp.join(d)).map_err(io("build the busybox image"))?;
    }
    std::fs::copy(BUSYBOX, tmp.join("bin/busybox")).map_err(io("copy busybox"))?;
    let list = super::run(
        Command::new(BUSYBOX).arg("--list-full"),
        "list busybox applets",
    )?;
    for applet in list
        .lines()
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        let link = tmp.join(applet);
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        let _ = std::os::unix::fs::symlink(target, link);
    }
    std::fs::write(tmp.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
        .map_err(io("write /etc/passwd"))?;
    std::fs::write(tmp.join("etc/group"), "root:x:0:\n").map_err(io("write /etc/group"))?;
    std::fs::write(tmp.join(".complete"), "").map_err(io("finish the busybox image"))?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another apply built it at the same time: use theirs.
        Err(_) if dir.join(".complete").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(io("install the busybox image")(e)),
    }
}
