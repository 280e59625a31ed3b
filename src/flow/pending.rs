//! The pending sign-in: what `/login` remembers until the callback, sealed into a
//! short-lived cookie named after its `state`, so several tabs can sign in at once.

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;
use crate::session::cookie;

/// How long a sign-in may take from `/login` to the callback, in seconds.
pub(super) const PENDING_TTL: u64 = 600;
/// Characters of the state used in the pending cookie's name.
const STATE_KEY_LEN: usize = 16;
/// Length of a state we made: 32 random bytes in unpadded base64url.
pub(super) const STATE_LEN: usize = 43;
/// Unreadable pending-login cookies deleted per `/login`.
const MAX_PRUNE_EXTRA: usize = 16;

/// What `/login` remembers until the callback.
#[derive(Serialize, Deserialize)]
pub(super) struct PendingLogin {
    pub(super) state: String,
    pub(super) nonce: String,
    pub(super) verifier: String,
    pub(super) return_to: String,
    /// The scopes asked for.
    pub(super) scope: String,
    /// Unix time in nanoseconds: fine enough to order the tabs of one browser.
    pub(super) created_ns: u64,
}

impl PendingLogin {
    /// When the sign-in started, Unix seconds.
    pub(super) fn created_at(&self) -> u64 {
        self.created_ns / 1_000_000_000
    }

    /// When the sign-in stops being accepted, Unix seconds.
    pub(super) fn expires_at(&self) -> u64 {
        self.created_at() + PENDING_TTL
    }

    /// The `Set-Cookie` header keeping this pending sign-in.
    pub(super) fn cookie(&self, runtime: &Runtime) -> HeaderValue {
        let name = name(runtime, &self.state);
        let plain = serde_json::to_vec(self).expect("a pending login serializes");
        let sealed = runtime.sessions.keys.seal(&name, &plain);
        cookie::set(
            &name,
            &sealed,
            &runtime.config.pending_path,
            Some(PENDING_TTL),
            &runtime.sessions.attrs,
        )
    }
}

/// The cookie name of the pending sign-in with `state` (a state we made: ASCII, at
/// least [`STATE_KEY_LEN`] long).
pub(super) fn name(runtime: &Runtime, state: &str) -> String {
    format!(
        "{}{}",
        runtime.config.pending_prefix,
        &state[..STATE_KEY_LEN]
    )
}

/// Opens the pending sign-in in cookie `name`.
pub(super) fn open(runtime: &Runtime, name: &str, value: &str) -> Option<PendingLogin> {
    let plain = runtime.sessions.keys.open(name, value)?;
    serde_json::from_slice(&plain).ok()
}

/// The `Set-Cookie` header deleting the pending cookie `name`.
pub(super) fn remove(runtime: &Runtime, name: &str) -> HeaderValue {
    cookie::remove(name, &runtime.config.pending_path, &runtime.sessions.attrs)
}

/// Deletes pending sign-ins past the cap (oldest first), expired ones and ones that do
/// not open, leaving room for one more.
pub(super) fn prune(runtime: &Runtime, headers: &HeaderMap, now: u64) -> Vec<HeaderValue> {
    let config = &runtime.config;
    let mut live: Vec<(u64, &str)> = Vec::new();
    let mut drop: Vec<&str> = Vec::new();
    for (name, value) in cookie::all(headers) {
        if !name.starts_with(&config.pending_prefix) {
            continue;
        }
        match open(runtime, name, value) {
            Some(p) if p.expires_at() > now => live.push((p.created_ns, name)),
            _ => drop.push(name),
        }
    }
    live.sort_unstable();
    // A flood of planted cookies must not become a flood of response headers: delete a
    // bounded number of unreadable ones now, the rest on later visits.
    drop.truncate(MAX_PRUNE_EXTRA);
    let excess = (live.len() + 1).saturating_sub(config.max_pending_logins);
    drop.extend(live.iter().take(excess).map(|(_, n)| *n));
    drop.into_iter().map(|n| remove(runtime, n)).collect()
}
