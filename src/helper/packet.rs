//! The helper's frame ports: AF_PACKET sockets on one interface of its namespace, read and
//! written a batch per system call (`recvmmsg`/`sendmmsg`).
//!
//! Why not the mmap rings: a TPACKET_V3 receive ring wakes its reader only when a block is
//! full or its timer (≥ 1 ms) expires, which adds up to a millisecond to every frame of a
//! quiet link and would spoil the delays a2b promises; a TPACKET_V2 ring wakes per frame
//! but has fixed slots, which must then hold 64 KiB segments. Batches of 64 frames per
//! call cost the same single copy each way and wake per frame. Measured in the README.
//!
//! Every frame carries the 10-byte `virtio_net_hdr` in front of it (PACKET_VNET_HDR): a
//! TCP segment of up to 64 KiB that the sender's TSO left whole passes through the helper
//! as one frame, with its segmentation left to whoever sends it on the wire.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Size of the `virtio_net_hdr` in front of each frame.
pub const VNET: usize = 10;
/// Room for one frame: a 64 KiB segment, its headers and the vnet header.
pub const FRAME_ROOM: usize = 65536 + 512;
/// Frames read or written per system call.
pub const BATCH: usize = 64;

const GSO_NONE: u8 = 0;

/// What a frame's vnet header says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How many wire frames it stands for (1 unless it is a TSO/GSO segment).
    pub frames: u32,
    /// Their bytes on the wire: Ethernet header and payload of each frame.
    pub wire_bytes: u64,
}

/// The shape of `buf`, a vnet header followed by an Ethernet frame.
pub fn shape(buf: &[u8]) -> Shape {
    let len = buf.len().saturating_sub(VNET) as u64;
    if buf.len() < VNET || buf[1] == GSO_NONE {
        return Shape {
            frames: 1,
            wire_bytes: len,
        };
    }
    let hdr_len = u16::from_le_bytes([buf[2], buf[3]]) as u64;
    let gso_size = u16::from_le_bytes([buf[4], buf[5]]).max(1) as u64;
    // hdr_len may be a hint only; the headers are at least Ethernet + IP + TCP.
    let headers = hdr_len.clamp(54, len.max(54));
    let payload = len.saturating_sub(headers);
    let frames = payload.div_ceil(gso_size).max(1);
    Shape {
        frames: frames as u32,
        wire_bytes: payload + frames * headers,
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: T) -> io::Result<()> {
    // SAFETY: value lives across the call and its size is given.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn ifindex(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    match i {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name}"),
        )),
        i => Ok(i as i32),
    }
}

/// An AF_PACKET socket bound to an interface: `rx` receives every frame the interface
/// receives (none that it sends), a socket made without `rx` receives nothing.
fn open(iface: &str, rx: bool) -> io::Result<OwnedFd> {
    let proto = if rx {
        (libc::ETH_P_ALL as u16).to_be() as libc::c_int
    } else {
        0
    };
    // SAFETY: plain socket call; the descriptor is owned at once.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto,
        ))?)
    };
    setopt(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1i32)?;
    if rx {
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1i32)?;
        // Room for bursts while the helper is not scheduled (FORCE: above rmem_max; root).
        setopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8i32 << 20)?;
    } else {
        // Straight to the driver: a veth has no queue worth passing through.
        setopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1i32)?;
        setopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 8i32 << 20)?;
    }
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto as u16;
    sll.sll_ifindex = ifindex(iface)?;
    // SAFETY: sll is a valid sockaddr_ll of the size given.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// The receiving side of a port, with its own buffers.
pub struct Rx {
    fd: OwnedFd,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
}

impl Rx {
    pub fn open(iface: &str) -> io::Result<Rx> {
        Ok(Rx {
            fd: open(iface, true)?,
            bufs: (0..BATCH).map(|_| vec![0u8; FRAME_ROOM]).collect(),
            lens: vec![0; BATCH],
        })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Reads what is waiting, up to a batch, without blocking: how many frames are now in
    /// [`Rx::frame`]. Frames cut short (bigger than the room) are dropped here.
    pub fn recv(&mut self) -> io::Result<usize> {
        recv_into(&self.fd, &mut self.bufs, &mut self.lens, 0)
    }

    /// Frame `i` of the last [`Rx::recv`], vnet header first.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i][..self.lens[i]]
    }
}

/// `recvmmsg` into `bufs` at `offset`, non-blocking; lengths (offset included) in `lens`.
/// Frames cut short are dropped, the others moved to the front.
pub fn recv_into(
    fd: &OwnedFd,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    offset: usize,
) -> io::Result<usize> {
    let mut cut = [false; BATCH];
    let n = recv_batch(fd, bufs, offset, None, lens, &mut cut)?;
    let mut kept = 0;
    for i in (0..n).filter(|&i| !cut[i]) {
        if kept != i {
            bufs.swap(kept, i);
            lens[kept] = lens[i];
        }
        kept += 1;
    }
    Ok(kept)
}

/// One `recvmmsg` of at most [`BATCH`] messages into `bufs` at `offset`, non-blocking,
/// each one's source into `names` when given: how many came (0 when none was waiting),
/// each one's length (offset included) in `lens` and whether it was cut short in `cut`.
pub fn recv_batch(
    fd: &OwnedFd,
    bufs: &mut [Vec<u8>],
    offset: usize,
    mut names: Option<&mut [libc::sockaddr_storage]>,
    lens: &mut [usize],
    cut: &mut [bool],
) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .take(BATCH)
        .map(|b| libc::iovec {
            iov_base: b[offset..].as_mut_ptr().cast(),
            iov_len: b.len() - offset,
        })
        .collect();
    // SAFETY: zeroed mmsghdr is valid; each points at its own live iovec and name.
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .enumerate()
        .map(|(i, iov)| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            if let Some(name) = names.as_deref_mut().and_then(|n| n.get_mut(i)) {
                m.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            }
            m
        })
        .collect();
    // SAFETY: msgs and the buffers and names they point at outlive the call.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        };
    }
    for (i, m) in msgs.iter().take(n as usize).enumerate() {
        lens[i] = m.msg_len as usize + offset;
        cut[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
    }
    Ok(n as usize)
}

/// The sending side of a port.
pub struct Tx {
    fd: OwnedFd,
}

impl Tx {
    pub fn open(iface: &str) -> io::Result<Tx> {
        Ok(Tx {
            fd: open(iface, false)?,
        })
    }

    /// Sends every frame (vnet header first), a batch per call. A frame the interface
    /// refuses (its peer gone, say) is dropped: a link loses frames, it does not stall.
    pub fn send<'a>(&self, frames: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        send_batch(&self.fd, frames, None)
    }
}

/// `sendmmsg` of `frames` to the socket's bound (or, with `to`, this) address.
pub fn send_batch<'a>(
    fd: &OwnedFd,
    frames: impl IntoIterator<Item = &'a [u8]>,
    to: Option<&socket2_addr::Addr>,
) -> io::Result<()> {
    let mut iter = frames.into_iter().peekable();
    while iter.peek().is_some() {
        let mut iovs: Vec<libc::iovec> = iter
            .by_ref()
            .take(BATCH)
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: zeroed mmsghdr is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                if let Some(to) = to {
                    m.msg_hdr.msg_name = to.ptr() as *mut libc::c_void;
                    m.msg_hdr.msg_namelen = to.size();
                }
                m
            })
            .collect();
        let mut done = 0;
        while done < msgs.len() {
            // SAFETY: msgs and the frames they point at outlive the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as libc::c_uint,
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // The first frame of the rest was refused: skip it, send on.
                    Some(
                        libc::ENOBUFS
                        | libc::EAGAIN
                        | libc::EMSGSIZE
                        | libc::EINVAL
                        | libc::ECONNREFUSED
                        | libc::EHOSTUNREACH
                        | libc::ENETUNREACH
                        | libc::ENETDOWN,
                    ) => done += 1,
                    _ => return Err(e),
                }
            } else {
                done += n as usize;
            }
        }
    }
    Ok(())
}

/// A socket address for `sendmmsg`, kept in its C form.
pub mod socket2_addr {
    use std::net::SocketAddr;

    pub struct Addr {
        storage: libc::sockaddr_storage,
        len: libc::socklen_t,
    }

    impl Addr {
        pub fn new(a: SocketAddr) -> Addr {
            // SAFETY: zeroed sockaddr_storage is valid; the matching struct is written in.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = match a {
                SocketAddr::V4(v4) => {
                    let sin = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: v4.port().to_be(),
                        sin_addr: libc::in_addr {
                            s_addr: u32::from_ne_bytes(v4.ip().octets()),
                        },
                        sin_zero: [0; 8],
                    };
                    // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned.
                    unsafe {
                        std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin)
                    };
                    std::mem::size_of::<libc::sockaddr_in>()
                }
                SocketAddr::V6(v6) => {
                    let sin6 = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: v6.port().to_be(),
                        sin6_flowinfo: v6.flowinfo(),
                        sin6_addr: libc::in6_addr {
                            s6_addr: v6.ip().octets(),
                        },
                        sin6_scope_id: v6.scope_id(),
                    };
                    // SAFETY: as above, for sockaddr_in6.
                    unsafe {
                        std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                    };
                    std::mem::size_of::<libc::sockaddr_in6>()
                }
            };
            Addr {
                storage,
                len: len as libc::socklen_t,
            }
        }

        pub fn ptr(&self) -> *const libc::sockaddr_storage {
            &self.storage
        }

        /// The size of the address in bytes (for `msg_namelen`).
        pub fn size(&self) -> libc::socklen_t {
            self.len
        }
    }
}

/// Waits until `fd` is readable or `timeout` passes (None: forever).
pub fn wait_readable(fds: &[&OwnedFd], timeout: Option<std::time::Duration>) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    // SAFETY: pfds and ts outlive the call.
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            ts.as_ref().map_or(std::ptr::null(), |t| t as *const _),
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    for p in &pfds {
        if p.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the interface is gone",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tso_segment_counts_as_its_wire_frames() {
        let mut buf = vec![0u8; VNET + 54 + 14480];
        buf[1] = 1; // TCPv4
        buf[2..4].copy_from_slice(&54u16.to_le_bytes());
        buf[4..6].copy_from_slice(&1448u16.to_le_bytes());
        let s = shape(&buf);
        assert_eq!(s.frames, 10);
        assert_eq!(s.wire_bytes, 10 * (54 + 1448));
        let plain = vec![0u8; VNET + 1514];
        assert_eq!(
            shape(&plain),
            Shape {
                frames: 1,
                wire_bytes: 1514
            }
        );
    }
}
