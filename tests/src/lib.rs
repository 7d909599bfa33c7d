//! Black-box test support: start the real server on `127.0.0.1:0` over a temporary data
//! directory and connect the generated Rust client to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rheo_proto::v1::admin_client::AdminClient;
use rheo_proto::v1::kinesis_client::KinesisClient;
use rheo_server::{Ops, ServeOptions};
use rheo_storage::{Clock, OffsetClock};
use rheo_streams::{Store, StoreConfig};
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running server and a client connected to it.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    pub ops_addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The clock it runs on (a testbed clock: tests move it forward).
    pub clock: OffsetClock,
    /// The store it serves (to observe what a client cannot, such as open subscriptions).
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on `data_dir` with `config` (its data_dir is replaced), on a fresh
    /// testbed clock.
    pub async fn start(data_dir: &Path, config: StoreConfig) -> TestServer {
        Self::start_with_clock(data_dir, config, OffsetClock::new()).await
    }

    /// Starts a server on an existing clock (to keep time across a restart).
    pub async fn start_with_clock(
        data_dir: &Path,
        config: StoreConfig,
        clock: OffsetClock,
    ) -> TestServer {
        Self::start_inner(data_dir, config, clock, true, ServeOptions::default()).await
    }

    /// Starts a server with serving options (authentication, TLS, a separate Kinesis HTTP
    /// listener); its testbed clock and metrics are set here.
    pub async fn start_with_options(
        data_dir: &Path,
        config: StoreConfig,
        options: ServeOptions,
    ) -> TestServer {
        Self::start_inner(data_dir, config, OffsetClock::new(), true, options).await
    }

    /// Starts a server whose Admin service refuses to move the clock (the default setting).
    pub async fn start_without_testbed(data_dir: &Path, config: StoreConfig) -> TestServer {
        Self::start_inner(
            data_dir,
            config,
            OffsetClock::new(),
            false,
            ServeOptions::default(),
        )
        .await
    }

    async fn start_inner(
        data_dir: &Path,
        mut config: StoreConfig,
        clock: OffsetClock,
        testbed: bool,
        options: ServeOptions,
    ) -> TestServer {
        config.data_dir = data_dir.to_path_buf();
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let store = Store::open(config, shared).await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let ops = Ops::new();
        let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let ops_addr = ops_listener.local_addr().expect("local address");
        let options = ServeOptions {
            testbed_clock: testbed.then(|| clock.clone()),
            ops: ops.clone(),
            shutdown_delay: Duration::ZERO,
            ..options
        };
        let served = store.clone();
        let readiness = ops.clone();
        let task = tokio::spawn(async move {
            let (stop_ops, ops_stopped) = oneshot::channel::<()>();
            let ops_task = tokio::spawn(rheo_server::serve_ops(ops_listener, ops, async {
                let _ = ops_stopped.await;
            }));
            rheo_server::run(listener, async { Ok(served) }, options, async {
                let _ = stopped.await;
            })
            .await
            .expect("server ran");
            let _ = stop_ops.send(());
            ops_task.await.expect("ops task").expect("ops served");
        });
        // The gRPC port answers UNAVAILABLE until the store is handed over: wait for ready.
        for _ in 0..500 {
            if readiness.ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(readiness.ready(), "the test server became ready");
        TestServer {
            addr,
            ops_addr,
            data_dir: data_dir.to_path_buf(),
            clock,
            store,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client for the Kinesis service.
    pub async fn client(&self) -> KinesisClient<Channel> {
        KinesisClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// A client for the Admin service.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Waits (up to 2 s) until no push session is open on the server; false if one still is.
    pub async fn sessions_freed(&self) -> bool {
        for _ in 0..200 {
            if self.store.active_subscriptions() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Graceful shutdown: stop accepting, finish in-flight calls, sync, return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// Test settings: Kinesis defaults with small segments.
pub fn test_config() -> StoreConfig {
    StoreConfig {
        segment_max_bytes: 64 * 1024,
        ..StoreConfig::default()
    }
}

/// Test settings without throughput limits or push shaping (for tests about something else).
pub fn unlimited_config() -> StoreConfig {
    let mut config = test_config();
    config.limits.enabled = false;
    config.fan_out.rate_bytes_per_sec = None;
    config
}

/// Creates provisioned stream `name` with `shards` shards.
pub async fn create_stream(client: &mut KinesisClient<Channel>, name: &str, shards: i32) {
    client
        .create_stream(rheo_proto::v1::CreateStreamRequest {
            stream_name: name.into(),
            shard_count: Some(shards),
            ..Default::default()
        })
        .await
        .expect("create stream");
}

/// PutRecords of `records` (data, partition key) into `stream`; every one must be accepted.
pub async fn put_many(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    records: impl IntoIterator<Item = (Vec<u8>, String)>,
) -> rheo_proto::v1::PutRecordsResponse {
    use rheo_proto::v1 as pb;
    let records = records
        .into_iter()
        .map(|(data, partition_key)| pb::PutRecordsRequestEntry {
            data: data.into(),
            partition_key,
            explicit_hash_key: None,
        })
        .collect();
    let answer = client
        .put_records(pb::PutRecordsRequest {
            stream_name: stream.into(),
            records,
            ..Default::default()
        })
        .await
        .expect("put records")
        .into_inner();
    assert_eq!(answer.failed_record_count, 0, "{answer:?}");
    answer
}

/// A TRIM_HORIZON iterator of `shard` of `stream`.
pub async fn trim_horizon_iterator(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    shard: &str,
) -> String {
    use rheo_proto::v1 as pb;
    client
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: stream.into(),
            shard_id: shard.into(),
            shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
            ..Default::default()
        })
        .await
        .expect("shard iterator")
        .into_inner()
        .shard_iterator
}

/// One GetRecords page of `shard` of `stream`, read from the trim horizon.
pub async fn first_page(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    shard: &str,
) -> rheo_proto::v1::GetRecordsResponse {
    use rheo_proto::v1 as pb;
    let iterator = trim_horizon_iterator(client, stream, shard).await;
    client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: iterator,
            ..Default::default()
        })
        .await
        .expect("get records")
        .into_inner()
}

/// The Kinesis exception name a status carries.
pub fn reason(status: &tonic::Status) -> String {
    rheo_server::kinesis_name(status).unwrap_or_else(|| format!("no ErrorInfo in {status:?}"))
}

/// Runs this test binary again as a child process that runs only the test `test`, with `env`
/// set to `dir` (the kill -9 tests' way of running the same code as a process to kill). Its
/// stdout is piped, its stderr dropped.
pub fn spawn_self(test: &str, env: &str, dir: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child")
}

/// Reads the child's `ACK ...` lines (what follows `ACK `) until it exits, killing it with
/// SIGKILL once `enough` lines arrived or `at_most` passed: the kill lands while the child is
/// writing. Panics unless the child was killed.
pub fn acks_until_killed(
    child: &mut std::process::Child,
    enough: usize,
    at_most: Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let started = std::time::Instant::now();
    let mut acked = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.expect("child output");
        let Some(rest) = line.strip_prefix("ACK ") else {
            continue;
        };
        acked.push(rest.to_string());
        if !killed && (acked.len() >= enough || started.elapsed() > at_most) {
            child.kill().expect("kill -9 the child");
            killed = true;
        }
    }
    child.wait().expect("reap the child");
    assert!(killed, "the child was killed while writing");
    acked
}
