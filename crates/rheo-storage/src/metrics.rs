//! Counters and fixed-bucket histograms a log keeps about itself (fdatasync latency, appends
//! per group commit, retention deletions, corruption met by reads). They are plain atomics:
//! recording costs a few relaxed adds, and exporting them (Prometheus, `rheo stats`) is the
//! server's business, not the engine's.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the fdatasync latency buckets, in seconds.
pub const SYNC_SECONDS_BOUNDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds of the appends-per-group buckets.
pub const GROUP_APPENDS_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Upper bounds of the logs-per-journal-commit buckets.
pub const JOURNAL_COMMIT_LOGS_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// A histogram with fixed upper bounds (the last bucket is unbounded).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, plus the overflow bucket.
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, value: f64) {
        let at = self.bounds.partition_point(|bound| *bound < value);
        self.counts[at].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (at, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((
                self.bounds.get(at).copied().unwrap_or(f64::INFINITY),
                cumulative,
            ));
        }
        HistogramSnapshot {
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: cumulative,
            buckets,
        }
    }
}

/// A histogram's state: cumulative counts per upper bound, as Prometheus wants them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound, observations at or below it)`, the last bound infinite.
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSnapshot {
    /// Adds another histogram with the same bounds (to sum shards).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        self.sum += other.sum;
        self.count += other.count;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
    }
}

/// Everything a log measures about itself (see [`crate::ShardLog::metrics`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LogMetrics {
    /// fdatasync latency of segment data, in seconds.
    pub sync_seconds: HistogramSnapshot,
    /// Appends written per group commit.
    pub group_appends: HistogramSnapshot,
    /// Segments deleted by retention since the log was opened.
    pub retention_deleted_segments: u64,
    /// Reads that stopped at corruption since the log was opened.
    pub corruptions: u64,
    /// Bad tails the open cut without proof that they were never synced (0 or 1): their
    /// bytes are in the log's `aside/` directory, to be inspected.
    pub tails_kept_aside: u64,
}

/// The live counters of one log.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) sync_seconds: Histogram,
    pub(crate) group_appends: Histogram,
    pub(crate) retention_deleted_segments: AtomicU64,
    pub(crate) corruptions: AtomicU64,
    tails_kept_aside: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            sync_seconds: Histogram::new(SYNC_SECONDS_BOUNDS),
            group_appends: Histogram::new(GROUP_APPENDS_BOUNDS),
            retention_deleted_segments: AtomicU64::new(0),
            corruptions: AtomicU64::new(0),
            tails_kept_aside: 0,
        }
    }
}

impl Recorder {
    /// The counters of a log whose open kept `tails_kept_aside` bad tails aside.
    pub(crate) fn opened(tails_kept_aside: u64) -> Recorder {
        Recorder {
            tails_kept_aside,
            ..Recorder::default()
        }
    }

    pub(crate) fn snapshot(&self) -> LogMetrics {
        LogMetrics {
            sync_seconds: self.sync_seconds.snapshot(),
            group_appends: self.group_appends.snapshot(),
            retention_deleted_segments: self.retention_deleted_segments.load(Ordering::Relaxed),
            corruptions: self.corruptions.load(Ordering::Relaxed),
            tails_kept_aside: self.tails_kept_aside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_an_overflow_bucket() {
        let histogram = Histogram::new(&[1.0, 10.0]);
        for value in [0.5, 1.0, 3.0, 50.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(
            snapshot.buckets,
            vec![(1.0, 2), (10.0, 3), (f64::INFINITY, 4)]
        );
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum - 54.5).abs() < 1e-6);
        let mut doubled = snapshot.clone();
        doubled.merge(&snapshot);
        assert_eq!(doubled.buckets[2], (f64::INFINITY, 8));
    }
}
