//! The opened-session cache: the user behind each session cookie the layer has already
//! opened, so that a signed-in request costs a hash lookup instead of base64, AES-GCM,
//! decompressing and decoding the record.
//!
//! - **Keyed by the exact bytes.** A lookup hashes the value (with a per-process random
//!   key) and then compares it byte for byte with the stored one, so a hit proves the
//!   request carries bytes this layer opened before. Only what opened as a session is
//!   inserted; a tampered, unknown or expired cookie is never cached, and no negative
//!   result is remembered (rejecting one is cheap already).
//! - **Nothing is trusted for longer than before.** The value is the opened [`HfUser`]
//!   (an `Arc`); the caller checks its expiry and refresh timing against the clock on
//!   every hit, exactly as after opening it.
//! - **Bounded in bytes, and so in entries.** Each entry costs its key, an estimate of
//!   the user's memory and a fixed overhead; the bound
//!   ([`with_session_cache_bytes`](crate::HfAuthConfigBuilder::with_session_cache_bytes),
//!   default 16 MiB, 0 turns the cache off) is split over the shards. When a shard is
//!   full, entries leave in insertion order, except that one read since the last pass
//!   gets a second chance (the CLOCK policy), so sessions in use stay.
//! - **No global lock and no allocation on a hit.** Entries are spread over shards by
//!   hash, each behind its own read-write lock; a hit takes one shard's read lock,
//!   compares bytes and clones an `Arc`.
//! - **Invalidation.** [`clear`](OpenedSessions::clear) forgets everything (a key-ring
//!   change), [`forget`](OpenedSessions::forget) the sessions a revocation names
//!   (sign out everywhere). An insert that raced with either is dropped: it holds the
//!   [`Ticket`] taken before its session was read.
//!
//! The key is a list of parts (a chunked cookie's chunks) that stand for their
//! concatenation, so a server-side store can key the same cache by its session id.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::user::HfUser;

/// The default memory bound: 16 MiB.
pub(crate) const DEFAULT_SESSION_CACHE_BYTES: usize = 16 << 20;
/// Most shards; fewer when the bound is small, so that each can hold large sessions.
const MAX_SHARDS: usize = 16;
/// Least bytes per shard.
const MIN_SHARD_BYTES: usize = 256 << 10;
/// What an entry costs beyond its key and user: the map's slot (56 bytes, up to twice
/// over for the map's load factor and growth), the queue's tags (16 bytes, up to four
/// times over for stale tags and growth) and the key's allocation header.
const ENTRY_OVERHEAD: usize = 256;
/// Bytes of each part's head and tail that are hashed. A sealed cookie starts with its
/// key id and random nonce and ends with its authentication tag, so these differ
/// between any two sealed values; the full comparison decides in any case.
const SAMPLE: usize = 32;

/// The users of opened sessions, by the exact bytes of their key.
pub(crate) struct OpenedSessions {
    shards: Box<[RwLock<Shard>]>,
    /// Bytes each shard may hold; 0: the cache is off.
    shard_bytes: usize,
    hasher: SampleHasher,
    /// Bumped by every invalidation; inserts holding an older [`Ticket`] are dropped.
    epoch: AtomicU64,
    /// Set while the cache may be stale (see [`suspend`](Self::suspend)).
    suspended: AtomicBool,
}

/// Taken before a session is read; an insert with it is dropped if the cache was
/// invalidated in between (the session may have been revoked or its key retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

#[derive(Default)]
struct Shard {
    entries: HashMap<u64, Entry, BuildHasherDefault<Prehashed>>,
    /// Hashes in insertion order, each tagged with its entry's `seq` (stale tags of
    /// replaced or removed entries are skipped).
    queue: VecDeque<(u64, u64)>,
    bytes: usize,
    next_seq: u64,
}

struct Entry {
    key: Box<[u8]>,
    user: HfUser,
    cost: usize,
    seq: u64,
    /// Read since the eviction pass last saw it.
    visited: AtomicBool,
}

/// The hasher of maps whose keys are hashes already (this cache's shards, the bearer
/// cache's index of tokens).
#[derive(Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A keyed hash of a list of byte strings from each one's length and its first and last
/// [`SAMPLE`] bytes: what the session cache and the bearer cache's index find entries by,
/// before they compare every byte.
///
/// The four keys are random per process. Each 16 bytes cost one folded multiply (the
/// 128-bit product of two 64-bit words, its halves xored: the construction of foldhash
/// and wyhash), so a hash costs a few dozen instructions whatever the value's size,
/// where SipHash over the same samples took 200 to 400. It only spreads entries: what
/// is found is compared byte for byte, and only values that opened as sessions (or
/// tokens the provider accepted) are ever stored, so chosen collisions cost an
/// attacker a sign-in each and buy one extra comparison.
pub(crate) struct SampleHasher {
    keys: [u64; 4],
}

impl SampleHasher {
    pub(crate) fn new() -> Self {
        let random = RandomState::new();
        Self {
            keys: std::array::from_fn(|i| random.hash_one(i)),
        }
    }

    /// The hash of `parts`, in order.
    pub(crate) fn hash<P: AsRef<[u8]>>(&self, parts: &[P]) -> u64 {
        let mut state = self.keys[0];
        for part in parts {
            let bytes = part.as_ref();
            state = fold(state ^ bytes.len() as u64, self.keys[1]);
            if bytes.len() <= 2 * SAMPLE {
                state = self.absorb(state, bytes);
            } else {
                state = self.absorb(state, &bytes[..SAMPLE]);
                state = self.absorb(state, &bytes[bytes.len() - SAMPLE..]);
            }
        }
        fold(state, self.keys[1])
    }

    /// `state` with `bytes` mixed in, 16 at a time; a last partial block is the last 16
    /// bytes (overlapping the block before), or zero-padded when there are fewer. The
    /// part's length was mixed in before, so either is unambiguous.
    fn absorb(&self, mut state: u64, bytes: &[u8]) -> u64 {
        let (blocks, rest) = bytes.as_chunks::<16>();
        for block in blocks {
            state = self.mix(state, block);
        }
        if !rest.is_empty() {
            let mut last = [0u8; 16];
            match bytes.last_chunk::<16>() {
                Some(tail) => last = *tail,
                None => last[..rest.len()].copy_from_slice(rest),
            }
            state = self.mix(state, &last);
        }
        state
    }

    fn mix(&self, state: u64, block: &[u8; 16]) -> u64 {
        let (lo, hi) = block.split_at(8);
        let word = |half: &[u8]| u64::from_le_bytes(half.try_into().expect("8 bytes"));
        fold(word(lo) ^ self.keys[2] ^ state, word(hi) ^ self.keys[3])
    }
}

/// The 128-bit product of `a` and `b`, its two halves xored.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl OpenedSessions {
    /// A cache holding at most `bytes` bytes; 0 turns it off.
    pub(crate) fn new(bytes: usize) -> Self {
        let shards = (bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() {
            shards
        } else {
            shards.next_power_of_two() / 2
        };
        Self {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            shard_bytes: bytes / shards,
            hasher: SampleHasher::new(),
            epoch: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
        }
    }

    /// The user of the session stored under `parts`, if it was opened before. Takes one
    /// shard's read lock; allocates nothing.
    pub(crate) fn get<P: AsRef<[u8]>>(&self, parts: &[P]) -> Option<HfUser> {
        if self.shard_bytes == 0 || self.is_suspended() {
            return None;
        }
        let hash = self.hash(parts);
        let shard = read(&self.shards[self.shard_of(hash)]);
        let entry = shard.entries.get(&hash)?;
        if !same_bytes(&entry.key, parts) {
            return None;
        }
        // Written only when it changes, so hits on one entry do not contend.
        if !entry.visited.load(Ordering::Relaxed) {
            entry.visited.store(true, Ordering::Relaxed);
        }
        Some(entry.user.clone())
    }

    /// To take before reading a session that may be inserted.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.epoch.load(Ordering::Acquire))
    }

    /// Remembers that `parts` opened as `user`, in place of what was stored under them.
    /// When the cache was invalidated since `ticket` was taken, or the entry is larger
    /// than a shard, nothing is stored under `parts` at all.
    pub(crate) fn insert(&self, parts: &[&str], user: HfUser, ticket: Ticket) {
        if self.shard_bytes == 0 {
            return;
        }
        let key_len: usize = parts.iter().map(|p| p.len()).sum();
        let cost = allocation(key_len) + user_bytes(&user) + ENTRY_OVERHEAD;
        let hash = self.hash(parts);
        let mut shard = write(&self.shards[self.shard_of(hash)]);
        shard.remove(hash);
        // Checked under the shard's lock: an invalidation bumps the epoch before it
        // takes the shard locks, so it either sees this entry or this check sees it.
        if cost > self.shard_bytes || self.ticket() != ticket || self.is_suspended() {
            return;
        }
        shard.insert(hash, parts.concat().into_bytes().into(), user, cost);
        shard.make_room(self.shard_bytes, self.max_entries());
    }

    /// Forgets the entry stored under `parts` (a session found expired on a hit).
    pub(crate) fn remove<P: AsRef<[u8]>>(&self, parts: &[P]) {
        if self.shard_bytes == 0 {
            return;
        }
        let hash = self.hash(parts);
        let mut shard = write(&self.shards[self.shard_of(hash)]);
        if shard
            .entries
            .get(&hash)
            .is_some_and(|e| same_bytes(&e.key, parts))
        {
            shard.remove(hash);
        }
    }

    /// Forgets every entry: the hook for a key-ring change, after which values sealed
    /// under a retired key must open afresh (and fail).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            *write(shard) = Shard::default();
        }
    }

    /// Forgets every session of the user with id `user_id`. Scans the whole cache.
    #[cfg(test)]
    pub(crate) fn forget_user(&self, user_id: &str) {
        self.forget(|user| user.id() == user_id);
    }

    /// Forgets every entry whose user `gone` picks: the hook for a revocation (sign
    /// out everywhere, or one session). Scans the whole cache; revocations are rare.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn forget(&self, gone: impl Fn(&HfUser) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in &self.shards {
            let mut shard = write(shard);
            let hashes: Vec<u64> = shard
                .entries
                .iter()
                .filter(|(_, e)| gone(&e.user))
                .map(|(&hash, _)| hash)
                .collect();
            for hash in hashes {
                shard.remove(hash);
            }
        }
    }

    /// Stops trusting the cache: it answers no lookup and takes no entry until
    /// [`resume`](Self::resume) (a server-side store that cannot hear revocations).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn suspend(&self) {
        self.suspended.store(true, Ordering::Release);
        self.clear();
    }

    /// Trusts the cache again, starting empty.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn resume(&self) {
        self.clear();
        self.suspended.store(false, Ordering::Release);
    }

    /// Whether lookups are answered.
    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Bytes held, by the entries' costs.
    pub(crate) fn bytes(&self) -> usize {
        self.shards.iter().map(|s| read(s).bytes).sum()
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).entries.len()).sum()
    }

    /// The bound in bytes (the shards' bounds added up).
    pub(crate) fn capacity(&self) -> usize {
        self.shard_bytes * self.shards.len()
    }

    /// Most entries per shard: every entry costs at least its overhead.
    fn max_entries(&self) -> usize {
        self.shard_bytes / ENTRY_OVERHEAD
    }

    fn shard_of(&self, hash: u64) -> usize {
        // Bits the map does not use for its buckets (low) or control bytes (top).
        (hash >> 40) as usize & (self.shards.len() - 1)
    }

    fn hash<P: AsRef<[u8]>>(&self, parts: &[P]) -> u64 {
        self.hasher.hash(parts)
    }
}

impl std::fmt::Debug for OpenedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: keys are cookie values, which are secrets.
        f.debug_struct("OpenedSessions")
            .field("entries", &self.len())
            .field("bytes", &self.bytes())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Shard {
    /// Adds an entry; the caller removed any with the same hash.
    fn insert(&mut self, hash: u64, key: Box<[u8]>, user: HfUser, cost: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            key,
            user,
            cost,
            seq,
            visited: AtomicBool::new(false),
        };
        self.entries.insert(hash, entry);
        self.queue.push_back((hash, seq));
        self.bytes += cost;
    }

    fn remove(&mut self, hash: u64) {
        if let Some(old) = self.entries.remove(&hash) {
            self.bytes -= old.cost;
        }
        if self.queue.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.queue
                .retain(|(hash, seq)| entries.get(hash).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Evicts until the shard is within `max_bytes` and `max_entries`: in insertion
    /// order, but an entry read since the last pass goes to the back once.
    fn make_room(&mut self, max_bytes: usize, max_entries: usize) {
        while self.bytes > max_bytes || self.entries.len() > max_entries {
            let Some((hash, seq)) = self.queue.pop_front() else {
                break;
            };
            let Some(entry) = self.entries.get(&hash).filter(|e| e.seq == seq) else {
                continue;
            };
            if entry.visited.swap(false, Ordering::Relaxed) {
                self.queue.push_back((hash, seq));
            } else {
                self.remove(hash);
            }
        }
    }
}

/// Whether `key` is the concatenation of `parts`.
fn same_bytes<P: AsRef<[u8]>>(key: &[u8], parts: &[P]) -> bool {
    let mut rest = key;
    for part in parts {
        let part = part.as_ref();
        let Some((head, tail)) = rest.split_at_checked(part.len()) else {
            return false;
        };
        if head != part {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

/// What the allocator takes for `n` bytes: glibc's chunks carry 8 bytes of header,
/// are 16-byte aligned and at least 32 bytes.
const fn allocation(n: usize) -> usize {
    let chunk = (n + 8 + 15) & !15;
    if chunk < 32 { 32 } else { chunk }
}

/// An estimate of the memory `user` holds, on the high side: the record, and each
/// string as the allocator holds it.
fn user_bytes(user: &HfUser) -> usize {
    let text = |s: Option<&str>| s.map_or(0, |s| allocation(s.len()));
    let record = user.record();
    // The profile's and the organizations' strings live in texts they share (one per
    // profile read from a session record): each text counts once, with its `Arc`'s
    // counts.
    let shared = crate::user::shared_texts(&record.profile)
        .map(|len| allocation(2 * size_of::<usize>() + len))
        .sum::<usize>();
    let restrictions = user
        .orgs()
        .iter()
        .map(|org| {
            let restrictions = org.security_restrictions();
            restrictions
                .iter()
                .map(|r| allocation(r.len()))
                .sum::<usize>()
                + allocation(size_of_val(restrictions))
        })
        .sum::<usize>();
    let orgs = shared + restrictions;
    let scopes = [user.scopes(), user.asked_scopes()]
        .into_iter()
        .map(|s| allocation(s.heap_bytes()))
        .sum::<usize>();
    let tokens = text(Some(user.access_token().expose()))
        + text(record.refresh_token.as_ref().map(|t| t.expose()));
    // The `Arc`'s counts with the record, and the orgs' vector.
    let fixed = allocation(2 * size_of::<usize>() + size_of_val(record))
        + allocation(size_of_val(user.orgs()));
    fixed + orgs + scopes + tokens
}

fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Secret;
    use crate::user::{Profile, Scopes, SessionRecord};

    /// A user with id `id` in `orgs` organizations.
    fn user(id: &str, orgs: usize) -> HfUser {
        let orgs: Vec<String> = (0..orgs)
            .map(|i| {
                format!(r#"{{"sub":"o{i}","preferred_username":"org-{i}","roleInOrg":"read"}}"#)
            })
            .collect();
        let json = format!(
            r#"{{"sub":"{id}","preferred_username":"user-{id}","orgs":[{}]}}"#,
            orgs.join(",")
        );
        HfUser::from_record(SessionRecord {
            profile: serde_json::from_str::<Profile>(&json).unwrap(),
            scopes: Scopes::parse("openid profile"),
            access_token: Secret::new(format!("hf_oauth_{id}")),
            expires_at: 2_000,
            refresh_token: None,
            asked: Scopes::default(),
            profile_at: u64::MAX / 2,
            stored: None,
        })
    }

    /// Internal consistency: each shard's byte count is its entries' costs.
    fn assert_accounts(cache: &OpenedSessions) {
        for shard in &cache.shards {
            let shard = read(shard);
            let sum: usize = shard.entries.values().map(|e| e.cost).sum();
            assert_eq!(shard.bytes, sum);
            assert!(shard.bytes <= cache.shard_bytes);
            assert!(shard.entries.len() <= cache.max_entries());
        }
    }

    #[test]
    fn a_hit_needs_the_exact_bytes() {
        let cache = OpenedSessions::new(1 << 20);
        let a = "A".repeat(100) + "-middle-a-" + &"Z".repeat(100);
        let b = "A".repeat(100) + "-middle-b-" + &"Z".repeat(100);
        cache.insert(&[&a], user("alice", 2), cache.ticket());
        assert_eq!(cache.get(&[&a]).unwrap().id(), "alice");
        // Same length, head and tail (so the same hash), other middle: a miss.
        assert!(cache.get(&[&b]).is_none());
        assert!(cache.get(&[&a[..a.len() - 1]]).is_none(), "a prefix");
        assert!(cache.get(&[&(a.clone() + "x")]).is_none(), "longer");
        assert!(cache.get::<&str>(&[]).is_none());
        // The same bytes in other chunks stand for the same value: alice or a miss.
        let (head, tail) = a.split_at(150);
        assert!(cache.get(&[head, tail]).is_none_or(|u| u.id() == "alice"));
    }

    #[test]
    fn the_hash_sees_the_length_and_every_sampled_byte() {
        let hasher = SampleHasher::new();
        for len in [0, 1, 15, 16, 17, 40, 64, 65, 100, 400] {
            let value = vec![b'a'; len];
            let hash = hasher.hash(&[&value]);
            if len > 0 {
                assert_ne!(hash, hasher.hash(&[&value[..len - 1]]), "{len}");
            }
            assert_ne!(hash, hasher.hash(&[[&value[..], b"\0"].concat()]), "{len}");
            // Every byte of a short value, the head and tail of a long one.
            let sampled =
                (0..len).filter(|&i| len <= 2 * SAMPLE || i < SAMPLE || i >= len - SAMPLE);
            for i in sampled {
                let mut other = value.clone();
                other[i] = b'b';
                assert_ne!(hash, hasher.hash(&[&other]), "{len}, byte {i}");
            }
        }
        // How a value is split into parts counts too.
        assert_ne!(hasher.hash(&["ab", "c"]), hasher.hash(&["a", "bc"]));
        // Keys are per hasher (per process): another hasher spreads differently.
        assert_ne!(hasher.hash(&["abc"]), SampleHasher::new().hash(&["abc"]));
    }

    #[test]
    fn chunked_keys_are_their_concatenation() {
        let cache = OpenedSessions::new(1 << 20);
        let parts = ["x".repeat(3800), "y".repeat(3800), "z".repeat(10)];
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        cache.insert(&parts, user("carol", 41), cache.ticket());
        assert_eq!(cache.get(&parts).unwrap().id(), "carol");
        assert!(cache.get(&parts[..2]).is_none(), "a chunk missing");
        assert!(cache.get(&[parts[0], parts[1], "zzzzzzzzzy"]).is_none());
    }

    #[test]
    fn expired_entries_can_be_removed_and_only_by_their_own_bytes() {
        let cache = OpenedSessions::new(1 << 20);
        cache.insert(&["cookie-a"], user("a", 0), cache.ticket());
        cache.remove(&["cookie-b"]);
        assert!(cache.get(&["cookie-a"]).is_some());
        cache.remove(&["cookie-a"]);
        assert!(cache.get(&["cookie-a"]).is_none());
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn clear_and_forget_user_invalidate_and_drop_racing_inserts() {
        let cache = OpenedSessions::new(1 << 20);
        let t = cache.ticket();
        cache.insert(&["a1"], user("a", 0), t);
        cache.insert(&["a2"], user("a", 0), t);
        cache.insert(&["b1"], user("b", 0), t);
        cache.forget_user("a");
        assert!(cache.get(&["a1"]).is_none() && cache.get(&["a2"]).is_none());
        assert_eq!(cache.get(&["b1"]).unwrap().id(), "b");
        // A session read before the revocation is not remembered after it.
        cache.insert(&["a3"], user("a", 0), t);
        assert!(cache.get(&["a3"]).is_none());
        let t = cache.ticket();
        cache.clear();
        assert!(cache.get(&["b1"]).is_none());
        cache.insert(&["b2"], user("b", 0), t);
        assert!(cache.get(&["b2"]).is_none(), "read under the old key ring");
        cache.insert(&["b2"], user("b", 0), cache.ticket());
        assert!(cache.get(&["b2"]).is_some());
        assert_accounts(&cache);
    }

    #[test]
    fn a_zero_bound_turns_the_cache_off() {
        let cache = OpenedSessions::new(0);
        cache.insert(&["a"], user("a", 0), cache.ticket());
        assert!(cache.get(&["a"]).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_larger_than_a_shard_are_not_kept() {
        let cache = OpenedSessions::new(4 << 10);
        cache.insert(&["big"], user("big", 100), cache.ticket());
        assert!(cache.get(&["big"]).is_none());
        cache.insert(&["small"], user("small", 0), cache.ticket());
        assert!(cache.get(&["small"]).is_some());
    }

    #[test]
    fn sessions_in_use_survive_eviction() {
        let cache = OpenedSessions::new(64 << 10);
        assert_eq!(cache.shards.len(), 1);
        let keys: Vec<String> = (0..1_000).map(|i| format!("cookie-{i:04}")).collect();
        cache.insert(&[&keys[0]], user("busy", 2), cache.ticket());
        for (i, key) in keys.iter().enumerate().skip(1) {
            assert!(cache.get(&[&keys[0]]).is_some(), "evicted after {i}");
            cache.insert(&[key], user(&format!("u{i}"), 2), cache.ticket());
        }
        assert!(cache.get(&[&keys[1]]).is_none(), "idle ones go");
        assert!(cache.len() < 1_000);
        assert_accounts(&cache);
    }

    #[test]
    fn debug_shows_counts_not_cookies() {
        let cache = OpenedSessions::new(1 << 20);
        cache.insert(&["secret-cookie-value"], user("a", 0), cache.ticket());
        let debug = format!("{cache:?}");
        assert!(!debug.contains("secret-cookie-value") && !debug.contains("hf_oauth"));
        assert!(debug.contains("entries: 1"), "{debug}");
    }

    #[test]
    fn concurrent_hits_and_inserts_never_mix_users() {
        let cache = Arc::new(OpenedSessions::new(256 << 10));
        std::thread::scope(|s| {
            for t in 0..8 {
                let cache = cache.clone();
                s.spawn(move || {
                    for round in 0..2_000_usize {
                        // Half the keys share their sampled head and tail (and so their
                        // hash) across threads; the other half differ in the head.
                        let i = round % 50;
                        let head = if i.is_multiple_of(2) {
                            String::new()
                        } else {
                            format!("{t}-{i}")
                        };
                        let key = format!("{head}{}{t}-{i}{}", "h".repeat(40), "t".repeat(40));
                        let id = format!("{t}-{i}");
                        match cache.get(&[&key]) {
                            Some(found) => assert_eq!(found.id(), id),
                            None => cache.insert(&[&key], user(&id, i % 5), cache.ticket()),
                        }
                        if round.is_multiple_of(500) && t == 0 {
                            cache.forget_user("1-1");
                        }
                    }
                });
            }
        });
        assert_accounts(&cache);
        assert!(cache.len() > 0);
    }

    mod properties {
        use std::collections::HashMap;

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Insert { key: usize, orgs: usize },
            Get(usize),
            Remove(usize),
            Forget(usize),
        }

        /// Keys of which the even ones share length, head and tail, so their hashes
        /// collide; the odd ones differ in the head.
        fn key(i: usize) -> String {
            let head = if i.is_multiple_of(2) { 0 } else { i };
            format!("{head:03}{}{i:03}{}", "k".repeat(40), "s".repeat(40))
        }

        fn op(keys: usize) -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..keys, 0..50usize).prop_map(|(key, orgs)| Op::Insert { key, orgs }),
                4 => (0..keys).prop_map(Op::Get),
                1 => (0..keys).prop_map(Op::Remove),
                1 => (0..keys).prop_map(Op::Forget),
            ]
        }

        proptest! {
            #[test]
            fn a_hit_never_returns_another_cookies_user_and_bytes_stay_bounded(
                bound in 0usize..200_000,
                ops in prop::collection::vec(op(40), 1..300),
            ) {
                let cache = OpenedSessions::new(bound);
                // Which user each key was last inserted with.
                let mut model: HashMap<usize, String> = HashMap::new();
                for op in ops {
                    match op {
                        Op::Insert { key: k, orgs } => {
                            let id = format!("user-{k}-{orgs}");
                            cache.insert(&[&key(k)], user(&id, orgs), cache.ticket());
                            model.insert(k, id);
                        }
                        Op::Get(k) => {
                            if let Some(found) = cache.get(&[&key(k)]) {
                                prop_assert_eq!(Some(found.id()), model.get(&k).map(String::as_str));
                            }
                        }
                        Op::Remove(k) => {
                            cache.remove(&[&key(k)]);
                            prop_assert!(cache.get(&[&key(k)]).is_none());
                        }
                        Op::Forget(k) => {
                            if let Some(id) = model.get(&k) {
                                cache.forget_user(id);
                                prop_assert!(cache.get(&[&key(k)]).is_none());
                            }
                        }
                    }
                    prop_assert!(cache.bytes() <= bound);
                    assert_accounts(&cache);
                }
            }
        }
    }

    /// Removals compact the eviction queue of stale tags: a shard whose sessions are
    /// removed and replaced again and again (each refresh replaces one) keeps a short
    /// queue. (21 stale tags first, so the queue's length never equals the bound on
    /// its way up.)
    #[test]
    fn the_eviction_queue_stays_short_under_removals() {
        let alice = user("a", 0);
        let mut shard = Shard::default();
        for hash in 0..21 {
            shard.insert(hash, Box::from(&b"k"[..]), alice.clone(), 1);
        }
        for hash in 0..21 {
            shard.remove(hash);
        }
        for _ in 0..100 {
            shard.insert(99, Box::from(&b"k"[..]), alice.clone(), 1);
            shard.remove(99);
        }
        assert!(shard.queue.len() <= 17, "{} tags queued", shard.queue.len());
        assert_eq!(shard.bytes, 0);
    }

    /// The allocator's view of `n` bytes: an 8-byte header, 16-byte steps, 32 at least.
    #[test]
    fn allocation_rounds_like_glibc() {
        assert_eq!(allocation(0), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(100), 112);
        assert_eq!(allocation(4096), 4112);
    }
}
