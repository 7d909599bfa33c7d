//! Encryption at rest through the gRPC API of the real server: StartStreamEncryption with every
//! KeyId form, records read back with their EncryptionType, no plaintext anywhere under the
//! data directory (segments, indexes, journal, metadata), and a restart that reads it all.

use rheo_proto::v1 as pb;
use rheo_tests::{TestServer, create_stream, first_page, put_many, reason, unlimited_config};

const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|window| window == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

async fn put(
    client: &mut rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    stream: &str,
    marker: &str,
    count: usize,
) -> String {
    let records = (0..count).map(|i| {
        (
            format!("{marker}-data-{i}").into_bytes(),
            format!("{marker}-key-{i}"),
        )
    });
    put_many(client, stream, records).await.encryption_type
}

/// Every record of both shards: (data, EncryptionType).
async fn read_all(
    client: &mut rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    stream: &str,
) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for shard in SHARDS {
        for record in first_page(client, stream, shard).await.records {
            all.push((
                String::from_utf8(record.data.to_vec()).unwrap(),
                record.encryption_type,
            ));
        }
    }
    all.sort();
    all
}

async fn start(
    client: &mut rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    stream: &str,
    key_id: &str,
) -> Result<(), tonic::Status> {
    client
        .start_stream_encryption(pb::StartStreamEncryptionRequest {
            stream_name: stream.into(),
            encryption_type: "KMS".into(),
            key_id: key_id.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn encrypted_streams_keep_no_plaintext_on_disk_and_read_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let mut client = server.client().await;
    create_stream(&mut client, "secret", 2).await;
    create_stream(&mut client, "plain", 1).await;

    let keyring = rheo_streams::keyring::read_file(&dir.path().join("keyring.json"))
        .expect("default keyring");
    let id = keyring.aliases["alias/aws/kinesis"].clone();
    let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{id}");
    for unknown in [
        "alias/nope",
        "arn:aws:kms:eu-west-1:000000000000:alias/aws/kinesis",
    ] {
        let status = start(&mut client, "secret", unknown).await.unwrap_err();
        assert_eq!(
            reason(&status),
            "KMSNotFoundException",
            "{unknown}: {status:?}"
        );
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
    start(&mut client, "secret", &arn)
        .await
        .expect("start encryption");
    let summary = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "secret".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.encryption_type, "KMS");
    assert_eq!(summary.key_id.as_deref(), Some(arn.as_str()));

    assert_eq!(put(&mut client, "secret", "MARKER-e1b7", 40).await, "KMS");
    assert_eq!(put(&mut client, "plain", "CONTROL-9c2d", 3).await, "NONE");
    let before = read_all(&mut client, "secret").await;
    assert_eq!(before.len(), 40);
    assert!(
        before
            .iter()
            .all(|(data, kind)| data.starts_with("MARKER-e1b7") && kind == "KMS")
    );

    // Acknowledged means in the journal and in the segments' page cache: reading the files
    // sees every byte a disk would.
    assert_eq!(
        files_containing(dir.path(), b"MARKER-e1b7"),
        Vec::<String>::new(),
        "no file under the data directory holds an encrypted record's key or data"
    );
    assert!(
        !files_containing(dir.path(), b"CONTROL-9c2d").is_empty(),
        "the search finds plaintext where there is some"
    );

    server.stop().await;
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let mut client = server.client().await;
    assert_eq!(
        read_all(&mut client, "secret").await,
        before,
        "after a restart"
    );
    assert_eq!(
        put(&mut client, "secret", "MARKER-e1b7-after", 4).await,
        "KMS"
    );
    client
        .stop_stream_encryption(pb::StopStreamEncryptionRequest {
            stream_name: "secret".into(),
            encryption_type: "KMS".into(),
            key_id: arn.clone(),
            ..Default::default()
        })
        .await
        .expect("stop encryption");
    assert_eq!(put(&mut client, "secret", "LATER-plain", 2).await, "NONE");
    let after = read_all(&mut client, "secret").await;
    assert_eq!(after.len(), 46);
    for (data, kind) in &after {
        let expected = if data.starts_with("LATER") {
            "NONE"
        } else {
            "KMS"
        };
        assert_eq!(kind, expected, "{data}");
    }
    assert_eq!(
        files_containing(dir.path(), b"MARKER-e1b7"),
        Vec::<String>::new()
    );
    server.stop().await;
    let report = rheo_storage::verify_tree_with_keys(
        &rheo_storage::io::StdFs,
        dir.path(),
        Some(std::sync::Arc::new(
            rheo_streams::keyring::Keyring::open(
                rheo_streams::keyring::KeyringSource::Default,
                dir.path(),
            )
            .unwrap(),
        )),
    )
    .unwrap();
    assert_eq!(report.corruptions(), 0, "{report}");
}
