//! The errors a SigV4 check can end in, named and worded as AWS names and words them.
//!
//! The display texts are the messages AWS JSON services send back (collected from kinesalite,
//! dynalite's notes on real DynamoDB responses, and Kinesis errors quoted in SDK issue
//! threads), so clients and people searching for them see familiar text. That is why, unlike
//! the rest of the workspace, these messages are capitalised and end with periods.

/// Why a request failed authentication. [`SigV4Error::aws_name`] gives the `__type` to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// The request carries no `Authorization` header (Kinesis: `Missing Authentication Token`).
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,

    /// The `Authorization` header is malformed: a part without `=`, a missing `Credential`,
    /// `SignedHeaders` or `Signature`, no date header, a date not in ISO 8601 basic format,
    /// an algorithm other than `AWS4-HMAC-SHA256`, or a credential without five parts.
    #[error("{message}")]
    IncompleteSignature {
        /// The AWS-style explanation, e.g. `Authorization header requires 'Signature'
        /// parameter. Authorization=...`.
        message: String,
    },

    /// The access key id is not in the credential table.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient {
        /// The access key id the request named.
        access_key_id: String,
    },

    /// The signature is well formed but cannot be right for this server: `host` is not
    /// signed, the credential scope names another service, terminator or day, or the
    /// `X-Amz-Content-Sha256` header does not match the body.
    #[error("{message}")]
    InvalidSignature {
        /// The AWS-style explanation.
        message: String,
    },

    /// The signature differs from the one computed with the stored secret. The canonical
    /// request and string to sign are kept for server logs; AWS's Kinesis message does not
    /// include them.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureDoesNotMatch {
        /// The canonical request the server computed.
        canonical_request: String,
        /// The string to sign the server computed.
        string_to_sign: String,
    },

    /// The request time is further in the past than the allowed clock skew.
    #[error(
        "Signature expired: {request_time} is now earlier than {earliest_allowed} ({server_time} - {window_minutes} min.)"
    )]
    SignatureExpired {
        /// The request's time, ISO 8601 basic format.
        request_time: String,
        /// Server time minus the window.
        earliest_allowed: String,
        /// Server time.
        server_time: String,
        /// The allowed skew in whole minutes.
        window_minutes: u64,
    },

    /// The request time is further in the future than the allowed clock skew.
    #[error(
        "Signature not yet current: {request_time} is still later than {latest_allowed} ({server_time} + {window_minutes} min.)"
    )]
    SignatureNotYetCurrent {
        /// The request's time, ISO 8601 basic format.
        request_time: String,
        /// Server time plus the window.
        latest_allowed: String,
        /// Server time.
        server_time: String,
        /// The allowed skew in whole minutes.
        window_minutes: u64,
    },
}

impl SigV4Error {
    /// The AWS exception name, for the `__type` of the error body.
    ///
    /// A skewed clock is reported as `InvalidSignatureException`, as Kinesis does ("Signature
    /// expired: ..." responses in aws-sdk-go#2194 and amazon-kinesis-producer#222), not as
    /// the generic `RequestExpired` of the common-errors page. SDK clock-skew retry logic
    /// recognises both.
    pub fn aws_name(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteSignature { .. } => "IncompleteSignatureException",
            SigV4Error::UnrecognizedClient { .. } => "UnrecognizedClientException",
            SigV4Error::InvalidSignature { .. }
            | SigV4Error::SignatureDoesNotMatch { .. }
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. } => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS JSON services use for every authentication error: 400.
    pub fn http_status(&self) -> u16 {
        400
    }
}
