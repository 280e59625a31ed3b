//! A gRPC service behind "Sign in with Hugging Face": callers send a Hugging Face access
//! token as `authorization: Bearer <token>` metadata, and each method says what it needs.
//! Only tonic: `HfAuthLayer` and the per-method guards of `GrpcMethods` are layers of
//! tonic's own server, no router in between.
//!
//! ```sh
//! cargo run --example tonic_service --features tonic,mock
//! ```
//!
//! With no `OAUTH_CLIENT_ID` it starts the offline `MockHfProvider` and prints a token
//! to try; with the variables a Space injects it checks tokens with Hugging Face.
//! `HOST`/`PORT` (default `127.0.0.1:50051`) choose where it listens.
//!
//! The service, written by hand so that no `protoc` is needed (with `tonic-build`, the
//! generated `DemoServer` takes the place of [`Demo`] and the guards stay the same):
//!
//! ```proto
//! syntax = "proto3";
//! package demo;
//!
//! message Empty {}
//! message User { string username = 1; string name = 2; repeated string scopes = 3; repeated string orgs = 4; }
//! message Reply { string message = 1; }
//!
//! service Demo {
//!   rpc WhoAmI(Empty) returns (User);        // any signed-in caller
//!   rpc ListRepos(Empty) returns (Reply);    // needs the `read-repos` scope
//!   rpc AcmeAdmin(Empty) returns (Reply);    // needs the admin role in `acme`
//! }
//! ```
//!
//! Try it with [grpcurl](https://github.com/fullstorydev/grpcurl) (no reflection, so
//! give it the proto above as `demo.proto`):
//!
//! ```sh
//! grpcurl -plaintext -proto demo.proto -H "authorization: Bearer $TOKEN" \
//!     127.0.0.1:50051 demo.Demo/ListRepos
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tonic::server::NamedService;
use tonic::{Status, body::Body};
use tower::{Service, service_fn};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::tonic::HfUserExt;
use tower_hf_auth::{
    GrpcMethods, HfAuthConfig, HfAuthConfigBuilder, HfAuthLayer, OrgRole, RequireOrg,
    RequireScopes, scope,
};

/// `demo.Empty`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `demo.User`: who the caller is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct User {
    /// The Hugging Face username (`@…`).
    #[prost(string, tag = "1")]
    pub username: String,
    /// The display name, or empty.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The scopes the token grants.
    #[prost(string, repeated, tag = "3")]
    pub scopes: Vec<String>,
    /// The organizations the user is in.
    #[prost(string, repeated, tag = "4")]
    pub orgs: Vec<String>,
}

/// `demo.Reply`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reply {
    /// What happened.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The `demo.Demo` service. Its methods trust the guards in front of them ([`guards`]);
/// `WhoAmI` has none and asks for the user itself with
/// [`require_hf_user`](HfUserExt::require_hf_user).
#[derive(Debug, Clone, Copy, Default)]
pub struct Demo;

impl Demo {
    /// The gRPC path of a method, `/demo.Demo/{method}`.
    pub fn path(method: &str) -> String {
        format!("/{}/{method}", Self::NAME)
    }
}

impl NamedService for Demo {
    const NAME: &'static str = "demo.Demo";
}

async fn who_am_i(request: tonic::Request<Empty>) -> Result<tonic::Response<User>, Status> {
    let user = request.require_hf_user()?;
    Ok(tonic::Response::new(User {
        username: user.username().to_owned(),
        name: user.name().unwrap_or_default().to_owned(),
        scopes: user.scopes().iter().map(str::to_owned).collect(),
        orgs: user.orgs().iter().map(|o| o.name().to_owned()).collect(),
    }))
}

async fn list_repos(request: tonic::Request<Empty>) -> Result<tonic::Response<Reply>, Status> {
    let user = request.require_hf_user()?;
    Ok(tonic::Response::new(Reply {
        message: format!(
            "@{} granted read-repos: this service may list their private repositories \
             with their access token",
            user.username()
        ),
    }))
}

async fn acme_admin(request: tonic::Request<Empty>) -> Result<tonic::Response<Reply>, Status> {
    let user = request.require_hf_user()?;
    Ok(tonic::Response::new(Reply {
        message: format!("@{} administers acme", user.username()),
    }))
}

/// Decodes one request message, calls `method`, encodes its answer (or status).
async fn unary<B, Req, Res, Fut>(
    req: http::Request<B>,
    method: fn(tonic::Request<Req>) -> Fut,
) -> http::Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    Req: prost::Message + Default + Send + Sync + 'static,
    Res: prost::Message + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Res>, Status>> + Send + 'static,
{
    let codec = tonic_prost::ProstCodec::<Res, Req>::default();
    tonic::server::Grpc::new(codec)
        .unary(service_fn(method), req)
        .await
}

impl<B> Service<http::Request<B>> for Demo
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // `/demo.Demo/{method}`
        let method = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(Self::NAME))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or_default();
        match method {
            "WhoAmI" => Box::pin(async move { Ok(unary(req, who_am_i).await) }),
            "ListRepos" => Box::pin(async move { Ok(unary(req, list_repos).await) }),
            "AcmeAdmin" => Box::pin(async move { Ok(unary(req, acme_admin).await) }),
            _ => Box::pin(async move { Ok(unimplemented().await) }),
        }
    }
}

/// `grpc-status: 12` for a method nobody serves.
async fn unimplemented() -> http::Response<Body> {
    Status::unimplemented("no such method").into_http()
}

/// What each method needs. `WhoAmI` has no guard: the handler asks for the user itself
/// (`require_hf_user`); methods nobody serves reach `Demo`, which answers 12.
pub fn guards() -> GrpcMethods {
    GrpcMethods::new()
        // Not signed in: `grpc-status: 16`; no `read-repos`: 7.
        .add_method(
            &Demo::path("ListRepos"),
            RequireScopes::all([scope::READ_REPOS]),
        )
        // Not signed in: 16; not an admin of acme: 7.
        .add_method(
            &Demo::path("AcmeAdmin"),
            RequireOrg::role("acme", OrgRole::Admin),
        )
}

/// Serves [`Demo`] over HTTP/2 (gRPC) on `listener` with tonic's server: the sign-in
/// layer outside, the per-method guards inside it.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: HfAuthConfig,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(HfAuthLayer::new(config))
        .layer(guards())
        .serve_with_incoming(Demo, tonic::transport::server::TcpIncoming::from(listener))
        .await
}

/// The configuration against the mock provider: bearer tokens on, checked with `mock`.
pub fn mock_config(mock: &MockHfProvider, public_url: &str) -> HfAuthConfigBuilder {
    let mut b = HfAuthConfig::builder()
        .with_client_id(mock.client_id())
        .with_provider_url(mock.issuer())
        .with_public_url(public_url)
        .with_bearer_tokens(true);
    if let Some(secret) = mock.client_secret() {
        b = b.with_client_secret(secret);
    }
    if let Ok(secret) = std::env::var("HF_AUTH_SECRET") {
        b = b.with_secret(secret);
    }
    b
}

#[allow(dead_code)] // The integration tests include this file for `serve` and not `main`.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(50051);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let bound = listener.local_addr()?;
    let public = format!("http://{bound}");

    let mut _mock = None;
    let config = if std::env::var_os("OAUTH_CLIENT_ID").is_some() {
        let mut builder = HfAuthConfigBuilder::from_env()?.with_bearer_tokens(true);
        if std::env::var_os("SPACE_HOST").is_none() && std::env::var_os("PUBLIC_URL").is_none() {
            builder = builder.with_public_url(&public);
        }
        builder.build()?
    } else {
        let mock = MockHfProvider::start().await?;
        println!(
            "OAUTH_CLIENT_ID is not set: using the offline MockHfProvider at {} \
             (users: {})",
            mock.issuer(),
            mock.users().join(", ")
        );
        println!(
            "Tokens to send as `authorization: Bearer <token>`:\n  \
             alice (read token; admin of acme): {}\n  \
             bob (write token; in no organization): {}\n  \
             alice (fine-grained token; no read-repos): {}",
            mock.issue_user_token("alice", "read"),
            mock.issue_user_token("bob", "write"),
            mock.issue_user_token("alice", "fineGrained"),
        );
        let config = mock_config(&mock, &public).build()?;
        _mock = Some(mock);
        config
    };
    println!("demo.Demo (gRPC) listening on {bound}");
    serve(listener, config).await?;
    Ok(())
}
