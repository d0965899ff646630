//! The names cloonix gives to host objects. They carry the lab's name so that ownership is
//! matched exactly, fit the kernel's 15-character interface names, and never collide across
//! kinds within a namespace.

use crate::model::units::Mac;
use sha2::{Digest, Sha256};

/// Prefix of every network namespace cloonix creates.
pub const NS_PREFIX: &str = "cloonix_";

/// The switch namespace of a lab, where its OVS daemons and bridges live.
pub fn switch_ns(lab: &str) -> String {
    format!("{NS_PREFIX}{lab}")
}

/// The network namespace of one endpoint. Lab names have no `_`, so `cloonix_a_b` can only
/// be endpoint `b` of lab `a`: lab `demo` never matches a namespace of lab `demo-2`.
pub fn endpoint_ns(lab: &str, endpoint: &str) -> String {
    format!("{NS_PREFIX}{lab}_{endpoint}")
}

/// Which lab and endpoint a namespace name belongs to, if it is one of cloonix's.
pub fn parse_ns(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    Some(match rest.split_once('_') {
        Some((lab, ep)) => (lab, Some(ep)),
        None => (rest, None),
    })
}

/// The name of the switch-side end of an endpoint's interface, which is also its OVS port.
///
/// `r1.eth0` when it fits, which is what users type for `cloonix capture`; otherwise `ch`
/// and 13 hex digits of a hash. Readable names contain a `.` and hashed ones do not, lan
/// (bridge) names have neither a `.` nor 15 characters, so the three never meet; two hashed
/// names meeting is caught when the graph is built.
pub fn port_name(endpoint: &str, iface: &str) -> String {
    let readable = format!("{endpoint}.{iface}");
    if readable.len() <= 15 {
        return readable;
    }
    let digest = Sha256::digest(readable.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("ch{}", &hex[..13])
}

/// A stable, locally administered unicast MAC for an interface without an explicit one.
pub fn derived_mac(lab: &str, endpoint: &str, iface: &str) -> Mac {
    let digest = Sha256::digest(format!("{lab}/{endpoint}/{iface}").as_bytes());
    Mac([0x02, digest[0], digest[1], digest[2], digest[3], digest[4]])
}

/// Orders interface names as people count them: `eth2` before `eth10`.
pub fn iface_order(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (head, tail) = name.split_at(name.len() - digits);
    (head.to_string(), tail.parse().unwrap_or(0))
}

/// The OVS `external_ids` keys that mark a row as cloonix's.
pub const LABEL_LAB: &str = "cloonix-lab";
pub const LABEL_OWNER: &str = "cloonix-owner";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_parse_back() {
        assert_eq!(parse_ns(&switch_ns("demo")), Some(("demo", None)));
        assert_eq!(
            parse_ns(&endpoint_ns("demo-2", "r1")),
            Some(("demo-2", Some("r1")))
        );
        assert_eq!(parse_ns("other"), None);
    }

    #[test]
    fn port_names_fit_and_stay_stable() {
        assert_eq!(port_name("r1", "eth0"), "r1.eth0");
        let long = port_name("router-alpha", "eth0");
        assert_eq!(long.len(), 15);
        assert!(!long.contains('.'));
        assert_eq!(long, port_name("router-alpha", "eth0"));
        assert_ne!(long, port_name("router-alpha", "eth1"));
    }

    #[test]
    fn derived_macs_are_unicast_and_local() {
        let m = derived_mac("lab", "r1", "eth0");
        assert_eq!(m.0[0], 0x02);
        assert_ne!(m, derived_mac("lab", "r1", "eth1"));
    }
}
