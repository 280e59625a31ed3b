//! Single flight with a short memory: the machinery shared by the bearer-token cache
//! ([`crate::bearer`]) and session refresh ([`crate::session`]).
//!
//! Callers name the work by a [`Key`], the SHA-256 digest of a secret (a bearer token,
//! a refresh token), never the secret itself. Concurrent callers with the same key
//! share one run of the work; its outcome may be remembered until a given time, in a
//! cache of bounded capacity. [`UsedOnce`] is the same bounded memory as a set of
//! keys that may be used once.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_lc_rs::digest;
use tokio::sync::OnceCell;

/// A secret's SHA-256 digest: what the cache and the in-flight map are keyed by.
pub(crate) type Key = [u8; 32];

/// The key of `secret`.
pub(crate) fn key_of(secret: &str) -> Key {
    let digest = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// A lock that survives a panic elsewhere: the data behind it is always consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One run of the work per key at a time, and a bounded memory of outcomes.
pub(crate) struct SingleFlight<V> {
    cache: Mutex<Cache<V>>,
    /// One cell per key being worked on; every caller with that key waits on it.
    in_flight: Mutex<HashMap<Key, Arc<OnceCell<V>>>>,
    /// How many live outcomes the cache has let go to make room (see
    /// [`evictions`](Self::evictions)), as of its last insert.
    evictions: AtomicU64,
}

impl<V: Clone> SingleFlight<V> {
    /// Remembers at most `capacity` outcomes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            cache: Mutex::new(Cache::new(capacity)),
            in_flight: Mutex::new(HashMap::new()),
            evictions: AtomicU64::new(0),
        }
    }

    /// The remembered outcome for `key`, if it has not expired (`now` in Unix seconds).
    pub(crate) fn cached(&self, key: &Key, now: u64) -> Option<V> {
        lock(&self.cache).get(key, now)
    }

    /// The remembered outcome for `key`, else the outcome of `work`, run once for all
    /// concurrent callers with this key. `work` returns the outcome and until when (Unix
    /// seconds) to remember it; `None`: not at all, the next caller runs it again. If
    /// the running caller's future is dropped midway, a waiting caller runs its own
    /// `work` instead (every caller with one key does the same work).
    pub(crate) async fn run<W, F>(&self, key: Key, now: impl Fn() -> u64, work: W) -> V
    where
        W: FnOnce() -> F,
        F: Future<Output = (V, Option<u64>)>,
    {
        let cell = {
            let mut in_flight = lock(&self.in_flight);
            // Checked under the in-flight lock: a run that just finished remembered its
            // outcome before leaving the in-flight map, so it is seen here or there.
            if let Some(outcome) = lock(&self.cache).get(&key, now()) {
                return outcome;
            }
            in_flight.entry(key).or_default().clone()
        };
        let waiter = InFlight {
            map: &self.in_flight,
            key,
            cell,
        };
        waiter
            .cell
            .get_or_init(|| async {
                let (outcome, until) = work().await;
                if let Some(until) = until {
                    let mut cache = lock(&self.cache);
                    cache.insert(key, outcome.clone(), until, now());
                    self.evictions.store(cache.evictions, Ordering::Release);
                }
                outcome
            })
            .await
            .clone()
    }

    /// How many outcomes the cache has forgotten before their time to make room. An
    /// outcome found while this was `n` is still remembered (or has expired) as long as
    /// this is still `n`: what an index of outcomes kept beside the cache checks, read
    /// before the outcome is looked up or worked out.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Acquire)
    }

    /// How many outcomes are remembered (expired ones included until swept).
    pub(crate) fn cached_len(&self) -> usize {
        lock(&self.cache).entries.len()
    }

    /// How many keys are being worked on.
    pub(crate) fn in_flight_len(&self) -> usize {
        lock(&self.in_flight).len()
    }
}

/// Keys that may be used once, each remembered until its expiry, in a bounded memory:
/// when full, expired keys leave first, then the oldest, never all at once. The
/// callback's replay check keeps used `state`s here.
pub(crate) struct UsedOnce(Mutex<Cache<()>>);

impl UsedOnce {
    /// Remembers at most `capacity` keys.
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Mutex::new(Cache::new(capacity)))
    }

    /// Marks `key` used until `expires_at` (Unix seconds); `false` if it already was.
    pub(crate) fn claim(&self, key: Key, expires_at: u64, now: u64) -> bool {
        let mut used = lock(&self.0);
        if used.get(&key, now).is_some() {
            return false;
        }
        used.insert(key, (), expires_at, now);
        true
    }
}

impl std::fmt::Debug for UsedOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsedOnce")
            .field("len", &lock(&self.0).entries.len())
            .finish()
    }
}

/// One caller's interest in an in-flight run. Dropping it (run finished, failed, or the
/// caller's future was dropped) removes the entry once the outcome is in or nobody else
/// waits, so a cancelled run never wedges later callers.
struct InFlight<'a, V> {
    map: &'a Mutex<HashMap<Key, Arc<OnceCell<V>>>>,
    key: Key,
    cell: Arc<OnceCell<V>>,
}

impl<V> Drop for InFlight<'_, V> {
    fn drop(&mut self) {
        let mut map = lock(self.map);
        let Some(current) = map.get(&self.key) else {
            return;
        };
        // Clones are only made under this lock, so the count is exact here: 2 is the
        // map's and this waiter's.
        if Arc::ptr_eq(current, &self.cell)
            && (self.cell.initialized() || Arc::strong_count(&self.cell) == 2)
        {
            map.remove(&self.key);
        }
    }
}

/// A bounded map of answers with their expiry (Unix seconds).
///
/// `order` lists keys oldest first, tagged with the insertion they belong to; tags of
/// replaced or removed entries are stale and skipped. Expired entries are swept when
/// the cache is full, at most once per `capacity / 2` insertions, so inserting stays
/// O(1) amortized.
struct Cache<V> {
    capacity: usize,
    entries: HashMap<Key, Entry<V>>,
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
    inserts_since_sweep: usize,
    /// Live entries removed to make room.
    evictions: u64,
}

struct Entry<V> {
    answer: V,
    expires_at: u64,
    seq: u64,
}

impl<V: Clone> Cache<V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            inserts_since_sweep: capacity,
            evictions: 0,
        }
    }

    /// The answer for `key` if it has not expired.
    fn get(&mut self, key: &Key, now: u64) -> Option<V> {
        let entry = self.entries.get(key)?;
        if now < entry.expires_at {
            return Some(entry.answer.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: Key, answer: V, expires_at: u64, now: u64) {
        if self.capacity == 0 || expires_at <= now {
            return;
        }
        self.inserts_since_sweep = self.inserts_since_sweep.saturating_add(1);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            key,
            Entry {
                answer,
                expires_at,
                seq,
            },
        );
        self.order.push_back((key, seq));
        if self.order.len() > 2 * self.capacity.max(16) {
            self.drop_stale_order();
        }
    }

    /// Frees at least one slot: expired entries first, then the oldest.
    fn make_room(&mut self, now: u64) {
        if self.inserts_since_sweep >= self.capacity / 2 {
            self.inserts_since_sweep = 0;
            self.entries.retain(|_, entry| now < entry.expires_at);
            self.drop_stale_order();
        }
        while self.entries.len() >= self.capacity {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|entry| entry.seq == seq) {
                self.entries.remove(&key);
                self.evictions += 1;
            }
        }
    }

    fn drop_stale_order(&mut self) {
        let entries = &self.entries;
        self.order
            .retain(|(key, seq)| entries.get(key).is_some_and(|entry| entry.seq == *seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        key_of(&format!("hf_token_{n}"))
    }

    #[test]
    fn used_keys_are_single_use_and_a_full_memory_forgets_only_the_oldest() {
        let used = UsedOnce::new(3);
        assert!(used.claim(key(0), 100, 0));
        assert!(!used.claim(key(0), 100, 0), "a used key is refused");
        assert!(used.claim(key(1), 100, 0));
        assert!(used.claim(key(2), 100, 0));
        // Full of live keys: the next claim evicts the oldest, and only it.
        assert!(used.claim(key(3), 100, 0));
        assert!(
            !used.claim(key(1), 100, 0),
            "younger keys are still remembered"
        );
        assert!(!used.claim(key(2), 100, 0));
        assert!(!used.claim(key(3), 100, 0));
        assert!(used.claim(key(0), 100, 0), "the oldest was forgotten");
        // An expired key may be used again.
        assert!(used.claim(key(9), 10, 0));
        assert!(used.claim(key(9), 100, 10));
    }

    #[test]
    fn capacity_bound_holds_and_oldest_go_first() {
        let mut cache = Cache::new(3);
        for n in 0..10 {
            cache.insert(key(n), (), 100, 0);
            assert!(cache.entries.len() <= 3);
            assert!(cache.order.len() <= 2 * 16 + 1);
        }
        assert!(cache.get(&key(9), 0).is_some());
        assert!(cache.get(&key(7), 0).is_some());
        assert!(cache.get(&key(6), 0).is_none());
    }

    #[test]
    fn expired_entries_are_evicted_before_live_ones() {
        let mut cache = Cache::new(3);
        cache.insert(key(0), (), 100, 0);
        cache.insert(key(1), (), 10, 0);
        cache.insert(key(2), (), 100, 0);
        cache.insert(key(3), (), 100, 20);
        assert!(
            cache.get(&key(0), 20).is_some(),
            "the oldest live entry stays"
        );
        assert!(cache.get(&key(1), 20).is_none());
        assert_eq!(cache.entries.len(), 3);
    }

    #[test]
    fn entries_expire_and_replacements_keep_one_slot() {
        let mut cache = Cache::new(2);
        for _ in 0..100 {
            cache.insert(key(0), (), 10, 0);
        }
        assert_eq!(cache.entries.len(), 1);
        assert!(
            cache.order.len() <= 2 * 16 + 1,
            "stale order tags are dropped"
        );
        assert!(cache.get(&key(0), 9).is_some());
        assert!(cache.get(&key(0), 10).is_none());
        assert!(
            cache.entries.is_empty(),
            "an expired entry is removed when seen"
        );
        cache.insert(key(1), (), 5, 5);
        assert!(
            cache.entries.is_empty(),
            "already expired answers are not kept"
        );
        let mut none = Cache::new(0);
        none.insert(key(1), (), 50, 0);
        assert!(none.entries.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run_and_the_outcome_is_remembered() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let flights = Arc::new(SingleFlight::<usize>::new(8));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flights, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run(
                        key(1),
                        || 0,
                        || async {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            (runs.fetch_add(1, Ordering::SeqCst) + 1, Some(100))
                        },
                    )
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.cached(&key(1), 99), Some(1));
        assert_eq!(flights.cached(&key(1), 100), None, "remembered until 100");
        assert_eq!(flights.in_flight_len(), 0);
    }
}
