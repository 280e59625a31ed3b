//! The bearer cache's fast path: accepted tokens found by a keyed hash of the token,
//! so that a request with a token seen recently costs a hash of the token, a lookup and
//! a byte comparison instead of its SHA-256 digest.
//!
//! - **A hit proves the exact token was accepted.** An entry is the user an accepted
//!   answer made for one token, and the user holds that token (its access token); an
//!   entry is only made when the two are the same bytes, and a hit compares the
//!   request's token with the user's byte for byte. The hash only finds the entry.
//! - **Nothing is trusted longer than the cache.** An entry carries its answer's
//!   expiry, checked against the clock on every hit, and the count of the cache's
//!   evictions read before its answer was looked up or worked out: once the cache has
//!   let any live answer go to make room, older entries answer nothing (the cache is
//!   asked again), so a token is never answered here after the cache forgot it.
//! - **Bounded.** At most as many entries as the cache holds answers; a full index
//!   drops the entries that can no longer answer, then everything.
//!
//! Rejections are not indexed: they hold no token to compare with, and are rare.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{PoisonError, RwLock};

use crate::HfUser;
use crate::session::cache::{Prehashed, SampleHasher};

/// Accepted answers by a keyed hash of their token.
pub(super) struct FastAnswers {
    entries: RwLock<HashMap<u64, Entry, BuildHasherDefault<Prehashed>>>,
    hasher: SampleHasher,
    capacity: usize,
}

struct Entry {
    user: HfUser,
    /// When the answer expires (Unix seconds).
    until: u64,
    /// The cache's eviction count before the answer was found.
    evictions: u64,
}

impl Entry {
    fn answers(&self, now: u64, evictions: u64) -> bool {
        now < self.until && self.evictions == evictions
    }
}

impl FastAnswers {
    /// An index of at most `capacity` answers (0: none).
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::default(),
            hasher: SampleHasher::new(),
            capacity,
        }
    }

    /// The user an accepted answer made for exactly `token`, if it is fresh at `now`
    /// and the cache has evicted nothing since it was found (`evictions` is the
    /// cache's count now).
    pub(super) fn get(&self, token: &[u8], now: u64, evictions: u64) -> Option<HfUser> {
        if self.capacity == 0 {
            return None;
        }
        let hash = self.hasher.hash(&[token]);
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&hash)?;
        let same = entry.user.access_token().expose().as_bytes() == token;
        (same && entry.answers(now, evictions)).then(|| entry.user.clone())
    }

    /// Indexes `user`, the accepted answer for `token` until `until`, found when the
    /// cache's eviction count was `evictions`. Nothing is indexed unless the user holds
    /// exactly `token`.
    pub(super) fn insert(&self, token: &str, user: &HfUser, until: u64, now: u64, evictions: u64) {
        if self.capacity == 0 || user.access_token().expose().as_bytes() != token.as_bytes() {
            return;
        }
        let hash = self.hasher.hash(&[token]);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&hash) {
            entries.retain(|_, e| e.answers(now, evictions));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        let entry = Entry {
            user: user.clone(),
            until,
            evictions,
        };
        entries.insert(hash, entry);
    }

    /// How many entries are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::user::{Profile, Scopes, SessionRecord};

    fn user(token: &str, expires_at: u64) -> HfUser {
        let profile: Profile =
            serde_json::from_str(r#"{"sub":"abc","preferred_username":"alice"}"#).unwrap();
        HfUser::from_record(SessionRecord::for_bearer(
            profile,
            Scopes::parse("openid profile"),
            Secret::new(token),
            expires_at,
        ))
    }

    #[test]
    fn only_the_exact_token_is_found_while_fresh_and_not_evicted() {
        let fast = FastAnswers::new(10);
        let token = "hf_oauth_token_one";
        fast.insert(token, &user(token, 100), 100, 0, 7);
        assert!(fast.get(token.as_bytes(), 99, 7).is_some());
        assert!(
            fast.get(b"hf_oauth_token_onf", 0, 7).is_none(),
            "another token"
        );
        assert!(fast.get(b"hf_oauth_token_on", 0, 7).is_none(), "a prefix");
        assert!(fast.get(token.as_bytes(), 100, 7).is_none(), "expired");
        assert!(
            fast.get(token.as_bytes(), 0, 8).is_none(),
            "the cache evicted since"
        );
    }

    #[test]
    fn a_user_holding_another_token_is_never_indexed() {
        let fast = FastAnswers::new(10);
        fast.insert("hf_asked", &user("hf_other", 100), 100, 0, 0);
        assert_eq!(fast.len(), 0);
        assert!(fast.get(b"hf_asked", 0, 0).is_none());
        assert!(fast.get(b"hf_other", 0, 0).is_none());
    }

    #[test]
    fn the_index_stays_within_its_capacity() {
        let fast = FastAnswers::new(3);
        let tokens: Vec<String> = (0..10).map(|i| format!("hf_token_{i}")).collect();
        for (i, token) in tokens.iter().enumerate() {
            fast.insert(token, &user(token, 100), 100, 0, 0);
            assert!(fast.len() <= 3, "after {i}");
        }
        assert!(
            fast.get(tokens[9].as_bytes(), 0, 0).is_some(),
            "the newest is found"
        );
        let off = FastAnswers::new(0);
        off.insert(&tokens[0], &user(&tokens[0], 100), 100, 0, 0);
        assert!(off.get(tokens[0].as_bytes(), 0, 0).is_none());
    }
}
