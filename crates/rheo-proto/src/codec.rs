//! The protobuf codec of the generated stubs: prost's, except that
//! - a message that does not decode is the sender's error, as Kinesis treats an undecodable
//!   body: INVALID_ARGUMENT with the `google.rpc.ErrorInfo` reason `SerializationException`
//!   (prost's codec answers INTERNAL, a server fault, with no reason a client can branch on);
//! - a message whose top-level field repeats more than [`MAX_REPEATED`] times is refused the
//!   same way before it is decoded: decoding builds one element per occurrence, and a 16 MiB
//!   PutRecords of 8 million two-byte empty records would otherwise cost about 640 MB. No
//!   message of the contract holds more (GetRecords and ListShards answers hold at most 10,000).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every Rheo error.
pub const ERROR_DOMAIN: &str = "kinesis.rheo";

/// Most occurrences of one top-level field a message may have.
pub const MAX_REPEATED: usize = 10_000;

/// The first top-level field of `bytes` (a protobuf message) seen more than [`MAX_REPEATED`]
/// times, if any. Stops quietly at malformed input, which the decoder then reports.
fn over_repeated(mut bytes: &[u8]) -> Option<u64> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let mut counts = [0usize; 64];
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (field, wire_type) = (key >> 3, key & 7);
        let skip = match wire_type {
            0 => {
                varint(&mut bytes)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut bytes)?).ok()?,
            5 => 4,
            _ => return None,
        };
        bytes = bytes.get(skip..)?;
        if let Some(count) = counts.get_mut(field as usize) {
            *count += 1;
            if *count > MAX_REPEATED {
                return Some(field);
            }
        }
    }
    None
}

fn serialization_error(message: String) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_error_info(
            "SerializationException",
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        ),
    )
}

/// The codec every generated client and server uses.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// Prost's decoder with the error above.
#[derive(Debug)]
pub struct Decoder<U>(ProstDecoder<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use bytes::Buf;
        if buf.chunk().len() == buf.remaining()
            && let Some(field) = over_repeated(buf.chunk())
        {
            return Err(serialization_error(format!(
                "the message repeats field {field} more than {MAX_REPEATED} times"
            )));
        }
        self.0.decode(buf).map_err(|status| {
            serialization_error(format!("the message does not decode: {}", status.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_repeated_past_the_bound_are_found_without_decoding() {
        // Field 3, length-delimited, empty: the two bytes of an empty PutRecords entry.
        let entries = |count: usize| -> Vec<u8> {
            let mut message = vec![0x0a, 1, b's'];
            for _ in 0..count {
                message.extend_from_slice(&[0x1a, 0]);
            }
            message
        };
        assert_eq!(over_repeated(&entries(MAX_REPEATED)), None);
        assert_eq!(over_repeated(&entries(MAX_REPEATED + 1)), Some(3));
        // Every wire type is skipped correctly: varints, fixed 64 and 32 bits.
        let mut mixed = vec![0x08, 0x96, 0x01, 0x11];
        mixed.extend_from_slice(&[0; 8]);
        mixed.push(0x1d);
        mixed.extend_from_slice(&[0; 4]);
        assert_eq!(over_repeated(&mixed), None);
        // Malformed input is left to the decoder.
        assert_eq!(over_repeated(&[0x1a, 0x7f]), None);
    }
}
