//! The Kinesis HTTP front end: `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`, in
//! AWS JSON 1.1 or CBOR 1.1, answered in the request's encoding, so unmodified AWS SDKs and
//! the AWS CLI work against Rheo by setting an endpoint URL.
//!
//! It is a thin adapter: every operation decodes its input, calls the handler the gRPC service
//! calls (`operations.rs`), and encodes the answer; SubscribeToShard streams
//! `application/vnd.amazon.eventstream` messages (`subscribe.rs`). Errors become
//! `{"__type", "message"}` in one place, `crate::error::WireError`. Every answer carries an
//! `x-amzn-RequestId`.

mod auth;
mod convert;
mod model;
mod operations;
mod records;
mod subscribe;
mod wire;

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rheo_streams::Store;

pub use auth::Authentication;
use wire::Format;

use crate::error::WireError;
use crate::ops::Ops;

/// The `X-Amz-Target` prefix of every Kinesis operation (API version 2013-12-02).
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// The largest request body accepted: a 10 MiB PutRecords grows by a third in base64.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What the Kinesis HTTP handler serves from: the store once it is open, the metrics, and how
/// requests are authenticated.
#[derive(Debug, Clone)]
pub(crate) struct KinesisHttp {
    pub(crate) store: Arc<OnceLock<Store>>,
    pub(crate) ops: Arc<Ops>,
    pub(crate) authentication: Arc<Authentication>,
    /// Deadline for receiving a request's body.
    pub(crate) body_timeout: Duration,
}

/// Serves one Kinesis HTTP request.
pub(crate) async fn handle(http: KinesisHttp, request: Request) -> Response {
    if is_grpc(request.headers()) {
        // A gRPC call to a method no service has lands here, as the router's fallback.
        let path = request.uri().path().to_owned();
        return tonic::Status::unimplemented(format!("no gRPC method at {path}")).into_http();
    }
    let request_id = request_id();
    let format = Format::from_content_type(
        request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
    );
    let mut response = match serve(&http, format, request).await {
        Ok(response) => response,
        Err(error) => error_response(format, &error),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

async fn serve(
    http: &KinesisHttp,
    format: Format,
    request: Request,
) -> Result<Response, WireError> {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return Err(WireError::access_denied(format!(
            "Unable to determine service/operation name to be authorized for method {}",
            parts.method
        )));
    }
    let body = tokio::time::timeout(
        http.body_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await
    .map_err(|_| WireError::body_timeout(http.body_timeout))?
    .map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            WireError::too_large(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        } else {
            // A body cut short (the connection closed before Content-Length bytes came) or
            // otherwise unreadable: the client's request is incomplete, not too large.
            WireError::serialization(format!("the request body could not be read: {error}"))
        }
    })?;
    let operation = target_operation(&parts.headers)?;
    http.authentication.check(&parts, &body)?;
    let store = http
        .store
        .get()
        .ok_or_else(|| WireError::from_domain(crate::service::not_open()))?;
    if operation == "SubscribeToShard" {
        return subscribe::subscribe(store, &http.ops, format, &body).await;
    }
    let started = Instant::now();
    let answer = operations::call(store, operation, format, &body).await;
    http.ops
        .observe_request(operation, started.elapsed().as_secs_f64());
    let body = answer?;
    Ok(ok_response(format, body.unwrap_or_default()))
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// The operation named by `X-Amz-Target`, if Rheo serves it.
fn target_operation(headers: &HeaderMap) -> Result<&'static str, WireError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let Some(name) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(WireError::unknown_operation(if target.is_empty() {
            "the request has no X-Amz-Target header naming a Kinesis_20131202 operation".into()
        } else {
            format!("X-Amz-Target '{target}' names no Kinesis_20131202 operation")
        }));
    };
    operations::known(name).ok_or_else(|| {
        WireError::unknown_operation(format!("operation {name} is not served by Rheo"))
    })
}

fn ok_response(format: Format, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from(body),
    )
        .into_response()
}

/// `{"__type": ..., "message": ...}` in the request's encoding.
fn error_response(format: Format, error: &WireError) -> Response {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        #[serde(rename = "__type")]
        kind: &'a str,
        message: &'a str,
    }
    let body = format.encode(&ErrorBody {
        kind: error.name,
        message: &error.message,
    });
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from(body),
    )
        .into_response()
}

/// A random request id in the UUID form AWS uses.
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Request ids only label log lines and answers; a fixed one is better than none.
        return "00000000-0000-4000-8000-000000000000".into();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        let _ = write!(id, "{byte:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_have_the_uuid_v4_shape() {
        let id = super::request_id();
        assert_eq!(id.len(), 36, "{id}");
        for (index, c) in id.char_indices() {
            if matches!(index, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{id}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{id}");
            }
        }
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert_ne!(super::request_id(), id);
    }
}
