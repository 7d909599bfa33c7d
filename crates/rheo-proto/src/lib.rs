//! Rheo's gRPC contract as Rust types and tonic client and server stubs, generated at build time
//! from `proto/rheo/v1/kinesis.proto`.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod codec;

/// Version 1 of the API.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("rheo.v1");
}

/// The encoded file descriptor set of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rheo_descriptor.bin"));
