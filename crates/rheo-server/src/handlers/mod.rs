//! One function per RPC, each shaped "validate into domain types -> call the store -> build the
//! response". They return domain errors; `service.rs` maps them to statuses in one place.
//! Grouped by area (streams, shards, tags, records, consumers) rather than one file per RPC: the handlers
//! are a few lines each, and an area's share its conversions.

pub(crate) mod consumers;
pub(crate) mod records;
pub(crate) mod shards;
pub(crate) mod streams;
pub(crate) mod tags;

/// An enum member as sent: a number the contract does not define is refused as Kinesis refuses
/// a value outside an enum (a ValidationException naming the member and the values allowed),
/// never read as the default (which prost's accessors would do).
pub(crate) fn known<E: TryFrom<i32>>(
    value: i32,
    member: &str,
    allowed: &str,
) -> rheo_streams::Result<E> {
    E::try_from(value).map_err(|_| {
        rheo_streams::StreamsError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]"
        ))
    })
}
