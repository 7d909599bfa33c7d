//! Decoding never costs more than a small multiple of the bytes received: a PutRecords body of
//! 15 MiB holding millions of empty records (one CBOR byte, or three JSON bytes, each) is
//! refused with the length check's ValidationException, and a 16 MiB gRPC PutRecords of 8
//! million two-byte entries with SerializationException, without the server first building
//! millions of records. Alone in its test binary, so the process's peak memory is this test's.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rheo_tests::{TestServer, unlimited_config};
use tokio::net::TcpStream;

/// The process's peak resident memory so far, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn put_records(
    addr: std::net::SocketAddr,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://{addr}/"))
        .header("host", addr.to_string())
        .header("x-amz-target", "Kinesis_20131202.PutRecords")
        .header("content-type", content_type)
        .header("x-amz-date", "20260101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("an answer")
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn millions_of_empty_records_cost_no_more_than_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    const EMPTY: usize = 15 * 1024 * 1024;

    // CBOR: {"StreamName": "s", "Records": [{}, {}, ...]} with a 4-byte array length.
    let mut cbor = vec![0xa2, 0x6a];
    cbor.extend_from_slice(b"StreamName");
    cbor.extend_from_slice(&[0x61, b's', 0x67]);
    cbor.extend_from_slice(b"Records");
    cbor.push(0x9a);
    cbor.extend_from_slice(&(EMPTY as u32).to_be_bytes());
    cbor.resize(cbor.len() + EMPTY, 0xa0);
    let body_bytes = cbor.len() as u64;

    let before = peak_rss();
    let (status, answer) = put_records(server.addr, "application/x-amz-cbor-1.1", cbor).await;
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("ValidationException"), "{answer}");
    assert!(
        answer.contains(&format!("got {EMPTY}")),
        "the count is exact: {answer}"
    );
    // The body itself is held about twice (as received and as collected); building 15 million
    // records would take more than a gigabyte.
    assert!(
        grown < 10 * body_bytes,
        "peak memory grew by {grown} bytes for a body of {body_bytes}"
    );

    // JSON: the same with three bytes per record.
    let mut json = br#"{"StreamName":"s","Records":["#.to_vec();
    let records = EMPTY / 3;
    for i in 0..records {
        json.extend_from_slice(if i == 0 { b"{}" } else { b",{}" });
    }
    json.extend_from_slice(b"]}");
    let body_bytes = json.len() as u64;
    let before = peak_rss();
    let (status, answer) = put_records(server.addr, "application/x-amz-json-1.1", json).await;
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains(&format!("got {records}")), "{answer}");
    assert!(
        grown < 10 * body_bytes,
        "peak memory grew by {grown} bytes for a body of {body_bytes}"
    );

    // gRPC: a PutRecords message of 8 million empty entries (two bytes each) is refused before
    // prost decodes it.
    let entries = 8_000_000usize;
    let mut message = vec![0x0a, 1, b's'];
    for _ in 0..entries {
        message.extend_from_slice(&[0x1a, 0]);
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let body_bytes = framed.len() as u64;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!("http://{}/rheo.v1.Kinesis/PutRecords", server.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))
        .unwrap();
    let before = peak_rss();
    let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
        .await
        .expect("an answer")
        .unwrap();
    let mut headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    headers.extend(collected.trailers().cloned().unwrap_or_default());
    let grown = peak_rss().saturating_sub(before);
    let status = tonic::Status::from_header_map(&headers).expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(rheo_tests::reason(&status), "SerializationException");
    assert!(
        status.message().contains("more than 10000 times"),
        "{status:?}"
    );
    assert!(
        grown < 10 * body_bytes,
        "peak memory grew by {grown} bytes for a message of {body_bytes}"
    );
    server.stop().await;
}
