//! gRPC over real sockets, tonic only (no axum): the example's `demo.Demo` service
//! (examples/tonic_service.rs) served by tonic's server with bearer tokens on, against
//! `MockHfProvider`, called by tonic's client. The per-method guards of `GrpcMethods`
//! answer `Unauthenticated` (16) and `PermissionDenied` (7) with a message saying why.
#![allow(unreachable_pub)]

#[cfg(not(all(feature = "tonic", feature = "mock")))]
compile_error!(
    "tests/tonic.rs needs the `tonic` and `mock` features: run `cargo test --all-features`"
);

#[path = "../examples/tonic_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::sync::Arc;
use std::time::Duration;

use example::{Demo, Empty, Reply, User};
use http::uri::PathAndQuery;
use tonic::server::NamedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower_hf_auth::mock::MockHfProvider;
use tower_hf_auth::{
    GrpcMethods, HfAuthConfig, HfAuthLayer, RequireLogin, RequireScopes, RequireUser,
};

const SECRET: &str = "test secret: thirty-two characters or more, really";

/// A running server and a client channel to it; the server stops on drop.
struct Served {
    mock: Arc<MockHfProvider>,
    channel: Channel,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves what `serve` makes of the test configuration on a loopback port.
async fn served_with<F, Fut>(serve: F) -> Served
where
    F: FnOnce(tokio::net::TcpListener, HfAuthConfig) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let mock = Arc::new(MockHfProvider::start().await.expect("mock provider starts"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = example::mock_config(&mock, &format!("http://{addr}"))
        .with_secret(SECRET)
        .with_timeout(Duration::from_secs(30))
        .build()
        .expect("test config is valid");
    let running = serve(listener, config);
    let server = tokio::spawn(async move { running.await.expect("server runs") });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("client connects");
    Served {
        mock,
        channel,
        server,
    }
}

/// The example as it runs: per-method guards in front of `Demo`.
async fn served() -> Served {
    served_with(example::serve).await
}

/// Calls `method` with an empty request, as `token`'s bearer when there is one.
async fn call<Res>(served: &Served, method: &str, token: Option<&str>) -> Result<Res, Status>
where
    Res: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(served.channel.clone());
    grpc.ready().await.expect("channel is ready");
    let mut request = tonic::Request::new(Empty {});
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let path = PathAndQuery::try_from(Demo::path(method)).unwrap();
    let codec = tonic_prost::ProstCodec::<Empty, Res>::default();
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(answer: Result<T, Status>, code: Code, needles: &[&str]) {
    let status = answer.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "expected {needle:?} in the grpc-message {:?}",
            status.message()
        );
    }
}

#[tokio::test]
async fn without_a_token_every_method_is_unauthenticated() {
    let served = served().await;
    // `WhoAmI` has no guard: `require_hf_user()` in the handler answers.
    assert_status(
        call::<User>(&served, "WhoAmI", None).await,
        Code::Unauthenticated,
        &["Sign in with Hugging Face", "authorization: Bearer"],
    );
    // The others are answered by their guards before the handler runs.
    for method in ["ListRepos", "AcmeAdmin"] {
        assert_status(
            call::<Reply>(&served, method, None).await,
            Code::Unauthenticated,
            &["Sign in with Hugging Face"],
        );
    }
}

#[tokio::test]
async fn an_invalid_token_is_unauthenticated() {
    let served = served().await;
    let token = Some("hf_this_token_does_not_exist");
    assert_status(
        call::<User>(&served, "WhoAmI", token).await,
        Code::Unauthenticated,
        &["did not accept the bearer token"],
    );
    for method in ["ListRepos", "AcmeAdmin"] {
        assert_status(
            call::<Reply>(&served, method, token).await,
            Code::Unauthenticated,
            &["Hugging Face"],
        );
    }
    let revoked = served.mock.issue_user_token("alice", "read");
    served.mock.revoke_token(&revoked);
    assert_status(
        call::<User>(&served, "WhoAmI", Some(&revoked)).await,
        Code::Unauthenticated,
        &["did not accept the bearer token"],
    );
}

#[tokio::test]
async fn a_read_token_reaches_who_am_i_and_list_repos() {
    let served = served().await;
    let token = served.mock.issue_user_token("alice", "read");

    let me: User = call(&served, "WhoAmI", Some(&token)).await.unwrap();
    assert_eq!(me.username, "alice");
    assert!(me.scopes.iter().any(|s| s == "read-repos"), "{me:?}");
    assert!(!me.scopes.iter().any(|s| s == "write-repos"), "{me:?}");
    assert!(me.orgs.iter().any(|o| o == "acme"), "{me:?}");

    let reply: Reply = call(&served, "ListRepos", Some(&token)).await.unwrap();
    assert!(reply.message.contains("@alice"), "{reply:?}");
}

#[tokio::test]
async fn a_fine_grained_token_lacks_read_repos() {
    let served = served().await;
    let token = served.mock.issue_user_token("alice", "fineGrained");

    let me: User = call(&served, "WhoAmI", Some(&token)).await.unwrap();
    assert_eq!(me.username, "alice", "the token does sign alice in");
    assert!(!me.scopes.iter().any(|s| s == "read-repos"), "{me:?}");

    assert_status(
        call::<Reply>(&served, "ListRepos", Some(&token)).await,
        Code::PermissionDenied,
        &["read-repos", "not granted"],
    );
}

#[tokio::test]
async fn acme_admin_needs_the_admin_role_in_acme() {
    let served = served().await;

    let alice = served.mock.issue_user_token("alice", "read");
    let reply: Reply = call(&served, "AcmeAdmin", Some(&alice)).await.unwrap();
    assert_eq!(reply.message, "@alice administers acme");

    let bob = served.mock.issue_user_token("bob", "write");
    let me: User = call(&served, "WhoAmI", Some(&bob)).await.unwrap();
    assert_eq!(me.username, "bob");
    assert!(me.scopes.iter().any(|s| s == "write-repos"), "{me:?}");
    assert_status(
        call::<Reply>(&served, "AcmeAdmin", Some(&bob)).await,
        Code::PermissionDenied,
        &["admin", "`acme`"],
    );
    // Bob's `write` token has `read-repos` too.
    let reply: Reply = call(&served, "ListRepos", Some(&bob)).await.unwrap();
    assert!(reply.message.contains("@bob"), "{reply:?}");
}

#[tokio::test]
async fn unknown_methods_are_unimplemented() {
    let served = served().await;
    let token = served.mock.issue_user_token("alice", "read");
    assert_status(
        call::<Reply>(&served, "DeleteEverything", Some(&token)).await,
        Code::Unimplemented,
        &[],
    );
}

/// The plain tonic way: `HfAuthLayer` (and a guard, for every method) as
/// `Server::builder().layer(…)` around a whole service, handlers reading the user with
/// `HfUserExt`.
#[tokio::test]
async fn layers_wrap_a_whole_tonic_server() {
    let served = served_with(|listener, config| async move {
        tonic::transport::Server::builder()
            .layer(HfAuthLayer::new(config))
            .layer(RequireScopes::all(["read-repos"]))
            .serve_with_incoming(Demo, tonic::transport::server::TcpIncoming::from(listener))
            .await
    })
    .await;

    assert_status(
        call::<User>(&served, "WhoAmI", None).await,
        Code::Unauthenticated,
        &["Sign in with Hugging Face"],
    );
    let bob = served.mock.issue_user_token("bob", "write");
    let me: User = call(&served, "WhoAmI", Some(&bob)).await.unwrap();
    assert_eq!(me.username, "bob");
    let fine_grained = served.mock.issue_user_token("bob", "fineGrained");
    assert_status(
        call::<User>(&served, "WhoAmI", Some(&fine_grained)).await,
        Code::PermissionDenied,
        &["read-repos"],
    );
}

/// A service-wide guard applies to every method, a method's own guards add to it.
#[tokio::test]
async fn service_guards_cover_every_method_and_method_guards_add_to_them() {
    let served = served_with(|listener, config| async move {
        let guards = GrpcMethods::new()
            .add_service(
                Demo::NAME,
                RequireUser::new("to be bob", |u| u.username() == "bob"),
            )
            .add_method(&Demo::path("ListRepos"), RequireScopes::all(["read-repos"]));
        tonic::transport::Server::builder()
            .layer(HfAuthLayer::new(config))
            .layer(guards)
            .serve_with_incoming(Demo, tonic::transport::server::TcpIncoming::from(listener))
            .await
    })
    .await;

    // Nobody signed in: the service guard answers 16 before any handler runs.
    assert_status(
        call::<Reply>(&served, "AcmeAdmin", None).await,
        Code::Unauthenticated,
        &["Sign in with Hugging Face"],
    );
    // Alice is not bob: 7 on every method, guarded on its own or not.
    let alice = served.mock.issue_user_token("alice", "read");
    for method in ["WhoAmI", "ListRepos", "AcmeAdmin"] {
        assert_status(
            call::<Reply>(&served, method, Some(&alice)).await,
            Code::PermissionDenied,
            &["This needs to be bob"],
        );
    }
    // Bob passes the service guard; `AcmeAdmin` has no guard of its own here.
    let bob = served.mock.issue_user_token("bob", "write");
    let me: User = call(&served, "WhoAmI", Some(&bob)).await.unwrap();
    assert_eq!(me.username, "bob");
    let reply: Reply = call(&served, "AcmeAdmin", Some(&bob)).await.unwrap();
    assert_eq!(reply.message, "@bob administers acme");
    // ListRepos adds `read-repos`, which bob's fine-grained token lacks.
    let fine_grained = served.mock.issue_user_token("bob", "fineGrained");
    assert_status(
        call::<Reply>(&served, "ListRepos", Some(&fine_grained)).await,
        Code::PermissionDenied,
        &["read-repos"],
    );
    let reply: Reply = call(&served, "ListRepos", Some(&bob)).await.unwrap();
    assert!(reply.message.contains("@bob"), "{reply:?}");
}

/// Without `HfAuthLayer` around them, guarded methods answer `Internal` (13) saying so;
/// the app's mistake is never taken for the caller's.
#[tokio::test]
async fn guarded_methods_without_the_sign_in_layer_say_it_is_missing() {
    let served = served_with(|listener, _config| async move {
        tonic::transport::Server::builder()
            .layer(GrpcMethods::new().add_method(&Demo::path("ListRepos"), RequireLogin))
            .serve_with_incoming(Demo, tonic::transport::server::TcpIncoming::from(listener))
            .await
    })
    .await;
    let token = served.mock.issue_user_token("alice", "read");
    assert_status(
        call::<Reply>(&served, "ListRepos", Some(&token)).await,
        Code::Internal,
        &["HfAuthLayer is missing"],
    );
}
