//! The classic pcap file format (what tcpdump, tshark and Wireshark all read): a 24-byte
//! file header, then per frame a 16-byte header and the frame's bytes. Microsecond
//! timestamps and little-endian fields, the most widely read variant.
//!
//! Written here rather than taken from a crate: the format is these two headers, and
//! writing them is shorter than adapting a crate's types (pcap-file's) to frames that
//! are already in a buffer.

use std::io::{self, Write};

/// "pcap, microsecond timestamps", written in the writer's byte order (little-endian).
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The largest frame a capture keeps whole.
pub const SNAPLEN: u32 = 65535;

pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        let mut h = Vec::with_capacity(24);
        h.extend(MAGIC.to_le_bytes());
        h.extend(2u16.to_le_bytes()); // version 2.4
        h.extend(4u16.to_le_bytes());
        h.extend(0i32.to_le_bytes()); // timestamps are UTC
        h.extend(0u32.to_le_bytes()); // accuracy, unused
        h.extend(SNAPLEN.to_le_bytes());
        h.extend(LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(Writer { out })
    }

    /// Writes one frame: `data` as captured, `len` its length on the wire.
    pub fn frame(&mut self, sec: u64, nsec: u32, data: &[u8], len: usize) -> io::Result<()> {
        let caplen = data.len().min(SNAPLEN as usize);
        let mut h = [0u8; 16];
        // pcap's seconds are 32 bits: unsigned, as readers take them, that lasts to 2106.
        h[0..4].copy_from_slice(&(sec as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(nsec / 1000).to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..caplen])
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_as_readers_expect_them() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.frame(1_700_000_000, 123_456_789, &[0xaa; 60], 60)
            .unwrap();
        let b = w.get_ref();
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&b[4..8], &[2, 0, 4, 0]);
        assert_eq!(u32::from_le_bytes(b[16..20].try_into().unwrap()), 65535);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        let rec = &b[24..40];
        assert_eq!(
            u32::from_le_bytes(rec[0..4].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(rec[4..8].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(rec[8..12].try_into().unwrap()), 60);
        assert_eq!(u32::from_le_bytes(rec[12..16].try_into().unwrap()), 60);
        assert_eq!(b.len(), 24 + 16 + 60);
    }

    #[test]
    fn a_truncated_frame_keeps_its_wire_length() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.frame(0, 0, &[1, 2, 3], 1500).unwrap();
        let rec = &w.get_ref()[24..40];
        assert_eq!(u32::from_le_bytes(rec[8..12].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(rec[12..16].try_into().unwrap()), 1500);
    }
}
