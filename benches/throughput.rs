//! Requests per second over real sockets, and complete sign-ins per second.
//!
//! 1. **Throughput.** Two servers on loopback, each on its own one-thread runtime: one
//!    routes `GET /hello` with no layer (answering `hello alice`), the other behind
//!    `HfAuthLayer` and `RequireLogin` (answering `hello {username}` from the `HfUser`).
//!    A load generator written here (hyper's HTTP/1 client, `CONNECTIONS` keep-alive
//!    connections, each sending its next request when the last is answered) runs on a
//!    third one-thread runtime and drives each server for `SECONDS`, `ROUNDS` times in
//!    turn (in turn first), with the same requests carrying alice's (2 organizations)
//!    or carol's (41) session cookie; then `ROUNDS` more with both servers loaded at
//!    the same time. The ratios are the medians of the rounds' ratios (see `main`).
//! 2. **Sign-ins.** The example app and `MockHfProvider` on one two-thread runtime, and
//!    `SIGN_IN_TASKS` browsers that each sign in again and again (login redirect,
//!    authorize, callback with code exchange, ID token check and userinfo, session
//!    cookie) for `2 * SECONDS`, all in this process: complete sign-ins per second.
//!
//! Prints a table and writes it to `{target}/criterion/throughput.csv`.
//!
//! ```sh
//! cargo bench --all-features --bench throughput
//! ```
#![allow(unreachable_pub)]

#[path = "../examples/axum_app.rs"]
#[allow(dead_code)]
mod example;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{HfAuthLayer, HfUser, RequireLogin};

const SECRET: &str = "bench secret: thirty-two characters or more, really";
const CONNECTIONS: usize = 64;
/// How long each load runs, in seconds (the sign-ins run twice as long).
const SECONDS: u64 = 2;
/// Rounds per profile: each runs both servers, one after the other (in turn first).
const ROUNDS: usize = 5;
const SIGN_IN_TASKS: usize = 32;

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `app` on a free loopback port, on `rt`; its address.
fn serve(rt: &tokio::runtime::Runtime, app: Router) -> String {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

/// One keep-alive connection sending `GET /hello` with `cookie` until `stop`; counts
/// the `200 OK` answers.
async fn connection(addr: String, cookie: Option<HeaderValue>, stop: Arc<AtomicBool>) -> u64 {
    let stream = TcpStream::connect(&addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut ok = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut req = Request::get("/hello").header(header::HOST, &addr);
        if let Some(cookie) = &cookie {
            req = req.header(header::COOKIE, cookie);
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await;
        let res = res.unwrap();
        let status = res.status();
        res.into_body().collect().await.unwrap();
        if status == StatusCode::OK {
            ok += 1;
        }
    }
    ok
}

/// Requests per second answered `200 OK` by each of `addrs`, loaded at the same time
/// over `CONNECTIONS` connections each.
fn load<const N: usize>(
    client: &tokio::runtime::Runtime,
    addrs: [&str; N],
    cookie: Option<&HeaderValue>,
) -> [f64; N] {
    client.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = addrs.map(|addr| {
            (0..CONNECTIONS)
                .map(|_| tokio::spawn(connection(addr.to_owned(), cookie.cloned(), stop.clone())))
                .collect::<Vec<_>>()
        });
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(SECONDS)).await;
        stop.store(true, Ordering::Relaxed);
        let mut answered = [0; N];
        for (tasks, ok) in tasks.into_iter().zip(&mut answered) {
            for task in tasks {
                *ok += task.await.unwrap();
            }
        }
        let took = start.elapsed().as_secs_f64();
        answered.map(|ok| ok as f64 / took)
    })
}

/// The `Location` of a redirect, absolute against `base`.
fn location(res: &reqwest::Response, base: &str) -> String {
    let loc = res.headers()[header::LOCATION].to_str().unwrap();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_owned()
    }
}

/// The `name=value` pairs a response sets (deletions included).
fn set_cookies(res: &reqwest::Response) -> String {
    let pairs: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap())
        .collect();
    pairs.join("; ")
}

/// One complete browser sign-in as `user`; the session's `Cookie` header. One client
/// for every sign-in (as one browser process), with each sign-in's cookies carried by
/// hand.
async fn sign_in(http: &reqwest::Client, base: &str, user: &str) -> Option<String> {
    let res = http
        .get(format!("{base}/login?return_to=/"))
        .send()
        .await
        .ok()?;
    let pending = set_cookies(&res);
    let authorize = location(&res, base);
    let res = http
        .get(format!("{authorize}&mock_user={user}"))
        .send()
        .await
        .ok()?;
    let callback = location(&res, base);
    let res = http
        .get(callback)
        .header(header::COOKIE, pending)
        .send()
        .await
        .ok()?;
    (res.status() == StatusCode::SEE_OTHER).then(|| set_cookies(&res))
}

/// The mock and the example app on `rt`: the app's base URL and the mock.
fn example_app(rt: &tokio::runtime::Runtime) -> (String, MockHfProvider) {
    rt.block_on(async {
        let mock = MockHfProvider::start().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = example::mock_config(&mock, &base).with_secret(SECRET);
        let app = example::app(config.build().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, mock)
    })
}

/// Complete sign-ins per second by `SIGN_IN_TASKS` browsers on `rt`.
fn sign_ins_per_second(rt: &tokio::runtime::Runtime, base: &str) -> f64 {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    rt.block_on(async {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(2 * SECONDS);
        let tasks: Vec<_> = (0..SIGN_IN_TASKS)
            .map(|i| {
                let (http, base, done) = (http.clone(), base.to_owned(), done.clone());
                let user = ["alice", "bob", "carol"][i % 3];
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let cookie = sign_in(&http, &base, user).await;
                        assert!(cookie.is_some_and(|c| c.contains("hf_auth=")));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let start = Instant::now();
        for task in tasks {
            task.await.unwrap();
        }
        done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would not apply here.
    let app_rt = runtime(2);
    let (base, mock) = example_app(&app_rt);
    let client = runtime(1);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies: Vec<HeaderValue> = ["alice", "carol"]
        .iter()
        .map(|user| {
            let cookie = client.block_on(sign_in(&http, &base, user)).unwrap();
            // The session cookie and its chunks, not the sign-in cookie's deletion.
            let pairs: Vec<&str> = cookie
                .split("; ")
                .filter(|p| p.starts_with("hf_auth") && !p.ends_with('='))
                .collect();
            HeaderValue::from_str(&pairs.join("; ")).unwrap()
        })
        .collect();

    let bare_rt = runtime(1);
    let bare = serve(
        &bare_rt,
        Router::new().route("/hello", get(|| async { String::from("hello alice") })),
    );
    let auth_rt = runtime(1);
    let config = example::mock_config(&mock, &base).with_secret(SECRET);
    let auth = serve(
        &auth_rt,
        Router::new()
            .route(
                "/hello",
                get(|user: HfUser| async move { format!("hello {}", user.username()) })
                    .route_layer(RequireLogin),
            )
            .layer(HfAuthLayer::new(config.build().unwrap())),
    );

    let mut csv = String::from("case,value\n");
    let mut line = |case: &str, value: f64| {
        println!("{case:<34} {value:>10.0}");
        csv.push_str(&format!("{case},{value:.0}\n"));
    };
    // The bare server gets the same requests, cookie included, so both parse the same
    // bytes (it ignores the cookie). Two ways, `ROUNDS` rounds each, each round's ratio
    // kept and the median reported:
    // - in turn: each server loaded alone, one after the other (in turn first), so the
    //   requests per second are each server's own. The machine's pace moves from one
    //   second to the next (rounds' ratios of 0.6 to 1.5 were seen), so these ratios
    //   scatter widely;
    // - together: both loaded at the same time by the same client, sharing the two
    //   cores, so whatever the machine does falls on both at once; each server's share
    //   of the CPU is about the same, so the ratio is that of their costs per request.
    // `ONLY_SIGN_INS=1`: skip the request loads (to profile sign-ins alone).
    let loads = std::env::var_os("ONLY_SIGN_INS").is_none();
    let median = |mut ratios: Vec<f64>| {
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2] * 1000.0
    };
    for (cookie, profile) in cookies.iter().zip(["2_orgs", "41_orgs"]).filter(|_| loads) {
        let cookie = Some(cookie);
        let (mut bare_rps, mut auth_rps) = (0.0, 0.0);
        let in_turn: Vec<f64> = (0..ROUNDS)
            .map(|round| {
                let (b, a) = if round % 2 == 0 {
                    let [b] = load(&client, [&bare], cookie);
                    (b, load(&client, [&auth], cookie)[0])
                } else {
                    let [a] = load(&client, [&auth], cookie);
                    (load(&client, [&bare], cookie)[0], a)
                };
                bare_rps += b / ROUNDS as f64;
                auth_rps += a / ROUNDS as f64;
                a / b
            })
            .collect();
        let together: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let [b, a] = load(&client, [&bare, &auth], cookie);
                a / b
            })
            .collect();
        eprintln!("{profile}: rounds' ratios in turn {in_turn:.3?}, together {together:.3?}");
        line(&format!("bare route {profile}, requests/s"), bare_rps);
        line(&format!("authenticated {profile}, requests/s"), auth_rps);
        line(&format!("ratio in turn x1000 {profile}"), median(in_turn));
        line(&format!("ratio together x1000 {profile}"), median(together));
    }
    drop(client);
    let sign_ins = sign_ins_per_second(&app_rt, &base);
    line("complete sign-ins/s", sign_ins);

    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let path = target.join("criterion/throughput.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, csv).unwrap();
    println!("written to {}", path.display());
}
