//! What a VM's qemu is handed: the built-in guest's kernel and initramfs with the VM's own
//! archive appended, a disk's checked layers and a fresh overlay, or the user's kernel,
//! each already open. qemu runs as a user of its own and cannot open the lab's files by
//! name: the kernel and initramfs are read through the descriptor it holds, the disk is
//! handed as descriptors.

use super::state_dir;
use crate::graph::{Nic, VmSpec};
use crate::host::qemu::Boot;
use crate::host::{HostError, Result, guest, io};
use crate::kinds::StepCx;
use crate::model::{VmImage, qcow2};
use std::path::Path;

/// The kernel's command line for cloonix's initramfs: the console on the serial port,
/// qemu ends when the guest panics, and no probing that only costs boot time.
const APPEND: &str = "console=ttyS0 panic=-1 quiet tsc=reliable no_timer_check \
                      cryptomgr.notests i8042.noaux i8042.nokbd audit=0 apparmor=0";

/// A `files` entry's mode (octal text; 0644 when not given).
pub fn mode(m: &Option<String>) -> u32 {
    m.as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o644)
}

fn boot_nics(nics: &[Nic]) -> Vec<guest::BootNic> {
    nics.iter()
        .map(|n| guest::BootNic {
            mac: n.mac.to_string(),
            name: n.iface.clone(),
            mtu: n.mtu,
            ips: n.ips.iter().map(|c| c.to_string()).collect(),
        })
        .collect()
}

/// A file for qemu to read through /proc/self/fd: reopened that way, the file's own
/// mode is checked (not its directories'), so one that others may read is handed as it is
/// (its pages shared in the page cache); any other is copied into an anonymous file first.
fn for_qemu(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::PermissionsExt;
    let f = open(path, false)?;
    let m = f
        .metadata()
        .map_err(io(format!("read {}", path.display())))?;
    if m.is_file() && m.permissions().mode() & 0o004 != 0 {
        return Ok(f);
    }
    let data = std::fs::read(path).map_err(io(format!("read {}", path.display())))?;
    in_memory(&data)
}

fn in_memory(data: &[u8]) -> Result<std::fs::File> {
    use std::io::Write;
    let fd = rustix::fs::memfd_create("cloonix-vm", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| io("make an anonymous file")(e.into()))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data).map_err(io("fill an anonymous file"))?;
    Ok(f)
}

/// Opens a file without following a link at its last component.
pub fn open(path: &Path, write: bool) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(format!("open {}", path.display())))
}

/// Makes and opens what the VM boots from: the built-in guest's kernel and its initramfs
/// with the VM's own archive, a disk's layers and a fresh overlay, or the user's kernel;
/// the image cache entry it used.
pub fn prepare(cx: &StepCx, s: &VmSpec) -> Result<(Boot, Option<String>)> {
    let (lab, name) = (cx.lab, cx.name());
    if let Some(VmImage::Kernel {
        kernel,
        initrd,
        append,
    }) = &s.image
    {
        let initrd = match initrd {
            Some(p) => Some(for_qemu(Path::new(p))?),
            None => None,
        };
        let boot = Boot {
            kernel: for_qemu(Path::new(kernel))?,
            initrd,
            append: format!("console=ttyS0 {}", append.as_deref().unwrap_or("")),
            disk: None,
        };
        return Ok((boot, None));
    }
    let g = guest::builtin(cx.progress)?;
    let files: Vec<guest::BootFile> = s
        .files
        .iter()
        .map(|(path, f)| guest::BootFile {
            path: path.clone(),
            mode: mode(&f.mode),
            content: f.content.clone().unwrap_or_default().into_bytes(),
        })
        .collect();
    let own = guest::config_archive(name, &boot_nics(&s.nics), &files)?;
    // The VM's initramfs on disk (page cache, not unswappable memory for the VM's life),
    // its own qemu's to read and no one else's.
    let initrd = state_dir(lab, name).join("initrd");
    guest::write_initrd(&g.initrd, &own, &initrd)?;
    let user = crate::host::qemu::user_of(&lab.name, name);
    std::os::unix::fs::chown(&initrd, Some(user), Some(user))
        .and_then(|()| {
            std::fs::set_permissions(&initrd, std::os::unix::fs::PermissionsExt::from_mode(0o400))
        })
        .map_err(io("hand the initramfs to the VM's user"))?;
    let mut boot = Boot {
        kernel: for_qemu(&g.kernel)?,
        initrd: Some(open(&initrd, false)?),
        append: APPEND.into(),
        disk: None,
    };
    if let Some(VmImage::Disk(path)) = &s.image {
        let (chain, problems) = qcow2::chain(Path::new(path), None);
        let chain = match (chain, problems.into_iter().next()) {
            (Some(c), None) => c,
            (_, Some(qcow2::Problem::Refused(why))) => {
                return Err(HostError::Other(format!("disk image {path}: {why}")));
            }
            _ => return Err(HostError::Other(format!("disk image {path}: refused"))),
        };
        let overlay = state_dir(lab, name).join("overlay.qcow2");
        make_overlay(&chain, &overlay)?;
        let layers = chain
            .layers
            .iter()
            .map(|l| Ok((open(&l.path, false)?, l.format)))
            .collect::<Result<Vec<_>>>()?;
        boot.append.push_str(" cloonix.root=/dev/vda");
        boot.disk = Some((layers, open(&overlay, true)?));
    }
    Ok((boot, Some(g.id)))
}

/// A listening socket at `path` (a stale one removed), handed to qemu.
pub fn listen(path: &Path) -> Result<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    std::os::unix::net::UnixListener::bind(path)
        .map_err(io(format!("listen on {}", path.display())))
}

/// A fresh copy-on-write overlay on a checked chain; qemu-img does not open the base (`-u`).
fn make_overlay(chain: &qcow2::Chain, overlay: &Path) -> Result<()> {
    match std::fs::remove_file(overlay) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("remove an old overlay")(e));
        }
        _ => {}
    }
    let top = &chain.layers[0];
    crate::host::run(
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-u", "-F"])
            .arg(top.format.as_str())
            .arg("-b")
            .arg(&top.path)
            .arg(overlay)
            .arg(chain.virtual_size.to_string()),
        "make the disk's overlay",
    )?;
    Ok(())
}
