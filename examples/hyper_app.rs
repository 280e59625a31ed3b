//! "Sign in with Hugging Face" on plain hyper: `HfAuthLayer` and a guarded route with
//! `tower::ServiceBuilder` only, no web framework.
//!
//! ```sh
//! cargo run --example hyper_app --features mock
//! ```
//!
//! With no `OAUTH_CLIENT_ID` it starts the offline `MockHfProvider`; with the variables
//! a Space injects it talks to Hugging Face. `HOST`/`PORT` (default `127.0.0.1:7860`)
//! choose where it listens. Routes: `/` (public: who is signed in), `/me` (needs a
//! signed-in user), and the layer's own `/login`, `/login/callback`, `/logout`.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::{BoxError, Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{HfAuthConfig, HfAuthConfigBuilder, HfAuthLayer, HfUser, RequireLogin};

/// Every response body of the app, boxed so routes with different bodies fit together.
type Body = UnsyncBoxBody<Bytes, BoxError>;

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from(body))
            .map_err(Into::into)
            .boxed_unsync(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

/// `/`: public; says who is signed in, if anyone.
async fn home(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let page = match req.extensions().get::<HfUser>() {
        Some(user) => format!(
            "<p>Signed in as @{}.</p><p><a href=\"/me\">/me</a> · <a href=\"/logout\">Sign out</a></p>",
            user.username()
        ),
        None => "<p><a href=\"/login?return_to=/me\">Sign in with Hugging Face</a></p>".to_owned(),
    };
    Ok(text(StatusCode::OK, "text/html; charset=utf-8", page))
}

/// `/me`: behind `RequireLogin`, so the user is always there.
async fn me(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let username = req
        .extensions()
        .get::<HfUser>()
        .map_or("", |user| user.username());
    let body = serde_json::json!({ "username": username }).to_string();
    Ok(text(StatusCode::OK, "application/json", body))
}

/// The app: a tiny path dispatch, `/me` guarded, everything behind `HfAuthLayer`.
pub fn service(
    config: HfAuthConfig,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<tower_hf_auth::AuthBody<Body>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let guarded_me = RequireLogin.layer(service_fn(me));
    let routes = service_fn(move |req: Request<Incoming>| {
        let guarded_me = guarded_me.clone();
        async move {
            match req.uri().path() {
                "/me" => {
                    let res = guarded_me.oneshot(req).await?;
                    Ok(res.map(|body| body.map_err(Into::into).boxed_unsync()))
                }
                _ => home(req).await,
            }
        }
    });
    ServiceBuilder::new()
        .layer(HfAuthLayer::new(config))
        .service(routes)
}

/// Serves `service` on `listener`, one hyper HTTP/1 connection per accepted socket.
pub async fn serve<S, B>(listener: tokio::net::TcpListener, service: S) -> std::io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}

/// The configuration against the mock provider, for `public_url`.
pub fn mock_config(mock: &MockHfProvider, public_url: &str) -> HfAuthConfigBuilder {
    let mut b = HfAuthConfig::builder()
        .with_client_id(mock.client_id())
        .with_provider_url(mock.issuer())
        .with_public_url(public_url);
    if let Some(secret) = mock.client_secret() {
        b = b.with_client_secret(secret);
    }
    b
}

#[allow(dead_code)] // The integration tests include this file for `service` and `serve`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7860);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let public = format!("http://{host}:{}", listener.local_addr()?.port());
    let mut _mock = None;
    let config = if std::env::var_os("OAUTH_CLIENT_ID").is_some() {
        let mut builder = HfAuthConfigBuilder::from_env()?;
        if std::env::var_os("SPACE_HOST").is_none() && std::env::var_os("PUBLIC_URL").is_none() {
            builder = builder.with_public_url(&public);
        }
        builder.build()?
    } else {
        let mock = MockHfProvider::start().await?;
        println!(
            "OAUTH_CLIENT_ID is not set: using the offline MockHfProvider at {}",
            mock.issuer()
        );
        let config = mock_config(&mock, &public).build()?;
        _mock = Some(mock);
        config
    };
    println!("hyper demo: open {}", config.public_url());
    serve(listener, service(config)).await?;
    Ok(())
}
