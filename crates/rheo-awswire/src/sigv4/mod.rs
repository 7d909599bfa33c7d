//! AWS Signature Version 4 verification of incoming requests (header-signed requests only;
//! presigned query-string requests are not supported, and Kinesis SDKs do not send them).
//!
//! A [`Verifier`] checks one request, given as HTTP-crate-independent [`RequestParts`] and
//! the server's current time, in the order AWS JSON services check (reconstructed from
//! kinesalite and dynalite, which copied real responses):
//!
//! 1. an `Authorization` header exists, else `MissingAuthenticationTokenException`;
//! 2. it splits into `key=value` parts, has `Credential`, `Signature` and `SignedHeaders`,
//!    and the request has `X-Amz-Date` or `Date` in a valid format, else
//!    `IncompleteSignatureException`;
//! 3. *(verify)* the request time is within the allowed skew of now, and `host` is signed, and
//!    so is `x-amz-target` when the request has it (else the signature would let a captured
//!    request be replayed as another operation on the same body);
//! 4. the algorithm is `AWS4-HMAC-SHA256` and the credential has five elements;
//! 5. *(verify)* the scope names the expected service, `aws4_request` and the request's day;
//! 6. *(verify)* the access key is known, else `UnrecognizedClientException`;
//! 7. *(verify)* `X-Amz-Content-Sha256`, if sent, is the body's hash, and the signature
//!    matches, compared in constant time.
//!
//! [`Mode::AcceptAny`] (the emulator convention) runs only the unmarked steps: any key and
//! any signature pass, but the header must be well formed. [`Mode::Verify`] runs them all.
//! The region is not checked in either mode; it is returned so the caller can.
//!
//! With `http` types, the headers slice is
//! `parts.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes())).collect()`,
//! plus `("host", authority)` for HTTP/2 requests.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use rheo_awswire::sigv4::{Credentials, Mode, RequestParts, Verifier};
//!
//! let verifier = Verifier::new(Mode::Verify(Credentials::from_iter([(
//!     "AKIDEXAMPLE",
//!     "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
//! )])))
//! .with_service("service"); // AWS's test-suite name; the default is "kinesis"
//! let headers: [(&str, &[u8]); 3] = [
//!     ("Host", b"example.amazonaws.com"),
//!     ("X-Amz-Date", b"20150830T123600Z"),
//!     ("Authorization", b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
//! ];
//! let request = RequestParts { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
//! let now = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // the request's own time
//! let who = verifier.verify(&request, now).expect("AWS's get-vanilla request verifies");
//! assert_eq!(who.access_key_id, "AKIDEXAMPLE");
//!
//! // Failures carry the AWS exception name and message for the JSON error body.
//! let unsigned = RequestParts { headers: &headers[..2], ..request };
//! let error = verifier.verify(&unsigned, now).unwrap_err();
//! assert_eq!(error.aws_name(), "MissingAuthenticationTokenException");
//! assert_eq!(error.to_string(), "Missing Authentication Token");
//! ```

mod authorization;
mod canonical;
mod error;
#[cfg(test)]
mod tests;
mod time;
#[cfg(test)]
mod vectors;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authorization::{AuthorizationHeader, CredentialScope};
use canonical::CanonicalInput;

pub use error::SigV4Error;

/// The signing name of Kinesis, the default expected service.
pub const KINESIS_SERVICE: &str = "kinesis";

/// The default allowed difference between request time and server time. AWS documents 15
/// minutes; Kinesis has been seen enforcing 5 (its "Signature expired" messages say
/// "- 5 min."), which [`Verifier::with_max_clock_skew`] can reproduce.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parts of an HTTP request that signing covers, borrowed from whatever HTTP types the
/// caller uses.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method, upper case, e.g. `POST`.
    pub method: &'a str,
    /// The path exactly as received, still percent-encoded, without the query.
    pub path: &'a str,
    /// The query as received, without the `?`; empty if none.
    pub query: &'a str,
    /// Every header as received, repeated names included, in arrival order. Names may be
    /// in any case. HTTP/2 requests have no `host` header: pass the `:authority` value as
    /// `host`, which is what SDKs sign.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The complete request body.
    pub body: &'a [u8],
}

/// A table of access key id -> secret access key. Its `Debug` output lists key ids only.
#[derive(Clone, Default)]
pub struct Credentials {
    secrets: HashMap<String, String>,
}

impl Credentials {
    /// An empty table.
    pub fn new() -> Self {
        Credentials::default()
    }

    /// Adds or replaces one key pair.
    pub fn insert(
        &mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) {
        self.secrets
            .insert(access_key_id.into(), secret_access_key.into());
    }

    fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.secrets.get(access_key_id).map(String::as_str)
    }
}

impl<K: Into<String>, S: Into<String>> FromIterator<(K, S)> for Credentials {
    fn from_iter<I: IntoIterator<Item = (K, S)>>(pairs: I) -> Self {
        let mut credentials = Credentials::new();
        for (access_key_id, secret) in pairs {
            credentials.insert(access_key_id, secret);
        }
        credentials
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key_ids: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        key_ids.sort_unstable();
        formatter
            .debug_struct("Credentials")
            .field("access_key_ids", &key_ids)
            .finish_non_exhaustive()
    }
}

/// How strictly requests are authenticated.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Emulator convention: a well-formed SigV4 `Authorization` header is enough; keys,
    /// scope, time and signature are not checked.
    AcceptAny,
    /// Full verification against this credential table.
    Verify(Credentials),
}

/// Who signed an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// The region from the credential scope (not checked).
    pub region: String,
    /// The `X-Amz-Security-Token` header, if any. It is covered by the signature when the
    /// client signed it (SDKs do) but not otherwise checked: there is no token service.
    pub security_token: Option<String>,
    /// `true` if the signature was verified, `false` under [`Mode::AcceptAny`].
    pub signature_verified: bool,
}

/// Checks request signatures; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Verifier {
    mode: Mode,
    service: String,
    max_clock_skew: Duration,
}

impl Verifier {
    /// A verifier for service `kinesis` with the default clock skew.
    pub fn new(mode: Mode) -> Self {
        Verifier {
            mode,
            service: KINESIS_SERVICE.to_owned(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }

    /// Expects another service name in the credential scope (tests use AWS's `service`).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Sets the allowed difference between request time and `now`.
    pub fn with_max_clock_skew(mut self, max_clock_skew: Duration) -> Self {
        self.max_clock_skew = max_clock_skew;
        self
    }

    /// Authenticates one request as of `now`; see the module header for the checks.
    pub fn verify(
        &self,
        request: &RequestParts<'_>,
        now: SystemTime,
    ) -> Result<Authenticated, SigV4Error> {
        let authorization_value = header_text(request.headers, "authorization")
            .filter(|value| !value.trim().is_empty())
            .ok_or(SigV4Error::MissingAuthenticationToken)?;
        let authorization = AuthorizationHeader::parse(&authorization_value)?;
        let date_header = header_text(request.headers, "x-amz-date")
            .map(|value| (value, true))
            .or_else(|| header_text(request.headers, "date").map(|value| (value, false)));
        let (
            Some(credential),
            Some(signed_headers),
            Some(signature),
            Some((date_value, is_amz_date)),
        ) = (
            authorization.credential,
            authorization.signed_headers,
            authorization.signature,
            date_header.as_ref(),
        )
        else {
            return Err(SigV4Error::IncompleteSignature {
                message: authorization.missing_parts(&authorization_value, date_header.is_some()),
            });
        };
        let request_unix = parse_request_time(date_value, *is_amz_date)?;
        let request_time = time::format_amz_date(request_unix);

        let credentials = match &self.mode {
            Mode::AcceptAny => None,
            Mode::Verify(credentials) => {
                self.check_clock_skew(request_unix, now)?;
                check_signed(signed_headers, "host", "Host")?;
                // A signature that leaves the operation out could be replayed as another
                // operation on the same body.
                if header_text(request.headers, "x-amz-target").is_some() {
                    check_signed(signed_headers, "x-amz-target", "X-Amz-Target")?;
                }
                Some(credentials)
            }
        };
        authorization.check_algorithm()?;
        let scope = CredentialScope::parse(credential)?;
        let security_token = header_text(request.headers, "x-amz-security-token");
        let authenticated = |signature_verified| Authenticated {
            access_key_id: scope.access_key_id.to_owned(),
            region: scope.region.to_owned(),
            security_token: security_token.clone(),
            signature_verified,
        };
        let Some(credentials) = credentials else {
            return Ok(authenticated(false));
        };

        scope.check(&self.service, &request_time)?;
        let secret = credentials.secret(scope.access_key_id).ok_or_else(|| {
            SigV4Error::UnrecognizedClient {
                access_key_id: scope.access_key_id.to_owned(),
            }
        })?;
        let payload_hash = payload_hash(request)?;
        let canonical_request = canonical::canonical_request(&CanonicalInput {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            signed_headers,
            payload_hash: &payload_hash,
        });
        let string_to_sign =
            canonical::string_to_sign(&request_time, &scope.scope_string(), &canonical_request);
        let signing_key = canonical::signing_key(secret, scope.date, scope.region, scope.service);
        if !canonical::signature_matches(&signing_key, &string_to_sign, signature) {
            return Err(SigV4Error::SignatureDoesNotMatch {
                canonical_request: String::from_utf8_lossy(&canonical_request).into_owned(),
                string_to_sign,
            });
        }
        Ok(authenticated(true))
    }

    fn check_clock_skew(&self, request_unix: i64, now: SystemTime) -> Result<(), SigV4Error> {
        let now_unix = unix_seconds(now);
        let window = i64::try_from(self.max_clock_skew.as_secs()).unwrap_or(i64::MAX / 2);
        let window_minutes = self.max_clock_skew.as_secs() / 60;
        let earliest = now_unix.saturating_sub(window);
        let latest = now_unix.saturating_add(window);
        if request_unix < earliest {
            return Err(SigV4Error::SignatureExpired {
                request_time: time::format_amz_date(request_unix),
                earliest_allowed: time::format_amz_date(earliest),
                server_time: time::format_amz_date(now_unix),
                window_minutes,
            });
        }
        if request_unix > latest {
            return Err(SigV4Error::SignatureNotYetCurrent {
                request_time: time::format_amz_date(request_unix),
                latest_allowed: time::format_amz_date(latest),
                server_time: time::format_amz_date(now_unix),
                window_minutes,
            });
        }
        Ok(())
    }
}

/// The first header called `name` (case-insensitive), decoded lossily as text.
fn header_text(headers: &[(&str, &[u8])], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(header_name, _)| header_name.eq_ignore_ascii_case(name))
        .map(|(_, value)| String::from_utf8_lossy(value).trim().to_owned())
}

fn parse_request_time(value: &str, is_amz_date: bool) -> Result<i64, SigV4Error> {
    let parsed = if is_amz_date {
        time::parse_amz_date(value)
    } else {
        time::parse_http_date(value)
    };
    parsed.ok_or_else(|| SigV4Error::IncompleteSignature {
        message: format!(
            "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ),
    })
}

/// `name` (lowercase; shown as `shown`) must be one of the signed headers.
fn check_signed(signed_headers: &str, name: &str, shown: &str) -> Result<(), SigV4Error> {
    if signed_headers
        .split(';')
        .any(|signed| signed.eq_ignore_ascii_case(name))
    {
        return Ok(());
    }
    Err(SigV4Error::InvalidSignature {
        message: format!("'{shown}' must be a 'SignedHeader' in the AWS Authorization."),
    })
}

/// The payload hash line: the client's `X-Amz-Content-Sha256` if sent (it must then be the
/// body's real hash, so `UNSIGNED-PAYLOAD` is refused), else the body's hash.
fn payload_hash(request: &RequestParts<'_>) -> Result<String, SigV4Error> {
    let body_hash = canonical::sha256_hex(request.body);
    let Some(claimed) = header_text(request.headers, "x-amz-content-sha256") else {
        return Ok(body_hash);
    };
    if !claimed.eq_ignore_ascii_case(&body_hash) {
        return Err(SigV4Error::InvalidSignature {
            message: "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned(),
        });
    }
    Ok(claimed)
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}
