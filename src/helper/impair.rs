//! One direction of an a2b as arithmetic on time, free of sockets so that it can be tested
//! fast: each frame that arrives is lost, refused by a full queue, or given the instant it
//! leaves.
//!
//! - `loss`: each frame is dropped independently with that probability.
//! - `rate`: a token bucket on Ethernet frame bytes (header and payload, no preamble or
//!   FCS), filled at the rate and holding two full frames' worth or 2 ms of the rate; the
//!   frames waiting for tokens form a queue bounded to 100 ms of the rate (at least
//!   64 KiB), beyond which a frame is dropped.
//! - `delay`, `jitter`: the frame then waits `delay` ± a uniform draw in [-J, +J] (never
//!   less than nothing), and never leaves before the frame ahead of it: order is kept.
//!
//! Settings change between two frames; frames already scheduled keep their instants, so
//! a change drops nothing that the new settings would not.

use crate::model::Impairment;
use crate::status::Counters;
use std::time::{Duration, Instant};

/// What becomes of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Lost,
    /// The rate's queue is full.
    Overflow,
    /// It leaves at this instant.
    Leave(Instant),
}

/// A small, fast generator (xorshift64*): loss and jitter need uniform draws, not secrecy,
/// and one multiply per frame keeps the helper off the critical path.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.draw() as u128 * n as u128) >> 64) as u64
    }
}

pub struct Direction {
    settings: Impairment,
    rng: Rng,
    /// The token bucket's virtual clock: the bucket is full at `credit + burst`.
    credit: Option<Instant>,
    /// When the last scheduled frame leaves: none leaves before it.
    last: Option<Instant>,
    pub counters: Counters,
}

/// Nanoseconds to send `bytes` at `rate` bit/s.
fn transmit(bytes: u64, rate: u64) -> Duration {
    Duration::from_nanos((bytes as u128 * 8 * 1_000_000_000 / rate as u128) as u64)
}

impl Direction {
    pub fn new(settings: Impairment, seed: u64) -> Direction {
        Direction {
            settings,
            rng: Rng::new(seed),
            credit: None,
            last: None,
            counters: Counters::default(),
        }
    }

    pub fn settings(&self) -> Impairment {
        self.settings
    }

    pub fn set(&mut self, settings: Impairment) {
        self.settings = settings;
    }

    /// Whether frames go straight through, untouched.
    pub fn is_transparent(&self) -> bool {
        self.settings == Impairment::default()
    }

    /// Whether each wire frame must be seen on its own (so a TSO segment must reach the
    /// helper cut into wire frames): loss, rate and jitter work per frame.
    pub fn needs_wire_frames(settings: &Impairment) -> bool {
        settings.loss.is_some_and(|l| l.0 > 0)
            || settings.rate.is_some()
            || settings.jitter.is_some_and(|j| j.0 > 0)
    }

    /// Decides the fate of a frame arriving `now`, `frames` wire frames of `bytes` in all.
    pub fn arrive(&mut self, now: Instant, frames: u32, bytes: u64) -> Verdict {
        let s = self.settings;
        if let Some(loss) = s.loss.filter(|l| l.0 > 0)
            && self.rng.below(1_000_000) < loss.0 as u64
        {
            self.counters.dropped_loss += frames as u64;
            return Verdict::Lost;
        }
        let mut leave = now;
        if let Some(rate) = s.rate {
            let rate = rate.0.max(1);
            let burst = transmit(3028, rate).max(Duration::from_millis(2));
            let limit = (rate / 8 / 10).max(64 * 1024);
            // A full bucket is a clock `burst` behind now: idle time buys no more.
            let floor = now.checked_sub(burst).unwrap_or(now);
            let credit = self.credit.map_or(floor, |c| c.max(floor));
            // Bytes still waiting for tokens: the part of the virtual clock ahead of now.
            let backlog =
                credit.saturating_duration_since(now).as_nanos() * rate as u128 / 8 / 1_000_000_000;
            if backlog as u64 + bytes > limit {
                self.counters.dropped_queue += frames as u64;
                return Verdict::Overflow;
            }
            let credit = credit + transmit(bytes, rate);
            self.credit = Some(credit);
            leave = leave.max(credit);
        }
        let delay = s.delay.map_or(0, |d| d.0 * 1000) as i64;
        let jitter = s.jitter.map_or(0, |j| j.0 * 1000) as i64;
        let mut wait = delay;
        if jitter > 0 {
            wait += self.rng.below(2 * jitter as u64 + 1) as i64 - jitter;
        }
        let mut at = leave + Duration::from_micros(wait.max(0) as u64);
        if let Some(last) = self.last {
            at = at.max(last);
        }
        self.last = Some(at);
        self.counters.forwarded += frames as u64;
        self.counters.forwarded_bytes += bytes;
        Verdict::Leave(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::{Duration as D, Percent, Rate};

    fn with(f: impl FnOnce(&mut Impairment)) -> Direction {
        let mut s = Impairment::default();
        f(&mut s);
        Direction::new(s, 42)
    }

    #[test]
    fn nothing_set_is_no_wait() {
        let mut d = with(|_| {});
        let now = Instant::now();
        assert_eq!(d.arrive(now, 1, 1514), Verdict::Leave(now));
        assert!(d.is_transparent());
    }

    #[test]
    fn delay_and_jitter_stay_in_bounds_and_keep_order() {
        let mut d = with(|s| {
            s.delay = Some(D(50));
            s.jitter = Some(D(10));
        });
        let t0 = Instant::now();
        let mut waits = Vec::new();
        let mut last = t0;
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(50 * i);
            let Verdict::Leave(at) = d.arrive(now, 1, 100) else {
                panic!("nothing is lost")
            };
            assert!(at >= last, "order kept");
            last = at;
            let w = (at - now).as_secs_f64() * 1e3;
            assert!((40.0..=60.0).contains(&w), "{w} ms");
            waits.push(w);
        }
        let mean = waits.iter().sum::<f64>() / waits.len() as f64;
        let sd =
            (waits.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / waits.len() as f64).sqrt();
        assert!((mean - 50.0).abs() < 0.3, "mean {mean}");
        assert!(
            (5.4..6.1).contains(&sd),
            "uniform ±10 ms has sd 5.77, got {sd}"
        );
    }

    #[test]
    fn jitter_beyond_the_delay_never_goes_below_zero() {
        let mut d = with(|s| {
            s.delay = Some(D(2));
            s.jitter = Some(D(10));
        });
        let t0 = Instant::now();
        for i in 0..1000 {
            let now = t0 + Duration::from_millis(100 * i);
            let Verdict::Leave(at) = d.arrive(now, 1, 100) else {
                panic!()
            };
            assert!(at >= now);
        }
    }

    #[test]
    fn loss_is_independent_per_frame() {
        let mut d = with(|s| s.loss = Some(Percent(100_000)));
        let now = Instant::now();
        let lost = (0..100_000)
            .filter(|_| d.arrive(now, 1, 100) == Verdict::Lost)
            .count();
        assert!((9_500..10_500).contains(&lost), "{lost}");
        assert_eq!(d.counters.dropped_loss, lost as u64);
    }

    #[test]
    fn rate_spaces_frames_by_their_bytes_and_bounds_the_queue() {
        let mut d = with(|s| s.rate = Some(Rate(10_000_000)));
        let t0 = Instant::now() + Duration::from_secs(1);
        // 20 Mbit/s offered for 10 s, 1442-byte frames.
        let gap = transmit(1442, 20_000_000);
        let mut left = Vec::new();
        for i in 0..17_337u32 {
            let now = t0 + gap * i;
            if let Verdict::Leave(at) = d.arrive(now, 1, 1442) {
                left.push(at);
            }
        }
        let span = (*left.last().unwrap() - left[0]).as_secs_f64();
        let rate = (left.len() - 1) as f64 * 1442.0 * 8.0 / span;
        assert!((rate - 10e6).abs() < 10e6 * 0.01, "{rate}");
        assert!(d.counters.dropped_queue > 8000);
        // Bounded: no frame waits more than 100 ms (plus the burst).
        for (i, at) in left.iter().enumerate().step_by(97) {
            let _ = i;
            assert!(*at - t0 < Duration::from_secs(11));
        }
    }

    #[test]
    fn below_is_uniform_enough() {
        let mut r = Rng::new(7);
        let mut hist = [0u32; 10];
        for _ in 0..100_000 {
            hist[r.below(10) as usize] += 1;
        }
        assert!(
            hist.iter().all(|&h| (9_500..10_500).contains(&h)),
            "{hist:?}"
        );
    }
}
