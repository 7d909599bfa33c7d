//! The `rheo` binary end to end: `rheo serve` from a TOML file plus flags, the operator
//! commands against it, graceful shutdown on SIGTERM, and `rheo verify`.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RHEO: &str = env!("CARGO_BIN_EXE_rheo");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True if the operations endpoint on `port` says ready.
fn ready(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut response = String::new();
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\n\r\n")
        .and_then(|()| stream.read_to_string(&mut response))
        .is_ok()
        && response.starts_with("HTTP/1.0 200")
}

struct Server {
    child: Child,
    endpoint: String,
    metrics: String,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let port = free_port();
        let metrics_port = free_port();
        let config = data_dir.with_extension("toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n[limits]\nenabled = false\n",
                data_dir
            ),
        )
        .unwrap();
        let child = Command::new(RHEO)
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(extra)
            .env("RHEO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        // Ready once /readyz answers 200: the gRPC port opens before the data directory does.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready(metrics_port) {
            assert!(Instant::now() < deadline, "rheo serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            endpoint,
            metrics: format!("http://127.0.0.1:{metrics_port}"),
        }
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        // `probe` and `stats` talk to the operations endpoint, given in their own flags.
        let grpc = !matches!(args.first(), Some(&"probe" | &"stats"));
        let endpoint: &[&str] = if grpc {
            &["--endpoint", &self.endpoint]
        } else {
            &[]
        };
        let mut child = Command::new(RHEO)
            .args(args)
            .args(endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "rheo {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// SIGTERM; the server must finish and exit 0.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    }
}

impl Drop for Server {
    /// A failed test must not leave its server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn operator_commands_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, &[]);

    assert_eq!(
        server.ok(&["stream", "create", "events", "--shards", "2"], ""),
        "created events\n"
    );
    assert_eq!(server.ok(&["stream", "list"], ""), "events\n");
    let described = server.ok(&["stream", "describe", "events"], "");
    assert!(described.contains("status:     ACTIVE"), "{described}");
    assert!(described.contains("shardId-000000000001"), "{described}");

    let put = server.ok(
        &["put", "--stream", "events", "--partition-key", "user-1"],
        "first\nsecond\n\nthird\n",
    );
    assert_eq!(
        put.lines().count(),
        3,
        "one line per record, empty lines skipped: {put}"
    );
    let read = server.ok(&["read", "--stream", "events"], "");
    let data: Vec<&str> = read
        .lines()
        .map(|line| line.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(
        data,
        ["first", "second", "third"],
        "one key, one shard, in order"
    );
    let json = server.ok(&["read", "--stream", "events", "--output", "json"], "");
    assert!(
        json.lines()
            .all(|line| line.starts_with('{') && line.contains("\"partition_key\":\"user-1\"")),
        "{json}"
    );
    assert!(
        json.contains("\"data\":\"Zmlyc3Q=\""),
        "base64 of `first`: {json}"
    );
    assert!(
        server
            .ok(&["read", "--stream", "events", "--from", "latest"], "")
            .is_empty()
    );

    // Pushed to a registered consumer, the same records arrive.
    let arn = server.ok(&["consumer", "register", "--stream", "events", "audit"], "");
    assert!(
        arn.starts_with("arn:aws:kinesis:us-east-1:000000000000:stream/events/consumer/audit:"),
        "{arn}"
    );
    let listed = server.ok(&["consumer", "list", "--stream", "events"], "");
    assert!(listed.starts_with("audit\tACTIVE\tarn:"), "{listed}");
    let pushed = server.ok(&["read", "--stream", "events", "--consumer", "audit"], "");
    let mut pushed: Vec<&str> = pushed.lines().collect();
    let mut polled: Vec<&str> = read.lines().collect();
    pushed.sort_unstable();
    polled.sort_unstable();
    assert_eq!(
        pushed, polled,
        "SubscribeToShard delivers what GetRecords reads"
    );
    let in_use = server.run(&["stream", "delete", "events"], "");
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("ResourceInUseException"));
    assert_eq!(
        server.ok(
            &["consumer", "deregister", "--stream", "events", "audit"],
            ""
        ),
        "deregistered audit\n"
    );

    // The operations endpoint: readiness for probes, a per-shard view for humans.
    let ready = format!("{}/readyz", server.metrics);
    assert_eq!(server.ok(&["probe", "--url", &ready], ""), "ready\n");
    let missing_page = format!("{}/nope", server.metrics);
    assert!(
        !server
            .run(&["probe", "--url", &missing_page], "")
            .status
            .success()
    );
    let stats = server.ok(
        &[
            "stats",
            "--metrics-endpoint",
            &server.metrics,
            "--interval",
            "100ms",
            "--count",
            "1",
        ],
        "",
    );
    assert!(stats.starts_with("STREAM"), "{stats}");
    assert!(
        stats.lines().any(|line| line.starts_with("events")
            && line.contains("shardId-000000000000")
            && line.contains("open")),
        "{stats}"
    );

    let missing = server.run(&["read", "--stream", "nope"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"));
    let refused = server.run(&["clock", "advance", "36h"], "");
    assert!(
        !refused.status.success(),
        "the clock only moves on a testbed server"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--testbed-clock"));

    server.stop();
    let verify = Command::new(RHEO)
        .args(["verify", data_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success());
    // Two shard logs and the node journal (its checkpoint record is there after a stop).
    assert!(String::from_utf8_lossy(&verify.stdout).contains("3 logs checked, 0 corruption(s)"));
    // A damaged stream.json is reported too (the server would keep that stream out of service).
    let meta = std::fs::read_dir(data_dir.join("streams"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("stream.json");
    let original = std::fs::read(&meta).unwrap();
    let mut damaged = original.clone();
    damaged[20] ^= 0x20;
    std::fs::write(&meta, &damaged).unwrap();
    let verify = Command::new(RHEO)
        .args(["verify", data_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("stream metadata file(s) damaged"));
    std::fs::write(&meta, &original).unwrap();

    // Data survives the restart; the testbed clock moves when asked to.
    let server = Server::start(
        &data_dir,
        &["--testbed-clock", "--min-retention-hours", "1"],
    );
    assert_eq!(
        server
            .ok(&["read", "--stream", "events"], "")
            .lines()
            .count(),
        3
    );
    let moved = server.ok(&["clock", "advance", "36h"], "");
    assert!(moved.contains("36h00m ahead"), "{moved}");
    assert!(
        server.ok(&["read", "--stream", "events"], "").is_empty(),
        "36 hours later the records are past the 24-hour retention"
    );
    assert_eq!(
        server.ok(&["stream", "delete", "events"], ""),
        "deleted events\n"
    );
    server.stop();
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(RHEO)
        .args([
            "serve",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--durability",
            "fast",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("durability must be `sync`, `none` or `interval:<ms>`")
    );
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nunknown_key = 1\n").unwrap();
    let output = Command::new(RHEO)
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown field"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn read_follows_a_stream_across_reshards_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    server.ok(&["stream", "create", "orders", "--shards", "2"], "");
    let batch = |from: usize, to: usize| -> String {
        (from..to).map(|i| format!("k{}:{i}\n", i % 5)).collect()
    };
    let put = |from: usize, to: usize| {
        // The partition key is the part before the colon: 5 keys.
        for line in batch(from, to).lines() {
            let key = line.split(':').next().unwrap();
            server.ok(
                &["put", "--stream", "orders", "--partition-key", key],
                &format!("{line}\n"),
            );
        }
    };
    let mut follower = Command::new(RHEO)
        .args([
            "read",
            "--stream",
            "orders",
            "--follow",
            "--endpoint",
            &server.endpoint,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    put(0, 10);
    let split = server.ok(
        &[
            "stream",
            "split",
            "orders",
            "--shard",
            "shardId-000000000000",
        ],
        "",
    );
    assert!(
        split.starts_with("split shardId-000000000000 of orders at "),
        "{split}"
    );
    put(10, 20);
    assert_eq!(
        server.ok(&["stream", "scale", "orders", "--shards", "2"], ""),
        "scaled orders from 3 to 2 shards\n"
    );
    put(20, 30);
    let described = server.ok(&["stream", "describe", "orders"], "");
    assert!(
        described.contains("from shardId-000000000000"),
        "{described}"
    );
    assert!(described.contains("closed at "), "{described}");

    // The follower prints all 30 records (bounded wait), every key in order.
    let stdout = follower.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.len() < 30 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines_rx.recv_timeout(left).expect("the follower keeps up");
        lines.push(line);
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    // Pushed to a consumer, the whole lineage arrives in key order too.
    server.ok(&["consumer", "register", "--stream", "orders", "audit"], "");
    let pushed = server.ok(&["read", "--stream", "orders", "--consumer", "audit"], "");
    let pushed: Vec<String> = pushed.lines().map(str::to_string).collect();
    assert_eq!(pushed.len(), 30);
    for lines in [&lines, &pushed] {
        assert_keys_in_order(lines);
    }
    server.stop();
}

fn assert_keys_in_order(lines: &[String]) {
    let mut per_key: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for line in lines {
        let data = line.rsplit('\t').next().unwrap();
        let (key, counter) = data.split_once(':').unwrap();
        per_key
            .entry(key.to_string())
            .or_default()
            .push(counter.parse().unwrap());
    }
    for (key, counters) in &per_key {
        let mut sorted = counters.clone();
        sorted.sort_unstable();
        assert_eq!(counters, &sorted, "{key} in order across the reshards");
        assert_eq!(counters.len(), 6);
    }
}

fn tls_fixture(name: &str) -> String {
    format!(
        "{}/../../tests/fixtures/tls/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn serve_with_tls_and_the_client_commands_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (tls_fixture("cert.pem"), tls_fixture("key.pem"));
    let server = Server::start(
        &dir.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let https = server
        .endpoint
        .replace("http://127.0.0.1", "https://localhost");
    let rheo = |args: &[&str]| {
        Command::new(RHEO)
            .args(args)
            .args(["--endpoint", &https, "--ca-cert", &cert])
            .output()
            .unwrap()
    };
    let created = rheo(&["stream", "create", "secure", "--shards", "1"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = rheo(&["stream", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("secure"));

    // Without the test CA the certificate is not trusted; in clear text there is no answer.
    let untrusted = Command::new(RHEO)
        .args(["stream", "list", "--endpoint", &https])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    let plain = server.run(&["stream", "list"], "");
    assert!(!plain.status.success());
    server.stop();
}

#[test]
fn bad_tls_and_auth_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        Command::new(RHEO)
            .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = serve(&["--auth", "sigv4"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs at least one key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = serve(&["--auth", "maybe"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("auth must be `any` or `sigv4`"));
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let output = serve(&["--tls-cert", missing, "--tls-key", missing]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("loading the TLS certificate and key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = serve(&["--tls-cert", missing]);
    assert!(!output.status.success(), "--tls-cert needs --tls-key");
}
