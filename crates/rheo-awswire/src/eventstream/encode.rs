//! Encoding: a header list and a payload become one framed message, plus the four message
//! shapes a Kinesis SubscribeToShard response is made of.
//!
//! Every limit the decoder enforces is checked here first, so an encoded message always
//! decodes (botocore included) to the same headers and payload.

use std::collections::HashSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    Header, HeaderValue, MAX_HEADER_NAME_LENGTH, MAX_HEADER_VALUE_LENGTH, MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH, PRELUDE_LENGTH, TRAILER_LENGTH,
};

/// Why a message could not be encoded. Nothing is written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A header name is the empty string.
    #[error("header {index} has an empty name")]
    EmptyHeaderName {
        /// Position of the header in the list.
        index: usize,
    },
    /// A header name is longer than its one-byte length can say.
    #[error("header {index} has a name of {length} bytes, above the limit of 255")]
    HeaderNameTooLong {
        /// Position of the header in the list.
        index: usize,
        /// Length of the name in bytes.
        length: usize,
    },
    /// A byte-array or string value is longer than its `u16` length can say.
    #[error("header {name:?} has a value of {length} bytes, above the limit of 65535")]
    HeaderValueTooLong {
        /// The header name.
        name: String,
        /// Length of the value in bytes.
        length: usize,
    },
    /// Two headers share a name.
    #[error("header {name:?} appears more than once")]
    DuplicateHeader {
        /// The repeated name.
        name: String,
    },
    /// The encoded header block is larger than [`MAX_HEADERS_LENGTH`].
    #[error("headers take {length} bytes, above the limit of {MAX_HEADERS_LENGTH}")]
    HeadersTooLong {
        /// Encoded length of the header block.
        length: usize,
    },
    /// The payload is larger than [`MAX_PAYLOAD_LENGTH`].
    #[error("payload of {length} bytes is above the limit of {MAX_PAYLOAD_LENGTH}")]
    PayloadTooLong {
        /// Payload length in bytes.
        length: usize,
    },
}

/// Encodes one message: prelude, headers in the given order, payload, trailer.
pub fn encode_message(headers: &[Header], payload: &[u8]) -> Result<Bytes, EncodeError> {
    let headers_length = checked_headers_length(headers)?;
    if payload.len() > MAX_PAYLOAD_LENGTH {
        return Err(EncodeError::PayloadTooLong {
            length: payload.len(),
        });
    }
    let total_length = PRELUDE_LENGTH + headers_length + payload.len() + TRAILER_LENGTH;
    // Both limits together keep the total far below u32::MAX, so the casts cannot truncate.
    let total_length_u32 = u32::try_from(total_length).expect("bounded by the length limits");
    let headers_length_u32 = u32::try_from(headers_length).expect("bounded by the length limits");

    let mut out = BytesMut::with_capacity(total_length);
    out.put_u32(total_length_u32);
    out.put_u32(headers_length_u32);
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    for header in headers {
        write_header(&mut out, header);
    }
    debug_assert_eq!(out.len(), PRELUDE_LENGTH + headers_length);
    out.put_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.put_u32(message_crc);
    debug_assert_eq!(out.len(), total_length);
    Ok(out.freeze())
}

/// The first message of every SubscribeToShard response: `:message-type=event`,
/// `:event-type=initial-response`, `:content-type`. For Kinesis the payload is `{}` (JSON) or
/// the CBOR empty map; botocore refuses a stream that does not start with it.
pub fn initial_response(content_type: &str, payload: &[u8]) -> Result<Bytes, EncodeError> {
    event("initial-response", content_type, payload)
}

/// An event message: `:message-type=event`, `:event-type=<event_type>` (e.g.
/// `SubscribeToShardEvent`), `:content-type=<content_type>`.
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Result<Bytes, EncodeError> {
    encode_message(
        &[
            Header::string(":message-type", "event"),
            Header::string(":event-type", event_type),
            Header::string(":content-type", content_type),
        ],
        payload,
    )
}

/// A modelled error: `:message-type=exception`, `:exception-type=<exception_type>` (e.g.
/// `ResourceInUseException`), `:content-type`; the payload is usually `{"message":"..."}`.
pub fn exception(
    exception_type: &str,
    content_type: &str,
    payload: &[u8],
) -> Result<Bytes, EncodeError> {
    encode_message(
        &[
            Header::string(":message-type", "exception"),
            Header::string(":exception-type", exception_type),
            Header::string(":content-type", content_type),
        ],
        payload,
    )
}

/// An unmodelled error: `:message-type=error`, `:error-code`, `:error-message`, no payload.
pub fn error(code: &str, message: &str) -> Result<Bytes, EncodeError> {
    encode_message(
        &[
            Header::string(":message-type", "error"),
            Header::string(":error-code", code),
            Header::string(":error-message", message),
        ],
        &[],
    )
}

/// Checks every per-header rule and returns the encoded size of the header block.
fn checked_headers_length(headers: &[Header]) -> Result<usize, EncodeError> {
    let mut total = 0usize;
    let mut seen_names = HashSet::with_capacity(headers.len());
    for (index, header) in headers.iter().enumerate() {
        if header.name.is_empty() {
            return Err(EncodeError::EmptyHeaderName { index });
        }
        if header.name.len() > MAX_HEADER_NAME_LENGTH {
            return Err(EncodeError::HeaderNameTooLong {
                index,
                length: header.name.len(),
            });
        }
        if !seen_names.insert(header.name.as_str()) {
            return Err(EncodeError::DuplicateHeader {
                name: header.name.clone(),
            });
        }
        if let Some(length) = variable_value_length(&header.value)
            && length > MAX_HEADER_VALUE_LENGTH
        {
            return Err(EncodeError::HeaderValueTooLong {
                name: header.name.clone(),
                length,
            });
        }
        total += 1 + header.name.len() + 1 + value_length(&header.value);
    }
    if total > MAX_HEADERS_LENGTH {
        return Err(EncodeError::HeadersTooLong { length: total });
    }
    Ok(total)
}

/// Length of the data of a length-prefixed value, `None` for fixed-size types.
fn variable_value_length(value: &HeaderValue) -> Option<usize> {
    match value {
        HeaderValue::ByteArray(bytes) => Some(bytes.len()),
        HeaderValue::String(text) => Some(text.len()),
        HeaderValue::Bool(_)
        | HeaderValue::Byte(_)
        | HeaderValue::Int16(_)
        | HeaderValue::Int32(_)
        | HeaderValue::Int64(_)
        | HeaderValue::Timestamp(_)
        | HeaderValue::Uuid(_) => None,
    }
}

/// Encoded length of a value, not counting its type byte.
fn value_length(value: &HeaderValue) -> usize {
    match value {
        HeaderValue::Bool(_) => 0,
        HeaderValue::Byte(_) => 1,
        HeaderValue::Int16(_) => 2,
        HeaderValue::Int32(_) => 4,
        HeaderValue::Int64(_) | HeaderValue::Timestamp(_) => 8,
        HeaderValue::ByteArray(bytes) => 2 + bytes.len(),
        HeaderValue::String(text) => 2 + text.len(),
        HeaderValue::Uuid(_) => 16,
    }
}

/// Writes one header whose lengths [`checked_headers_length`] has already checked.
fn write_header(out: &mut BytesMut, header: &Header) {
    let name_length = u8::try_from(header.name.len()).expect("checked before writing");
    out.put_u8(name_length);
    out.put_slice(header.name.as_bytes());
    out.put_u8(header.value.type_tag());
    match &header.value {
        HeaderValue::Bool(_) => {}
        HeaderValue::Byte(value) => out.put_i8(*value),
        HeaderValue::Int16(value) => out.put_i16(*value),
        HeaderValue::Int32(value) => out.put_i32(*value),
        HeaderValue::Int64(value) | HeaderValue::Timestamp(value) => out.put_i64(*value),
        HeaderValue::ByteArray(bytes) => put_length_prefixed(out, bytes),
        HeaderValue::String(text) => put_length_prefixed(out, text.as_bytes()),
        HeaderValue::Uuid(bytes) => out.put_slice(bytes),
    }
}

fn put_length_prefixed(out: &mut BytesMut, data: &[u8]) {
    let length = u16::try_from(data.len()).expect("checked before writing");
    out.put_u16(length);
    out.put_slice(data);
}
