//! What a qcow2 disk image makes qemu open besides itself, read from the images' headers
//! before qemu sees them, so that a stranger's image whose backing file names `/etc/shadow`
//! or a host disk exposes nothing.
//!
//! Each layer's header is read here, in process, one layer at a time: no tool is asked to
//! follow a name (`qemu-img info --backing-chain` opens every file a header names). A layer
//! is refused if it names an external data file, is marked corrupt or encrypted, uses a
//! feature cloonix does not know, or names a backing file without its format (qemu would
//! guess the format), by a protocol or `json:` name, through a symlink, or in a loop. qemu
//! is then handed the chain as checked, every format given, with no backing below the last
//! layer (see `host::qemu`): it never follows a name from a header itself.
//!
//! Why not `qemu-img info`: the header fields that matter are few and fixed by the format's
//! specification (qemu's docs/interop/qcow2.rst), a process per layer per load costs more
//! than the read, and the loader can then point at the file's line without running tools.

use std::path::{Path, PathBuf};

/// The most layers a chain may have.
pub const MAX_DEPTH: usize = 16;

const MAGIC: &[u8; 4] = b"QFI\xfb";
const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Incompatible feature bits (version 3): dirty, corrupt, external data file,
/// compression type, extended L2 entries.
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_KNOWN: u64 = 0b1_1111;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Qcow2,
    Raw,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Raw => "raw",
        }
    }
}

/// What a qcow2 header says that matters here.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub virtual_size: u64,
    /// The backing file's name as written, and its format if the header gives one.
    pub backing: Option<(String, Option<String>)>,
}

/// One file of a checked chain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Its canonical path.
    pub path: PathBuf,
    pub format: Format,
}

/// A checked chain, top first.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub layers: Vec<Layer>,
    /// The top's virtual size, which an overlay on it takes.
    pub virtual_size: u64,
}

/// Reads a qcow2 header from the start of an image (its first cluster is enough).
pub fn parse_header(b: &[u8]) -> Result<Header, String> {
    let u32_at = |o: usize| -> Result<u32, String> {
        b.get(o..o + 4)
            .map(|s| u32::from_be_bytes(s.try_into().expect("4 bytes")))
            .ok_or_else(|| "its header is cut short".to_string())
    };
    let u64_at = |o: usize| -> Result<u64, String> {
        b.get(o..o + 8)
            .map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| "its header is cut short".to_string())
    };
    if b.get(..4) != Some(MAGIC) {
        return Err("it is not a qcow2 image".into());
    }
    let version = u32_at(4)?;
    if !(2..=3).contains(&version) {
        return Err(format!("qcow2 version {version} is not supported"));
    }
    let backing_offset = u64_at(8)? as usize;
    let backing_size = u32_at(16)? as usize;
    let virtual_size = u64_at(24)?;
    if u32_at(32)? != 0 {
        return Err("it is encrypted".into());
    }
    let mut ext_start = 72;
    if version == 3 {
        let incompat = u64_at(72)?;
        if incompat & INCOMPAT_DATA_FILE != 0 {
            return Err("it keeps its data in an external data file".into());
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err("it is marked corrupt".into());
        }
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(format!(
                "it uses incompatible features cloonix does not know ({incompat:#x})"
            ));
        }
        ext_start = u32_at(100)? as usize;
    }
    let mut backing_format = None;
    let mut at = ext_start;
    loop {
        let kind = u32_at(at)?;
        let len = u32_at(at + 4)? as usize;
        let data = b
            .get(at + 8..at + 8 + len)
            .ok_or("a header extension is cut short")?;
        match kind {
            EXT_END => break,
            EXT_DATA_FILE => return Err("it names an external data file".into()),
            EXT_BACKING_FORMAT => {
                backing_format = Some(String::from_utf8_lossy(data).into_owned());
            }
            _ => {}
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    let backing = match (backing_offset, backing_size) {
        (0, _) | (_, 0) => None,
        (o, n) => {
            let raw = b
                .get(o..o + n)
                .ok_or("its backing file name lies past its first cluster")?;
            let name =
                std::str::from_utf8(raw).map_err(|_| "its backing file name is not UTF-8")?;
            Some((name.to_string(), backing_format))
        }
    };
    Ok(Header {
        virtual_size,
        backing,
    })
}

/// Why a chain is refused, or a layer that needs the user's word.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A hard refusal.
    Refused(String),
    /// A layer outside the allowed directory (allowed with `--allow-host`).
    Outside(PathBuf),
}

/// Reads the first cluster of an image (at most 2 MiB, qcow2's largest cluster).
fn head(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(2 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(buf)
}

/// Checks the image at `top` (a canonical path) and every file below it. Layers outside
/// `within` are reported as [`Problem::Outside`] and still checked; the first hard refusal
/// ends the walk. With no `within`, no layer is outside.
pub fn chain(top: &Path, within: Option<&Path>) -> (Option<Chain>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut layers: Vec<Layer> = Vec::new();
    let mut next = Some((top.to_path_buf(), Format::Qcow2));
    let mut virtual_size = 0;
    while let Some((path, format)) = next.take() {
        let refuse = |problems: &mut Vec<Problem>, why: String| {
            problems.push(Problem::Refused(why));
        };
        if layers.len() == MAX_DEPTH {
            refuse(
                &mut problems,
                format!("its backing chain is deeper than {MAX_DEPTH} files"),
            );
            return (None, problems);
        }
        let shown = path.display().to_string();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                refuse(&mut problems, format!("`{shown}` is a symlink"));
                return (None, problems);
            }
            Ok(m) if !m.is_file() => {
                refuse(&mut problems, format!("`{shown}` is not a regular file"));
                return (None, problems);
            }
            Ok(_) => {}
            Err(e) => {
                refuse(&mut problems, format!("`{shown}`: {e}"));
                return (None, problems);
            }
        }
        let real = match path.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                refuse(&mut problems, format!("`{shown}`: {e}"));
                return (None, problems);
            }
        };
        if layers.iter().any(|l| l.path == real) {
            refuse(
                &mut problems,
                format!("its backing chain loops at `{shown}`"),
            );
            return (None, problems);
        }
        if within.is_some_and(|d| !real.starts_with(d)) {
            problems.push(Problem::Outside(real.clone()));
        }
        if format == Format::Qcow2 {
            let header = match head(&real).and_then(|b| parse_header(&b)) {
                Ok(h) => h,
                Err(why) => {
                    refuse(&mut problems, format!("`{shown}`: {why}"));
                    return (None, problems);
                }
            };
            if layers.is_empty() {
                virtual_size = header.virtual_size;
            }
            if let Some((name, fmt)) = header.backing {
                match backing_of(&real, &name, fmt.as_deref()) {
                    Ok(n) => next = Some(n),
                    Err(why) => {
                        refuse(&mut problems, format!("`{shown}`: {why}"));
                        return (None, problems);
                    }
                }
            }
        }
        layers.push(Layer { path: real, format });
    }
    (
        Some(Chain {
            layers,
            virtual_size,
        }),
        problems,
    )
}

/// The file and format a layer's backing name stands for: a plain path, relative to the
/// layer's directory, with its format given.
fn backing_of(layer: &Path, name: &str, format: Option<&str>) -> Result<(PathBuf, Format), String> {
    let bad = name
        .bytes()
        .find(|&b| matches!(b, b':' | b',' | b'\\') || b < 0x20 || b == 0x7f);
    if name.is_empty() || bad.is_some() {
        return Err(format!(
            "its backing file `{}` is not a plain file name (protocol, `json:` and option names are refused)",
            name.escape_debug()
        ));
    }
    let format = match format {
        Some("qcow2") => Format::Qcow2,
        Some("raw") => Format::Raw,
        Some(other) => {
            return Err(format!(
                "its backing file `{name}` has format `{other}`; only qcow2 and raw are used"
            ));
        }
        None => {
            return Err(format!(
                "its backing file `{name}` has no format in the header (qemu would guess it); \
                 recreate it with `qemu-img rebase -u -F qcow2|raw -b {name}`"
            ));
        }
    };
    let dir = layer.parent().unwrap_or(Path::new("/"));
    Ok((dir.join(name), format))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header with the given extensions and backing name.
    fn header(incompat: u64, exts: &[(u32, &[u8])], backing: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        b[72..80].copy_from_slice(&incompat.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        let mut at = 112;
        for (kind, data) in exts {
            b[at..at + 4].copy_from_slice(&kind.to_be_bytes());
            b[at + 4..at + 8].copy_from_slice(&(data.len() as u32).to_be_bytes());
            b[at + 8..at + 8 + data.len()].copy_from_slice(data);
            at += 8 + data.len().div_ceil(8) * 8;
        }
        if let Some(name) = backing {
            b[8..16].copy_from_slice(&1024u64.to_be_bytes());
            b[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
            b[1024..1024 + name.len()].copy_from_slice(name.as_bytes());
        }
        b
    }

    #[test]
    fn a_plain_header_reads() {
        let h = parse_header(&header(0, &[], None)).unwrap();
        assert_eq!(h.virtual_size, 1 << 30);
        assert_eq!(h.backing, None);
        let h = parse_header(&header(0, &[(EXT_BACKING_FORMAT, b"raw")], Some("b.img"))).unwrap();
        assert_eq!(h.backing, Some(("b.img".into(), Some("raw".into()))));
    }

    #[test]
    fn what_reaches_beyond_the_image_is_refused() {
        assert!(parse_header(&header(INCOMPAT_DATA_FILE, &[], None)).is_err());
        assert!(parse_header(&header(0, &[(EXT_DATA_FILE, b"/dev/sda")], None)).is_err());
        assert!(parse_header(&header(INCOMPAT_CORRUPT, &[], None)).is_err());
        assert!(parse_header(&header(1 << 9, &[], None)).is_err());
        assert!(parse_header(b"\0\0\0\0 a raw disk").is_err());
        assert!(parse_header(&MAGIC[..]).is_err());
    }

    #[test]
    fn backing_names_must_be_plain_and_typed() {
        let l = Path::new("/labs/x/top.qcow2");
        assert_eq!(
            backing_of(l, "base.qcow2", Some("qcow2")).unwrap(),
            (PathBuf::from("/labs/x/base.qcow2"), Format::Qcow2)
        );
        for bad in ["json:{}", "nbd:127.0.0.1:1", "a,b", ""] {
            assert!(backing_of(l, bad, Some("raw")).is_err(), "{bad}");
        }
        assert!(backing_of(l, "base.qcow2", None).is_err());
        assert!(backing_of(l, "base.vmdk", Some("vmdk")).is_err());
    }
}
