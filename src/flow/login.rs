//! `/login?return_to=…&scope=…&org=…`: remember a pending sign-in and send the
//! browser to the provider's authorize endpoint. `scope` adds scopes to ask for
//! (incremental consent); `org` asks for access to an organization of the signed-in
//! user (`orgIds` with its id, which Hugging Face's consent screen then offers).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Response};

use super::callback::provider_failure;
use super::frame_escape;
use super::pending::{self, PendingLogin};
use super::return_to;
use crate::respond::{self, Caller};
use crate::runtime::Runtime;

/// A scope as RFC 6749 §3.3 allows it, short enough to be one.
fn is_scope_token(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

fn random_token(runtime: &Runtime) -> String {
    URL_SAFE_NO_PAD.encode(runtime.sessions.keys.random_bytes::<32>())
}

fn now_ns(runtime: &Runtime) -> u64 {
    runtime
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The id of the organization called `name`, as the browser's current session knows
/// it (Hugging Face lists every organization of the user, granted or not).
async fn org_id(runtime: &Runtime, headers: &HeaderMap, name: &str) -> Option<String> {
    let user = runtime.session_user(headers).await?;
    let id = user.org(name)?.id();
    let plain = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    plain.then(|| id.to_owned())
}

/// `/login`: remember a pending sign-in and send the browser to the provider.
pub(super) async fn start(
    runtime: &Runtime,
    caller: Caller,
    query: &str,
    headers: &HeaderMap,
) -> Response<respond::Body> {
    let config = &runtime.config;
    let mut return_to = "/".to_owned();
    let mut scopes = config.scopes.clone();
    let mut org_ids = config.org_ids.clone();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "return_to" => return_to = return_to::sanitize(&v),
            // Ask for access to an organization on the spot (a guard's denial links here).
            "org" => {
                if let Some(id) = org_id(runtime, headers, &v)
                    .await
                    .filter(|id| !org_ids.contains(id))
                {
                    org_ids.push(id);
                }
            }
            // Incremental consent: the guards ask for the scopes a route is missing.
            "scope" => {
                scopes = scopes
                    .iter()
                    .chain(v.split_ascii_whitespace().filter(|s| is_scope_token(s)))
                    .collect()
            }
            _ => {}
        }
    }
    let metadata = match runtime.provider.metadata().await {
        Ok(m) => m,
        Err(e) => {
            let retry = respond::login_href(runtime, &return_to);
            return respond::error(caller, provider_failure(&e), Some(&retry));
        }
    };
    let mut set_cookies = pending::prune(runtime, headers, runtime.now());
    let retry = frame_escape::is_retry(query);
    let pending = PendingLogin {
        state: frame_escape::mark_state(runtime, random_token(runtime), retry),
        nonce: random_token(runtime),
        verifier: random_token(runtime),
        return_to,
        scope: scopes.to_string(),
        created_ns: now_ns(runtime),
    };
    set_cookies.push(pending.cookie(runtime));

    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, pending.verifier.as_bytes()));
    let mut url = metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", config.client_id())
            .append_pair("redirect_uri", &config.redirect_uri)
            .append_pair("scope", &pending.scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if !org_ids.is_empty() {
            q.append_pair("orgIds", &org_ids.join(","));
        }
    }
    respond::with_cookies(respond::redirect(url.as_str()), set_cookies)
}
