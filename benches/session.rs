//! The layer's hot path beside a bare route and beside tower-sessions, in one run.
//!
//! Setup signs in for real (the example app and `MockHfProvider` on loopback sockets, a
//! browser-like `reqwest` client) to get genuine session cookies for alice (2
//! organizations) and carol (41), and OAuth tokens for both. The timed loop then sends
//! one request at a time through an axum router on a current-thread runtime; every
//! router's handler extracts the user and answers with the username:
//!
//! | case | router |
//! |---|---|
//! | `bare` | no layer; the handler answers the same username |
//! | `tower_sessions` | tower-sessions 0.15, private cookie, `MemoryStore` holding the user's public profile (what `HfUser` serializes to), read with `Session::get` |
//! | `hit` | `HfAuthLayer`, the session found in the opened-session cache |
//! | `miss` | `HfAuthLayer` with the cache off (`with_session_cache_bytes(0)`): every request opens the cookie |
//! | `bearer_hit` | `HfAuthLayer` with bearer tokens, the token found in the bearer cache |
//! | `redis_hit` | (feature `redis`) sessions in a local `redis-server`, found in the opened-session cache |
//! | `redis_miss` | (feature `redis`) the same with the cache off: one Redis round trip per request |
//!
//! Then `miss_stages` (with feature `fuzzing`) times each step of opening a cookie:
//! base64, AES-GCM, the profile text (LZ4, hex runs unpacked), the whole record
//! decoded; and, for comparison, decoding the same record in the JSON format earlier
//! versions wrote. `layer` and `guards` time the cheap paths (no cookie,
//! a tampered one) and three passing guards, behind the layer and alone (over a
//! service that answers at once, the request signed in beforehand). At the end the
//! ratios are printed and written, with every mean, to `{target}/criterion/hot_path.csv`
//! (`scripts/bench_chart.py` draws the chart of BENCHMARKS.md from it).
//!
//! The overheads over the bare route are small beside how much this shared machine
//! drifts between criterion's cases, so they are also measured paired (group `paired`
//! in the CSV): blocks of requests alternate between the bare route and each case,
//! and the median of the blocks' differences is kept, with the median of the bare
//! route's own blocks (`paired,bare`: how fast the machine ran meanwhile).
//!
//! ```sh
//! cargo bench --all-features --bench session -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(unreachable_pub)]

#[path = "../examples/axum_app.rs"]
#[allow(dead_code)]
mod example;
#[cfg(feature = "redis")]
#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{
    HfAuthConfigBuilder, HfAuthLayer, HfUser, OrgRole, RequireLogin, RequireOrg, RequireScopes,
};
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, cookie::Key};

const SECRET: &str = "bench secret: thirty-two characters or more, really";
const PROFILES: [&str; 2] = ["2_orgs", "41_orgs"];

/// A signed-in user: the browser's `Cookie` header and an OAuth token.
struct Signed {
    cookie: HeaderValue,
    token: String,
}

/// The real cookies and tokens of two sign-ins, and the provider that made them (kept
/// running for the bearer checks).
struct Fixture {
    /// Runs the mock provider.
    _rt: tokio::runtime::Runtime,
    mock: MockHfProvider,
    base: String,
    users: [Signed; 2],
    /// The Redis server and the `Cookie` headers of the same two users signed in with
    /// sessions in it.
    #[cfg(feature = "redis")]
    redis: (redis_server::RedisServer, [HeaderValue; 2]),
}

impl Fixture {
    fn config(&self) -> HfAuthConfigBuilder {
        example::mock_config(&self.mock, &self.base).with_secret(SECRET)
    }
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
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    #[cfg(feature = "redis")]
    let redis = redis_server::RedisServer::start();
    let (mock, base, cookies, _stored) = rt.block_on(async {
        let mock = MockHfProvider::start().await.expect("mock provider starts");
        // Signs alice and carol in on the example app with `customize`d settings; the
        // app's base URL and their `Cookie` headers.
        let signed = |customize: fn(HfAuthConfigBuilder, &str) -> HfAuthConfigBuilder,
                      arg: String| {
            let mock = &mock;
            async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let base = format!("http://{}", listener.local_addr().unwrap());
                let config = example::mock_config(mock, &base).with_secret(SECRET);
                let app = example::app(customize(config, &arg).build().unwrap());
                let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
                let users = [sign_in(&base, "alice").await, sign_in(&base, "carol").await];
                server.abort();
                (base, users)
            }
        };
        let (base, cookies) = signed(|b, _| b, String::new()).await;
        #[cfg(feature = "redis")]
        let stored = signed(with_redis, redis.url()).await.1;
        #[cfg(not(feature = "redis"))]
        let stored = ();
        (mock, base, cookies, stored)
    });
    let hour = Duration::from_secs(3600);
    let [alice, carol] = cookies;
    let token = |user| mock.issue_oauth_token(user, &["openid", "profile"], hour);
    Fixture {
        users: [
            Signed {
                cookie: alice,
                token: token("alice"),
            },
            Signed {
                cookie: carol,
                token: token("carol"),
            },
        ],
        _rt: rt,
        mock,
        base,
        #[cfg(feature = "redis")]
        redis: (redis, _stored),
    }
}

/// `b` with sessions in the Redis server at `url`.
#[cfg(feature = "redis")]
fn with_redis(b: HfAuthConfigBuilder, url: &str) -> HfAuthConfigBuilder {
    b.with_session_store(tower_hf_auth::SessionStore::redis(url))
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

/// A `GET /` with these headers.
fn request(headers: &[(header::HeaderName, &HeaderValue)]) -> Request<Full<Bytes>> {
    let mut req = Request::get("/").header(header::ACCEPT, "text/html");
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.body(Full::default()).unwrap()
}

fn with_cookie(cookie: Option<&HeaderValue>) -> Request<Full<Bytes>> {
    match cookie {
        Some(cookie) => request(&[(header::COOKIE, cookie)]),
        None => request(&[]),
    }
}

/// Times one request made by `make` through a fresh clone of `svc`.
fn time<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    svc: &S,
    make: impl Fn() -> Request<Full<Bytes>>,
) where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    if let Some((case, n)) = counting() {
        if case == name {
            count(rt, svc, &make, n);
        }
        return;
    }
    group.bench_function(name, |b| {
        b.iter_batched(
            || (svc.clone(), make()),
            |(svc, req)| rt.block_on(async { black_box(svc.oneshot(req).await.unwrap()) }),
            BatchSize::SmallInput,
        );
    });
}

/// In counting mode (`HF_AUTH_COUNT=<case>`, a case's name without its group:
/// `hit/2_orgs`, `three_passing`, …), the case to run and how many times
/// (`HF_AUTH_COUNT_N`, default 2,000). Then nothing is timed: the case's requests go
/// through [`measured`], for `scripts/instructions.sh` to count under callgrind.
fn counting() -> Option<(String, usize)> {
    let case = std::env::var("HF_AUTH_COUNT").ok()?;
    let n = std::env::var("HF_AUTH_COUNT_N")
        .ok()
        .and_then(|n| n.parse().ok());
    Some((case, n.unwrap_or(2000)))
}

/// Sends `n` requests made by `make` through fresh clones of `svc` (made beforehand),
/// inside [`measured`], after three to warm up.
fn count<S>(rt: &Runtime, svc: &S, make: &dyn Fn() -> Request<Full<Bytes>>, n: usize)
where
    S: Service<Request<Full<Bytes>>> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..3 {
        rt.block_on(svc.clone().oneshot(make())).unwrap();
    }
    let mut inputs: Vec<_> = (0..n).map(|_| (svc.clone(), make())).collect();
    let answered = measured(rt, &mut inputs);
    assert_eq!(answered.len(), n);
}

/// The requests callgrind counts (`--toggle-collect='*measured*'`): each through its
/// own clone, the responses kept (dropped afterwards, as criterion does), the inputs'
/// buffer freed afterwards too.
#[inline(never)]
fn measured<S>(rt: &Runtime, inputs: &mut Vec<(S, Request<Full<Bytes>>)>) -> Vec<S::Response>
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut answered = Vec::with_capacity(inputs.len());
    for (svc, req) in inputs.drain(..) {
        answered.push(rt.block_on(svc.oneshot(req)).unwrap());
    }
    answered
}

/// The body `svc` answers `req` with.
fn answer<S, B>(rt: &Runtime, svc: &S, req: Request<Full<Bytes>>) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let res = svc.clone().oneshot(req).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    })
}

/// The user's public profile as an app would keep it in tower-sessions: what
/// `HfUser` serializes to.
#[derive(Serialize, Deserialize)]
struct StoredUser {
    id: String,
    username: String,
    name: Option<String>,
    avatar_url: Option<String>,
    profile_url: Option<String>,
    website: Option<String>,
    email: Option<String>,
    email_verified: bool,
    is_pro: bool,
    can_pay: Option<bool>,
    orgs: Vec<StoredOrg>,
    scopes: Vec<String>,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredOrg {
    sub: String,
    preferred_username: String,
    name: Option<String>,
    picture: Option<String>,
    plan: Option<String>,
    #[serde(rename = "roleInOrg")]
    role: Option<String>,
    #[serde(rename = "canPay")]
    can_pay: Option<bool>,
    #[serde(rename = "securityRestrictions", default)]
    security_restrictions: Vec<String>,
}

/// The tower-sessions router: `/` reads the stored user, `/store` stores the JSON body.
fn tower_sessions_app() -> Router {
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_private(Key::generate());
    Router::new()
        .route(
            "/",
            get(|session: Session| async move {
                let user: StoredUser = session.get("user").await.unwrap().unwrap();
                user.username
            }),
        )
        .route(
            "/store",
            axum::routing::post(|session: Session, body: String| async move {
                let user: StoredUser = serde_json::from_str(&body).unwrap();
                session.insert("user", user).await.unwrap();
            }),
        )
        .layer(layer)
        .with_state(())
}

/// A tower-sessions cookie whose session holds `profile` (the JSON of an `HfUser`).
fn tower_sessions_cookie(rt: &Runtime, app: &Router, profile: String) -> HeaderValue {
    let req = Request::post("/store").body(axum::body::Body::from(profile));
    let res = rt.block_on(app.clone().oneshot(req.unwrap())).unwrap();
    let set = res.headers()[header::SET_COOKIE].to_str().unwrap();
    HeaderValue::from_str(set.split(';').next().unwrap()).unwrap()
}

/// The five contenders on both profiles. Every router is finished with
/// `with_state(())`, as `axum::serve` finishes the app it is given: its handlers become
/// services once, not again on every request.
fn per_request(c: &mut Criterion, rt: &Runtime, fx: &Fixture) {
    let hit = hf(fx.config());
    let miss = hf(fx.config().with_session_cache_bytes(0));
    let bearer = hf(fx.config().with_bearer_tokens(true));
    let ts = tower_sessions_app();
    #[cfg(feature = "redis")]
    let (redis_hit, redis_miss) = {
        let url = fx.redis.0.url();
        let hit = hf(with_redis(fx.config(), &url));
        let miss = hf(with_redis(fx.config(), &url).with_session_cache_bytes(0));
        (hit, miss)
    };

    let mut paired_csv = String::new();
    let mut group = c.benchmark_group("per_request");
    for (profile, (user, expected)) in PROFILES.iter().zip(fx.users.iter().zip(["alice", "carol"]))
    {
        let bare = bare(expected);
        let json_req = Request::get("/json").header(header::COOKIE, &user.cookie);
        let json = answer(rt, &hit, json_req.body(Full::default()).unwrap());
        let ts_cookie = tower_sessions_cookie(rt, &ts, json);
        let bearer_value = HeaderValue::from_str(&format!("Bearer {}", user.token)).unwrap();
        let cookie = || request(&[(header::COOKIE, &user.cookie)]);
        let ts_req = || request(&[(header::COOKIE, &ts_cookie)]);
        let bearer_req = || request(&[(header::AUTHORIZATION, &bearer_value)]);
        // Once, outside the timed loops: each case answers with the user (and warms
        // its cache).
        for (router, req) in [
            (&bare, request(&[])),
            (&ts, ts_req()),
            (&hit, cookie()),
            (&miss, cookie()),
            (&bearer, bearer_req()),
        ] {
            assert_eq!(answer(rt, router, req), *expected);
        }
        time(&mut group, rt, &format!("bare/{profile}"), &bare, || {
            request(&[])
        });
        time(
            &mut group,
            rt,
            &format!("tower_sessions/{profile}"),
            &ts,
            ts_req,
        );
        time(&mut group, rt, &format!("hit/{profile}"), &hit, cookie);
        time(&mut group, rt, &format!("miss/{profile}"), &miss, cookie);
        time(
            &mut group,
            rt,
            &format!("bearer_hit/{profile}"),
            &bearer,
            bearer_req,
        );
        let bare_req = || request(&[]);
        let mut bare_ns = Vec::new();
        for (case, (over, base)) in [
            ("hit", paired_ns(rt, (&bare, &bare_req), (&hit, &cookie))),
            ("miss", paired_ns(rt, (&bare, &bare_req), (&miss, &cookie))),
            (
                "bearer_hit",
                paired_ns(rt, (&bare, &bare_req), (&bearer, &bearer_req)),
            ),
        ] {
            let _ = writeln!(paired_csv, "paired,{case}_over_bare,{profile},{over:.1}");
            bare_ns.push(base);
        }
        // The run's pace: the bare route's own time in those pairs.
        bare_ns.sort_by(f64::total_cmp);
        let _ = writeln!(paired_csv, "paired,bare,{profile},{:.1}", bare_ns[1]);
        #[cfg(feature = "redis")]
        {
            let i = usize::from(*profile != PROFILES[0]);
            let stored = &fx.redis.1[i];
            let stored_req = || request(&[(header::COOKIE, stored)]);
            for router in [&redis_hit, &redis_miss] {
                assert_eq!(answer(rt, router, stored_req()), *expected);
            }
            // The revocation channel is up before the cache is trusted.
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
            time(
                &mut group,
                rt,
                &format!("redis_hit/{profile}"),
                &redis_hit,
                stored_req,
            );
            time(
                &mut group,
                rt,
                &format!("redis_miss/{profile}"),
                &redis_miss,
                stored_req,
            );
        }
    }
    group.finish();
    std::fs::write(paired_path(), paired_csv).unwrap();
}

/// The layer's router: `/` answers the username the `HfUser` extractor finds, `/json`
/// the user as JSON.
fn hf(config: HfAuthConfigBuilder) -> Router {
    Router::new()
        .route(
            "/",
            get(|user: HfUser| async move { user.username().to_owned() }),
        )
        .route("/json", get(|user: HfUser| async move { axum::Json(user) }))
        .layer(HfAuthLayer::new(config.build().unwrap()))
        .with_state(())
}

/// The bare route: `/` answers `name` (a fresh `String`, as the others do).
fn bare(name: &str) -> Router {
    let name = name.to_owned();
    Router::new()
        .route(
            "/",
            get(move || {
                let name = name.clone();
                async move { name }
            }),
        )
        .with_state(())
}

/// Requests in a block of [`paired_ns`], and blocks.
const BLOCK: usize = 400;
const BLOCKS: usize = 101;

/// How much longer a request through `with` takes than one through `base`, in
/// nanoseconds: the median, over [`BLOCKS`] blocks, of the difference of the mean times
/// of [`BLOCK`] requests through each, the two timed one after the other (in turn
/// first), so that the machine's drift hits both alike. As with [`time`], each request
/// goes through a fresh clone made beforehand and its response is dropped afterwards.
/// Second: the median of `base`'s own blocks, the pace of the machine meanwhile.
fn paired_ns<A, B>(
    rt: &Runtime,
    base: (&A, &dyn Fn() -> Request<Full<Bytes>>),
    with: (&B, &dyn Fn() -> Request<Full<Bytes>>),
) -> (f64, f64)
where
    A: Service<Request<Full<Bytes>>> + Clone,
    B: Service<Request<Full<Bytes>>> + Clone,
{
    if counting().is_some() {
        return (f64::NAN, f64::NAN);
    }
    fn block<S: Service<Request<Full<Bytes>>> + Clone>(
        rt: &Runtime,
        (svc, make): (&S, &dyn Fn() -> Request<Full<Bytes>>),
    ) -> f64 {
        let inputs: Vec<_> = (0..BLOCK).map(|_| (svc.clone(), make())).collect();
        let mut outputs = Vec::with_capacity(BLOCK);
        let start = Instant::now();
        for (svc, req) in inputs {
            outputs.push(rt.block_on(svc.oneshot(req)).ok());
        }
        let took = start.elapsed();
        drop(black_box(outputs));
        took.as_nanos() as f64 / BLOCK as f64
    }
    // Warm both up first.
    block(rt, base);
    block(rt, with);
    let (mut differences, mut bases): (Vec<f64>, Vec<f64>) = (0..BLOCKS)
        .map(|i| {
            if i % 2 == 0 {
                let a = block(rt, base);
                (block(rt, with) - a, a)
            } else {
                let b = block(rt, with);
                let a = block(rt, base);
                (b - a, a)
            }
        })
        .unzip();
    differences.sort_by(f64::total_cmp);
    bases.sort_by(f64::total_cmp);
    (differences[BLOCKS / 2], bases[BLOCKS / 2])
}

/// Where [`per_request`] and [`layer_and_guards`] leave their paired overheads for
/// [`report`].
fn paired_path() -> PathBuf {
    target_dir().join("criterion/paired.csv")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from)
}

/// The steps of a miss, one by one.
#[cfg(feature = "fuzzing")]
fn miss_stages(c: &mut Criterion, fx: &Fixture) {
    use tower_hf_auth::fuzzing::SessionStages;
    let stages = SessionStages::new(SECRET, fx.mock.client_id(), "hf_auth");
    let mut group = c.benchmark_group("miss_stages");
    for (profile, user) in PROFILES.iter().zip(&fx.users) {
        // The chunks' values, joined in order (`hf_auth`, `hf_auth.1`, …).
        let value: String = user
            .cookie
            .to_str()
            .unwrap()
            .split("; ")
            .map(|pair| pair.split_once('=').unwrap().1)
            .collect();
        let plain = stages.open(&value).expect("the session opens");
        assert!(SessionStages::text(&plain).is_some());
        assert!(SessionStages::decode(&plain).is_some());
        // The same record as earlier versions wrote it (JSON, DEFLATE over 1 KiB).
        let json_plain = SessionStages::as_json_format(&plain).unwrap();
        assert_eq!(
            SessionStages::decode(&json_plain),
            SessionStages::decode(&plain)
        );
        group.bench_function(format!("base64/{profile}"), |b| {
            b.iter(|| SessionStages::base64(black_box(&value)));
        });
        group.bench_function(format!("base64_aes_gcm/{profile}"), |b| {
            b.iter(|| stages.open(black_box(&value)));
        });
        group.bench_function(format!("text/{profile}"), |b| {
            b.iter(|| SessionStages::text(black_box(&plain)));
        });
        group.bench_function(format!("decode/{profile}"), |b| {
            b.iter(|| SessionStages::decode(black_box(&plain)));
        });
        group.bench_function(format!("decode_json_format/{profile}"), |b| {
            b.iter(|| SessionStages::decode(black_box(&json_plain)));
        });
    }
    group.finish();
}

/// The cheap paths, and what passing guards cost.
fn layer_and_guards(c: &mut Criterion, rt: &Runtime, fx: &Fixture) {
    // The inner service answers with the signed-in username (empty when none).
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let user = req.extensions().get::<HfUser>();
        let body = user.map_or_else(Bytes::new, |u| Bytes::from(u.username().to_owned()));
        Ok::<_, Infallible>(Response::new(Full::new(body)))
    });
    let auth = HfAuthLayer::new(fx.config().build().unwrap());
    let svc = auth.layer(inner);
    let three_guards = ServiceBuilder::new()
        .layer(RequireLogin)
        .layer(RequireScopes::all(["openid", "profile"]))
        .layer(RequireOrg::role("acme", OrgRole::Admin));
    let guarded = auth.layer(three_guards.service(inner));
    let alice = &fx.users[0].cookie;
    let alice_tampered = tampered(alice);
    assert_eq!(answer(rt, &svc, with_cookie(None)), "");
    assert_eq!(answer(rt, &svc, with_cookie(Some(&alice_tampered))), "");
    assert_eq!(answer(rt, &guarded, with_cookie(Some(alice))), "alice");

    let mut group = c.benchmark_group("layer");
    time(&mut group, rt, "no_cookie", &svc, || with_cookie(None));
    time(&mut group, rt, "tampered_cookie", &svc, || {
        with_cookie(Some(&alice_tampered))
    });
    group.finish();
    let mut group = c.benchmark_group("guards");
    time(&mut group, rt, "none", &svc, || with_cookie(Some(alice)));
    time(&mut group, rt, "three_passing", &guarded, || {
        with_cookie(Some(alice))
    });
    group.finish();
    let alice_req = || with_cookie(Some(alice));
    let (three, _) = paired_ns(rt, (&svc, &alice_req), (&guarded, &alice_req));

    // The guards alone, without the layer's hit around them (about 7 times their cost,
    // and as noisy): a request the layer signed alice into, through the three guards
    // over a service that answers at once, against that service alone.
    let kept = Arc::new(Mutex::new(None));
    let keep = auth.layer(service_fn({
        let kept = kept.clone();
        move |req: Request<Full<Bytes>>| {
            *kept.lock().unwrap() = req.extensions().get::<HfUser>().cloned();
            std::future::ready(Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())))
        }
    }));
    rt.block_on(keep.oneshot(with_cookie(Some(alice)))).unwrap();
    let user = kept
        .lock()
        .unwrap()
        .take()
        .expect("the layer signed alice in");
    let signed_in = || {
        let mut req = with_cookie(None);
        req.extensions_mut().insert(user.clone());
        req
    };
    let at_once = service_fn(|_: Request<Full<Bytes>>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())))
    });
    let three_alone = three_guards.service(at_once);
    let res = rt
        .block_on(three_alone.clone().oneshot(signed_in()))
        .unwrap();
    assert_eq!(res.status(), http::StatusCode::OK, "the three guards pass");
    let mut group = c.benchmark_group("guards");
    time(&mut group, rt, "alone_none", &at_once, signed_in);
    time(
        &mut group,
        rt,
        "alone_three_passing",
        &three_alone,
        signed_in,
    );
    group.finish();
    let (three_alone, _) = paired_ns(rt, (&at_once, &signed_in), (&three_alone, &signed_in));

    let mut paired = std::fs::read_to_string(paired_path()).unwrap_or_default();
    let _ = writeln!(paired, "paired,each_passing_guard,,{:.1}", three / 3.0);
    let _ = writeln!(
        paired,
        "paired,each_passing_guard_alone,,{:.1}",
        three_alone / 3.0
    );
    std::fs::write(paired_path(), paired).unwrap();
}

/// Criterion's mean for `group/id`, in nanoseconds, if it ran.
fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(id.replace('/', "_"))
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints the targets' ratios and writes every mean to `hot_path.csv`.
fn report() {
    let mut csv = String::from("group,case,profile,mean_ns\n");
    let cases = [
        "bare",
        "tower_sessions",
        "hit",
        "miss",
        "bearer_hit",
        "redis_hit",
        "redis_miss",
    ];
    let stages = [
        "base64",
        "base64_aes_gcm",
        "text",
        "decode",
        "decode_json_format",
    ];
    for (group, names) in [("per_request", &cases[..]), ("miss_stages", &stages[..])] {
        for name in names {
            for profile in PROFILES {
                if let Some(ns) = mean_ns(group, &format!("{name}/{profile}")) {
                    let _ = writeln!(csv, "{group},{name},{profile},{ns:.1}");
                }
            }
        }
    }
    for (group, id) in [
        ("layer", "no_cookie"),
        ("layer", "tampered_cookie"),
        ("guards", "none"),
        ("guards", "three_passing"),
        ("guards", "alone_none"),
        ("guards", "alone_three_passing"),
    ] {
        if let Some(ns) = mean_ns(group, id) {
            let _ = writeln!(csv, "{group},{id},,{ns:.1}");
        }
    }
    let paired = std::fs::read_to_string(paired_path()).unwrap_or_default();
    csv.push_str(&paired);
    let path = target_dir().join("criterion/hot_path.csv");
    std::fs::write(&path, &csv).unwrap();
    eprintln!("\nmeans written to {}", path.display());

    let get = |case: &str, profile: &str| mean_ns("per_request", &format!("{case}/{profile}"));
    eprintln!("\nper request, this run       2 orgs      41 orgs");
    let row = |label: &str, value: &dyn Fn(&str) -> Option<String>| {
        let cells: Vec<String> = PROFILES
            .iter()
            .map(|p| value(p).unwrap_or_else(|| "-".into()))
            .collect();
        eprintln!("{label:<26} {:>10}  {:>10}", cells[0], cells[1]);
    };
    for case in cases {
        row(&format!("{case} (µs)"), &|p| {
            get(case, p).map(|ns| format!("{:.2}", ns / 1e3))
        });
    }
    for case in ["hit", "miss", "bearer_hit", "redis_hit", "redis_miss"] {
        row(&format!("{case} over bare (µs)"), &|p| {
            Some(format!("{:.2}", (get(case, p)? - get("bare", p)?) / 1e3))
        });
    }
    row("tower_sessions / hit", &|p| {
        Some(format!(
            "{:.1}x",
            get("tower_sessions", p)? / get("hit", p)?
        ))
    });
    row("redis_hit / hit", &|p| {
        Some(format!("{:.1}x", get("redis_hit", p)? / get("hit", p)?))
    });
    row("redis_miss / miss", &|p| {
        Some(format!("{:.1}x", get("redis_miss", p)? / get("miss", p)?))
    });
    row("tower_sessions / miss", &|p| {
        Some(format!(
            "{:.1}x",
            get("tower_sessions", p)? / get("miss", p)?
        ))
    });
    if let (Some(none), Some(three)) = (
        mean_ns("guards", "none"),
        mean_ns("guards", "three_passing"),
    ) {
        eprintln!("each passing guard (ns)    {:>10.0}", (three - none) / 3.0);
    }
    if let (Some(none), Some(three)) = (
        mean_ns("guards", "alone_none"),
        mean_ns("guards", "alone_three_passing"),
    ) {
        eprintln!("each, guards alone (ns)    {:>10.0}", (three - none) / 3.0);
    }
    eprintln!("\npaired, median of {BLOCKS} blocks  2 orgs      41 orgs");
    let paired_of = |case: &str, profile: &str| {
        let prefix = format!("paired,{case},{profile},");
        let line = paired.lines().find(|l| l.starts_with(&prefix))?;
        line[prefix.len()..].parse::<f64>().ok()
    };
    for case in [
        "bare",
        "hit_over_bare",
        "miss_over_bare",
        "bearer_hit_over_bare",
    ] {
        row(&format!("{case} (µs)"), &|p| {
            paired_of(case, p).map(|ns| format!("{:.2}", ns / 1e3))
        });
    }
    if let Some(ns) = paired_of("each_passing_guard", "") {
        eprintln!("each passing guard (ns)    {ns:>10.0}");
    }
    if let Some(ns) = paired_of("each_passing_guard_alone", "") {
        eprintln!("each, guards alone (ns)    {ns:>10.0}");
    }
}

fn bench(c: &mut Criterion) {
    let fx = fixture();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    eprintln!(
        "Cookie header: alice {} bytes, carol {} bytes",
        fx.users[0].cookie.len(),
        fx.users[1].cookie.len()
    );
    per_request(c, &rt, &fx);
    layer_and_guards(c, &rt, &fx);
    if counting().is_some() {
        return;
    }
    #[cfg(feature = "fuzzing")]
    miss_stages(c, &fx);
    report();
}

criterion_group!(benches, bench);
criterion_main!(benches);
