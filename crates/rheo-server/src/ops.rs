//! The operations endpoint, on its own port: Prometheus `/metrics`, `/healthz` (liveness: the
//! process answers) and `/readyz` (readiness: the data directory is open and the server is not
//! shutting down). It comes up before the store opens, so operators see recovery progress.
//!
//! Request latencies are recorded by the gRPC service into [`Ops`]; everything else is read
//! from the store at scrape time ([`rheo_streams::Store::metrics`]), so deleted streams leave
//! no stale series and label cardinality stays bounded by shards and push sessions.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rheo_storage::HistogramSnapshot;
use rheo_streams::{OpenProgress, Store};
use tokio::net::TcpListener;

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const STOPPING: u8 = 2;

/// What the store-backed collector reads at scrape time.
#[derive(Debug)]
struct Shared {
    phase: AtomicU8,
    progress: Arc<OpenProgress>,
    store: OnceLock<Store>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            phase: AtomicU8::new(STARTING),
            progress: Arc::default(),
            store: OnceLock::new(),
        }
    }
}

/// Health, readiness and metrics of one server.
#[derive(Debug)]
pub struct Ops {
    shared: Arc<Shared>,
    registry: Registry,
    requests: Family<Vec<(&'static str, &'static str)>, Histogram>,
    push_delay: Histogram,
}

impl Default for Ops {
    fn default() -> Self {
        let shared = Arc::new(Shared::default());
        let mut registry = Registry::default();
        // 100 us to about 6.5 s.
        let requests =
            Family::<Vec<(&'static str, &'static str)>, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
            });
        registry.register(
            "rheo_request_duration_seconds",
            "Time to answer a gRPC call, by operation",
            requests.clone(),
        );
        let push_delay = Histogram::new(exponential_buckets(0.000_1, 2.0, 17));
        registry.register(
            "rheo_push_delay_seconds",
            "From a record's arrival to its SubscribeToShard event leaving the server",
            push_delay.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(shared.clone())));
        Ops {
            shared,
            registry,
            requests,
            push_delay,
        }
    }
}

impl Ops {
    /// A fresh, not yet ready, set of metrics.
    pub fn new() -> Arc<Ops> {
        Arc::new(Ops::default())
    }

    /// Where [`Store::open_with_progress`] counts the logs it opens.
    pub fn progress(&self) -> Arc<OpenProgress> {
        self.shared.progress.clone()
    }

    pub(crate) fn serving(&self, store: Store) {
        let _ = self.shared.store.set(store);
        self.shared.phase.store(SERVING, Ordering::SeqCst);
    }

    pub(crate) fn stopping(&self) {
        self.shared.phase.store(STOPPING, Ordering::SeqCst);
    }

    /// True while the server is serving (open, not shutting down).
    pub fn ready(&self) -> bool {
        self.shared.phase.load(Ordering::SeqCst) == SERVING
    }

    pub(crate) fn observe_request(&self, operation: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&vec![("operation", operation)])
            .observe(seconds);
    }

    pub(crate) fn observe_push_delay(&self, seconds: f64) {
        self.push_delay.observe(seconds);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn readiness(&self) -> (StatusCode, String) {
        match self.shared.phase.load(Ordering::SeqCst) {
            SERVING => (StatusCode::OK, "ready\n".into()),
            STOPPING => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into()),
            _ => {
                let progress = &self.shared.progress;
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "starting: {} of {} shard logs opened\n",
                        progress.opened.load(Ordering::Relaxed),
                        progress.total.load(Ordering::Relaxed)
                    ),
                )
            }
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` resolves.
pub async fn serve_ops(
    listener: TcpListener,
    ops: Arc<Ops>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = {
        let ops = ops.clone();
        move || async move {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                ops.encode(),
            )
        }
    };
    let ready = {
        let ops = ops.clone();
        move || async move { ops.readiness().into_response() }
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Reads the store's figures on each scrape.
#[derive(Debug)]
struct StoreCollector(Arc<Shared>);

/// Prometheus wants per-bucket counts; the engine keeps cumulative ones.
fn buckets(snapshot: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut previous = 0;
    snapshot
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let count = cumulative - previous;
            previous = cumulative;
            (bound, count)
        })
        .collect()
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.0;
        let ready = i64::from(shared.phase.load(Ordering::SeqCst) == SERVING);
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)
        };
        gauge(
            &mut encoder,
            "rheo_ready",
            "1 while the server serves",
            ready,
        )?;
        let progress = &shared.progress;
        gauge(
            &mut encoder,
            "rheo_recovery_logs",
            "Shard logs to open at start-up",
            progress.total.load(Ordering::Relaxed) as i64,
        )?;
        gauge(
            &mut encoder,
            "rheo_recovery_logs_opened",
            "Shard logs opened (and recovered) so far at start-up",
            progress.opened.load(Ordering::Relaxed) as i64,
        )?;
        let Some(store) = shared.store.get() else {
            return Ok(());
        };
        let metrics = store.metrics();
        gauge(
            &mut encoder,
            "rheo_streams_out_of_service",
            "Streams whose files failed to open at start-up; their calls are refused, the others serve",
            store.damaged_streams().len() as i64,
        )?;
        gauge(
            &mut encoder,
            "rheo_active_subscriptions",
            "Open SubscribeToShard sessions",
            metrics.sessions.len() as i64,
        )?;

        let journal = &metrics.journal;
        for (name, help, value) in [
            (
                "rheo_journal_commits",
                "Journal commits written",
                journal.commits,
            ),
            (
                "rheo_journal_syncs",
                "fdatasyncs of journal files",
                journal.syncs,
            ),
            (
                "rheo_journal_bytes_written",
                "Bytes written to journal files",
                journal.bytes_written,
            ),
            (
                "rheo_journal_checkpoints",
                "Journal files checkpointed (their segments synced) and deleted",
                journal.checkpoints,
            ),
            (
                "rheo_journal_replayed_entries",
                "Acknowledged groups written back from the journal at start-up",
                journal.replayed_entries,
            ),
            (
                "rheo_journal_exhausted_writes",
                "Writes refused and undone because the disk was full or descriptors ran out (nothing of them acknowledged)",
                journal.exhausted_writes,
            ),
        ] {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        gauge(
            &mut encoder,
            "rheo_journal_files",
            "Journal files on disk (the current one and any awaiting their checkpoint)",
            journal.files as i64,
        )?;

        type PerShard = fn(&rheo_streams::ShardMetrics) -> u64;
        let counters: [(&str, &str, PerShard); 5] = [
            ("rheo_records_in", "Records written", |s| s.records_in),
            (
                "rheo_bytes_in",
                "Bytes written (data and partition keys)",
                |s| s.bytes_in,
            ),
            (
                "rheo_retention_deleted_segments",
                "Segments deleted by retention",
                |s| s.log.retention_deleted_segments,
            ),
            (
                "rheo_corruptions",
                "Reads that stopped at corrupt data",
                |s| s.log.corruptions,
            ),
            (
                "rheo_tails_kept_aside",
                "Bad tails the open cut without proof they were never synced (bytes kept in the shard's aside/ directory)",
                |s| s.log.tails_kept_aside,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for shard in &metrics.shards {
                let labels = [
                    ("stream", shard.stream.as_str()),
                    ("shard", &shard.shard_id),
                ];
                ConstCounter::new(value(shard)).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, records) in [
            ("rheo_records_out", "Records read, by path", true),
            ("rheo_bytes_out", "Bytes read, by path", false),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for shard in &metrics.shards {
                let paths = if records {
                    [
                        ("get_records", shard.records_polled),
                        ("push", shard.records_pushed),
                    ]
                } else {
                    [
                        ("get_records", shard.bytes_polled),
                        ("push", shard.bytes_pushed),
                    ]
                };
                for (path, value) in paths {
                    let labels = [
                        ("stream", shard.stream.as_str()),
                        ("shard", &shard.shard_id),
                        ("path", path),
                    ];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut throttled = encoder.encode_descriptor(
            "rheo_throttled",
            "Records (writes) or GetRecords calls (reads) refused by throughput limits",
            None,
            MetricType::Counter,
        )?;
        for shard in &metrics.shards {
            for (kind, value) in [
                ("write", shard.throttled_writes),
                ("read", shard.throttled_reads),
            ] {
                let labels = [
                    ("stream", shard.stream.as_str()),
                    ("shard", &shard.shard_id),
                    ("kind", kind),
                ];
                ConstCounter::new(value).encode(throttled.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "rheo_shard_disk_bytes",
                "Bytes in a shard's segment files",
                (|s| s.disk_bytes) as PerShard,
            ),
            ("rheo_shard_segments", "Segment files of a shard", |s| {
                s.segments
            }),
            (
                "rheo_shard_open",
                "1 for an open shard, 0 for a closed one",
                |s| u64::from(s.open),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for shard in &metrics.shards {
                let labels = [
                    ("stream", shard.stream.as_str()),
                    ("shard", &shard.shard_id),
                ];
                ConstGauge::new(value(shard) as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut lag = encoder.encode_descriptor(
            "rheo_millis_behind_latest",
            "MillisBehindLatest of the last read: per push session, or of GetRecords (consumer \"\")",
            None,
            MetricType::Gauge,
        )?;
        for shard in &metrics.shards {
            let labels = [
                ("stream", shard.stream.as_str()),
                ("shard", &shard.shard_id),
                ("consumer", ""),
            ];
            ConstGauge::new(shard.polled_millis_behind as i64)
                .encode(lag.encode_family(&labels)?)?;
        }
        for session in &metrics.sessions {
            let labels = [
                ("stream", session.stream.as_str()),
                ("shard", &session.shard_id),
                ("consumer", &session.consumer),
            ];
            ConstGauge::new(session.millis_behind as i64).encode(lag.encode_family(&labels)?)?;
        }
        // The engine's histograms, summed over every shard (per-shard histograms would
        // multiply series by the bucket count for little gain).
        let mut sync = Some(metrics.journal.sync_seconds.clone());
        let mut groups = None::<HistogramSnapshot>;
        for shard in &metrics.shards {
            for (total, one) in [
                (&mut sync, &shard.log.sync_seconds),
                (&mut groups, &shard.log.group_appends),
            ] {
                match total {
                    Some(total) => total.merge(one),
                    None => *total = Some(one.clone()),
                }
            }
        }
        for (name, help, snapshot) in [
            (
                "rheo_fsync_duration_seconds",
                "fdatasync latency: journal commits, segment rolls and checkpoints",
                sync,
            ),
            (
                "rheo_journal_commit_shards",
                "Shards carried per journal commit (one write and at most one fdatasync each)",
                Some(metrics.journal.commit_logs.clone()),
            ),
            (
                "rheo_group_commit_appends",
                "Appends written per group commit",
                groups,
            ),
        ] {
            if let Some(snapshot) = snapshot {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Histogram)?
                    .encode_histogram::<NoLabelSet>(
                        snapshot.sum,
                        snapshot.count,
                        &buckets(&snapshot),
                        None,
                    )?;
            }
        }
        Ok(())
    }
}
