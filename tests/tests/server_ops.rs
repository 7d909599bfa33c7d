//! The operations endpoint through real sockets: /metrics moves with the traffic sent and
//! covers every metric the Grafana dashboard uses; /readyz and the gRPC health service follow
//! start-up (the data directory opening) and shutdown; /healthz answers throughout.

use std::time::Duration;

use bytes::Bytes;
use rheo_proto::v1 as pb;
use rheo_server::{Ops, ServeOptions};
use rheo_storage::{Clock, OffsetClock};
use rheo_streams::Store;
use rheo_tests::{TestServer, reason, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// GET `path` with HTTP/1.0: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: rheo\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of the first sample named `name` whose labels contain every `label`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .find(|line| {
            let rest = &line[name.len()..];
            rest.starts_with('{') || rest.starts_with(' ')
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{metrics}"))
        .rsplit_once(' ')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels.iter().all(|label| line.contains(label))
        })
        .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_traffic_and_cover_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.fan_out.rate_bytes_per_sec = None;
    let server = TestServer::start(dir.path(), config).await;
    let mut client = server.client().await;
    let (status, before) = get(server.ops_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(sample(&before, "rheo_ready", &[]), 1.0);

    client
        .create_stream(pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = client
        .register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_name: "s".into(),
            consumer_name: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consumer
        .unwrap()
        .consumer_arn;
    let mut events = client
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: consumer,
            shard_id: "shardId-000000000000".into(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::TrimHorizon as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // 1,500 records of 9 bytes (key and data) into one shard: the first second's 1,000 pass, the rest are
    // throttled.
    let mut stored = 0;
    for round in 0..3 {
        let records = (0..500)
            .map(|i| pb::PutRecordsRequestEntry {
                data: Bytes::from(format!("r{round}-{i:05}")),
                partition_key: "k".into(),
                explicit_hash_key: None,
            })
            .collect();
        let response = client
            .put_records(pb::PutRecordsRequest {
                stream_name: "s".into(),
                records,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        stored += 500 - response.failed_record_count as usize;
    }
    assert!(stored < 1500, "some records were throttled");
    let page = rheo_tests::first_page(&mut client, "s", "shardId-000000000000").await;
    assert_eq!(page.records.len(), stored);
    let mut pushed = 0;
    while pushed < stored {
        pushed += events.message().await.unwrap().unwrap().records.len();
    }

    let (_, metrics) = get(server.ops_addr, "/metrics").await;
    let shard = ["stream=\"s\"", "shard=\"shardId-000000000000\""];
    assert_eq!(
        sum(&metrics, "rheo_records_in_total", &shard),
        stored as f64
    );
    assert_eq!(
        sum(&metrics, "rheo_bytes_in_total", &shard),
        (stored * (1 + 8)) as f64,
        "data and partition key bytes"
    );
    let polled = [shard[0], shard[1], "path=\"get_records\""];
    assert_eq!(
        sum(&metrics, "rheo_records_out_total", &polled),
        stored as f64
    );
    let push = [shard[0], shard[1], "path=\"push\""];
    assert_eq!(
        sum(&metrics, "rheo_records_out_total", &push),
        stored as f64
    );
    let throttled = [shard[0], "kind=\"write\""];
    assert_eq!(
        sum(&metrics, "rheo_throttled_total", &throttled),
        (1500 - stored) as f64
    );
    assert_eq!(sample(&metrics, "rheo_active_subscriptions", &[]), 1.0);
    assert!(sample(&metrics, "rheo_shard_disk_bytes", &shard) > 0.0);
    assert!(sample(&metrics, "rheo_fsync_duration_seconds_count", &[]) >= 3.0);
    assert!(sample(&metrics, "rheo_group_commit_appends_count", &[]) >= 3.0);
    let puts = ["operation=\"PutRecords\""];
    assert_eq!(
        sample(&metrics, "rheo_request_duration_seconds_count", &puts),
        3.0
    );
    assert!(sample(&metrics, "rheo_push_delay_seconds_count", &[]) >= 1.0);
    let session = [shard[0], "consumer=\"c\""];
    assert_eq!(sample(&metrics, "rheo_millis_behind_latest", &session), 0.0);

    // Every metric the Grafana dashboard queries is exported.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/rheo-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut used = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (at, _) in expr.match_indices("rheo_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                used.push(name);
            }
        }
    }
    assert!(used.len() > 10);
    for name in used {
        assert!(
            metrics.lines().any(|line| line.starts_with(&name)),
            "the dashboard uses {name}, which /metrics does not export"
        );
    }
    drop(events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_start_up_and_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.data_dir = dir.path().to_path_buf();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = grpc.local_addr().unwrap();
    let ops_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_addr = ops_listener.local_addr().unwrap();
    let ops = Ops::new();
    let ops_task = tokio::spawn(rheo_server::serve_ops(
        ops_listener,
        ops.clone(),
        std::future::pending(),
    ));
    // The data directory "opens" when the test says so.
    let (open, opened) = tokio::sync::oneshot::channel::<()>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let progress = ops.progress();
    let options = ServeOptions {
        testbed_clock: None,
        ops: ops.clone(),
        shutdown_delay: Duration::from_secs(1),
        ..ServeOptions::default()
    };
    let server = tokio::spawn(async move {
        let opening = async move {
            opened.await.unwrap();
            let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(OffsetClock::new());
            Store::open_with_progress(config, clock, progress).await
        };
        rheo_server::run(grpc, opening, options, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    let endpoint = format!("http://{grpc_addr}");
    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let check = || pb_health_request();
    let status = |response: tonic_health::pb::HealthCheckResponse| response.status();
    assert_eq!(
        status(health.check(check()).await.unwrap().into_inner()),
        ServingStatus::NotServing,
        "NOT_SERVING while the data directory opens"
    );
    let (code, body) = get(ops_addr, "/readyz").await;
    assert_eq!(code, 503);
    assert!(
        body.starts_with("starting: 0 of 0 shard logs opened"),
        "{body}"
    );
    assert_eq!(get(ops_addr, "/healthz").await.0, 200, "alive meanwhile");
    let mut client = rheo_proto::v1::kinesis_client::KinesisClient::connect(endpoint)
        .await
        .unwrap();
    let early = client
        .list_streams(pb::ListStreamsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable);
    assert_eq!(reason(&early), "ServiceUnavailableException");

    open.send(()).unwrap();
    let mut ready = false;
    for _ in 0..200 {
        if get(ops_addr, "/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ready, "ready once the data directory is open");
    assert_eq!(
        status(health.check(check()).await.unwrap().into_inner()),
        ServingStatus::Serving
    );
    client
        .list_streams(pb::ListStreamsRequest::default())
        .await
        .unwrap();

    // Shutdown: not ready at once, but still serving for the shutdown delay.
    stop.send(()).unwrap();
    let mut not_ready = false;
    for _ in 0..50 {
        let (code, body) = get(ops_addr, "/readyz").await;
        if code == 503 {
            assert_eq!(body, "shutting down\n");
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(not_ready, "not ready as soon as shutdown starts");
    assert_eq!(
        status(health.check(check()).await.unwrap().into_inner()),
        ServingStatus::NotServing
    );
    client
        .list_streams(pb::ListStreamsRequest::default())
        .await
        .expect("calls are still served during the shutdown delay");
    server.await.unwrap();
    ops_task.abort();
}

fn pb_health_request() -> tonic_health::pb::HealthCheckRequest {
    tonic_health::pb::HealthCheckRequest {
        service: "rheo.v1.Kinesis".into(),
    }
}
