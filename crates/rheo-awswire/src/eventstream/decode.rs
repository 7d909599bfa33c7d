//! Decoding: bytes from the wire become messages, every check botocore makes included.
//!
//! The order of checks is fixed so that a corrupt length can never make a reader wait for
//! bytes that will not come: once 12 bytes are present the prelude CRC is verified before
//! `total_length` is trusted, then the lengths and limits, and only then does a short buffer
//! mean "need more bytes". A complete message is accepted only if its message CRC matches;
//! headers are parsed after that. Offsets in errors count from the first byte of the message.

use std::collections::HashSet;

use bytes::{Buf, Bytes, BytesMut};

use super::{
    Header, HeaderValue, MAX_HEADERS_LENGTH, MAX_PAYLOAD_LENGTH, MIN_MESSAGE_LENGTH, Message,
    PRELUDE_LENGTH, TRAILER_LENGTH, type_tag,
};

/// Why bytes could not be decoded as a message. Framing has no resynchronisation point, so
/// every error is terminal for the stream it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The CRC32 of bytes 0..8 does not match the one stored at offset 8.
    #[error(
        "prelude checksum mismatch at offset 8: computed {computed:#010x}, stored {stored:#010x}"
    )]
    PreludeChecksum {
        /// CRC32 computed over the first 8 bytes.
        computed: u32,
        /// CRC32 read from the message.
        stored: u32,
    },
    /// The CRC32 of the message does not match the trailer.
    #[error(
        "message checksum mismatch at offset {offset}: computed {computed:#010x}, stored {stored:#010x}"
    )]
    MessageChecksum {
        /// Offset of the trailer.
        offset: usize,
        /// CRC32 computed over every byte before the trailer.
        computed: u32,
        /// CRC32 read from the trailer.
        stored: u32,
    },
    /// `total_length` cannot even hold a prelude and a trailer.
    #[error("total length {total_length} at offset 0 is below the minimum of 16 bytes")]
    TotalLengthTooSmall {
        /// The declared total length.
        total_length: u32,
    },
    /// The header block is larger than botocore accepts.
    #[error(
        "headers length {headers_length} at offset 4 is above the limit of {MAX_HEADERS_LENGTH}"
    )]
    HeadersTooLong {
        /// The declared header block length.
        headers_length: u32,
    },
    /// The header block does not fit in the message.
    #[error(
        "headers length {headers_length} at offset 4 does not fit in total length {total_length}"
    )]
    HeadersExceedMessage {
        /// The declared header block length.
        headers_length: u32,
        /// The declared total length.
        total_length: u32,
    },
    /// The payload is larger than botocore accepts.
    #[error("payload length {payload_length} is above the limit of {MAX_PAYLOAD_LENGTH}")]
    PayloadTooLong {
        /// Payload length implied by the two declared lengths.
        payload_length: usize,
    },
    /// A header runs past the end of the header block.
    #[error("header at offset {offset} runs past the end of the header block at offset {end}")]
    TruncatedHeader {
        /// Offset of the header's first byte.
        offset: usize,
        /// Offset just past the header block.
        end: usize,
    },
    /// A header name or string value is not UTF-8.
    #[error("header {field} at offset {offset} is not valid utf-8")]
    InvalidUtf8 {
        /// `"name"` or `"string value"`.
        field: &'static str,
        /// Offset of the first byte of the text.
        offset: usize,
    },
    /// A header's type byte is not one of 0..=9.
    #[error("header {name:?} has unknown value type {type_tag} at offset {offset}")]
    UnknownHeaderType {
        /// The header name.
        name: String,
        /// The type byte read.
        type_tag: u8,
        /// Offset of the type byte.
        offset: usize,
    },
    /// A header name appears twice in one message.
    #[error("header {name:?} at offset {offset} repeats an earlier header")]
    DuplicateHeader {
        /// The repeated name.
        name: String,
        /// Offset of the second occurrence.
        offset: usize,
    },
    /// The stream ended part-way through a message.
    #[error("stream ended inside a message with {length} bytes buffered")]
    TrailingBytes {
        /// Bytes of the incomplete message.
        length: usize,
    },
}

/// Decodes the message at the start of `input`.
///
/// Returns `Ok(None)` when `input` is a valid but incomplete prefix of a message (feed more
/// bytes and call again), or the message and the number of bytes it occupied.
pub fn decode_message(input: &[u8]) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(total_length) = complete_message_length(input)? else {
        return Ok(None);
    };
    let frame = Bytes::copy_from_slice(&input[..total_length]);
    let message = parse_frame(frame)?;
    Ok(Some((message, total_length)))
}

/// A buffering decoder for a byte stream of back-to-back messages: push bytes as they arrive,
/// then take messages until it returns `Ok(None)`. Payloads share the decoder's buffer
/// instead of being copied.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: BytesMut,
    failure: Option<DecodeError>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After an error every
    /// later call returns the same error.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.decode_next();
        if let Err(failure) = &result {
            self.failure = Some(failure.clone());
        }
        result
    }

    /// Bytes received but not yet returned as part of a message.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len()
    }

    /// Call at end of stream: fails if the stream stopped part-way through a message.
    pub fn finish(self) -> Result<(), DecodeError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                length: self.buffer.len(),
            })
        }
    }

    fn decode_next(&mut self) -> Result<Option<Message>, DecodeError> {
        let Some(total_length) = complete_message_length(&self.buffer)? else {
            return Ok(None);
        };
        let frame = self.buffer.split_to(total_length).freeze();
        parse_frame(frame).map(Some)
    }
}

/// Validates the prelude and returns the message length once the whole message is in
/// `input`, `None` while it is not.
fn complete_message_length(input: &[u8]) -> Result<Option<usize>, DecodeError> {
    if input.len() < PRELUDE_LENGTH {
        return Ok(None);
    }
    let mut prelude = &input[..PRELUDE_LENGTH];
    let total_length = prelude.get_u32();
    let headers_length = prelude.get_u32();
    let stored_prelude_crc = prelude.get_u32();
    let computed_prelude_crc = crc32fast::hash(&input[..8]);
    if computed_prelude_crc != stored_prelude_crc {
        return Err(DecodeError::PreludeChecksum {
            computed: computed_prelude_crc,
            stored: stored_prelude_crc,
        });
    }
    let total = total_length as usize;
    let headers = headers_length as usize;
    if total < MIN_MESSAGE_LENGTH {
        return Err(DecodeError::TotalLengthTooSmall { total_length });
    }
    if headers > MAX_HEADERS_LENGTH {
        return Err(DecodeError::HeadersTooLong { headers_length });
    }
    if headers > total - MIN_MESSAGE_LENGTH {
        return Err(DecodeError::HeadersExceedMessage {
            headers_length,
            total_length,
        });
    }
    let payload_length = total - MIN_MESSAGE_LENGTH - headers;
    if payload_length > MAX_PAYLOAD_LENGTH {
        return Err(DecodeError::PayloadTooLong { payload_length });
    }
    if input.len() < total {
        return Ok(None);
    }
    let trailer_offset = total - TRAILER_LENGTH;
    let stored_message_crc = (&input[trailer_offset..total]).get_u32();
    let computed_message_crc = crc32fast::hash(&input[..trailer_offset]);
    if computed_message_crc != stored_message_crc {
        return Err(DecodeError::MessageChecksum {
            offset: trailer_offset,
            computed: computed_message_crc,
            stored: stored_message_crc,
        });
    }
    Ok(Some(total))
}

/// Parses headers and payload out of one complete message whose lengths and CRCs
/// [`complete_message_length`] has checked.
fn parse_frame(frame: Bytes) -> Result<Message, DecodeError> {
    let headers_length = (&frame[4..8]).get_u32() as usize;
    let headers_end = PRELUDE_LENGTH + headers_length;
    let payload_end = frame.len() - TRAILER_LENGTH;
    debug_assert!(headers_end <= payload_end);
    let headers = parse_headers(&frame, headers_end)?;
    let payload = frame.slice(headers_end..payload_end);
    Ok(Message { headers, payload })
}

fn parse_headers(frame: &Bytes, end: usize) -> Result<Vec<Header>, DecodeError> {
    let mut headers = Vec::new();
    let mut seen_names = HashSet::new();
    let mut cursor = HeaderCursor {
        frame,
        position: PRELUDE_LENGTH,
        end,
        header_start: PRELUDE_LENGTH,
    };
    while cursor.position < end {
        cursor.header_start = cursor.position;
        let name_length = usize::from(cursor.take(1)?[0]);
        let name = cursor.utf8(name_length, "name")?;
        let type_offset = cursor.position;
        let tag = cursor.take(1)?[0];
        let value = match tag {
            type_tag::BOOL_TRUE => HeaderValue::Bool(true),
            type_tag::BOOL_FALSE => HeaderValue::Bool(false),
            type_tag::BYTE => HeaderValue::Byte(cursor.take(1)?.get_i8()),
            type_tag::INT16 => HeaderValue::Int16(cursor.take(2)?.get_i16()),
            type_tag::INT32 => HeaderValue::Int32(cursor.take(4)?.get_i32()),
            type_tag::INT64 => HeaderValue::Int64(cursor.take(8)?.get_i64()),
            type_tag::BYTE_ARRAY => {
                let length = usize::from(cursor.take(2)?.get_u16());
                let start = cursor.position;
                cursor.take(length)?;
                HeaderValue::ByteArray(frame.slice(start..start + length))
            }
            type_tag::STRING => {
                let length = usize::from(cursor.take(2)?.get_u16());
                HeaderValue::String(cursor.utf8(length, "string value")?)
            }
            type_tag::TIMESTAMP => HeaderValue::Timestamp(cursor.take(8)?.get_i64()),
            type_tag::UUID => {
                let mut uuid = [0u8; 16];
                uuid.copy_from_slice(cursor.take(16)?);
                HeaderValue::Uuid(uuid)
            }
            unknown => {
                return Err(DecodeError::UnknownHeaderType {
                    name,
                    type_tag: unknown,
                    offset: type_offset,
                });
            }
        };
        if !seen_names.insert(name.clone()) {
            return Err(DecodeError::DuplicateHeader {
                name,
                offset: cursor.header_start,
            });
        }
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Reads forward through the header block of one frame, failing at its end.
struct HeaderCursor<'a> {
    frame: &'a [u8],
    position: usize,
    end: usize,
    header_start: usize,
}

impl<'a> HeaderCursor<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        if length > self.end - self.position {
            return Err(DecodeError::TruncatedHeader {
                offset: self.header_start,
                end: self.end,
            });
        }
        let bytes = &self.frame[self.position..self.position + length];
        self.position += length;
        Ok(bytes)
    }

    fn utf8(&mut self, length: usize, field: &'static str) -> Result<String, DecodeError> {
        let offset = self.position;
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 { field, offset }),
        }
    }
}
