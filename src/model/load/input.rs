//! Reading a topology's text: from a file or, for `-`, standard input; never more than the
//! size limit, never from a device or a directory, and only as UTF-8.
//!
//! Whatever the command line names is read here, so this is where `cloonix validate
//! /dev/zero` must end quickly and in little memory instead of growing until killed.

use super::LoadError;
use crate::diag::{Diagnostic, Diagnostics, Pos};
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The most a topology file may hold. A file of ten thousand endpoints is a few MB.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// What the command line writes for standard input.
pub const STDIN: &str = "-";

/// A topology's text, and the directory its relative paths are relative to.
pub(super) struct Text {
    pub(super) shown: String,
    pub(super) text: String,
    pub(super) dir: PathBuf,
}

/// Reads `path`, or standard input when it is `-`; a document on standard input has the
/// current directory as its own.
pub(super) fn read(path: &Path) -> Result<Text, LoadError> {
    let shown = path.display().to_string();
    let (bytes, dir) = if path.as_os_str() == STDIN {
        let bytes = bounded(std::io::stdin().lock(), 0).map_err(|e| e.at(&shown))?;
        (bytes, PathBuf::from("."))
    } else {
        (
            read_file(path).map_err(|e| e.at(&shown))?,
            directory_of(path),
        )
    };
    let text = utf8(bytes).map_err(|(source_text, diagnostic)| LoadError::Invalid {
        path: shown.clone(),
        source_text,
        diagnostics: Diagnostics(vec![diagnostic]),
    })?;
    Ok(Text { shown, text, dir })
}

/// Why reading failed, before the path is known to the error.
enum Failure {
    Io(std::io::Error),
    NotAFile(&'static str),
    TooLarge,
}

impl Failure {
    fn at(self, path: &str) -> LoadError {
        let path = path.to_string();
        match self {
            Failure::Io(source) => LoadError::Read { path, source },
            Failure::NotAFile(what) => LoadError::NotAFile { path, what },
            Failure::TooLarge => LoadError::TooLarge {
                path,
                limit: MAX_FILE_BYTES,
            },
        }
    }
}

/// A regular file, or a pipe (`<(...)`, a FIFO): what can hold a topology. A device is
/// refused before it is opened, since opening some has effects; the opened file is checked
/// again in case the path changed in between.
fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    readable(&std::fs::metadata(path).map_err(Failure::Io)?)?;
    let file = File::open(path).map_err(Failure::Io)?;
    let meta = file.metadata().map_err(Failure::Io)?;
    readable(&meta)?;
    bounded(file, meta.len())
}

fn readable(meta: &Metadata) -> Result<(), Failure> {
    let t = meta.file_type();
    let what = if t.is_file() || t.is_fifo() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(Failure::NotAFile(what))
}

/// Reads at most [`MAX_FILE_BYTES`] + 1 bytes: one more than allowed tells that there was
/// more, without reading the rest. `expected` is the length when it is known (0 for a pipe).
///
/// The buffer is allocated once, at its largest when the length is unknown: a buffer grown by
/// doubling would hold 64 MiB and copy its way there, while pages of one never written to
/// cost no memory.
fn bounded(reader: impl Read, expected: u64) -> Result<Vec<u8>, Failure> {
    let capacity = match expected {
        0 => MAX_FILE_BYTES + 1,
        n => n.saturating_add(1).min(MAX_FILE_BYTES + 1),
    };
    let mut bytes = Vec::with_capacity(capacity as usize);
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Failure::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Failure::TooLarge);
    }
    Ok(bytes)
}

fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The text, or the position of its first byte that is not UTF-8 (with the text up to it,
/// which is all a rendered error shows).
fn utf8(bytes: Vec<u8>) -> Result<String, (String, Diagnostic)> {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let valid = err.utf8_error().valid_up_to();
    let bad = err.as_bytes()[valid];
    let mut bytes = err.into_bytes();
    bytes.truncate(valid);
    let mut text = String::from_utf8(bytes).expect("valid up to here");
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    let pos = Pos {
        line: text.matches('\n').count() as u32 + 1,
        col: text[line_start..].chars().count() as u32 + 1,
    };
    text.push(char::REPLACEMENT_CHARACTER);
    let diagnostic = Diagnostic::new(
        pos,
        format!("the file is not UTF-8 text: byte 0x{bad:02x} here"),
        "a topology file is UTF-8; convert it, e.g. `iconv -t UTF-8`",
    );
    Err((text, diagnostic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_byte_is_located() {
        let (text, d) = utf8(b"name: x\nlans: [a\xc3\xa9b\xff]\n".to_vec()).unwrap_err();
        assert_eq!(d.pos, Pos { line: 2, col: 11 });
        assert!(d.message.contains("0xff"), "{}", d.message);
        assert_eq!(text, "name: x\nlans: [a\u{e9}b\u{fffd}");
        assert_eq!(utf8(b"ok\n".to_vec()).unwrap(), "ok\n");
    }

    #[test]
    fn reading_stops_one_byte_past_the_limit() {
        let endless = std::io::repeat(b'#');
        assert!(matches!(bounded(endless, 0), Err(Failure::TooLarge)));
        let exact = std::io::repeat(b'#').take(MAX_FILE_BYTES);
        assert_eq!(
            bounded(exact, 0).ok().map(|b| b.len() as u64),
            Some(MAX_FILE_BYTES)
        );
    }
}
