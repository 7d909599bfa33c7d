//! The one place errors become wire errors: gRPC statuses, and the Kinesis HTTP front end's
//! `{"__type", "message"}` answers with their HTTP status codes. Every gRPC status carries a
//! `google.rpc.ErrorInfo` whose `reason` is the Kinesis exception name, so clients in any
//! language can branch on it.

use rheo_streams::StreamsError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// ErrorInfo domain of every Rheo error.
pub use rheo_proto::codec::ERROR_DOMAIN;

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
        StreamsError::KmsNotFound(_)
        | StreamsError::KmsDisabled(_)
        | StreamsError::KmsInvalidState(_) => Code::FailedPrecondition,
    };
    named_status(code, error.kinesis_name(), error.to_string())
}

/// A status whose ErrorInfo reason is the Kinesis exception `name`.
fn named_status(code: Code, name: &str, message: String) -> Status {
    let details = ErrorDetails::with_error_info(
        name,
        ERROR_DOMAIN,
        std::collections::HashMap::<String, String>::new(),
    );
    Status::with_error_details(code, message, details)
}

/// The exception name of a request body that did not arrive in time: the AWS SDKs retry it as
/// transient.
const BODY_TIMEOUT_NAME: &str = "RequestTimeoutException";

fn body_timeout_message(timeout: std::time::Duration) -> String {
    format!(
        "the request body did not arrive within {} s",
        timeout.as_secs_f64()
    )
}

/// A gRPC request body that did not arrive within `timeout`: DEADLINE_EXCEEDED, with the same
/// exception name as the Kinesis HTTP answer.
pub(crate) fn body_timeout_status(timeout: std::time::Duration) -> Status {
    named_status(
        Code::DeadlineExceeded,
        BODY_TIMEOUT_NAME,
        body_timeout_message(timeout),
    )
}

/// An error of the Kinesis HTTP protocol: the `__type` a client branches on, the HTTP status
/// and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub(crate) name: &'static str,
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl WireError {
    /// A domain error as Kinesis answers it over HTTP: 400 for the caller's errors, 500 for
    /// internal failures, 503 while the store opens.
    pub(crate) fn from_domain(error: StreamsError) -> WireError {
        let status = match &error {
            StreamsError::ResourceNotFound(_)
            | StreamsError::ResourceInUse(_)
            | StreamsError::InvalidArgument(_)
            | StreamsError::Validation(_)
            | StreamsError::LimitExceeded(_)
            | StreamsError::ProvisionedThroughputExceeded(_)
            | StreamsError::ExpiredIterator(_)
            | StreamsError::ExpiredNextToken(_)
            | StreamsError::KmsNotFound(_)
            | StreamsError::KmsDisabled(_)
            | StreamsError::KmsInvalidState(_) => 400,
            StreamsError::Internal(_) => 500,
            StreamsError::Unavailable(_) => 503,
        };
        WireError {
            name: error.kinesis_name(),
            status,
            message: error.to_string(),
        }
    }

    /// A body that does not decode as the operation's input.
    pub(crate) fn serialization(message: String) -> WireError {
        WireError {
            name: "SerializationException",
            status: 400,
            message,
        }
    }

    /// An `X-Amz-Target` that names no operation Rheo serves.
    pub(crate) fn unknown_operation(message: String) -> WireError {
        WireError {
            name: "UnknownOperationException",
            status: 400,
            message,
        }
    }

    /// Anything but `POST`, as Kinesis answers it.
    pub(crate) fn access_denied(message: String) -> WireError {
        WireError {
            name: "AccessDeniedException",
            status: 400,
            message,
        }
    }

    /// A request whose SigV4 signature is missing, malformed, unknown, wrong or stale.
    pub(crate) fn from_auth(error: &rheo_awswire::sigv4::SigV4Error) -> WireError {
        WireError {
            name: error.aws_name(),
            status: error.http_status(),
            message: error.to_string(),
        }
    }

    /// A body over the request size cap.
    pub(crate) fn too_large(message: String) -> WireError {
        WireError {
            name: "SerializationException",
            status: 413,
            message,
        }
    }

    /// A body that did not arrive within `timeout`: 408 and the name the AWS SDKs retry as
    /// transient.
    pub(crate) fn body_timeout(timeout: std::time::Duration) -> WireError {
        WireError {
            name: BODY_TIMEOUT_NAME,
            status: 408,
            message: body_timeout_message(timeout),
        }
    }
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
