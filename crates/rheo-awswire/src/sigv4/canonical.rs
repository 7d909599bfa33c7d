//! The SigV4 computation proper: canonical request, string to sign, signing key, signature.
//!
//! Rules for services other than S3 (which is the only service with different ones):
//! - URI: the path as received (already percent-encoded once by the client) has its dot
//!   segments and repeated slashes removed, then every byte outside `A-Za-z0-9-._~/` is
//!   percent-encoded again. Hence "double encoding": a client that sent `/%20` signed
//!   `/%2520`.
//! - Query: each `name=value` is percent-decoded and re-encoded with the same unreserved
//!   set (`/` included in the encoding), then the pairs are sorted by name, then value.
//! - Headers: only those in `SignedHeaders`, lowercased, in that order; each value trimmed
//!   with inner runs of whitespace collapsed to one space; repeated headers joined by `,`.
//! - Payload: the `X-Amz-Content-Sha256` value if the client sent one, else the hex SHA-256
//!   of the body.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The request fields the canonical request is built from.
#[derive(Debug)]
pub(crate) struct CanonicalInput<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: &'a [(&'a str, &'a [u8])],
    pub(crate) signed_headers: &'a str,
    pub(crate) payload_hash: &'a str,
}

/// The canonical request as bytes (header values need not be UTF-8).
pub(crate) fn canonical_request(input: &CanonicalInput<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(input.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(input.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(input.query).as_bytes());
    out.push(b'\n');
    let names: Vec<String> = input
        .signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    for name in &names {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        append_header_values(&mut out, name, input.headers);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(names.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(input.payload_hash.as_bytes());
    out
}

/// `AWS4-HMAC-SHA256\n<time>\n<scope>\n<hex sha256 of canonical request>`.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request)
    )
}

/// The HMAC chain `"AWS4" + secret` -> date -> region -> service -> `aws4_request`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let date_key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let region_key = hmac_sha256(&date_key, region.as_bytes());
    let service_key = hmac_sha256(&region_key, service.as_bytes());
    hmac_sha256(&service_key, b"aws4_request")
}

/// Compares `HMAC(signing_key, string_to_sign)` with a hex signature in constant time
/// (the length and hex validity of the claimed signature are not secret).
pub(crate) fn signature_matches(
    signing_key: &[u8],
    string_to_sign: &str,
    claimed_hex: &str,
) -> bool {
    let Some(claimed) = decode_hex(claimed_hex) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(signing_key).expect("hmac accepts any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&claimed).is_ok()
}

/// The signature a client would send: hex of `HMAC(signing_key, string_to_sign)`.
#[cfg(test)]
pub(crate) fn signature_hex(signing_key: &[u8], string_to_sign: &str) -> String {
    hex(&hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Lowercase hex of the SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Appends the canonical value of header `name`: every occurrence trimmed and collapsed,
/// joined by commas. A signed header the request lacks contributes an empty value, which
/// makes the signature mismatch rather than fail differently.
fn append_header_values(out: &mut Vec<u8>, name: &str, headers: &[(&str, &[u8])]) {
    let occurrences = headers
        .iter()
        .filter(|(header_name, _)| header_name.eq_ignore_ascii_case(name));
    for (index, (_, value)) in occurrences.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let words = value
            .split(u8::is_ascii_whitespace)
            .filter(|word| !word.is_empty());
        for (word_index, word) in words.enumerate() {
            if word_index > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(word);
        }
    }
}

/// Normalised and re-encoded path; see the module header.
pub(crate) fn canonical_uri(path: &str) -> String {
    let normalized = remove_dot_segments(path);
    percent_encode(normalized.as_bytes(), true)
}

/// Removes `.` and `..` segments and empty segments (repeated slashes), keeping a leading
/// and a trailing slash; the empty path becomes `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Sorted, re-encoded query; see the module header.
pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_encode(&percent_decode(name), false),
                percent_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    encoded.join("&")
}

/// Encodes every byte outside the RFC 3986 unreserved set (and `/` when `keep_slash`).
fn percent_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is. `+` is kept:
/// SigV4 clients encode spaces as `%20`.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = if bytes[index] == b'%' && index + 2 < bytes.len() {
            hex_value(bytes[index + 1]).zip(hex_value(bytes[index + 2]))
        } else {
            None
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_then_encoded_again() {
        for (path, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("//example//", "/example/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("/../..", "/"),
            ("/a/./b/../c/", "/a/c/"),
            ("/example space/", "/example%20space/"),
            ("/%20/foo", "/%2520/foo"),
            ("/%E1%88%B4", "/%25E1%2588%25B4"),
            ("/\u{1234}", "/%E1%88%B4"),
            ("/-._~azAZ09", "/-._~azAZ09"),
        ] {
            assert_eq!(canonical_uri(path), expected, "{path:?}");
        }
    }

    #[test]
    fn queries_are_decoded_reencoded_and_sorted() {
        for (query, expected) in [
            ("", ""),
            ("Param2=value2&Param1=value1", "Param1=value1&Param2=value2"),
            ("b=2&a=1&A=0", "A=0&a=1&b=2"),
            ("a=2&a=1", "a=1&a=2"),
            ("key", "key="),
            ("x=a%20b&y=a+b", "x=a%20b&y=a%2Bb"),
            ("k=%e1%88%b4", "k=%E1%88%B4"),
            ("k=/?", "k=%2F%3F"),
            ("k=100%", "k=100%25"),
            ("&&k=v&", "k=v"),
        ] {
            assert_eq!(canonical_query(query), expected, "{query:?}");
        }
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        assert_eq!(hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(decode_hex("009FfF"), Some(vec![0x00, 0x9f, 0xff]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// get-vanilla end to end through the internal steps, against AWS's published
    /// canonical request, string to sign and signature.
    #[test]
    fn get_vanilla_steps_match_the_published_values() {
        let headers: [(&str, &[u8]); 2] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Date", b"20150830T123600Z"),
        ];
        let empty_hash = sha256_hex(b"");
        let canonical = canonical_request(&CanonicalInput {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            signed_headers: "host;x-amz-date",
            payload_hash: &empty_hash,
        });
        assert_eq!(
            String::from_utf8(canonical.clone()).unwrap(),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &canonical,
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        let expected = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert_eq!(signature_hex(&key, &to_sign), expected);
        assert!(signature_matches(&key, &to_sign, expected));
        assert!(!signature_matches(
            &key,
            &to_sign,
            &expected.replace('5', "6")
        ));
    }

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined() {
        let headers: [(&str, &[u8]); 4] = [
            ("My-Header", b"  a   b\tc  "),
            ("other", b"x"),
            ("my-header", b"second"),
            ("MY-HEADER", b""),
        ];
        let mut out = Vec::new();
        append_header_values(&mut out, "my-header", &headers);
        assert_eq!(out, b"a b c,second,");
    }

    /// AWS's documented signing-key example (secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`,
    /// 20120215, us-east-1, iam).
    #[test]
    fn signing_key_matches_the_documented_derivation() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }
}
