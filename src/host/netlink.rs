//! Reading a namespace's interfaces over rtnetlink, in process: one link dump and one
//! address dump on a socket opened by the calling thread (so bound to its namespace).

use super::link::LinkState;
use crate::model::units::{Cidr, Mac};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_IFALIAS: u16 = 20;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RT_SCOPE_LINK: u8 = 253;

struct Socket(i32);

impl Socket {
    /// A route socket of the calling thread's namespace.
    fn open() -> io::Result<Socket> {
        // SAFETY: a plain socket call; the descriptor is owned by the result.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket(fd))
    }

    /// Sends one message: a netlink header of `kind` and `flags`, then `body`.
    fn send(&self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        let len = 16 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: sending a buffer we own on our socket.
        if unsafe { libc::send(self.0, msg.as_ptr().cast(), msg.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Sends one dump request and returns the payloads of its answers of type `want`.
fn dump(sock: &Socket, request: u16, want: u16, body: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    sock.send(
        request,
        (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        body,
    )?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: receiving into a buffer we own, of the size given.
        let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut at = 0;
        let n = n as usize;
        while at + 16 <= n {
            let mlen = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let mtype = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
            if mlen < 16 || at + mlen > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short netlink message",
                ));
            }
            match mtype {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code =
                        i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
                t if t == want => out.push(buf[at + 16..at + mlen].to_vec()),
                _ => {}
            }
            at += align(mlen);
        }
    }
}

/// The attributes after a fixed header of `skip` bytes: (type, value).
fn attrs(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = skip;
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & 0x3fff;
        if len < 4 || at + len > payload.len() {
            break;
        }
        out.push((kind, &payload[at + 4..at + len]));
        at += align(len);
    }
    out
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// Every interface of the calling thread's namespace, with its addresses.
pub fn interfaces() -> io::Result<BTreeMap<String, LinkState>> {
    let sock = Socket::open()?;
    let mut by_index: BTreeMap<i32, (String, LinkState)> = BTreeMap::new();
    for msg in dump(&sock, RTM_GETLINK, RTM_NEWLINK, &[0u8; 16])? {
        if msg.len() < 16 {
            continue;
        }
        let index = i32::from_ne_bytes(msg[4..8].try_into().expect("4 bytes"));
        let mut name = String::new();
        let mut state = LinkState {
            mac: None,
            mtu: 0,
            ips: Vec::new(),
            alias: None,
        };
        for (kind, v) in attrs(&msg, 16) {
            match kind {
                IFLA_IFNAME => name = text(v),
                IFLA_MTU if v.len() >= 4 => {
                    state.mtu = u32::from_ne_bytes(v[..4].try_into().expect("4 bytes"))
                }
                IFLA_ADDRESS if v.len() == 6 => {
                    state.mac = Some(Mac(v.try_into().expect("6 bytes")))
                }
                IFLA_IFALIAS => state.alias = Some(text(v)),
                _ => {}
            }
        }
        by_index.insert(index, (name, state));
    }
    for msg in dump(&sock, RTM_GETADDR, RTM_NEWADDR, &[0u8; 8])? {
        if msg.len() < 8 || msg[3] == RT_SCOPE_LINK {
            continue;
        }
        let (family, prefix) = (msg[0], msg[1]);
        let index = u32::from_ne_bytes(msg[4..8].try_into().expect("4 bytes")) as i32;
        let found = attrs(&msg, 8);
        let pick = |k: u16| found.iter().find(|(t, _)| *t == k).map(|(_, v)| *v);
        let raw = pick(IFA_LOCAL).or_else(|| pick(IFA_ADDRESS));
        let ip = match (family as i32, raw) {
            (libc::AF_INET, Some(v)) if v.len() == 4 => {
                IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))
            }
            (libc::AF_INET6, Some(v)) if v.len() == 16 => {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).expect("16 bytes")))
            }
            _ => continue,
        };
        if let (Some((_, state)), Ok(net)) =
            (by_index.get_mut(&index), ipnet::IpNet::new(ip, prefix))
        {
            state.ips.push(Cidr(net));
        }
    }
    Ok(by_index.into_values().collect())
}

const RTM_NEWLINK_REQ: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// A netlink attribute: type and value, padded.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(align(4 + value.len()));
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align(out.len()), 0);
    out
}

fn name_attr(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    attr(IFLA_IFNAME, &v)
}

/// An ifinfomsg: family, type, index, flags, change.
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut v = vec![0u8; 4];
    v.extend_from_slice(&index.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&change.to_ne_bytes());
    v
}

/// Sends one request and waits for its acknowledgement.
fn request(kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
    let sock = Socket::open()?;
    sock.send(
        kind,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16 | flags,
        body,
    )?;
    let mut buf = vec![0u8; 8192];
    // SAFETY: receiving into a buffer we own, of the size given.
    let n = unsafe { libc::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 20 {
        return Err(io::Error::last_os_error());
    }
    let code = i32::from_ne_bytes(buf[16..20].try_into().expect("4 bytes"));
    if code != 0 {
        return Err(io::Error::from_raw_os_error(-code));
    }
    Ok(())
}

/// Creates a veth pair from the calling thread's namespace: `a` into the namespace of
/// `a_ns` (None: here), `b` into that of `b_ns`, both with `mtu`.
pub fn create_veth(
    a: &str,
    a_ns: Option<i32>,
    b: &str,
    b_ns: Option<i32>,
    mtu: u32,
) -> io::Result<()> {
    let mut peer = ifinfo(0, 0, 0);
    peer.extend(name_attr(b));
    peer.extend(attr(IFLA_MTU, &mtu.to_ne_bytes()));
    if let Some(fd) = b_ns {
        peer.extend(attr(IFLA_NET_NS_FD, &(fd as u32).to_ne_bytes()));
    }
    let data = attr(VETH_INFO_PEER | NLA_F_NESTED, &peer);
    let mut info = attr(IFLA_INFO_KIND, b"veth\0");
    info.extend(attr(IFLA_INFO_DATA | NLA_F_NESTED, &data));
    let mut body = ifinfo(0, 0, 0);
    body.extend(name_attr(a));
    body.extend(attr(IFLA_MTU, &mtu.to_ne_bytes()));
    if let Some(fd) = a_ns {
        body.extend(attr(IFLA_NET_NS_FD, &(fd as u32).to_ne_bytes()));
    }
    body.extend(attr(IFLA_LINKINFO | NLA_F_NESTED, &info));
    request(
        RTM_NEWLINK_REQ,
        (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        &body,
    )
}

fn index_of(dev: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(dev).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i as i32),
    }
}

/// Sets `dev` (in the calling thread's namespace) up, with `mac` if given, and adds
/// `ips` to it.
pub fn configure(dev: &str, mac: Option<Mac>, ips: &[Cidr]) -> io::Result<()> {
    let index = index_of(dev)?;
    let up = libc::IFF_UP as u32;
    let mut body = ifinfo(index, up, up);
    if let Some(m) = mac {
        body.extend(attr(IFLA_ADDRESS, &m.0));
    }
    request(RTM_NEWLINK_REQ, 0, &body)?;
    for ip in ips {
        let body = addr_body(index, ip);
        match request(
            RTM_NEWADDR,
            (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16,
            &body,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    Ok(())
}

const RTM_DELLINK: u16 = 17;
const RTM_DELADDR: u16 = 21;

/// Changes a running interface (in the calling thread's namespace): its name (taken down
/// for the rename), MAC, MTU, and the addresses in `remove` and `add`; it ends up up.
pub fn update(
    dev: &str,
    new_name: &str,
    mac: Option<Mac>,
    mtu: u32,
    remove: &[Cidr],
    add: &[Cidr],
) -> io::Result<()> {
    let index = index_of(dev)?;
    let up = libc::IFF_UP as u32;
    if new_name != dev {
        request(RTM_NEWLINK_REQ, 0, &ifinfo(index, 0, up))?;
        let mut body = ifinfo(index, 0, 0);
        body.extend(name_attr(new_name));
        request(RTM_NEWLINK_REQ, 0, &body)?;
    }
    let mut body = ifinfo(index, up, up);
    body.extend(attr(IFLA_MTU, &mtu.to_ne_bytes()));
    if let Some(m) = mac {
        body.extend(attr(IFLA_ADDRESS, &m.0));
    }
    request(RTM_NEWLINK_REQ, 0, &body)?;
    for ip in remove {
        match request(RTM_DELADDR, 0, &addr_body(index, ip)) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
            other => other?,
        }
    }
    configure(new_name, None, add)
}

/// Deletes an interface (and with it its veth peer); one that is gone is fine.
pub fn delete(dev: &str) -> io::Result<()> {
    match index_of(dev) {
        Ok(index) => match request(RTM_DELLINK, 0, &ifinfo(index, 0, 0)) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        },
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(e),
    }
}

fn addr_body(index: i32, ip: &Cidr) -> Vec<u8> {
    let (family, bytes) = match ip.0.addr() {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let mut body = vec![family, ip.0.prefix_len(), 0, 0];
    body.extend_from_slice(&(index as u32).to_ne_bytes());
    body.extend(attr(IFA_LOCAL, &bytes));
    body.extend(attr(IFA_ADDRESS, &bytes));
    body
}
