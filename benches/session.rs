//! The layer's hot path: every request passes through `HfAuthLayer`, which reads (and,
//! when present, opens) the session cookie before calling the inner service.
//!
//! Setup signs in for real (the example app and `MockHfProvider` on loopback sockets, a
//! browser-like `reqwest` client) to get genuine session cookies; the timed loop then
//! drives a separately built layer with the same secret over a trivial service.
//!
//! The `guards` group puts the same valid session through three stacked guards that
//! pass (`RequireLogin`, `RequireScopes`, `RequireOrg::role`) and through none, to show
//! what passing guards cost.
//!
//! ```sh
//! cargo bench --all-features --bench session
//! ```
#![allow(unreachable_pub)]

#[path = "../examples/axum_app.rs"]
#[allow(dead_code)]
mod example;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{
    HfAuthConfig, HfAuthLayer, HfUser, OrgRole, RequireLogin, RequireOrg, RequireScopes,
};

const SECRET: &str = "bench secret: thirty-two characters or more, really";

/// The real cookies of a sign-in, and a configuration that opens them.
struct Fixture {
    config: HfAuthConfig,
    alice: HeaderValue,
    carol: HeaderValue,
}

/// The `Location` of a redirect, made absolute against `base`.
fn location(res: &reqwest::Response, base: &str) -> String {
    assert!(
        res.status().is_redirection(),
        "expected a redirect, got {}",
        res.status()
    );
    let loc = res.headers()[header::LOCATION].to_str().unwrap();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_owned()
    }
}

/// Signs `user` in through the browser flow; returns the `Cookie` header a browser
/// would send afterwards (the session cookie and its chunks).
async fn sign_in(base: &str, user: &str) -> HeaderValue {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let get = |url: String| http.get(url).header(header::ACCEPT, "text/html").send();
    let res = get(format!("{base}/login?return_to=/")).await.unwrap();
    let authorize = location(&res, base);
    let res = get(format!("{authorize}&mock_user={user}")).await.unwrap();
    let callback = location(&res, base);
    let res = get(callback).await.unwrap();
    let pairs: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        // The session cookie and its chunks, not the deletion of the sign-in cookie.
        .filter(|v| v.starts_with("hf_auth") && !v.split("; ").any(|a| a == "Max-Age=0"))
        .map(|v| v.split(';').next().unwrap())
        .collect();
    assert!(!pairs.is_empty(), "sign-in as {user} set no session cookie");
    HeaderValue::from_str(&pairs.join("; ")).unwrap()
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockHfProvider::start().await.expect("mock provider starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = |mock: &MockHfProvider| {
            example::mock_config(mock, &base)
                .with_secret(SECRET)
                .build()
                .unwrap()
        };
        let app = example::app(config(&mock));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let alice = sign_in(&base, "alice").await;
        let carol = sign_in(&base, "carol").await;
        server.abort();
        Fixture {
            config: config(&mock),
            alice,
            carol,
        }
    })
}

/// `value` with one character of the session cookie's sealed value changed.
fn tampered(value: &HeaderValue) -> HeaderValue {
    let mut s = value.to_str().unwrap().to_owned();
    let start = s.find('=').unwrap() + 1;
    let end = s.find(';').unwrap_or(s.len());
    // The middle of the value: inside the ciphertext, past key id and nonce.
    let i = (start + end) / 2;
    let replacement = if &s[i..=i] == "A" { "B" } else { "A" };
    s.replace_range(i..=i, replacement);
    HeaderValue::from_str(&s).unwrap()
}

fn request(cookie: Option<&HeaderValue>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/").header(header::ACCEPT, "text/html");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie.clone());
    }
    req.body(Full::default()).unwrap()
}

/// Times one request with `cookie` through a fresh clone of `svc`.
fn time<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    svc: &S,
    cookie: Option<&HeaderValue>,
) where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| {
        b.iter_batched(
            || (svc.clone(), request(cookie)),
            |(svc, req)| rt.block_on(async { black_box(svc.oneshot(req).await.unwrap()) }),
            BatchSize::SmallInput,
        );
    });
}

fn bench(c: &mut Criterion) {
    let fixture = fixture();
    let alice_tampered = tampered(&fixture.alice);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The inner service answers with the signed-in username (empty when none).
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let user = req.extensions().get::<HfUser>();
        let body = user.map_or_else(Bytes::new, |u| Bytes::from(u.username().to_owned()));
        Ok::<_, Infallible>(Response::new(Full::new(body)))
    });
    let auth = HfAuthLayer::new(fixture.config);
    let svc = auth.layer(inner);
    let guarded = auth.layer(
        ServiceBuilder::new()
            .layer(RequireLogin)
            .layer(RequireScopes::all(["openid", "profile"]))
            .layer(RequireOrg::role("acme", OrgRole::Admin))
            .service(inner),
    );

    // Once, outside the timed loops: each case takes the path it is named after.
    let check = |cookie: Option<&HeaderValue>| -> (String, Vec<String>) {
        rt.block_on(async {
            let res = svc.clone().oneshot(request(cookie)).await.unwrap();
            let set_cookies = res.headers().get_all(header::SET_COOKIE).iter();
            let set_cookies = set_cookies
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (String::from_utf8(body.to_vec()).unwrap(), set_cookies)
        })
    };
    assert_eq!(check(None), (String::new(), vec![]));
    assert_eq!(check(Some(&fixture.alice)), ("alice".into(), vec![]));
    assert_eq!(check(Some(&fixture.carol)), ("carol".into(), vec![]));
    assert!(
        fixture.carol.len() > fixture.alice.len(),
        "carol's session is the large one"
    );
    let (user, cleared) = check(Some(&alice_tampered));
    assert_eq!(user, "", "a tampered cookie yields no user");
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("hf_auth=;") && c.contains("Max-Age=0")),
        "a tampered cookie is cleared: {cleared:?}"
    );
    eprintln!(
        "Cookie header: alice {} bytes, carol {} bytes",
        fixture.alice.len(),
        fixture.carol.len()
    );

    let mut group = c.benchmark_group("layer");
    for (name, cookie) in [
        ("no_cookie", None),
        ("valid_session", Some(&fixture.alice)),
        ("valid_session_40_orgs", Some(&fixture.carol)),
        ("tampered_cookie", Some(&alice_tampered)),
    ] {
        time(&mut group, &rt, name, &svc, cookie);
    }
    group.finish();

    let guarded_answer = rt.block_on(async {
        let res = guarded
            .clone()
            .oneshot(request(Some(&fixture.alice)))
            .await
            .unwrap();
        res.into_body().collect().await.unwrap().to_bytes()
    });
    assert_eq!(
        &guarded_answer[..],
        b"alice",
        "alice passes the three guards"
    );
    let mut group = c.benchmark_group("guards");
    let alice = Some(&fixture.alice);
    time(&mut group, &rt, "none", &svc, alice);
    time(&mut group, &rt, "three_passing", &guarded, alice);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
