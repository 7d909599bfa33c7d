//! Pieces of the AWS wire protocols that Rheo's Kinesis HTTP front end needs, with no network
//! code and no async runtime:
//!
//! - [`eventstream`]: the `application/vnd.amazon.eventstream` message framing that
//!   SubscribeToShard responses use (encoder for the server, checking decoder for tests and
//!   clients);
//! - [`sigv4`]: AWS Signature Version 4 verification of incoming requests, either strict
//!   (against a table of access keys) or in the emulator convention of accepting any
//!   well-formed signature.
//!
//! Both modules are pure functions over bytes and strings; callers bring their own HTTP types
//! and clock.

#![forbid(unsafe_code)]

pub mod eventstream;
pub mod sigv4;
