//! A small axum app with "Sign in with Hugging Face".
//!
//! ```sh
//! cargo run --example axum_app --features axum,mock,redis
//! ```
//!
//! With no `OAUTH_CLIENT_ID` it starts the offline `MockHfProvider` and signs in
//! against it; with the variables a Space injects (`OAUTH_CLIENT_ID`,
//! `OAUTH_CLIENT_SECRET`, `OAUTH_SCOPES`, `OPENID_PROVIDER_URL`, `SPACE_HOST`) it talks
//! to Hugging Face. `HOST`/`PORT` (default `127.0.0.1:7860`) choose where it listens,
//! `PUBLIC_URL` the URL people open (default `http://{HOST}:{PORT}`), `HF_AUTH_SECRET`
//! the cookie key. `HF_MOCK_USERS` names a JSON file of mock users (see the README).
//! `HF_AUTH_REDIS_URL` keeps sessions in Redis or Valkey (build with `--features
//! axum,mock,redis`): several copies of the app then share sessions, and the home page
//! offers "Sign out everywhere".
//!
//! With the `metrics` feature (`--features axum,mock,metrics`) it also serves the
//! crate's metrics in Prometheus text at `GET /metrics`, rendered by
//! `metrics-exporter-prometheus` in a route of the app (the exporter opens no listener
//! of its own). The route is public here; a real app would guard it or serve it on a
//! port of its own.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use tower_hf_auth::badge::{account_widget, escape_html};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{
    HfAuthConfig, HfAuthConfigBuilder, HfAuthLayer, HfUser, OrgRole, RequireLogin, RequireOrg,
    RequireScopes, scope,
};

/// The app's routes behind the sign-in layer.
pub fn app(config: HfAuthConfig) -> Router {
    let settings = config.clone();
    let router = Router::new()
        .route(
            "/",
            get(move |user: Option<HfUser>| home(settings.clone(), user)),
        )
        .route("/me", get(me).route_layer(RequireLogin))
        // Needs `read-repos`: signed-in browsers without it are asked for it (incremental
        // consent); if the user declines, they get a page naming the missing scope.
        .route(
            "/repos",
            get(repos).route_layer(RequireScopes::all([scope::READ_REPOS])),
        )
        .route("/orgs/{org}", get(org).route_layer(RequireLogin))
        .route(
            "/acme/admin",
            get(acme_admin).route_layer(RequireOrg::role("acme", OrgRole::Admin)),
        );
    // The recorder is installed with the app, before it serves: no sign-in goes uncounted.
    #[cfg(feature = "metrics")]
    let router = {
        metrics::handle();
        router.route("/metrics", get(metrics::render))
    };
    router.layer(HfAuthLayer::new(config))
}

/// `GET /metrics`: the crate's counters and histograms in Prometheus text.
#[cfg(feature = "metrics")]
pub mod metrics {
    use std::sync::OnceLock;

    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

    /// The process's Prometheus recorder, installed on first use (an app installs one
    /// recorder, before it serves requests).
    pub fn handle() -> &'static PrometheusHandle {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        HANDLE.get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
    }

    pub(super) async fn render() -> String {
        handle().render()
    }
}

async fn home(config: HfAuthConfig, user: Option<HfUser>) -> Html<String> {
    // The official badge when signed out; avatar, name and sign-out when signed in.
    let widget = account_widget(&config, user.as_ref(), "/");
    let body = match user {
        None => format!("<p>You are not signed in.</p>{widget}"),
        Some(user) => {
            let orgs: Vec<String> = user
                .orgs()
                .iter()
                .map(|o| {
                    let role = o.role().map_or("no role granted".into(), |r| r.to_string());
                    format!("<li>{} ({})</li>", escape_html(o.name()), role)
                })
                .collect();
            let scopes: Vec<&str> = user.scopes().iter().collect();
            format!(
                r#"{widget}<p><img src="{avatar}" alt="" width="64" height="64"></p>
<p>Signed in as <strong>{name}</strong> <span class="handle">@{username}</span></p>
<h2>Organizations</h2><ul class="orgs">{orgs}</ul>
<h2>Granted scopes</h2><p class="scopes">{scopes}</p>
<p><a href="/me">Your profile as JSON</a> · <a href="/repos">Repositories (needs read-repos)</a> ·
<a href="/orgs/acme">acme</a> · <a href="/logout">Sign out</a></p>{everywhere}"#,
                everywhere = if config.session_store().is_server_side() {
                    r#"<form method="post" action="/logout"><input type="hidden" name="everywhere" value="1"><button>Sign out everywhere</button></form>"#
                } else {
                    ""
                },
                avatar = escape_html(user.avatar_url().unwrap_or("")),
                name = escape_html(user.name().unwrap_or(user.username())),
                username = escape_html(user.username()),
                orgs = if orgs.is_empty() {
                    "<li>none</li>".into()
                } else {
                    orgs.join("")
                },
                scopes = escape_html(&scopes.join(" ")),
            )
        }
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tower-hf-auth demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
.handle{{color:#666}}</style></head><body><h1>tower-hf-auth demo</h1>{body}</body></html>"#
    ))
}

async fn repos(user: HfUser) -> Html<String> {
    Html(format!(
        "<h1>Repositories</h1><p>@{} granted <code>read-repos</code>: this app may list \
         their private repositories with their access token.</p>",
        escape_html(user.username())
    ))
}

async fn org(user: HfUser, Path(name): Path<String>) -> Response {
    match user.org(&name) {
        Some(org) => Html(format!(
            "<h1>{}</h1><p>@{} is a member (role: {}).</p>",
            escape_html(org.name()),
            escape_html(user.username()),
            org.role()
                .map_or("not granted to this app".into(), |r| r.to_string())
        ))
        .into_response(),
        None => (
            StatusCode::FORBIDDEN,
            Html(format!(
                "<h1>Not a member</h1><p>@{} is not a member of <code>{}</code>, or did not \
                 grant this app access to it on the consent screen. \
                 <a href=\"/login?return_to=/orgs/{}\">Sign in again</a> to grant it.</p>",
                escape_html(user.username()),
                escape_html(&name),
                escape_html(&name)
            )),
        )
            .into_response(),
    }
}

async fn acme_admin(user: HfUser) -> String {
    format!("@{} administers acme", user.username())
}

async fn me(user: HfUser) -> impl IntoResponse {
    Json(user)
}

/// Where the app listens and the URL people open.
pub fn address() -> (String, u16) {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7860);
    (host, port)
}

/// The configuration against the mock provider, for `public_url`.
pub fn mock_config(mock: &MockHfProvider, public_url: &str) -> HfAuthConfigBuilder {
    mock_settings(HfAuthConfig::builder(), mock, public_url)
}

/// `b` pointed at the mock provider, for `public_url`.
fn mock_settings(
    b: HfAuthConfigBuilder,
    mock: &MockHfProvider,
    public_url: &str,
) -> HfAuthConfigBuilder {
    let mut b = b
        .with_client_id(mock.client_id())
        .with_provider_url(mock.issuer())
        .with_public_url(public_url)
        .with_scopes(["openid", "profile", "email"]);
    if let Some(secret) = mock.client_secret() {
        b = b.with_client_secret(secret);
    }
    b
}

#[allow(dead_code)] // The integration tests include this file for `app` and not `main`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host, port) = address();
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let bound = listener.local_addr()?;
    let default_public = format!("http://{host}:{}", bound.port());

    let mut _mock = None;
    let config = if std::env::var_os("OAUTH_CLIENT_ID").is_some() {
        let mut builder = HfAuthConfigBuilder::from_env()?;
        if std::env::var_os("SPACE_HOST").is_none() && std::env::var_os("PUBLIC_URL").is_none() {
            builder = builder.with_public_url(&default_public);
        }
        builder.build()?
    } else {
        // HF_MOCK_USERS: a JSON file of your own users and organizations.
        let mut builder = MockHfProvider::builder();
        if let Some(path) = std::env::var_os("HF_MOCK_USERS") {
            builder = builder.add_users_from_file(path)?;
        }
        let mock = builder.start().await?;
        println!(
            "OAUTH_CLIENT_ID is not set: using the offline MockHfProvider at {} \
             (users: {})",
            mock.issuer(),
            mock.users().join(", ")
        );
        let public = std::env::var("PUBLIC_URL").unwrap_or(default_public);
        // The crate's own variables (HF_AUTH_SECRET, HF_AUTH_REDIS_URL, …) still apply.
        let config = mock_settings(HfAuthConfigBuilder::from_env()?, &mock, &public).build()?;
        _mock = Some(mock);
        config
    };
    if config.has_ephemeral_keys() {
        eprintln!(
            "warning: neither HF_AUTH_SECRET nor OAUTH_CLIENT_SECRET is set; a random cookie \
             key is used and sessions will not survive a restart"
        );
    }
    #[cfg(feature = "metrics")]
    println!("Prometheus metrics at {}/metrics", config.public_url());
    if config.session_store().is_server_side() {
        println!("sessions live in the Redis server of HF_AUTH_REDIS_URL");
    }
    println!("tower-hf-auth demo listening on http://{bound}");
    println!("Open {} in a browser", config.public_url());
    axum::serve(listener, app(config)).await?;
    Ok(())
}
