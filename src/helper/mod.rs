//! cloonix's own data-plane helper, one process per a2b or c2c endpoint, run as the hidden
//! subcommand `cloonix helper` (one crate, one binary) inside the endpoint's namespace:
//! two frame ports (a2b: its veths `a` and `b`; c2c: `eth0` and a UDP socket handed over
//! from cloonix's own namespace) and a control socket under
//! `/run/cloonix/<lab>/helpers/`. cloonix starts and stops it through `host::process` and
//! talks to it through `host::helper`.
//!
//! Written here rather than borrowed: nothing packaged delays, shapes and drops frames
//! per direction between two interfaces (this kernel has no netem), and the VXLAN
//! framing is eight bytes.

pub mod a2b;
pub mod c2c;
pub mod control;
pub mod impair;
pub mod packet;

use crate::model::C2cRole;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What one helper serves. `--lab` and `--endpoint` name it for `ps` and for the sweep that
/// finds a helper an interrupted apply did not record.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub lab: String,
    #[arg(long)]
    pub endpoint: String,
    /// The control socket.
    #[arg(long)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Impairments between ports `a` and `b`.
    A2b {
        #[arg(long, default_value = "a")]
        a: String,
        #[arg(long, default_value = "b")]
        b: String,
        /// The settings, as JSON (`A2bSettings`).
        #[arg(long)]
        settings: String,
    },
    /// Frames of `iface` to and from a peer over the UDP socket it inherits.
    C2c {
        #[arg(long, default_value = "eth0")]
        iface: String,
        #[arg(long, value_parser = parse_role)]
        role: C2cRole,
        /// The slave's address (master only).
        #[arg(long)]
        peer: Option<SocketAddr>,
        #[arg(long)]
        vni: u32,
        /// The UDP socket, made by cloonix in its own namespace and inherited.
        #[arg(long)]
        udp_fd: i32,
    },
}

fn parse_role(s: &str) -> Result<C2cRole, String> {
    match s {
        "master" => Ok(C2cRole::Master),
        "slave" => Ok(C2cRole::Slave),
        _ => Err(format!("unknown role {s}")),
    }
}

/// Runs the helper until it is stopped or a port fails; its exit code.
pub fn main(args: Args) -> i32 {
    // Ahead of ordinary work on a busy host: a frame's delay is a promise in milliseconds.
    // SAFETY: setpriority on this process; failing leaves the default, which is fine.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
    let result = match args.what {
        What::A2b { a, b, settings } => serde_json::from_str(&settings)
            .map_err(|e| format!("settings: {e}"))
            .and_then(|s| a2b::run(&a, &b, s, &args.socket)),
        What::C2c {
            iface,
            role,
            peer,
            vni,
            udp_fd,
        } => {
            use std::os::fd::FromRawFd;
            // SAFETY: cloonix hands the UDP socket over as `--udp-fd` (host::process's
            // `pass`); checked to be a socket, and not a standard stream, before it is owned.
            let udp = unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                if udp_fd < 3
                    || libc::fstat(udp_fd, &mut st) != 0
                    || st.st_mode & libc::S_IFMT != libc::S_IFSOCK
                {
                    eprintln!("cloonix helper: no UDP socket on fd {udp_fd}");
                    return 1;
                }
                std::net::UdpSocket::from_raw_fd(udp_fd)
            };
            c2c::run(c2c::Config {
                role,
                iface: &iface,
                udp,
                peer,
                vni,
                socket: &args.socket,
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cloonix helper {}/{}: {e}", args.lab, args.endpoint);
            1
        }
    }
}
