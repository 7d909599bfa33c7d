//! The Kinesis HTTP front end through raw HTTP clients, on the real server: JSON and CBOR over
//! HTTP/1.1 and cleartext HTTP/2 on the gRPC port, the error shape, SubscribeToShard's event
//! stream checked frame by frame with an independent decoder, TLS with ALPN (HTTP/2, HTTP/1.1
//! and gRPC), and a separate Kinesis port. The AWS SDKs' own tests are in server_aws_sdk.rs,
//! tests/aws (boto3, the AWS CLI) and tests/js (the JavaScript SDK).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rheo_awswire::eventstream::{Decoder, Message};
use rheo_server::{ServeOptions, TlsFiles};
use rheo_tests::{TestServer, reason, unlimited_config};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const JSON: &str = "application/x-amz-json-1.1";
const CBOR: &str = "application/x-amz-cbor-1.1";

/// One HTTP connection, either version.
enum Connection {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Connection {
    async fn handshake<IO>(io: IO, http2: bool) -> Connection
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if http2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                    .await
                    .expect("HTTP/2 handshake");
            tokio::spawn(connection);
            Connection::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .expect("HTTP/1.1 handshake");
            tokio::spawn(connection);
            Connection::Http1(sender)
        }
    }

    /// A clear-text connection: HTTP/1.1, or HTTP/2 with prior knowledge.
    async fn plain(addr: SocketAddr, http2: bool) -> Connection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Connection::handshake(stream, http2).await
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Response<Incoming> {
        match self {
            Connection::Http1(sender) => sender.send_request(request).await,
            Connection::Http2(sender) => sender.send_request(request).await,
        }
        .expect("send request")
    }

    /// Sends one Kinesis operation and reads the whole answer.
    async fn call(
        &mut self,
        addr: SocketAddr,
        operation: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Answer {
        let response = self
            .send(kinesis_request(addr, operation, content_type, body))
            .await;
        let status = response.status();
        let version = response.version();
        let request_id = response
            .headers()
            .get("x-amzn-requestid")
            .map(|value| value.to_str().unwrap().to_owned());
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            version,
            request_id,
            content_type,
            body,
        }
    }

    async fn json(
        &mut self,
        addr: SocketAddr,
        operation: &str,
        input: Value,
    ) -> (StatusCode, Value) {
        let answer = self
            .call(addr, operation, JSON, serde_json::to_vec(&input).unwrap())
            .await;
        assert_eq!(answer.content_type.as_deref(), Some(JSON));
        assert!(answer.request_id.is_some(), "every answer has a request id");
        let value = if answer.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&answer.body).expect("a JSON answer")
        };
        (answer.status, value)
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    version: Version,
    request_id: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// A Kinesis request as SDKs send it, with a well-formed (not verified) SigV4 header.
fn kinesis_request(
    addr: SocketAddr,
    operation: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/"))
        .header("x-amz-target", format!("Kinesis_20131202.{operation}"))
        .header("content-type", content_type)
        .header("x-amz-date", "20260101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn create_stream(connection: &mut Connection, addr: SocketAddr, name: &str, shards: i32) {
    let (status, _) = connection
        .json(
            addr,
            "CreateStream",
            json!({"StreamName": name, "ShardCount": shards}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 data")
}

#[tokio::test]
async fn json_and_cbor_over_http1_and_h2c_share_the_grpc_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let addr = server.addr;
    let mut http1 = Connection::plain(addr, false).await;
    let mut h2c = Connection::plain(addr, true).await;
    create_stream(&mut http1, addr, "wire", 1).await;

    // A CBOR put over h2c: the data is a byte string, answered in CBOR over HTTP/2.
    let data = vec![0u8, 159, 255, b'x'];
    let put = ciborium_value(&[
        ("StreamName", ciborium::Value::Text("wire".into())),
        ("PartitionKey", ciborium::Value::Text("k".into())),
        ("Data", ciborium::Value::Bytes(data.clone())),
    ]);
    let answer = h2c.call(addr, "PutRecord", CBOR, put).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.content_type.as_deref(), Some(CBOR));
    let put: ciborium::Value = ciborium::from_reader(answer.body.as_ref()).unwrap();
    let field = |value: &ciborium::Value, name: &str| {
        value
            .as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_text() == Some(name))
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("{name} in {value:?}"))
    };
    assert_eq!(
        field(&put, "ShardId").as_text(),
        Some("shardId-000000000000")
    );
    let sequence = field(&put, "SequenceNumber").as_text().unwrap().to_owned();

    // Read it back in JSON over HTTP/1.1: base64 data, epoch-seconds arrival time.
    let (status, iterator) = http1
        .json(
            addr,
            "GetShardIterator",
            json!({"StreamName": "wire", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": sequence}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, records) = http1
        .json(
            addr,
            "GetRecords",
            json!({"ShardIterator": iterator["ShardIterator"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let record = &records["Records"][0];
    assert_eq!(record["SequenceNumber"], json!(sequence));
    assert_eq!(decode_base64(record["Data"].as_str().unwrap()), data);
    let arrival = record["ApproximateArrivalTimestamp"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((arrival - now).abs() < 60.0, "{arrival} is epoch seconds");
    assert_eq!(records["MillisBehindLatest"], json!(0));

    // gRPC on the same port sees the same stream.
    let mut client = server.client().await;
    let streams = client
        .list_streams(rheo_proto::v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(streams.stream_names, vec!["wire".to_owned()]);
    server.stop().await;
}

fn ciborium_value(fields: &[(&str, ciborium::Value)]) -> Vec<u8> {
    let map = ciborium::Value::Map(
        fields
            .iter()
            .map(|(key, value)| (ciborium::Value::Text((*key).into()), value.clone()))
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

#[tokio::test]
async fn errors_carry_the_kinesis_type_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let addr = server.addr;
    let mut connection = Connection::plain(addr, false).await;

    let (status, error) = connection
        .json(
            addr,
            "DescribeStreamSummary",
            json!({"StreamName": "missing"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["__type"], json!("ResourceNotFoundException"));
    assert!(
        error["message"].as_str().unwrap().contains("missing"),
        "{error}"
    );

    let (status, error) = connection.json(addr, "FlyToTheMoon", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["__type"], json!("UnknownOperationException"));

    let answer = connection
        .call(addr, "ListStreams", JSON, b"{\"Limit\": \"many\"".to_vec())
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(error["__type"], json!("SerializationException"));

    create_stream(&mut connection, addr, "errors", 1).await;
    let (status, error) = connection
        .json(
            addr,
            "PutRecord",
            json!({"StreamName": "errors", "PartitionKey": "k".repeat(257), "Data": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["__type"], json!("ValidationException"));
    // The input is validated before the stream is looked up, as Kinesis does.
    let (status, error) = connection
        .json(
            addr,
            "PutRecord",
            json!({"StreamName": "missing", "PartitionKey": "", "Data": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["__type"], json!("ValidationException"), "{error}");

    // CBOR errors are CBOR maps.
    let answer = connection
        .call(
            addr,
            "DescribeStreamSummary",
            CBOR,
            ciborium_value(&[("StreamName", ciborium::Value::Text("missing".into()))]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error: ciborium::Value = ciborium::from_reader(answer.body.as_ref()).unwrap();
    let kind = error
        .as_map()
        .unwrap()
        .iter()
        .find(|(key, _)| key.as_text() == Some("__type"))
        .and_then(|(_, value)| value.as_text().map(str::to_owned));
    assert_eq!(kind.as_deref(), Some("ResourceNotFoundException"));

    // No Authorization header at all.
    let mut request = kinesis_request(addr, "ListStreams", JSON, b"{}".to_vec());
    request.headers_mut().remove("authorization");
    let response = connection.send(request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        error["__type"],
        json!("MissingAuthenticationTokenException")
    );
    server.stop().await;
}

/// Reads event-stream messages from a response body until `want` have arrived.
async fn read_messages(body: &mut Incoming, decoder: &mut Decoder, want: usize) -> Vec<Message> {
    let mut messages = Vec::new();
    while messages.len() < want {
        while let Some(message) = decoder.next_message().expect("valid event-stream framing") {
            messages.push(message);
        }
        if messages.len() >= want {
            break;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10 s")
            .expect("the stream goes on")
            .expect("a body frame");
        if let Ok(data) = frame.into_data() {
            decoder.push(&data);
        }
    }
    messages
}

#[tokio::test]
async fn subscribe_to_shard_answers_an_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let addr = server.addr;
    let mut connection = Connection::plain(addr, false).await;
    create_stream(&mut connection, addr, "events", 1).await;
    let (_, summary) = connection
        .json(
            addr,
            "DescribeStreamSummary",
            json!({"StreamName": "events"}),
        )
        .await;
    let stream_arn = summary["StreamDescriptionSummary"]["StreamARN"].clone();
    let (status, registered) = connection
        .json(
            addr,
            "RegisterStreamConsumer",
            json!({"StreamARN": stream_arn, "ConsumerName": "reader"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let consumer_arn = registered["Consumer"]["ConsumerARN"].clone();
    for _ in 0..100 {
        let (_, described) = connection
            .json(
                addr,
                "DescribeStreamConsumer",
                json!({"ConsumerARN": consumer_arn}),
            )
            .await;
        if described["ConsumerDescription"]["ConsumerStatus"] == json!("ACTIVE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut h2c = Connection::plain(addr, true).await;
    let input = json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}});
    let response = h2c
        .send(kinesis_request(
            addr,
            "SubscribeToShard",
            JSON,
            serde_json::to_vec(&input).unwrap(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let mut body = response.into_body();
    let mut decoder = Decoder::new();
    let first = read_messages(&mut body, &mut decoder, 1).await;
    assert_eq!(first[0].header_str(":message-type"), Some("event"));
    assert_eq!(first[0].header_str(":event-type"), Some("initial-response"));

    let (status, put) = connection
        .json(
            addr,
            "PutRecord",
            json!({"StreamName": "events", "PartitionKey": "k", "Data": "cHVzaGVk"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Events arrive (the first may be the empty one sent at once) until the record does.
    let mut seen = None;
    for _ in 0..5 {
        let event = read_messages(&mut body, &mut decoder, 1).await.remove(0);
        assert_eq!(
            event.header_str(":event-type"),
            Some("SubscribeToShardEvent")
        );
        let payload: Value = serde_json::from_slice(&event.payload).unwrap();
        assert!(
            payload["ContinuationSequenceNumber"].is_string(),
            "{payload}"
        );
        if let Some(record) = payload["Records"].as_array().and_then(|r| r.first()) {
            seen = Some(record.clone());
            break;
        }
    }
    let record = seen.expect("the record was pushed");
    assert_eq!(record["SequenceNumber"], put["SequenceNumber"]);
    assert_eq!(decode_base64(record["Data"].as_str().unwrap()), b"pushed");
    drop(body);

    // A second subscription within 5 s is refused before any event stream starts.
    let response = h2c
        .send(kinesis_request(
            addr,
            "SubscribeToShard",
            JSON,
            serde_json::to_vec(&input).unwrap(),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["__type"], json!("ResourceInUseException"));
    server.stop().await;
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

fn tls_files() -> TlsFiles {
    TlsFiles {
        cert: fixture("cert.pem"),
        key: fixture("key.pem"),
    }
}

/// A TLS connection offering `alpn`; returns what was negotiated.
async fn tls_connection(addr: SocketAddr, alpn: &[u8]) -> (Vec<u8>, Connection) {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let negotiated = stream
        .get_ref()
        .1
        .alpn_protocol()
        .unwrap_or_default()
        .to_vec();
    let http2 = negotiated == b"h2";
    (negotiated, Connection::handshake(stream, http2).await)
}

#[tokio::test]
async fn tls_negotiates_http2_or_http1_and_carries_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        tls: Some(tls_files()),
        ..ServeOptions::default()
    };
    let server = TestServer::start_with_options(dir.path(), unlimited_config(), options).await;
    let addr = server.addr;

    let (negotiated, mut h2) = tls_connection(addr, b"h2").await;
    assert_eq!(negotiated, b"h2");
    let answer = h2.call(addr, "ListStreams", JSON, b"{}".to_vec()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_2);

    let (negotiated, mut http1) = tls_connection(addr, b"http/1.1").await;
    assert_eq!(negotiated, b"http/1.1");
    create_stream(&mut http1, addr, "secure", 1).await;

    // The generated gRPC client over TLS, trusting the test certificate.
    let pem = std::fs::read(fixture("cert.pem")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS");
    let mut client = rheo_proto::v1::kinesis_client::KinesisClient::new(channel);
    let streams = client
        .list_streams(rheo_proto::v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(streams.stream_names, vec!["secure".to_owned()]);

    // Clear text to the TLS port gets no answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        plain
            .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await?;
        let mut buffer = [0u8; 64];
        let read = plain.read(&mut buffer).await?;
        Ok::<_, std::io::Error>(buffer[..read].to_vec())
    })
    .await
    .expect("the server closes a clear-text connection");
    assert!(
        !refused
            .map(|bytes| bytes.starts_with(b"HTTP/1.1"))
            .unwrap_or(false),
        "no HTTP answer in clear text"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_separate_kinesis_listener_splits_the_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let kinesis_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kinesis_addr = kinesis_listener.local_addr().unwrap();
    let options = ServeOptions {
        kinesis_listener: Some(kinesis_listener),
        ..ServeOptions::default()
    };
    let server = TestServer::start_with_options(dir.path(), unlimited_config(), options).await;

    let mut kinesis = Connection::plain(kinesis_addr, false).await;
    create_stream(&mut kinesis, kinesis_addr, "split", 1).await;
    let mut client = server.client().await;
    let streams = client
        .list_streams(rheo_proto::v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(streams.stream_names, vec!["split".to_owned()]);

    // The gRPC port no longer answers Kinesis requests, and the Kinesis port no gRPC.
    let mut grpc_port = Connection::plain(server.addr, true).await;
    let answer = grpc_port
        .call(server.addr, "ListStreams", JSON, b"{}".to_vec())
        .await;
    assert!(answer.request_id.is_none(), "{answer:?}");
    assert_ne!(answer.content_type.as_deref(), Some(JSON));
    let channel = tonic::transport::Channel::from_shared(format!("http://{kinesis_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = rheo_proto::v1::kinesis_client::KinesisClient::new(channel)
        .list_streams(rheo_proto::v1::ListStreamsRequest::default())
        .await;
    assert!(refused.is_err(), "gRPC is not served on the Kinesis port");
    server.stop().await;
}

#[tokio::test]
async fn a_body_cut_short_is_an_incomplete_request_not_a_large_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    // Headers promise 100 bytes of body; 2 arrive, then the client closes its sending side.
    let mut cut = TcpStream::connect(server.addr).await.unwrap();
    cut.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\n\
          x-amz-target: Kinesis_20131202.ListStreams\r\ncontent-length: 100\r\n\r\n{}",
    )
    .await
    .unwrap();
    cut.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), cut.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"__type\":\"SerializationException\"")
            && answer.contains("could not be read"),
        "{answer}"
    );
    assert!(!answer.contains("larger than"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let deadline = Duration::from_millis(300);
    let options = ServeOptions {
        request_body_timeout: Some(deadline),
        ..ServeOptions::default()
    };
    let server = TestServer::start_with_options(dir.path(), unlimited_config(), options).await;

    // Headers promise 100 bytes of body; one arrives, then the client stalls.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let started = std::time::Instant::now();
    slow.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-amz-json-1.1\r\n\
          x-amz-target: Kinesis_20131202.ListStreams\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 1024];
        while !answer.ends_with(b"}") {
            let read = slow.read(&mut buffer).await.unwrap();
            assert!(read > 0, "connection closed without an answer");
            answer.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("an answer once the deadline passes");
    assert!(started.elapsed() >= deadline);
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"__type\":\"RequestTimeoutException\""),
        "{answer}"
    );
    assert!(answer.contains("did not arrive within 0.3 s"), "{answer}");

    // A request that sends its body at once is served as usual.
    let mut prompt = Connection::plain(server.addr, false).await;
    create_stream(&mut prompt, server.addr, "after-timeout", 1).await;

    // gRPC: a call whose message stops halfway fails with DEADLINE_EXCEEDED.
    let (mut body, channel) = http_body_util::channel::Channel::<Bytes>::new(1);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::post(format!(
        "http://{}/rheo.v1.Kinesis/ListStreams",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(channel)
    .unwrap();
    // The 5-byte gRPC prefix announces a 10-byte message; 2 bytes follow, then nothing.
    body.send_data(Bytes::from_static(&[0, 0, 0, 0, 10, 0x10, 0x01]))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer once the deadline passes")
        .unwrap();
    let headers = response.headers().clone();
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the answer ends")
        .unwrap();
    assert!(started.elapsed() >= deadline - Duration::from_millis(50));
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        headers
            .get(name)
            .or_else(|| trailers.get(name))
            .map(|value| value.to_str().unwrap().to_owned())
    };
    assert_eq!(
        field("grpc-status").as_deref(),
        Some("4"),
        "{headers:?} {trailers:?}"
    );
    assert!(
        // grpc-message is percent-encoded.
        field("grpc-message")
            .unwrap_or_default()
            .replace("%20", " ")
            .contains("did not arrive within 0.3 s"),
        "{headers:?} {trailers:?}"
    );
    // Like every error, it names its exception in a google.rpc.ErrorInfo.
    assert!(
        field("grpc-status-details-bin").is_some(),
        "{headers:?} {trailers:?}"
    );
    drop(body);

    // Calls that send their message at once still work, streaming ones included.
    let mut client = server.client().await;
    let streams = client
        .list_streams(rheo_proto::v1::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(streams.stream_names, vec!["after-timeout".to_owned()]);
    server.stop().await;
}

#[tokio::test]
async fn an_undecodable_grpc_message_is_the_callers_serialization_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // A 2-byte message: field 1 (stream_name) announced as 255 bytes long, with none following.
    let request = Request::post(format!(
        "http://{}/rheo.v1.Kinesis/DescribeStreamSummary",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(Bytes::from_static(&[
        0, 0, 0, 0, 2, 0x0a, 0xff,
    ])))
    .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer")
        .unwrap();
    let mut headers = response.headers().clone();
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the answer ends")
        .unwrap();
    headers.extend(collected.trailers().cloned().unwrap_or_default());
    let status = tonic::Status::from_header_map(&headers).expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "SerializationException", "{status:?}");
    assert!(status.message().contains("does not decode"), "{status:?}");
    server.stop().await;
}
