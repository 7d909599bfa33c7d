//! The `application/vnd.amazon.eventstream` message format, as SubscribeToShard responses use
//! it (reference: `kinesis-api.md` section 5.4, botocore `eventstream.py`).
//!
//! One message on the wire, all integers big-endian:
//!
//! ```text
//! offset 0   total_length    u32   whole message, prelude and trailer included
//! offset 4   headers_length  u32   bytes of the header block
//! offset 8   prelude_crc     u32   CRC32 of bytes 0..8
//! offset 12  headers         headers_length bytes: { name_len u8 | name | type u8 | value }*
//!            payload         total_length - headers_length - 16 bytes
//! end - 4    message_crc     u32   CRC32 of bytes 0..end-4
//! ```
//!
//! Invariants the encoder guarantees and the decoder checks: header names are unique within a
//! message, byte-array and string values fit their `u16` length, the header block is at most
//! [`MAX_HEADERS_LENGTH`] and the payload at most [`MAX_PAYLOAD_LENGTH`] (botocore's limits,
//! so anything we send, boto3 can read), and both CRCs match. The encoder also refuses empty
//! header names; the decoder, like botocore, lets them through.
//!
//! The server side uses [`encode_message`] or the Kinesis-shaped shortcuts
//! ([`initial_response`], [`event`], [`exception`], [`error`]); tests and clients use
//! [`decode_message`] or the buffering [`Decoder`].
//!
//! ```
//! use rheo_awswire::eventstream::{self, Decoder};
//!
//! // Server side: the body of a SubscribeToShard response is these messages back to back.
//! let mut body = Vec::new();
//! body.extend_from_slice(&eventstream::initial_response("application/json", b"{}")?);
//! body.extend_from_slice(&eventstream::event(
//!     "SubscribeToShardEvent",
//!     "application/json",
//!     br#"{"Records":[],"ContinuationSequenceNumber":"1","MillisBehindLatest":0}"#,
//! )?);
//!
//! // Client side: push bytes as they arrive, take messages while there are any.
//! let mut decoder = Decoder::new();
//! decoder.push(&body);
//! let first = decoder.next_message()?.expect("a complete message");
//! assert_eq!(first.header_str(":event-type"), Some("initial-response"));
//! let second = decoder.next_message()?.expect("a complete message");
//! assert_eq!(second.header_str(":event-type"), Some("SubscribeToShardEvent"));
//! assert!(decoder.next_message()?.is_none());
//! decoder.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use decode::{DecodeError, Decoder, decode_message};
pub use encode::{EncodeError, encode_message, error, event, exception, initial_response};

/// Bytes of the prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LENGTH: usize = 12;
/// Bytes of the trailing message CRC.
pub const TRAILER_LENGTH: usize = 4;
/// The smallest possible message: a prelude and a trailer, no headers, no payload.
pub const MIN_MESSAGE_LENGTH: usize = PRELUDE_LENGTH + TRAILER_LENGTH;
/// Largest header block botocore accepts (128 KiB).
pub const MAX_HEADERS_LENGTH: usize = 128 * 1024;
/// Largest payload botocore accepts (24 MiB).
pub const MAX_PAYLOAD_LENGTH: usize = 24 * 1024 * 1024;
/// Largest header name: its length is stored in one byte.
pub const MAX_HEADER_NAME_LENGTH: usize = u8::MAX as usize;
/// Largest byte-array or string header value: its length is stored in a `u16`.
pub const MAX_HEADER_VALUE_LENGTH: usize = u16::MAX as usize;

/// Wire type tags of header values.
pub(crate) mod type_tag {
    pub(crate) const BOOL_TRUE: u8 = 0;
    pub(crate) const BOOL_FALSE: u8 = 1;
    pub(crate) const BYTE: u8 = 2;
    pub(crate) const INT16: u8 = 3;
    pub(crate) const INT32: u8 = 4;
    pub(crate) const INT64: u8 = 5;
    pub(crate) const BYTE_ARRAY: u8 = 6;
    pub(crate) const STRING: u8 = 7;
    pub(crate) const TIMESTAMP: u8 = 8;
    pub(crate) const UUID: u8 = 9;
}

/// A typed header value; each variant is one wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false); no value bytes.
    Bool(bool),
    /// Type 2: one signed byte.
    Byte(i8),
    /// Type 3: a big-endian `i16`.
    Int16(i16),
    /// Type 4: a big-endian `i32`.
    Int32(i32),
    /// Type 5: a big-endian `i64`.
    Int64(i64),
    /// Type 6: a `u16` length, then that many bytes.
    ByteArray(Bytes),
    /// Type 7: a `u16` length, then that many bytes of UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch as a big-endian `i64`.
    Timestamp(i64),
    /// Type 9: sixteen raw bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// The wire type tag of this value.
    pub fn type_tag(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => type_tag::BOOL_TRUE,
            HeaderValue::Bool(false) => type_tag::BOOL_FALSE,
            HeaderValue::Byte(_) => type_tag::BYTE,
            HeaderValue::Int16(_) => type_tag::INT16,
            HeaderValue::Int32(_) => type_tag::INT32,
            HeaderValue::Int64(_) => type_tag::INT64,
            HeaderValue::ByteArray(_) => type_tag::BYTE_ARRAY,
            HeaderValue::String(_) => type_tag::STRING,
            HeaderValue::Timestamp(_) => type_tag::TIMESTAMP,
            HeaderValue::Uuid(_) => type_tag::UUID,
        }
    }

    /// The value as a string slice, if it is a string header.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(value) => Some(value),
            _ => None,
        }
    }
}

/// One named header of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header name, e.g. `:message-type`.
    pub name: String,
    /// The typed value.
    pub value: HeaderValue,
}

impl Header {
    /// A header of any type.
    pub fn new(name: impl Into<String>, value: HeaderValue) -> Self {
        Header {
            name: name.into(),
            value,
        }
    }

    /// A string header (type 7), the only type Kinesis's own headers use.
    pub fn string(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header::new(name, HeaderValue::String(value.into()))
    }
}

/// A decoded message: headers in wire order and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers in the order they appeared; names are unique.
    pub headers: Vec<Header>,
    /// The payload bytes, e.g. the JSON of one SubscribeToShardEvent.
    pub payload: Bytes,
}

impl Message {
    /// The value of the header called `name`, if present.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|header| header.name == name)
            .map(|header| &header.value)
    }

    /// The value of the string header called `name`, if present and a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(HeaderValue::as_str)
    }

    /// Encodes this message; see [`encode_message`].
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        encode_message(&self.headers, &self.payload)
    }
}
