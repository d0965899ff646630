//! How exactly an a2b delays, jitters, drops and shapes: the acceptance numbers,
//! measured with ping and iperf3 through a real lab. Timing tests: run them with the
//! release build, one at a time (`./run test` does:
//! `cargo test --release --test dataplane_accuracy -- --test-threads=1`).

mod common;

use common::Lab;
use std::process::Command;

const LANS: &str = "lans: [la, lb]\nendpoints:\n  c1: {kind: cnt, eth: [{lan: la, ip: [10.73.0.1/24]}]}\n  c2: {kind: cnt, eth: [{lan: lb, ip: [10.73.0.2/24]}]}\n";

fn lab_with(name: &str, a_to_b: &str, b_to_a: &str) -> Lab {
    let lab = Lab::new(name);
    lab.apply(&format!(
        "{LANS}  w: {{kind: a2b, a: la, b: lb, a_to_b: {{{a_to_b}}}, b_to_a: {{{b_to_a}}}}}\n"
    ));
    // The first frames also teach the lans' switches where c1 and c2 are.
    assert!(lab.ping_again("c1", "10.73.0.2"));
    lab
}

/// Round-trip times (ms) of `n` pings at `interval` seconds, and how many were sent.
fn pings(lab: &Lab, n: usize, interval: &str) -> (Vec<f64>, usize) {
    let (_, out) = lab.exec("c1", &format!("ping -c {n} -i {interval} -W 1 10.73.0.2"));
    let times: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("time=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    (times, n)
}

fn p50(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// The lab's own round trip through an unimpaired a2b, the base the numbers add to: its
/// median and its maximum over 100 pings.
fn base_rtt(name: &str) -> (f64, f64) {
    let lab = lab_with(name, "", "");
    let (t, _) = pings(&lab, 100, "0.05");
    let max = t.iter().copied().fold(0.0, f64::max);
    eprintln!("base RTT: p50 {:.3} ms, max {max:.3} ms", p50(&t));
    (p50(&t), max)
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_50ms_delay_adds_50ms_to_the_round_trip() {
    let (base, _) = base_rtt("d-acc-base");
    let lab = lab_with("d-acc-dly", "delay: 50ms", "");
    let (t, _) = pings(&lab, 100, "0.05");
    let p = p50(&t);
    eprintln!("delay 50ms: p50 {p:.3} ms over {} pings", t.len());
    assert!(
        (p - (50.0 + base)).abs() <= 2.0,
        "p50 {p:.2} ms, base {base:.2} ms"
    );
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn jitter_is_uniform_within_its_bounds() {
    let (_, base_max) = base_rtt("d-acc-base2");
    let lab = lab_with("d-acc-jit", "delay: 50ms, jitter: 10ms", "");
    let (t, _) = pings(&lab, 200, "0.05");
    assert!(t.len() >= 195, "{} replies", t.len());
    // The lower bound is the helper's alone; above, the host's scheduler adds its own
    // delays to the lab's (base_max), on a loaded machine now and then more.
    assert!(t.iter().all(|&x| x >= 40.0), "below 40 ms: {t:?}");
    let late: Vec<f64> = t.iter().copied().filter(|&x| x > 60.0 + base_max).collect();
    eprintln!("beyond 60 ms + base max: {late:?}");
    assert!(
        late.len() <= t.len() / 100,
        "beyond [40, 60] + base: {late:?}"
    );
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    let sd = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
    let (lo, hi) = t
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &x| (l.min(x), h.max(x)));
    eprintln!(
        "jitter 50±10ms: {} replies, min {lo:.3} max {hi:.3} mean {mean:.3} stddev {sd:.3} ms",
        t.len()
    );
    assert!((4.0..=7.0).contains(&sd), "stddev {sd:.2} ms");
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn ten_percent_loss_of_replies_loses_ten_percent_of_pings() {
    let lab = lab_with("d-acc-loss", "", "loss: 10%");
    let (_, out) = lab.exec("c1", "ping -c 2000 -i 0.01 -W 1 -q 10.73.0.2");
    let line = out
        .lines()
        .find(|l| l.contains("packets received"))
        .unwrap_or_else(|| panic!("{out}"));
    let nums: Vec<f64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let lost = 100.0 * (nums[0] - nums[1]) / nums[0];
    assert_eq!(nums[0], 2000.0);
    eprintln!("loss 10% on the replies: {lost:.2}% of 2000 pings lost");
    assert!((8.0..=12.0).contains(&lost), "{lost:.1}% lost: {line}");
    let st = lab.cloonix(&["status", "d-acc-loss", "-o", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(st["endpoints"]["w"]["a2b"]["b_to_a"]["dropped_loss"].as_u64() > Some(100));
}

fn iperf3(lab: &Lab, args: &str) -> serde_json::Value {
    let ns = |ep: &str| format!("cloonix_{}_{ep}", lab.name);
    let server = Command::new("ip")
        .args(["netns", "exec", &ns("c2"), "iperf3", "-s", "-1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 is installed (./run installs it)");
    let mut server = scopeguard(server);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns("c1"),
        "iperf3",
        "-c",
        "10.73.0.2",
        "-J",
    ]);
    cmd.args(args.split_whitespace());
    let out = cmd.output().unwrap();
    let _ = server.0.wait();
    server.1 = true;
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "iperf3: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The iperf3 server, killed if the test fails before it ends.
struct Guard(std::process::Child, bool);
fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c, false)
}
impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
#[cfg_attr(
    cloonix_not_root,
    ignore = "needs root: run the suite as root, as CI does"
)]
fn a_10mbit_rate_counts_ethernet_frame_bytes() {
    let lab = lab_with("d-acc-rate", "rate: 10mbit", "");
    let udp = iperf3(&lab, "-u -b 20M -l 1400 -t 10");
    // The received payload rate, as the receiving side measured it.
    let payload = udp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    let wire = payload * 1442.0 / 1400.0 / 1e6;
    eprintln!("rate 10mbit: UDP at 20 Mbit/s, {wire:.3} Mbit/s of Ethernet frames received");
    assert!(
        (9.5..=10.5).contains(&wire),
        "UDP: {wire:.2} Mbit/s on the wire"
    );
    let tcp = iperf3(&lab, "-t 10");
    let goodput = tcp["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e6;
    eprintln!("rate 10mbit: TCP goodput {goodput:.3} Mbit/s");
    assert!(
        (8.5..=10.0).contains(&goodput),
        "TCP goodput {goodput:.2} Mbit/s"
    );
}
