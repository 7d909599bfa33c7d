//! Parsing of the `Authorization` header and its credential scope, with AWS's wording for
//! each way they can be malformed.
//!
//! Shape: `AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/kinesis/aws4_request,
//! SignedHeaders=host;x-amz-date, Signature=<64 hex>`. The first word is the algorithm; the
//! rest splits on commas and whitespace into `key=value` parts, as AWS does (a space inside
//! a credential gives AWS's "not a valid key=value pair" error, and so it does here).

use super::SigV4Error;

/// The algorithm this verifier implements.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The last element of every SigV4 credential scope.
pub(crate) const TERMINATOR: &str = "aws4_request";

/// The parts of an `Authorization` header, each parameter `None` when absent or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorizationHeader<'a> {
    pub(crate) algorithm: &'a str,
    pub(crate) credential: Option<&'a str>,
    pub(crate) signed_headers: Option<&'a str>,
    pub(crate) signature: Option<&'a str>,
}

impl<'a> AuthorizationHeader<'a> {
    /// Splits the header into algorithm and parameters. Fails only on a part without `=`;
    /// missing parameters are reported later, together with a missing date, as AWS does.
    pub(crate) fn parse(header: &'a str) -> Result<Self, SigV4Error> {
        let trimmed = header.trim();
        let (algorithm, parameters) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let mut parsed = AuthorizationHeader {
            algorithm,
            credential: None,
            signed_headers: None,
            signature: None,
        };
        let parts = parameters
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty());
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(SigV4Error::IncompleteSignature {
                    message: format!(
                        "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{trimmed}'."
                    ),
                });
            };
            let value = (!value.is_empty()).then_some(value);
            match key {
                "Credential" => parsed.credential = value,
                "SignedHeaders" => parsed.signed_headers = value,
                "Signature" => parsed.signature = value,
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// AWS's list of what is missing: absent parameters and a missing date header.
    pub(crate) fn missing_parts(&self, header: &str, has_date: bool) -> String {
        let mut message = String::new();
        for (name, value) in [
            ("Credential", self.credential),
            ("Signature", self.signature),
            ("SignedHeaders", self.signed_headers),
        ] {
            if value.is_none() {
                message.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        if !has_date {
            message.push_str(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
            );
        }
        debug_assert!(!message.is_empty(), "called only when something is missing");
        message.push_str("Authorization=");
        message.push_str(header.trim());
        message
    }

    /// Fails unless the algorithm is `AWS4-HMAC-SHA256`.
    pub(crate) fn check_algorithm(&self) -> Result<(), SigV4Error> {
        if self.algorithm == ALGORITHM {
            return Ok(());
        }
        Err(SigV4Error::IncompleteSignature {
            message: format!(
                "Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now).",
                self.algorithm
            ),
        })
    }
}

/// `access_key_id/date/region/service/aws4_request`, split but not yet checked against the
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialScope<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    pub(crate) terminator: &'a str,
}

impl<'a> CredentialScope<'a> {
    /// Splits a credential into its five elements; trailing slashes are ignored, as AWS
    /// ignores them.
    pub(crate) fn parse(credential: &'a str) -> Result<Self, SigV4Error> {
        let elements: Vec<&str> = credential.trim_end_matches('/').split('/').collect();
        let [access_key_id, date, region, service, terminator] = elements[..] else {
            return Err(SigV4Error::IncompleteSignature {
                message: format!(
                    "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
                ),
            });
        };
        Ok(CredentialScope {
            access_key_id,
            date,
            region,
            service,
            terminator,
        })
    }

    /// The scope as it appears in the string to sign: everything after the access key id.
    pub(crate) fn scope_string(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }

    /// Checks service, terminator and day against the request, collecting every problem
    /// into one message as AWS does.
    pub(crate) fn check(
        &self,
        expected_service: &str,
        request_time: &str,
    ) -> Result<(), SigV4Error> {
        let mut problems = Vec::new();
        if self.service != expected_service {
            problems.push(format!(
                "Credential should be scoped to correct service: '{expected_service}'."
            ));
        }
        if self.terminator != TERMINATOR {
            problems.push(format!(
                "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
                self.terminator
            ));
        }
        let request_day = &request_time[..8];
        if self.date != request_day {
            problems.push(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{request_day}', from '{request_time}'.",
                self.date
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SigV4Error::InvalidSignature {
                message: problems.join(" "),
            })
        }
    }
}
