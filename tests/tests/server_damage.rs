//! Damage on disk, through the real server: a flipped byte in the last batch of a stopped
//! stream is reported as corruption (by `verify` and by the open), never cut as a torn write;
//! the damaged stream is kept out of service with a clear error while every other stream
//! serves; and once the byte is put back, every acknowledged record is there.

use std::path::{Path, PathBuf};

use rheo_proto::v1 as pb;
use rheo_tests::{TestServer, create_stream, first_page, put_many, reason, unlimited_config};

const SHARD: &str = "shardId-000000000000";

async fn put_hundred(
    client: &mut pb::kinesis_client::KinesisClient<tonic::transport::Channel>,
    stream: &str,
) {
    let records = (0..100).map(|i| (format!("{stream}-{i}").into_bytes(), format!("key-{i}")));
    put_many(client, stream, records).await;
}

/// The newest segment file of `stream`'s one shard.
fn active_segment(data_dir: &Path, stream: &str) -> PathBuf {
    let dir = data_dir.join("streams").join(stream).join(SHARD);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], offset).unwrap();
}

async fn describe(
    client: &mut pb::kinesis_client::KinesisClient<tonic::transport::Channel>,
    stream: &str,
) -> Result<pb::DescribeStreamSummaryResponse, tonic::Status> {
    client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: stream.into(),
            ..Default::default()
        })
        .await
        .map(|answer| answer.into_inner())
}

#[tokio::test]
async fn a_damaged_stream_is_reported_and_kept_out_of_service_while_the_others_serve() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), unlimited_config()).await;
    let mut client = server.client().await;
    for stream in ["good", "bad", "lost-meta"] {
        create_stream(&mut client, stream, 1).await;
        put_hundred(&mut client, stream).await;
    }
    server.stop().await;

    // One PutRecords into one shard is one batch: the flip lands in the 100 records' batch,
    // which no later batch follows.
    let segment = active_segment(data.path(), "bad");
    let len = std::fs::metadata(&segment).unwrap().len();
    flip(&segment, len - 3);
    let meta = data.path().join("streams/lost-meta/stream.json");
    flip(&meta, 20);

    let report = rheo_storage::verify_tree(&rheo_storage::io::StdFs, data.path()).unwrap();
    assert_eq!(report.exit_code(), 1, "{report}");
    let damaged: Vec<&Path> = report
        .findings()
        .filter(|finding| finding.severity == rheo_storage::Severity::Corruption)
        .map(|finding| finding.path.as_path())
        .collect();
    assert_eq!(damaged, [segment.as_path()], "{report}");
    let metadata = rheo_streams::check_stream_metadata(data.path());
    assert_eq!(metadata.len(), 1, "{metadata:?}");
    assert_eq!(metadata[0].0, meta, "verify names the damaged metadata too");

    let server = TestServer::start(data.path(), unlimited_config()).await;
    let mut client = server.client().await;
    let records = first_page(&mut client, "good", SHARD).await.records;
    assert_eq!(records.len(), 100, "the intact stream serves everything");
    put_hundred(&mut client, "good").await;
    for out in ["bad", "lost-meta"] {
        let refused = describe(&mut client, out).await.unwrap_err();
        assert_eq!(reason(&refused), "ResourceInUseException", "{refused:?}");
        assert!(refused.message().contains("out of service"), "{refused:?}");
        let put = client
            .put_record(pb::PutRecordRequest {
                stream_name: out.into(),
                data: b"x".to_vec().into(),
                partition_key: "k".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(reason(&put), "ResourceInUseException", "{put:?}");
        let again = client
            .create_stream(pb::CreateStreamRequest {
                stream_name: out.into(),
                shard_count: Some(1),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            reason(&again),
            "ResourceInUseException",
            "its name stays taken: {again:?}"
        );
    }
    let listed = client
        .list_streams(pb::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .stream_names;
    assert_eq!(listed, ["good"]);
    server.stop().await;
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len,
        "nothing of the damaged stream was cut"
    );

    // Repaired, every acknowledged record of both streams is back.
    flip(&segment, len - 3);
    flip(&meta, 20);
    let server = TestServer::start(data.path(), unlimited_config()).await;
    let mut client = server.client().await;
    for stream in ["bad", "lost-meta"] {
        let records = first_page(&mut client, stream, SHARD).await.records;
        assert_eq!(records.len(), 100, "{stream}");
        assert_eq!(records[99].data.as_ref(), format!("{stream}-99").as_bytes());
    }
    assert_eq!(
        first_page(&mut client, "good", SHARD).await.records.len(),
        200
    );
    assert!(rheo_streams::check_stream_metadata(data.path()).is_empty());
    server.stop().await;
}
