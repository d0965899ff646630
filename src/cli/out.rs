//! Writing reports to stdout and messages to stderr without panicking when the reader has
//! gone.
//!
//! `println!` panics when stdout is a closed pipe (`cloonix status lab | head -1`), and Rust
//! ignores SIGPIPE, so that panic is what would end the command, exit 101 with a backtrace,
//! possibly in the middle of an apply. Restoring SIGPIPE's default would kill the apply
//! instead. The spec wants neither: a closed stdout is not an error, and the command
//! finishes its work quietly and exits as it would have. So every write goes through here:
//! on a broken pipe it is remembered and later writes are skipped.
//!
//! Any other failure to write a report (a full disk) is said once on stderr and makes the
//! command exit 1: the user asked for output and did not get it.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Stdout took no more: a reader that left, or an error already reported.
static STDOUT_DONE: AtomicBool = AtomicBool::new(false);
/// Stdout failed for another reason than a reader that left.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout, unless it has gone; use through [`out!`] and [`outln!`].
pub fn stdout(args: fmt::Arguments) {
    if STDOUT_DONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        failed(e);
    }
}

/// Writes to stderr; a stderr that has gone is ignored (there is nowhere left to say so).
pub fn stderr(args: fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Flushes stdout at the end of a command; true when the report did not reach it for
/// another reason than a reader that left.
pub fn finish() -> bool {
    if !STDOUT_DONE.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
    {
        failed(e);
    }
    STDOUT_FAILED.load(Ordering::Relaxed)
}

fn failed(e: std::io::Error) {
    STDOUT_DONE.store(true, Ordering::Relaxed);
    if e.kind() != ErrorKind::BrokenPipe {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
        stderr(format_args!(
            "cloonix: cannot write to standard output: {e}\n"
        ));
    }
}

/// `print!` that survives a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!($($arg)*)) };
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    () => { $crate::cli::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that survives a closed stderr.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a closed stderr.
macro_rules! errln {
    () => { $crate::cli::out::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {err, errln, out, outln};
