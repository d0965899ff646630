//! Every kind of bad input the spec lists is rejected with the right line and column, every
//! error of a file is reported at once, and host-reaching items are recognised.

use cloonix::model::load_str;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/validate")
}

/// Loads `text` and returns its errors as `LINE:COL: MESSAGE` lines.
fn errors(text: &str) -> Vec<String> {
    match load_str(text, &dir()) {
        Ok(_) => Vec::new(),
        Err(d) => {
            d.0.iter()
                .map(|d| format!("{}:{}: {}", d.pos.line, d.pos.col, d.message))
                .collect()
        }
    }
}

fn assert_error(text: &str, at: &str, needle: &str) {
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{at}: ")) && e.contains(needle)),
        "expected `{at}: …{needle}…` for\n{text}\ngot {errs:#?}"
    );
}

const OK: &str =
    "name: lab\nlans: [lan1]\nendpoints:\n  r1:\n    kind: cnt\n    eth: [{lan: lan1}]\n";

#[test]
fn a_minimal_file_is_valid() {
    assert_eq!(errors(OK), Vec::<String>::new());
}

#[test]
fn invalid_yaml() {
    assert_error("name: lab\nlans: [lan1\n", "3:1", "invalid YAML");
}

#[test]
fn unknown_keys_get_a_suggestion() {
    assert_error("name: lab\nlanz: [x]\n", "2:1", "unknown key `lanz`");
    let d = load_str("name: lab\nlanz: [x]\n", &dir()).unwrap_err();
    assert_eq!(d.0[0].hint, "did you mean `lans`?");
    assert_error(
        "name: lab\nlans: [l]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: l, ipp: 10.0.0.1/24}]}\n",
        "4:34",
        "unknown key `ipp` in an eth entry",
    );
}

#[test]
fn missing_name() {
    assert_error("lans: [x]\n", "1:1", "missing `name`");
}

#[test]
fn undefined_lan_and_endpoint() {
    assert_error(
        &OK.replace("{lan: lan1}", "{lan: lan2}"),
        "6:17",
        "undefined lan `lan2`",
    );
    assert_error(
        &format!("{OK}checks:\n  - {{from: r2, ping: 10.0.0.1}}\n"),
        "8:12",
        "undefined endpoint `r2`",
    );
}

#[test]
fn repeated_names_and_keys() {
    assert_error(
        &format!("{OK}  r1: {{kind: nat, lan: lan1}}\n"),
        "7:3",
        "duplicate key `r1`",
    );
    assert_error(
        "name: lab\nlans: [a, a]\n",
        "2:11",
        "lan `a` is listed twice",
    );
    assert_error("name: lab\nname: lab2\n", "2:1", "duplicate key `name`");
    assert_error(
        "name: lab\nlans: [l]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: l}, {lan: l, name: eth0}]}\n",
        "4:35",
        "interface `eth0` is defined twice",
    );
}

#[test]
fn malformed_values() {
    let ep = |extra: &str| format!("name: lab\nlans: [l, m]\nendpoints:\n  x: {extra}\n");
    assert_error(
        &ep("{kind: cnt, eth: [{lan: l, ip: 10.0.0.300/24}]}"),
        "4:37",
        "invalid address",
    );
    assert_error(
        &ep("{kind: cnt, eth: [{lan: l, mac: 'zz:00:00:00:00:01'}]}"),
        "4:38",
        "not a MAC",
    );
    assert_error(
        &ep("{kind: cnt, eth: [{lan: l, mac: '01:00:00:00:00:01'}]}"),
        "4:38",
        "multicast",
    );
    assert_error(
        &ep("{kind: a2b, a: l, b: m, a_to_b: {delay: 40 parsecs}}"),
        "4:46",
        "invalid delay",
    );
    assert_error(
        &ep("{kind: a2b, a: l, b: m, a_to_b: {loss: 1}}"),
        "4:45",
        "invalid loss",
    );
    assert_error(
        &ep("{kind: a2b, a: l, b: m, b_to_a: {rate: 10mb}}"),
        "4:45",
        "invalid rate",
    );
    assert_error(
        &ep("{kind: cnt, sysctl: {kernel.panic: 1}}"),
        "4:27",
        "not a namespaced net.* key",
    );
    assert_error(
        &ep("{kind: cnt, run_timeout: soon}"),
        "4:31",
        "invalid run_timeout",
    );
    assert_error(
        &ep("{kind: nat, lan: l, subnet: 10.0.0.1/24}"),
        "4:34",
        "not a network address",
    );
    assert_error(
        &ep("{kind: cnt, sysctl: {net.ipv4.ip_forward: '1,x=2'}}"),
        "4:48",
        "characters a sysctl does not take",
    );
    assert_error(
        &ep("{kind: nat, lan: l, subnet: 10.0.0.0/16}"),
        "4:34",
        "overlaps 10.0.2.0/24",
    );
    assert_error(
        &ep("{kind: nat, lan: l, subnet: 10.0.2.128/25}"),
        "4:34",
        "overlaps 10.0.2.0/24",
    );
    assert_error(
        "name: lab\nlans: [l]\nendpoints:\n  a: {kind: cnt, eth: [{lan: l, ip: 172.17.0.2/24}]}\n  gw: {kind: nat, lan: l}\n",
        "5:24",
        "address 172.17.0.2 is already on lan",
    );
    assert_error(
        "name: lab\nlans: {l: {mtu: big}}\n",
        "2:17",
        "mtu must be a number",
    );
}

#[test]
fn names_over_their_length() {
    assert_error("name: abcdefghijklm\n", "1:7", "invalid lab name");
    assert_error("name: Lab\n", "1:7", "invalid lab name");
    assert_error(
        &OK.replace("  r1:", "  router-number-1:"),
        "4:3",
        "invalid endpoint name",
    );
    assert_error(
        &OK.replace("{lan: lan1}", "{lan: lan1, name: interface_twelve}"),
        "6:29",
        "invalid interface name",
    );
    assert_error(
        "name: lab\nlans: [l]\nendpoints:\n  t: {kind: tap, lan: l, name: a-very-long-tapname}\n",
        "4:32",
        "invalid interface name",
    );
    assert_error(
        "name: lab\nlans: [ovs-netdev]\n",
        "2:8",
        "reserved by Open vSwitch",
    );
}

#[test]
fn unknown_kind_and_image() {
    assert_error(
        &OK.replace("kind: cnt", "kind: cnx"),
        "5:11",
        "unknown endpoint kind `cnx`",
    );
    assert_error(
        &OK.replace("kind: cnt", "kind: cnt\n    image: frr"),
        "6:12",
        "unknown image `frr`",
    );
}

#[test]
fn files_stay_inside() {
    let with_file = |f: &str| format!("{OK}    files:\n      {f}\n");
    assert_eq!(
        errors(&with_file("/etc/x: {source: configs/ok.conf}")),
        Vec::<String>::new()
    );
    assert_error(
        &with_file("/etc/x: {source: ../../validation.rs}"),
        "8:24",
        "leaves the topology's directory",
    );
    assert_error(
        &with_file("/etc/x: {source: /etc/passwd}"),
        "8:24",
        "absolute path",
    );
    assert_error(
        &with_file("/etc/x: {source: configs}"),
        "8:24",
        "not a regular file",
    );
    assert_error(
        &with_file("/etc/../x: {content: a}"),
        "8:7",
        "invalid file path",
    );
    assert_error(
        &with_file("etc/x: {content: a}"),
        "8:7",
        "invalid file path",
    );
    assert_error(
        &with_file("/proc/sys/kernel/core_pattern: {content: a}"),
        "8:7",
        "is in /proc, /sys or /dev",
    );
    assert_error(
        &with_file("/dev/sda: {content: a}"),
        "8:7",
        "is in /proc, /sys or /dev",
    );
    assert_error(
        &with_file("/etc/x: {content: a, source: configs/ok.conf}"),
        "8:36",
        "not both",
    );
}

#[test]
fn source_is_read_into_content() {
    let text = format!("{OK}    files:\n      /etc/x: {{source: configs/ok.conf}}\n");
    let loaded = load_str(&text, &dir()).unwrap();
    let cloonix::model::Endpoint::Cnt(c) = &loaded.topology.endpoints["r1"] else {
        panic!()
    };
    assert_eq!(c.files["/etc/x"].content.as_deref(), Some("hello\n"));
}

#[test]
fn alias_bombs_are_refused() {
    let mut s = String::from("name: lab\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert_error(
        &s,
        "5:10",
        "aliases expand the document to more than 10 times its size",
    );
}

/// The alias bound is relative to the document: the same aliases are refused in a small file
/// and fine in a large one.
#[test]
fn aliases_may_expand_a_document_up_to_ten_times() {
    let eths: Vec<String> = (0..30)
        .map(|i| format!("{{lan: lan1, name: e{i}}}"))
        .collect();
    let mut small = format!("  r0: {{kind: cnt, eth: &eth [{}]}}\n", eths.join(", "));
    for i in 1..50 {
        small.push_str(&format!("  r{i}: {{kind: cnt, eth: *eth}}\n"));
    }
    let head = "name: lab\nlans: [lan1]\nendpoints:\n";
    let errs = errors(&format!("{head}{small}"));
    assert!(
        errs.iter().any(|e| e.contains("10 times its size")),
        "{errs:?}"
    );
    // Plain endpoints make the same expansion a small part of the document.
    let plain: String = (0..2000)
        .map(|i| format!("  p{i}: {{kind: cnt, eth: [{{lan: lan1}}]}}\n"))
        .collect();
    assert_eq!(
        errors(&format!("{head}{small}{plain}")),
        Vec::<String>::new()
    );
}

/// A large file written out in full is never refused for its size in nodes.
#[test]
fn a_10_mb_file_of_plain_endpoints_is_valid() {
    let mut text = String::from("name: big\nlans: [lan1]\nendpoints:\n");
    let mut i = 0u32;
    while text.len() < 10_000_000 {
        let [_, a, b, c] = (i + 1).to_be_bytes();
        text.push_str(&format!(
            "  e{i}: {{kind: cnt, eth: [{{lan: lan1, ip: 10.{a}.{b}.{c}/8}}]}}\n"
        ));
        i += 1;
    }
    let loaded = load_str(&text, &dir()).unwrap_or_else(|d| panic!("{:?}", &d.0[..3]));
    assert_eq!(loaded.topology.endpoints.len(), i as usize);
}

#[test]
fn nesting_is_limited_to_128_levels() {
    let deep = |n: usize| format!("name: lab\nx: {}{}\n", "[".repeat(n), "]".repeat(n));
    assert_error(&deep(127), "2:1", "unknown key `x`");
    assert_error(&deep(128), "2:131", "nests deeper than 128 levels");
    let errs = errors(&format!("name: lab\nx: {}", "[".repeat(1_000_000)));
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "name: lab\nlans: [lan1]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: lan9}]}\n  r2: {kind: cnt, eth: [{lan: lan1, ip: nope}]}\nchecks:\n  - {from: r3, ping: 1.2.3.4}\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("4:31: undefined lan `lan9`"));
    assert!(errs[1].starts_with("5:41: invalid address"));
    assert!(errs[2].starts_with("7:12: undefined endpoint `r3`"));
}

#[test]
fn engine_runtimes_and_images() {
    let cnt = |fields: &str| OK.replace("kind: cnt", &format!("kind: cnt\n{fields}"));
    for good in [
        "    runtime: podman\n    image: localhost/frr:1",
        "    runtime: docker\n    image: quay.io/frrouting/frr:9.1.0",
        "    runtime: crun\n    image: podman:localhost/frr-test",
        "    image: docker:registry.example.com:5000/team/router@sha256:0123456789abcdef0123456789abcdef",
    ] {
        assert_eq!(errors(&cnt(good)), Vec::<String>::new(), "{good}");
    }
    assert_error(
        &cnt("    runtime: dockr"),
        "6:14",
        "unknown runtime `dockr`",
    );
    assert_error(
        &cnt("    runtime: podman"),
        "5:5",
        "a podman container needs `image`",
    );
    // Nothing an engine could read as an option, or as more than one argument.
    for (image, col) in [
        ("\"-v\"", "12"),
        ("\"--privileged\"", "12"),
        ("\"a b\"", "12"),
        ("Frr", "12"),
    ] {
        assert_error(
            &cnt(&format!("    runtime: docker\n    image: {image}")),
            &format!("7:{col}"),
            "is not an image reference of docker's",
        );
    }
    assert_error(
        &cnt("    image: podman:-v"),
        "6:12",
        "`-v` is not an image reference of podman's",
    );
    assert_error(
        &cnt("    runtime: docker\n    image: docker:frr"),
        "7:12",
        "a docker container's image is docker's own reference",
    );
}

#[test]
fn host_items_need_the_users_word() {
    let text = "name: lab\nlans: [l]\nendpoints:\n  a: {kind: cnt, privileged: true}\n  b: {kind: cnt, image: /}\n  c: {kind: phy, lan: l, device: eth9}\n  d: {kind: c2c, lan: l, role: slave, port: 4000, bind: 0.0.0.0, peer_lab: x, peer_lan: y}\n  e: {kind: cnt, image: ./rootfs}\n  f: {kind: c2c, lan: l, role: slave, port: 4001, bind: 127.0.0.1, peer_lab: x, peer_lan: y}\n  g: {kind: tap, lan: l}\n  h: {kind: nat, lan: l}\n";
    let loaded = load_str(text, &dir()).unwrap();
    let items: Vec<String> = loaded
        .host_items
        .iter()
        .map(|h| format!("{}:{} {}", h.pos.line, h.pos.col, h.what))
        .collect();
    assert_eq!(items.len(), 4, "{items:#?}");
    assert!(items[0].starts_with("4:30 a privileged container"));
    assert!(items[1].starts_with("5:25 image directory `/`"));
    assert!(items[2].starts_with("6:34 host interface `eth9`"));
    assert!(items[3].starts_with("7:57 c2c slave listening on 0.0.0.0"));
}

/// A scratch directory of this test process, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("cloonix-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_error(path: &Path) -> cloonix::model::LoadError {
    match cloonix::model::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_file_that_is_not_utf8_gets_the_position_of_its_first_bad_byte() {
    let s = Scratch::new("utf8");
    let path = s.0.join("latin1.yaml");
    std::fs::write(&path, b"name: lab\nlans: [caf\xe9]\n").unwrap();
    let text = load_error(&path).render();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{}:2:11: error: the file is not UTF-8 text: byte 0xe9 here",
            path.display()
        )
    );
    assert!(text.contains("= hint:"), "{text}");
}

#[test]
fn files_over_32_mib_are_refused_without_reading_them_whole() {
    let s = Scratch::new("big");
    let path = s.0.join("big.yaml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(cloonix::model::MAX_FILE_BYTES + 1).unwrap();
    let e = load_error(&path);
    assert!(
        matches!(e, cloonix::model::LoadError::TooLarge { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.render(),
        format!(
            "{}: error: larger than 32 MiB, the most a topology file may hold\n",
            path.display()
        )
    );
    // Exactly the limit is fine: 32 MiB of comments, then the lab.
    let mut text = "#".repeat(1023) + "\n";
    text = text.repeat(32 * 1024 - 1);
    text.push_str("name: lab\n");
    text.push_str(&"#".repeat(1024 - "name: lab\n".len() - 1));
    text.push('\n');
    assert_eq!(text.len() as u64, cloonix::model::MAX_FILE_BYTES);
    std::fs::write(&path, text).unwrap();
    assert!(cloonix::model::load(&path).is_ok());
}

#[test]
fn directories_and_devices_are_not_topology_files() {
    let s = Scratch::new("notafile");
    for (path, what) in [
        (s.0.as_path(), "a directory"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let e = load_error(path);
        assert_eq!(
            e.render(),
            format!(
                "{}: error: this is {what}, not a topology file\n",
                path.display()
            )
        );
    }
    let e = load_error(&s.0.join("missing.yaml"));
    assert!(
        e.render()
            .ends_with(": error: cannot read: No such file or directory (os error 2)\n")
    );
}

/// `name: lab`, lans l1 and l2, and the given endpoints.
fn lab(endpoints: &str) -> String {
    format!("name: lab\nlans: [l1, l2]\nendpoints:\n{endpoints}")
}

#[test]
fn an_address_is_given_once_on_its_interface() {
    assert_error(
        &lab("  r1: {kind: cnt, eth: [{lan: l1, ip: [10.0.0.1/24, 10.0.0.2/24, 10.0.0.1/16]}]}\n"),
        "4:66",
        "address 10.0.0.1 is given twice on this interface",
    );
    let d = load_str(
        &lab("  r1: {kind: cnt, eth: [{lan: l1, ip: [10.0.0.1/24, 10.0.0.1/24]}]}\n"),
        &dir(),
    )
    .unwrap_err();
    assert_eq!(d.0.len(), 1, "{:?}", d.0);
    assert_eq!(d.0[0].hint, "it is already given at line 4; keep one");
}

#[test]
fn an_address_is_used_once_on_its_lan() {
    let text = lab(concat!(
        "  r1: {kind: cnt, eth: [{lan: l1, ip: 10.0.0.1/24}, {lan: l2, ip: 10.0.0.1/24}]}\n",
        "  r2: {kind: cnt, eth: [{lan: l1, ip: 10.0.0.1/16}]}\n",
        "  vm: {kind: kvm, eth: [{lan: l2, ip: [10.0.0.2/24, 10.0.0.1/24]}]}\n",
        "  t: {kind: tap, lan: l1, ip: [10.0.0.3/24, 10.0.0.2/24]}\n",
        "  u: {kind: tap, lan: l2, ip: 10.0.1.3/24}\n",
    ));
    let errs = errors(&text);
    assert_eq!(
        errs,
        [
            "5:39: address 10.0.0.1 is already on lan `l1`",
            "6:53: address 10.0.0.1 is already on lan `l2`",
        ],
        "{text}"
    );
    let d = load_str(&text, &dir()).unwrap_err();
    assert_eq!(
        d.0[0].hint,
        "line 4 gives it to another interface of this lan; each needs its own"
    );
    // The same address on another lan, or IPv6 beside IPv4, is fine.
    let ok = lab(concat!(
        "  r1: {kind: cnt, eth: [{lan: l1, ip: [10.0.0.1/24, \"2001:db8::1/64\"]}]}\n",
        "  r2: {kind: cnt, eth: [{lan: l2, ip: 10.0.0.1/24}]}\n",
    ));
    assert_eq!(errors(&ok), Vec::<String>::new());
}

#[test]
fn two_taps_never_share_a_subnet() {
    let text = lab(concat!(
        "  t: {kind: tap, lan: l1, ip: [10.0.0.3/24, 10.0.0.4/24]}\n",
        "  u: {kind: tap, lan: l2, ip: 10.0.0.9/16}\n",
        "  v: {kind: tap, lan: l2, ip: [10.1.0.1/24, \"2001:db8::1/64\"]}\n",
    ));
    let errs = errors(&text);
    assert_eq!(
        errs,
        ["5:31: tap subnet 10.0.0.0/16 overlaps 10.0.0.0/24 of tap `t`"],
        "{text}"
    );
    let d = load_str(&text, &dir()).unwrap_err();
    assert!(
        d.0[0].hint.starts_with("line 4 gives it to `t`"),
        "{}",
        d.0[0].hint
    );
}

#[test]
fn a_host_address_is_not_its_subnets_network_or_broadcast() {
    let eth = |ip: &str| {
        lab(&format!(
            "  r1: {{kind: cnt, eth: [{{lan: l1, ip: \"{ip}\"}}]}}\n"
        ))
    };
    assert_error(
        &eth("10.0.0.0/24"),
        "4:39",
        "10.0.0.0 is the network address of 10.0.0.0/24",
    );
    let d = load_str(&eth("10.0.0.0/24"), &dir()).unwrap_err();
    assert_eq!(
        d.0[0].hint,
        "a host's address there is from 10.0.0.1 to 10.0.0.254, e.g. `10.0.0.1/24`"
    );
    assert_error(
        &eth("10.0.1.255/23"),
        "4:39",
        "10.0.1.255 is the broadcast address of 10.0.0.0/23",
    );
    assert_error(
        &lab("  t: {kind: tap, lan: l1, ip: 192.168.1.255/24}\n"),
        "4:31",
        "broadcast address of 192.168.1.0/24",
    );
    assert_error(
        &eth("2001:db8::/64"),
        "4:39",
        "2001:db8:: is the network address of 2001:db8::/64",
    );
    for ok in [
        "10.0.0.0/31",
        "10.0.0.1/31",
        "10.0.0.0/32",
        "10.0.0.255/23",
        "2001:db8::/127",
        "2001:db8::ffff:ffff:ffff:ffff/64",
        "fe80::1/64",
    ] {
        assert_eq!(errors(&eth(ok)), Vec::<String>::new(), "{ok}");
    }
}

/// A name refused where it is declared is reported there, once: its uses are not errors
/// of their own (they were told to "declare it", which it is).
#[test]
fn a_refused_declaration_is_reported_once() {
    let text = "name: lab\nlans: [lan-name-too-long]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: lan-name-too-long}]}\n  t: {kind: tap, lan: lan-name-too-long}\n";
    assert_eq!(errors(text), ["2:8: invalid lan name `lan-name-too-long`"]);
    let text = "name: lab\nlans: {l1: {mtu: 5}}\nendpoints:\n  r1: {kind: cnt, eth: [{lan: l1}]}\n";
    assert_eq!(
        errors(text),
        ["2:18: mtu must be a number from 576 to 9000"]
    );
    let text = "name: lab\nimages:\n  Frr: {debian: {suite: bookworm}}\nendpoints:\n  r1: {kind: cnt, image: Frr}\n";
    assert_eq!(errors(text), ["3:3: invalid image name `Frr`"]);
}

/// What reaches mmdebstrap or a check's command line is only ever spelt so that it can
/// not be read as an option there.
#[test]
fn recipes_and_tcp_targets_that_could_be_options_are_refused() {
    let image = |suite: &str, package: &str| {
        format!(
            "name: lab\nimages:\n  i: {{debian: {{suite: {suite}, packages: [\"{package}\"]}}}}\n"
        )
    };
    for ok in ["frr", "libc6:i386", "g++"] {
        assert_eq!(errors(&image("bookworm", ok)), Vec::<String>::new(), "{ok}");
    }
    for bad in ["--hook-dir=/x", "-x", "a,b", "f", "frr:", "Frr"] {
        assert_error(&image("bookworm", bad), "3:44", "not a Debian package name");
    }
    assert_error(&image("--variant=x", "frr"), "3:23", "not a Debian suite");
    assert_error(&image("book worm", "frr"), "3:23", "not a Debian suite");
    let tcp = |target: &str| {
        format!(
            "name: lab\nendpoints:\n  a: {{kind: cnt}}\nchecks:\n  - {{from: a, tcp: \"{target}\"}}\n"
        )
    };
    for ok in ["10.0.0.2:80", "[fd00::2]:443", "www.example.org:8080"] {
        assert_eq!(errors(&tcp(ok)), Vec::<String>::new(), "{ok}");
    }
    let bad = [
        "-e:80",
        "10.0.0.2:0",
        "a b:80",
        "fd00::2:80",
        "[x]:80",
        ":80",
    ];
    for bad in bad {
        assert_error(&tcp(bad), "5:20", "is not `HOST:PORT`");
    }
}
