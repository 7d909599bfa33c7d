//! Known-answer tests: requests signed by others, which the verifier must accept, and the
//! same requests tampered with, which it must refuse.
//!
//! Sources of the fixtures (values reused, code not):
//! - AWS's SigV4 test suite (2015 edition, as shipped in awslabs/aws-c-auth
//!   `tests/aws-signing-test-suite/v4/*/header-signed-request.txt`): key `AKIDEXAMPLE`,
//!   secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, us-east-1, service `service`,
//!   20150830T123600Z.
//! - The 2011 edition as kept by botocore (`tests/unit/auth/aws4_testsuite/get-utf8.*`,
//!   `get-space.*`), whose canonical requests show the double encoding of an already
//!   encoded path and which sign `Date` rather than `X-Amz-Date`; service `host`.
//! - Kinesis PutRecord requests signed offline with botocore 1.43.11
//!   `botocore.auth.SigV4Auth(Credentials('AKIDRHEOTEST', 'rheo/secret+KEY/for-tests'[,
//!   token]), 'kinesis', 'eu-west-1')` with `botocore.auth.get_current_datetime` patched to
//!   return 2024-01-15T09:30:00; headers copied from the signed `AWSRequest`, plus the
//!   `Host`, `Content-Length` and `User-Agent` the HTTP layer adds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::tests::{check, unix};
use super::{Credentials, Mode, SigV4Error, Verifier};

const SUITE_KEY: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_verifier(service: &str) -> Verifier {
    Verifier::new(Mode::Verify(Credentials::from_iter([(
        SUITE_KEY,
        SUITE_SECRET,
    )])))
    .with_service(service)
}

fn suite_2015_now() -> SystemTime {
    unix(1_440_938_160) // 20150830T123600Z
}

/// Header-signed requests of the 2015 suite, verbatim apart from line endings.
const SUITE_2015: &[(&str, &str)] = &[
    (
        "get-vanilla",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-vanilla-empty-query-key",
        "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-header-value-trim",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-header-key-duplicate",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-utf8",
        "GET /\u{1234} HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-space-normalized",
        "GET /example space/ HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-slashes-normalized",
        "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-relative-relative-normalized",
        "GET /example1/example2/../.. HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\nX-Amz-Date:20150830T123600Z\n\n",
    ),
    (
        "get-vanilla-with-session-token",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\n",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nContent-Length:13\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
    ),
];

#[test]
fn aws_2015_suite_requests_are_accepted() {
    let verifier = suite_verifier("service");
    for (name, raw) in SUITE_2015 {
        let authenticated = check(&verifier, raw, suite_2015_now())
            .unwrap_or_else(|error| panic!("{name}: {error:?}"));
        assert_eq!(authenticated.access_key_id, SUITE_KEY, "{name}");
        assert_eq!(authenticated.region, "us-east-1", "{name}");
        assert!(authenticated.signature_verified, "{name}");
    }
}

#[test]
fn aws_2015_suite_session_token_is_returned() {
    let (_, raw) = SUITE_2015
        .iter()
        .find(|(name, _)| *name == "get-vanilla-with-session-token")
        .unwrap();
    let authenticated = check(&suite_verifier("service"), raw, suite_2015_now()).unwrap();
    assert_eq!(
        authenticated.security_token.as_deref(),
        Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267")
    );
}

#[test]
fn aws_2015_suite_requests_fail_when_any_signed_part_changes() {
    let verifier = suite_verifier("service");
    let tamperings = [
        ("Host:example.amazonaws.com", "Host:example.amazonaws.org"),
        ("GET /", "GET /x/"),
        ("value1", "value3"),
        ("Signature=5", "Signature=6"),
        ("X-Amz-Date:20150830T123600Z", "X-Amz-Date:20150830T123601Z"),
    ];
    for (name, raw) in SUITE_2015 {
        for (from, to) in tamperings {
            if !raw.contains(from) {
                continue;
            }
            let tampered = raw.replacen(from, to, 1);
            let result = check(&verifier, &tampered, suite_2015_now());
            // A changed body first fails the X-Amz-Content-Sha256 check.
            assert!(
                matches!(
                    result,
                    Err(SigV4Error::SignatureDoesNotMatch { .. }
                        | SigV4Error::InvalidSignature { .. })
                ),
                "{name} with {from:?} -> {to:?}: {result:?}"
            );
        }
    }
}

#[test]
fn aws_2015_suite_fails_for_another_service_name() {
    let (_, raw) = SUITE_2015[0];
    let error = check(&suite_verifier("kinesis"), raw, suite_2015_now()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Credential should be scoped to correct service: 'kinesis'."
    );
}

/// The mismatch error carries the canonical request, which for get-vanilla is AWS's
/// published `header-canonical-request.txt`.
#[test]
fn mismatch_reports_the_published_canonical_request() {
    let (_, raw) = SUITE_2015[0];
    let tampered = raw.replacen("Signature=5", "Signature=6", 1);
    let Err(SigV4Error::SignatureDoesNotMatch {
        canonical_request,
        string_to_sign,
    }) = check(&suite_verifier("service"), &tampered, suite_2015_now())
    else {
        panic!("expected a signature mismatch");
    };
    assert_eq!(
        canonical_request,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
}

/// botocore's 2011 vectors: wire paths already encoded (so signed double-encoded) and a
/// `Date` header instead of `X-Amz-Date`.
#[test]
fn botocore_2011_suite_double_encodes_and_signs_the_date_header() {
    let verifier = suite_verifier("host");
    let now = unix(1_315_611_360); // 20110909T233600Z
    for (path, signature) in [
        (
            "/%E1%88%B4",
            "57b1eb3df3b16a8479c0097b66c0b261cfd65b829419a3f2c3d05319722490b8",
        ),
        (
            "/%20/foo",
            "2be9e587d1ee1f0fd02128724b86b4358ba3630d39f493b6e06610a19a50779e",
        ),
    ] {
        let raw = format!(
            "GET {path} HTTP/1.1\nDate:Mon, 09 Sep 2011 23:36:00 GMT\nHost:host.foo.com\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature={signature}\n\n"
        );
        let result = check(&verifier, &raw, now);
        assert!(result.is_ok(), "{path}: {result:?}");
    }
}

const BOTOCORE_BODY: &str = r#"{"StreamName":"orders","Data":"aGVsbG8=","PartitionKey":"pk-1"}"#;

fn botocore_verifier() -> Verifier {
    Verifier::new(Mode::Verify(Credentials::from_iter([(
        "AKIDRHEOTEST",
        "rheo/secret+KEY/for-tests",
    )])))
}

fn botocore_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_705_311_000) // 20240115T093000Z
}

/// botocore's PutRecord against a local endpoint, as Rheo receives it.
fn botocore_local_request(body: &str) -> String {
    format!(
        "POST / HTTP/1.1\nHost:localhost:4567\nAccept-Encoding:identity\nUser-Agent:Boto3/1.34.0 md/Botocore#1.43.11\nContent-Type:application/x-amz-json-1.1\nX-Amz-Target:Kinesis_20131202.PutRecord\nX-Amz-Date:20240115T093000Z\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDRHEOTEST/20240115/eu-west-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=d6f23b77710fba4af0ffc310782a7952e010262997bae67c34e74bac273e8724\nContent-Length:{}\n\n{body}",
        body.len()
    )
}

/// The same call with temporary credentials against the AWS endpoint.
fn botocore_token_request(body: &str) -> String {
    format!(
        "POST / HTTP/1.1\nHost:kinesis.eu-west-1.amazonaws.com\nContent-Type:application/x-amz-json-1.1\nX-Amz-Target:Kinesis_20131202.PutRecord\nX-Amz-Date:20240115T093000Z\nX-Amz-Security-Token:FQoGZXIvYXdzEXAMPLETOKEN//+=\nAuthorization:AWS4-HMAC-SHA256 Credential=AKIDRHEOTEST/20240115/eu-west-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=6c7f326029ec53b36742b77c456bbe85202f1beff16ee00816ccc44f88303071\nContent-Length:{}\n\n{body}",
        body.len()
    )
}

#[test]
fn botocore_kinesis_requests_are_accepted() {
    let verifier = botocore_verifier();
    let local = check(
        &verifier,
        &botocore_local_request(BOTOCORE_BODY),
        botocore_now(),
    )
    .unwrap();
    assert_eq!(local.access_key_id, "AKIDRHEOTEST");
    assert_eq!(local.region, "eu-west-1");
    assert_eq!(local.security_token, None);
    assert!(local.signature_verified);

    let with_token = check(
        &verifier,
        &botocore_token_request(BOTOCORE_BODY),
        botocore_now(),
    )
    .unwrap();
    assert_eq!(
        with_token.security_token.as_deref(),
        Some("FQoGZXIvYXdzEXAMPLETOKEN//+=")
    );
}

#[test]
fn botocore_kinesis_request_with_a_tampered_body_is_refused() {
    let tampered_body = BOTOCORE_BODY.replace("pk-1", "pk-2");
    for raw in [
        botocore_local_request(&tampered_body),
        botocore_token_request(&tampered_body),
    ] {
        let error = check(&botocore_verifier(), &raw, botocore_now()).unwrap_err();
        assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }));
        assert_eq!(error.aws_name(), "InvalidSignatureException");
    }
}

#[test]
fn botocore_kinesis_request_with_tampered_signed_headers_is_refused() {
    let requests = [
        botocore_local_request(BOTOCORE_BODY),
        botocore_token_request(BOTOCORE_BODY),
    ];
    let tamperings = [
        ("PutRecord", "DeleteStream"),
        ("Host:localhost:4567", "Host:localhost:4568"),
        ("application/x-amz-json-1.1", "application/x-amz-cbor-1.1"),
        ("EXAMPLETOKEN", "EXAMPLETOKEn"),
        ("POST /", "POST /x"),
    ];
    for raw in &requests {
        for (from, to) in tamperings {
            if !raw.contains(from) {
                continue;
            }
            let result = check(
                &botocore_verifier(),
                &raw.replacen(from, to, 1),
                botocore_now(),
            );
            assert!(
                matches!(result, Err(SigV4Error::SignatureDoesNotMatch { .. })),
                "{from:?} -> {to:?}: {result:?}"
            );
        }
    }
}

#[test]
fn botocore_kinesis_request_ignores_unsigned_headers() {
    let raw = botocore_local_request(BOTOCORE_BODY)
        .replace("Boto3/1.34.0", "something-else")
        .replace(
            "Accept-Encoding:identity",
            "Accept-Encoding:gzip\nX-Unsigned:1",
        );
    assert!(check(&botocore_verifier(), &raw, botocore_now()).is_ok());
}

#[test]
fn botocore_kinesis_request_with_a_wrong_secret_is_refused() {
    let verifier = Verifier::new(Mode::Verify(Credentials::from_iter([(
        "AKIDRHEOTEST",
        "another secret",
    )])));
    let result = check(
        &verifier,
        &botocore_local_request(BOTOCORE_BODY),
        botocore_now(),
    );
    assert!(matches!(
        result,
        Err(SigV4Error::SignatureDoesNotMatch { .. })
    ));
}
