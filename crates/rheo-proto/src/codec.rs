//! The protobuf codec of the generated stubs: prost's, except that a message that does not
//! decode is the sender's error, as Kinesis treats an undecodable body: INVALID_ARGUMENT with
//! the `google.rpc.ErrorInfo` reason `SerializationException` (prost's codec answers
//! INTERNAL, a server fault, with no reason a client can branch on).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every Rheo error.
pub const ERROR_DOMAIN: &str = "kinesis.rheo";

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
        self.0.decode(buf).map_err(|status| {
            Status::with_error_details(
                Code::InvalidArgument,
                format!("the message does not decode: {}", status.message()),
                ErrorDetails::with_error_info(
                    "SerializationException",
                    ERROR_DOMAIN,
                    std::collections::HashMap::<String, String>::new(),
                ),
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
