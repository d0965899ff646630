//! The `cloonix` command: parses arguments, runs the library, turns errors into messages
//! and exit codes. Nothing else lives here.

mod cli;

/// cloonix builds and compares graphs of many small records; mimalloc halves the time that
/// glibc's allocator takes on them (see the plan benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    raise_open_files_limit();
    std::process::exit(cli::run());
}

/// Observing hundreds of namespaces in parallel holds more than the usual 1,024 descriptors.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
