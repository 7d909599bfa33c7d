//! Event-stream codec tests: known answers checked by botocore, round trips of every header
//! type, corruption at every byte, truncation at every length, and every limit.
//!
//! Beyond these fixtures, a one-off check fed a stream from this encoder (`initial_response`,
//! a `SubscribeToShardEvent`, a `ResourceInUseException`) to botocore 1.43.11's own
//! SubscribeToShard parsing (`EventStream` with the Kinesis model and
//! `EventStreamJSONParser`): it returned the initial response, the parsed records (`Data`
//! decoded from base64) and raised `ResourceInUseException` with message `busy`.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;

/// `initial_response("application/json", b"{}")`.
///
/// Fixture made independently of this crate: built by hand in Python with `struct.pack` and
/// `zlib.crc32` (the script is summarised on [`ALL_TYPES_FIXTURE`]), then decoded with botocore
/// 1.43.11 `botocore.eventstream.EventStreamBuffer`, which returned headers
/// `{':message-type': 'event', ':event-type': 'initial-response',
/// ':content-type': 'application/json'}`, payload `b'{}'`, total length 104, headers length
/// 86, message CRC 0xfe942c1d.
const INITIAL_RESPONSE_FIXTURE: [u8; 104] = [
    0x00, 0x00, 0x00, 0x68, 0x00, 0x00, 0x00, 0x56, 0x4e, 0x68, 0x17, 0x24, 0x0d, 0x3a, 0x6d, 0x65,
    0x73, 0x73, 0x61, 0x67, 0x65, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00, 0x05, 0x65, 0x76, 0x65,
    0x6e, 0x74, 0x0b, 0x3a, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07, 0x00,
    0x10, 0x69, 0x6e, 0x69, 0x74, 0x69, 0x61, 0x6c, 0x2d, 0x72, 0x65, 0x73, 0x70, 0x6f, 0x6e, 0x73,
    0x65, 0x0d, 0x3a, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2d, 0x74, 0x79, 0x70, 0x65, 0x07,
    0x00, 0x10, 0x61, 0x70, 0x70, 0x6c, 0x69, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x2f, 0x6a, 0x73,
    0x6f, 0x6e, 0x7b, 0x7d, 0xfe, 0x94, 0x2c, 0x1d,
];

/// One header of every type, in the order of [`all_types_headers`], payload `b"payload"`.
///
/// Made the same way as [`INITIAL_RESPONSE_FIXTURE`]; botocore decoded it as
/// `{'t': True, 'f': False, 'i8': -2, 'i16': -300, 'i32': 70000, 'i64': -1099511627776,
/// 'bytes': b'\x00\xff\x10', 'str': 'hé', 'ts': 1440938160000, 'uuid': bytes(range(16))}`,
/// payload `b'payload'`, message CRC 0xdeb3641b.
///
/// The Python that built both fixtures, in essence:
/// `hdr = pack('>B', len(n)) + n + pack('>B', tag) + value`;
/// `prelude = pack('>II', total, len(headers))`; `prelude += pack('>I', crc32(prelude))`;
/// `body = prelude + headers + payload`; `message = body + pack('>I', crc32(body))`.
const ALL_TYPES_FIXTURE: [u8; 119] = [
    0x00, 0x00, 0x00, 0x77, 0x00, 0x00, 0x00, 0x60, 0x63, 0x62, 0x82, 0xee, 0x01, 0x74, 0x00, 0x01,
    0x66, 0x01, 0x02, 0x69, 0x38, 0x02, 0xfe, 0x03, 0x69, 0x31, 0x36, 0x03, 0xfe, 0xd4, 0x03, 0x69,
    0x33, 0x32, 0x04, 0x00, 0x01, 0x11, 0x70, 0x03, 0x69, 0x36, 0x34, 0x05, 0xff, 0xff, 0xff, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x05, 0x62, 0x79, 0x74, 0x65, 0x73, 0x06, 0x00, 0x03, 0x00, 0xff, 0x10,
    0x03, 0x73, 0x74, 0x72, 0x07, 0x00, 0x03, 0x68, 0xc3, 0xa9, 0x02, 0x74, 0x73, 0x08, 0x00, 0x00,
    0x01, 0x4f, 0x7e, 0x9b, 0x6f, 0x80, 0x04, 0x75, 0x75, 0x69, 0x64, 0x09, 0x00, 0x01, 0x02, 0x03,
    0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x70, 0x61, 0x79, 0x6c,
    0x6f, 0x61, 0x64, 0xde, 0xb3, 0x64, 0x1b,
];

fn all_types_headers() -> Vec<Header> {
    let uuid: [u8; 16] = std::array::from_fn(|i| i as u8);
    vec![
        Header::new("t", HeaderValue::Bool(true)),
        Header::new("f", HeaderValue::Bool(false)),
        Header::new("i8", HeaderValue::Byte(-2)),
        Header::new("i16", HeaderValue::Int16(-300)),
        Header::new("i32", HeaderValue::Int32(70_000)),
        Header::new("i64", HeaderValue::Int64(-(1 << 40))),
        Header::new(
            "bytes",
            HeaderValue::ByteArray(Bytes::from_static(&[0x00, 0xff, 0x10])),
        ),
        Header::string("str", "h\u{e9}"),
        Header::new("ts", HeaderValue::Timestamp(1_440_938_160_000)),
        Header::new("uuid", HeaderValue::Uuid(uuid)),
    ]
}

/// Frames a raw header block and payload with correct lengths and CRCs, so tests can reach
/// the header parser with bytes the encoder would never produce.
fn raw_frame(header_block: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = MIN_MESSAGE_LENGTH + header_block.len() + payload.len();
    let mut out = BytesMut::new();
    out.put_u32(total as u32);
    out.put_u32(header_block.len() as u32);
    let prelude_crc = crc32fast::hash(&out);
    out.put_u32(prelude_crc);
    out.put_slice(header_block);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.to_vec()
}

/// A prelude alone, with a correct prelude CRC, declaring the given lengths.
fn prelude(total_length: u32, headers_length: u32) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u32(total_length);
    out.put_u32(headers_length);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.to_vec()
}

fn decode_one(bytes: &[u8]) -> Message {
    let (message, used) = decode_message(bytes)
        .expect("valid message")
        .expect("complete message");
    assert_eq!(used, bytes.len());
    message
}

#[test]
fn initial_response_matches_the_botocore_checked_fixture() {
    let encoded = initial_response("application/json", b"{}").unwrap();
    assert_eq!(&encoded[..], &INITIAL_RESPONSE_FIXTURE[..]);
    let message = decode_one(&INITIAL_RESPONSE_FIXTURE);
    assert_eq!(message.header_str(":message-type"), Some("event"));
    assert_eq!(message.header_str(":event-type"), Some("initial-response"));
    assert_eq!(
        message.header_str(":content-type"),
        Some("application/json")
    );
    assert_eq!(&message.payload[..], b"{}");
}

#[test]
fn every_header_type_matches_the_botocore_checked_fixture() {
    let headers = all_types_headers();
    let encoded = encode_message(&headers, b"payload").unwrap();
    assert_eq!(&encoded[..], &ALL_TYPES_FIXTURE[..]);
    let message = decode_one(&ALL_TYPES_FIXTURE);
    assert_eq!(message.headers, headers);
    assert_eq!(&message.payload[..], b"payload");
}

#[test]
fn every_header_type_round_trips_including_extremes() {
    let values = [
        HeaderValue::Bool(true),
        HeaderValue::Bool(false),
        HeaderValue::Byte(i8::MIN),
        HeaderValue::Byte(i8::MAX),
        HeaderValue::Int16(i16::MIN),
        HeaderValue::Int32(i32::MIN),
        HeaderValue::Int64(i64::MIN),
        HeaderValue::Int64(i64::MAX),
        HeaderValue::ByteArray(Bytes::new()),
        HeaderValue::ByteArray(Bytes::from(vec![0xab; MAX_HEADER_VALUE_LENGTH])),
        HeaderValue::String(String::new()),
        HeaderValue::String("x".repeat(MAX_HEADER_VALUE_LENGTH)),
        HeaderValue::Timestamp(-1),
        HeaderValue::Uuid([0xff; 16]),
    ];
    for value in values {
        let headers = [Header::new("n".repeat(MAX_HEADER_NAME_LENGTH), value)];
        let encoded = encode_message(&headers, b"").unwrap();
        let message = decode_one(&encoded);
        assert_eq!(message.headers, headers);
        assert!(message.payload.is_empty());
    }
}

#[test]
fn message_without_headers_or_payload_round_trips() {
    let encoded = encode_message(&[], b"").unwrap();
    assert_eq!(encoded.len(), MIN_MESSAGE_LENGTH);
    let message = decode_one(&encoded);
    assert!(message.headers.is_empty());
    assert!(message.payload.is_empty());
}

#[test]
fn kinesis_shortcuts_set_the_headers_botocore_reads() {
    let event_message =
        decode_one(&event("SubscribeToShardEvent", "application/json", b"{}").unwrap());
    assert_eq!(event_message.header_str(":message-type"), Some("event"));
    assert_eq!(
        event_message.header_str(":event-type"),
        Some("SubscribeToShardEvent")
    );
    assert_eq!(
        event_message.header_str(":content-type"),
        Some("application/json")
    );

    let payload = br#"{"message":"busy"}"#;
    let exception_message =
        decode_one(&exception("ResourceInUseException", "application/json", payload).unwrap());
    assert_eq!(
        exception_message.header_str(":message-type"),
        Some("exception")
    );
    assert_eq!(
        exception_message.header_str(":exception-type"),
        Some("ResourceInUseException")
    );
    assert_eq!(
        exception_message.header_str(":content-type"),
        Some("application/json")
    );
    assert_eq!(&exception_message.payload[..], payload);

    let error_message = decode_one(&error("InternalFailure", "shard log unavailable").unwrap());
    assert_eq!(error_message.header_str(":message-type"), Some("error"));
    assert_eq!(
        error_message.header_str(":error-code"),
        Some("InternalFailure")
    );
    assert_eq!(
        error_message.header_str(":error-message"),
        Some("shard log unavailable")
    );
    assert!(error_message.payload.is_empty());
    assert_eq!(error_message.headers.len(), 3);
}

#[test]
fn flipping_any_single_byte_is_detected_by_a_checksum() {
    for fixture in [&INITIAL_RESPONSE_FIXTURE[..], &ALL_TYPES_FIXTURE[..]] {
        for index in 0..fixture.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut corrupt = fixture.to_vec();
                corrupt[index] ^= mask;
                let error = decode_message(&corrupt).expect_err("corruption must be detected");
                match error {
                    DecodeError::PreludeChecksum { .. } => assert!(index < PRELUDE_LENGTH),
                    DecodeError::MessageChecksum { offset, .. } => {
                        assert!(index >= PRELUDE_LENGTH);
                        assert_eq!(offset, fixture.len() - TRAILER_LENGTH);
                    }
                    other => panic!("byte {index} mask {mask:#x}: unexpected {other}"),
                }
            }
        }
    }
}

#[test]
fn every_truncation_asks_for_more_bytes() {
    for fixture in [&INITIAL_RESPONSE_FIXTURE[..], &ALL_TYPES_FIXTURE[..]] {
        for length in 0..fixture.len() {
            assert_eq!(
                decode_message(&fixture[..length]),
                Ok(None),
                "prefix of {length}"
            );
        }
    }
}

#[test]
fn decoder_fed_one_byte_at_a_time_yields_each_message_once() {
    let stream: Vec<u8> = [&INITIAL_RESPONSE_FIXTURE[..], &ALL_TYPES_FIXTURE[..]].concat();
    let mut decoder = Decoder::new();
    let mut messages = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte));
        while let Some(message) = decoder.next_message().unwrap() {
            messages.push(message);
        }
    }
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].header_str(":event-type"),
        Some("initial-response")
    );
    assert_eq!(messages[1].headers, all_types_headers());
    assert_eq!(decoder.buffered_len(), 0);
    decoder.finish().unwrap();
}

#[test]
fn decoder_reads_back_to_back_messages_from_one_push() {
    let mut decoder = Decoder::new();
    decoder.push(&ALL_TYPES_FIXTURE);
    decoder.push(&INITIAL_RESPONSE_FIXTURE);
    decoder.push(&INITIAL_RESPONSE_FIXTURE[..5]);
    assert_eq!(
        &decoder.next_message().unwrap().unwrap().payload[..],
        b"payload"
    );
    assert_eq!(&decoder.next_message().unwrap().unwrap().payload[..], b"{}");
    assert_eq!(decoder.next_message(), Ok(None));
    assert_eq!(decoder.buffered_len(), 5);
    assert_eq!(
        decoder.finish(),
        Err(DecodeError::TrailingBytes { length: 5 })
    );
}

#[test]
fn decoder_errors_are_sticky() {
    let mut corrupt = ALL_TYPES_FIXTURE.to_vec();
    corrupt[40] ^= 0x10;
    let mut decoder = Decoder::new();
    decoder.push(&corrupt);
    decoder.push(&INITIAL_RESPONSE_FIXTURE);
    let first = decoder.next_message().unwrap_err();
    assert!(matches!(
        first,
        DecodeError::MessageChecksum { offset: 115, .. }
    ));
    assert_eq!(decoder.next_message(), Err(first.clone()));
    assert_eq!(decoder.finish(), Err(first));
}

#[test]
fn corrupt_lengths_fail_without_waiting_for_the_declared_bytes() {
    let cases = [
        (prelude(15, 0), "TotalLengthTooSmall"),
        (prelude(16 + 200_000, 131_073), "HeadersTooLong"),
        (prelude(40, 25), "HeadersExceedMessage"),
        (prelude(u32::MAX, 0), "PayloadTooLong"),
    ];
    for (bytes, expected) in cases {
        let error = decode_message(&bytes).expect_err(expected);
        let matched = match &error {
            DecodeError::TotalLengthTooSmall { total_length: 15 } => "TotalLengthTooSmall",
            DecodeError::HeadersTooLong {
                headers_length: 131_073,
            } => "HeadersTooLong",
            DecodeError::HeadersExceedMessage {
                headers_length: 25,
                total_length: 40,
            } => "HeadersExceedMessage",
            DecodeError::PayloadTooLong { .. } => "PayloadTooLong",
            other => panic!("unexpected {other}"),
        };
        assert_eq!(matched, expected);
    }
}

#[test]
fn largest_allowed_lengths_are_accepted_by_the_decoder_prelude_check() {
    let total = (MIN_MESSAGE_LENGTH + MAX_HEADERS_LENGTH + MAX_PAYLOAD_LENGTH) as u32;
    assert_eq!(
        decode_message(&prelude(total, MAX_HEADERS_LENGTH as u32)),
        Ok(None)
    );
    assert!(matches!(
        decode_message(&prelude(total + 1, MAX_HEADERS_LENGTH as u32)),
        Err(DecodeError::PayloadTooLong { payload_length }) if payload_length == MAX_PAYLOAD_LENGTH + 1
    ));
}

#[test]
fn malformed_header_blocks_are_reported_with_their_offset() {
    // Same name twice; the second header starts at offset 12 + 3.
    let duplicate = raw_frame(&[1, b'a', 0, 1, b'a', 1], b"");
    assert_eq!(
        decode_message(&duplicate),
        Err(DecodeError::DuplicateHeader {
            name: "a".to_owned(),
            offset: 15
        })
    );
    // Type byte 10 does not exist.
    let unknown_type = raw_frame(&[1, b'a', 10], b"");
    assert_eq!(
        decode_message(&unknown_type),
        Err(DecodeError::UnknownHeaderType {
            name: "a".to_owned(),
            type_tag: 10,
            offset: 14
        })
    );
    // A string header claiming 5 bytes with only 2 in the block.
    let truncated = raw_frame(&[1, b'a', 7, 0, 5, b'x', b'y'], b"zzz");
    assert_eq!(
        decode_message(&truncated),
        Err(DecodeError::TruncatedHeader {
            offset: 12,
            end: 19
        })
    );
    // A name length pointing past the block.
    let long_name = raw_frame(&[9, b'a'], b"");
    assert_eq!(
        decode_message(&long_name),
        Err(DecodeError::TruncatedHeader {
            offset: 12,
            end: 14
        })
    );
    let bad_name = raw_frame(&[1, 0xff, 0], b"");
    assert_eq!(
        decode_message(&bad_name),
        Err(DecodeError::InvalidUtf8 {
            field: "name",
            offset: 13
        })
    );
    let bad_value = raw_frame(&[1, b'a', 7, 0, 2, 0xc3, 0x28], b"");
    assert_eq!(
        decode_message(&bad_value),
        Err(DecodeError::InvalidUtf8 {
            field: "string value",
            offset: 17
        })
    );
}

#[test]
fn error_messages_name_the_problem_and_the_place() {
    let error = DecodeError::UnknownHeaderType {
        name: "a".to_owned(),
        type_tag: 10,
        offset: 14,
    };
    assert_eq!(
        error.to_string(),
        "header \"a\" has unknown value type 10 at offset 14"
    );
    let error = DecodeError::PreludeChecksum {
        computed: 1,
        stored: 2,
    };
    assert_eq!(
        error.to_string(),
        "prelude checksum mismatch at offset 8: computed 0x00000001, stored 0x00000002"
    );
}

#[test]
fn encoder_refuses_what_the_decoder_would_reject() {
    let too_long_name = [Header::string("n".repeat(256), "v")];
    assert_eq!(
        encode_message(&too_long_name, b""),
        Err(EncodeError::HeaderNameTooLong {
            index: 0,
            length: 256
        })
    );
    let empty_name = [Header::string("a", "v"), Header::string("", "v")];
    assert_eq!(
        encode_message(&empty_name, b""),
        Err(EncodeError::EmptyHeaderName { index: 1 })
    );
    let too_long_value = [Header::string("a", "v".repeat(65_536))];
    assert_eq!(
        encode_message(&too_long_value, b""),
        Err(EncodeError::HeaderValueTooLong {
            name: "a".to_owned(),
            length: 65_536
        })
    );
    let duplicate = [
        Header::string("a", "1"),
        Header::new("a", HeaderValue::Bool(true)),
    ];
    assert_eq!(
        encode_message(&duplicate, b""),
        Err(EncodeError::DuplicateHeader {
            name: "a".to_owned()
        })
    );
    // Three headers of 1 + 2 + 1 + 2 + 65_535 bytes each exceed 128 KiB together.
    let too_many_bytes: Vec<Header> = (0..3)
        .map(|i| Header::string(format!("{i}h"), "v".repeat(MAX_HEADER_VALUE_LENGTH)))
        .collect();
    assert_eq!(
        encode_message(&too_many_bytes, b""),
        Err(EncodeError::HeadersTooLong { length: 3 * 65_541 })
    );
    let big_payload = vec![0u8; MAX_PAYLOAD_LENGTH + 1];
    assert_eq!(
        encode_message(&[], &big_payload),
        Err(EncodeError::PayloadTooLong {
            length: MAX_PAYLOAD_LENGTH + 1
        })
    );
}

#[test]
fn largest_allowed_payload_round_trips() {
    let payload = vec![7u8; MAX_PAYLOAD_LENGTH];
    let encoded = encode_message(&[Header::string(":message-type", "event")], &payload).unwrap();
    let mut decoder = Decoder::new();
    decoder.push(&encoded);
    let message = decoder.next_message().unwrap().unwrap();
    assert_eq!(message.payload.len(), MAX_PAYLOAD_LENGTH);
    assert_eq!(Message::encode(&message).unwrap(), encoded);
}
