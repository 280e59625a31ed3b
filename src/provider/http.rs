//! The HTTP plumbing every provider call shares: sending, the body size cap, JSON
//! parsing with safe error messages, and OAuth error bodies.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::error::ProviderError;
use crate::id_token::printable;
use crate::observe;

/// Longest OAuth `error_description` kept, in characters.
const MAX_DESCRIPTION: usize = 200;

/// Longest OAuth `error` code kept, in characters.
const MAX_ERROR_CODE: usize = 64;

/// Longest `Retry-After` passed on: a provider asking for more is treated as asking for
/// this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// A response read completely (within the cap).
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The `Retry-After` of a 429 or 503 answer.
    pub(crate) retry_after: Option<Duration>,
}

/// Sends the request and reads the answer, refusing redirects and bodies over `limit`,
/// in an `hf_auth.provider` span (counted with feature `metrics`).
pub(crate) async fn fetch(
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, ProviderError> {
    let step = observe::provider_span(endpoint);
    let result = fetch_here(endpoint, request, limit)
        .instrument(step.span().clone())
        .await;
    let (status, failure) = match &result {
        Ok(fetched) => (Some(fetched.status), None),
        Err(err) => (err.status(), Some(err.kind_code())),
    };
    observe::provider_done(&step, endpoint, status, failure);
    result
}

async fn fetch_here(
    endpoint: &'static str,
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Fetched, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(endpoint, e))?;
    let status = response.status();
    // The call's `hf_auth.provider` span (the current one) gets the status now, before
    // the body is read (which may still fail).
    tracing::Span::current().record("status", status.as_u16());
    tracing::debug!(endpoint, status = status.as_u16(), "provider answered");
    if status.is_redirection() {
        return Err(ProviderError::Redirect { endpoint, status });
    }
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| printable(v, 100));
    let retry_after =
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
    let body = read_capped(endpoint, response, limit).await?;
    Ok(Fetched {
        status,
        content_type,
        body,
        retry_after,
    })
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (IMF-fixdate) turned into the
/// time left until it. Capped at a day; unparseable values are `None`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is "a very long time".
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = UNIX_EPOCH + Duration::from_secs(super::date::parse_http_date(value)?);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Reads the body chunk by chunk, failing as soon as it exceeds `limit` bytes (and
/// before reading anything when `Content-Length` already says so).
pub(crate) async fn read_capped(
    endpoint: &'static str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = || ProviderError::ResponseTooLarge { endpoint, limit };
    let declared = response.content_length();
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |len| len as usize).min(limit));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(endpoint, e))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Classifies a reqwest error; the URL is dropped (the endpoint name says enough).
pub(crate) fn transport_error(endpoint: &'static str, err: reqwest::Error) -> ProviderError {
    let err = err.without_url();
    if err.is_timeout() {
        ProviderError::Timeout { endpoint }
    } else if err.is_connect() {
        ProviderError::Connect {
            endpoint,
            source: Arc::new(err),
        }
    } else {
        ProviderError::Transport {
            endpoint,
            source: Arc::new(err),
        }
    }
}

/// Parses a JSON body. Error messages say what is wrong without quoting the body: a
/// response can hold tokens.
pub(crate) fn parse_json<T: DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|err| ProviderError::InvalidResponse {
        endpoint,
        reason: json_error_reason(&err, content_type),
    })
}

fn json_error_reason(err: &serde_json::Error, content_type: Option<&str>) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", err.line(), err.column());
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => match content_type {
            Some(ct) if !is_json_content_type(ct) => {
                format!("expected JSON, got a response of type `{ct}`")
            }
            _ => format!("the response is not valid JSON ({at})"),
        },
        Category::Data => {
            // serde's "missing field `x`" names our own field; other data errors can
            // quote values from the body, so they are summarised.
            let message = err.to_string();
            match message.split(" at line ").next() {
                Some(missing) if missing.starts_with("missing field") => missing.to_owned(),
                _ => format!("the JSON response has an unexpected shape ({at})"),
            }
        }
    }
}

fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// An OAuth error body (RFC 6749 5.2).
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

/// The error for a non-success answer: an OAuth error when the body is one, otherwise
/// the bare status.
pub(crate) fn error_for_status(endpoint: &'static str, fetched: &Fetched) -> ProviderError {
    match serde_json::from_slice::<OAuthErrorBody>(&fetched.body) {
        Ok(body) if !body.error.is_empty() => ProviderError::OAuth {
            endpoint,
            status: fetched.status,
            error: printable(&body.error, MAX_ERROR_CODE),
            description: body
                .error_description
                .map(|d| printable(&d, MAX_DESCRIPTION))
                .filter(|d| !d.is_empty()),
            retry_after: fetched.retry_after,
        },
        _ => ProviderError::Status {
            endpoint,
            status: fetched.status,
            retry_after: fetched.retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot server that answers any request with `head` and then `body_len` bytes.
    async fn serve_once(head: String, body_len: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 16 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = chunk.len().min(body_len - sent);
                if socket.write_all(&chunk[..n]).await.is_err() {
                    return; // the client stopped reading: expected for oversized bodies
                }
                sent += n;
            }
        });
        format!("http://{addr}/")
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    #[tokio::test]
    async fn body_over_the_cap_is_refused_by_content_length() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n".into(),
            0,
        )
        .await;
        let err = fetch("jwks", client().get(url), 1024).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::ResponseTooLarge { limit: 1024, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn streamed_body_over_the_cap_is_cut_off() {
        // No Content-Length: the body runs until the connection closes.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".into(),
            4 * 1024 * 1024,
        )
        .await;
        let err = fetch("jwks", client().get(url), 64 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::ResponseTooLarge { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn body_within_the_cap_is_read() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 1024\r\n\r\n".into(),
            1024,
        )
        .await;
        let fetched = fetch("jwks", client().get(url), 1024).await.unwrap();
        assert_eq!(fetched.body.len(), 1024);
    }

    #[tokio::test]
    async fn redirects_are_errors() {
        let url = serve_once(
            "HTTP/1.1 302 Found\r\nlocation: https://evil.example/\r\ncontent-length: 0\r\n\r\n"
                .into(),
            0,
        )
        .await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let err = fetch("token", client.get(url), 1024).await.unwrap_err();
        assert!(matches!(err, ProviderError::Redirect { .. }), "{err}");
    }

    #[tokio::test]
    async fn retry_after_is_kept_for_429_and_503_only() {
        for (status, expected) in [
            ("429 Too Many Requests", Some(Duration::from_secs(7))),
            ("503 Service Unavailable", Some(Duration::from_secs(7))),
            ("500 Internal Server Error", None),
        ] {
            let url = serve_once(
                format!("HTTP/1.1 {status}\r\nretry-after: 7\r\ncontent-length: 0\r\n\r\n"),
                0,
            )
            .await;
            let fetched = fetch("whoami", client().get(url), 1024).await.unwrap();
            assert_eq!(fetched.retry_after, expected, "{status}");
            assert_eq!(
                error_for_status("whoami", &fetched).retry_after(),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        for bad in ["", "-1", "1.5", "soon"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn json_errors_never_quote_the_body() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Token {
            access_token: String,
        }
        let err = parse_json::<Token>("token", br#"{"access_token": ["hf_oauth_secret"]}"#, None)
            .unwrap_err();
        assert!(!err.to_string().contains("hf_oauth_secret"), "{err}");
        let err =
            parse_json::<Token>("token", br#"{"token": "hf_oauth_secret"}"#, None).unwrap_err();
        assert!(
            err.to_string().contains("missing field `access_token`"),
            "{err}"
        );
        assert!(!err.to_string().contains("hf_oauth_secret"), "{err}");
        let err = parse_json::<Token>("token", b"<html>hf_oauth_secret</html>", Some("text/html"))
            .unwrap_err();
        assert!(err.to_string().contains("text/html"), "{err}");
        assert!(!err.to_string().contains("hf_oauth_secret"), "{err}");
    }

    #[test]
    fn oauth_errors_are_extracted_and_sanitised() {
        let long = format!("bad\ncode\u{1b}[31m {}", "x".repeat(1000));
        let fetched = Fetched {
            status: StatusCode::BAD_REQUEST,
            content_type: Some("application/json".into()),
            body: serde_json::json!({"error": "invalid_grant", "error_description": long})
                .to_string()
                .into_bytes(),
            retry_after: None,
        };
        let ProviderError::OAuth {
            error, description, ..
        } = error_for_status("token", &fetched)
        else {
            panic!("expected an OAuth error");
        };
        assert_eq!(error, "invalid_grant");
        let description = description.unwrap();
        assert!(description.chars().count() <= MAX_DESCRIPTION + 1);
        assert!(!description.chars().any(char::is_control));

        let plain = Fetched {
            status: StatusCode::BAD_GATEWAY,
            content_type: None,
            body: b"upstream down".to_vec(),
            retry_after: None,
        };
        assert!(matches!(
            error_for_status("token", &plain),
            ProviderError::Status { .. }
        ));
    }
}
