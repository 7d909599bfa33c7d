//! Token buckets for per-shard throughput limits. They use the monotonic clock: moving the
//! testbed clock forward does not refill them.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket holding at most one second of its rate.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate_per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub(crate) fn new(rate_per_sec: u64) -> Self {
        Bucket {
            rate_per_sec: rate_per_sec as f64,
            state: Mutex::new((rate_per_sec as f64, Instant::now())),
        }
    }

    fn refill(&self, state: &mut (f64, Instant)) {
        let now = Instant::now();
        let elapsed = now.duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.rate_per_sec).min(self.rate_per_sec);
        state.1 = now;
    }

    /// Takes `amount` if available.
    pub(crate) fn try_take(&self, amount: u64) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut state);
        if state.0 >= amount as f64 {
            state.0 -= amount as f64;
            true
        } else {
            false
        }
    }

    /// Takes `amount`, going into debt if needed (for reads whose size is known afterwards).
    pub(crate) fn charge(&self, amount: u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut state);
        state.0 -= amount as f64;
    }

    /// True if the bucket is not in debt.
    pub(crate) fn has_credit(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut state);
        state.0 > 0.0
    }

    /// Whole units available now (0 when in debt).
    pub(crate) fn available(&self) -> u64 {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut state);
        state.0.max(0.0) as u64
    }

    /// How long until the bucket is out of debt; `None` if it has credit now.
    pub(crate) fn time_to_credit(&self) -> Option<std::time::Duration> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.refill(&mut state);
        (state.0 <= 0.0)
            .then(|| std::time::Duration::from_secs_f64((-state.0 + 1.0) / self.rate_per_sec))
    }

    /// Returns `amount` taken by a `try_take` whose operation did not happen.
    pub(crate) fn give_back(&self, amount: u64) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.0 = (state.0 + amount as f64).min(self.rate_per_sec);
    }
}

/// The four buckets of one shard (or of a whole on-demand stream, whose shards share one).
#[derive(Debug)]
pub(crate) struct ShardLimiter {
    /// Whether limits apply at all.
    pub(crate) enabled: bool,
    pub(crate) write_bytes: Bucket,
    pub(crate) write_records: Bucket,
    pub(crate) read_bytes: Bucket,
    pub(crate) read_calls: Bucket,
}

impl ShardLimiter {
    pub(crate) fn new(limits: &crate::config::ShardLimits) -> Self {
        ShardLimiter {
            enabled: limits.enabled,
            write_bytes: Bucket::new(limits.write_bytes_per_sec),
            write_records: Bucket::new(limits.write_records_per_sec),
            read_bytes: Bucket::new(limits.read_bytes_per_sec),
            read_calls: Bucket::new(limits.read_calls_per_sec),
        }
    }

    /// Admits a write of `records` records and `bytes` bytes, or refuses it whole.
    pub(crate) fn admit_write(&self, records: u64, bytes: u64) -> bool {
        if !self.enabled {
            return true;
        }
        if !self.write_records.try_take(records) {
            return false;
        }
        if !self.write_bytes.try_take(bytes) {
            self.write_records.give_back(records);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_second_of_its_rate() {
        let bucket = Bucket::new(1000);
        assert!(bucket.try_take(600));
        assert!(!bucket.try_take(600), "only about 400 left");
        assert!(bucket.try_take(300));
        bucket.give_back(300);
        assert!(bucket.try_take(300));
    }

    #[test]
    fn reads_can_go_into_debt() {
        let bucket = Bucket::new(10);
        bucket.charge(25);
        assert!(!bucket.has_credit());
        let wait = bucket.time_to_credit().expect("in debt");
        assert!(
            wait > std::time::Duration::from_millis(1400)
                && wait <= std::time::Duration::from_millis(1600),
            "15 units of debt at 10 a second take about 1.5 s: {wait:?}"
        );
        assert_eq!(Bucket::new(10).time_to_credit(), None);
    }
}
