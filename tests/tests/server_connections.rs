//! Client connections are bounded: a connection that sends nothing is closed after the idle
//! timeout (before its first byte, and between HTTP/1.1 requests), beyond the connection
//! limit a new connection is closed at once while the open ones keep working, and a server out
//! of file descriptors backs off accepting instead of spinning, then serves again.

use std::time::{Duration, Instant};

use rheo_server::{ConnectionLimits, ServeOptions};
use rheo_tests::{TestServer, create_stream, unlimited_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(max_connections: usize, idle_timeout: Duration) -> ServeOptions {
    ServeOptions {
        connections: ConnectionLimits {
            max_connections,
            idle_timeout,
        },
        ..ServeOptions::default()
    }
}

/// Waits (at most `within`) for the server to close `stream`: true if it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A Kinesis request without credentials: answered (with an error), which is all these tests need.
const LIST_STREAMS: &[u8] =
    b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\n\
x-amz-target: Kinesis_20131202.ListStreams\r\ncontent-length: 2\r\n\r\n{}";

#[tokio::test]
async fn silent_and_idle_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(600);
    let server =
        TestServer::start_with_options(dir.path(), unlimited_config(), limits(100, idle)).await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // One HTTP/1.1 client makes a request, reads the answer, then keeps the connection idle.
    let mut idle_client = TcpStream::connect(server.addr).await.unwrap();
    idle_client.write_all(LIST_STREAMS).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = idle_client.read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 "));
    for (index, stream) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(5)).await,
            "silent connection {index} was closed"
        );
    }
    assert!(
        closed_within(&mut idle_client, Duration::from_secs(5)).await,
        "the idle keep-alive connection was closed"
    );
    assert!(
        started.elapsed() >= idle,
        "not before the idle timeout: {:?}",
        started.elapsed()
    );
    // The server still serves.
    let mut client = server.client().await;
    create_stream(&mut client, "after-idle", 1).await;
    server.stop().await;
}

#[tokio::test]
async fn beyond_the_connection_limit_new_connections_are_closed_and_open_ones_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with_options(
        dir.path(),
        unlimited_config(),
        limits(3, Duration::from_secs(30)),
    )
    .await;
    // Three HTTP/1.1 connections that have each made a request hold the three permits.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(LIST_STREAMS).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let read = stream.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"HTTP/1.1 "));
        held.push(stream);
    }
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let _ = refused.write_all(LIST_STREAMS).await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(5)).await,
        "a fourth connection is closed"
    );
    // The held ones keep working.
    held[0].write_all(LIST_STREAMS).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = held[0].read(&mut answer).await.unwrap();
    assert!(answer[..read].starts_with(b"HTTP/1.1 "));
    // Closing one frees its place.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(LIST_STREAMS).await.unwrap();
        let mut answer = vec![0u8; 4096];
        if let Ok(Ok(read)) =
            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer)).await
            && answer[..read].starts_with(b"HTTP/1.1 ")
        {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        again.is_some(),
        "a new connection is served once one closed"
    );
    drop(held);
    drop(again);
    server.stop().await;
}

const CHILD_ENV: &str = "RHEO_FD_CHILD";

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The child: a server with 128 descriptors at most and no connection limit of its own, so
/// clients can exhaust its descriptor table. Prints `READY <addr>`, then serves for 30 s.
async fn fd_child(dir: &std::path::Path) {
    rlimit::setrlimit(rlimit::Resource::NOFILE, 128, 128).expect("lower the open-file limit");
    let server = TestServer::start_with_options(
        dir,
        unlimited_config(),
        limits(100_000, Duration::from_secs(30)),
    )
    .await;
    println!("READY {}", server.addr);
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        fd_child(std::path::Path::new(&dir)).await;
        return;
    }
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = rheo_tests::spawn_self(
        "out_of_descriptors_the_accept_loop_backs_off_and_recovers",
        CHILD_ENV,
        dir.path(),
    );
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("the child starts").unwrap();
        // libtest prints `test <name> ... ` before the child's own output, on the same line.
        if let Some((_, addr)) = line.split_once("READY ") {
            break addr.trim().parse().unwrap();
        }
    };
    // 200 connections that send a byte each: more than the child's descriptor table holds.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(b"P").await;
        flood.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(child.id()) - before;
    assert!(
        used < 0.6,
        "the out-of-descriptors server used {used:.2} CPU-s in 2 s (an accept loop spinning uses about 2)"
    );
    // Once the flood is gone, the server serves again.
    drop(flood);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            let _ = stream.write_all(LIST_STREAMS).await;
            let mut answer = vec![0u8; 4096];
            if let Ok(Ok(read)) =
                tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer)).await
                && answer[..read].starts_with(b"HTTP/1.1 ")
            {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        served,
        "the server accepted and answered once descriptors were free again"
    );
}
