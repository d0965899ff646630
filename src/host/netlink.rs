//! rtnetlink in process: messages built and parsed by `netlink-packet-route`, sent on a
//! socket that the calling thread opens, so every request and dump concerns the network
//! namespace that thread is in. No process per interface.

use crate::model::units::{Cidr, Mac};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rustix::net::{RecvFlags, SendFlags, SocketFlags, SocketType};
use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// One interface as the kernel describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub up: bool,
    /// Its alias (`ip link set X alias ...`): cloonix's mark on the host's side.
    pub alias: Option<String>,
    /// Its addresses other than link-local ones.
    pub ips: Vec<Cidr>,
    /// Whether it is one end of a veth pair.
    pub veth: bool,
}

/// A route socket of the calling thread's namespace.
struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        let fd = rustix::net::socket_with(
            rustix::net::AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            // NETLINK_ROUTE is protocol 0, which rustix spells None.
            None,
        )?;
        Ok(Socket(fd))
    }

    fn send(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = 1;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        rustix::net::send(&self.0, &buf, SendFlags::empty())?;
        Ok(())
    }

    /// Reads answers until the request is done: the dump's messages, or its ACK.
    fn answers(&self) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let (n, _) = rustix::net::recv(&self.0, &mut buf[..], RecvFlags::empty())?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                if len < 16 || at + len > n {
                    return Err(invalid("short netlink message"));
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..at + len])
                    .map_err(|e| invalid(&e.to_string()))?;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
                at += (len + 3) & !3;
            }
        }
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.send(msg, NLM_F_ACK | flags)?;
        self.answers().map(|_| ())
    }

    fn dump(&self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.send(msg, NLM_F_DUMP)?;
        self.answers()
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn link_message(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    m
}

/// Every interface of the calling thread's namespace, by name, with its addresses: one
/// link dump and one address dump.
pub fn interfaces() -> io::Result<BTreeMap<String, Link>> {
    let sock = Socket::open()?;
    let mut by_index: BTreeMap<u32, (String, Link)> = BTreeMap::new();
    let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
    for msg in sock.dump(request)? {
        let RouteNetlinkMessage::NewLink(link) = msg else {
            continue;
        };
        let mut name = String::new();
        let mut state = Link {
            index: link.header.index,
            mac: None,
            mtu: 0,
            up: link.header.flags.contains(LinkFlags::Up),
            alias: None,
            ips: Vec::new(),
            veth: false,
        };
        for attr in link.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n,
                LinkAttribute::Mtu(m) => state.mtu = m,
                LinkAttribute::Address(a) => state.mac = <[u8; 6]>::try_from(a).ok().map(Mac),
                LinkAttribute::IfAlias(a) => state.alias = Some(a),
                LinkAttribute::LinkInfo(info) => {
                    state.veth = info
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)))
                }
                _ => {}
            }
        }
        by_index.insert(state.index, (name, state));
    }
    let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
    for msg in sock.dump(request)? {
        let RouteNetlinkMessage::NewAddress(addr) = msg else {
            continue;
        };
        if addr.header.scope == AddressScope::Link {
            continue;
        }
        let pick =
            |want: fn(&AddressAttribute) -> Option<IpAddr>| addr.attributes.iter().find_map(want);
        let ip = pick(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            pick(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let (Some(ip), Some((_, state))) = (ip, by_index.get_mut(&addr.header.index))
            && let Ok(net) = ipnet::IpNet::new(ip, addr.header.prefix_len)
        {
            state.ips.push(Cidr(net));
        }
    }
    Ok(by_index.into_values().collect())
}

/// Every route of the calling thread's namespace, in every table: its destination and
/// the interface it goes out of.
pub fn routes() -> io::Result<Vec<(ipnet::IpNet, Option<u32>)>> {
    let sock = Socket::open()?;
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        for msg in sock.dump(RouteNetlinkMessage::GetRoute(m))? {
            let RouteNetlinkMessage::NewRoute(r) = msg else {
                continue;
            };
            let len = r.header.destination_prefix_length;
            let dest = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                _ => None,
            });
            let dest = dest.unwrap_or(match family {
                AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            });
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            if let Ok(net) = ipnet::IpNet::new(dest, len) {
                out.push((net, oif));
            }
        }
    }
    Ok(out)
}

/// Creates a veth pair from the calling thread: `a` in the namespace of `a_ns` (None:
/// here), `b` in that of `b_ns`, both with `mtu`. Fails if a name is taken there.
pub fn create_veth(
    a: &str,
    a_ns: Option<BorrowedFd>,
    b: &str,
    b_ns: Option<BorrowedFd>,
    mtu: u32,
) -> io::Result<()> {
    let in_ns = |name: &str, ns: Option<BorrowedFd>| {
        let mut attrs = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::Mtu(mtu),
        ];
        if let Some(fd) = ns {
            attrs.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        attrs
    };
    let peer = link_message(0, in_ns(b, b_ns));
    let mut attrs = in_ns(a, a_ns);
    attrs.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    Socket::open()?.request(
        RouteNetlinkMessage::NewLink(link_message(0, attrs)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// What to change on an existing interface; `None` leaves a property as it is.
#[derive(Default)]
pub struct Change<'a> {
    pub name: Option<&'a str>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub up: Option<bool>,
    pub alias: Option<&'a str>,
    /// Moves it into the namespace of this descriptor, under its current name (a move
    /// fails, and moves nothing, when that name is taken there).
    pub netns: Option<BorrowedFd<'a>>,
}

/// Changes interface `index` of the calling thread's namespace in one request.
pub fn set(index: u32, c: &Change) -> io::Result<()> {
    let mut attrs = Vec::new();
    if let Some(n) = c.name {
        attrs.push(LinkAttribute::IfName(n.to_string()));
    }
    if let Some(m) = c.mac {
        attrs.push(LinkAttribute::Address(m.0.to_vec()));
    }
    if let Some(m) = c.mtu {
        attrs.push(LinkAttribute::Mtu(m));
    }
    if let Some(a) = c.alias {
        attrs.push(LinkAttribute::IfAlias(a.to_string()));
    }
    if let Some(fd) = c.netns {
        attrs.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    let mut msg = link_message(index, attrs);
    if let Some(up) = c.up {
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
    }
    Socket::open()?.request(RouteNetlinkMessage::NewLink(msg), 0)
}

fn address_message(index: u32, ip: &Cidr) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match ip.0.addr() {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = ip.0.prefix_len();
    m.header.index = index;
    m.attributes = vec![
        AddressAttribute::Local(ip.0.addr()),
        AddressAttribute::Address(ip.0.addr()),
    ];
    m
}

/// Adds an address to interface `index`; one it has already is fine.
pub fn add_address(index: u32, ip: &Cidr) -> io::Result<()> {
    let msg = RouteNetlinkMessage::NewAddress(address_message(index, ip));
    match Socket::open()?.request(msg, NLM_F_CREATE | NLM_F_REPLACE) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Removes an address from interface `index`; one it lacks is fine.
pub fn del_address(index: u32, ip: &Cidr) -> io::Result<()> {
    let msg = RouteNetlinkMessage::DelAddress(address_message(index, ip));
    match Socket::open()?.request(msg, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        other => other,
    }
}

/// Deletes interface `index` (and with it its veth peer); one that is gone is fine.
pub fn delete(index: u32) -> io::Result<()> {
    let msg = RouteNetlinkMessage::DelLink(link_message(index, Vec::new()));
    match Socket::open()?.request(msg, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other,
    }
}

/// The index of interface `name` in the calling thread's namespace, if it exists.
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid C string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}
