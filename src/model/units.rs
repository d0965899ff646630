//! The small value types of the file: durations, percentages, rates, MAC addresses and
//! addresses. Each parses the user's text, prints one canonical text (so `1000ms` and `1s`
//! compare equal) and describes itself to the JSON Schema.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

macro_rules! string_schema {
    ($ty:ty, $name:literal, $pattern:literal, $desc:literal) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "pattern": $pattern, "description": $desc})
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Splits `12.5ms` into a number and its unit.
fn number_unit(s: &str) -> Option<(f64, &str)> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    Some((num.parse().ok()?, unit.trim()))
}

/// A duration, kept in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a duration; write e.g. `40ms`, `1.5s` or `2m`");
        let (n, unit) = number_unit(s).ok_or_else(bad)?;
        let ms = match unit {
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            _ => return Err(bad()),
        };
        if ms.fract() != 0.0 || ms > 86_400_000.0 {
            return Err(format!(
                "`{s}`: durations are whole milliseconds up to one day"
            ));
        }
        Ok(Duration(ms as u64))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0 != 0 && self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}
string_schema!(
    Duration,
    "Duration",
    "^[0-9]+(\\.[0-9]+)?(ms|s|m)$",
    "A duration: a number and `ms`, `s` or `m`, e.g. `40ms`."
);

/// A percentage, kept in millionths of the whole so that equality is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a percentage; write e.g. `1%` or `0.5%`");
        let (n, unit) = number_unit(s).ok_or_else(bad)?;
        if unit != "%" {
            return Err(bad());
        }
        if n > 100.0 {
            return Err(format!("`{s}`: a percentage is at most 100%"));
        }
        let ppm = n * 10_000.0;
        if (ppm - ppm.round()).abs() > 1e-6 {
            return Err(format!("`{s}`: at most four decimals"));
        }
        Ok(Percent(ppm.round() as u32))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:04}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}
string_schema!(
    Percent,
    "Percent",
    "^[0-9]+(\\.[0-9]+)?%$",
    "A percentage from 0% to 100%, e.g. `1%` or `0.5%`."
);

/// A rate in bits per second, counted on Ethernet frame bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub u64);

const RATE_UNITS: [(&str, u64); 4] = [
    ("gbit", 1_000_000_000),
    ("mbit", 1_000_000),
    ("kbit", 1_000),
    ("bit", 1),
];

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a rate; write e.g. `512kbit`, `10mbit` or `1gbit`");
        let (n, unit) = number_unit(s).ok_or_else(bad)?;
        let (_, mult) = RATE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .ok_or_else(bad)?;
        let bits = n * *mult as f64;
        if bits < 1.0 || bits.fract() != 0.0 || bits > 1e12 {
            return Err(format!(
                "`{s}`: a rate is a whole number of bit/s, 1bit to 1000gbit"
            ));
        }
        Ok(Rate(bits as u64))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (unit, mult) = RATE_UNITS
            .iter()
            .find(|(_, m)| self.0.is_multiple_of(*m))
            .expect("bit divides everything");
        write!(f, "{}{unit}", self.0 / mult)
    }
}
string_schema!(
    Rate,
    "Rate",
    "^[0-9]+(\\.[0-9]+)?(bit|kbit|mbit|gbit)$",
    "A rate: a number and `kbit`, `mbit` or `gbit` (per second, Ethernet frame bytes)."
);

/// A unicast Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a MAC address; write six hex pairs like `02:00:00:00:01:02`");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if mac[0] & 1 == 1 {
            return Err(format!(
                "`{s}` is a multicast address; an interface needs unicast (even first byte)"
            ));
        }
        if mac == [0; 6] {
            return Err(format!("`{s}` is the zero address"));
        }
        Ok(Mac(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}
string_schema!(
    Mac,
    "Mac",
    "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
    "A unicast MAC address, e.g. `02:00:00:00:01:02`."
);

/// An interface address with its prefix length, e.g. `10.0.12.1/24` or `fd00::1/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Cidr)
            .map_err(|_| format!("`{s}` is not an address with prefix; write e.g. `10.0.12.1/24`"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}
string_schema!(
    Cidr,
    "Cidr",
    "^[0-9A-Fa-f:.]+/[0-9]{1,3}$",
    "An address with its prefix length, e.g. `10.0.12.1/24`."
);

/// An upstream DNS resolver: `IP` (port 53), `IP:PORT`, or `[IPv6]:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resolver(pub std::net::SocketAddr);

impl FromStr for Resolver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            return Ok(Resolver(std::net::SocketAddr::new(ip, 53)));
        }
        match s.parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(Resolver(a)),
            _ => Err(format!(
                "`{s}` is not a resolver; write `IP` or `IP:PORT`, e.g. `9.9.9.9` or `127.0.0.1:5353`"
            )),
        }
    }
}

impl fmt::Display for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0.port() {
            53 => self.0.ip().fmt(f),
            _ => self.0.fmt(f),
        }
    }
}
string_schema!(
    Resolver,
    "Resolver",
    "^(\\[[0-9A-Fa-f:.]+\\]|[0-9A-Fa-f:.]+)(:[0-9]{1,5})?$",
    "A DNS resolver: `IP` (port 53) or `IP:PORT`, e.g. `127.0.0.1:5353`."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_default_to_port_53() {
        assert_eq!(
            "9.9.9.9".parse::<Resolver>().unwrap().to_string(),
            "9.9.9.9"
        );
        assert_eq!(
            "9.9.9.9:53".parse::<Resolver>().unwrap().to_string(),
            "9.9.9.9"
        );
        assert_eq!("127.0.0.1:5353".parse::<Resolver>().unwrap().0.port(), 5353);
        assert_eq!(
            "[::1]:5353".parse::<Resolver>().unwrap().to_string(),
            "[::1]:5353"
        );
        assert!("dns.example".parse::<Resolver>().is_err());
        assert!("1.2.3.4:0".parse::<Resolver>().is_err());
    }

    #[test]
    fn durations_have_one_canonical_text() {
        assert_eq!("1000ms".parse::<Duration>().unwrap().to_string(), "1s");
        assert_eq!("1.5s".parse::<Duration>().unwrap().to_string(), "1500ms");
        assert_eq!("2m".parse::<Duration>().unwrap(), Duration(120_000));
        assert!("40".parse::<Duration>().is_err());
        assert!("40 parsecs".parse::<Duration>().is_err());
        assert!("0.5ms".parse::<Duration>().is_err());
    }

    #[test]
    fn percentages_round_trip() {
        for s in ["1%", "0.5%", "100%", "0.0001%", "0%"] {
            assert_eq!(s.parse::<Percent>().unwrap().to_string(), s);
        }
        assert!("101%".parse::<Percent>().is_err());
        assert!("1".parse::<Percent>().is_err());
    }

    #[test]
    fn rates_pick_the_largest_exact_unit() {
        assert_eq!("10mbit".parse::<Rate>().unwrap(), Rate(10_000_000));
        assert_eq!("1500kbit".parse::<Rate>().unwrap().to_string(), "1500kbit");
        assert_eq!("1000kbit".parse::<Rate>().unwrap().to_string(), "1mbit");
        assert!("10mb".parse::<Rate>().is_err());
    }

    #[test]
    fn macs_must_be_unicast() {
        assert_eq!(
            "02:00:00:00:01:0A".parse::<Mac>().unwrap().to_string(),
            "02:00:00:00:01:0a"
        );
        assert!("01:00:00:00:00:01".parse::<Mac>().is_err());
        assert!("02:00:00:00:01".parse::<Mac>().is_err());
    }

    #[test]
    fn cidrs_keep_the_host_part() {
        assert_eq!(
            "10.0.0.1/24".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/24"
        );
        assert!("10.0.0.1".parse::<Cidr>().is_err());
        assert!("10.0.0.300/24".parse::<Cidr>().is_err());
    }
}
