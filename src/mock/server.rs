//! The HTTP side: the accept loop, routing, the faults that apply to every endpoint,
//! and the small discovery and JWKS endpoints.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::authorize::authorize;
use super::state::Shared;
use super::token::token;
use super::userinfo::{userinfo, whoami};
use super::util::{Resp, empty, json_response, method_not_allowed};
use super::{MockEndpoint, MockFault};

/// The scopes Hugging Face lists in its discovery document.
const SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "read-billing",
    "read-memberships",
    "read-repos",
    "gated-repos",
    "contribute-repos",
    "write-repos",
    "manage-repos",
    "read-collections",
    "write-collections",
    "inference-api",
    "read-endpoints",
    "write-endpoints",
    "jobs",
    "webhooks",
    "write-discussions",
];

/// Accepts connections until the task is aborted; aborting drops `connections`, which
/// aborts every connection task with it.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await.map(Full::new)) }
                    });
                    // A client hanging up mid-request is not the mock's problem.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts the request, applies endpoint faults, and routes it.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    let Some(endpoint) = MockEndpoint::from_path(req.uri().path()) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "Sorry, we can't find the page you are looking for."}),
        );
    };
    shared.count(endpoint);
    let picked_to_fail = shared.fails_one_in(endpoint);
    let faults = shared.faults();
    let response = match before_handling(endpoint, &faults, picked_to_fail).await {
        Some(response) => response,
        None => route(shared, &faults, endpoint, req).await,
    };
    rewrite_body(endpoint, &faults, response)
}

/// Delays, then answers for the endpoint if a `FailOneIn` fault picked this request
/// (`picked_to_fail`) or a `Redirect` or `Status` fault says so.
async fn before_handling(
    endpoint: MockEndpoint,
    faults: &[MockFault],
    picked_to_fail: bool,
) -> Option<Resp> {
    for fault in faults {
        if let MockFault::Delay { endpoint: e, delay } = fault
            && *e == endpoint
        {
            tokio::time::sleep(*delay).await;
        }
    }
    if picked_to_fail {
        return Some(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "error": "temporarily_unavailable",
                "error_description": "mock fault: one request in n fails, and this is one",
            }),
        ));
    }
    faults.iter().find_map(|fault| match fault {
        MockFault::Redirect {
            endpoint: e,
            location,
        } if *e == endpoint => {
            let mut response = empty(StatusCode::FOUND);
            let location =
                HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
            response.headers_mut().insert(header::LOCATION, location);
            Some(response)
        }
        MockFault::Status {
            endpoint: e,
            status,
        } if *e == endpoint => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(json_response(
                status,
                &json!({
                    "error": "server_error",
                    "error_description": format!("mock fault: status {}", status.as_u16()),
                }),
            ))
        }
        _ => None,
    })
}

/// Applies `NotJson` and `Oversized` faults to a finished response.
fn rewrite_body(endpoint: MockEndpoint, faults: &[MockFault], mut response: Resp) -> Resp {
    for fault in faults {
        match fault {
            MockFault::NotJson { endpoint: e } if *e == endpoint => {
                *response.body_mut() = Bytes::from_static(
                    b"<!DOCTYPE html><html><body><h1>Mock fault: not JSON</h1></body></html>",
                );
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
            MockFault::Oversized { endpoint: e, bytes } if *e == endpoint => {
                let padded = pad(response.body(), *bytes);
                *response.body_mut() = padded;
            }
            _ => {}
        }
    }
    response
}

/// `body` grown to `size` bytes: a JSON object gets a leading `mock_padding` member,
/// anything else trailing spaces.
fn pad(body: &Bytes, size: usize) -> Bytes {
    const KEY: &[u8] = b"{\"mock_padding\":\"";
    let is_object = body.first() == Some(&b'{');
    let rest = body.get(1..).unwrap_or_default();
    let empty_object = is_object && rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    // `{"mock_padding":"` + filler + `",` + rest (or `"}` for an empty object).
    let overhead = KEY.len() + 2 + if empty_object { 0 } else { rest.len() };
    if !is_object || size < overhead {
        let mut out = body.to_vec();
        out.resize(size.max(body.len()), b' ');
        return out.into();
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(KEY);
    out.resize(size - overhead + KEY.len(), b'a');
    if empty_object {
        out.extend_from_slice(b"\"}");
    } else {
        out.extend_from_slice(b"\",");
        out.extend_from_slice(rest);
    }
    out.into()
}

/// Dispatches to the endpoint's handler by method.
async fn route(
    shared: &Shared,
    faults: &[MockFault],
    endpoint: MockEndpoint,
    req: Request<Incoming>,
) -> Resp {
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match endpoint {
        MockEndpoint::Discovery if get => discovery(shared, faults),
        MockEndpoint::Authorize if get => authorize(shared, faults, req.uri().query()),
        MockEndpoint::Token if method == Method::POST => token(shared, faults, req).await,
        MockEndpoint::Userinfo if get || method == Method::POST => {
            userinfo(shared, faults, req.headers())
        }
        MockEndpoint::Jwks if get => jwks(shared),
        MockEndpoint::WhoAmI if get => whoami(shared, req.headers()),
        MockEndpoint::Token => method_not_allowed("POST"),
        MockEndpoint::Userinfo => method_not_allowed("GET, POST"),
        _ => method_not_allowed("GET"),
    }
}

/// The OpenID Provider metadata, with Hugging Face's values.
fn discovery(shared: &Shared, faults: &[MockFault]) -> Resp {
    let base = &shared.config.issuer;
    let issuer = faults
        .iter()
        .rev()
        .find_map(|f| match f {
            MockFault::DiscoveryIssuer(issuer) => Some(issuer.clone()),
            _ => None,
        })
        .unwrap_or_else(|| base.clone());
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/oauth/authorize"),
            "token_endpoint": format!("{base}/oauth/token"),
            "userinfo_endpoint": format!("{base}/oauth/userinfo"),
            "jwks_uri": format!("{base}/oauth/jwks"),
            "device_authorization_endpoint": format!("{base}/oauth/device"),
            "registration_endpoint": format!("{base}/oauth/register"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": [
                "iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "name",
                "preferred_username", "picture", "profile", "website", "email",
                "email_verified", "isPro", "canPay", "orgs",
            ],
            "authorization_response_iss_parameter_supported": shared.config.strict.iss,
        }),
    )
}

/// The JWKS: only the current key.
fn jwks(shared: &Shared) -> Resp {
    let key = shared.current_key();
    json_response(StatusCode::OK, &json!({ "keys": [key.jwk()] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_json_valid_and_hits_the_size() {
        let padded = pad(&Bytes::from_static(br#"{"a":1}"#), 1000);
        assert_eq!(padded.len(), 1000);
        let value: serde_json::Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(value["a"], 1);
        let padded = pad(&Bytes::from_static(b"{}"), 100);
        assert_eq!(padded.len(), 100);
        assert!(serde_json::from_slice::<serde_json::Value>(&padded).is_ok());
    }
}
