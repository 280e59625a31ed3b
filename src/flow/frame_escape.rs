//! The iframe loop breaker. A Space is shown in an iframe on huggingface.co, where
//! browsers that block third-party cookies (Safari, private windows) drop the pending
//! sign-in cookie: every callback then fails, and "Try again" in the frame fails again
//! (gradio's issues #8533 and #13777).
//!
//! In iframe mode, a callback that finds no pending sign-in cookie answers with a page
//! that says why and links (`target="_top"`) to the app's own public URL, where its
//! cookies are first-party: sign-in outside the iframe, as Hugging Face's own clients
//! do it (huggingface.js opens a new window when called in a frame; gradio breaks out
//! to the top-level `*.hf.space` URL). After the first such failure the page also offers to try again in the
//! frame; that retry's `state` is marked, so after a second failure the page navigates
//! at the top level itself where the browser allows a frame to (Chromium does not
//! without a click, so there the page's one remaining link does it).

use http::{HeaderMap, Response};

use super::pending;
use crate::respond::{self, AuthError, AuthErrorKind};
use crate::runtime::Runtime;
use crate::session::cookie;

/// The query parameter of `/login` that marks a retry after a failure in a frame.
const RETRY_PARAM: &str = "frame_retry";
/// The first character of a state: a first attempt, or a retry from the frame.
const FIRST: char = 'f';
const RETRY: char = 'r';

/// Whether a `/login` query is a retry after a sign-in failed in a frame.
pub(super) fn is_retry(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == RETRY_PARAM && v == "1")
}

/// Marks a new state (random base64url) as a first attempt or a retry, in iframe mode;
/// the other 42 characters (252 bits) stay random.
pub(super) fn mark_state(runtime: &Runtime, mut state: String, retry: bool) -> String {
    if runtime.config.iframe && !state.is_empty() {
        state.replace_range(..1, if retry { "r" } else { "f" });
    }
    state
}

/// The loop breaker's answer to a failed callback, when it applies: iframe mode, a
/// callback not known to be a top-level page (`Sec-Fetch-Dest: document`), and no
/// pending sign-in cookie for the callback's state.
pub(super) fn escape(
    runtime: &Runtime,
    query: &str,
    headers: &HeaderMap,
    res: &Response<respond::Body>,
) -> Option<Response<respond::Body>> {
    let config = &runtime.config;
    let failed = res
        .extensions()
        .get::<AuthError>()
        .is_some_and(|e| e.kind() == AuthErrorKind::InvalidState);
    // A browser that says the callback is a top-level page is not in a frame.
    let top_level = headers
        .get("sec-fetch-dest")
        .is_some_and(|v| v.as_bytes() == b"document");
    if !config.iframe || !failed || top_level {
        return None;
    }
    let state = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())?;
    let ours =
        state.len() == pending::STATE_LEN && state.starts_with([FIRST, RETRY]) && state.is_ascii();
    if !ours || cookie::get(headers, &pending::name(runtime, &state)).is_some() {
        return None;
    }
    let second = state.starts_with(RETRY);
    let top = format!("{}{}?return_to=%2F", config.public_url, config.login_path);
    let retry = format!("{}?return_to=%2F&{RETRY_PARAM}=1", config.login_path);
    let err = AuthError::new(
        AuthErrorKind::InvalidState,
        "Your browser dropped this app's sign-in cookie inside the frame.",
    );
    let again = (!second).then_some(retry.as_str());
    Some(respond::top_level_escape(err, &top, again))
}
