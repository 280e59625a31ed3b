//! Secrets stay secret: a full sign-in and a series of failing ones run with every
//! `tracing` event captured at TRACE level, and neither the logs nor any response the
//! app sends (status, headers, body) may contain a secret:
//!
//! - access and refresh tokens: the mock issues them as `hf_oauth_…` (refresh tokens
//!   `hf_oauth_refresh_…`), so the prefix must not appear at all;
//! - the client secret, alone or inside its `Authorization: Basic` encoding;
//! - every authorization code (read from the provider's redirect to the callback);
//! - every PKCE verifier, read by opening the pending-login cookie with
//!   the test's cookie key (format documented in `src/session/codec.rs`; the test
//!   checks the verifier against the `code_challenge` it saw, so it cannot pass
//!   vacuously if that format changes);
//! - the cookie key material (`common::SECRET`) and ID tokens (`eyJhbGciOi…`).
//!
//! A second test does the same for bearer mode: OAuth and user tokens (valid, lacking a
//! scope or role, revoked, made up) sent by API and gRPC clients, and new tokens while
//! the provider answers 429, 5xx, HTML or too slowly.
//!
//! A third does the same while sessions are refreshed.
//!
//! tracing-subscriber (dev-dependency, features `fmt` and `registry`) formats the events
//! into a shared buffer, and a span layer of this file's ([`Spans`]) records every span
//! with all its fields: both are this binary's global default, so the events and spans
//! of every task count, and the secrets are searched for in the spans' fields too. Each
//! test also asserts the spans its steps must open (`hf_auth.login`, `hf_auth.callback`,
//! `hf_auth.refresh`, `hf_auth.bearer`, `hf_auth.provider`) with their outcome fields,
//! and that the user appears in them only as a pseudonym. A span is the test's own when
//! it was opened on the test's thread (each `#[tokio::test]` runs a current-thread
//! runtime on its thread, which the app, the mock and their tasks share).
#![allow(unreachable_pub)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use reqwest::{Response, StatusCode};
use tower_hf_auth::mock::{MockEndpoint, MockFault};

/// Every formatted `tracing` event and every span of this test binary.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    capture().0.clone()
}

/// The spans of this test binary.
fn all_spans() -> Arc<Mutex<Vec<CapturedSpan>>> {
    capture().1.clone()
}

type Capture = (Arc<Mutex<Vec<u8>>>, Arc<Mutex<Vec<CapturedSpan>>>);

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        // No filter: every level of every span and event.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(move || Sink(sink.clone())))
            .with(Spans(spans.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        (buffer, spans)
    })
}

/// A span as the app opened it: its name, its parent's name, the thread (test) that
/// opened it, every field recorded (at opening or later) and whether it has closed.
#[derive(Debug, Clone)]
struct CapturedSpan {
    name: &'static str,
    parent: Option<&'static str>,
    thread: String,
    fields: Vec<(String, String)>,
    closed: bool,
}

impl CapturedSpan {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `tracing_subscriber::Layer` that records spans and their fields.
struct Spans(Arc<Mutex<Vec<CapturedSpan>>>);

/// Where a live span's record is in [`Spans`]' list (kept in the span's extensions).
struct Index(usize);

/// Collects fields as `(name, value)`; strings without quotes.
struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("a new span is known");
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let mut all = self.0.lock().unwrap();
        all.push(CapturedSpan {
            name: span.name(),
            parent: span.parent().map(|p| p.name()),
            thread: std::thread::current().name().unwrap_or("").to_owned(),
            fields,
            closed: false,
        });
        span.extensions_mut().insert(Index(all.len() - 1));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("a recorded span is known");
        if let Some(Index(i)) = span.extensions().get::<Index>() {
            values.record(&mut Fields(&mut self.0.lock().unwrap()[*i].fields));
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let span = ctx.span(&id).expect("a closing span is known");
        if let Some(Index(i)) = span.extensions().get::<Index>() {
            self.0.lock().unwrap()[*i].closed = true;
        }
    }
}

/// The spans the calling test's thread opened, once none named `name` is still open.
async fn spans_of_this_test(name: &str) -> Vec<CapturedSpan> {
    let thread = std::thread::current().name().unwrap_or("").to_owned();
    let mine = || -> Vec<CapturedSpan> {
        all_spans()
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.thread == thread)
            .cloned()
            .collect()
    };
    wait_until("the test's spans close", || {
        mine().iter().all(|s| s.closed || s.name != name)
    })
    .await;
    mine()
}

/// Every span's name and fields as text, to search for secrets.
fn spans_text(spans: &[CapturedSpan]) -> String {
    spans
        .iter()
        .map(|s| format!("{} {:?}\n", s.name, s.fields))
        .collect()
}

/// Asserts a closed span named `name` whose fields include all of `fields`, and
/// returns it.
#[track_caller]
fn assert_span<'a>(
    spans: &'a [CapturedSpan],
    name: &str,
    fields: &[(&str, &str)],
) -> &'a CapturedSpan {
    spans
        .iter()
        .find(|s| s.name == name && s.closed && fields.iter().all(|(k, v)| s.field(k) == Some(*v)))
        .unwrap_or_else(|| {
            let named: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
            panic!("no closed span {name} with {fields:?}; spans named so: {named:#?}")
        })
}

/// Asserts that `span` shows the user as a pseudonym (16 hex digits), not `raw_id`.
#[track_caller]
fn assert_pseudonym(span: &CapturedSpan, raw_id: &str) {
    let shown = span.field("user.id").expect("the span names the user");
    assert_eq!(shown.len(), 16, "{shown}");
    assert!(shown.bytes().all(|b| b.is_ascii_hexdigit()), "{shown}");
    assert_ne!(shown, raw_id);
    assert!(span.field("duration_ms").is_some(), "{span:?}");
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the app said, and the secrets seen on the way.
#[derive(Default)]
struct Evidence {
    responses: String,
    secrets: Vec<(String, String)>,
}

impl Evidence {
    /// Records the whole response (status, headers, body).
    async fn record(&mut self, what: &str, res: Response) -> (StatusCode, String) {
        let status = res.status();
        self.responses.push_str(&format!("--- {what}: {status}\n"));
        for (name, value) in res.headers() {
            self.responses.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let body = res.text().await.unwrap();
        self.responses.push_str(&body);
        self.responses.push('\n');
        (status, body)
    }

    /// No secret seen is in `logs` or in any response recorded.
    fn assert_nothing_leaked(&self, logs: &str) {
        for (what, secret) in &self.secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "{what} is in the logs:\n{logs}"
            );
            assert!(
                !self.responses.contains(secret.as_str()),
                "{what} is in a response:\n{}",
                self.responses
            );
        }
    }

    fn secret(&mut self, what: &str, value: impl Into<String>) {
        let value = value.into();
        assert!(!value.is_empty(), "{what} is empty");
        self.secrets.push((what.to_owned(), value));
    }
}

/// The captured log, after giving the last lines a moment to arrive.
async fn captured(logs: &Mutex<Vec<u8>>) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

/// The key that seals cookies for `SECRET` (HKDF-SHA256, as `src/session/codec.rs`).
fn cookie_key() -> LessSafeKey {
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    // Format v2: the key is bound to the client id and the session cookie's name.
    let context = framed(&[MOCK_CLIENT_ID, b"hf_auth"]);
    let prk = Salt::new(HKDF_SHA256, b"tower-hf-auth cookie keys v2").extract(SECRET.as_bytes());
    let mut key = [0u8; 32];
    prk.expand(&[b"aes-256-gcm", &context], Len(32))
        .unwrap()
        .fill(&mut key)
        .unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap())
}

/// The mock's default client id, which the test app signs in with.
const MOCK_CLIENT_ID: &[u8] = b"mock-client-id";

/// `len (u32, big-endian) || bytes` for each part, as the cookie codec frames them.
fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The plaintext of a sealed cookie: `key id (4) || nonce (12) || ciphertext || tag`,
/// with the client id and the cookie's name as associated data.
fn open_sealed(name: &str, value: &str) -> Vec<u8> {
    let mut raw = URL_SAFE_NO_PAD
        .decode(value)
        .expect("a sealed cookie is base64url");
    let nonce = Nonce::try_assume_unique_for_key(&raw[4..16]).unwrap();
    let mut aad = framed(&[MOCK_CLIENT_ID]);
    aad.extend_from_slice(name.as_bytes());
    let plain = cookie_key()
        .open_in_place(nonce, Aad::from(aad), &mut raw[16..])
        .expect("the cookie opens with the test's key");
    plain.to_vec()
}

/// A pending sign-in's cookie: its plaintext is JSON.
fn open_cookie(name: &str, value: &str) -> serde_json::Value {
    serde_json::from_slice(&open_sealed(name, value)).expect("a pending sign-in is JSON")
}

/// The tokens of a session cookie (`src/session/record.rs`, format 3): a format byte 3,
/// then the access token, the expiry and the refresh token if there is one (a 1, or 0
/// for none), each string a LEB128 length and its bytes. As JSON:
/// `{"access_token": …, "refresh_token": …}`.
fn open_session_tokens(value: &str) -> serde_json::Value {
    let plain = open_sealed("hf_auth", value);
    assert_eq!(plain[0], 3, "the session record's format byte");
    let mut at = 1;
    let string = |at: &mut usize| {
        let len = usize::try_from(leb128(&plain, at)).unwrap();
        let s = String::from_utf8(plain[*at..*at + len].to_vec()).unwrap();
        *at += len;
        s
    };
    let access = string(&mut at);
    let _expiry = leb128(&plain, &mut at);
    let refresh = match plain[at] {
        0 => serde_json::Value::Null,
        1 => {
            at += 1;
            string(&mut at).into()
        }
        other => panic!("refresh token marker {other}"),
    };
    serde_json::json!({"access_token": access, "refresh_token": refresh})
}

/// The unsigned LEB128 integer at `*at`, which moves past it.
fn leb128(bytes: &[u8], at: &mut usize) -> u64 {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = bytes[*at];
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    n
}

/// Starts a sign-in; records its PKCE verifier (checked against the authorize request)
/// and its authorization code as secrets, and returns the callback URL.
async fn start(app: &TestApp, browser: &Browser, ev: &mut Evidence) -> String {
    let authorize_url = start_login(app, browser, "/").await;
    let state = query_param(&authorize_url, "state").unwrap();
    let challenge = query_param(&authorize_url, "code_challenge").unwrap();
    let name = format!("hf_auth_login_{}", &state[..16]);
    let value = browser
        .cookie(&format!("{}/login/callback", app.base), &name)
        .expect("a pending-login cookie");
    let pending = open_cookie(&name, &value);
    assert_eq!(pending["state"], state.as_str());
    let verifier = pending["verifier"].as_str().unwrap().to_owned();
    assert_eq!(verifier.len(), 43);
    assert_eq!(
        URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())),
        challenge,
        "the verifier read from the cookie is the one behind the challenge"
    );
    ev.secret("PKCE verifier", verifier);
    let callback = authorize(browser, &authorize_url, "alice").await;
    ev.secret(
        "authorization code",
        query_param(&callback, "code").unwrap(),
    );
    callback
}

#[tokio::test]
async fn no_secret_reaches_logs_pages_or_headers() {
    let logs = logs();
    let app = app_with(mock().await, |b| b.with_timeout(Duration::from_secs(3))).await;
    let mut ev = Evidence::default();
    let client_secret = app.mock.client_secret().unwrap().to_owned();
    ev.secret("client secret", client_secret.clone());
    ev.secret(
        "Basic credentials",
        STANDARD.encode(format!("{}:{client_secret}", app.mock.client_id())),
    );
    ev.secret("cookie key", SECRET);
    ev.secret("an ID token", "eyJhbGciOi");
    ev.secret("an access or refresh token", "hf_oauth_");

    // A full sign-in, the pages of a signed-in user, and sign-out.
    let browser = Browser::new();
    let callback = start(&app, &browser, &mut ev).await;
    let (status, _) = ev.record("callback", browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let me = ev
        .record("/me", browser.get_json(&format!("{}/me", app.base)).await)
        .await;
    assert_eq!(me.0, StatusCode::OK);
    assert!(me.1.contains("\"username\":\"alice\""), "{}", me.1);
    let alice_id = user_id(&me.1);
    ev.record("/", browser.get(&format!("{}/", app.base)).await)
        .await;
    ev.record("replay", browser.get(&callback).await).await;
    ev.record(
        "/logout",
        browser.get(&format!("{}/logout", app.base)).await,
    )
    .await;

    // A code used twice: the provider answers invalid_grant.
    let browser = Browser::new();
    let other = start(&app, &browser, &mut ev).await;
    let reused = with_param(
        &other,
        "code",
        Some(&query_param(&callback, "code").unwrap()),
    );
    let (status, _) = ev.record("reused code", browser.get(&reused).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    // Each failure after the code was sent to the provider.
    let faults = [
        MockFault::Status {
            endpoint: MockEndpoint::Token,
            status: 500,
        },
        MockFault::Status {
            endpoint: MockEndpoint::Userinfo,
            status: 401,
        },
        MockFault::NotJson {
            endpoint: MockEndpoint::Token,
        },
        MockFault::Oversized {
            endpoint: MockEndpoint::Token,
            bytes: 2 * 1024 * 1024,
        },
        MockFault::Redirect {
            endpoint: MockEndpoint::Userinfo,
            location: "https://evil.example/".into(),
        },
        MockFault::Delay {
            endpoint: MockEndpoint::Token,
            delay: Duration::from_secs(30),
        },
        MockFault::IdTokenBadSignature,
        MockFault::IdTokenAlgNone,
        MockFault::IdTokenHs256WithPublicKey,
        MockFault::IdTokenNonce(Some("wrong".into())),
        MockFault::IdTokenExpiredBy(Duration::from_secs(3600)),
        MockFault::IdTokenUnknownKid,
        MockFault::UserinfoSub("ffffffffffffffffffffffff".into()),
        MockFault::TokenType("mac".into()),
        MockFault::MissingIdToken,
    ];
    for fault in faults {
        let label = format!("{fault:?}");
        let browser = Browser::new();
        let callback = start(&app, &browser, &mut ev).await;
        app.mock.add_fault(fault);
        let (status, _) = ev.record(&label, browser.get(&callback).await).await;
        assert!(status.is_server_error(), "{label}: {status}");
        app.mock.clear_faults();
    }

    // Failures before the provider is called.
    let browser = Browser::new();
    let callback = start(&app, &browser, &mut ev).await;
    let state = query_param(&callback, "state").unwrap();
    let forged = format!("{}{}", &state[..16], "A".repeat(27));
    ev.record(
        "state mismatch",
        browser
            .get(&with_param(&callback, "state", Some(&forged)))
            .await,
    )
    .await;
    ev.record(
        "no iss",
        browser.get(&with_param(&callback, "iss", None)).await,
    )
    .await;
    app.mock
        .add_fault(MockFault::AuthorizeError("access_denied".into()));
    let browser = Browser::new();
    let callback = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &callback, "alice").await;
    ev.record("declined", browser.get(&callback).await).await;
    app.mock.clear_faults();
    ev.record(
        "/me signed out",
        browser.get_json(&format!("{}/me", app.base)).await,
    )
    .await;

    // Give the last log lines a moment, then search everything.
    let logs = captured(&logs).await;
    assert!(
        logs.contains("signed in with Hugging Face"),
        "the capture works: {logs}"
    );
    assert!(
        logs.contains("sign-in failed talking to the provider"),
        "failures are logged: {logs}"
    );

    // The spans of each step, with their outcomes; the user only as a pseudonym.
    let spans = spans_of_this_test("hf_auth.callback").await;
    assert_span(&spans, "hf_auth.login", &[("outcome", "redirected")]);
    let signed_in = assert_span(&spans, "hf_auth.callback", &[("outcome", "success")]);
    assert_pseudonym(signed_in, &alice_id);
    for (outcome, error) in [
        ("failure", "invalid_state"),  // the replayed callback, the forged state
        ("failure", "provider_error"), // the reused code, 500s, bad ID tokens
        ("failure", "provider_timeout"), // the slow token endpoint
        ("failure", "subject_mismatch"),
        ("failure", "invalid_token_response"),
        ("denied", "access_denied"),
    ] {
        let span = assert_span(
            &spans,
            "hf_auth.callback",
            &[("outcome", outcome), ("error.type", error)],
        );
        assert!(
            span.field("user.id").is_none(),
            "nobody signed in: {span:?}"
        );
    }
    let token = assert_span(
        &spans,
        "hf_auth.provider",
        &[("endpoint", "token"), ("status", "200"), ("outcome", "ok")],
    );
    assert_eq!(token.parent, Some("hf_auth.callback"));
    for fields in [
        [("endpoint", "token"), ("error.type", "500")],
        [("endpoint", "token"), ("error.type", "timeout")],
        [("endpoint", "userinfo"), ("error.type", "redirect")],
        [("endpoint", "token"), ("error.type", "response_too_large")],
    ] {
        assert_span(&spans, "hf_auth.provider", &fields);
    }
    let discovery = assert_span(&spans, "hf_auth.provider", &[("endpoint", "discovery")]);
    assert_eq!(discovery.parent, Some("hf_auth.login"));

    // No secret in any event, response or span field of the whole binary.
    let all = all_spans().lock().unwrap().clone();
    ev.assert_nothing_leaked(&format!("{logs}{}", spans_text(&all)));
}

/// The `id` of the user JSON of `/me`.
fn user_id(me: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(me).unwrap();
    let id = json["id"].as_str().expect("the user JSON has an id");
    assert_eq!(id.len(), 24, "{id}");
    id.to_owned()
}

#[tokio::test]
async fn spans_show_raw_user_ids_only_when_configured() {
    logs();
    let app = app_with(mock().await, |b| b.with_raw_user_ids(true)).await;
    let browser = Browser::new();
    signed_in(&app, &browser, "bob").await;
    let me = browser.get_json(&format!("{}/me", app.base)).await;
    let bob_id = user_id(&me.text().await.unwrap());
    let spans = spans_of_this_test("hf_auth.callback").await;
    let span = assert_span(&spans, "hf_auth.callback", &[("outcome", "success")]);
    assert_eq!(span.field("user.id"), Some(bob_id.as_str()));
}

/// Sends `token` as a bearer token to `path`, as an API or a gRPC client.
async fn bearer(app: &TestApp, path: &str, token: &str, grpc: bool) -> Response {
    let request = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    let request = if grpc {
        request.header("content-type", "application/grpc")
    } else {
        request.header("accept", "application/json")
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn no_bearer_token_reaches_logs_or_responses() {
    let logs = logs();
    let app = app_with(mock().await, |b| {
        b.with_bearer_tokens(true)
            .with_timeout(Duration::from_secs(3))
    })
    .await;
    let mut ev = Evidence::default();

    // An OAuth access token, read out of a real session cookie, and user tokens.
    let browser = Browser::new();
    let callback = start(&app, &browser, &mut ev).await;
    browser.get(&callback).await;
    let session = browser
        .cookie(&format!("{}/", app.base), "hf_auth")
        .expect("signed in");
    let oauth = open_session_tokens(&session)["access_token"]
        .as_str()
        .expect("the session holds the access token")
        .to_owned();
    assert!(oauth.starts_with("hf_oauth_"), "an OAuth token");
    let read = app.mock.issue_user_token("bob", "read");
    let fine = app.mock.issue_user_token("alice", "fineGrained");
    let revoked = app.mock.issue_user_token("carol", "write");
    app.mock.revoke_token(&revoked);
    let bogus = [
        "hf_oauth_not-a-real-token-0123456789",
        "hf_not-a-real-token-9876543210",
    ];
    for (what, token) in [
        ("the OAuth token", oauth.as_str()),
        ("a read token", &read),
        ("a fine-grained token", &fine),
        ("a revoked token", &revoked),
        ("a made-up OAuth token", bogus[0]),
        ("a made-up user token", bogus[1]),
    ] {
        ev.secret(what, token);
    }

    let (status, me) = ev
        .record(
            "/me with the OAuth token",
            bearer(&app, "/me", &oauth, false).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let alice_id = user_id(&me);

    // Accepted, lacking a scope, lacking a role, refused: as API and gRPC callers.
    let mut statuses = Vec::new();
    for token in [&oauth, &read, &fine, &revoked, bogus[0], bogus[1]] {
        for path in ["/me", "/repos", "/acme/admin"] {
            for grpc in [false, true] {
                let label = format!("{path} grpc={grpc}");
                let (status, _) = ev
                    .record(&label, bearer(&app, path, token, grpc).await)
                    .await;
                statuses.push(status);
            }
        }
    }
    assert!(statuses.contains(&StatusCode::OK));
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED));
    assert!(statuses.contains(&StatusCode::FORBIDDEN));

    // The provider failing while new tokens arrive: 503s, never a token in the answer.
    let faults = [
        MockFault::Status {
            endpoint: MockEndpoint::Userinfo,
            status: 429,
        },
        MockFault::Status {
            endpoint: MockEndpoint::WhoAmI,
            status: 500,
        },
        MockFault::Status {
            endpoint: MockEndpoint::Userinfo,
            status: 502,
        },
        MockFault::NotJson {
            endpoint: MockEndpoint::WhoAmI,
        },
        MockFault::Delay {
            endpoint: MockEndpoint::WhoAmI,
            delay: Duration::from_secs(30),
        },
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        let label = format!("{fault:?}");
        // A token of the kind the failing endpoint validates, never seen before.
        let token = if label.contains("Userinfo") {
            format!("hf_oauth_fresh-token-{i}")
        } else {
            app.mock.issue_user_token("bob", "read")
        };
        ev.secret(&format!("a new token during {label}"), token.clone());
        app.mock.add_fault(fault);
        let (status, _) = ev
            .record(&label, bearer(&app, "/me", &token, false).await)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{label}");
        app.mock.clear_faults();
    }

    let logs = captured(&logs).await;
    let spans = spans_of_this_test("hf_auth.bearer").await;
    let accepted = assert_span(
        &spans,
        "hf_auth.bearer",
        &[("cache", "miss"), ("outcome", "accepted")],
    );
    assert_pseudonym(accepted, &alice_id);
    assert_span(
        &spans,
        "hf_auth.bearer",
        &[("cache", "hit"), ("outcome", "accepted")],
    );
    assert_span(
        &spans,
        "hf_auth.bearer",
        &[("outcome", "rejected"), ("error.type", "invalid_token")],
    );
    assert_span(
        &spans,
        "hf_auth.bearer",
        &[
            ("outcome", "unavailable"),
            ("error.type", "provider_unavailable"),
        ],
    );
    let whoami = assert_span(
        &spans,
        "hf_auth.provider",
        &[("endpoint", "whoami"), ("status", "200")],
    );
    assert_eq!(whoami.parent, Some("hf_auth.bearer"));
    assert_span(
        &spans,
        "hf_auth.provider",
        &[("endpoint", "userinfo"), ("status", "429")],
    );
    let all = all_spans().lock().unwrap().clone();
    ev.assert_nothing_leaked(&format!("{logs}{}", spans_text(&all)));
}

#[tokio::test]
async fn no_token_reaches_logs_or_responses_when_sessions_are_refreshed() {
    let logs = logs();
    let mock = mock_with(|b| b.with_token_lifetime(Duration::from_secs(600))).await;
    let app = app_with(mock, |b| b.with_timeout(Duration::from_secs(3))).await;
    let mut ev = Evidence::default();
    ev.secret("an access or refresh token", "hf_oauth_");
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let me = browser.get_json(&format!("{}/me", app.base)).await;
    let alice_id = user_id(&me.text().await.unwrap());
    let session = browser
        .cookie(&format!("{}/", app.base), "hf_auth")
        .expect("a session cookie");
    let tokens = open_session_tokens(&session);
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh token");
    assert!(refresh_token.starts_with("hf_oauth_refresh_"));
    ev.secret("the refresh token", refresh_token);
    let me = format!("{}/me", app.base);

    // The provider down, then slow, then a successful refresh, then a refused one.
    app.clock.advance(Duration::from_secs(400));
    for fault in [
        MockFault::Status {
            endpoint: MockEndpoint::Token,
            status: 503,
        },
        MockFault::Delay {
            endpoint: MockEndpoint::Token,
            delay: Duration::from_secs(30),
        },
    ] {
        let label = format!("refresh during {fault:?}");
        app.mock.add_fault(fault);
        let (status, _) = ev.record(&label, browser.get_json(&me).await).await;
        assert_eq!(status, StatusCode::OK, "{label}: the old session is served");
        app.mock.clear_faults();
    }
    // The slow refresh goes on in the background until its 3 s timeout; requests meanwhile
    // are served the old session. Once it has failed, the next request refreshes.
    let ceiling = tokio::time::Instant::now() + WAIT_CEILING;
    let refreshed = loop {
        let (status, _) = ev.record("refreshed", browser.get_json(&me).await).await;
        assert_eq!(status, StatusCode::OK);
        let cookie = browser
            .cookie(&format!("{}/", app.base), "hf_auth")
            .expect("a session cookie");
        if cookie != session {
            break cookie;
        }
        assert!(tokio::time::Instant::now() < ceiling, "never refreshed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let tokens = open_session_tokens(&refreshed);
    ev.secret(
        "the rotated refresh token",
        tokens["refresh_token"].as_str().unwrap(),
    );
    app.mock.revoke_refresh_tokens();
    app.clock.advance(Duration::from_secs(400));
    let (status, _) = ev.record("refused", browser.get_json(&me).await).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(300));
    let (status, _) = ev.record("expired", browser.get_json(&me).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let logs = captured(&logs).await;
    assert!(
        logs.contains("session refreshed"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("cannot refresh a session"), "{logs}");
    assert!(
        logs.contains("refused the session's refresh token"),
        "{logs}"
    );
    let spans = spans_of_this_test("hf_auth.refresh").await;
    for outcome in ["unavailable", "refused"] {
        assert_span(&spans, "hf_auth.refresh", &[("outcome", outcome)]);
    }
    let refreshed = assert_span(&spans, "hf_auth.refresh", &[("outcome", "refreshed")]);
    assert_pseudonym(refreshed, &alice_id);
    let down = assert_span(
        &spans,
        "hf_auth.provider",
        &[("endpoint", "token"), ("status", "503")],
    );
    assert_eq!(down.parent, Some("hf_auth.refresh"));
    let all = all_spans().lock().unwrap().clone();
    ev.assert_nothing_leaked(&format!("{logs}{}", spans_text(&all)));
}

/// With sessions in Redis: a sign-in, requests read from Redis, a refresh under the
/// store's lease and a sign-out everywhere log and trace no token, ticket or Redis
/// password, and every store call is an `hf_auth.store` span.
#[tokio::test]
async fn no_secret_reaches_logs_or_spans_with_sessions_in_redis() {
    use common::redis_server::RedisServer;
    let logs = logs();
    let redis = RedisServer::start();
    let mock = mock_with(|b| b.with_token_lifetime(Duration::from_secs(600))).await;
    let url = redis.url();
    let app = app_with(mock, |b| {
        b.with_session_store(tower_hf_auth::SessionStore::redis(url))
    })
    .await;
    let mut ev = Evidence::default();
    ev.secret("an access or refresh token", "hf_oauth_");
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let ticket = browser
        .cookie(&format!("{}/", app.base), "hf_auth")
        .expect("a ticket cookie");
    let me = format!("{}/me", app.base);
    let (status, _) = ev.record("me", browser.get_json(&me).await).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(400));
    let (status, _) = ev.record("refreshed", browser.get_json(&me).await).await;
    assert_eq!(status, StatusCode::OK);
    let res = browser
        .http
        .post(format!("{}/logout", app.base))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("everywhere=1")
        .send()
        .await
        .unwrap();
    let (status, _) = ev.record("everywhere", res).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let spans = spans_of_this_test("hf_auth.store").await;
    for operation in ["claim_once", "create", "lease", "replace", "revoke_user"] {
        assert_span(
            &spans,
            "hf_auth.store",
            &[("operation", operation), ("outcome", "ok")],
        );
    }
    assert_span(&spans, "hf_auth.refresh", &[("outcome", "refreshed")]);
    let logs = captured(&logs).await;
    let all = all_spans().lock().unwrap().clone();
    let traced = format!("{logs}{}", spans_text(&all));
    ev.assert_nothing_leaked(&traced);
    // The ticket travels in `Set-Cookie` (again after a refresh), never in logs.
    assert!(!traced.contains(&ticket), "the ticket is logged or traced");
    assert!(
        !traced.contains(&redis.url()),
        "the Redis URL is logged or traced"
    );
}
