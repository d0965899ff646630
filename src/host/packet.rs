//! Frames off one interface, read in process with an AF_PACKET socket: no tcpdump to start,
//! find and stop. The socket is made by a thread inside the interface's namespace and
//! stays bound to that namespace, so any thread can read it afterwards.
//!
//! Plain `recvmsg` with kernel timestamps, one frame per call: the userspace datapath
//! copies at most a few hundred thousand frames a second to a mirror, which this keeps up
//! with (see the README's figures); what the kernel drops when it does not is counted.

use super::{HostError, Result, io, netns};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{SystemTime, UNIX_EPOCH};

/// Kernel socket buffer asked for: a burst of some ten thousand full frames.
const RCVBUF: libc::c_int = 16 << 20;
/// Not in every libc: Linux 4.20's option to leave out frames the host itself sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// One frame read: when it came, and how much of it is in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Since the Unix epoch.
    pub sec: u64,
    pub nsec: u32,
    /// Bytes in the buffer.
    pub caplen: usize,
    /// Bytes on the wire (more than `caplen` when the buffer was too small).
    pub len: usize,
}

/// A socket that receives every frame arriving on one interface.
pub struct Listener {
    fd: OwnedFd,
    received: u64,
    dropped: u64,
}

/// Brings `ifname` of namespace `ns` up with IPv6 off (it has no IPv4 address either, so
/// the host itself sends nothing on it), and opens a listener on it.
pub fn listen(ns: &str, ifname: &str) -> Result<Listener> {
    let ifname = ifname.to_string();
    netns::within(ns, move || {
        let sysctl = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
        // Absent when the host has no IPv6 at all; nothing to quiet then.
        if std::path::Path::new(&sysctl).exists() {
            std::fs::write(&sysctl, "1").map_err(io(format!("turn IPv6 off on {ifname}")))?;
        }
        // Up before the bind: a socket bound to a down interface starts with an error.
        netns::set_up(&ifname)?;
        Listener::bind(&ifname)
    })
}

fn last_error(what: &str) -> HostError {
    io(what)(std::io::Error::last_os_error())
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: an int option on a socket we own.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

impl Listener {
    /// In the calling thread's namespace.
    fn bind(ifname: &str) -> Result<Listener> {
        let name = std::ffi::CString::new(ifname)
            .map_err(|_| HostError::Other(format!("bad interface name {ifname:?}")))?;
        // SAFETY: plain syscalls on values we own; the fd is owned as soon as it exists.
        let fd = unsafe {
            // Protocol 0: no frames at all until bound to the one interface below.
            let raw = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            );
            if raw < 0 {
                return Err(last_error("open a packet socket"));
            }
            OwnedFd::from_raw_fd(raw)
        };
        // SAFETY: a C string that outlives the call.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(last_error(&format!("find interface {ifname}")));
        }
        // FORCE passes the system's limit with CAP_NET_ADMIN; without it, what we may have.
        if !setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF) {
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        if !setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1) {
            return Err(last_error("ask for packet timestamps"));
        }
        // Older kernels lack it; outgoing frames are skipped by type in `recv` anyway.
        setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
        // SAFETY: a zeroed sockaddr_ll is valid; bind reads it only.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            addr.sll_ifindex = index as i32;
            if libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            ) != 0
            {
                return Err(last_error(&format!("listen on {ifname}")));
            }
        }
        Ok(Listener {
            fd,
            received: 0,
            dropped: 0,
        })
    }

    /// The next frame into `buf`, or None when none is waiting. An error means the
    /// interface is gone (ENETDOWN) or the socket broke.
    pub fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<Frame>> {
        loop {
            // SAFETY: zeroed POD out-parameters; recvmsg writes within the given lengths.
            let (n, addr, stamp) = unsafe {
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                let mut control = [0u64; 8];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
                msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = size_of_val(&control);
                let n = libc::recvmsg(
                    self.fd.as_raw_fd(),
                    &mut msg,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                );
                let mut stamp = None;
                if n >= 0 {
                    let mut c = libc::CMSG_FIRSTHDR(&msg);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::SOL_SOCKET
                            && (*c).cmsg_type == libc::SCM_TIMESTAMPNS
                        {
                            let ts: libc::timespec =
                                std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                            stamp = Some((ts.tv_sec as u64, ts.tv_nsec as u32));
                        }
                        c = libc::CMSG_NXTHDR(&msg, c);
                    }
                }
                (n, addr, stamp)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(None),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if addr.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let (sec, nsec) = stamp.unwrap_or_else(now);
            let len = n as usize;
            return Ok(Some(Frame {
                sec,
                nsec,
                caplen: len.min(buf.len()),
                len,
            }));
        }
    }

    /// Frames the kernel delivered and dropped (its buffer was full) so far.
    pub fn stats(&mut self) -> (u64, u64) {
        // SAFETY: PACKET_STATISTICS fills a tpacket_stats; the kernel resets its counters
        // on each read, so they are added up here.
        unsafe {
            let mut st: libc::tpacket_stats = std::mem::zeroed();
            let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
            if libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            ) == 0
            {
                self.received += u64::from(st.tp_packets);
                self.dropped += u64::from(st.tp_drops);
            }
        }
        (self.received, self.dropped)
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn now() -> (u64, u32) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs(), t.subsec_nanos())
}
