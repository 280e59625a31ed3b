//! Hostile transport and hostile requests, over real sockets.
//!
//! **A hostile provider**: answers that are too large, not JSON, redirects, error
//! statuses, slow answers (`MockFault`s), and, from a tiny raw TCP "provider" in this
//! file that serves discovery normally and then misbehaves on `/oauth/token`: a body
//! trickled a byte at a time (slowloris), headers trickled, a body shorter than its
//! `Content-Length`, no answer at all, garbage instead of HTTP, a closed connection.
//! Each must fail well before the misbehaving provider would have finished (30 s or
//! more): within a ceiling of 15 s for a configured timeout of 3 s, generous for a
//! loaded machine; with a clear error page and no session, and the app must keep
//! serving.
//!
//! **Hostile requests to the app**: oversized and duplicated cookies, hundreds of
//! pending-login cookies, huge `state` and `code`, non-UTF-8 query strings, CR/LF
//! injection through `return_to`, replayed and concurrent callbacks, duplicated query
//! parameters, wrong methods. Each must get a clear 4xx (or a clean response), never a
//! 500, leave the app serving, and never reflect attacker text into `Set-Cookie` or
//! `Location`.
#![allow(unreachable_pub)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::{Method, Response, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_hf_auth::mock::{MockEndpoint, MockFault};

/// Short enough for the tests of timeouts, long enough for a healthy provider call on
/// a busy machine.
const TIMEOUT: Duration = Duration::from_secs(3);
/// The most an answer cut off at [`TIMEOUT`] may take: generous for two loaded cores
/// and a debug build, and still far below the 30 s and more the faults last.
const DEADLINE: Duration = Duration::from_secs(15);
const CAP: usize = 16 * 1024;

/// An app with a 3 s provider timeout and a 16 KiB response cap.
async fn strict_app() -> TestApp {
    app_with(mock().await, |b| {
        b.with_timeout(TIMEOUT).with_max_response_bytes(CAP)
    })
    .await
}

/// Asserts the response does not carry any of `markers` in `Set-Cookie` or `Location`,
/// nor a raw CR or LF anywhere in its headers.
fn assert_no_reflection(res: &Response, markers: &[&str]) {
    for name in [header::SET_COOKIE, header::LOCATION] {
        for value in res.headers().get_all(&name) {
            let value = String::from_utf8_lossy(value.as_bytes()).to_lowercase();
            for marker in markers {
                assert!(
                    !value.contains(&marker.to_lowercase()),
                    "{name} reflects {marker:?}: {value}"
                );
            }
        }
    }
    for (name, value) in res.headers() {
        assert!(
            !value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n')),
            "{name} holds CR/LF"
        );
    }
}

/// Asserts a clean answer to a hostile request: not a server error, no reflection, and
/// the app still serves.
async fn assert_clean(app: &TestApp, res: Response, markers: &[&str]) -> (StatusCode, String) {
    let status = res.status();
    assert!(
        !status.is_server_error(),
        "a hostile request is not a server error: {status}"
    );
    assert_no_reflection(&res, markers);
    let body = res.text().await.unwrap();
    assert_still_serves(app).await;
    (status, body)
}

async fn assert_still_serves(app: &TestApp) {
    let home = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(home.status(), StatusCode::OK, "the app still serves");
}

/// Starts a sign-in against `app`'s mock and fails the callback with `fault`; checks
/// the time taken, the status, the page and the recovery.
async fn assert_callback_fault(
    app: &TestApp,
    fault: MockFault,
    status: StatusCode,
    needles: &[&str],
) {
    let label = format!("{fault:?}");
    let endpoint = match &fault {
        MockFault::Status { endpoint, .. }
        | MockFault::Delay { endpoint, .. }
        | MockFault::Oversized { endpoint, .. }
        | MockFault::NotJson { endpoint }
        | MockFault::Redirect { endpoint, .. } => Some(*endpoint),
        _ => None,
    };
    let browser = Browser::new();
    let authorize_url = start_login(app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    app.mock.add_fault(fault);
    let before = endpoint.map(|e| app.mock.requests(e));
    let started = Instant::now();
    let res = browser.get(&callback).await;
    let took = started.elapsed();
    assert!(took < DEADLINE, "{label}: answered after {took:?}");
    assert_eq!(res.status(), status, "{label}");
    if let (Some(endpoint), Some(before)) = (endpoint, before) {
        assert!(
            app.mock.requests(endpoint) > before,
            "{label}: the callback reached the faulty endpoint"
        );
    }
    assert_rejected_page(app, &browser, res, status, needles).await;
    assert_recovers(app).await;
}

/// Asserts that `/login`, with `fault` on a fresh app's provider (discovery is fetched
/// there, and a success would be cached), answers within the deadline with `status` and
/// a page saying `needles`, and no session. Clears the fault.
async fn assert_login_fault(app: &TestApp, fault: MockFault, status: StatusCode, needles: &[&str]) {
    app.mock.add_fault(fault);
    let browser = Browser::new();
    let started = Instant::now();
    let res = browser.get(&format!("{}/login", app.base)).await;
    assert!(started.elapsed() < DEADLINE, "{:?}", started.elapsed());
    assert_rejected_page(app, &browser, res, status, needles).await;
    app.mock.clear_faults();
}

// ---------------------------------------------------------------------------------
// Hostile provider answers, from the mock.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_answers_fail_cleanly_at_the_cap() {
    let app = strict_app().await;
    // Warm discovery and the key set, so the faults below hit only their endpoint.
    signed_in(&app, &Browser::new(), "bob").await;
    let limit = format!("larger than the {CAP}-byte limit");
    for endpoint in [MockEndpoint::Token, MockEndpoint::Userinfo] {
        assert_callback_fault(
            &app,
            MockFault::Oversized {
                endpoint,
                bytes: CAP + 1,
            },
            StatusCode::BAD_GATEWAY,
            &[&limit],
        )
        .await;
    }
    // Just under the cap is fine.
    app.mock.add_fault(MockFault::Oversized {
        endpoint: MockEndpoint::Userinfo,
        bytes: CAP - 1,
    });
    signed_in(&app, &Browser::new(), "alice").await;
    app.mock.clear_faults();
    // Far over the default 1 MiB cap as well.
    let app = app_with(mock().await, |b| b).await;
    signed_in(&app, &Browser::new(), "bob").await;
    assert_callback_fault(
        &app,
        MockFault::Oversized {
            endpoint: MockEndpoint::Token,
            bytes: 8 * 1024 * 1024,
        },
        StatusCode::BAD_GATEWAY,
        &["larger than the 1048576-byte limit"],
    )
    .await;
}

#[tokio::test]
async fn oversized_discovery_and_key_set_fail_cleanly() {
    let app = strict_app().await;
    assert_login_fault(
        &app,
        MockFault::Oversized {
            endpoint: MockEndpoint::Discovery,
            bytes: CAP * 4,
        },
        StatusCode::BAD_GATEWAY,
        &["discovery response is larger than"],
    )
    .await;

    assert_callback_fault(
        &app,
        MockFault::Oversized {
            endpoint: MockEndpoint::Jwks,
            bytes: CAP * 4,
        },
        StatusCode::BAD_GATEWAY,
        &["jwks response is larger than"],
    )
    .await;
}

#[tokio::test]
async fn non_json_answers_fail_cleanly() {
    let app = strict_app().await;
    assert_login_fault(
        &app,
        MockFault::NotJson {
            endpoint: MockEndpoint::Discovery,
        },
        StatusCode::BAD_GATEWAY,
        &[
            "discovery endpoint sent an unusable response",
            "not valid JSON",
        ],
    )
    .await;
    for endpoint in [
        MockEndpoint::Jwks,
        MockEndpoint::Token,
        MockEndpoint::Userinfo,
    ] {
        assert_callback_fault(
            &app,
            MockFault::NotJson { endpoint },
            StatusCode::BAD_GATEWAY,
            &["sent an unusable response"],
        )
        .await;
    }
}

#[tokio::test]
async fn redirects_from_the_provider_are_not_followed() {
    let elsewhere = mock().await;
    let app = strict_app().await;
    signed_in(&app, &Browser::new(), "bob").await;
    for endpoint in [MockEndpoint::Token, MockEndpoint::Userinfo] {
        let path = match endpoint {
            MockEndpoint::Token => "/oauth/token",
            _ => "/oauth/userinfo",
        };
        assert_callback_fault(
            &app,
            MockFault::Redirect {
                endpoint,
                location: format!("{}{path}", elsewhere.issuer()),
            },
            StatusCode::BAD_GATEWAY,
            &["redirect (302 Found), which is not followed"],
        )
        .await;
        assert_eq!(
            elsewhere.requests(endpoint),
            0,
            "the redirect target was never contacted"
        );
    }
}

#[tokio::test]
async fn error_statuses_become_pages() {
    let app = strict_app().await;
    signed_in(&app, &Browser::new(), "bob").await;
    assert_callback_fault(
        &app,
        MockFault::Status {
            endpoint: MockEndpoint::Token,
            status: 429,
        },
        StatusCode::SERVICE_UNAVAILABLE,
        &["429"],
    )
    .await;
    assert_callback_fault(
        &app,
        MockFault::Status {
            endpoint: MockEndpoint::Userinfo,
            status: 401,
        },
        StatusCode::BAD_GATEWAY,
        &["did not accept the access token"],
    )
    .await;
    assert_callback_fault(
        &app,
        MockFault::Status {
            endpoint: MockEndpoint::Userinfo,
            status: 503,
        },
        StatusCode::SERVICE_UNAVAILABLE,
        &["503"],
    )
    .await;
}

#[tokio::test]
async fn slow_endpoints_are_cut_off_at_the_timeout() {
    let slow = |endpoint| MockFault::Delay {
        endpoint,
        delay: Duration::from_secs(30),
    };
    // Discovery, on a fresh app (a success would be cached).
    let app = strict_app().await;
    assert_login_fault(
        &app,
        slow(MockEndpoint::Discovery),
        StatusCode::GATEWAY_TIMEOUT,
        &["did not answer in time", "provider_timeout"],
    )
    .await;
    // The key set, before it is cached.
    assert_callback_fault(
        &app,
        slow(MockEndpoint::Jwks),
        StatusCode::GATEWAY_TIMEOUT,
        &["jwks endpoint did not answer in time"],
    )
    .await;
    for endpoint in [MockEndpoint::Token, MockEndpoint::Userinfo] {
        assert_callback_fault(
            &app,
            slow(endpoint),
            StatusCode::GATEWAY_TIMEOUT,
            &["did not answer in time"],
        )
        .await;
    }
}

/// While one sign-in waits on a stalled provider, the app answers everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_provider_does_not_block_the_app() {
    // A timeout far beyond the test, so the stalled sign-in stays stalled throughout.
    let app = app_with(mock().await, |b| b.with_timeout(Duration::from_secs(120))).await;
    let bob = Browser::new();
    signed_in(&app, &bob, "bob").await;
    let browser = Browser::new();
    let authorize_url = start_login(&app, &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_secs(600),
    });
    let exchanges = app.mock.requests(MockEndpoint::Token);
    let stalled = tokio::spawn(async move { browser.get(&callback).await.status() });
    wait_until("the stalled code exchange to reach the provider", || {
        app.mock.requests(MockEndpoint::Token) > exchanges
    })
    .await;
    for _ in 0..10 {
        assert_still_serves(&app).await;
        assert_eq!(whoami(&app, &bob).await.as_deref(), Some("bob"));
    }
    assert!(
        !stalled.is_finished(),
        "the stalled sign-in was still waiting while the app served the others"
    );
    stalled.abort();
}

// ---------------------------------------------------------------------------------
// Hostile provider answers, from a raw TCP "provider".
// ---------------------------------------------------------------------------------

/// How the raw provider answers `POST /oauth/token`.
#[derive(Debug, Clone, Copy)]
enum Misbehave {
    /// Headers promising 10 000 bytes, then one byte every 200 ms.
    TrickleBody,
    /// The status line, then one header byte every 200 ms.
    TrickleHeaders,
    /// `Content-Length: 1000`, a few bytes of JSON, then the connection closes.
    Truncated,
    /// Reads the request and never answers.
    Silent,
    /// Not HTTP at all.
    Garbage,
    /// Closes the connection without a word.
    Close,
}

/// A provider on a raw socket: discovery is well-formed (and points every endpoint at
/// itself), the token endpoint misbehaves.
async fn raw_provider(mode: Misbehave) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = base.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(raw_connection(socket, issuer.clone(), mode));
        }
    });
    (base, task)
}

async fn raw_connection(mut socket: TcpStream, issuer: String, mode: Misbehave) {
    let Some((path, _)) = read_request(&mut socket).await else {
        return;
    };
    if path == "/.well-known/openid-configuration" {
        let doc = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
            "jwks_uri": format!("{issuer}/oauth/jwks"),
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{doc}",
            doc.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        return;
    }
    if path != "/oauth/token" {
        let _ = socket
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    let tick = Duration::from_millis(200);
    match mode {
        Misbehave::TrickleBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        content-length: 10000\r\n\r\n{";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..500 {
                tokio::time::sleep(tick).await;
                if socket.write_all(b" ").await.is_err() {
                    return;
                }
            }
        }
        Misbehave::TrickleHeaders => {
            if socket.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                return;
            }
            for b in b"x-slow: "
                .iter()
                .chain([b'a'; 500].iter())
                .cycle()
                .take(500)
            {
                tokio::time::sleep(tick).await;
                if socket.write_all(&[*b]).await.is_err() {
                    return;
                }
            }
        }
        Misbehave::Truncated => {
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                      content-length: 1000\r\n\r\n{\"access_token\":\"hf_oauth_tr",
                )
                .await;
            let _ = socket.shutdown().await;
        }
        Misbehave::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Misbehave::Garbage => {
            let _ = socket
                .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe garbage\r\n\r\n")
                .await;
            let _ = socket.shutdown().await;
        }
        Misbehave::Close => {
            let _ = socket.shutdown().await;
        }
    }
}

/// Reads one request (head and `Content-Length` body); returns its path and head.
async fn read_request(socket: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = head.split_whitespace().nth(1)?.to_owned();
    let path = path.split('?').next().unwrap_or_default().to_owned();
    Some((path, head))
}

/// `/login` then `/login/callback` against the raw provider; returns the callback's
/// answer and how long it took.
async fn callback_against(mode: Misbehave) -> (TestApp, Browser, Response, Duration) {
    let (issuer, task) = raw_provider(mode).await;
    let app = app_with(mock().await, |b| {
        b.with_provider_url(issuer.clone()).with_timeout(TIMEOUT)
    })
    .await;
    let browser = Browser::new();
    let res = browser.get(&format!("{}/login", app.base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{mode:?}: login");
    let authorize_url = location(&res);
    assert!(authorize_url.starts_with(&issuer), "{authorize_url}");
    let state = query_param(&authorize_url, "state").unwrap();
    let callback = format!("{}/login/callback?code=some-code&state={state}", app.base);
    let started = Instant::now();
    let res = browser.get(&callback).await;
    let took = started.elapsed();
    // The answer is in: the raw provider may go.
    task.abort();
    (app, browser, res, took)
}

async fn assert_raw_fault(mode: Misbehave, status: StatusCode, needles: &[&str]) {
    let (app, browser, res, took) = callback_against(mode).await;
    assert!(took < DEADLINE, "{mode:?}: answered after {took:?}");
    assert_rejected_page(&app, &browser, res, status, needles).await;
    assert_still_serves(&app).await;
}

#[tokio::test]
async fn slowloris_body_is_cut_off_at_the_timeout() {
    assert_raw_fault(
        Misbehave::TrickleBody,
        StatusCode::GATEWAY_TIMEOUT,
        &["token endpoint did not answer in time"],
    )
    .await;
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_at_the_timeout() {
    assert_raw_fault(
        Misbehave::TrickleHeaders,
        StatusCode::GATEWAY_TIMEOUT,
        &["token endpoint did not answer in time"],
    )
    .await;
}

#[tokio::test]
async fn a_silent_provider_is_cut_off_at_the_timeout() {
    assert_raw_fault(
        Misbehave::Silent,
        StatusCode::GATEWAY_TIMEOUT,
        &["token endpoint did not answer in time"],
    )
    .await;
}

#[tokio::test]
async fn a_truncated_body_fails_cleanly() {
    let (app, browser, res, took) = callback_against(Misbehave::Truncated).await;
    assert!(took < DEADLINE, "answered after {took:?}");
    let body = assert_rejected_page(
        &app,
        &browser,
        res,
        StatusCode::BAD_GATEWAY,
        &["call to the provider&#39;s token endpoint failed"],
    )
    .await;
    assert!(!body.contains("hf_oauth_"), "no partial body is shown");
}

#[tokio::test]
async fn garbage_instead_of_http_fails_cleanly() {
    assert_raw_fault(
        Misbehave::Garbage,
        StatusCode::BAD_GATEWAY,
        &["token endpoint failed"],
    )
    .await;
}

#[tokio::test]
async fn a_closed_connection_fails_cleanly() {
    assert_raw_fault(
        Misbehave::Close,
        StatusCode::BAD_GATEWAY,
        &["token endpoint failed"],
    )
    .await;
}

// ---------------------------------------------------------------------------------
// Hostile requests to the app.
// ---------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(method: Method, url: &str, headers: &[(header::HeaderName, String)]) -> Response {
    let mut req = client()
        .request(method, url)
        .header(header::ACCEPT, "text/html");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn oversized_cookie_headers_are_harmless() {
    let app = app().await;
    let browser = Browser::new();
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let junk = format!("hf_auth=PWNED{}", "A".repeat(60 * 1024));
    let many = (0..2000)
        .map(|i| format!("junk{i}=PWNED"))
        .collect::<Vec<_>>()
        .join("; ");
    for cookie in [junk, many] {
        for path in ["/", "/me", "/login", "/logout"] {
            let res = send(
                Method::GET,
                &format!("{}{path}", app.base),
                &[(header::COOKIE, cookie.clone())],
            )
            .await;
            assert_clean(&app, res, &["pwned"]).await;
        }
        let res = send(Method::GET, &callback, &[(header::COOKIE, cookie.clone())]).await;
        let (status, _) = assert_clean(&app, res, &["pwned"]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no pending sign-in in it");
    }
    // Past what the server reads at all: refused before the layer, still not a 500.
    let huge = format!("a={}", "A".repeat(1024 * 1024));
    match client()
        .get(format!("{}/login", app.base))
        .header(header::COOKIE, huge)
        .send()
        .await
    {
        Ok(res) => assert!(res.status().is_client_error(), "{}", res.status()),
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    assert_still_serves(&app).await;
    // The real browser's sign-in is untouched by all that.
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn duplicated_session_cookies_are_harmless() {
    let app = app().await;
    let alice = Browser::new();
    signed_in(&app, &alice, "alice").await;
    let bob = Browser::new();
    signed_in(&app, &bob, "bob").await;
    let base = format!("{}/", app.base);
    let a = alice.cookie(&base, "hf_auth").unwrap();
    let b = bob.cookie(&base, "hf_auth").unwrap();
    for cookie in [
        format!("hf_auth={a}; hf_auth={b}"),
        format!("hf_auth=garbage; hf_auth={a}"),
        format!("hf_auth={a}; hf_auth=garbage"),
        format!("hf_auth={a}; hf_auth.1={b}"),
        format!("hf_auth.1={a}; hf_auth.2={b}"),
        format!("hf_auth=\"{a}\"; hf_auth="),
    ] {
        let res = client()
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let status = res.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status} for {cookie:.60}"
        );
        if status == StatusCode::OK {
            let me: serde_json::Value = res.json().await.unwrap();
            assert_eq!(me["username"], "alice", "the first session cookie counts");
        }
        let res = send(Method::GET, &base, &[(header::COOKIE, cookie)]).await;
        assert_clean(&app, res, &[]).await;
    }
}

/// Most `Set-Cookie` headers one answer may carry: hyper's own client refuses answers
/// with more than 100 headers, and proxies cap the size of response headers (nginx's
/// `proxy_buffer_size` is 4 or 8 KiB by default).
const MAX_SET_COOKIES: usize = 32;

#[tokio::test]
async fn hundreds_of_pending_login_cookies_are_pruned() {
    let app = app().await;
    let junk = |i: usize| format!("hf_auth_login_{i:016}=PWNED{i}");

    // A flood of forged pending sign-ins (cookie tossing from a sibling domain, say)
    // must not turn into an answer no client or proxy can read.
    let flood: Vec<String> = (0..300).map(junk).collect();
    let head = raw_request(
        &app,
        b"/login",
        &format!("cookie: {}\r\n", flood.join("; ")),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head:.200}");
    assert!(!head.to_lowercase().contains("pwned"), "{head}");
    let set_cookies = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .count();
    assert!(
        set_cookies <= MAX_SET_COOKIES,
        "/login answered a flood of 300 forged pending cookies with {set_cookies} \
         Set-Cookie headers; at most {MAX_SET_COOKIES} keep it readable"
    );

    // A browser carrying dozens of them still signs in, and they go away.
    let browser = Browser::new();
    let login = format!("{}/login", app.base);
    for i in 0..40 {
        browser.set_cookie(&login, &format!("{}; Path=/login", junk(i)));
    }
    let res = browser.get(&login).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_no_reflection(&res, &["pwned"]);
    let callback = authorize(&browser, &location(&res), "alice").await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &browser).await.as_deref(), Some("alice"));
    let forged_left = || {
        browser
            .cookies(&format!("{}/login/callback", app.base))
            .split("; ")
            .filter(|c| c.starts_with("hf_auth_login_0000"))
            .count()
    };
    for _ in 0..5 {
        if forged_left() == 0 {
            break;
        }
        assert_eq!(browser.get(&login).await.status(), StatusCode::SEE_OTHER);
    }
    assert_eq!(forged_left(), 0, "forged pending cookies are deleted");

    // The same flood on a callback is just ignored.
    for i in 0..300 {
        browser.set_cookie(&login, &format!("{}; Path=/login", junk(i)));
    }
    let res = browser
        .get(&format!(
            "{}/login/callback?code=x&state={}",
            app.base,
            "A".repeat(43)
        ))
        .await;
    let (status, _) = assert_clean(&app, res, &["pwned"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn huge_state_and_code_are_refused() {
    let app = app().await;
    let browser = Browser::new();
    // Under the 64 KiB limit of a URI, over anything legitimate.
    let huge = "PWNED".repeat(10_000);
    let res = browser
        .get(&format!(
            "{}/login/callback?code=abc&state={huge}",
            app.base
        ))
        .await;
    let (status, body) = assert_clean(&app, res, &["pwned"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("malformed state"), "{body}");
    assert!(!body.contains(&huge[..100]), "the state is not echoed");

    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let requests = app.mock.requests(MockEndpoint::Token);
    let res = browser
        .get(&with_param(&callback, "code", Some(&huge)))
        .await;
    let (status, body) = assert_clean(&app, res, &["pwned"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no usable code"), "{body}");
    assert!(!body.contains(&huge[..100]), "the code is not echoed");
    assert_eq!(
        app.mock.requests(MockEndpoint::Token),
        requests,
        "a huge code is not sent to the provider"
    );
    assert_eq!(whoami(&app, &browser).await, None);
    signed_in(&app, &browser, "alice").await;
}

#[tokio::test]
async fn non_utf8_query_strings_are_harmless() {
    let app = app().await;
    // `return_to` that decodes to invalid UTF-8 falls back to `/`.
    let browser = Browser::new();
    let res = browser
        .get(&format!("{}/login?return_to=%FF%FE", app.base))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let callback = authorize(&browser, &location(&res), "alice").await;
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let res = browser
        .get(&format!("{}/login?return_to=/ok%FF%FE", app.base))
        .await;
    assert_clean(&app, res, &[]).await;

    // Invalid UTF-8 in each callback parameter.
    let browser = Browser::new();
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let res = browser
        .get(&format!(
            "{}/login/callback?state=%FF%FE&code=%FF",
            app.base
        ))
        .await;
    let (status, _) = assert_clean(&app, res, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad_iss = format!("{}&iss=%FF%FE", with_param(&callback, "iss", None));
    let res = browser.get(&bad_iss).await;
    let (status, _) = assert_clean(&app, res, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an unreadable issuer");
    assert_eq!(whoami(&app, &browser).await, None);

    // A code that is not UTF-8 is refused by the provider, not by a crash.
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let res = browser
        .get(&format!(
            "{}&code=%FF%FE",
            with_param(&callback, "code", None)
        ))
        .await;
    let status = res.status();
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::BAD_GATEWAY,
        "{status}"
    );
    assert_no_reflection(&res, &[]);
    assert_eq!(whoami(&app, &browser).await, None);

    // Raw non-UTF-8 bytes in the request target.
    for target in [
        &b"/login?return_to=/\xff\xfe"[..],
        b"/login/callback?state=\xff\xfe&code=\xc3\x28",
    ] {
        let answer = raw_request(&app, target, "").await;
        assert!(
            !answer.starts_with("HTTP/1.1 5"),
            "{}",
            answer.lines().next().unwrap_or_default()
        );
        assert_still_serves(&app).await;
    }
    signed_in(&app, &Browser::new(), "alice").await;
}

/// Sends `GET {target} HTTP/1.1` with `headers` (each ending in CRLF) over a raw
/// socket; returns the answer's head, however many headers it has.
async fn raw_request(app: &TestApp, target: &[u8], headers: &str) -> String {
    let mut socket = TcpStream::connect(app.addr).await.unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\naccept: text/html\r\n");
    req.extend_from_slice(headers.as_bytes());
    req.extend_from_slice(b"connection: close\r\n\r\n");
    socket.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn header_injection_through_return_to_is_neutralised() {
    let app = app().await;
    // (target, whether it holds CR/LF at some level of decoding, so must become `/`)
    for (target, crlf) in [
        ("/\r\nSet-Cookie: pwned=1", true),
        ("/%0d%0aSet-Cookie:%20pwned=1", true),
        ("/%250d%250aSet-Cookie:%20pwned=1", true),
        ("/ok\nLocation: https://evil.example/pwned", true),
        ("/ok\"><script>pwned()</script>", false),
        // U+560A U+560D: servers that truncate characters to bytes make them CR LF.
        ("/ok%E5%98%8A%E5%98%8DSet-Cookie:%20pwned=1", false),
        ("/ok\u{560a}\u{560d}Set-Cookie: pwned=1", false),
    ] {
        let browser = Browser::new();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/login", app.base),
            [("return_to", target)],
        )
        .unwrap();
        let res = browser.get(url.as_str()).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{target:?}");
        assert_no_reflection(&res, &["evil.example", "<script", "pwned"]);
        let callback = authorize(&browser, &location(&res), "alice").await;
        let res = browser.get(&callback).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{target:?}");
        assert_no_reflection(&res, &["evil.example", "<script", "\""]);
        for cookie in res.headers().get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().unwrap();
            assert!(!cookie.contains("pwned"), "{target:?}: {cookie}");
        }
        let to = location(&res);
        if crlf {
            assert_eq!(to, "/", "{target:?}");
        }
        assert!(
            to.starts_with('/') && !to.starts_with("//"),
            "{target:?} -> {to}"
        );
        assert!(
            to.bytes().all(|b| b.is_ascii_graphic()),
            "{target:?} -> {to:?}"
        );
        assert!(
            browser
                .cookies(&format!("{}/", app.base))
                .split("; ")
                .all(|c| !c.starts_with("pwned")),
            "{target:?}"
        );
        // The error page's retry link carries the return path escaped.
        let authorize_url = {
            let res = browser.get(url.as_str()).await;
            location(&res)
        };
        app.mock
            .add_fault(MockFault::AuthorizeError("server_error".into()));
        let callback = authorize(&browser, &authorize_url, "alice").await;
        let res = browser.get(&callback).await;
        assert_no_reflection(&res, &["pwned"]);
        let body = res.text().await.unwrap();
        assert!(!body.contains("<script>pwned"), "{body}");
        assert!(!body.contains("\r\nSet-Cookie"), "{body}");
        app.mock.clear_faults();
    }
    // Raw CR/LF in the request line never reaches the layer.
    let answer = raw_request(&app, b"/login?return_to=/\r\nSet-Cookie: pwned=1", "").await;
    assert!(!answer.contains("pwned"), "{answer}");
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    assert_still_serves(&app).await;
}

#[tokio::test]
async fn provider_error_text_is_not_reflected_raw() {
    let app = app().await;
    let browser = Browser::new();
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let state = query_param(&callback, "state").unwrap();
    let iss = query_param(&callback, "iss").unwrap();
    let url = reqwest::Url::parse_with_params(
        &format!("{}/login/callback", app.base),
        [
            ("state", state.as_str()),
            ("iss", iss.as_str()),
            ("error", "evil\r\nSet-Cookie: pwned=1<script>"),
            (
                "error_description",
                "<script>alert('pwned')</script>\r\nLocation: https://evil.example",
            ),
        ],
    )
    .unwrap();
    let res = browser.get(url.as_str()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_no_reflection(&res, &["pwned", "evil.example"]);
    let body = res.text().await.unwrap();
    assert!(!body.contains("<script>"), "{body}");
    assert!(!body.contains('\r'), "control characters are removed");
    assert_eq!(whoami(&app, &browser).await, None);
}

/// Eight copies of one callback race on two worker threads, all sent at once, while the
/// provider takes 300 ms over the code exchange (so they overlap): one signs in, one
/// code exchange is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_replayed_in_sequence_or_in_parallel_signs_in_once() {
    const COPIES: usize = 8;
    let app = app().await;
    let browser = Browser::new();
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    let cookies = browser.cookies(&callback);
    app.mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_millis(300),
    });
    let exchanges = app.mock.requests(MockEndpoint::Token);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(COPIES));
    let attempts: Vec<_> = (0..COPIES)
        .map(|_| {
            let callback = callback.clone();
            let cookies = cookies.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                send(Method::GET, &callback, &[(header::COOKIE, cookies)])
                    .await
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    app.mock.clear_faults();
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(won, 1, "exactly one callback wins: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    assert_eq!(
        app.mock.requests(MockEndpoint::Token),
        exchanges + 1,
        "one code exchange"
    );
    // And in sequence, by the browser itself.
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_still_serves(&app).await;
}

#[tokio::test]
async fn duplicated_query_parameters_are_refused_or_harmless() {
    let app = app().await;
    let browser = Browser::new();
    let callback = {
        let authorize_url = start_login(&app, &browser, "/").await;
        authorize(&browser, &authorize_url, "alice").await
    };
    for name in ["state", "code", "iss", "error"] {
        let url = match query_param(&callback, name) {
            Some(value) => format!("{callback}&{name}={value}"),
            None => format!("{callback}&{name}=access_denied&{name}=access_denied"),
        };
        let res = browser.get(&url).await;
        let (status, body) = assert_clean(&app, res, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert!(body.contains("repeated"), "{name}: {body}");
    }
    assert_eq!(whoami(&app, &browser).await, None);
    // The untouched callback still works: refusing duplicates consumed nothing.
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);

    // Two return paths: whichever is used, it is a local one. Repeated `scope`s are
    // incremental consent (the user sees them on the consent screen): they reach the
    // authorize URL as scope tokens, without their control characters.
    let browser = Browser::new();
    for query in [
        "return_to=/first&return_to=//evil.example",
        "return_to=//evil.example&return_to=/second",
        "scope=read-repos&scope=extra%0d%0a",
    ] {
        let res = browser.get(&format!("{}/login?{query}", app.base)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{query}");
        assert_no_reflection(&res, &["evil.example", "%0d", "%0a"]);
        let callback = authorize(&browser, &location(&res), "alice").await;
        let res = browser.get(&callback).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{query}");
        let to = location(&res);
        assert!(to.starts_with('/') && !to.starts_with("//"), "{to}");
        assert!(!to.contains("evil"), "{to}");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let app = app().await;
    for (path, allow) in [
        ("/login", "GET"),
        ("/login/callback", "GET"),
        ("/logout", "GET, POST"),
    ] {
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::from_bytes(b"PWNED").unwrap(),
        ] {
            if path == "/logout" && method == Method::POST {
                continue;
            }
            let res = send(
                method.clone(),
                &format!("{}{path}?return_to=/pwned&state=pwned", app.base),
                &[],
            )
            .await;
            assert_eq!(
                res.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(res.headers()[header::ALLOW], allow, "{method} {path}");
            assert!(
                res.headers().get(header::SET_COOKIE).is_none(),
                "{method} {path} sets no cookie"
            );
            assert_clean(&app, res, &["pwned"]).await;
        }
    }
    // HEAD is a GET without a body.
    let res = send(Method::HEAD, &format!("{}/login", app.base), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
