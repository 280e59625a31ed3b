//! Provider tests against a tiny scripted HTTP server on a real socket.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::id_token::tests::{NONCE, NOW, good_claims, jwk, rsa_key, sign};

const CLIENT_ID: &str = "client-123";
const SECRET: &str = "s3cret/+";

#[derive(Debug)]
struct FixedClock(u64);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// An answer: status, JSON (or other) body, optional delay before answering.
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    extra_headers: String,
}

impl Reply {
    fn json(body: Value) -> Self {
        Self::status(200, body)
    }

    fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
            extra_headers: String::new(),
        }
    }

    fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A scripted provider: the handler gets each request and how often its path was hit.
struct Server {
    issuer: String,
    seen: Arc<StdMutex<Vec<Seen>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<StdMutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let hits = {
                        let mut log = log.lock().unwrap();
                        log.push(request.clone());
                        log.iter().filter(|r| r.path == request.path).count()
                    };
                    let reply = handler(&request, hits);
                    tokio::time::sleep(reply.delay).await;
                    let head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n{}\r\n",
                        reply.status,
                        reply.body.len(),
                        reply.extra_headers
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(reply.body.as_bytes()).await;
                });
            }
        });
        Self { issuer, seen }
    }

    fn hits(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    fn last(&self, path: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
            .expect("request seen")
    }

    fn settings(&self) -> ProviderSettings {
        let mut settings = ProviderSettings::new(&self.issuer.clone(), CLIENT_ID).unwrap();
        settings.client_secret = Some(Secret::new(SECRET));
        settings.clock = Arc::new(FixedClock(NOW));
        settings
    }

    fn provider(&self) -> Provider {
        Provider::new(self.settings())
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Some(Seen {
        path,
        headers,
        body,
    })
}

fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "scopes_supported": ["openid", "profile"],
    })
}

const DISCOVERY: &str = "/.well-known/openid-configuration";

/// A server answering discovery and whatever `rest` answers.
async fn provider_server(rest: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
    let issuer = Arc::new(OnceLock::<String>::new());
    let for_handler = issuer.clone();
    let server = Server::start(move |req, hits| {
        if req.path == DISCOVERY {
            let issuer = for_handler.get().expect("issuer set");
            Reply::json(discovery(issuer))
        } else {
            rest(req, hits)
        }
    })
    .await;
    issuer.set(server.issuer.clone()).unwrap();
    server
}

fn token_reply() -> Reply {
    Reply::json(json!({
        "access_token": "hf_oauth_abc",
        "token_type": "bearer",
        "expires_in": 28800,
        "scope": "openid profile",
        "id_token": "eyJ.fake.token",
        "refresh_token": "rt_1",
    }))
}

fn id_token(server: &Server, key: usize, kid: &str) -> String {
    let mut claims = good_claims();
    claims["iss"] = json!(server.issuer);
    claims["aud"] = json!(CLIENT_ID);
    sign(rsa_key(key), &json!({"alg": "RS256", "kid": kid}), &claims)
}

#[test]
fn provider_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Provider>();
    assert_send_sync::<ProviderError>();
}

#[test]
fn settings_reject_an_insecure_issuer() {
    assert!(matches!(
        ProviderSettings::new("http://huggingface.co", CLIENT_ID),
        Err(ProviderError::InsecureUrl { .. })
    ));
    assert!(matches!(
        ProviderSettings::new("https://user:pw@huggingface.co", CLIENT_ID),
        Err(ProviderError::InvalidUrl { .. })
    ));
    assert!(ProviderSettings::new("https://huggingface.co/", CLIENT_ID).is_ok());
    assert!(ProviderSettings::new("http://127.0.0.1:9", CLIENT_ID).is_ok());
}

#[test]
fn debug_never_shows_the_secret() {
    let mut settings = ProviderSettings::new("https://huggingface.co", CLIENT_ID).unwrap();
    settings.client_secret = Some(Secret::new("hf_client_secret_value"));
    let provider = Provider::new(settings);
    let shown = format!("{provider:?} {:?}", provider.settings);
    assert!(!shown.contains("hf_client_secret_value"), "{shown}");
    assert!(shown.contains(CLIENT_ID));
}

#[tokio::test]
async fn discovery_is_cached_and_failures_are_retried() {
    let issuer = Arc::new(OnceLock::<String>::new());
    let for_handler = issuer.clone();
    let server = Server::start(move |_, hits| {
        if hits == 1 {
            Reply::status(500, json!({}))
        } else {
            Reply::json(discovery(for_handler.get().unwrap()))
        }
    })
    .await;
    issuer.set(server.issuer.clone()).unwrap();
    let provider = server.provider();
    let err = provider.metadata().await.unwrap_err();
    assert!(matches!(err, ProviderError::Status { .. }), "{err}");
    assert_eq!(err.status_hint(), StatusCode::SERVICE_UNAVAILABLE);
    let meta = provider.metadata().await.unwrap();
    assert_eq!(meta.issuer, server.issuer);
    provider.metadata().await.unwrap();
    assert_eq!(server.hits(DISCOVERY), 2);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_discovery() {
    let issuer = Arc::new(OnceLock::<String>::new());
    let for_handler = issuer.clone();
    let server = Server::start(move |_, _| {
        Reply::json(discovery(for_handler.get().unwrap())).delayed(Duration::from_millis(150))
    })
    .await;
    issuer.set(server.issuer.clone()).unwrap();
    let provider = server.provider();
    let (a, b, c, d) = tokio::join!(
        provider.metadata(),
        provider.metadata(),
        provider.metadata(),
        provider.metadata()
    );
    for result in [a, b, c, d] {
        result.unwrap();
    }
    assert_eq!(server.hits(DISCOVERY), 1);
}

#[tokio::test]
async fn discovery_with_another_issuer_is_refused() {
    let server = Server::start(|_, _| Reply::json(discovery("https://evil.example"))).await;
    let err = server.provider().metadata().await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("https://evil.example"), "{shown}");
    assert!(shown.contains(&server.issuer), "{shown}");
}

#[tokio::test]
async fn discovery_redirect_is_not_followed() {
    let server = Server::start(|_, _| {
        let mut reply = Reply::status(301, json!({}));
        reply.extra_headers = "location: https://evil.example/\r\n".into();
        reply
    })
    .await;
    let err = server.provider().metadata().await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Redirect {
                endpoint: "discovery",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(server.hits(DISCOVERY), 1);
}

#[tokio::test]
async fn slow_provider_times_out() {
    let slow = Server::start(|_, _| Reply::json(json!({})).delayed(Duration::from_secs(5))).await;
    let mut settings = slow.settings();
    settings.timeout = Duration::from_millis(200);
    let err = Provider::new(settings).metadata().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.status_hint(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn unreachable_provider_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut settings = ProviderSettings::new(&issuer, CLIENT_ID).unwrap();
    settings.client_auth = ClientAuth::None;
    let err = Provider::new(settings).metadata().await.unwrap_err();
    assert!(matches!(err, ProviderError::Connect { .. }), "{err}");
    assert_eq!(err.status_hint(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn exchange_code_posts_the_form_with_basic_auth() {
    let server = provider_server(|_, _| token_reply()).await;
    let provider = server.provider();
    let token = provider
        .exchange_code(
            "the code",
            "verifier-xyz",
            "http://127.0.0.1:7860/login/callback",
        )
        .await
        .unwrap();
    assert_eq!(token.access_token.expose(), "hf_oauth_abc");
    assert_eq!(token.scope.as_deref(), Some("openid profile"));
    let seen = server.last("/oauth/token");
    let form: HashMap<String, String> = url::form_urlencoded::parse(seen.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the code");
    assert_eq!(form["code_verifier"], "verifier-xyz");
    assert_eq!(form["redirect_uri"], "http://127.0.0.1:7860/login/callback");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!form.contains_key("client_secret"));
    assert_eq!(
        seen.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let expected = base64::engine::general_purpose::STANDARD.encode("client-123:s3cret%2F%2B");
    assert_eq!(seen.headers["authorization"], format!("Basic {expected}"));
}

#[tokio::test]
async fn post_and_public_clients_authenticate_in_the_form() {
    let server = provider_server(|_, _| token_reply()).await;
    let mut settings = server.settings();
    settings.client_auth = ClientAuth::Post;
    Provider::new(settings)
        .refresh(&Secret::new("rt_1"))
        .await
        .unwrap();
    let seen = server.last("/oauth/token");
    assert!(!seen.headers.contains_key("authorization"));
    let form: HashMap<String, String> = url::form_urlencoded::parse(seen.body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "rt_1");
    assert_eq!(form["client_secret"], SECRET);

    let mut settings = server.settings();
    settings.client_auth = ClientAuth::None;
    Provider::new(settings)
        .refresh(&Secret::new("rt_1"))
        .await
        .unwrap();
    let seen = server.last("/oauth/token");
    assert!(!seen.headers.contains_key("authorization"));
    assert!(!seen.body.contains("client_secret"));
    assert!(seen.body.contains("client_id=client-123"));
}

#[tokio::test]
async fn token_endpoint_errors_become_oauth_errors() {
    let server = provider_server(|_, _| {
        Reply::status(
            400,
            json!({"error": "invalid_grant", "error_description": "The code\nexpired"}),
        )
    })
    .await;
    let err = server
        .provider()
        .exchange_code("secret-code-value", "v", "http://127.0.0.1/cb")
        .await
        .unwrap_err();
    assert!(err.is_oauth_error("invalid_grant"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("The codeexpired"), "{shown}");
    assert!(!shown.contains("secret-code-value"), "{shown}");
}

#[tokio::test]
async fn userinfo_sends_bearer_and_maps_401() {
    let server = provider_server(|req, _| {
        if req.headers.get("authorization").map(String::as_str) == Some("Bearer good") {
            Reply::json(json!({"sub": "abc", "preferred_username": "ada", "isPro": true}))
        } else {
            Reply::status(401, json!({"error": "invalid_token"}))
        }
    })
    .await;
    let provider = server.provider();
    let info: Value = provider.userinfo(&Secret::new("good")).await.unwrap();
    assert_eq!(info["preferred_username"], "ada");
    let err = provider
        .userinfo::<Value>(&Secret::new("bad"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Unauthorized {
                endpoint: "userinfo"
            }
        ),
        "{err}"
    );
    let err = provider
        .userinfo::<Value>(&Secret::new("bad\ntoken"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn whoami_asks_under_the_issuer_without_discovery() {
    let server =
        Server::start(
            |req, _| match req.headers.get("authorization").map(String::as_str) {
                Some("Bearer hf_good") => Reply::json(json!({
                    "type": "user", "id": "abc", "name": "ada", "avatarUrl": "/avatars/ada.png",
                    "auth": {"type": "access_token", "accessToken": {"role": "read"}}
                })),
                Some("Bearer hf_busy") => {
                    let mut reply = Reply::status(429, json!({"error": "rate limited"}));
                    reply.extra_headers = "retry-after: 12\r\n".to_owned();
                    reply
                }
                _ => Reply::status(401, json!({"error": "Invalid credentials"})),
            },
        )
        .await;
    let tenant = ProviderSettings::new(&format!("{}/tenant", server.issuer), CLIENT_ID).unwrap();
    let settings = ProviderSettings {
        issuer: tenant.issuer,
        issuer_url: tenant.issuer_url,
        ..server.settings()
    };
    let provider = Provider::new(settings);
    let who = provider.whoami(&Secret::new("hf_good")).await.unwrap();
    assert_eq!(who.profile.preferred_username, "ada");
    assert_eq!(
        who.profile.picture.as_deref(),
        Some(format!("{}/avatars/ada.png", server.issuer).as_str())
    );
    assert_eq!(
        who.profile.profile.as_deref(),
        Some(format!("{}/tenant/ada", server.issuer).as_str())
    );
    assert_eq!(server.hits("/tenant/api/whoami-v2"), 1);
    assert_eq!(server.hits(DISCOVERY), 0);

    let err = provider.whoami(&Secret::new("hf_bad")).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Unauthorized { endpoint: "whoami" }),
        "{err}"
    );
    let err = provider.whoami(&Secret::new("hf_busy")).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)), "{err}");
    assert_eq!(err.status_hint(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!err.to_string().contains("hf_busy"), "{err}");
    let err = provider
        .whoami(&Secret::new("hf_bad\ntoken"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn verifies_id_token_and_rate_limits_unknown_kids() {
    let jwks = Arc::new(StdMutex::new(
        json!({"keys": [jwk(rsa_key(0), Some("k0"))]}),
    ));
    let served = jwks.clone();
    let server = provider_server(move |_, _| Reply::json(served.lock().unwrap().clone())).await;
    let mut settings = server.settings();
    settings.jwks_min_refresh_interval = Duration::from_millis(300);
    let provider = Provider::new(settings);

    let claims = provider
        .verify_id_token(&id_token(&server, 0, "k0"), NONCE)
        .await
        .unwrap();
    assert_eq!(claims.preferred_username.as_deref(), Some("ada"));
    assert_eq!(server.hits("/oauth/jwks"), 1);

    // The provider rotates to k1; right after a fetch the re-fetch is rate limited.
    *jwks.lock().unwrap() = json!({"keys": [jwk(rsa_key(1), Some("k1"))]});
    let rotated = id_token(&server, 1, "k1");
    let err = provider.verify_id_token(&rotated, NONCE).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::IdToken(IdTokenError::UnknownKid(ref kid)) if kid == "k1"),
        "{err}"
    );
    assert_eq!(server.hits("/oauth/jwks"), 1);

    // Once the interval has passed, concurrent callers share one re-fetch.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (a, b, c) = tokio::join!(
        provider.verify_id_token(&rotated, NONCE),
        provider.verify_id_token(&rotated, NONCE),
        provider.verify_id_token(&rotated, NONCE)
    );
    for result in [a, b, c] {
        result.unwrap();
    }
    assert_eq!(server.hits("/oauth/jwks"), 2);

    // Known kid, wrong nonce: rejected without any fetch.
    let err = provider
        .verify_id_token(&rotated, "other-nonce")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::IdToken(IdTokenError::NonceMismatch)),
        "{err}"
    );
    assert_eq!(server.hits("/oauth/jwks"), 2);
}

#[tokio::test]
async fn unusable_key_set_is_an_invalid_response() {
    let server = provider_server(|_, _| Reply::json(json!({"not_keys": []}))).await;
    let err = server
        .provider()
        .verify_id_token(&id_token(&server, 0, "k0"), NONCE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::InvalidResponse {
                endpoint: "jwks",
                ..
            }
        ),
        "{err}"
    );
}
