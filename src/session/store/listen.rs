//! The revocation channel: every replica subscribes to `{prefix}revoked` and forgets
//! the cached sessions each message names. While the subscription is down the
//! opened-session cache is suspended (every request reads Redis); when it is back the
//! cache starts empty, since messages may have been missed.

use std::sync::Weak;
use std::time::Duration;

use redis::RedisError;

use super::redis::RedisStore;

/// How often the subscription is checked with a ping; a ping not answered within the
/// store's timeout (at least this) counts as a lost subscription.
const PING_EVERY: Duration = Duration::from_millis(250);

impl RedisStore {
    /// Forgets the cached sessions a revocation message names.
    fn heard(&self, message: &str) {
        if let Some(user) = message.strip_prefix("u:") {
            let prefix = format!("{user}.");
            self.opened.forget(|u| {
                u.record()
                    .stored
                    .as_ref()
                    .is_some_and(|s| s.handle.starts_with(&prefix))
            });
        } else if let Some(session) = message.strip_prefix("s:") {
            self.opened.forget(|u| {
                u.record()
                    .stored
                    .as_ref()
                    .is_some_and(|s| s.handle == session)
            });
        }
    }
}

/// Keeps the subscription to revocations up while the store lives: while it is down,
/// the opened-session cache is suspended (every request reads Redis); when it is back,
/// the cache starts empty, since messages may have been missed.
pub(super) async fn listen(store: Weak<RedisStore>) {
    loop {
        let Some(this) = store.upgrade() else { return };
        let client = this.client.clone();
        let channel = this.channel();
        let wait = this.timeout.max(PING_EVERY);
        drop(this);
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, RedisError>(pubsub.split())
        };
        let (mut sink, mut stream) = match tokio::time::timeout(wait * 4, subscribed).await {
            Ok(Ok(parts)) => parts,
            _ => {
                tokio::time::sleep(PING_EVERY).await;
                continue;
            }
        };
        let Some(this) = store.upgrade() else { return };
        this.opened.resume();
        drop(this);
        loop {
            let next = std::future::poll_fn(|cx| {
                use futures_core::Stream;
                std::pin::Pin::new(&mut stream).poll_next(cx)
            });
            match tokio::time::timeout(PING_EVERY, next).await {
                Ok(Some(msg)) => {
                    let Some(this) = store.upgrade() else { return };
                    if let Ok(text) = msg.get_payload::<String>() {
                        this.heard(&text);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    let ping = tokio::time::timeout(wait, sink.ping::<String>()).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        break;
                    }
                    if store.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        let Some(this) = store.upgrade() else { return };
        tracing::warn!(
            "lost the session store's revocation channel; reading every session from the store until it is back"
        );
        this.opened.suspend();
    }
}
