//! A Hugging Face Space with "Sign in with Hugging Face": the app of the template in
//! `examples/space/` (README metadata, Dockerfile, this file).
//!
//! It needs nothing but what a Space with `hf_oauth: true` injects (`OAUTH_CLIENT_ID`,
//! `OAUTH_CLIENT_SECRET`, `OAUTH_SCOPES`, `OPENID_PROVIDER_URL`, `SPACE_HOST`): the
//! cookie key comes from the client secret, so a restart keeps everyone signed in; the
//! cookies suit the iframe on huggingface.co. It listens on `0.0.0.0:7860` (`HOST`,
//! `PORT` to change that; `PORT=0` picks a free port) and prints the address it bound.
//!
//! ```sh
//! cargo run --example space --features axum   # in this repository, with the variables set
//! ```

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use tower_hf_auth::badge::{account_widget, escape_html};
use tower_hf_auth::{HfAuthConfig, HfAuthLayer, HfUser, RequireLogin, RequireScopes};

/// The app's state: its settings (for the sign-in widget) and who waved.
#[derive(Clone)]
struct AppState {
    config: HfAuthConfig,
    waves: Arc<Mutex<Vec<String>>>,
}

/// The Space's routes behind the sign-in layer.
pub fn app(config: HfAuthConfig) -> Router {
    let state = AppState {
        config: config.clone(),
        waves: Arc::default(),
    };
    Router::new()
        .route("/", get(home))
        // A change of state: the layer refuses it when another site starts it.
        .route("/wave", post(wave).route_layer(RequireLogin))
        .route(
            "/repos",
            get(repos).route_layer(RequireScopes::all(["read-repos"])),
        )
        .with_state(state)
        .layer(HfAuthLayer::new(config))
}

async fn home(State(state): State<AppState>, user: Option<HfUser>) -> Html<String> {
    let widget = account_widget(&state.config, user.as_ref(), "/");
    let waves: Vec<String> = state
        .waves
        .lock()
        .expect("the wave list is never poisoned")
        .iter()
        .map(|w| format!("<li>@{}</li>", escape_html(w)))
        .collect();
    let action = match &user {
        Some(user) => format!(
            r#"<p id="greeting">Hello, {}!</p><form method="post" action="/wave"><button id="wave">Wave</button></form>
<p><a href="/repos">Your repositories (asks for <code>read-repos</code>)</a></p>"#,
            escape_html(user.name().unwrap_or(user.username()))
        ),
        None => "<p>Sign in to wave.</p>".to_owned(),
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A Space with Hugging Face sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}.hf-handle{{color:#666}}</style>
</head><body><h1>A Space with Hugging Face sign-in</h1>{widget}{action}<h2>Waves</h2><ul id="waves">{}</ul></body></html>"#,
        waves.join("")
    ))
}

async fn wave(State(state): State<AppState>, user: HfUser) -> Redirect {
    state
        .waves
        .lock()
        .expect("the wave list is never poisoned")
        .push(user.username().to_owned());
    Redirect::to("/")
}

async fn repos(user: HfUser) -> Html<String> {
    Html(format!(
        "<h1>Repositories</h1><p id=\"repos\">@{} granted <code>read-repos</code>.</p>",
        escape_html(user.username())
    ))
}

#[allow(dead_code)] // Tests include this file for `app` and not `main`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = HfAuthConfig::from_env()?;
    let host = std::env::var("HOST").unwrap_or_else(|_| "0.0.0.0".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7860);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    if config.has_ephemeral_keys() {
        eprintln!("warning: no OAUTH_CLIENT_SECRET or HF_AUTH_SECRET: sessions end at restart");
    }
    println!("listening on http://{}", listener.local_addr()?);
    println!("public URL {}", config.public_url());
    axum::serve(listener, app(config)).await?;
    Ok(())
}
