//! Passing guards cost no allocation: the same request with a real session cookie goes
//! through `HfAuthLayer` alone and through `HfAuthLayer` plus four stacked guards that
//! all pass, and the allocations of each call are counted (allocation-counter, which
//! counts on the current thread; the calls run on a current-thread runtime). And a
//! session found in the opened-session cache costs no allocation but the user's slot in
//! the request's extensions, where the user carries the layer's context: one extension,
//! as for a request with no cookie.
#![allow(unreachable_pub)]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use bytes::Bytes;
use common::*;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_hf_auth::{
    HfAuthLayer, HfUser, OrgRole, RequireLogin, RequireOrg, RequireScopes, RequireUser,
};

/// Alice's session cookie from a real sign-in, and the layer that opens it.
fn signed_in_layer() -> (HfAuthLayer, HeaderValue) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stash = Arc::new(Mutex::new(None));
        let kept = stash.clone();
        let app = serve(
            mock().await,
            |b| b,
            move |config| {
                let layer = HfAuthLayer::new(config);
                *kept.lock().unwrap() = Some(layer.clone());
                axum::Router::new()
                    .route("/", get(|| async { "home" }))
                    .layer(layer)
            },
        )
        .await;
        let browser = Browser::new();
        let res = sign_in(&app, &browser, "alice", "/").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "the sign-in succeeds");
        let cookie = browser.cookies(&format!("{}/", app.base));
        assert!(cookie.contains("hf_auth="), "{cookie}");
        let layer = stash.lock().unwrap().take().expect("the router was built");
        (layer, HeaderValue::from_str(&cookie).unwrap())
    })
}

/// Allocations made by one call of `svc` with `cookie` (after one call to warm up), and
/// the body it answered.
fn allocations<S, B>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    cookie: Option<&HeaderValue>,
) -> (u64, String)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible> + Clone,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let request = || {
        let mut req = Request::get("/").header(header::ACCEPT, "text/html");
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie.clone());
        }
        req.body(Full::default()).unwrap()
    };
    let body = |res: Response<B>| {
        let bytes = rt.block_on(http_body_util::BodyExt::collect(res.into_body()));
        String::from_utf8(bytes.unwrap().to_bytes().to_vec()).unwrap()
    };
    // Once to warm up whatever is made lazily, then counted.
    let res = rt.block_on(svc.clone().oneshot(request())).unwrap();
    let answered = body(res);
    let (svc, req) = (svc.clone(), request());
    let info = allocation_counter::measure(|| {
        let res = rt.block_on(svc.oneshot(req)).unwrap();
        drop(res);
    });
    (info.count_total, answered)
}

/// Answers with the signed-in user's name.
async fn username(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = req
        .extensions()
        .get::<HfUser>()
        .map(|u| u.username().to_owned());
    Ok(Response::new(Full::new(Bytes::from(
        name.unwrap_or_default(),
    ))))
}

#[test]
fn passing_guards_allocate_nothing() {
    let (layer, cookie) = signed_in_layer();
    let cookie = Some(&cookie);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inner = service_fn(username);
    let plain = layer.layer(inner);
    let guarded = layer.layer(
        ServiceBuilder::new()
            .layer(RequireLogin)
            .layer(RequireScopes::all(["openid", "profile"]))
            .layer(RequireOrg::role("acme", OrgRole::Admin))
            .layer(RequireUser::new("a PRO subscription", |u| u.is_pro()))
            .service(inner),
    );

    let (without, answered) = allocations(&rt, &plain, cookie);
    assert_eq!(answered, "alice", "the layer alone signs alice in");
    let (with, answered) = allocations(&rt, &guarded, cookie);
    assert_eq!(answered, "alice", "alice passes all four guards");
    assert!(
        without > 0,
        "the counter counts: opening a session allocates"
    );
    assert_eq!(with, without, "four passing guards added allocations");
}

#[test]
fn a_cached_session_allocates_only_the_users_extension_slot() {
    let (layer, cookie) = signed_in_layer();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Answers without allocating: a static body saying who is signed in, and whether
    // the layer put one extension into the request.
    let svc = layer.layer(service_fn(|req: Request<Full<Bytes>>| async move {
        let one = req.extensions().len() == 1;
        let body: &'static str = match (req.extensions().get::<HfUser>(), one) {
            (Some(user), true) if user.username() == "alice" => "alice",
            (Some(_), _) => "someone else, or more than the user",
            (None, true) => "",
            (None, false) => "more than the layer's context",
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            body.as_bytes(),
        ))))
    }));
    // The warm-up call opens the session and caches it; the counted one is a hit.
    let (hit, answered) = allocations(&rt, &svc, Some(&cookie));
    assert_eq!(answered, "alice");
    let (anonymous, answered) = allocations(&rt, &svc, None);
    assert_eq!(answered, "");
    // The same request with no cookie makes the extensions map and the box of the
    // layer's context in it; a hit makes the map and the box of the `HfUser`, which
    // carries the context, and nothing else: no copy of the cookie, no decryption
    // buffer, no profile.
    assert!(anonymous > 0, "the counter counts");
    assert_eq!(
        hit, anonymous,
        "a cache hit made {hit} allocations, a request without a cookie {anonymous}"
    );
}
