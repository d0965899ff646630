//! `checks:` entries.

use super::super::units::Duration;
use super::super::*;
use super::reader::Cx;
use crate::diag::did_you_mean;
use crate::yaml::Node;
use std::str::FromStr;

impl Cx {
    pub(super) fn check(&mut self, node: &Node) -> Option<Check> {
        let mut f = self.fields(node, "a check")?;
        let from = f.req(self, "from", "the endpoint it runs in: `from: r1`");
        let ping = f.opt("ping");
        let tcp = f.opt("tcp");
        let exec = f.opt("exec");
        let expect_exit = f.opt("expect_exit");
        let expect_output = f.opt("expect_output");
        let within = f.opt("within");
        f.finish(self, "a check");
        let from = from.and_then(|n| {
            let name = self.string(n, "from")?;
            match self.endpoints.get(&name) {
                Some(&"cnt") | Some(&"kvm") => Some(name),
                Some(kind) => {
                    self.err(
                        n.pos,
                        format!("`{name}` is a {kind}; checks run in a cnt or kvm endpoint"),
                        "",
                    );
                    None
                }
                None => {
                    let hint = (!self.full())
                        .then(|| did_you_mean(&name, self.endpoints.keys().map(String::as_str)))
                        .flatten()
                        .map(|e| format!("did you mean `{e}`?"))
                        .unwrap_or_else(|| "name an endpoint of this file".into());
                    self.err(n.pos, format!("undefined endpoint `{name}`"), hint);
                    None
                }
            }
        });
        let probes = [ping, tcp, exec].iter().flatten().count();
        if probes != 1 {
            self.err(
                f.pos,
                "a check has exactly one of `ping`, `tcp` and `exec`",
                "e.g. `{from: r1, ping: 10.0.0.2}`",
            );
            return None;
        }
        if exec.is_none() {
            for n in [expect_exit, expect_output].into_iter().flatten() {
                self.err(
                    n.pos,
                    "`expect_exit` and `expect_output` go with `exec`",
                    "",
                );
            }
        }
        let ping = ping.map(|n| {
            self.parse::<ParsedIp>(n, "ping address")
                .map(|a| a.0.to_string())
        });
        let tcp = tcp.map(|n| {
            let s = self.string(n, "tcp")?;
            let ok = tcp_target(&s).is_some();
            if !ok {
                self.err(
                    n.pos,
                    format!("`{s}` is not `HOST:PORT`"),
                    "an IP address or host name and a port, e.g. `10.0.0.2:80` or `[fd00::2]:80`",
                );
            }
            ok.then_some(s)
        });
        let exec = exec.map(|n| self.command(n));
        let expect_exit = expect_exit.map(|n| self.number::<i32>(n, "expect_exit", (0.0, 255.0)));
        let expect_output = expect_output.map(|n| self.string(n, "expect_output"));
        let within = match within {
            Some(n) => self.parse::<Duration>(n, "within")?,
            None => DEFAULT_CHECK_WITHIN,
        };
        Some(Check {
            from: from?,
            ping: ping.map(|p| p.ok_or(())).transpose().ok()?,
            tcp: tcp.map(|p| p.ok_or(())).transpose().ok()?,
            exec: exec.map(|p| p.ok_or(())).transpose().ok()?,
            expect_exit: expect_exit.map(|p| p.ok_or(())).transpose().ok()?,
            expect_output: expect_output.map(|p| p.ok_or(())).transpose().ok()?,
            within,
        })
    }
}

/// An IP address whose parse error reads well in a diagnostic.
pub(super) struct ParsedIp(pub(super) std::net::IpAddr);

impl FromStr for ParsedIp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(ParsedIp)
            .map_err(|_| format!("`{s}` is not an IP address"))
    }
}

/// The host and port of a check's `tcp: HOST:PORT`: an IPv4 address, an IPv6 address in
/// brackets, or a host name (letters, digits, `-` and `.`, never starting with `-`, so that
/// the probe's command never reads it as an option), and a port from 1.
pub fn tcp_target(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| (a.to_string(), port));
    }
    let b = host.as_bytes();
    let name = !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-.".contains(c));
    name.then(|| (host.to_string(), port))
}
