//! qemu: the command line of one VM and which accelerator this host offers (its QMP
//! client is `host::qmp`).
//!
//! A VM is started sandboxed (`-sandbox on` with every optional part denied: no spawning,
//! no privilege changes, no obsolete or resource-control calls), with no default devices,
//! no user config, no reboot (a guest that reboots or panics ends qemu, which cloonix then
//! sees as drift). Its disk chain is handed over layer by layer in JSON `-blockdev`s, every
//! format given and no backing below the last layer, so qemu opens no file that a header
//! names. It is handed everything open (sockets, kernel, initrd, disk layers, log, taps)
//! and runs as a user of its own with no capabilities. Its NICs are taps that cloonix made
//! in the lab's switch namespace, opened without a virtio-net header: with one, the guest
//! leaves checksums to the host and OVS's userspace datapath forwards them unfilled, so TCP
//! fails.

use serde_json::{Value, json};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub const PROGRAM: &str = "qemu-system-x86_64";
const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Kvm,
    Tcg,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Kvm => "kvm",
            Engine::Tcg => "tcg",
        }
    }
}

/// Whether KVM can run guests here, and if not, why: the CPU must advertise vmx or svm
/// (a nested host that hides them hangs a KVM guest with no output) and /dev/kvm must open.
pub fn kvm_available() -> std::result::Result<(), String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !virt {
        return Err("the CPU advertises neither vmx nor svm".into());
    }
    std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The accelerator for `accel` (auto: KVM where available, TCG otherwise), with why.
pub fn engine(accel: crate::model::Accel) -> std::result::Result<(Engine, String), String> {
    use crate::model::Accel;
    match (accel, kvm_available()) {
        (Accel::Tcg, _) => Ok((Engine::Tcg, "asked for".into())),
        (Accel::Kvm, Ok(())) | (Accel::Auto, Ok(())) => {
            Ok((Engine::Kvm, "KVM is available".into()))
        }
        (Accel::Kvm, Err(why)) => Err(format!("accel kvm: {why}")),
        (Accel::Auto, Err(why)) => Ok((Engine::Tcg, format!("no KVM: {why}"))),
    }
}

/// The host's memory, in MiB.
pub fn host_ram_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// The NIC models, as qemu's drivers.
pub fn driver(model: crate::model::NicModel) -> &'static str {
    match model {
        crate::model::NicModel::Virtio => "virtio-net-pci",
        crate::model::NicModel::E1000 => "e1000",
    }
}

/// qemu's ids of a NIC's backend and device.
pub fn netdev_id(iface: &str) -> String {
    format!("net-{iface}")
}

pub fn device_id(iface: &str) -> String {
    format!("nic-{iface}")
}

/// The user and group a VM's qemu runs as: a number of its own, derived from its lab and
/// name, in a range that no distribution allocates (Debian's ids end at 65533; subordinate
/// ranges for user namespaces start at 100000 and grow by 65536 per user). It owns no
/// file and, but for a hash collision, shares its id with no other process: an escaped
/// guest holds an unprivileged process that can signal or trace no other.
pub fn user_of(lab: &str, vm: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{lab}/{vm}").as_bytes());
    0x5C00_0000 + (u32::from_be_bytes([0, d[0], d[1], d[2]]))
}

/// A NIC a VM starts with: its tap, opened by cloonix.
#[derive(Debug)]
pub struct Nic {
    pub iface: String,
    pub tap: OwnedFd,
    pub mac: String,
    pub model: crate::model::NicModel,
}

/// Where a VM's runtime files are.
#[derive(Debug, Clone)]
pub struct Sockets {
    pub qmp: PathBuf,
    pub agent: PathBuf,
    pub console: PathBuf,
    /// Everything the serial console printed, also while nobody was attached.
    pub console_log: PathBuf,
}

impl Sockets {
    pub fn in_dir(dir: &Path) -> Sockets {
        Sockets {
            qmp: dir.join("qmp.sock"),
            agent: dir.join("agent.sock"),
            console: dir.join("console.sock"),
            console_log: dir.join("console.log"),
        }
    }
}

/// What boots, opened by cloonix.
#[derive(Debug)]
pub struct Boot {
    pub kernel: File,
    pub initrd: Option<File>,
    pub append: String,
    /// A disk: its layers, top first, each opened read-only, and the overlay that takes
    /// the writes, opened read-write.
    pub disk: Option<(Vec<(File, crate::model::qcow2::Format)>, File)>,
}

/// Everything that makes one VM's command line. qemu is handed every file, socket and
/// tap open, and runs as a user of its own ([`user_of`]): it opens nothing of the lab's by
/// name (it could not: the lab's directories are root's), only its firmware.
#[derive(Debug)]
pub struct Machine {
    /// qemu's `-name`, also how an unrecorded qemu of this VM is recognised.
    pub name: String,
    pub engine: Engine,
    /// /dev/kvm, opened by cloonix, when the engine is KVM.
    pub kvm: Option<File>,
    pub cpus: u32,
    pub ram_mib: u32,
    pub boot: Boot,
    pub nics: Vec<Nic>,
    pub qmp: UnixListener,
    pub agent: UnixListener,
    pub console: UnixListener,
    pub console_log: File,
}

/// A file handed over by descriptor, as qemu's file functions take it: `/dev/fdset/N`
/// for those that know fd sets (block devices, logs, /dev/kvm), `/proc/self/fd/N` for
/// the rest (the kernel and initrd).
fn by_fd(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

const SET_LOG: u32 = 1;
const SET_KVM: u32 = 2;
const SET_DISK: u32 = 10;

fn chardev(id: &str, listener: &UnixListener, extra: &str) -> String {
    format!(
        "socket,id={id},fd={},server=on,wait=off{extra}",
        listener.as_raw_fd()
    )
}

/// The disk chain as JSON `-blockdev`s, base first: read-only layers, `backing: null` at
/// the bottom, the overlay on top; the name of the top node. `layers` are top first, as
/// the filenames qemu opens them by.
pub fn blockdevs(
    layers: &[(String, crate::model::qcow2::Format)],
    overlay: &str,
) -> (Vec<String>, String) {
    use crate::model::qcow2::Format;
    let mut out = Vec::new();
    let mut below: Option<String> = None;
    let files = layers
        .iter()
        .rev()
        .map(|(path, format)| (path.as_str(), *format, true))
        .chain(std::iter::once((overlay, Format::Qcow2, false)));
    for (n, (path, format, read_only)) in files.enumerate() {
        let file = format!("disk-f{n}");
        let node = format!("disk-l{n}");
        out.push(
            json!({"driver": "file", "node-name": file, "filename": path, "read-only": read_only})
                .to_string(),
        );
        let mut fmt = json!({"driver": format.as_str(), "node-name": node, "file": file, "read-only": read_only});
        if format == Format::Qcow2 {
            fmt["backing"] = below.map(Value::String).unwrap_or(Value::Null);
        }
        out.push(fmt.to_string());
        below = Some(node);
    }
    (out, below.expect("an overlay at least"))
}

impl Machine {
    /// The descriptors qemu inherits.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v: Vec<BorrowedFd> = vec![
            self.qmp.as_fd(),
            self.agent.as_fd(),
            self.console.as_fd(),
            self.console_log.as_fd(),
            self.boot.kernel.as_fd(),
        ];
        v.extend(self.boot.initrd.as_ref().map(|f| f.as_fd()));
        v.extend(self.kvm.as_ref().map(|f| f.as_fd()));
        if let Some((layers, overlay)) = &self.boot.disk {
            v.extend(layers.iter().map(|(f, _)| f.as_fd()));
            v.push(overlay.as_fd());
        }
        v.extend(self.nics.iter().map(|n| n.tap.as_fd()));
        v
    }

    pub fn argv(&self) -> Vec<String> {
        let add_fd = |fd: &dyn AsRawFd, set: u32| format!("fd={},set={set}", fd.as_raw_fd());
        let mut a: Vec<String> = vec!["-name".into(), self.name.clone()];
        match &self.kvm {
            Some(kvm) => a.extend([
                "-add-fd".into(),
                add_fd(kvm, SET_KVM),
                "-accel".into(),
                format!("kvm,device=/dev/fdset/{SET_KVM}"),
                "-cpu".into(),
                "host".into(),
            ]),
            None => a.extend(["-accel".into(), self.engine.as_str().into()]),
        }
        a.extend([
            "-m".into(),
            self.ram_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-sandbox".into(),
            SANDBOX.into(),
            "-M".into(),
            "pc,smm=off,vmport=off,usb=off".into(),
            "-kernel".into(),
            by_fd(&self.boot.kernel),
        ]);
        if let Some(initrd) = &self.boot.initrd {
            a.extend(["-initrd".into(), by_fd(initrd)]);
        }
        a.extend(["-append".into(), self.boot.append.clone()]);
        a.extend([
            "-chardev".into(),
            chardev("qmp0", &self.qmp, ""),
            "-mon".into(),
            "chardev=qmp0,mode=control".into(),
            "-add-fd".into(),
            add_fd(&self.console_log, SET_LOG),
            "-chardev".into(),
            chardev(
                "con0",
                &self.console,
                &format!(",logfile=/dev/fdset/{SET_LOG},logappend=on"),
            ),
            "-serial".into(),
            "chardev:con0".into(),
            "-chardev".into(),
            chardev("agent0", &self.agent, ""),
            "-device".into(),
            "virtio-serial-pci,id=vser0".into(),
            "-device".into(),
            "virtserialport,bus=vser0.0,chardev=agent0,name=cloonix.agent".into(),
            "-object".into(),
            "rng-builtin,id=rng0".into(),
            "-device".into(),
            "virtio-rng-pci,rng=rng0".into(),
        ]);
        if let Some((layers, overlay)) = &self.boot.disk {
            let mut named = Vec::new();
            for (i, (f, format)) in layers.iter().enumerate() {
                let set = SET_DISK + i as u32;
                a.extend(["-add-fd".into(), add_fd(f, set)]);
                named.push((format!("/dev/fdset/{set}"), *format));
            }
            let set = SET_DISK + layers.len() as u32;
            a.extend(["-add-fd".into(), add_fd(overlay, set)]);
            let (devs, top) = blockdevs(&named, &format!("/dev/fdset/{set}"));
            for d in devs {
                a.extend(["-blockdev".into(), d]);
            }
            a.extend([
                "-device".into(),
                format!("virtio-blk-pci,drive={top},id=disk0"),
            ]);
        }
        for n in &self.nics {
            // A tap opened without IFF_VNET_HDR: qemu offers the guest no offload, so
            // the guest fills its own checksums.
            a.extend([
                "-netdev".into(),
                format!("tap,id={},fd={}", netdev_id(&n.iface), n.tap.as_raw_fd()),
                "-device".into(),
                // No option ROM: nothing boots from the network, and iPXE's costs time.
                format!(
                    "{},netdev={},mac={},id={},romfile=",
                    driver(n.model),
                    netdev_id(&n.iface),
                    n.mac,
                    device_id(&n.iface)
                ),
            ]);
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::qcow2::Format;

    #[test]
    fn the_disk_chain_is_explicit_from_the_bottom_up() {
        let layers = [
            ("/dev/fdset/10".to_string(), Format::Qcow2),
            ("/dev/fdset/11".to_string(), Format::Raw),
        ];
        let (devs, top) = blockdevs(&layers, "/dev/fdset/12");
        let v: Vec<Value> = devs
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(v[0]["filename"], "/dev/fdset/11");
        assert_eq!(v[1]["driver"], "raw");
        assert!(v[1].get("backing").is_none(), "raw has no backing");
        assert_eq!(v[3]["driver"], "qcow2");
        assert_eq!(v[3]["backing"], "disk-l0");
        assert_eq!(v[3]["read-only"], true);
        assert_eq!(v[5]["backing"], "disk-l1");
        assert_eq!(v[5]["read-only"], false);
        assert_eq!(top, "disk-l2");
        let single = blockdevs(&layers[..1], "/dev/fdset/12").0;
        let base: Value = serde_json::from_str(&single[1]).unwrap();
        assert_eq!(base["backing"], Value::Null, "nothing below the bottom");
    }

    #[test]
    fn each_vm_has_a_user_of_its_own_beyond_every_allocated_range() {
        let a = user_of("lab", "vm1");
        assert_eq!(a, user_of("lab", "vm1"));
        assert_ne!(a, user_of("lab", "vm2"));
        assert_ne!(a, user_of("lab-2", "vm1"));
        assert!((0x5C00_0000..0x5D00_0000).contains(&a));
    }
}
