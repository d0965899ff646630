//! The c2c helper: frames of the lan (port `eth0`) carried to the peer over UDP in VXLAN
//! (RFC 7348: an 8-byte header, flag I, a 24-bit VNI, then the Ethernet frame without its
//! FCS), so that the far side may be a kernel VXLAN device as well as another cloonix.
//!
//! Keepalives are datagrams that are not VXLAN (they start with `CLNX`, whose first byte
//! lacks the I flag, so a kernel VXLAN device drops them): the master probes its peer
//! every second for as long as it runs, the slave answers each probe from the address it
//! came from and sends its frames there. Either side is `up` while it has heard from the
//! other (a keepalive or a frame) within the last 3 s; `loss` is the share of the last 20
//! keepalives that did not arrive.

use super::control::{self, Reply};
use super::packet::{self, Rx, Tx, VNET};
use crate::model::C2cRole;
use crate::status::{C2cStatus, Health};
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VXLAN_HDR: usize = 8;
const FLAG_I: u8 = 0x08;
const MAGIC: &[u8; 4] = b"CLNX";
const PROBE: u8 = 1;
const ANSWER: u8 = 2;
const KEEPALIVE_LEN: usize = 16;
const INTERVAL: Duration = Duration::from_secs(1);
const DEAD_AFTER: Duration = Duration::from_secs(3);
const WINDOW: usize = 20;

/// The VXLAN header of `vni`.
pub fn vxlan_header(vni: u32) -> [u8; VXLAN_HDR] {
    let v = vni.to_be_bytes();
    [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The VNI of a VXLAN datagram, if it is one with the I flag.
pub fn vxlan_vni(d: &[u8]) -> Option<u32> {
    (d.len() >= VXLAN_HDR + 14 && d[0] & FLAG_I != 0)
        .then(|| u32::from_be_bytes([0, d[4], d[5], d[6]]))
}

fn keepalive(kind: u8, vni: u32, seq: u32) -> [u8; KEEPALIVE_LEN] {
    let mut k = [0u8; KEEPALIVE_LEN];
    k[..4].copy_from_slice(MAGIC);
    k[4] = kind;
    k[8..12].copy_from_slice(&vni.to_be_bytes());
    k[12..16].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A keepalive's kind, VNI and sequence number.
fn parse_keepalive(d: &[u8]) -> Option<(u8, u32, u32)> {
    if d.len() != KEEPALIVE_LEN || &d[..4] != MAGIC {
        return None;
    }
    let n = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    Some((d[4], n(8), n(12)))
}

struct Link {
    role: C2cRole,
    local: String,
    vni: u32,
    peer: Option<SocketAddr>,
    last_seen: Option<Instant>,
    /// Keepalives of the window: (sequence, arrived).
    window: VecDeque<(u32, bool)>,
    frames_out: u64,
    frames_in: u64,
    dropped: u64,
}

impl Link {
    fn heard(&mut self, from: SocketAddr) {
        self.last_seen = Some(Instant::now());
        if self.role == C2cRole::Slave {
            self.peer = Some(from);
        }
    }

    fn status(&self) -> C2cStatus {
        let ago = self.last_seen.map(|t| t.elapsed());
        // The master's newest probe may still be on its way: judge the settled ones.
        let settled: Vec<bool> = match self.role {
            C2cRole::Master => self.window.iter().rev().skip(1).map(|(_, a)| *a).collect(),
            C2cRole::Slave => self.window.iter().map(|(_, a)| *a).collect(),
        };
        let lost = settled.iter().filter(|a| !**a).count();
        C2cStatus {
            state: match ago {
                Some(a) if a < DEAD_AFTER => Health::Up,
                _ => Health::Down,
            },
            role: self.role,
            local: self.local.clone(),
            peer: self.peer.map(|p| p.to_string()),
            vni: self.vni,
            last_seen_ms: ago.map(|a| a.as_millis() as u64),
            loss: match settled.len() {
                0 => 0.0,
                n => (lost as f64 * 1000.0 / n as f64).round() / 10.0,
            },
            frames_out: self.frames_out,
            frames_in: self.frames_in,
            dropped: self.dropped,
        }
    }

    /// Records the slave's view of a probe: the gap since the last one counts as lost.
    fn probe_seen(&mut self, seq: u32) {
        if let Some(&(last, _)) = self.window.back() {
            if seq <= last {
                return;
            }
            for missing in (last + 1..seq).take(WINDOW) {
                self.window.push_back((missing, false));
            }
        }
        self.window.push_back((seq, true));
        while self.window.len() > WINDOW {
            self.window.pop_front();
        }
    }
}

pub struct Config<'a> {
    pub role: C2cRole,
    pub iface: &'a str,
    pub udp: UdpSocket,
    pub peer: Option<SocketAddr>,
    pub vni: u32,
    pub socket: &'a Path,
}

pub fn run(c: Config) -> Result<(), String> {
    let rx = Rx::open(c.iface).map_err(|e| format!("port {}: {e}", c.iface))?;
    let tx = Tx::open(c.iface).map_err(|e| format!("port {}: {e}", c.iface))?;
    let local = c
        .udp
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let link = Arc::new(Mutex::new(Link {
        role: c.role,
        local,
        vni: c.vni,
        peer: c.peer,
        last_seen: None,
        window: VecDeque::new(),
        frames_out: 0,
        frames_in: 0,
        dropped: 0,
    }));
    let l2 = link.clone();
    control::serve(c.socket, move |_| Reply {
        c2c: Some(l2.lock().expect("no panics").status()),
        ..Reply::default()
    })
    .map_err(|e| format!("control socket {}: {e}", c.socket.display()))?;
    let udp: OwnedFd = c.udp.into();
    let udp = Arc::new(udp);
    let (u2, l3, vni) = (udp.clone(), link.clone(), c.vni);
    let out = std::thread::spawn(move || frames_out(rx, &u2, &l3, vni));
    let inn = std::thread::spawn(move || frames_in(&udp, tx, &link, vni));
    loop {
        if out.is_finished() {
            return out.join().unwrap_or(Err("a thread panicked".into()));
        }
        if inn.is_finished() {
            return inn.join().unwrap_or(Err("a thread panicked".into()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Frames of the lan to the peer: the VXLAN header is written over the tail of the vnet
/// header, in place, so each datagram is sent from the buffer it was read into.
fn frames_out(mut rx: Rx, udp: &OwnedFd, link: &Mutex<Link>, vni: u32) -> Result<(), String> {
    let hdr = vxlan_header(vni);
    let fail = |e: std::io::Error| e.to_string();
    loop {
        packet::wait_readable(&[rx.fd()], None).map_err(fail)?;
        let n = rx.recv().map_err(fail)?;
        if n == 0 {
            continue;
        }
        let Some(peer) = link.lock().expect("no panics").peer else {
            link.lock().expect("no panics").dropped += n as u64;
            continue;
        };
        let mut idx: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            let f = rx.frame_mut(i);
            // Frames reach the helper cut to wire size with their checksums done (the
            // switch side of eth0 has no offloads); anything else cannot cross.
            if f.len() <= VNET || f[1] != 0 {
                continue;
            }
            f[VNET - VXLAN_HDR..VNET].copy_from_slice(&hdr);
            idx.push(i);
        }
        let sent = idx.len() as u64;
        let to = packet::socket2_addr::Addr::new(peer);
        packet::send_batch(
            udp,
            idx.iter().map(|&i| &rx.frame(i)[VNET - VXLAN_HDR..]),
            Some(&to),
        )
        .map_err(fail)?;
        let mut l = link.lock().expect("no panics");
        l.frames_out += sent;
        l.dropped += n as u64 - sent;
    }
}

/// Datagrams from the peer: keepalives answered or counted, VXLAN frames of our VNI sent
/// on the lan; and, for the master, a probe every second.
fn frames_in(udp: &OwnedFd, tx: Tx, link: &Mutex<Link>, vni: u32) -> Result<(), String> {
    // Each datagram is read two bytes in, so that its 8-byte VXLAN header plus those two
    // bytes make room for the 10-byte vnet header the frame leaves with.
    const OFF: usize = VNET - VXLAN_HDR;
    let mut bufs: Vec<Vec<u8>> = (0..packet::BATCH).map(|_| vec![0u8; 65536]).collect();
    let mut lens = vec![0usize; packet::BATCH];
    let mut addrs = vec![None; packet::BATCH];
    let mut seq = 0u32;
    let mut next_probe = Instant::now();
    let role = link.lock().expect("no panics").role;
    let fail = |e: std::io::Error| e.to_string();
    loop {
        if role == C2cRole::Master && Instant::now() >= next_probe {
            seq = seq.wrapping_add(1);
            let mut l = link.lock().expect("no panics");
            l.window.push_back((seq, false));
            while l.window.len() > WINDOW {
                l.window.pop_front();
            }
            if let Some(peer) = l.peer {
                drop(l);
                // A peer not there yet refuses it: the master tries again next second.
                let k = keepalive(PROBE, vni, seq);
                let to = packet::socket2_addr::Addr::new(peer);
                let _ = packet::send_batch(udp, [&k[..]], Some(&to));
            }
            next_probe += INTERVAL;
        }
        let timeout = match role {
            C2cRole::Master => next_probe.saturating_duration_since(Instant::now()),
            C2cRole::Slave => INTERVAL,
        };
        packet::wait_readable(&[udp], Some(timeout)).map_err(fail)?;
        let n = recv_from(udp, &mut bufs, &mut lens, &mut addrs, OFF).map_err(fail)?;
        let mut out: Vec<usize> = Vec::with_capacity(n);
        let mut l = link.lock().expect("no panics");
        for i in 0..n {
            let Some(from) = addrs[i] else { continue };
            let d = &bufs[i][OFF..lens[i]];
            if let Some((kind, kvni, kseq)) = parse_keepalive(d) {
                if kvni != vni {
                    l.dropped += 1;
                    continue;
                }
                l.heard(from);
                match kind {
                    PROBE => {
                        l.probe_seen(kseq);
                        let k = keepalive(ANSWER, vni, kseq);
                        let to = packet::socket2_addr::Addr::new(from);
                        let _ = packet::send_batch(udp, [&k[..]], Some(&to));
                    }
                    ANSWER => {
                        if let Some(e) = l.window.iter_mut().find(|(s, _)| *s == kseq) {
                            e.1 = true;
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if vxlan_vni(d) != Some(vni) {
                l.dropped += 1;
                continue;
            }
            l.heard(from);
            // A plain frame: no offload asked of the kernel.
            bufs[i][..VNET].fill(0);
            out.push(i);
        }
        l.frames_in += out.len() as u64;
        drop(l);
        tx.send(out.iter().map(|&i| &bufs[i][..lens[i]]))
            .map_err(fail)?;
    }
}

/// `recvmmsg` on a UDP socket, non-blocking, with each datagram's source (none for one
/// cut short).
fn recv_from(
    fd: &OwnedFd,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    addrs: &mut [Option<SocketAddr>],
    offset: usize,
) -> std::io::Result<usize> {
    // SAFETY: zeroed sockaddr_storage values are valid.
    let mut names: Vec<libc::sockaddr_storage> = (0..bufs.len())
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    let mut cut = [false; packet::BATCH];
    let n = match packet::recv_batch(fd, bufs, offset, Some(&mut names), lens, &mut cut) {
        // What an earlier datagram to a peer not there yet left on the socket.
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => 0,
        r => r?,
    };
    for i in 0..n {
        addrs[i] = if cut[i] { None } else { sockaddr(&names[i]) };
    }
    Ok(n)
}

fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says it holds a sockaddr_in.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it holds a sockaddr_in6.
            let a = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vxlan_header_is_rfc_7348s() {
        let h = vxlan_header(0x12_3456);
        assert_eq!(h, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        let mut d = h.to_vec();
        d.extend_from_slice(&[0u8; 14]);
        assert_eq!(vxlan_vni(&d), Some(0x12_3456));
    }

    #[test]
    fn keepalives_are_not_vxlan() {
        let k = keepalive(PROBE, 7, 9);
        assert_eq!(k[0] & FLAG_I, 0, "a kernel VXLAN device drops them");
        assert_eq!(vxlan_vni(&k), None);
        assert_eq!(parse_keepalive(&k), Some((PROBE, 7, 9)));
    }

    #[test]
    fn the_slave_counts_missing_probes_as_lost() {
        let mut l = Link {
            role: C2cRole::Slave,
            local: String::new(),
            vni: 1,
            peer: None,
            last_seen: Some(Instant::now()),
            window: VecDeque::new(),
            frames_out: 0,
            frames_in: 0,
            dropped: 0,
        };
        for s in [1, 2, 4, 5, 6] {
            l.probe_seen(s);
        }
        let st = l.status();
        assert_eq!(st.loss, 16.7);
        assert_eq!(st.state, Health::Up);
    }
}
