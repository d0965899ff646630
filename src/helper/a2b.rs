//! The a2b helper: frames from port `a` to port `b` and back, each direction on a thread
//! of its own with its own [`Direction`], changed live through the control socket.

use super::control::{self, A2bSettings, Reply, Request};
use super::impair::{Direction, Verdict};
use super::packet::{self, Rx, Tx};
use crate::status::{A2bStatus, DirectionStatus};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames or bytes waiting in one direction beyond which more are dropped as a full queue:
/// a long delay at a high rate must not take the host's memory.
const MAX_QUEUED_BYTES: usize = 64 << 20;

struct Shared {
    dir: Mutex<Direction>,
    queued: AtomicU64,
}

fn seed(salt: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ (std::process::id() as u64) << 32 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub fn run(a: &str, b: &str, settings: A2bSettings, socket: &Path) -> Result<(), String> {
    let open = |iface: &str| -> Result<(Rx, Tx), String> {
        let rx = Rx::open(iface).map_err(|e| format!("port {iface}: {e}"))?;
        let tx = Tx::open(iface).map_err(|e| format!("port {iface}: {e}"))?;
        Ok((rx, tx))
    };
    let (rx_a, tx_a) = open(a)?;
    let (rx_b, tx_b) = open(b)?;
    let shared = |s, salt| {
        Arc::new(Shared {
            dir: Mutex::new(Direction::new(s, seed(salt))),
            queued: AtomicU64::new(0),
        })
    };
    let ab = shared(settings.a_to_b, 1);
    let ba = shared(settings.b_to_a, 2);
    let (ab2, ba2) = (ab.clone(), ba.clone());
    control::serve(socket, move |req| {
        if let Request::Set(s) = req {
            ab2.dir.lock().expect("no panics").set(s.a_to_b);
            ba2.dir.lock().expect("no panics").set(s.b_to_a);
        }
        let status = |sh: &Shared| {
            let d = sh.dir.lock().expect("no panics");
            DirectionStatus {
                settings: d.settings(),
                counters: d.counters,
                queued: sh.queued.load(Ordering::Relaxed),
            }
        };
        Reply {
            a2b: Some(A2bStatus {
                a_to_b: status(&ab2),
                b_to_a: status(&ba2),
            }),
            ..Reply::default()
        }
    })
    .map_err(|e| format!("control socket {}: {e}", socket.display()))?;
    let t1 = std::thread::spawn(move || forward(rx_a, tx_b, &ab));
    let t2 = std::thread::spawn(move || forward(rx_b, tx_a, &ba));
    // Either direction failing (its interface gone) ends the helper: cloonix sees it
    // gone and makes it anew.
    loop {
        if t1.is_finished() {
            return t1.join().unwrap_or(Err("a thread panicked".into()));
        }
        if t2.is_finished() {
            return t2.join().unwrap_or(Err("a thread panicked".into()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One direction: frames read from `rx`, judged, sent on `tx` at their instant.
fn forward(mut rx: Rx, tx: Tx, sh: &Shared) -> Result<(), String> {
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut queued_bytes = 0usize;
    let mut now_out: Vec<usize> = Vec::with_capacity(packet::BATCH);
    let fail = |e: std::io::Error| e.to_string();
    loop {
        let timeout = match queue.front() {
            Some((at, _)) => Some(at.saturating_duration_since(Instant::now())),
            None => Some(Duration::from_secs(1)),
        };
        packet::wait_readable(&[rx.fd()], timeout).map_err(fail)?;
        let n = rx.recv().map_err(fail)?;
        if n > 0 {
            let now = Instant::now();
            now_out.clear();
            let mut dir = sh.dir.lock().expect("no panics");
            for i in 0..n {
                let frame = rx.frame(i);
                let shape = packet::shape(frame);
                if queued_bytes + frame.len() > MAX_QUEUED_BYTES {
                    dir.counters.dropped_queue += shape.frames as u64;
                    continue;
                }
                match dir.arrive(now, shape.frames, shape.wire_bytes) {
                    Verdict::Lost | Verdict::Overflow => {}
                    Verdict::Leave(at) if at <= now && queue.is_empty() => now_out.push(i),
                    Verdict::Leave(at) => {
                        queued_bytes += frame.len();
                        queue.push_back((at, frame.to_vec()));
                    }
                }
            }
            drop(dir);
            tx.send(now_out.iter().map(|&i| rx.frame(i)))
                .map_err(fail)?;
        }
        let now = Instant::now();
        let due = queue.iter().take_while(|(at, _)| *at <= now).count();
        if due > 0 {
            tx.send(queue.iter().take(due).map(|(_, f)| f.as_slice()))
                .map_err(fail)?;
            for (_, f) in queue.drain(..due) {
                queued_bytes -= f.len();
            }
        }
        sh.queued.store(queue.len() as u64, Ordering::Relaxed);
    }
}
