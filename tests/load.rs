//! Load and faults: many complete browser sign-ins at once through the example app
//! against the mock provider, with a healthy provider, a flaky one (one request in ten
//! fails) and one that is down.
//!
//! "Concurrent" here: all 1,000 sign-ins are spawned as tasks on a two-thread runtime,
//! wait at a start line until every one is spawned and holds its place, then run
//! together; each is its own browser (its own client, connections and cookie jar). The
//! tests count the flows in flight at once and assert that all 1,000 were.
//!
//! A flow holds about six sockets (both ends of the browser's connections to the app
//! and to the provider, and of the app's connection to the provider), counted as eight
//! for headroom, and this file's tests run in parallel: together they need an open-file
//! limit of about 17,000. Below that, the tests raise the process's soft limit (with
//! util-linux `prlimit`, up to the hard limit); when that is impossible they fail,
//! saying which limit to raise (`ulimit -n`), rather than test fewer flows.
//!
//! The provider timeout is 30 s, as in the other tests: with a thousand
//! flows on two cores an app-to-provider request waits for CPU behind the others, and
//! under 2 s timeouts most sign-ins end in a (clean) 504. This file is about mix-ups
//! and clean failures, not latency.

#![allow(unreachable_pub)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use reqwest::cookie::Jar;
use reqwest::{StatusCode, Url, header};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_hf_auth::HfAuthConfigBuilder;
use tower_hf_auth::mock::{MockEndpoint, MockFault, MockHfProvider, MockOrg, MockUser};

const SIGN_INS: usize = 1_000;
const USERS: usize = 20;
/// The whole of one test, start to finish: a ceiling that only a hang reaches (a run
/// takes under 30 s on an idle two-core machine and about 90 s on a busy one).
const DEADLINE: Duration = Duration::from_secs(300);
const ENDPOINTS: [MockEndpoint; 6] = [
    MockEndpoint::Discovery,
    MockEndpoint::Authorize,
    MockEndpoint::Token,
    MockEndpoint::Userinfo,
    MockEndpoint::Jwks,
    MockEndpoint::WhoAmI,
];

/// `USERS` users; every fourth is in 40 organizations, so its session spans several
/// cookie chunks.
fn users() -> Vec<MockUser> {
    (0..USERS)
        .map(|i| {
            let user = MockUser::new(format!("user-{i:02}")).with_name(format!("User {i}"));
            if i % 4 != 0 {
                return user;
            }
            (0..40).fold(user, |user, org| {
                user.add_org(MockOrg::new(format!("org-{org:02}")))
            })
        })
        .collect()
}

/// The example app against a mock with [`users`], asking for `read-repos` too so that
/// `/repos` is served from the session.
async fn load_app() -> TestApp {
    let mock = mock_with(|b| users().into_iter().fold(b, |b, user| b.add_user(user))).await;
    app_with(mock, load_settings).await
}

fn load_settings(b: HfAuthConfigBuilder) -> HfAuthConfigBuilder {
    b.with_scopes(["openid", "profile", "email", "read-repos"])
        .with_timeout(Duration::from_secs(30))
}

/// How many flows may be mid-flight at once across this file's tests, which run in
/// parallel and share the process's file descriptors (see the module docs), and the
/// semaphore that holds them to it. Raises the soft open-file limit to what the tests
/// need if it is lower and the hard limit allows.
fn in_flight() -> &'static (usize, Arc<Semaphore>) {
    const SOCKETS_PER_FLOW: usize = 8;
    const RESERVED: usize = 256;
    /// Both thousand-sign-in tests and the 50 of the outage test, with room to spare.
    const FLOWS_NEEDED: usize = 2 * SIGN_INS + 100;
    static PERMITS: OnceLock<(usize, Arc<Semaphore>)> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let needed = RESERVED + FLOWS_NEEDED * SOCKETS_PER_FLOW;
        if open_file_limit() < needed {
            let raised = std::process::Command::new("prlimit")
                .arg(format!("--pid={}", std::process::id()))
                .arg(format!("--nofile={needed}:"))
                .status();
            println!("raising the open-file limit to {needed}: {raised:?}");
        }
        let soft = open_file_limit();
        let flows = (soft.saturating_sub(RESERVED) / SOCKETS_PER_FLOW).clamp(16, 100_000);
        (flows, Arc::new(Semaphore::new(flows)))
    })
}

/// The process's soft limit on open files (1,024 if it cannot be read).
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            let soft = line.split_whitespace().nth(3)?;
            Some(soft.parse().unwrap_or(usize::MAX))
        })
        .unwrap_or(1024)
}

/// Asserts that all `count` flows of a run were in flight at once (`peak`).
fn assert_all_in_flight(peak: usize, count: usize) {
    assert_eq!(
        peak,
        count,
        "only {peak} of {count} flows were in flight at once: the open-file limit ({}) \
         allows {} flows across this file's tests; raise it (`ulimit -n 17000`)",
        open_file_limit(),
        in_flight().0
    );
}

/// Where a sign-in that did not complete stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    /// The app's `/login` answered an error page.
    Login,
    /// The provider's authorize endpoint answered an error (or could not be reached).
    Authorize,
    /// The app's `/login/callback` answered an error page.
    Callback,
}

/// How a sign-in ended, when it ended well: signed in as the chosen user, or a clean
/// failure (an error answer, no session). Anything else is an `Err` describing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    SignedIn,
    Failed(Step),
}

/// One browser and the user it signs in as.
struct Client {
    user: usize,
    username: String,
    sub: String,
    jar: Arc<Jar>,
}

impl Client {
    fn new(user: usize, users: &[MockUser]) -> Self {
        Self {
            user,
            username: users[user].username().to_owned(),
            sub: users[user].sub().to_owned(),
            jar: Arc::new(Jar::default()),
        }
    }

    /// A browser over this client's cookie jar, with connections of its own.
    fn browser(&self) -> Browser {
        Browser::with_jar(self.jar.clone())
    }
}

/// Where the app and the provider are, for tasks that cannot borrow the `TestApp`.
#[derive(Clone)]
struct Target {
    base: String,
    issuer: String,
}

impl Target {
    fn of(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            issuer: app.mock.issuer(),
        }
    }
}

/// The complete flow for `client`: `/login?return_to=/me`, the provider's authorize
/// page choosing the client's user, the callback, then `/me` as JSON.
async fn sign_in_as(target: &Target, client: &Client) -> Result<Outcome, String> {
    let browser = client.browser();
    let login =
        Url::parse_with_params(&format!("{}/login", target.base), [("return_to", "/me")]).unwrap();
    let res = send(&browser, login.as_str()).await?;
    if res.status() != StatusCode::SEE_OTHER {
        return failed_cleanly(target, &browser, res, Step::Login).await;
    }
    let authorize = location(&res);
    if !authorize.starts_with(&target.issuer) {
        return Err(format!("/login sent the browser to {authorize}"));
    }

    let mut authorize = Url::parse(&authorize).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("mock_user", &client.username);
    let res = match browser.http.get(authorize.as_str()).send().await {
        Ok(res) => res,
        // The provider is down: the browser shows its own error page.
        Err(e) if e.is_connect() => {
            eprintln!("authorize: {e} ({:?})", std::error::Error::source(&e));
            return signed_out(target, &browser, Step::Authorize).await;
        }
        Err(e) => return Err(format!("authorize: {e}")),
    };
    if !res.status().is_redirection() {
        if res.status() != StatusCode::SERVICE_UNAVAILABLE {
            return Err(format!("authorize answered {}", res.status()));
        }
        return signed_out(target, &browser, Step::Authorize).await;
    }
    let callback = location(&res);
    if !callback.starts_with(&format!("{}/login/callback?", target.base)) {
        return Err(format!("authorize sent the browser to {callback}"));
    }

    let res = send(&browser, &callback).await?;
    if res.status() != StatusCode::SEE_OTHER {
        return failed_cleanly(target, &browser, res, Step::Callback).await;
    }
    if location(&res) != "/me" {
        return Err(format!(
            "the callback sent the browser to {}",
            location(&res)
        ));
    }
    match me(target, &browser).await? {
        Some((username, sub)) if username == client.username && sub == client.sub => {
            Ok(Outcome::SignedIn)
        }
        Some((username, _)) => Err(format!(
            "mix-up: chose {}, signed in as {username}",
            client.username
        )),
        None => Err(format!(
            "{} was not signed in after the callback",
            client.username
        )),
    }
}

async fn send(browser: &Browser, url: &str) -> Result<reqwest::Response, String> {
    browser
        .http
        .get(url)
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e} ({:?})", std::error::Error::source(&e)))
}

/// Checks that an error answer from the app is a clean failure: a server error page
/// offering a retry, and no session.
async fn failed_cleanly(
    target: &Target,
    browser: &Browser,
    res: reqwest::Response,
    step: Step,
) -> Result<Outcome, String> {
    let status = res.status();
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let body = res.text().await.unwrap_or_default();
    if status != StatusCode::SERVICE_UNAVAILABLE || !html || !body.contains("Try again") {
        return Err(format!("{step:?} answered {status}: {body}"));
    }
    signed_out(target, browser, step).await
}

/// `Failed(step)` if the browser has no session, as it should after a failed sign-in.
async fn signed_out(target: &Target, browser: &Browser, step: Step) -> Result<Outcome, String> {
    if browser.cookie(&target.base, "hf_auth").is_some() {
        return Err(format!("a session cookie was set although {step:?} failed"));
    }
    match me(target, browser).await? {
        None => Ok(Outcome::Failed(step)),
        Some((username, _)) => Err(format!("{step:?} failed but /me says {username}")),
    }
}

/// `/me` as an API client: the username and id, or `None` on 401.
async fn me(target: &Target, browser: &Browser) -> Result<Option<(String, String)>, String> {
    let res = browser
        .http
        .get(format!("{}/me", target.base))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET /me: {e}"))?;
    match res.status() {
        StatusCode::OK => {
            let json: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
            let field = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
            Ok(Some((field("username"), field("id"))))
        }
        StatusCode::UNAUTHORIZED => Ok(None),
        other => Err(format!("/me answered {other}")),
    }
}

/// How each client's flow ended.
type Ended = Vec<(Arc<Client>, Result<Outcome, String>)>;

/// Runs `flow` for every client at once: every task is spawned and takes its place (a
/// permit of [`in_flight`]) before any starts, then all run. Returns each client with
/// how its flow ended, in the order given, and how many flows were in flight at the
/// busiest moment. A flow that panics fails the test.
async fn run_all<F, Fut>(clients: Vec<Arc<Client>>, flow: F) -> (Ended, usize)
where
    F: Fn(Arc<Client>) -> Fut,
    Fut: Future<Output = Result<Outcome, String>> + Send + 'static,
{
    let permits = &in_flight().1;
    // Flows in flight now, and the most there were at once.
    let running = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let (go, start_line) = tokio::sync::watch::channel(false);
    let placed = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let permits = permits.clone();
        let run = flow(client.clone());
        let (running, placed) = (running.clone(), placed.clone());
        let mut start_line = start_line.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            placed.fetch_add(1, Ordering::SeqCst);
            start_line.wait_for(|go| *go).await.unwrap();
            let now = running.0.fetch_add(1, Ordering::SeqCst) + 1;
            running.1.fetch_max(now, Ordering::SeqCst);
            let outcome = run.await;
            running.0.fetch_sub(1, Ordering::SeqCst);
            (i, outcome)
        });
    }
    // Start when every flow has its place; if some cannot get one (too few permits),
    // start after the ceiling anyway, and the peak says how many ran together.
    let ceiling = tokio::time::Instant::now() + WAIT_CEILING;
    while placed.load(Ordering::SeqCst) < clients.len() && tokio::time::Instant::now() < ceiling {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    go.send_replace(true);
    let mut outcomes: Vec<Option<Result<Outcome, String>>> = vec![None; clients.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, outcome) = joined.unwrap_or_else(|e| panic!("a sign-in task failed: {e}"));
        outcomes[i] = Some(outcome);
    }
    let ended = clients
        .into_iter()
        .zip(outcomes)
        .map(|(client, outcome)| (client, outcome.expect("every task reported")))
        .collect();
    (ended, running.1.load(Ordering::SeqCst))
}

/// Every client's complete sign-in, all at once; with the peak of flows in flight.
async fn sign_in_all(target: &Target, clients: Vec<Arc<Client>>) -> (Ended, usize) {
    run_all(clients, |client| {
        let target = target.clone();
        async move { sign_in_as(&target, &client).await }
    })
    .await
}

/// Checks, all at once, that every client is still signed in as its own user.
async fn assert_still_signed_in(target: &Target, clients: Vec<Arc<Client>>) {
    let (checked, _) = run_all(clients, |client| {
        let target = target.clone();
        async move {
            match me(&target, &client.browser()).await? {
                Some((username, sub)) if username == client.username && sub == client.sub => {
                    Ok(Outcome::SignedIn)
                }
                other => Err(format!("{} is now {other:?}", client.username)),
            }
        }
    })
    .await;
    assert_all_signed_in(&checked);
}

fn assert_all_signed_in(ended: &[(Arc<Client>, Result<Outcome, String>)]) {
    let wrong: Vec<_> = ended
        .iter()
        .filter(|(_, outcome)| !matches!(outcome, Ok(Outcome::SignedIn)))
        .map(|(client, outcome)| format!("{}: {outcome:?}", client.username))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} did not end signed in as their user, e.g. {:?}",
        wrong.len(),
        ended.len(),
        &wrong[..wrong.len().min(5)]
    );
}

fn clients(count: usize) -> Vec<Arc<Client>> {
    let users = users();
    (0..count)
        .map(|i| Arc::new(Client::new(i % USERS, &users)))
        .collect()
}

fn provider_requests(mock: &MockHfProvider) -> HashMap<MockEndpoint, usize> {
    ENDPOINTS.iter().map(|&e| (e, mock.requests(e))).collect()
}

fn requests_since(
    mock: &MockHfProvider,
    before: &HashMap<MockEndpoint, usize>,
) -> HashMap<MockEndpoint, usize> {
    provider_requests(mock)
        .into_iter()
        .map(|(e, now)| (e, now - before[&e]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sign_ins_each_end_as_the_chosen_user() {
    let test = async {
        let app = load_app().await;
        let target = Target::of(&app);
        let started = Instant::now();

        let (ended, peak) = sign_in_all(&target, clients(SIGN_INS)).await;
        let elapsed = started.elapsed();
        assert_all_in_flight(peak, SIGN_INS);
        assert_all_signed_in(&ended);
        let mut per_user = vec![0; USERS];
        for (client, _) in &ended {
            per_user[client.user] += 1;
        }
        assert_eq!(per_user, vec![SIGN_INS / USERS; USERS]);

        // A cold app fetched discovery and the key set once for everyone.
        let requests = provider_requests(&app.mock);
        assert_eq!(requests[&MockEndpoint::Discovery], 1, "{requests:?}");
        assert_eq!(requests[&MockEndpoint::Jwks], 1, "{requests:?}");
        for endpoint in [
            MockEndpoint::Authorize,
            MockEndpoint::Token,
            MockEndpoint::Userinfo,
        ] {
            assert_eq!(requests[&endpoint], SIGN_INS, "{endpoint:?}");
        }

        // Once every flow is over, no session was overwritten by another.
        let clients = ended.into_iter().map(|(client, _)| client).collect();
        assert_still_signed_in(&target, clients).await;
        println!(
            "{SIGN_INS} concurrent sign-ins as {USERS} users ({peak} flows in flight at once): \
             {SIGN_INS} signed in as chosen, 0 failed, 0 mix-ups, in {elapsed:.2?}"
        );
    };
    tokio::time::timeout(DEADLINE, test)
        .await
        .expect("finishes within the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_provider_request_in_ten_failing_sign_ins_succeed_or_end_cleanly() {
    let test = async {
        let app = load_app().await;
        let target = Target::of(&app);
        // An app that has been running: discovery and the key set are cached.
        let warm = Client::new(0, &users());
        assert_eq!(sign_in_as(&target, &warm).await, Ok(Outcome::SignedIn));

        let before = provider_requests(&app.mock);
        app.mock.add_fault(MockFault::FailOneIn {
            endpoint: None,
            n: 10,
        });
        let started = Instant::now();
        let (ended, peak) = sign_in_all(&target, clients(SIGN_INS)).await;
        let elapsed = started.elapsed();
        let during = requests_since(&app.mock, &before);
        assert_all_in_flight(peak, SIGN_INS);

        let problems: Vec<_> = ended
            .iter()
            .filter_map(|(client, outcome)| {
                let problem = outcome.as_ref().err()?;
                Some(format!("{}: {problem}", client.username))
            })
            .collect();
        assert!(
            problems.is_empty(),
            "{} sign-ins neither succeeded nor failed cleanly, e.g. {:?}",
            problems.len(),
            &problems[..problems.len().min(5)]
        );
        let mut failed_at: HashMap<Step, usize> = HashMap::new();
        for (_, outcome) in &ended {
            if let Ok(Outcome::Failed(step)) = outcome {
                *failed_at.entry(*step).or_default() += 1;
            }
        }
        let failed: usize = failed_at.values().sum();
        let succeeded = SIGN_INS - failed;

        // Each sign-in makes three provider requests (authorize, token, userinfo) and
        // stops at the first that fails, so every failed request ends exactly one
        // sign-in and nothing else does: from 3,000 - 2f requests (all failing at
        // authorize) to 3,000 (all at userinfo), f is between 250 and 300.
        let total: usize = during.values().sum();
        assert_eq!(during[&MockEndpoint::Discovery], 0, "{during:?}");
        assert_eq!(during[&MockEndpoint::Jwks], 0, "{during:?}");
        assert_eq!(failed, total / 10, "{failed_at:?} after {during:?}");
        assert!((250..=300).contains(&failed), "{failed} failed");
        assert_eq!(
            failed_at.get(&Step::Login),
            None,
            "/login needs no provider"
        );

        // The provider recovers; the browsers whose sign-in failed try again.
        app.mock.clear_faults();
        let (retrying, fine): (Vec<_>, Vec<_>) = ended
            .into_iter()
            .partition(|(_, outcome)| matches!(outcome, Ok(Outcome::Failed(_))));
        let retrying = retrying.into_iter().map(|(client, _)| client).collect();
        let (retried, _) = sign_in_all(&target, retrying).await;
        assert_all_signed_in(&retried);

        let everyone = fine
            .into_iter()
            .chain(retried)
            .map(|(client, _)| client)
            .collect::<Vec<_>>();
        assert_eq!(everyone.len(), SIGN_INS);
        assert_still_signed_in(&target, everyone).await;
        println!(
            "{SIGN_INS} concurrent sign-ins, one provider request in ten failing ({peak} \
             flows in flight at once): {succeeded} signed in as chosen, {failed} failed \
             cleanly (authorize {}, callback {}) of {total} provider requests, 0 mix-ups, \
             in {elapsed:.2?}; all {failed} then signed in after recovery",
            failed_at.get(&Step::Authorize).unwrap_or(&0),
            failed_at.get(&Step::Callback).unwrap_or(&0),
        );
    };
    tokio::time::timeout(DEADLINE, test)
        .await
        .expect("finishes within the deadline");
}

/// Every client gets its own profile, a guarded page and the home page, all from its
/// session.
async fn assert_served(target: &Target, clients: &[Arc<Client>]) {
    for client in clients {
        let browser = client.browser();
        let who = me(target, &browser).await.unwrap();
        assert_eq!(who, Some((client.username.clone(), client.sub.clone())));
        let repos = browser.get(&format!("{}/repos", target.base)).await;
        assert_eq!(repos.status(), StatusCode::OK, "{}", client.username);
        let page = repos.text().await.unwrap();
        assert!(page.contains(&format!("@{}", client.username)), "{page}");
        let home = browser.get(&format!("{}/", target.base)).await;
        let page = home.text().await.unwrap();
        assert!(page.contains(&format!("@{}", client.username)), "{page}");
    }
}

/// A sign-in that reached the provider before the outage: the callback URL it holds.
async fn halfway(app: &TestApp, client: &Client) -> String {
    let browser = client.browser();
    let authorize_url = start_login(app, &browser, "/me").await;
    authorize(&browser, &authorize_url, &client.username).await
}

/// During an outage: signed-in users are served from their sessions, a new sign-in
/// fails at the provider's door, and a sign-in that got a code before the outage ends
/// with a clean 503 page at the callback.
async fn assert_outage_answered(
    app: &TestApp,
    target: &Target,
    signed_in: &[Arc<Client>],
    newcomer: &Client,
    returning: &Client,
    callback: &str,
) {
    let before = provider_requests(&app.mock);
    assert_served(target, signed_in).await;
    assert_eq!(
        requests_since(&app.mock, &before).values().sum::<usize>(),
        0,
        "serving signed-in users needs no provider"
    );
    assert_eq!(
        sign_in_as(target, newcomer).await,
        Ok(Outcome::Failed(Step::Authorize))
    );
    let browser = returning.browser();
    let res = browser.get(callback).await;
    assert_rejected(
        app,
        &browser,
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "Signing in with Hugging Face failed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_users_are_served_while_the_provider_is_down() {
    let test = async {
        let mut app = load_app().await;
        let target = Target::of(&app);
        let (ended, _) = sign_in_all(&target, clients(50)).await;
        assert_all_signed_in(&ended);
        let signed_in: Vec<_> = ended.into_iter().map(|(client, _)| client).collect();
        let users = users();
        let returning = [Client::new(1, &users), Client::new(2, &users)];
        let callbacks = [
            halfway(&app, &returning[0]).await,
            halfway(&app, &returning[1]).await,
        ];

        // The provider answers 503 to everything.
        for endpoint in ENDPOINTS {
            app.mock.add_fault(MockFault::Status {
                endpoint,
                status: 503,
            });
        }
        let newcomer = Client::new(3, &users);
        assert_outage_answered(
            &app,
            &target,
            &signed_in,
            &newcomer,
            &returning[0],
            &callbacks[0],
        )
        .await;

        // The provider is gone: its server stopped, its port closed.
        let stand_in = mock_with(|b| b).await;
        let provider = std::mem::replace(&mut app.mock, stand_in);
        let addr = provider.addr();
        drop(Arc::into_inner(provider).expect("only the app held the provider"));
        let refused = async {
            while tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), refused)
            .await
            .expect("the provider's port closes");
        assert_outage_answered(
            &app,
            &target,
            &signed_in,
            &newcomer,
            &returning[1],
            &callbacks[1],
        )
        .await;
        println!(
            "provider down (503, then stopped): {} signed-in users served, new and \
             returning sign-ins failed cleanly with 503",
            signed_in.len()
        );
    };
    tokio::time::timeout(DEADLINE, test)
        .await
        .expect("finishes within the deadline");
}
