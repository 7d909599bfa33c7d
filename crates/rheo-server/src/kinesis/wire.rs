//! The two body encodings of the Kinesis HTTP protocol and the members they encode
//! differently.
//!
//! AWS JSON 1.1 carries blobs as base64 strings and timestamps as epoch seconds (a number with a
//! fraction); CBOR 1.1 carries blobs as byte strings and timestamps as integer epoch
//! milliseconds. [`Blob`] and [`Timestamp`] pick the form from serde's `is_human_readable`
//! (true for serde_json, false for ciborium), so one set of request and response types serves
//! both encodings.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A request's body encoding, answered in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Cbor,
}

impl Format {
    /// The format of a `Content-Type`; anything but CBOR is read as JSON, as Kinesis does for
    /// `application/json` and a missing type.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(value) if value.trim().starts_with("application/x-amz-cbor-1.1") => Format::Cbor,
            _ => Format::Json,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/x-amz-json-1.1",
            Format::Cbor => "application/x-amz-cbor-1.1",
        }
    }

    /// Decodes a request body. An empty body is an empty structure, as every member of some
    /// operations' inputs is optional.
    pub(crate) fn decode<T: DeserializeOwned + Default>(self, body: &[u8]) -> Result<T, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        match self {
            Format::Json => serde_json::from_slice(body).map_err(|error| error.to_string()),
            Format::Cbor => ciborium::from_reader(body).map_err(|error| error.to_string()),
        }
    }

    /// Encodes `{"Records": records, ...rest}`: the shape of GetRecords' answer and of a
    /// SubscribeToShardEvent, the two answers that carry records. `rest` must serialize as a
    /// map with at least one member. In JSON the records are written by
    /// [`write_json_records`], the hot path of reading.
    pub(crate) fn encode_with_records<R: Serialize>(
        self,
        records: &[super::model::Record],
        rest: &R,
    ) -> Vec<u8> {
        match self {
            Format::Json => {
                let mut out = b"{\"Records\":".to_vec();
                write_json_records(&mut out, records);
                let rest = self.encode(rest);
                debug_assert!(rest.len() > 2 && rest[0] == b'{', "rest is a non-empty map");
                // Splice the members of `rest` after the records.
                out.push(b',');
                out.extend_from_slice(&rest[1..]);
                out
            }
            Format::Cbor => {
                #[derive(Serialize)]
                #[serde(rename_all = "PascalCase")]
                struct WithRecords<'a, R> {
                    records: &'a [super::model::Record],
                    #[serde(flatten)]
                    rest: &'a R,
                }
                self.encode(&WithRecords { records, rest })
            }
        }
    }

    pub(crate) fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            // Serializing our own types into memory cannot fail: every map key is a string.
            Format::Json => serde_json::to_vec(value).expect("a response encodes as JSON"),
            Format::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).expect("a response encodes as CBOR");
                out
            }
        }
    }
}

/// Writes `records` as a JSON array, as serde_json would, but copies each record's base64
/// data straight into `out`: serde_json scans every string for characters to escape, which
/// was a quarter of the server's CPU in a JSON catch-up read, and base64 has none.
pub(crate) fn write_json_records(out: &mut Vec<u8>, records: &[super::model::Record]) {
    out.push(b'[');
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"SequenceNumber\":");
        json_value(out, &record.sequence_number);
        out.extend_from_slice(b",\"ApproximateArrivalTimestamp\":");
        json_value(out, &record.approximate_arrival_timestamp);
        out.extend_from_slice(b",\"Data\":\"");
        let start = out.len();
        out.resize(
            start + base64::encoded_len(record.data.0.len(), true).unwrap_or(0),
            0,
        );
        let written = BASE64
            .encode_slice(&record.data.0, &mut out[start..])
            .expect("the buffer has the encoded length");
        out.truncate(start + written);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        json_value(out, &record.partition_key);
        out.extend_from_slice(b",\"EncryptionType\":");
        json_value(out, &record.encryption_type);
        out.push(b'}');
    }
    out.push(b']');
}

fn json_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("a value encodes as JSON into memory");
}

/// A blob member (`Data`): base64 in JSON, a byte string in CBOR.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Blob(pub(crate) Bytes);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&BASE64.encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BlobVisitor;
        impl Visitor<'_> for BlobVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string or a byte string")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Blob, E> {
                BASE64
                    .decode(text)
                    .map(|bytes| Blob(bytes.into()))
                    .map_err(|error| E::custom(format!("blob is not valid base64: {error}")))
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(bytes)))
            }
            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(bytes.into()))
            }
        }
        deserializer.deserialize_any(BlobVisitor)
    }
}

/// A timestamp member, held as epoch milliseconds: epoch seconds with a fraction in JSON,
/// integer epoch milliseconds in CBOR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timestamp(pub(crate) i64);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.0 as f64 / 1000.0)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// JSON: epoch seconds, with a fraction or not.
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an epoch timestamp number")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(value.saturating_mul(1000)))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
                self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
                if !value.is_finite() {
                    return Err(E::custom("timestamp is not a finite number"));
                }
                Ok(Timestamp((value * 1000.0).round() as i64))
            }
            // Some clients send the JSON timestamp as a decimal string.
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
                let value: f64 = text
                    .parse()
                    .map_err(|_| E::custom(format!("timestamp '{text}' is not a number")))?;
                self.visit_f64(value)
            }
        }
        if deserializer.is_human_readable() {
            return deserializer.deserialize_any(SecondsVisitor);
        }
        // CBOR: integer epoch milliseconds, bare or under tag 1 as the Java SDK writes them
        // (it puts milliseconds, not the standard's seconds, under the tag).
        let mut value = ciborium::Value::deserialize(deserializer)?;
        while let ciborium::Value::Tag(_, inner) = value {
            value = *inner;
        }
        match value {
            ciborium::Value::Integer(integer) => i64::try_from(i128::from(integer))
                .map(Timestamp)
                .map_err(|_| de::Error::custom("timestamp is out of range")),
            ciborium::Value::Float(ms) if ms.is_finite() => Ok(Timestamp(ms.round() as i64)),
            _ => Err(de::Error::custom(
                "a CBOR timestamp must be an integer of epoch milliseconds",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Sample {
        data: Blob,
        at: Timestamp,
    }

    #[test]
    fn json_uses_base64_and_epoch_seconds() {
        let sample = Sample {
            data: Blob(Bytes::from_static(&[0, 255, 10])),
            at: Timestamp(1_459_799_926_480),
        };
        let text = String::from_utf8(Format::Json.encode(&sample)).unwrap();
        assert_eq!(text, r#"{"Data":"AP8K","At":1459799926.48}"#);
        let back: Sample = Format::Json.decode(text.as_bytes()).unwrap();
        assert_eq!(back, sample);
        let whole: Sample = Format::Json
            .decode(br#"{"Data":"","At":1459799926}"#)
            .unwrap();
        assert_eq!(whole.at, Timestamp(1_459_799_926_000));
    }

    #[test]
    fn cbor_uses_byte_strings_and_epoch_milliseconds() {
        let sample = Sample {
            data: Blob(Bytes::from_static(&[0, 255, 10])),
            at: Timestamp(1_459_799_926_480),
        };
        let bytes = Format::Cbor.encode(&sample);
        let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let map = value.as_map().unwrap();
        assert_eq!(map[0].1, ciborium::Value::Bytes(vec![0, 255, 10]));
        assert_eq!(
            map[1].1,
            ciborium::Value::Integer(1_459_799_926_480i64.into())
        );
        let back: Sample = Format::Cbor.decode(&bytes).unwrap();
        assert_eq!(back, sample);
        // The Java SDK tags its milliseconds with tag 1.
        let tagged = ciborium::Value::Map(vec![(
            ciborium::Value::Text("At".into()),
            ciborium::Value::Tag(
                1,
                Box::new(ciborium::Value::Integer(1_459_799_926_480i64.into())),
            ),
        )]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&tagged, &mut bytes).unwrap();
        let back: Sample = Format::Cbor.decode(&bytes).unwrap();
        assert_eq!(back.at, Timestamp(1_459_799_926_480));
    }

    #[test]
    fn hand_written_records_match_serde_json() {
        let records = vec![
            crate::kinesis::model::Record {
                sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
                approximate_arrival_timestamp: Timestamp(1_459_799_926_480),
                data: Blob(Bytes::from_static(b"\x00\xff\"quoted\" data")),
                partition_key: "key \"with\" \\ escapes \u{1} and \u{e9}".into(),
                encryption_type: "NONE",
            },
            crate::kinesis::model::Record {
                sequence_number: "2".into(),
                approximate_arrival_timestamp: Timestamp(0),
                data: Blob(Bytes::new()),
                partition_key: "k".into(),
                encryption_type: "NONE",
            },
        ];
        let mut out = Vec::new();
        write_json_records(&mut out, &records);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(Format::Json.encode(&records)).unwrap()
        );
        let mut empty = Vec::new();
        write_json_records(&mut empty, &[]);
        assert_eq!(empty, b"[]");

        // With the other members spliced in, in both encodings.
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Rest {
            continuation_sequence_number: Option<String>,
            millis_behind_latest: i64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Whole<'a> {
            records: &'a [crate::kinesis::model::Record],
            continuation_sequence_number: Option<String>,
            millis_behind_latest: i64,
        }
        let rest = Rest {
            continuation_sequence_number: None,
            millis_behind_latest: 7,
        };
        let whole = Whole {
            records: &records,
            continuation_sequence_number: None,
            millis_behind_latest: 7,
        };
        for format in [Format::Json, Format::Cbor] {
            let spliced = format.encode_with_records(&records, &rest);
            let expected = format.encode(&whole);
            if format == Format::Json {
                assert_eq!(spliced, expected);
            } else {
                let spliced: ciborium::Value = ciborium::from_reader(spliced.as_slice()).unwrap();
                let expected: ciborium::Value = ciborium::from_reader(expected.as_slice()).unwrap();
                assert_eq!(spliced, expected);
            }
        }
    }

    #[test]
    fn bad_bodies_are_errors_and_empty_bodies_are_empty_inputs() {
        assert!(Format::Json.decode::<Sample>(b"{\"Data\": 5}").is_err());
        assert!(
            Format::Json
                .decode::<Sample>(b"{\"Data\": \"***\"}")
                .is_err()
        );
        assert!(Format::Cbor.decode::<Sample>(&[0xff, 0x00]).is_err());
        assert_eq!(
            Format::Json.decode::<Sample>(b"").unwrap(),
            Sample::default()
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-amz-cbor-1.1")),
            Format::Cbor
        );
        assert_eq!(Format::from_content_type(None), Format::Json);
    }
}
