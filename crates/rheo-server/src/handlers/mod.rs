//! One function per RPC, each shaped "validate into domain types -> call the store -> build the
//! response". They return domain errors; `service.rs` maps them to statuses in one place.
//! Grouped by area (streams, shards, tags, records, consumers) rather than one file per RPC: the handlers
//! are a few lines each, and an area's share its conversions.

pub(crate) mod consumers;
pub(crate) mod records;
pub(crate) mod shards;
pub(crate) mod streams;
pub(crate) mod tags;
