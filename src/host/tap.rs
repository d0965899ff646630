//! Persistent tap devices in a lab's switch namespace, for VM NICs: made by cloonix (so
//! their lifetime is the NIC's, not qemu's) and opened by the VM's qemu by name.

use super::netlink::{self, Change};
use super::{HostError, Result, io, netns};
use std::os::fd::AsRawFd;

/// Makes tap `name` in namespace `ns` (keeping one that is there: inside the lab's switch
/// namespace, the name is the lab's), with its MTU, up. Whether it was there already.
pub fn create(ns: &str, name: &str, mtu: u32) -> Result<bool> {
    let name = name.to_string();
    netns::within(ns, move || {
        let existed = netlink::index_of(&name).is_some();
        if !existed {
            persist(&name)?;
        }
        let what = format!("configure tap {name}");
        let index = netlink::index_of(&name)
            .ok_or_else(|| HostError::Other(format!("{what}: it vanished")))?;
        netlink::set(
            index,
            &Change {
                mtu: Some(mtu),
                up: Some(true),
                ..Default::default()
            },
        )
        .map_err(io(&what))?;
        Ok(existed)
    })
}

/// TUNSETIFF then TUNSETPERSIST on /dev/net/tun: what `ip tuntap add mode tap` does.
fn persist(name: &str) -> Result<()> {
    let what = format!("create tap {name}");
    let tun = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(io(&what))?;
    let mut ifr = netns::ifreq(name);
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: ioctls on a descriptor we own, with a live ifreq.
    unsafe {
        if libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) != 0 {
            return Err(io(&what)(std::io::Error::last_os_error()));
        }
        if libc::ioctl(tun.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) != 0 {
            return Err(io(&what)(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Sets a tap's MTU.
pub fn set_mtu(ns: &str, name: &str, mtu: u32) -> Result<()> {
    let name = name.to_string();
    netns::within(ns, move || {
        let index = netlink::index_of(&name)
            .ok_or_else(|| HostError::Other(format!("tap {name} is gone")))?;
        let change = Change {
            mtu: Some(mtu),
            ..Default::default()
        };
        netlink::set(index, &change).map_err(io(format!("set the MTU of {name}")))
    })
}

/// Opens tap `name` of namespace `ns` for a VM: TUNSETIFF on a new /dev/net/tun
/// descriptor, without IFF_VNET_HDR (qemu then offers the guest no checksum offload).
pub fn open(ns: &str, name: &str) -> Result<std::os::fd::OwnedFd> {
    let name = name.to_string();
    netns::within(ns, move || {
        let what = format!("open tap {name}");
        let tun = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(io(&what))?;
        let mut ifr = netns::ifreq(&name);
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: an ioctl on a descriptor we own, with a live ifreq.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } != 0 {
            return Err(io(&what)(std::io::Error::last_os_error()));
        }
        Ok(tun.into())
    })
}
