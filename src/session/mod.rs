//! Sessions: the record a signed-in browser carries, sealed into an encrypted cookie.
//!
//! The session cookie holds the user's profile, the scopes they granted, the access
//! token and its expiry, encrypted and authenticated with AES-256-GCM under a key
//! derived from `HF_AUTH_SECRET` (see [`HfAuthConfigBuilder::with_secret`]). The
//! record is binary, its profile compressed apart from the tokens
//! (`src/session/record.rs`), so a user in 2 organizations carries a cookie of about
//! 600 bytes and one in 41 about 2 KB; values over the browsers' 4 KB cookie
//! limit (users in a hundred organizations or more) are split over `name`, `name.1`, …
//! A cookie that is tampered with, truncated, sealed under an unknown key or past its
//! expiry (without a refresh token) yields no user and is cleared.
//!
//! With a server-side [`store`] (Redis, feature `redis`), the cookie holds a sealed
//! ticket instead, and the same record lives in the store; everything below (the cache,
//! refresh, profile re-reads) works the same way, shared by every replica.
//!
//! # The opened-session cache
//! Opening a cookie (base64, AES-GCM, decompressing and decoding the record) costs a
//! few microseconds for a typical user and about ten for one in 40 organizations, so the layer
//! remembers the user of each cookie it opened, keyed by the cookie's exact bytes: the
//! next request with the same cookie costs a hash lookup and a byte comparison. Expiry
//! and refresh timing are checked on every request, hit or not; a cookie that does not
//! open is never remembered. The cache is bounded in bytes
//! ([`with_session_cache_bytes`](crate::HfAuthConfigBuilder::with_session_cache_bytes),
//! default 16 MiB: about 3,900 sessions when one in ten is a user in 41 organizations;
//! 0 turns it off); when full, sessions not used recently leave first.
//!
//! ```
//! let builder = tower_hf_auth::HfAuthConfig::builder().with_session_cache_bytes(64 << 20);
//! # let _ = builder;
//! ```
//!
//! # Refresh
//! When the provider issued a refresh token, the session also holds it, and a session
//! whose access token expires within the refresh window
//! ([`with_refresh_before`](crate::HfAuthConfigBuilder::with_refresh_before), default
//! 5 minutes) or has already expired is refreshed on its next request
//! (`grant_type=refresh_token`). The new session takes the new access token and
//! expiry, the new refresh token (or the old one if none is sent), the granted `scope`
//! (or the old scopes) and the profile read again with the new token (the old one if
//! userinfo cannot answer now), and its cookie replaces the old one on the response. A
//! profile older than
//! [`with_profile_max_age`](crate::HfAuthConfigBuilder::with_profile_max_age) (1 hour)
//! is read again the same way, without new tokens.
//!
//! ```
//! use std::time::Duration;
//!
//! let builder = tower_hf_auth::HfAuthConfig::builder()
//!     .with_refresh_before(Duration::from_secs(10 * 60));
//! # let _ = builder;
//! ```
//!
//! - **Once per session.** Hugging Face may rotate refresh tokens (each works once), so
//!   concurrent requests with the same cookie share one call to the provider, and the
//!   outcome is remembered for about two minutes under the SHA-256 digest of the old
//!   refresh token (never the token; at most 10,000 entries): requests that still carry
//!   the old cookie right after get the same refreshed session and cookie.
//! - **Provider unavailable** (unreachable, timeout, 5xx, 429, an unusable answer): the
//!   old session is served unchanged while its access token is valid; once it has
//!   expired there is no user, but the cookie is kept. Nothing is remembered: the next
//!   request tries again.
//! - **Refresh token refused** (`invalid_grant`: revoked, expired or already rotated,
//!   e.g. by another instance): remembered, and the old session is served until its
//!   access token expires; then there is no user and the cookie is cleared.
//! - A session far from expiry, or without a refresh token, is read synchronously as
//!   before; a refresh is the only time a session request waits for the provider, at
//!   most one second while the access token is still valid (the refresh goes on in its
//!   own task and a later request picks up its cookie).
//! - **The cookie outlives the access token.** A session with a refresh token is kept
//!   by the browser for a week past its access token's expiry (a session without one,
//!   exactly until it), so a user who comes back after the token expired is refreshed
//!   rather than signed out. If the provider no longer accepts the refresh token, the
//!   cookie is cleared.
//!
//! Refreshes are logged at `debug`, failures at `warn`, with the username and never a
//! token.
//!
//! [`HfAuthConfigBuilder::with_secret`]: crate::HfAuthConfigBuilder::with_secret

pub(crate) mod cache;
pub(crate) mod codec;
pub(crate) mod cookie;
pub(crate) mod pack;
pub(crate) mod record;
pub(crate) mod refresh;
pub mod store;

use http::{HeaderMap, HeaderValue};

use crate::user::{HfUser, SessionRecord};
use cache::OpenedSessions;
use codec::KeyRing;
use cookie::CookieAttrs;

/// What a request's session cookie turned out to be.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No session cookie.
    Absent,
    /// A valid session: unexpired, with a fresh enough profile, and not due for a token
    /// refresh (far from expiry, or without a refresh token).
    Valid(HfUser),
    /// A session to renew first: its tokens (it has a refresh token, and its access
    /// token expires within the refresh window, `expired: false`, or already has,
    /// `expired: true`), or only its profile (older than the profile's maximum age).
    /// `present` is how many cookie chunks carry it.
    Stale {
        user: HfUser,
        present: usize,
        expired: bool,
        renew: Renew,
    },
    /// A cookie that does not open, does not parse or has expired without a refresh
    /// token: clear it.
    Invalid { present: usize },
    /// A ticket to a server-side session not in the cache: read it from the store,
    /// then [`SessionCookies::fetched`]. `value` is the cookie's value.
    #[cfg(feature = "redis")]
    Fetch {
        value: String,
        ticket: cache::Ticket,
    },
}

/// What a stale session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renew {
    /// New tokens (refresh grant), then a new profile.
    Tokens,
    /// A new profile (userinfo) with the access token it has.
    Profile,
}

/// How long the parts of a session stay good.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionTiming {
    /// A profile older than this many seconds is read again from the provider.
    pub(crate) profile_max_age: u64,
    /// How long past its access token's expiry the browser keeps a session that holds a
    /// refresh token (seconds).
    pub(crate) refresh_grace: u64,
}

impl Default for SessionTiming {
    fn default() -> Self {
        Self {
            profile_max_age: DEFAULT_PROFILE_MAX_AGE,
            refresh_grace: REFRESH_GRACE,
        }
    }
}

/// Reads and writes the session cookie.
#[derive(Debug)]
pub(crate) struct SessionCookies {
    pub(crate) name: String,
    pub(crate) attrs: CookieAttrs,
    pub(crate) keys: KeyRing,
    pub(crate) timing: SessionTiming,
    /// Whether the cookie holds a ticket to a session in a server-side store.
    pub(crate) server: bool,
}

/// Default of how long past its access token's expiry the browser keeps a session that
/// holds a refresh token (seconds): a week.
pub(crate) const REFRESH_GRACE: u64 = 7 * 24 * 60 * 60;

/// Default of how old a session's profile may get before it is read again: an hour.
pub(crate) const DEFAULT_PROFILE_MAX_AGE: u64 = 60 * 60;

/// What an opened session is at `now`: valid; due for new tokens (it has a refresh
/// token, and its access token expires within `refresh_before` seconds or has
/// expired) or for a new profile (older than `profile_max_age`); or over.
fn classify(
    user: HfUser,
    present: usize,
    now: u64,
    refresh_before: u64,
    profile_max_age: u64,
) -> Loaded {
    let record = user.record();
    let expired = record.expires_at <= now;
    let refreshable = record.refresh_token.is_some();
    if expired && !refreshable {
        return Loaded::Invalid { present };
    }
    let renew = if refreshable && record.expires_at <= now.saturating_add(refresh_before) {
        Some(Renew::Tokens)
    } else if now >= record.profile_at.saturating_add(profile_max_age) {
        Some(Renew::Profile)
    } else {
        None
    };
    match renew {
        None => Loaded::Valid(user),
        Some(renew) => Loaded::Stale {
            user,
            present,
            expired,
            renew,
        },
    }
}

/// How many seconds from `now` a session is kept: until its access token expires, and
/// `grace` seconds more when it can be refreshed, so a user who comes back after the
/// token expired is refreshed, not signed out.
pub(crate) fn lifetime(record: &SessionRecord, now: u64, grace: u64) -> u64 {
    let grace = if record.refresh_token.is_some() {
        grace
    } else {
        0
    };
    record.expires_at.saturating_sub(now).saturating_add(grace)
}

/// The session is larger than [`cookie::MAX_CHUNKS`] cookies can hold.
#[derive(Debug)]
pub(crate) struct TooLarge;

impl SessionCookies {
    /// Reads the session from the request's cookies; `now` in Unix seconds. A session
    /// with a refresh token is [`Loaded::Stale`] from `refresh_before` seconds before
    /// its access token expires; any session whose profile is older than the profile's
    /// maximum age is too. A cookie found in `opened` is not opened again, and
    /// one that opens as a session is remembered there; expiry and refresh timing are
    /// checked either way.
    pub(crate) fn load(
        &self,
        headers: &HeaderMap,
        now: impl FnOnce() -> u64,
        refresh_before: u64,
        opened: &OpenedSessions,
    ) -> Loaded {
        let mut values = headers.get_all(http::header::COOKIE).into_iter().peekable();
        // No `Cookie` header at all (an API client): not even the reading to set up.
        if values.peek().is_none() {
            return Loaded::Absent;
        }
        let raw = cookie::raw_chunks(values, &self.name);
        if raw.none() {
            // No session cookie: nothing to read, nor the clock.
            return Loaded::Absent;
        }
        let now = now();
        let cached =
            |parts: &[_], present| self.cached(opened, parts, present, now, refresh_before);
        // A hit needs no UTF-8 check of the value: the cache holds ASCII keys only,
        // and an exact reading with ASCII parts is the text reading (see `raw_chunks`).
        if let Some(loaded) = raw
            .parts()
            .filter(|_| raw.exact())
            .and_then(|parts| cached(parts, raw.present()))
        {
            return loaded;
        }
        let chunks = match raw.text() {
            // Looked up above, in vain.
            Some(chunks) => chunks,
            // Only the text reading can tell; the cache may still know it.
            None => {
                let chunks = cookie::chunks(headers, &self.name);
                let present = chunks.present();
                let cached = |parts| self.cached(opened, parts, present, now, refresh_before);
                if let Some(loaded) = chunks.parts().and_then(cached) {
                    return loaded;
                }
                chunks
            }
        };
        let present = chunks.present();
        let Some(parts) = chunks.parts() else {
            return if present > 0 {
                Loaded::Invalid { present }
            } else {
                Loaded::Absent
            };
        };
        let ticket = opened.ticket();
        #[cfg(feature = "redis")]
        if self.server {
            // A ticket is one short cookie.
            return match parts {
                [value] => Loaded::Fetch {
                    value: (*value).to_owned(),
                    ticket,
                },
                _ => Loaded::Invalid { present },
            };
        }
        let Some(user) = self.open(&parts.concat()) else {
            return Loaded::Invalid { present };
        };
        self.opened(user, parts, present, now, refresh_before, opened, ticket)
    }

    /// What the session cached under `parts` is at `now`, if there is one; forgotten
    /// when it is no longer valid.
    fn cached<P: AsRef<[u8]>>(
        &self,
        opened: &OpenedSessions,
        parts: &[P],
        present: usize,
        now: u64,
        refresh_before: u64,
    ) -> Option<Loaded> {
        let user = opened.get(parts)?;
        let max_age = self.timing.profile_max_age;
        let loaded = classify(user, present, now, refresh_before, max_age);
        if matches!(loaded, Loaded::Invalid { .. }) {
            opened.remove(parts);
        }
        Some(loaded)
    }

    /// What a server-side session read for the cookie `value` is at `now`
    /// (`Loaded::Invalid` when the store holds none); remembered in `opened` when it is
    /// a session.
    #[cfg(feature = "redis")]
    pub(crate) fn fetched(
        &self,
        record: Option<SessionRecord>,
        value: &str,
        now: u64,
        refresh_before: u64,
        opened: &OpenedSessions,
        ticket: cache::Ticket,
    ) -> Loaded {
        match record {
            Some(record) => {
                let user = HfUser::from_record(record);
                self.opened(user, &[value], 1, now, refresh_before, opened, ticket)
            }
            None => Loaded::Invalid { present: 1 },
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn opened(
        &self,
        user: HfUser,
        parts: &[&str],
        present: usize,
        now: u64,
        refresh_before: u64,
        opened: &OpenedSessions,
        ticket: cache::Ticket,
    ) -> Loaded {
        let max_age = self.timing.profile_max_age;
        let loaded = classify(user, present, now, refresh_before, max_age);
        if let Loaded::Valid(user) | Loaded::Stale { user, .. } = &loaded {
            opened.insert(parts, user.clone(), ticket);
        }
        loaded
    }

    /// The user of a sealed session value, when it opens and decodes.
    fn open(&self, value: &str) -> Option<HfUser> {
        let plain = self.keys.open(&self.name, value)?;
        record::decode(&plain).map(HfUser::from_record)
    }

    /// `Set-Cookie` headers storing `record`, replacing `present` old chunks.
    pub(crate) fn save(
        &self,
        record: &SessionRecord,
        present: usize,
        now: u64,
    ) -> Result<Vec<HeaderValue>, TooLarge> {
        let sealed = match &record.stored {
            // A server-side session: its ticket, again (with a new lifetime).
            Some(stored) => stored.cookie.expose().to_owned(),
            None => self
                .keys
                .seal(&self.name, &record::encode(record).ok_or(TooLarge)?),
        };
        let max_age = lifetime(record, now, self.timing.refresh_grace);
        cookie::write_chunked(
            &self.name,
            &sealed,
            present,
            "/",
            Some(max_age),
            &self.attrs,
        )
        .ok_or(TooLarge)
    }

    /// `Set-Cookie` headers deleting `present` chunks of the session cookie.
    pub(crate) fn clear(&self, present: usize) -> Vec<HeaderValue> {
        cookie::remove_chunked(&self.name, present, "/", &self.attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::user::{Profile, Scopes};
    use http::header;

    /// Session cookies with their opened-session cache: every load after the first of
    /// a cookie is a cache hit.
    struct Store {
        cookies: SessionCookies,
        opened: OpenedSessions,
    }

    impl std::ops::Deref for Store {
        type Target = SessionCookies;

        fn deref(&self) -> &SessionCookies {
            &self.cookies
        }
    }

    impl Store {
        fn load(&self, headers: &HeaderMap, now: u64, refresh_before: u64) -> Loaded {
            self.cookies
                .load(headers, || now, refresh_before, &self.opened)
        }
    }

    fn store() -> Store {
        Store {
            cookies: SessionCookies {
                name: "hf_session".into(),
                attrs: CookieAttrs {
                    secure: false,
                    same_site: cookie::SameSite::Lax,
                },
                keys: KeyRing::from_secrets(&Secret::new("x".repeat(40)), []),
                timing: SessionTiming::default(),
                server: false,
            },
            opened: OpenedSessions::new(1 << 20),
        }
    }

    /// `n` hex digits that look random (ids and avatar names on the Hub do).
    fn hex(seed: usize, n: usize) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &seed.to_be_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        hex[..n].to_owned()
    }

    /// A session like a Hub user's in `orgs` organizations.
    fn record(expires_at: u64, orgs: usize) -> SessionRecord {
        let orgs: Vec<String> = (0..orgs)
            .map(|i| {
                format!(
                    r#"{{"sub":"{}","preferred_username":"org-{i}","name":"Organization {i}","picture":"https://cdn-avatars.huggingface.co/v1/production/uploads/{}-{}.png","roleInOrg":"read","canPay":false}}"#,
                    hex(i, 24),
                    1_600_000_000_000_u64 + i as u64 * 7_919_000,
                    hex(i + 1_000, 24),
                )
            })
            .collect();
        let json = format!(
            r#"{{"sub":"abc","preferred_username":"carol","orgs":[{}]}}"#,
            orgs.join(",")
        );
        SessionRecord {
            profile: serde_json::from_str::<Profile>(&json).unwrap(),
            scopes: Scopes::parse("openid profile"),
            access_token: Secret::new("hf_oauth_token"),
            expires_at,
            refresh_token: None,
            asked: Scopes::default(),
            profile_at: u64::MAX / 2,
            stored: None,
        }
    }

    fn request_with(set_cookies: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap())
            .collect();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, pairs.join("; ").parse().unwrap());
        h
    }

    #[test]
    fn large_sessions_are_chunked_and_read_back() {
        let s = store();
        let set = s.save(&record(2_000, 150), 0, 1_000).unwrap();
        assert!(set.len() > 1, "150 orgs need several cookies");
        assert!(set.iter().all(|v| v.len() < 4096));
        match s.load(&request_with(&set), 1_000, 300) {
            Loaded::Valid(user) => assert_eq!(user.orgs().len(), 150),
            other => panic!("expected a session, got {other:?}"),
        }
    }

    #[test]
    fn forty_orgs_fit_in_a_common_proxy_header_limit() {
        let s = store();
        let set = s.save(&record(2_000, 40), 0, 1_000).unwrap();
        let cookie = request_with(&set);
        let header_line = cookie[header::COOKIE].len() + "Cookie: ".len();
        assert!(header_line < 8 * 1024, "{header_line} bytes");
        let uncompressed = serde_json::to_vec(&record(2_000, 40).profile)
            .unwrap()
            .len();
        eprintln!("40 orgs: profile JSON {uncompressed} bytes, Cookie header {header_line} bytes");
    }

    #[test]
    fn expired_sessions_yield_no_user() {
        let s = store();
        let set = s.save(&record(2_000, 0), 0, 1_000).unwrap();
        assert!(matches!(
            s.load(&request_with(&set), 2_000, 300),
            Loaded::Invalid { present: 1 }
        ));
    }

    #[test]
    fn sessions_with_a_refresh_token_are_stale_near_and_after_expiry() {
        let s = store();
        let mut with_refresh = record(2_000, 0);
        with_refresh.refresh_token = Some(Secret::new("hf_oauth_refresh_x"));
        let set = s.save(&with_refresh, 0, 1_000).unwrap();
        let headers = request_with(&set);
        assert!(matches!(s.load(&headers, 1_000, 300), Loaded::Valid(_)));
        assert!(matches!(
            s.load(&headers, 1_700, 300),
            Loaded::Stale {
                present: 1,
                expired: false,
                ..
            }
        ));
        assert!(matches!(
            s.load(&headers, 2_000, 300),
            Loaded::Stale { expired: true, .. }
        ));
        // Without a refresh token, nothing changes: valid until expiry, then invalid.
        let set = s.save(&record(2_000, 0), 0, 1_000).unwrap();
        assert!(matches!(
            s.load(&request_with(&set), 1_999, 300),
            Loaded::Valid(_)
        ));
    }

    #[test]
    fn refreshable_sessions_outlive_their_access_token_in_the_browser() {
        let max_age = |set: &[HeaderValue]| -> u64 {
            let cookie = set[0].to_str().unwrap();
            let value = cookie.split("Max-Age=").nth(1).unwrap();
            value.split(';').next().unwrap().parse().unwrap()
        };
        let s = store();
        assert_eq!(
            max_age(&s.save(&record(2_000, 0), 0, 1_000).unwrap()),
            1_000
        );
        let mut with_refresh = record(2_000, 0);
        with_refresh.refresh_token = Some(Secret::new("hf_oauth_refresh_x"));
        let set = s.save(&with_refresh, 0, 1_000).unwrap();
        assert_eq!(max_age(&set), 1_000 + REFRESH_GRACE);
    }

    /// A store with another key that shares `s`'s cache: it loads a session only from
    /// the cache, so what it answers is what a hit answers.
    fn hits_only(s: &Store) -> impl Fn(&HeaderMap, u64) -> Loaded + '_ {
        let other = SessionCookies {
            name: s.name.clone(),
            attrs: s.attrs.clone(),
            keys: KeyRing::random(),
            timing: SessionTiming::default(),
            server: false,
        };
        move |headers, now| other.load(headers, || now, 300, &s.opened)
    }

    /// However the `Cookie` header has to be read (raw bytes; raw bytes turned into
    /// text; the text reading, when a cookie name is not ASCII or a chunk sits past a
    /// gap), a cached session is found, and an unknown one is not.
    #[test]
    fn every_reading_of_the_cookie_header_finds_the_cached_session() {
        let s = store();
        let hit = hits_only(&s);
        let pair = |set: &[HeaderValue]| {
            request_with(set)[header::COOKIE]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let session = pair(&s.save(&record(2_000, 2), 0, 1_000).unwrap());
        let unknown = pair(&store().save(&record(2_000, 2), 0, 1_000).unwrap());
        assert!(matches!(
            s.load(&request_with(&[session.parse().unwrap()]), 1_000, 300),
            Loaded::Valid(_)
        ));
        for (cookies, why) in [
            (session.clone(), "raw bytes"),
            (
                format!("a=1;  {session} ; b=\"2\""),
                "raw, trimmed among others",
            ),
            (
                format!("caf\u{e9}=1; {session}"),
                "a cookie name that is not ASCII",
            ),
            (format!("{session}; hf_session.3=x"), "a chunk past a gap"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, cookies.parse().unwrap());
            assert!(
                matches!(hit(&headers, 1_000), Loaded::Valid(u) if u.username() == "carol"),
                "{why}"
            );
            let other = cookies.replace(&session, &unknown);
            headers.insert(header::COOKIE, other.parse().unwrap());
            assert!(
                matches!(hit(&headers, 1_000), Loaded::Invalid { .. }),
                "{why}"
            );
        }
    }

    #[test]
    fn expiry_and_refresh_timing_are_checked_on_cache_hits() {
        let s = store();
        let hit = hits_only(&s);
        let mut with_refresh = record(2_000, 2);
        with_refresh.refresh_token = Some(Secret::new("hf_oauth_refresh_x"));
        let refreshable = request_with(&s.save(&with_refresh, 0, 1_000).unwrap());
        let plain = request_with(&s.save(&record(2_000, 2), 0, 1_000).unwrap());
        assert!(
            matches!(hit(&plain, 1_000), Loaded::Invalid { .. }),
            "not opened yet"
        );
        assert!(matches!(s.load(&refreshable, 1_000, 300), Loaded::Valid(_)));
        assert!(matches!(s.load(&plain, 1_000, 300), Loaded::Valid(_)));
        assert_eq!(s.opened.len(), 2, "both sessions are remembered");

        assert!(matches!(hit(&refreshable, 1_000), Loaded::Valid(u) if u.username() == "carol"));
        assert!(matches!(
            hit(&refreshable, 1_700),
            Loaded::Stale { expired: false, .. }
        ));
        assert!(matches!(
            hit(&refreshable, 2_000),
            Loaded::Stale { expired: true, .. }
        ));
        assert!(matches!(hit(&plain, 1_999), Loaded::Valid(_)));
        assert!(matches!(hit(&plain, 2_000), Loaded::Invalid { present: 1 }));
        assert_eq!(s.opened.len(), 1, "the expired session is forgotten");
        assert!(matches!(s.load(&plain, 2_000, 300), Loaded::Invalid { .. }));
    }

    #[test]
    fn revoked_users_and_a_cleared_cache_open_afresh() {
        let s = store();
        let hit = hits_only(&s);
        let headers = request_with(&s.save(&record(2_000, 2), 0, 1_000).unwrap());
        assert!(matches!(s.load(&headers, 1_000, 300), Loaded::Valid(_)));
        s.opened.forget_user("abc");
        assert!(matches!(hit(&headers, 1_000), Loaded::Invalid { .. }));
        assert!(matches!(s.load(&headers, 1_000, 300), Loaded::Valid(_)));
        s.opened.clear();
        assert!(matches!(hit(&headers, 1_000), Loaded::Invalid { .. }));
    }

    #[test]
    fn cookies_that_do_not_open_are_never_cached() {
        let s = store();
        let set = s.save(&record(2_000, 2), 0, 1_000).unwrap();
        let good = set[0]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut forged = good.clone().into_bytes();
        let middle = forged.len() / 2;
        forged[middle] = if forged[middle] == b'A' { b'B' } else { b'A' };
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_bytes(&forged).unwrap());
        for _ in 0..2 {
            assert!(matches!(
                s.load(&headers, 1_000, 300),
                Loaded::Invalid { present: 1 }
            ));
        }
        let expired = request_with(&set);
        assert!(matches!(
            s.load(&expired, 2_000, 300),
            Loaded::Invalid { .. }
        ));
        assert_eq!(
            s.opened.len(),
            0,
            "neither a forgery nor an expired session"
        );
    }

    /// Resident memory in bytes (Linux), from `/proc/self/statm`.
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// 100,000 distinct sessions (every tenth in 41 organizations, the rest in 2) open
    /// through one cache of 16 MiB. Ignored: it takes a while and reads the process's
    /// resident memory, which other tests running beside it would disturb. Run alone:
    /// `cargo test --all-features --lib -- --ignored --nocapture memory_stays`, and with
    /// `CACHE_BYTES=0` for the same loop without a cache (the constant).
    #[test]
    #[ignore = "slow; measures the whole process's memory"]
    fn memory_stays_within_the_cache_bound_for_100k_sessions() {
        let mut s = store();
        s.opened = OpenedSessions::new(
            std::env::var("CACHE_BYTES")
                .map_or(cache::DEFAULT_SESSION_CACHE_BYTES, |v| v.parse().unwrap()),
        );
        let small = record(2_000, 2);
        let large = record(2_000, 41);
        let before = resident();
        let mut peak = before;
        for i in 0..100_000_u32 {
            let mut r = if i.is_multiple_of(10) {
                large.clone()
            } else {
                small.clone()
            };
            r.profile.sub = format!("{i:024x}").into();
            let headers = request_with(&s.save(&r, 0, 1_000).unwrap());
            assert!(matches!(s.load(&headers, 1_000, 300), Loaded::Valid(_)));
            if i.is_multiple_of(1_000) {
                peak = peak.max(resident());
            }
        }
        peak = peak.max(resident());
        let (bound, held) = (s.opened.capacity(), s.opened.bytes());
        eprintln!(
            "100,000 sessions: cache holds {} entries, {held} of {bound} bytes; resident \
             memory grew by {} bytes at most ({:.2} MiB over the bound)",
            s.opened.len(),
            peak - before,
            (peak - before) as f64 / f64::from(1 << 20) - bound as f64 / f64::from(1 << 20),
        );
        assert!(held <= bound);
        assert!(
            peak - before <= bound + (16 << 20),
            "resident memory past the bound"
        );
    }

    #[test]
    fn a_missing_middle_chunk_invalidates() {
        let s = store();
        let mut set = s.save(&record(2_000, 150), 0, 1_000).unwrap();
        set.remove(1);
        assert!(matches!(
            s.load(&request_with(&set), 1_000, 300),
            Loaded::Invalid { .. }
        ));
    }
}
