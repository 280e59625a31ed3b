//! Sessions in Redis or Valkey: tickets in, sealed records out, revocations heard by
//! every replica (see the [module docs](super) for the guarantees).

use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};

use super::{SessionStore, StoreError, StoreKind};
use tracing::Instrument;

use crate::Secret;
use crate::observe::{self, Step};
use crate::session::cache::OpenedSessions;
use crate::session::codec::KeyRing;
use crate::session::{lifetime, record};
use crate::ticket::Stored;
use crate::ticket::{self, Names, Ticket, USER_TAG_LEN, tag_hex};
use crate::user::{HfUser, SessionRecord};

/// The label of session records' keys (HKDF info) and their associated data.
const SESSION: &[u8] = b"tower-hf-auth session v1";

const CREATE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
local n = redis.call('ZCARD', KEYS[2])
local max = tonumber(ARGV[6])
if n >= max then
  for _, h in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - max)) do
    redis.call('DEL', ARGV[7] .. h)
    redis.call('ZREM', KEYS[2], h)
    redis.call('PUBLISH', ARGV[8], 's:' .. ARGV[9] .. '.' .. h)
  end
end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
";

/// Compare-and-set: writes only over the version the writer read.
const REPLACE: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(v) + 1), 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
";

const DELETE: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return n
";

const REVOKE_USER: &str = r"
local n = 0
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return n
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The scripts, loaded once per process (`EVALSHA`, loaded again after a restart).
struct Scripts {
    create: Script,
    replace: Script,
    delete: Script,
    revoke_user: Script,
    release: Script,
}

/// What writing a refreshed session back came to.
pub(crate) enum Replaced {
    /// Written: the session with its new version.
    Written(HfUser),
    /// Someone wrote a newer version first; nothing was written.
    Newer,
    /// The session is gone (signed out, revoked, expired).
    Gone,
}

/// A refresh lease held by this process.
#[derive(Debug)]
pub(crate) struct Lease {
    key: String,
    token: String,
}

/// The Redis session store of one layer.
pub(crate) struct RedisStore {
    pub(super) client: Client,
    conn: OnceLock<ConnectionManager>,
    scripts: Scripts,
    names: Names,
    prefix: String,
    pub(super) timeout: Duration,
    max_per_user: usize,
    /// How long a refresh lease lasts: longer than two provider calls.
    lease: Duration,
    /// How long past its access token's expiry a refreshable session is kept.
    grace: u64,
    pub(super) opened: Arc<OpenedSessions>,
    listening: Once,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The session handle of a record: `{user tag}.{session name}`.
fn handle(tag: &str, name: &str) -> String {
    format!("{tag}.{name}")
}

/// The user tag and session name of a handle, when it is one (hex of the right
/// lengths: nothing else reaches a key name).
fn parse_handle(handle: &str) -> Option<(&str, &str)> {
    let (tag, name) = handle.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(tag, 2 * USER_TAG_LEN) && hex(name, 32)).then_some((tag, name))
}

fn store_error(err: &RedisError) -> StoreError {
    if err.code() == Some("OOM") {
        StoreError::Full
    } else {
        StoreError::Unavailable
    }
}

impl RedisStore {
    /// The store of `settings` (`None` for cookie sessions); connects on first use.
    pub(crate) fn new(
        settings: &SessionStore,
        app_secret: &Secret,
        provider_timeout: Duration,
        grace: u64,
        opened: Arc<OpenedSessions>,
    ) -> Option<Self> {
        let StoreKind::Redis(url) = &settings.kind else {
            return None;
        };
        // Checked when the settings were built.
        let client = Client::open(url.expose()).ok()?;
        // The cache is not trusted until the subscription that invalidates it is up.
        opened.suspend();
        Some(Self {
            client,
            conn: OnceLock::new(),
            scripts: Scripts {
                create: Script::new(CREATE),
                replace: Script::new(REPLACE),
                delete: Script::new(DELETE),
                revoke_user: Script::new(REVOKE_USER),
                release: Script::new(RELEASE),
            },
            names: Names::new(app_secret),
            prefix: settings.prefix.clone(),
            timeout: settings.timeout,
            max_per_user: settings.max_per_user,
            lease: settings
                .lease
                .unwrap_or(provider_timeout * 2 + Duration::from_secs(2)),
            grace,
            opened,
            listening: Once::new(),
        })
    }

    /// The connection (made on first use, in the caller's runtime), and the
    /// subscription that keeps the cache honest.
    fn conn(self: &Arc<Self>) -> Result<ConnectionManager, StoreError> {
        self.listening.call_once(|| {
            tokio::spawn(super::listen::listen(Arc::downgrade(self)));
        });
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|_| StoreError::Unavailable)?;
        Ok(self.conn.get_or_init(|| conn).clone())
    }

    /// `fut` within the store's timeout, in an `hf_auth.store` span.
    async fn timed<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let step = Step::store(operation);
        let answer = tokio::time::timeout(self.timeout, fut)
            .instrument(step.span().clone())
            .await;
        let failed = match answer {
            Ok(Ok(value)) => {
                step.end("ok", None);
                return Ok(value);
            }
            Ok(Err(err)) => {
                let error = store_error(&err);
                tracing::warn!(parent: step.span(), error = %err.category(), "session store call failed");
                error
            }
            Err(_) => StoreError::Unavailable,
        };
        step.end("error", Some(failed.code()));
        observe::store_error(operation);
        Err(failed)
    }

    pub(super) fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// `{prefix}{u:tag}:` – every key of one user shares the hash tag.
    fn user_prefix(&self, tag: &str) -> String {
        format!("{}{{u:{tag}}}:", self.prefix)
    }

    fn record_key(&self, tag: &str, name: &str) -> String {
        format!("{}s:{name}", self.user_prefix(tag))
    }

    fn index_key(&self, tag: &str) -> String {
        format!("{}i", self.user_prefix(tag))
    }

    /// The associated data of a record: the label, its key and its version.
    fn aad(key: &str, version: u64) -> Vec<u8> {
        let mut aad = SESSION.to_vec();
        aad.push(0);
        aad.extend_from_slice(key.as_bytes());
        aad.push(0);
        aad.extend_from_slice(version.to_string().as_bytes());
        aad
    }

    /// Until when (Unix seconds) and for how long (ms) `record` is kept at `now`: as
    /// long as its cookie.
    fn keep(&self, record: &SessionRecord, now: u64) -> (u64, u64) {
        let secs = lifetime(record, now, self.grace).max(1);
        (now.saturating_add(secs), secs.saturating_mul(1000))
    }

    fn seal(
        &self,
        ticket: &Ticket,
        key: &str,
        version: u64,
        record: &SessionRecord,
    ) -> Result<Vec<u8>, StoreError> {
        let plain = record::encode(record).ok_or(StoreError::Full)?;
        Ok(ticket::seal(
            ticket.secret(),
            SESSION,
            &Self::aad(key, version),
            &plain,
        ))
    }

    /// Stores a new session for `record` at `now`: the record, with what its cookie
    /// holds (a ticket sealed by `keys` for the cookie `name`).
    pub(crate) async fn create(
        self: &Arc<Self>,
        record: SessionRecord,
        keys: &KeyRing,
        name: &str,
        now: u64,
    ) -> Result<SessionRecord, StoreError> {
        let ticket = Ticket::new(self.names.user_tag(&record.profile.sub));
        let tag = tag_hex(&ticket.user_tag());
        let session = self.names.session(ticket.id());
        let key = self.record_key(&tag, &session);
        let sealed = self.seal(&ticket, &key, 1, &record)?;
        let (until, ttl_ms) = self.keep(&record, now);
        let mut conn = self.conn()?;
        let mut script = self.scripts.create.prepare_invoke();
        script
            .key(&key)
            .key(self.index_key(&tag))
            .arg(&session)
            .arg(sealed)
            .arg(ttl_ms)
            .arg(until)
            .arg(now)
            .arg(self.max_per_user)
            .arg(self.record_key(&tag, ""))
            .arg(self.channel())
            .arg(&tag);
        let call = script.invoke_async::<i64>(&mut conn);
        self.timed("create", call).await?;
        let cookie = Secret::new(keys.seal(name, &ticket.to_bytes()));
        Ok(SessionRecord {
            stored: Some(Stored {
                ticket,
                version: 1,
                cookie,
                handle: handle(&tag, &session),
            }),
            ..record
        })
    }

    /// The session of the cookie value `value`: `Ok(None)` when the value is no ticket
    /// of this app (checked before Redis is asked), or Redis holds no session for it
    /// that its secret opens, or the session is another user's.
    pub(crate) async fn open(
        self: &Arc<Self>,
        value: &str,
        keys: &KeyRing,
        name: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let Some(ticket) = keys.open(name, value).and_then(|t| Ticket::from_bytes(&t)) else {
            return Ok(None);
        };
        let cookie = Secret::new(value);
        self.read(ticket, cookie).await
    }

    /// The session of `ticket`, read from Redis.
    async fn read(
        self: &Arc<Self>,
        ticket: Ticket,
        cookie: Secret,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let tag = tag_hex(&ticket.user_tag());
        let session = self.names.session(ticket.id());
        let key = self.record_key(&tag, &session);
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&key).arg("v").arg("d");
        let call = cmd.query_async::<(Option<u64>, Option<Vec<u8>>)>(&mut conn);
        let (Some(version), Some(sealed)) = self.timed("load", call).await? else {
            return Ok(None);
        };
        let opened = ticket::open(ticket.secret(), SESSION, &Self::aad(&key, version), &sealed);
        let Some(mut record) = opened.and_then(|plain| record::decode(&plain)) else {
            return Ok(None);
        };
        if self.names.user_tag(&record.profile.sub) != ticket.user_tag() {
            return Ok(None);
        }
        record.stored = Some(Stored {
            ticket,
            version,
            cookie,
            handle: handle(&tag, &session),
        });
        Ok(Some(record))
    }

    /// The stored session `stored` stands for, as Redis holds it now.
    pub(crate) async fn reread(
        self: &Arc<Self>,
        stored: &Stored,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.read(stored.ticket.clone(), stored.cookie.clone())
            .await
    }

    /// Writes `record` over the session `old` if Redis still holds that version.
    pub(crate) async fn replace(
        self: &Arc<Self>,
        old: &Stored,
        record: SessionRecord,
        now: u64,
    ) -> Result<Replaced, StoreError> {
        let Some((tag, session)) = parse_handle(&old.handle) else {
            return Ok(Replaced::Gone);
        };
        let key = self.record_key(tag, session);
        let version = old.version + 1;
        let sealed = self.seal(&old.ticket, &key, version, &record)?;
        let (until, ttl_ms) = self.keep(&record, now);
        let mut conn = self.conn()?;
        let mut script = self.scripts.replace.prepare_invoke();
        script
            .key(&key)
            .key(self.index_key(tag))
            .arg(old.version)
            .arg(sealed)
            .arg(ttl_ms)
            .arg(until)
            .arg(session)
            .arg(self.channel())
            .arg(format!("s:{}", old.handle));
        let call = script.invoke_async::<i64>(&mut conn);
        Ok(match self.timed("replace", call).await? {
            1 => Replaced::Written(HfUser::from_record(SessionRecord {
                stored: Some(Stored {
                    version,
                    ..old.clone()
                }),
                ..record
            })),
            0 => Replaced::Newer,
            _ => Replaced::Gone,
        })
    }

    /// Takes the refresh lease of the session `stored`, unless another holds it.
    pub(crate) async fn lease(
        self: &Arc<Self>,
        stored: &Stored,
    ) -> Result<Option<Lease>, StoreError> {
        let Some((tag, session)) = parse_handle(&stored.handle) else {
            return Ok(None);
        };
        let key = format!("{}l:{session}", self.user_prefix(tag));
        let token = ticket::random_hex();
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX));
        let call = cmd.query_async::<Option<String>>(&mut conn);
        Ok(self
            .timed("lease", call)
            .await?
            .map(|_| Lease { key, token }))
    }

    /// How long a lease lasts.
    pub(crate) fn lease_time(&self) -> Duration {
        self.lease
    }

    /// Gives `lease` back, if this process still holds it.
    pub(crate) async fn release(self: &Arc<Self>, lease: Lease) {
        let Ok(mut conn) = self.conn() else { return };
        let mut script = self.scripts.release.prepare_invoke();
        script.key(&lease.key).arg(&lease.token);
        let call = script.invoke_async::<i64>(&mut conn);
        // An unreleased lease ends by itself.
        let _ = self.timed("release", call).await;
    }

    /// Ends the session `stored` (sign-out): its record goes, every replica forgets it.
    pub(crate) async fn delete(self: &Arc<Self>, handle: &str) -> Result<bool, StoreError> {
        let Some((tag, session)) = parse_handle(handle) else {
            return Ok(false);
        };
        let mut conn = self.conn()?;
        let mut script = self.scripts.delete.prepare_invoke();
        script
            .key(self.record_key(tag, session))
            .key(self.index_key(tag))
            .arg(session)
            .arg(self.channel())
            .arg(format!("s:{handle}"));
        let call = script.invoke_async::<i64>(&mut conn);
        Ok(self.timed("delete", call).await? > 0)
    }

    /// Ends every session of the user `user_id`; how many there were.
    pub(crate) async fn revoke_user(self: &Arc<Self>, user_id: &str) -> Result<usize, StoreError> {
        let tag = tag_hex(&self.names.user_tag(user_id));
        let mut conn = self.conn()?;
        let mut script = self.scripts.revoke_user.prepare_invoke();
        script
            .key(self.index_key(&tag))
            .arg(self.record_key(&tag, ""))
            .arg(self.channel())
            .arg(format!("u:{tag}"));
        let call = script.invoke_async::<i64>(&mut conn);
        Ok(usize::try_from(self.timed("revoke_user", call).await?).unwrap_or(0))
    }

    /// Claims a use-once secret (a sign-in `state`) until `ttl` from now: `true` the
    /// first time, for every replica.
    pub(crate) async fn claim_once(
        self: &Arc<Self>,
        label: &str,
        secret: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = format!(
            "{}{label}:{}",
            self.prefix,
            self.names.secret(label.as_bytes(), secret.as_bytes())
        );
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let call = cmd.query_async::<Option<String>>(&mut conn);
        Ok(self.timed("claim_once", call).await?.is_some())
    }

    /// A value cached for the whole fleet under a secret (a bearer token): sealed under
    /// a key derived from the secret, named by its keyed hash.
    pub(crate) async fn shared_get(
        self: &Arc<Self>,
        label: &str,
        secret: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.shared_key(label, secret);
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        let call = cmd.query_async::<Option<Vec<u8>>>(&mut conn);
        Ok(self.timed("shared_get", call).await?.and_then(|sealed| {
            ticket::open(secret.as_bytes(), label.as_bytes(), key.as_bytes(), &sealed)
        }))
    }

    /// Caches `value` for the fleet under `secret` for `ttl`.
    pub(crate) async fn shared_put(
        self: &Arc<Self>,
        label: &str,
        secret: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.shared_key(label, secret);
        let sealed = ticket::seal(secret.as_bytes(), label.as_bytes(), key.as_bytes(), value);
        let mut conn = self.conn()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(sealed)
            .arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let call = cmd.query_async::<()>(&mut conn);
        self.timed("shared_put", call).await
    }

    fn shared_key(&self, label: &str, secret: &str) -> String {
        format!(
            "{}{label}:{}",
            self.prefix,
            self.names.secret(label.as_bytes(), secret.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_reach_key_names_only_as_hex() {
        let tag = "0123456789abcdef";
        let name = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_handle(&handle(tag, name)), Some((tag, name)));
        for bad in [
            format!("{tag}.{name}*"),
            format!("{{{tag}}}.{name}"),
            format!("{tag}.{}\n", &name[..31]),
            format!("{tag}{name}"),
            String::new(),
        ] {
            assert_eq!(parse_handle(&bad), None, "{bad:?}");
        }
    }
}
