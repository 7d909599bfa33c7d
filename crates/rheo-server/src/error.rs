//! The one place domain errors become gRPC statuses. Every status carries a
//! `google.rpc.ErrorInfo` whose `reason` is the Kinesis exception name, so clients in any
//! language can branch on it.

use rheo_streams::StreamsError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every Rheo error.
pub const ERROR_DOMAIN: &str = "kinesis.rheo";

/// Maps a domain error to its gRPC status.
pub fn to_status(error: StreamsError) -> Status {
    let code = match &error {
        StreamsError::ResourceNotFound(_) => Code::NotFound,
        StreamsError::ResourceInUse(_) => Code::FailedPrecondition,
        StreamsError::InvalidArgument(_) => Code::InvalidArgument,
        StreamsError::Validation(_) => Code::InvalidArgument,
        StreamsError::LimitExceeded(_) => Code::ResourceExhausted,
        StreamsError::ProvisionedThroughputExceeded(_) => Code::ResourceExhausted,
        StreamsError::ExpiredIterator(_) => Code::FailedPrecondition,
        StreamsError::ExpiredNextToken(_) => Code::FailedPrecondition,
        StreamsError::Internal(_) => Code::Internal,
        StreamsError::Unavailable(_) => Code::Unavailable,
    };
    let details = ErrorDetails::with_error_info(
        error.kinesis_name(),
        ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    Status::with_error_details(code, error.to_string(), details)
}

/// The Kinesis exception name carried by a status from this server, if any.
pub fn kinesis_name(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_kinesis_name() {
        let status = to_status(StreamsError::ResourceNotFound(
            "Stream s under account 0 not found.".into(),
        ));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Stream s under account 0 not found.");
        assert_eq!(
            kinesis_name(&status).as_deref(),
            Some("ResourceNotFoundException")
        );
        let throttled = to_status(StreamsError::ProvisionedThroughputExceeded(
            "slow down".into(),
        ));
        assert_eq!(
            kinesis_name(&throttled).as_deref(),
            Some("ProvisionedThroughputExceededException")
        );
    }
}
