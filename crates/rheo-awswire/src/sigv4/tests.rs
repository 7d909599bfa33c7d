//! Behaviour tests of the verifier: every error variant with its AWS name and exact text,
//! the order of checks, the clock-skew window at its edges, and the accept-any mode.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Authenticated, Credentials, Mode, RequestParts, SigV4Error, Verifier};

/// `UNIX_EPOCH + seconds`.
pub(super) fn unix(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Verifies a request written as raw HTTP/1.1 text: request line, `Name:value` header
/// lines, a blank line, the body.
pub(super) fn check(
    verifier: &Verifier,
    raw: &str,
    now: SystemTime,
) -> Result<Authenticated, SigV4Error> {
    let (head, body) = raw
        .split_once("\n\n")
        .expect("raw request has a blank line");
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, target) = request_line.split_once(' ').expect("method");
    let target = target.strip_suffix(" HTTP/1.1").expect("http version");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(&str, &[u8])> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name, value.as_bytes())
        })
        .collect();
    let request = RequestParts {
        method,
        path,
        query,
        headers: &headers,
        body: body.as_bytes(),
    };
    verifier.verify(&request, now)
}

const NOW: u64 = 1_440_938_160; // 20150830T123600Z

/// AWS's get-vanilla request; `{auth}` and `{date}` are replaced per test.
const TEMPLATE: &str = "GET / HTTP/1.1\nHost:example.amazonaws.com\n{auth}{date}\n";
const GOOD_AUTH: &str = "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n";
const GOOD_DATE: &str = "X-Amz-Date:20150830T123600Z\n";

fn request(auth: &str, date: &str) -> String {
    TEMPLATE.replace("{auth}", auth).replace("{date}", date)
}

fn strict() -> Verifier {
    Verifier::new(Mode::Verify(Credentials::from_iter([(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )])))
    .with_service("service")
}

fn lenient() -> Verifier {
    Verifier::new(Mode::AcceptAny)
}

fn both_modes() -> [Verifier; 2] {
    [strict(), lenient()]
}

fn error_text(verifier: &Verifier, raw: &str, now: u64) -> (String, &'static str) {
    let error = check(verifier, raw, unix(now)).expect_err("request must be refused");
    (error.to_string(), error.aws_name())
}

#[test]
fn the_template_request_is_accepted_by_both_modes() {
    for verifier in both_modes() {
        let authenticated = check(&verifier, &request(GOOD_AUTH, GOOD_DATE), unix(NOW)).unwrap();
        assert_eq!(authenticated.access_key_id, "AKIDEXAMPLE");
        assert_eq!(authenticated.region, "us-east-1");
    }
}

#[test]
fn missing_authorization_is_missing_authentication_token() {
    for verifier in both_modes() {
        for auth in ["", "Authorization:   \n", "X-Other:AWS4-HMAC-SHA256\n"] {
            let raw = request(auth, GOOD_DATE);
            assert_eq!(
                check(&verifier, &raw, unix(NOW)),
                Err(SigV4Error::MissingAuthenticationToken)
            );
            assert_eq!(
                error_text(&verifier, &raw, NOW),
                (
                    "Missing Authentication Token".to_owned(),
                    "MissingAuthenticationTokenException"
                )
            );
        }
    }
}

#[test]
fn missing_parameters_and_date_are_listed_together() {
    let cases = [
        (
            "Authorization:AWS4-HMAC-SHA256\n",
            "",
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256",
        ),
        (
            "Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\n",
            "",
            "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE",
        ),
        (
            "Authorization:AWS4-HMAC-SHA256 Credential=A/B, SignedHeaders=host, Signature=\n",
            GOOD_DATE,
            "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 Credential=A/B, SignedHeaders=host, Signature=",
        ),
        (
            "Authorization:AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=host, Signature=ab\n",
            "",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=A/B/C/D/E, SignedHeaders=host, Signature=ab",
        ),
        // A bearer token without key=value parts is read as an algorithm with no parameters.
        (
            "Authorization:eyJhbGciOiJIUzI1NiJ9\n",
            GOOD_DATE,
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=eyJhbGciOiJIUzI1NiJ9",
        ),
    ];
    for verifier in both_modes() {
        for (auth, date, expected) in cases {
            assert_eq!(
                error_text(&verifier, &request(auth, date), NOW),
                (expected.to_owned(), "IncompleteSignatureException"),
                "{auth}"
            );
        }
    }
}

#[test]
fn parts_without_equal_sign_are_incomplete() {
    let cases = [
        (
            "Authorization:Bearer abc.def\n",
            "'abc.def' not a valid key=value pair (missing equal-sign) in Authorization header: 'Bearer abc.def'.",
        ),
        // A space inside the credential splits it, as it does at AWS.
        (
            "Authorization:AWS4-HMAC-SHA256 Credential=not valid/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=ab\n",
            "'valid/20150830/us-east-1/service/aws4_request' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential=not valid/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=ab'.",
        ),
    ];
    for verifier in both_modes() {
        for (auth, expected) in cases {
            assert_eq!(
                error_text(&verifier, &request(auth, GOOD_DATE), NOW),
                (expected.to_owned(), "IncompleteSignatureException")
            );
        }
    }
}

#[test]
fn malformed_dates_are_incomplete() {
    for verifier in both_modes() {
        for (date, shown) in [
            ("X-Amz-Date:2015/08/30T12/36/00Z\n", "2015/08/30T12/36/00Z"),
            ("X-Amz-Date:20150830\n", "20150830"),
            (
                "Date:Sunday, 30-Aug-15 12:36:00 GMT\n",
                "Sunday, 30-Aug-15 12:36:00 GMT",
            ),
        ] {
            assert_eq!(
                error_text(&verifier, &request(GOOD_AUTH, date), NOW),
                (
                    format!(
                        "Date must be in ISO-8601 'basic format'. Got '{shown}'. See http://en.wikipedia.org/wiki/ISO_8601"
                    ),
                    "IncompleteSignatureException"
                )
            );
        }
    }
}

#[test]
fn other_algorithms_are_incomplete() {
    let auth = GOOD_AUTH.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512");
    for verifier in both_modes() {
        assert_eq!(
            error_text(&verifier, &request(&auth, GOOD_DATE), NOW),
            (
                "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now)."
                    .to_owned(),
                "IncompleteSignatureException"
            )
        );
    }
}

#[test]
fn credentials_without_five_elements_are_incomplete() {
    let auth = GOOD_AUTH.replace("/service/aws4_request", "/aws4_request");
    for verifier in both_modes() {
        assert_eq!(
            error_text(&verifier, &request(&auth, GOOD_DATE), NOW),
            (
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/aws4_request'".to_owned(),
                "IncompleteSignatureException"
            )
        );
    }
    // Trailing slashes do not count as elements.
    let trailing = GOOD_AUTH.replace("aws4_request,", "aws4_request//,");
    assert!(check(&strict(), &request(&trailing, GOOD_DATE), unix(NOW)).is_ok());
}

#[test]
fn unknown_access_keys_are_unrecognized() {
    let auth = GOOD_AUTH.replace("Credential=AKIDEXAMPLE", "Credential=AKIDOTHER");
    let raw = request(&auth, GOOD_DATE);
    assert_eq!(
        check(&strict(), &raw, unix(NOW)),
        Err(SigV4Error::UnrecognizedClient {
            access_key_id: "AKIDOTHER".to_owned()
        })
    );
    assert_eq!(
        error_text(&strict(), &raw, NOW),
        (
            "The security token included in the request is invalid.".to_owned(),
            "UnrecognizedClientException"
        )
    );
    let accepted = check(&lenient(), &raw, unix(NOW)).unwrap();
    assert_eq!(accepted.access_key_id, "AKIDOTHER");
    assert!(!accepted.signature_verified);
}

#[test]
fn wrong_scope_is_invalid_with_every_problem_listed() {
    let auth = GOOD_AUTH.replace(
        "20150830/us-east-1/service/aws4_request",
        "20150829/us-east-1/kinesis/aws5_request",
    );
    let raw = request(&auth, GOOD_DATE);
    assert_eq!(
        error_text(&strict(), &raw, NOW),
        (
            "Credential should be scoped to correct service: 'service'. Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150829' != '20150830', from '20150830T123600Z'.".to_owned(),
            "InvalidSignatureException"
        )
    );
    assert!(check(&lenient(), &raw, unix(NOW)).is_ok());
}

#[test]
fn unsigned_host_is_invalid() {
    let auth = GOOD_AUTH.replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
    let raw = request(&auth, GOOD_DATE);
    assert_eq!(
        error_text(&strict(), &raw, NOW),
        (
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
            "InvalidSignatureException"
        )
    );
    assert!(check(&lenient(), &raw, unix(NOW)).is_ok());
}

#[test]
fn an_unsigned_operation_is_invalid() {
    // A captured request whose signature leaves X-Amz-Target out could be replayed as another
    // operation on the same body: refused before the signature is even computed.
    let with_target = request(GOOD_AUTH, GOOD_DATE).replacen(
        "Host:",
        "X-Amz-Target:Kinesis_20131202.DeleteStream\nHost:",
        1,
    );
    assert_eq!(
        error_text(&strict(), &with_target, NOW),
        (
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
            "InvalidSignatureException"
        )
    );
    assert!(check(&lenient(), &with_target, unix(NOW)).is_ok());
    // Without the header there is nothing to sign, and the test vector still verifies.
    assert!(check(&strict(), &request(GOOD_AUTH, GOOD_DATE), unix(NOW)).is_ok());
}

#[test]
fn content_sha256_must_match_the_body() {
    let raw = "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Content-Sha256:UNSIGNED-PAYLOAD\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00\nX-Amz-Date:20150830T123600Z\n\n{}";
    assert_eq!(
        error_text(&strict(), raw, NOW),
        (
            "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned(),
            "InvalidSignatureException"
        )
    );
}

#[test]
fn wrong_signatures_do_not_match() {
    let expected_text = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    for signature in ["Signature=0000", "Signature=zz", "Signature=5fa00fa3"] {
        let auth = GOOD_AUTH.replace(
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            signature,
        );
        let raw = request(&auth, GOOD_DATE);
        assert_eq!(
            error_text(&strict(), &raw, NOW),
            (expected_text.to_owned(), "InvalidSignatureException")
        );
        assert!(check(&lenient(), &raw, unix(NOW)).is_ok());
    }
    // Hex digits are case-insensitive, as in AWS's comparison of decoded bytes.
    let upper = GOOD_AUTH.replace(
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "5FA00FA31553B73EBF1942676E86291E8372FF2A2260956D9B8AAE1D763FBF31",
    );
    assert!(check(&strict(), &request(&upper, GOOD_DATE), unix(NOW)).is_ok());
}

#[test]
fn clock_skew_window_is_inclusive_at_both_edges() {
    let raw = request(GOOD_AUTH, GOOD_DATE);
    let window = 15 * 60;
    assert!(check(&strict(), &raw, unix(NOW + window)).is_ok());
    assert!(check(&strict(), &raw, unix(NOW - window)).is_ok());
    assert_eq!(
        error_text(&strict(), &raw, NOW + window + 1),
        (
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)".to_owned(),
            "InvalidSignatureException"
        )
    );
    assert_eq!(
        error_text(&strict(), &raw, NOW - window - 1),
        (
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T122059Z + 15 min.)".to_owned(),
            "InvalidSignatureException"
        )
    );
    // Accept-any ignores the clock entirely.
    assert!(check(&lenient(), &raw, unix(NOW + 86_400)).is_ok());
}

#[test]
fn clock_skew_window_is_configurable() {
    let raw = request(GOOD_AUTH, GOOD_DATE);
    let five_minutes = strict().with_max_clock_skew(Duration::from_secs(300));
    let error = check(&five_minutes, &raw, unix(NOW + 301)).unwrap_err();
    assert_eq!(
        error,
        SigV4Error::SignatureExpired {
            request_time: "20150830T123600Z".to_owned(),
            earliest_allowed: "20150830T123601Z".to_owned(),
            server_time: "20150830T124101Z".to_owned(),
            window_minutes: 5,
        }
    );
    assert!(error.to_string().ends_with("(20150830T124101Z - 5 min.)"));
    assert!(check(&five_minutes, &raw, unix(NOW + 300)).is_ok());
}

#[test]
fn expiry_is_checked_before_the_key_and_signature() {
    let auth = GOOD_AUTH
        .replace("AKIDEXAMPLE", "AKIDOTHER")
        .replace("Signature=5", "Signature=6");
    let error = check(&strict(), &request(&auth, GOOD_DATE), unix(NOW + 3600)).unwrap_err();
    assert!(
        matches!(error, SigV4Error::SignatureExpired { .. }),
        "{error:?}"
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let raw = request(
        &GOOD_AUTH.replace("Authorization:", "AUTHORIZATION:"),
        &GOOD_DATE.replace("X-Amz-Date", "x-amz-date"),
    )
    .replace("Host:", "hOST:");
    assert!(check(&strict(), &raw, unix(NOW)).is_ok());
}

#[test]
fn every_variant_has_an_aws_name_and_status_400() {
    let variants = [
        (
            SigV4Error::MissingAuthenticationToken,
            "MissingAuthenticationTokenException",
        ),
        (
            SigV4Error::IncompleteSignature {
                message: String::new(),
            },
            "IncompleteSignatureException",
        ),
        (
            SigV4Error::UnrecognizedClient {
                access_key_id: String::new(),
            },
            "UnrecognizedClientException",
        ),
        (
            SigV4Error::InvalidSignature {
                message: String::new(),
            },
            "InvalidSignatureException",
        ),
        (
            SigV4Error::SignatureDoesNotMatch {
                canonical_request: String::new(),
                string_to_sign: String::new(),
            },
            "InvalidSignatureException",
        ),
        (
            SigV4Error::SignatureExpired {
                request_time: String::new(),
                earliest_allowed: String::new(),
                server_time: String::new(),
                window_minutes: 15,
            },
            "InvalidSignatureException",
        ),
        (
            SigV4Error::SignatureNotYetCurrent {
                request_time: String::new(),
                latest_allowed: String::new(),
                server_time: String::new(),
                window_minutes: 15,
            },
            "InvalidSignatureException",
        ),
    ];
    for (error, name) in variants {
        assert_eq!(error.aws_name(), name);
        assert_eq!(error.http_status(), 400);
    }
}

#[test]
fn credentials_debug_output_hides_secrets() {
    let credentials = Credentials::from_iter([("AKID2", "secret-two"), ("AKID1", "secret-one")]);
    let shown = format!("{:?}", Mode::Verify(credentials));
    assert!(shown.contains("[\"AKID1\", \"AKID2\"]"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}
