//! Metrics over real sockets (feature `metrics`): the example app serves the crate's
//! metrics at `/metrics` in Prometheus text (`metrics-exporter-prometheus`); a sign-in, a
//! declined sign-in, denials, bearer requests and a refresh run against the mock, and
//! the scraped counters must have moved by exactly what they did.
//!
//! The Prometheus recorder is global to the process, so this binary has one test.
#![allow(unreachable_pub)]

#[cfg(not(feature = "metrics"))]
compile_error!("tests/metrics.rs needs the `metrics` feature: run `cargo test --all-features`");

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use tower_hf_auth::mock::MockFault;

/// One scrape of `/metrics`.
struct Scrape(String);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let res = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        Self(res.text().await.unwrap())
    }

    /// The value of the series `name` with exactly `labels` (in any order); 0 when the
    /// series is not there yet.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        want.sort();
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, mut have) = match series.split_once('{') {
                    Some((n, rest)) => (
                        n,
                        rest.trim_end_matches('}')
                            .split(',')
                            .filter(|l| !l.is_empty())
                            .map(str::to_owned)
                            .collect::<Vec<_>>(),
                    ),
                    None => (series, Vec::new()),
                };
                have.sort();
                (series_name == name && have == want).then(|| value.parse().unwrap())
            })
            .unwrap_or(0.0)
    }
}

/// How much the series moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test]
async fn metrics_count_sign_ins_denials_bearer_checks_and_refreshes() {
    let mock = mock_with(|b| b.with_token_lifetime(Duration::from_secs(600))).await;
    let app = app_with(mock, |b| b.with_bearer_tokens(true)).await;
    let before = Scrape::of(&app).await;

    // A sign-in, and one the user declines on Hugging Face.
    let alice = Browser::new();
    signed_in(&app, &alice, "alice").await;
    app.mock
        .add_fault(MockFault::AuthorizeError("access_denied".into()));
    let declined = sign_in(&app, &Browser::new(), "alice", "/").await;
    assert_eq!(declined.status(), StatusCode::FORBIDDEN);
    app.mock.clear_faults();

    // Denials: nobody signed in (API client), and bob is no admin of acme.
    let nobody = Browser::new().get_json(&format!("{}/me", app.base)).await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    let bob = Browser::new();
    signed_in(&app, &bob, "bob").await;
    let admin = bob.get_json(&format!("{}/acme/admin", app.base)).await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);

    // A bearer token, twice: the provider is asked once, the cache answers the second.
    let token = app.mock.issue_user_token("carol", "read");
    for _ in 0..2 {
        let res = reqwest::Client::new()
            .get(format!("{}/me", app.base))
            .bearer_auth(&token)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    // Alice's session is refreshed once its access token has expired (the request then
    // waits for the refresh).
    let session = alice.cookie(&format!("{}/", app.base), "hf_auth");
    app.clock.advance(Duration::from_secs(700));
    assert_eq!(whoami(&app, &alice).await.as_deref(), Some("alice"));
    assert_ne!(
        alice.cookie(&format!("{}/", app.base), "hf_auth"),
        session,
        "refreshed"
    );
    // Another tab still sending the old cookie gets that refresh's outcome: coalesced.
    let other_tab = Browser::new();
    let old = session.expect("alice had a session cookie");
    other_tab.set_cookie(&app.base, &format!("hf_auth={old}; Path=/"));
    assert_eq!(whoami(&app, &other_tab).await.as_deref(), Some("alice"));

    let after = Scrape::of(&app).await;
    let count = |name, labels: &[(&str, &str)]| moved(&before, &after, name, labels);
    assert_eq!(
        count("hf_auth_sign_ins_total", &[("outcome", "success")]),
        2.0
    );
    assert_eq!(
        count("hf_auth_sign_ins_total", &[("outcome", "denied")]),
        1.0
    );
    assert_eq!(
        count("hf_auth_sign_ins_total", &[("outcome", "failure")]),
        0.0
    );
    assert_eq!(
        count(
            "hf_auth_sign_in_duration_seconds_count",
            &[("outcome", "success")]
        ),
        2.0
    );
    assert_eq!(
        count("hf_auth_denials_total", &[("reason", "unauthenticated")]),
        1.0
    );
    assert_eq!(
        count("hf_auth_denials_total", &[("reason", "org_required")]),
        1.0
    );
    assert_eq!(
        count("hf_auth_bearer_cache_total", &[("result", "miss")]),
        1.0
    );
    assert_eq!(
        count("hf_auth_bearer_cache_total", &[("result", "hit")]),
        1.0
    );
    assert_eq!(
        count(
            "hf_auth_refreshes_total",
            &[("kind", "tokens"), ("outcome", "refreshed")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "hf_auth_refreshes_total",
            &[("kind", "tokens"), ("outcome", "coalesced")]
        ),
        1.0
    );
    // Two code exchanges and one refresh at the token endpoint; one whoami.
    assert_eq!(
        count(
            "hf_auth_provider_requests_total",
            &[("endpoint", "token"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        count(
            "hf_auth_provider_requests_total",
            &[("endpoint", "whoami"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        count(
            "hf_auth_provider_request_duration_seconds_count",
            &[("endpoint", "token")]
        ) >= 3.0,
        "{}",
        after.0
    );

    // With feature `redis`, a session store that does not answer (nothing listens on
    // its port): the sign-in is refused with 503, and the failed store call is counted.
    #[cfg(feature = "redis")]
    {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/0", closed.local_addr().unwrap());
        drop(closed);
        let stored = app_with(app.mock.clone(), move |b| {
            b.with_session_store(tower_hf_auth::SessionStore::redis(url))
        })
        .await;
        let res = sign_in(&stored, &Browser::new(), "alice", "/").await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let last = Scrape::of(&app).await;
        assert_eq!(
            moved(
                &after,
                &last,
                "hf_auth_store_errors_total",
                &[("operation", "claim_once")]
            ),
            1.0,
            "{}",
            last.0
        );
    }
}
