//! How Kinesis HTTP requests are authenticated. By default any request with a well-formed
//! SigV4 `Authorization` header is accepted (the emulator convention, so SDKs work with dummy
//! credentials); with access keys configured, every signature is verified against them.

use std::time::SystemTime;

use axum::http::request::Parts;
use rheo_awswire::sigv4::{Credentials, Mode, RequestParts, Verifier};

use crate::error::WireError;

/// The authentication policy of the Kinesis HTTP front end.
#[derive(Debug, Clone)]
pub struct Authentication {
    verifier: Verifier,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication::accept_any()
    }
}

impl Authentication {
    /// Accept any well-formed SigV4 `Authorization` header, whatever its key and signature.
    pub fn accept_any() -> Self {
        Authentication {
            verifier: Verifier::new(Mode::AcceptAny),
        }
    }

    /// Verify every request's signature against these access key id / secret key pairs.
    pub fn verify(keys: impl IntoIterator<Item = (String, String)>) -> Self {
        Authentication {
            verifier: Verifier::new(Mode::Verify(keys.into_iter().collect::<Credentials>())),
        }
    }

    pub(crate) fn check(&self, parts: &Parts, body: &[u8]) -> Result<(), WireError> {
        let authority = parts.uri.authority().map(|authority| authority.as_str());
        let mut headers: Vec<(&str, &[u8])> = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        // HTTP/2 carries the host as `:authority`, which is what SDKs sign as `host`.
        if !parts.headers.contains_key("host")
            && let Some(authority) = authority
        {
            headers.push(("host", authority.as_bytes()));
        }
        let request = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
            body,
        };
        match self.verifier.verify(&request, SystemTime::now()) {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::debug!(%error, "request refused by SigV4 check");
                Err(WireError::from_auth(&error))
            }
        }
    }
}
