//! The built-in VM guest: Debian's cloud kernel and an initramfs that cloonix makes from the
//! host's busybox, the kernel's virtio modules and three small scripts (`guest/`). Built
//! once into the image cache (`vm-guest-<key>`); each VM then boots it with a small archive
//! of its own appended (its hostname, NICs and files).
//!
//! The kernel comes from the versioned package `linux-image-<abi>-cloud-amd64` that the
//! metapackage depends on, fetched with `apt-get download` and unpacked with `dpkg-deb -x`
//! into the build directory: it is never installed. The package ships no `modules.dep`
//! (depmod runs at install time), so dependencies come from each module's `.modinfo`.
//!
//! Asking apt which kernel is current costs over a second, so an apply uses the newest
//! cached guest made from this busybox and these scripts, whatever its kernel; only when
//! there is none is apt asked. `cloonix images prune` makes room for a newer kernel.

use super::{HostError, Result, cache, io};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";
const METAPACKAGE: &str = "linux-image-cloud-amd64";
/// Bumped when the initramfs's layout changes, so that cached guests are rebuilt.
const LAYOUT: u32 = 1;
/// What the guest needs of the kernel's modules; their dependencies come along.
const WANTED: [&str; 5] = [
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "virtio_blk",
    "virtio_rng",
];

const INIT: &str = include_str!("guest/init");
const AGENT: &str = include_str!("guest/cloonix-agent");
const NETCFG: &str = include_str!("guest/cx-netcfg");

/// A built guest in the cache.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The cache entry's id (recorded by the VMs that use it, so prune keeps it).
    pub id: String,
    pub kernel: PathBuf,
    /// The base initramfs, an uncompressed newc archive.
    pub initrd: PathBuf,
}

fn hex(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

/// What every guest of this cloonix is made from, besides the kernel.
fn own_source() -> Result<serde_json::Value> {
    let busybox = std::fs::read(BUSYBOX).map_err(|_| HostError::Missing {
        program: "busybox".into(),
        package: "busybox-static",
    })?;
    let scripts = Sha256::digest(format!("{INIT}\0{AGENT}\0{NETCFG}\0{WANTED:?}").as_bytes());
    Ok(serde_json::json!({
        "busybox": hex(&Sha256::digest(&busybox), 16),
        "scripts": hex(&scripts, 16),
        "layout": LAYOUT,
    }))
}

/// The built-in guest, built on first use. Looked up once per run of cloonix.
pub fn builtin(progress: &dyn Fn(&str)) -> Result<Guest> {
    static FOUND: std::sync::Mutex<Option<Guest>> = std::sync::Mutex::new(None);
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(g) = found.as_ref().filter(|g| g.kernel.exists()) {
        return Ok(g.clone());
    }
    let own = own_source()?;
    let cached = cache::list()
        .into_iter()
        .filter(|m| m.kind == "vm-guest")
        .filter(|m| {
            ["busybox", "scripts", "layout"]
                .iter()
                .all(|k| m.source[k] == own[k])
        })
        .max_by(|a, b| a.created.cmp(&b.created));
    let dir = match cached {
        Some(m) => PathBuf::from(super::IMAGE_ROOT).join(m.id),
        None => {
            let (package, version) = current_kernel()?;
            let mut source = own;
            source["kernel"] = serde_json::json!(package);
            source["version"] = serde_json::json!(version);
            cache::get_or_build("vm-guest", source, progress, |dir| {
                progress(&format!(
                    "fetching Debian's {package} {version} (not installed)"
                ));
                build(dir, &package, &version)
            })?
        }
    };
    let guest = Guest {
        id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("base.cpio"),
    };
    *found = Some(guest.clone());
    Ok(guest)
}

/// The versioned cloud kernel package the metapackage depends on, and its version.
fn current_kernel() -> Result<(String, String)> {
    let deps = super::run(
        Command::new("apt-cache").args(["depends", METAPACKAGE]),
        "ask apt for Debian's cloud kernel",
    )?;
    let package = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-cloud-amd64"))
        .ok_or_else(|| {
            HostError::Other(format!(
                "apt knows no {METAPACKAGE}: run `apt-get update` (the built-in VM guest boots Debian's cloud kernel)"
            ))
        })?
        .to_string();
    let show = super::run(
        Command::new("apt-cache").args(["show", "--no-all-versions", &package]),
        "ask apt for the kernel's version",
    )?;
    let version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .ok_or_else(|| HostError::Other(format!("apt gives no version of {package}")))?
        .to_string();
    Ok((package, version))
}

/// Fetches and unpacks the kernel package in `dir`, keeps its kernel, and makes the base
/// initramfs from its modules; the package and its tree are removed after.
fn build(dir: &Path, package: &str, version: &str) -> Result<()> {
    let id = dir.display().to_string();
    let deb_dir = dir.join("deb");
    let tree = dir.join("tree");
    for d in [&deb_dir, &tree] {
        std::fs::create_dir_all(d).map_err(io("make the guest's build directory"))?;
    }
    super::run(
        Command::new("apt-get")
            .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
            .arg(format!("{package}={version}"))
            .current_dir(&deb_dir),
        &format!("apt-get download {package}"),
    )?;
    let deb = std::fs::read_dir(&deb_dir)
        .map_err(io("read the download directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| cache::build_error(&id, "apt-get download left no .deb"))?;
    super::run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree),
        "unpack the kernel package",
    )?;
    let modules_root = tree.join("lib/modules");
    let abi = std::fs::read_dir(&modules_root)
        .map_err(io("read the package's modules"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .ok_or_else(|| cache::build_error(&id, "the package has no modules"))?;
    std::fs::copy(
        tree.join(format!("boot/vmlinuz-{abi}")),
        dir.join("vmlinuz"),
    )
    .map_err(io("copy the kernel"))?;
    let modules =
        closure(&modules_root.join(&abi), &WANTED).map_err(|e| cache::build_error(&id, e))?;
    let cpio = base_archive(&modules)?;
    std::fs::write(dir.join("base.cpio"), cpio).map_err(io("write the initramfs"))?;
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    std::fs::write(dir.join("modules.txt"), names.join("\n") + "\n")
        .map_err(io("write modules.txt"))?;
    for d in [&deb_dir, &tree] {
        std::fs::remove_dir_all(d).map_err(io("remove the kernel package's files"))?;
    }
    Ok(())
}

/// The `key=value` entries of a kernel module's `.modinfo` section.
fn modinfo(data: &[u8]) -> std::result::Result<BTreeMap<String, String>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or("a module without .modinfo")?;
    let bytes = section.data().map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for item in bytes.split(|b| *b == 0) {
        let text = String::from_utf8_lossy(item);
        if let Some((k, v)) = text.split_once('=') {
            out.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    Ok(out)
}

/// The modules `wanted` and their dependencies, each after what it depends on: names
/// (with `_`, as the kernel knows them) and contents. `modules` is `lib/modules/<abi>`.
fn closure(modules: &Path, wanted: &[&str]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut stack = vec![modules.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p.file_name().and_then(|n| n.to_str()?.strip_suffix(".ko")) {
                files.insert(stem.replace('-', "_"), p);
            }
        }
    }
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> = builtin
        .lines()
        .filter_map(|l| Some(Path::new(l).file_stem()?.to_str()?.replace('-', "_")))
        .collect();
    let mut order: Vec<(String, Vec<u8>)> = Vec::new();
    fn visit(
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        builtin: &[String],
        order: &mut Vec<(String, Vec<u8>)>,
        depth: usize,
    ) -> std::result::Result<(), String> {
        let name = name.replace('-', "_");
        if order.iter().any(|(n, _)| *n == name) {
            return Ok(());
        }
        let Some(path) = files.get(&name) else {
            return match builtin.contains(&name) {
                true => Ok(()),
                false => Err(format!(
                    "module {name} is neither in the package nor built in"
                )),
            };
        };
        if depth > 32 {
            return Err(format!("module {name}: dependencies too deep"));
        }
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let info = modinfo(&data)?;
        for dep in info
            .get("depends")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
        {
            if !dep.is_empty() {
                visit(dep, files, builtin, order, depth + 1)?;
            }
        }
        order.push((name, data));
        Ok(())
    }
    for w in wanted {
        visit(w, &files, &builtin, &mut order, 0)?;
    }
    Ok(order)
}

/// A newc archive being written: entries in order, parents before children, every time
/// zero, so that the same inputs give the same bytes.
struct Archive {
    out: Vec<u8>,
    ino: u32,
}

impl Archive {
    fn new() -> Archive {
        Archive {
            out: Vec::new(),
            ino: 0,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) -> Result<()> {
        self.ino += 1;
        let mut w = cpio::newc::Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .rdev_major(rdev.0)
            .rdev_minor(rdev.1)
            .write(&mut self.out, data.len() as u32);
        w.write_all(data).map_err(io("write an archive entry"))?;
        w.finish().map_err(io("write an archive entry"))?;
        Ok(())
    }

    fn dir(&mut self, name: &str, mode: u32) -> Result<()> {
        self.entry(name, 0o040000 | mode, &[], (0, 0))
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(name, 0o100000 | mode, data, (0, 0))
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        self.entry(name, 0o120777, target.as_bytes(), (0, 0))
    }

    fn chardev(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(name, 0o020000 | mode, &[], (major, minor))
    }

    fn finish(mut self) -> Result<Vec<u8>> {
        cpio::newc::trailer(&mut self.out).map_err(io("end an archive"))?;
        Ok(self.out)
    }
}

/// The base initramfs: busybox and its applets, the modules and their order, `/init`, the
/// agent and `cx-netcfg`, and `dev/console` (the kernel opens it before it runs `/init`:
/// without it, init has no standard input or output).
fn base_archive(modules: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut a = Archive::new();
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "etc/cloonix",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "dev",
        "run",
        "root",
        "var",
        "var/log",
    ] {
        a.dir(d, 0o755)?;
    }
    a.dir("tmp", 0o1777)?;
    a.chardev("dev/console", 0o600, 5, 1)?;
    a.chardev("dev/null", 0o666, 1, 3)?;
    let busybox = std::fs::read(BUSYBOX).map_err(io("read busybox"))?;
    a.file("bin/busybox", 0o755, &busybox)?;
    let applets = super::run(
        Command::new(BUSYBOX).arg("--list-full"),
        "list busybox applets",
    )?;
    for applet in applets.lines() {
        if !applet.is_empty() && applet != "bin/busybox" && !applet.starts_with("linuxrc") {
            a.symlink(applet, "/bin/busybox")?;
        }
    }
    let mut order = String::new();
    for (name, data) in modules {
        a.file(&format!("lib/modules/{name}.ko"), 0o644, data)?;
        order.push_str(name);
        order.push('\n');
    }
    a.file("etc/cloonix/modules", 0o644, order.as_bytes())?;
    a.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    a.file("etc/group", 0o644, b"root:x:0:\ntty:x:5:\n")?;
    a.file(
        "etc/profile",
        0o644,
        b"PS1=\"$(hostname):\\w# \"; export PS1\n",
    )?;
    a.file("etc/hosts", 0o644, b"127.0.0.1 localhost\n")?;
    a.file("init", 0o755, INIT.as_bytes())?;
    a.file("bin/cloonix-agent", 0o755, AGENT.as_bytes())?;
    a.file("bin/cx-netcfg", 0o755, NETCFG.as_bytes())?;
    a.finish()
}

/// A NIC as the guest configures it at boot.
#[derive(Debug, Clone)]
pub struct BootNic {
    pub mac: String,
    pub name: String,
    pub mtu: u32,
    pub ips: Vec<String>,
}

/// A file the guest finds at boot.
#[derive(Debug, Clone)]
pub struct BootFile {
    pub path: String,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// The line `cx-netcfg` reads for a NIC (and, with `--boot`, prefixed by `eth`).
pub fn netcfg_args(n: &BootNic) -> Vec<String> {
    let mut v = vec![n.mac.clone(), n.name.clone(), n.mtu.to_string()];
    v.extend(n.ips.iter().cloned());
    v
}

/// A VM's own archive, appended to the base: its config, and its files under
/// `/.cloonix-files`, which `/init` copies into the root it boots (the initramfs's or a
/// disk's). Later archives overwrite earlier ones, so nothing of the base is repeated.
pub fn config_archive(hostname: &str, nics: &[BootNic], files: &[BootFile]) -> Result<Vec<u8>> {
    let mut config = format!("hostname {hostname}\n");
    for n in nics {
        config.push_str(&format!("eth {}\n", netcfg_args(n).join(" ")));
    }
    let mut a = Archive::new();
    a.file("etc/cloonix/config", 0o644, config.as_bytes())?;
    let mut made: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    a.dir(".cloonix-files", 0o755)?;
    for f in files {
        let rel = f.path.trim_start_matches('/');
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let d = parts[..i].join("/");
            if made.insert(d.clone()) {
                a.dir(&format!(".cloonix-files/{d}"), 0o755)?;
            }
        }
        a.file(
            &format!(".cloonix-files/{rel}"),
            f.mode & 0o7777,
            &f.content,
        )?;
    }
    a.finish()
}

/// Writes a VM's initramfs: the base, then its own archive. The base ends on a 4-byte
/// boundary (every newc entry does), where the kernel looks for the next archive.
pub fn write_initrd(base: &Path, own: &[u8], to: &Path) -> Result<()> {
    let mut data = std::fs::read(base).map_err(io(format!("read {}", base.display())))?;
    debug_assert_eq!(data.len() % 4, 0);
    data.extend_from_slice(own);
    std::fs::write(to, data).map_err(io(format!("write {}", to.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(mut data: &[u8]) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        loop {
            let r = cpio::NewcReader::new(data).unwrap();
            if r.entry().is_trailer() {
                return out;
            }
            out.push((r.entry().name().to_string(), r.entry().mode()));
            data = r.finish().unwrap();
        }
    }

    #[test]
    fn a_config_archive_holds_config_and_files_with_parents_first() {
        let nics = [BootNic {
            mac: "02:00:00:00:00:01".into(),
            name: "eth0".into(),
            mtu: 1500,
            ips: vec!["10.0.0.1/24".into()],
        }];
        let files = [BootFile {
            path: "/opt/x/y.txt".into(),
            mode: 0o600,
            content: b"hi".to_vec(),
        }];
        let a = config_archive("vm1", &nics, &files).unwrap();
        assert_eq!(a.len() % 4, 0);
        let names: Vec<(String, u32)> = entries(&a);
        let want = [
            ("etc/cloonix/config", 0o100644),
            (".cloonix-files", 0o040755),
            (".cloonix-files/opt", 0o040755),
            (".cloonix-files/opt/x", 0o040755),
            (".cloonix-files/opt/x/y.txt", 0o100600),
        ];
        let want: Vec<(String, u32)> = want.iter().map(|(n, m)| (n.to_string(), *m)).collect();
        assert_eq!(names, want);
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("hostname vm1\neth 02:00:00:00:00:01 eth0 1500 10.0.0.1/24\n"));
    }
}
