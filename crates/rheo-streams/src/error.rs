//! The domain errors of the Kinesis model. Each carries the Kinesis exception name it maps to;
//! front ends translate them in one place each (gRPC status, Kinesis HTTP error).

/// Everything a Kinesis operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamsError {
    /// The stream, shard or consumer does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// The resource exists or is busy (not ACTIVE, name taken, consumers registered).
    #[error("{0}")]
    ResourceInUse(String),
    /// A semantically invalid argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// A value outside its schema (length, pattern, range).
    #[error("{0}")]
    Validation(String),
    /// A quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// A per-shard throughput limit was hit.
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    /// A shard iterator is older than its lifetime.
    #[error("{0}")]
    ExpiredIterator(String),
    /// A pagination token is older than its lifetime.
    #[error("{0}")]
    ExpiredNextToken(String),
    /// The server failed (I/O, corruption); the message says what.
    #[error("{0}")]
    Internal(String),
    /// The encryption key does not exist (in the keyring, in the form given).
    #[error("{0}")]
    KmsNotFound(String),
    /// The encryption key is disabled.
    #[error("{0}")]
    KmsDisabled(String),
    /// The encryption key is not in a state that can be used: a version stored data needs is
    /// missing from the keyring, or its material does not unwrap the data.
    #[error("{0}")]
    KmsInvalidState(String),
    /// The server cannot answer yet (it is opening its data directory) or any more (it is
    /// shutting down); retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl StreamsError {
    /// The Kinesis exception name (`__type` on the HTTP wire, the ErrorInfo reason on gRPC).
    pub fn kinesis_name(&self) -> &'static str {
        match self {
            StreamsError::ResourceNotFound(_) => "ResourceNotFoundException",
            StreamsError::ResourceInUse(_) => "ResourceInUseException",
            StreamsError::InvalidArgument(_) => "InvalidArgumentException",
            StreamsError::Validation(_) => "ValidationException",
            StreamsError::LimitExceeded(_) => "LimitExceededException",
            StreamsError::ProvisionedThroughputExceeded(_) => {
                "ProvisionedThroughputExceededException"
            }
            StreamsError::ExpiredIterator(_) => "ExpiredIteratorException",
            StreamsError::ExpiredNextToken(_) => "ExpiredNextTokenException",
            StreamsError::Internal(_) => "InternalFailureException",
            StreamsError::KmsNotFound(_) => "KMSNotFoundException",
            StreamsError::KmsDisabled(_) => "KMSDisabledException",
            StreamsError::KmsInvalidState(_) => "KMSInvalidStateException",
            StreamsError::Unavailable(_) => "ServiceUnavailableException",
        }
    }
}

impl StreamsError {
    /// A key problem as the KMS exception Kinesis answers with. The message names the key,
    /// never a file.
    pub fn from_key_fault(fault: rheo_storage::KeyFault) -> StreamsError {
        use rheo_storage::KeyFault;
        let message = format!("{fault}");
        match fault {
            KeyFault::NotFound(_) => StreamsError::KmsNotFound(message),
            KeyFault::Disabled(_) => StreamsError::KmsDisabled(message),
            KeyFault::VersionMissing { .. } | KeyFault::WrongKey { .. } => {
                StreamsError::KmsInvalidState(message)
            }
        }
    }
}

/// What a client is told when the node's disk is full or the server is out of file
/// descriptors: nothing was stored, and the same write succeeds once the resource is back.
/// (The file and the errno go to the server's log, not to the client.)
pub const OUT_OF_RESOURCES: &str = "The write was not stored: the server's data disk is full or it is out of file descriptors. Nothing was acknowledged; retry later.";

impl From<rheo_storage::Error> for StreamsError {
    fn from(error: rheo_storage::Error) -> Self {
        match error {
            rheo_storage::Error::InvalidArgument(message) => StreamsError::InvalidArgument(message),
            // 503 / UNAVAILABLE: every AWS SDK and gRPC client retries it with backoff.
            error if error.is_resource_exhausted() => {
                tracing::warn!(%error, "write refused for lack of space or descriptors");
                StreamsError::Unavailable(OUT_OF_RESOURCES.into())
            }
            rheo_storage::Error::Key { path, fault } => {
                tracing::error!(path = %path.display(), %fault, "encryption key problem");
                StreamsError::from_key_fault(fault)
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                StreamsError::Internal(other.to_string())
            }
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
