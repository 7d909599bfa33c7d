//! The engine's notion of wall-clock time, injectable so tests and the retention testbed can
//! move time forward instead of waiting for it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of milliseconds since the Unix epoch. Arrival timestamps, retention and age-based
/// segment rolls all read it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> i64;
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            // A clock set before 1970 is a broken host; report time zero rather than panic.
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that reads `start_ms` until advanced.
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicI64::new(start_ms)),
        }
    }

    /// Moves time forward by `ms` (negative values are ignored: time never runs backwards).
    pub fn advance_ms(&self, ms: i64) {
        if ms > 0 {
            self.now_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Sets the time, if that is not earlier than the current time.
    pub fn set_ms(&self, ms: i64) {
        self.now_ms.fetch_max(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// A clock that starts at the real time and can then be pushed ahead of it: the testbed clock.
/// It reads `system time + offset`, so time keeps flowing between advances.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock {
    offset_ms: Arc<AtomicI64>,
}

impl OffsetClock {
    /// A clock that reads the system time until advanced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock `ms` ahead (negative values are ignored).
    pub fn advance_ms(&self, ms: i64) {
        if ms > 0 {
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// How far ahead of the system clock this clock runs.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms().saturating_add(self.offset_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_runs_backwards() {
        let clock = ManualClock::new(1_000);
        clock.advance_ms(-500);
        clock.set_ms(10);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance_ms(250);
        assert_eq!(clock.clone().now_ms(), 1_250);
    }

    #[test]
    fn offset_clock_runs_ahead_of_the_system_clock() {
        let clock = OffsetClock::new();
        clock.advance_ms(36 * 3_600_000);
        let ahead = clock.now_ms() - SystemClock.now_ms();
        assert!(
            (36 * 3_600_000 - 1_000..=36 * 3_600_000).contains(&ahead),
            "{ahead}"
        );
    }
}
