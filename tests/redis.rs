//! Sessions in a real `redis-server` (started on a free port by each test): replicas
//! that share nothing but Redis and the app secret, revocation everywhere, one refresh
//! across replicas, a worthless dump, and outages that sign nobody out.

#![allow(unreachable_pub)]

#[cfg(not(feature = "redis"))]
compile_error!("the Redis tests need the `redis` feature: run `cargo test --all-features`");

mod common;
mod web;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::*;
use reqwest::{StatusCode, header};
use tower_hf_auth::mock::{MockEndpoint, MockFault, MockHfProvider};
use tower_hf_auth::{HfAuthConfigBuilder, SessionStore};

/// Access tokens of the mock live 10 minutes; the refresh window is the default 5.
const LIFETIME: Duration = Duration::from_secs(600);

/// Sessions in `redis`, with store calls timing out after `timeout`.
fn redis_sessions(
    redis: &RedisServer,
    timeout: Duration,
) -> impl Fn(HfAuthConfigBuilder) -> HfAuthConfigBuilder + Clone {
    let url = redis.url();
    move |b| b.with_session_store(SessionStore::redis(url.clone()).with_timeout(timeout))
}

/// Store calls time out after this in tests of outages; other tests allow seconds (a
/// busy two-core machine running debug builds is slow, and they test something else).
const OUTAGE_TIMEOUT: Duration = Duration::from_millis(300);
const PATIENT: Duration = Duration::from_secs(10);

/// `n` replicas of the example app on one Redis, one mock and one clock.
async fn replicas(redis: &RedisServer, mock: Arc<MockHfProvider>, n: usize) -> Vec<TestApp> {
    replicas_with(mock, n, redis_sessions(redis, PATIENT)).await
}

/// `n` replicas of the example app with the settings `customize` makes, on one mock and
/// one clock.
async fn replicas_with(
    mock: Arc<MockHfProvider>,
    n: usize,
    customize: impl Fn(HfAuthConfigBuilder) -> HfAuthConfigBuilder + Clone,
) -> Vec<TestApp> {
    let clock = Arc::new(TestClock::default());
    let mut apps = Vec::new();
    for _ in 0..n {
        let config = customize.clone();
        apps.push(serve_on(mock.clone(), clock.clone(), config, example::app).await);
    }
    apps
}

/// `/me` on `app` with `browser`'s cookies: the status and the `Set-Cookie` headers.
async fn me(app: &TestApp, browser: &Browser) -> (StatusCode, Vec<String>, Option<String>) {
    let res = browser.get_json(&format!("{}/me", app.base)).await;
    let status = res.status();
    let set_cookies = set_cookies(&res);
    let retry_after = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, set_cookies, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_replica_is_served_by_the_others() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 3).await;
    let browser = Browser::new();
    signed_in(&apps[0], &browser, "alice").await;
    let cookie = browser.cookie(&apps[0].base, "hf_auth").unwrap();
    assert!(
        cookie.len() < 200,
        "the cookie holds a ticket, not the session: {cookie}"
    );
    for app in &apps[1..] {
        assert_eq!(whoami(app, &browser).await.as_deref(), Some("alice"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_ends_the_browsers_previous_session() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 1).await;
    let browser = Browser::new();
    signed_in(&apps[0], &browser, "alice").await;
    let first = browser.cookies(&apps[0].base);
    signed_in(&apps[0], &browser, "alice").await;
    let records = |redis: &RedisServer| {
        let keys = redis.dump().into_iter().map(|(k, _)| k);
        keys.filter(|k| k.contains(":s:")).count()
    };
    assert_eq!(records(&redis), 1, "one session per browser");
    let old = Browser::new();
    old.set_cookie(&apps[0].base, &first);
    assert_eq!(
        whoami(&apps[0], &old).await,
        None,
        "the replaced session is over"
    );
    assert_eq!(whoami(&apps[0], &browser).await.as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_dump_holds_no_token_profile_field_or_cookie() {
    let redis = RedisServer::start();
    let mock = mock().await;
    let apps = replicas(&redis, mock.clone(), 1).await;
    let app = &apps[0];
    let mut cookies = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let browser = Browser::new();
        signed_in(app, &browser, user).await;
        cookies.push(browser.cookie(&app.base, "hf_auth").unwrap());
    }
    let dump = redis.dump();
    assert!(
        dump.len() >= 6,
        "records and indexes: {:?}",
        dump.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let secrets_and_fields = [
        "hf_oauth",
        "alice",
        "bob",
        "carol",
        "acme",
        "Alice",
        "example.com",
        "orgs",
        "preferred_username",
        "access_token",
        "refresh_token",
    ];
    for (key, value) in &dump {
        let text = String::from_utf8_lossy(value);
        for needle in secrets_and_fields
            .iter()
            .copied()
            .chain(cookies.iter().map(String::as_str))
        {
            assert!(!key.contains(needle), "key {key} shows {needle}");
            assert!(!text.contains(needle), "value of {key} shows {needle}");
        }
        // Not even the cookie's ticket (base64url) in pieces: no 16-character run of it.
        for cookie in &cookies {
            for start in (0..cookie.len().saturating_sub(16)).step_by(8) {
                assert!(
                    !key.contains(&cookie[start..start + 16]),
                    "key {key} shows cookie bytes"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_everywhere_ends_every_session_on_every_replica_within_a_second() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 3).await;
    let (laptop, phone) = (Browser::new(), Browser::new());
    signed_in(&apps[0], &laptop, "alice").await;
    signed_in(&apps[1], &phone, "alice").await;
    let bob = Browser::new();
    signed_in(&apps[0], &bob, "bob").await;
    // Warm every replica's cache, so the revocation must reach it by pub/sub.
    for app in &apps {
        assert_eq!(whoami(app, &laptop).await.as_deref(), Some("alice"));
        assert_eq!(whoami(app, &phone).await.as_deref(), Some("alice"));
    }
    let copied = laptop.cookies(&apps[0].base);

    let res = phone
        .http
        .post(format!("{}/logout", apps[2].base))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("everywhere=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let revoked_at = Instant::now();
    for app in &apps[..2] {
        loop {
            let still = whoami(app, &laptop).await.is_some();
            if !still {
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "revoked within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!(
        "revocation reached every replica in {:?}",
        revoked_at.elapsed()
    );
    for app in &apps {
        let res = reqwest::Client::new()
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &copied)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "a copied cookie is dead"
        );
        assert_eq!(
            whoami(app, &bob).await.as_deref(),
            Some("bob"),
            "other users stay"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_deletes_the_session_so_a_copied_cookie_dies() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 2).await;
    let browser = Browser::new();
    signed_in(&apps[0], &browser, "alice").await;
    let copied = browser.cookies(&apps[0].base);
    assert_eq!(whoami(&apps[1], &browser).await.as_deref(), Some("alice"));
    let res = browser.get(&format!("{}/logout", apps[0].base)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let thief = Browser::new();
    thief.set_cookie(&apps[0].base, &copied);
    let deadline = Instant::now() + Duration::from_secs(1);
    while whoami(&apps[1], &thief).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the other replica refuses within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(whoami(&apps[0], &thief).await, None);
    assert!(
        redis.dump().iter().all(|(k, _)| !k.contains(":s:")),
        "no session record is left"
    );
}

#[tokio::test]
async fn sign_out_everywhere_with_cookie_sessions_is_refused_clearly() {
    let app = app().await;
    let browser = Browser::new();
    signed_in(&app, &browser, "alice").await;
    let res = browser
        .http
        .post(format!("{}/logout", app.base))
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("everywhere=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    let text = body["error_description"].as_str().unwrap();
    assert!(text.contains("server-side session store"), "{text}");
    assert_eq!(
        whoami(&app, &browser).await.as_deref(),
        Some("alice"),
        "still signed in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_refresh_a_session_once() {
    const PER_REPLICA: usize = 300;
    let redis = RedisServer::start();
    let mock = mock_with(|b| b.with_token_lifetime(LIFETIME).with_refresh_tokens(true)).await;
    let apps = replicas(&redis, mock.clone(), 3).await;
    let browser = Browser::new();
    signed_in(&apps[0], &browser, "alice").await;
    let cookie = browser.cookies(&apps[0].base);
    assert_eq!(mock.requests(MockEndpoint::Token), 1, "the code exchange");
    // Expired: every request waits for the refresh. The provider is slow, so requests
    // on every replica arrive while it runs.
    apps[0].clock.advance(LIFETIME + Duration::from_secs(60));
    mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_millis(300),
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut requests = tokio::task::JoinSet::new();
    for app in &apps {
        for _ in 0..PER_REPLICA {
            let request = client
                .get(format!("{}/me", app.base))
                .header(header::ACCEPT, "application/json")
                .header(header::COOKIE, &cookie);
            requests.spawn(async move {
                let res = request.send().await.unwrap();
                let status = res.status();
                let json: serde_json::Value = res.json().await.unwrap_or_default();
                (status, json["username"].as_str().map(str::to_owned))
            });
        }
    }
    let mut served = 0;
    while let Some(answer) = requests.join_next().await {
        let (status, user) = answer.unwrap();
        assert_eq!((status, user.as_deref()), (StatusCode::OK, Some("alice")));
        served += 1;
    }
    assert_eq!(served, 3 * PER_REPLICA);
    assert_eq!(
        mock.requests(MockEndpoint::Token),
        2,
        "one refresh for {served} requests on 3 replicas"
    );
    assert_eq!(
        mock.reused_refresh_tokens(),
        0,
        "no refresh token spent twice"
    );
    eprintln!("3 replicas x {PER_REPLICA} requests: 1 refresh, 0 reused refresh tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_or_restarted_signs_nobody_out() {
    let mut redis = RedisServer::start();
    let apps = replicas_with(mock().await, 2, redis_sessions(&redis, OUTAGE_TIMEOUT)).await;
    let browser = Browser::new();
    signed_in(&apps[0], &browser, "alice").await;

    redis.pause();
    // Under load: 100 requests at once, none signed out, none waiting past the timeout.
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let req = browser
            .http
            .get(format!("{}/me", apps[1].base))
            .header(header::ACCEPT, "application/json");
        load.spawn(async move {
            let res = req.send().await.unwrap();
            (res.status(), set_cookies(&res).len())
        });
    }
    while let Some(answer) = load.join_next().await {
        assert_eq!(answer.unwrap(), (StatusCode::SERVICE_UNAVAILABLE, 0));
    }
    eprintln!(
        "100 requests during the pause answered in {:?}",
        started.elapsed()
    );
    // Replica 1 has never read this session: it must ask Redis, which does not answer.
    let (status, set_cookies, retry_after) = me(&apps[1], &browser).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        set_cookies.is_empty(),
        "the cookie is kept: {set_cookies:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    let page = browser.get(&format!("{}/me", apps[1].base)).await;
    assert_eq!(
        page.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "browsers too, no redirect"
    );
    let grpc = browser
        .http
        .get(format!("{}/me", apps[1].base))
        .header(header::CONTENT_TYPE, "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        grpc.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap()),
        Some("14"),
        "gRPC callers get UNAVAILABLE"
    );
    let home = browser.get(&format!("{}/", apps[1].base)).await;
    assert_eq!(home.status(), StatusCode::OK, "public routes keep serving");
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while whoami(&apps[1], &browser).await.is_none() {
        assert!(Instant::now() < deadline, "recovers after the pause");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    redis.kill();
    for app in &apps {
        let (status, set_cookies, _) = me(app, &browser).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", app.base);
        assert!(set_cookies.is_empty());
    }
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    for app in &apps {
        while whoami(app, &browser).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the session survives the restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_new_sign_ins_clearly_and_makes_no_session() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    {
        // Full: a memory limit below what the server already uses, so every write
        // that may grow memory is refused however the usage moves.
        let mut conn = redis.connection();
        let info: String = redis::cmd("INFO").arg("memory").query(&mut conn).unwrap();
        let used: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(used / 2)
            .query(&mut conn)
            .unwrap();
        let refused: redis::RedisResult<()> =
            redis::cmd("SET").arg("probe").arg(1).query(&mut conn);
        assert_eq!(refused.unwrap_err().code(), Some("OOM"));
    }
    let apps = replicas(&redis, mock().await, 1).await;
    let browser = Browser::new();
    let res = sign_in(&apps[0], &browser, "alice", "/").await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        res.headers()
    );
    assert!(res.headers().get(header::RETRY_AFTER).is_some());
    let set_session = set_cookies(&res).iter().any(|c| c.starts_with("hf_auth="));
    assert!(!set_session, "no session cookie");
    let page = res.text().await.unwrap();
    assert!(page.contains("session store is full"), "{page}");
    assert_eq!(whoami(&apps[0], &browser).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_sealed_for_another_ticket_or_a_forged_ticket_is_refused() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 1).await;
    let app = &apps[0];
    let (alice, bob) = (Browser::new(), Browser::new());
    signed_in(app, &alice, "alice").await;
    signed_in(app, &bob, "bob").await;
    let mut conn = redis.connection();
    let records: Vec<String> = redis::cmd("KEYS").arg("*:s:*").query(&mut conn).unwrap();
    assert_eq!(records.len(), 2);
    // Alice's record replaced by Bob's (sealed under his ticket's secret): a valid
    // session id with the wrong secret.
    let data: Vec<Vec<u8>> = records
        .iter()
        .map(|k| redis::cmd("HGET").arg(k).arg("d").query(&mut conn).unwrap())
        .collect();
    for (key, other) in records.iter().zip(data.iter().rev()) {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg("d")
            .arg(other)
            .query(&mut conn)
            .unwrap();
    }
    let fresh = |browser: &Browser| {
        let b = Browser::new();
        b.set_cookie(&app.base, &browser.cookies(&app.base));
        b
    };
    // A replica whose cache is empty reads both from Redis.
    let cold = serve_on(
        app.mock.clone(),
        app.clock.clone(),
        redis_sessions(&redis, PATIENT),
        example::app,
    )
    .await;
    for browser in [&alice, &bob] {
        assert_eq!(whoami(&cold, &fresh(browser)).await, None);
    }
    // A forged or truncated ticket never reaches Redis and writes nothing.
    let keys_before = redis.dump().len();
    let cookie = alice.cookie(&app.base, "hf_auth").unwrap();
    for forged in [
        format!("hf_auth={}", &cookie[..cookie.len() - 4]),
        format!("hf_auth={}A", &cookie[..cookie.len() - 1]),
        "hf_auth={u:*}\n".into(),
        "hf_auth=*".into(),
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}/me", cold.base))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, forged.replace('\n', ""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{forged:?}");
    }
    assert_eq!(redis.dump().len(), keys_before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_paused_past_its_lease_never_overwrites_the_newer_session() {
    let redis = RedisServer::start();
    let mock = mock_with(|b| b.with_token_lifetime(LIFETIME).with_refresh_tokens(true)).await;
    let clock = Arc::new(TestClock::default());
    let url = redis.url();
    // Replica A gives up its lease after a second; B keeps the default.
    let short = |b: HfAuthConfigBuilder| {
        let store = SessionStore::redis(url.clone()).with_timeout(PATIENT);
        b.with_session_store(store.with_refresh_lease(Duration::from_secs(1)))
    };
    let a = serve_on(mock.clone(), clock.clone(), short, example::app).await;
    let b = serve_on(
        mock.clone(),
        clock.clone(),
        redis_sessions(&redis, PATIENT),
        example::app,
    )
    .await;
    let browser = Browser::new();
    signed_in(&a, &browser, "alice").await;
    let cookie = browser.cookies(&a.base);
    clock.advance(LIFETIME + Duration::from_secs(60));

    // A takes the lease and asks the provider, which keeps it waiting past the lease.
    mock.add_fault(MockFault::Delay {
        endpoint: MockEndpoint::Token,
        delay: Duration::from_secs(3),
    });
    let me_on = |app: &TestApp| {
        reqwest::Client::new()
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie)
            .send()
    };
    let slow = tokio::spawn(me_on(&a));
    wait_until("A's refresh reaches the provider", || {
        mock.requests(MockEndpoint::Token) == 2
    })
    .await;
    mock.clear_faults();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // B finds the lease expired, refreshes at once and stores the new session.
    let res = me_on(&b).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut conn = redis.connection();
    let records: Vec<String> = redis::cmd("KEYS").arg("*:s:*").query(&mut conn).unwrap();
    let version = || -> u64 {
        let mut conn = redis.connection();
        redis::cmd("HGET")
            .arg(&records[0])
            .arg("v")
            .query(&mut conn)
            .unwrap()
    };
    assert_eq!(version(), 2, "B's session is stored");
    // A's late answer (the rotated token is refused by now) does not overwrite it, and
    // A serves B's session.
    let res = slow.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json["username"], "alice");
    assert_eq!(version(), 2, "nothing written over B's session");
    assert_eq!(mock.requests(MockEndpoint::Token), 3);
    // The paused holder's late call spent the rotated token: the provider refused it
    // (what a pause past the lease costs), and nobody was signed out for it.
    assert_eq!(mock.reused_refresh_tokens(), 1);
    // The stored refresh token is the live one: the next refresh works.
    clock.advance(LIFETIME + Duration::from_secs(60));
    assert_eq!(whoami(&b, &browser).await.as_deref(), Some("alice"));
    assert_eq!(mock.requests(MockEndpoint::Token), 4);
    assert_eq!(version(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_in_separate_processes_share_sessions_and_sign_out_everywhere() {
    let redis = RedisServer::start();
    let mock = mock().await;
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let mut replicas = Vec::new();
    for port in &ports {
        let vars = [
            ("OAUTH_CLIENT_ID", mock.client_id().to_owned()),
            (
                "OAUTH_CLIENT_SECRET",
                mock.client_secret().unwrap().to_owned(),
            ),
            ("OPENID_PROVIDER_URL", mock.issuer()),
            ("OAUTH_SCOPES", "openid profile email".to_owned()),
            ("PUBLIC_URL", public.clone()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("HF_AUTH_SECRET", SECRET.to_owned()),
            ("HF_AUTH_REDIS_URL", redis.url()),
        ];
        replicas.push(web::start_example("axum_app", &vars).await);
    }
    let bases: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://{}", r.addr))
        .collect();
    let who = |browser: &Browser, base: &str| {
        let url = format!("{base}/me");
        let req = browser
            .http
            .get(url)
            .header(header::ACCEPT, "application/json");
        async move {
            let res = req.send().await.unwrap();
            match res.status() {
                StatusCode::OK => Some(
                    res.json::<serde_json::Value>().await.unwrap()["username"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
                StatusCode::UNAUTHORIZED => None,
                other => panic!("/me answered {other}"),
            }
        }
    };
    // Sign in on the first process (the cookie jar ignores ports, as browsers do).
    let browser = Browser::new();
    let res = browser.get(&format!("{}/login", bases[0])).await;
    let callback = authorize(&browser, &location(&res), "alice").await;
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    for base in &bases {
        assert_eq!(
            who(&browser, base).await.as_deref(),
            Some("alice"),
            "{base}"
        );
    }
    let home = browser
        .get(&format!("{}/", bases[1]))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("Sign out everywhere"), "{home}");

    let copied = browser.cookie(&bases[0], "hf_auth").unwrap();
    let res = browser
        .http
        .post(format!("{}/logout", bases[2]))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("everywhere=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let thief = Browser::new();
    thief.set_cookie(&bases[0], &format!("hf_auth={copied}"));
    let revoked_at = Instant::now();
    for base in &bases[..2] {
        while who(&thief, base).await.is_some() {
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "revoked within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_revokes_a_user_or_one_session_through_the_layer() {
    use axum::routing::get;
    use std::sync::OnceLock;
    use tower_hf_auth::{HfAuthLayer, HfUser, RevokeError};

    let redis = RedisServer::start();
    let mock = mock().await;
    let clock = Arc::new(TestClock::default());
    let mut layers = Vec::new();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let slot = Arc::new(OnceLock::new());
        let keep = slot.clone();
        let router = move |config| {
            let layer = HfAuthLayer::new(config);
            keep.set(layer.clone()).unwrap();
            axum::Router::new()
                .route(
                    "/me",
                    get(|user: HfUser| async move { user.username().to_owned() }),
                )
                .route(
                    "/session",
                    get(|user: HfUser| async move { user.session_id().unwrap().to_owned() }),
                )
                .route(
                    "/id",
                    get(|user: HfUser| async move { user.id().to_owned() }),
                )
                .layer(layer)
        };
        apps.push(
            serve_on(
                mock.clone(),
                clock.clone(),
                redis_sessions(&redis, PATIENT),
                router,
            )
            .await,
        );
        layers.push(slot.get().unwrap().clone());
    }
    let user_of = |app: &TestApp, browser: &Browser| {
        let req = browser.http.get(format!("{}/me", app.base));
        async move {
            let res = req
                .header(header::ACCEPT, "application/json")
                .send()
                .await
                .unwrap();
            (res.status() == StatusCode::OK).then_some(())
        }
    };
    let (alice, alice_phone, bob) = (Browser::new(), Browser::new(), Browser::new());
    for (browser, user) in [(&alice, "alice"), (&alice_phone, "alice"), (&bob, "bob")] {
        let res = sign_in(&apps[0], browser, user, "/").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        for app in &apps {
            assert!(user_of(app, browser).await.is_some());
        }
    }
    // Hostile handles reach no key and write nothing.
    let keys = redis.dump();
    for hostile in ["{u:*}.*", "*", "a\nb", "", "0123456789abcdef.{x}"] {
        assert_eq!(
            layers[1].revoke_session(hostile).await,
            Ok(false),
            "{hostile:?}"
        );
    }
    assert_eq!(redis.dump(), keys, "nothing written or deleted");

    // One session: Bob's, from another replica.
    let session = bob
        .http
        .get(format!("{}/session", apps[0].base))
        .send()
        .await
        .unwrap();
    let session = session.text().await.unwrap();
    assert_eq!(layers[1].revoke_session(&session).await, Ok(true));
    assert_eq!(
        layers[1].revoke_session(&session).await,
        Ok(false),
        "already gone"
    );
    // Every session of alice.
    let alice_id = alice
        .http
        .get(format!("{}/id", apps[1].base))
        .send()
        .await
        .unwrap();
    let alice_id = alice_id.text().await.unwrap();
    assert_eq!(layers[1].revoke_user(&alice_id).await, Ok(2));
    let revoked_at = Instant::now();
    for app in &apps {
        for browser in [&alice, &alice_phone, &bob] {
            while user_of(app, browser).await.is_some() {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(1),
                    "revoked within 1 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    // Cookie sessions cannot be revoked, and say so.
    let plain = Arc::new(OnceLock::new());
    let keep = plain.clone();
    let _app = serve(
        mock.clone(),
        |b| b,
        move |config| {
            let layer = HfAuthLayer::new(config);
            keep.set(layer.clone()).unwrap();
            axum::Router::new().layer(layer)
        },
    )
    .await;
    let layer: &HfAuthLayer = plain.get().unwrap();
    assert_eq!(
        layer.revoke_user(&alice_id).await,
        Err(RevokeError::NoServerStore)
    );
    assert_eq!(
        layer.revoke_session(&session).await,
        Err(RevokeError::NoServerStore)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_revocation_channel_stops_the_cache_being_trusted() {
    let redis = RedisServer::start();
    let apps = replicas(&redis, mock().await, 1).await;
    let app = &apps[0];
    let browser = Browser::new();
    signed_in(app, &browser, "alice").await;
    assert_eq!(
        whoami(app, &browser).await.as_deref(),
        Some("alice"),
        "cached now"
    );
    // The subscription drops and cannot come back (no room for another client), and
    // the session is deleted behind the replica's back (no message it could hear): it
    // must read Redis rather than serve its cache.
    let mut conn = redis.connection();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    let kept = clients
        .lines()
        .filter(|l| !l.contains("cmd=subscribe") && !l.contains("sub=1"))
        .count();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(kept)
        .query(&mut conn)
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    let records: Vec<String> = redis::cmd("KEYS").arg("*:s:*").query(&mut conn).unwrap();
    let _: i64 = redis::cmd("DEL").arg(&records).query(&mut conn).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while whoami(app, &browser).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the cache is dropped when the channel is lost"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And once the channel is back, sessions are served (and cached) again.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg(100)
        .query(&mut conn)
        .unwrap();
    signed_in(app, &browser, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_used_states_and_bearer_answers() {
    let redis = RedisServer::start();
    let mock = mock().await;
    let store = redis_sessions(&redis, PATIENT);
    let apps = replicas_with(mock.clone(), 2, move |b| store(b).with_bearer_tokens(true)).await;
    // A callback replayed on another replica is refused there as already used, before
    // the provider is asked (which would refuse the used code too).
    let browser = Browser::new();
    let authorize_url = start_login(&apps[0], &browser, "/").await;
    let callback = authorize(&browser, &authorize_url, "alice").await;
    let pending = browser.cookies(&callback);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    let other = callback.replace(&apps[0].base, &apps[1].base);
    let exchanges = mock.requests(MockEndpoint::Token);
    let res = reqwest::Client::new()
        .get(&other)
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, pending)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("already used"));
    assert_eq!(
        mock.requests(MockEndpoint::Token),
        exchanges,
        "refused by the shared used state, not by the provider"
    );

    // A bearer token checked on one replica is known to the other without asking.
    let token = mock.issue_oauth_token("bob", &["openid", "profile"], Duration::from_secs(600));
    let asked = || mock.requests(MockEndpoint::Userinfo) + mock.requests(MockEndpoint::WhoAmI);
    let before = asked();
    for app in &apps {
        let res = reqwest::Client::new()
            .get(format!("{}/me", app.base))
            .header(header::ACCEPT, "application/json")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{}", app.base);
    }
    assert_eq!(
        asked() - before,
        1,
        "the provider was asked once for both replicas"
    );
}
