//! The `cloonix` command: parses arguments, runs the library, turns errors into messages
//! and exit codes. Nothing else lives here.

mod cli;

/// cloonix builds and compares graphs of many small records; mimalloc halves the time that
/// glibc's allocator takes on them (see the plan benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
