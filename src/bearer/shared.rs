//! Bearer answers shared by every replica through a server-side session store: a
//! replica asks Hugging Face about a token once for the whole fleet. Each answer is
//! sealed under a key derived from the token and named by the token's keyed hash, so
//! the store holds no token and no readable profile; it expires when this replica's
//! cache entry would.

use std::time::Duration;

use super::{Answer, BearerRejection, BearerValidator};
use crate::HfUser;
use crate::session::record;

/// The label of bearer answers in the store.
const SHARED: &str = "bearer";

impl BearerValidator {
    /// The answer another replica (or this one) stored for `token`, if any.
    pub(super) async fn shared(&self, token: &str) -> Option<(Answer, Option<u64>)> {
        let store = self.store.as_ref()?;
        let value = store.shared_get(SHARED, token).await.ok()??;
        let (&kind, rest) = value.split_first()?;
        let until = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        if until <= self.now() {
            return None;
        }
        let answer = match kind {
            0 => Err(BearerRejection::Invalid),
            _ => Ok(HfUser::from_record(record::decode(&rest[8..])?)),
        };
        Some((answer, Some(until)))
    }

    /// Stores an answer for every replica, until it may no longer be cached.
    pub(super) async fn share(&self, token: &str, answer: &Answer, until: Option<u64>) {
        let (Some(store), Some(until)) = (&self.store, until) else {
            return;
        };
        let mut value = Vec::new();
        match answer {
            Ok(user) => {
                let Some(plain) = record::encode(user.record()) else {
                    return;
                };
                value.push(1);
                value.extend_from_slice(&until.to_be_bytes());
                value.extend_from_slice(&plain);
            }
            Err(BearerRejection::Invalid) => {
                value.push(0);
                value.extend_from_slice(&until.to_be_bytes());
            }
            Err(BearerRejection::Unavailable { .. }) => return,
        }
        let ttl = Duration::from_secs(until.saturating_sub(self.now()).max(1));
        // Not shared when the store does not answer: this replica still caches it.
        let _ = store.shared_put(SHARED, token, &value, ttl).await;
    }
}
