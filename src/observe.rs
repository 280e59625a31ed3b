//! What the crate lets operators see: `tracing` spans for every sign-in step and
//! background task, and (feature `metrics`) counters and histograms through the
//! [`metrics`](https://docs.rs/metrics) facade. Every span and metric is made here, so
//! the rest of the crate calls one-liners, and a build without the `metrics` feature
//! has no metrics code at all.
//!
//! # Spans
//!
//! | span | when | fields |
//! |---|---|---|
//! | `hf_auth.login` | `GET /login` | `outcome` (`redirected`, `failure`), `error.type`, `duration_ms` |
//! | `hf_auth.callback` | `GET /login/callback` | `outcome` (`success`, `denied`, `failure`), `error.type`, `user.id`, `duration_ms` |
//! | `hf_auth.refresh` | a session's tokens are refreshed (a task of its own) | `outcome` (`refreshed`, `unavailable`, `refused`, `ended` (revoked in the store), `coalesced`), `user.id`, `duration_ms` |
//! | `hf_auth.profile` | a session's profile is read again (a task of its own) | as `hf_auth.refresh` |
//! | `hf_auth.bearer` | a bearer token is checked (`DEBUG` when the cache answers) | `cache` (`hit`, `miss`), `outcome` (`accepted`, `rejected`, `unavailable`), `error.type`, `user.id`, `duration_ms` |
//! | `hf_auth.provider` | each HTTP call to the provider, a child of the above | `endpoint` (`discovery`, `jwks`, `token`, `userinfo`, `whoami`), `status`, `outcome` (`ok`, `error`), `error.type`, `duration_ms` |
//!
//! A server-side session store (the Redis store, feature `redis`) opens an
//! `hf_auth.store` span per call, with `operation` (`load`, `create`, `replace`,
//! `lease`, `release`, `delete`, `revoke_user`, `claim_once`, `shared_get`,
//! `shared_put`), `outcome` (`ok`, `error`), `error.type` (`unavailable`, `full`) and
//! `duration_ms`; cookie sessions open none.
//!
//! `error.type` is an [`AuthErrorKind`](crate::AuthErrorKind::code) (`invalid_state`,
//! `provider_timeout`, …) on the sign-in steps; on provider calls it is `timeout`,
//! `connect`, `transport`, `redirect`, `response_too_large`, or the HTTP status of an
//! error answer (`401`, `503`, …). Spans are at `INFO` level.
//!
//! `user.id` is a pseudonym: the first 8 bytes, in hex, of HMAC-SHA256 of the user's
//! Hugging Face id under a key derived from the app's cookie key material
//! ([`with_secret`](crate::HfAuthConfigBuilder::with_secret)). The same user has the
//! same pseudonym on every replica sharing the secret, and a new one after the secret
//! changes. [`with_raw_user_ids`](crate::HfAuthConfigBuilder::with_raw_user_ids) puts
//! the Hugging Face id itself there instead. No span field, and no event, ever holds a
//! token, code, `state`, nonce, cookie or secret (`tests/secrets.rs` captures them all
//! to check).
//!
//! # Metrics (feature `metrics`)
//!
//! Recorded through the `metrics` facade: install any recorder (the example app uses
//! `metrics-exporter-prometheus` and serves the text format at `/metrics`).
//!
//! `hf_auth_bearer_cache_total` is counted on every bearer request, so each thread
//! keeps its two handles with the recorder that made them, and asks again when it
//! finds another recorder in force. A local recorder (`metrics::with_local_recorder`)
//! that ends and is followed, on the same thread, by another of the same type at the
//! same address would be counted into the first one's handles: give each test its own
//! thread (as `cargo test` does) or use one recorder throughout.
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `hf_auth_sign_ins_total` | counter | `outcome` = `success`, `denied`, `failure` | callbacks; `denied`: the user cancelled or the app refused them (organizations) |
//! | `hf_auth_sign_in_duration_seconds` | histogram | `outcome` | the callback's own time (code exchange, ID token, userinfo), not the user's time on Hugging Face |
//! | `hf_auth_refreshes_total` | counter | `kind` = `tokens`, `profile`; `outcome` = `refreshed`, `unavailable`, `refused`, `coalesced` | session renewals; `coalesced`: answered by another request's call to the provider |
//! | `hf_auth_denials_total` | counter | `reason` = `unauthenticated`, `insufficient_scope`, `org_required`, `org_restricted`, `forbidden`, `cross_origin_request` | guards', extractors' and the cross-origin check's refusals |
//! | `hf_auth_bearer_cache_total` | counter | `result` = `hit`, `miss` | bearer checks; `hit`: answered without a call to the provider by this request |
//! | `hf_auth_provider_requests_total` | counter | `endpoint`; `status` = the HTTP status, or `timeout`, `connect`, `transport` | calls to the provider |
//! | `hf_auth_provider_request_duration_seconds` | histogram | `endpoint` | calls to the provider, body read included |
//! | `hf_auth_store_errors_total` | counter | `operation` | failed calls to a server-side session store (none with cookie sessions) |

use std::fmt;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use tracing::Span;
use tracing::field::Empty;

use crate::secret::Secret;

/// Turns Hugging Face user ids into the `user.id` of spans: a keyed hash, or the id
/// itself when the app asked for raw ids.
pub(crate) struct UserIds {
    key: hmac::Key,
    raw: bool,
}

impl fmt::Debug for UserIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserIds")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// How many bytes of the HMAC a pseudonym keeps: 64 bits, hex-encoded.
const PSEUDONYM_BYTES: usize = 8;

impl UserIds {
    /// Pseudonyms keyed from `secret` (the cookie key material), or raw ids.
    pub(crate) fn new(secret: &Secret, raw: bool) -> Self {
        // A key of its own, derived under a fixed label: a pseudonym reveals nothing
        // about the cookie keys, which are derived from the same material under others.
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let derived = hmac::sign(&root, b"tower-hf-auth telemetry user ids v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            raw,
        }
    }

    /// What spans show for the user with Hugging Face id `id`.
    pub(crate) fn of(&self, id: &str) -> String {
        if self.raw {
            return id.to_owned();
        }
        let tag = hmac::sign(&self.key, id.as_bytes());
        tag.as_ref()[..PSEUDONYM_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One timed step: a span and when it began. Ending it records the outcome fields.
pub(crate) struct Step {
    span: Span,
    /// When it began; not read from the clock when nothing would see the duration (no
    /// subscriber wants the span, no metrics).
    started: Option<Instant>,
}

impl Step {
    fn new(span: Span) -> Self {
        let timed = cfg!(feature = "metrics") || !span.is_disabled();
        Self {
            span,
            started: timed.then(Instant::now),
        }
    }

    /// A step whose duration only its span records.
    fn traced(span: Span) -> Self {
        let started = (!span.is_disabled()).then(Instant::now);
        Self { span, started }
    }

    /// `GET /login`.
    pub(crate) fn login() -> Self {
        Self::new(tracing::info_span!(
            "hf_auth.login",
            outcome = Empty,
            "error.type" = Empty,
            duration_ms = Empty,
        ))
    }

    /// `GET /login/callback`.
    pub(crate) fn callback() -> Self {
        Self::new(tracing::info_span!(
            "hf_auth.callback",
            outcome = Empty,
            "error.type" = Empty,
            "user.id" = Empty,
            duration_ms = Empty,
        ))
    }

    /// Renewing a session: new tokens (`profile_only == false`) or a new profile.
    pub(crate) fn renewal(profile_only: bool) -> Self {
        let span = if profile_only {
            tracing::info_span!(
                "hf_auth.profile",
                outcome = Empty,
                "user.id" = Empty,
                duration_ms = Empty,
            )
        } else {
            tracing::info_span!(
                "hf_auth.refresh",
                outcome = Empty,
                "user.id" = Empty,
                duration_ms = Empty,
            )
        };
        Self::new(span)
    }

    /// A bearer token the cache did not know when the check began: checked with the
    /// provider, or answered by a concurrent check of the same token (then `cache` is
    /// `hit`: this request asked no one).
    pub(crate) fn bearer() -> Self {
        Self::new(tracing::info_span!(
            "hf_auth.bearer",
            cache = Empty,
            outcome = Empty,
            "error.type" = Empty,
            "user.id" = Empty,
            duration_ms = Empty,
        ))
    }

    /// A bearer token answered by the cache (`DEBUG`: it happens on every request).
    /// Its duration is only the span's (no metric times it), so the clock is read only
    /// when a subscriber wants the span. Below `DEBUG` (or with no subscriber at all)
    /// there is no span to make nor fields to record: not even through `tracing`'s
    /// `log` fallback, which would otherwise format every cached check.
    pub(crate) fn bearer_cached() -> Self {
        Self::bearer_cached_traced().unwrap_or(Self {
            span: Span::none(),
            started: None,
        })
    }

    /// [`bearer_cached`](Self::bearer_cached)'s step when it has a span (`DEBUG`);
    /// `None` below, where [`bearer_counted`] is all a cached check has to do.
    pub(crate) fn bearer_cached_traced() -> Option<Self> {
        if tracing::level_filters::LevelFilter::current() < tracing::Level::DEBUG {
            return None;
        }
        Some(Self::traced(tracing::debug_span!(
            "hf_auth.bearer",
            cache = "hit",
            outcome = Empty,
            "error.type" = Empty,
            "user.id" = Empty,
            duration_ms = Empty,
        )))
    }

    /// A call to a server-side session store (`operation`: `load`, `create`, …).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn store(operation: &'static str) -> Self {
        Self::new(tracing::info_span!(
            "hf_auth.store",
            operation,
            outcome = Empty,
            "error.type" = Empty,
            duration_ms = Empty,
        ))
    }

    /// The span, to instrument a future with.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records who the step is about (as [`UserIds`] shows them).
    pub(crate) fn user(&self, ids: &UserIds, id: &str) {
        if !self.span.is_disabled() {
            self.span.record("user.id", ids.of(id));
        }
    }

    /// Records the outcome, the error type if any and the duration; returns the
    /// duration.
    pub(crate) fn end(&self, outcome: &'static str, error: Option<&str>) -> Duration {
        let took = self.started.map_or(Duration::ZERO, |at| at.elapsed());
        if self.span.is_none() {
            return took;
        }
        self.span.record("outcome", outcome);
        if let Some(error) = error {
            self.span.record("error.type", error);
        }
        self.span.record("duration_ms", took.as_secs_f64() * 1000.0);
        took
    }
}

/// Ends a `/login` step: redirected, or failed with `error` (an error code).
pub(crate) fn login_done(step: &Step, error: Option<&'static str>) {
    match error {
        None => step.end("redirected", None),
        Some(code) => step.end("failure", Some(code)),
    };
}

/// Ends a callback step (`outcome`: `success`, `denied`, `failure`; `error`: the
/// answer's error code), and counts the sign-in.
pub(crate) fn callback_done(step: &Step, outcome: &'static str, error: Option<&'static str>) {
    let took = step.end(outcome, error);
    metrics::sign_in(outcome, took);
}

/// A session renewal's outcome label: `coalesced` when another caller's run answered.
pub(crate) fn renewal_done(step: &Step, profile_only: bool, outcome: &'static str) {
    step.end(outcome, None);
    metrics::renewal(profile_only, outcome);
}

/// A request served a renewal that another request already made.
pub(crate) fn renewal_remembered(profile_only: bool) {
    metrics::renewal(profile_only, "coalesced");
}

/// What a bearer check came to, with the error type of a refusal; `hit`: answered
/// without a provider call of this request's own.
pub(crate) fn bearer_done(step: &Step, outcome: &'static str, error: Option<&str>, hit: bool) {
    if !step.span.is_none() {
        step.span.record("cache", if hit { "hit" } else { "miss" });
    }
    step.end(outcome, error);
    metrics::bearer_cache(hit);
}

/// Counts a bearer check that had no span to end (see [`Step::bearer_cached_traced`]).
pub(crate) fn bearer_counted(hit: bool) {
    metrics::bearer_cache(hit);
}

/// A guard, an extractor or the cross-origin check refused a request (`code`: the
/// [`AuthErrorKind`](crate::AuthErrorKind) code).
pub(crate) fn denied(code: &'static str) {
    metrics::denial(code);
}

/// A call to a server-side session store failed.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn store_error(operation: &'static str) {
    metrics::store_error(operation);
}

/// The span of one HTTP call to the provider (child of the step that makes it).
pub(crate) fn provider_span(endpoint: &'static str) -> Step {
    Step::new(tracing::info_span!(
        "hf_auth.provider",
        endpoint,
        status = Empty,
        outcome = Empty,
        "error.type" = Empty,
        duration_ms = Empty,
    ))
}

/// Ends a provider call: its HTTP status (which the call recorded in the span as soon
/// as it knew it), or the failure that kept it from one.
pub(crate) fn provider_done(
    step: &Step,
    endpoint: &'static str,
    status: Option<http::StatusCode>,
    failure: Option<&'static str>,
) {
    let error_status = status
        .filter(|s| s.is_client_error() || s.is_server_error())
        .map(|s| s.as_u16().to_string());
    let error = failure.or(error_status.as_deref());
    let outcome = if error.is_none() { "ok" } else { "error" };
    let took = step.end(outcome, error);
    metrics::provider_call(endpoint, status, failure, took);
}

/// The `metrics` calls; empty functions, compiled away, without the feature.
#[cfg(feature = "metrics")]
mod metrics {
    use std::time::Duration;

    use std::cell::RefCell;

    use ::metrics::{Counter, counter, histogram};

    pub(super) fn sign_in(outcome: &'static str, took: Duration) {
        counter!("hf_auth_sign_ins_total", "outcome" => outcome).increment(1);
        histogram!("hf_auth_sign_in_duration_seconds", "outcome" => outcome).record(took);
    }

    pub(super) fn renewal(profile_only: bool, outcome: &'static str) {
        let kind = if profile_only { "profile" } else { "tokens" };
        counter!("hf_auth_refreshes_total", "kind" => kind, "outcome" => outcome).increment(1);
    }

    /// Counts a bearer check. It happens on every bearer request, so the two counters'
    /// handles are kept per thread, with the recorder that made them, instead of
    /// asking the recorder for them each time (a registry lookup, about as costly as
    /// the rest of a cached check). A thread that finds another recorder in force (one
    /// installed since, or a local one) asks that recorder again.
    pub(super) fn bearer_cache(hit: bool) {
        thread_local! {
            static HANDLES: RefCell<Option<(Made, [Counter; 2])>> = const { RefCell::new(None) };
        }
        ::metrics::with_recorder(|recorder| {
            let by = made_by(recorder);
            HANDLES.with_borrow_mut(|kept| {
                let counters = match kept {
                    Some((made, counters)) if by.is_some() && *made == by => counters,
                    _ => {
                        // Literal labels make a static key: nothing allocated for it.
                        let counters = [
                            counter!("hf_auth_bearer_cache_total", "result" => "hit"),
                            counter!("hf_auth_bearer_cache_total", "result" => "miss"),
                        ];
                        &mut kept.insert((by, counters)).1
                    }
                };
                counters[usize::from(!hit)].increment(1);
            });
        });
    }

    /// Which recorder made a handle: its address and size, which tell apart any two
    /// recorders alive at once. `None` for a recorder of no size (such as the no-op
    /// one), whose address may be shared with another: its handles are not kept.
    ///
    /// A recorder that is dropped while a thread keeps its handles, then replaced by
    /// one of the same size at the same address, would be taken for it on that
    /// thread. A global recorder is never dropped; only local recorders made one after
    /// another in the same place could, and the module docs say so.
    type Made = Option<(usize, usize)>;

    fn made_by(recorder: &dyn ::metrics::Recorder) -> Made {
        let size = std::mem::size_of_val(recorder);
        let address = std::ptr::from_ref(recorder).cast::<()>() as usize;
        (size > 0).then_some((address, size))
    }

    pub(super) fn denial(reason: &'static str) {
        counter!("hf_auth_denials_total", "reason" => reason).increment(1);
    }

    pub(super) fn store_error(operation: &'static str) {
        counter!("hf_auth_store_errors_total", "operation" => operation).increment(1);
    }

    pub(super) fn provider_call(
        endpoint: &'static str,
        status: Option<http::StatusCode>,
        failure: Option<&'static str>,
        took: Duration,
    ) {
        let status = match (status, failure) {
            (Some(status), _) => status.as_u16().to_string(),
            (None, failure) => failure.unwrap_or("error").to_owned(),
        };
        counter!(
            "hf_auth_provider_requests_total",
            "endpoint" => endpoint,
            "status" => status
        )
        .increment(1);
        histogram!("hf_auth_provider_request_duration_seconds", "endpoint" => endpoint)
            .record(took);
    }
}

#[cfg(not(feature = "metrics"))]
mod metrics {
    use std::time::Duration;

    #[inline(always)]
    pub(super) fn sign_in(_: &'static str, _: Duration) {}
    #[inline(always)]
    pub(super) fn renewal(_: bool, _: &'static str) {}
    #[inline(always)]
    pub(super) fn bearer_cache(_: bool) {}
    #[inline(always)]
    pub(super) fn denial(_: &'static str) {}
    #[inline(always)]
    #[allow(dead_code)]
    pub(super) fn store_error(_: &'static str) {}
    #[inline(always)]
    pub(super) fn provider_call(
        _: &'static str,
        _: Option<http::StatusCode>,
        _: Option<&'static str>,
        _: Duration,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_never_the_id() {
        let id = "66f1b5a1c2d3e4f5a6b7c8d9";
        let ids = UserIds::new(&Secret::new("a".repeat(32)), false);
        let pseudonym = ids.of(id);
        assert_eq!(pseudonym.len(), 2 * PSEUDONYM_BYTES);
        assert!(pseudonym.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!pseudonym.contains(id) && !id.contains(&pseudonym));
        assert_eq!(pseudonym, ids.of(id), "stable for one key");
        let other = UserIds::new(&Secret::new("b".repeat(32)), false);
        assert_ne!(pseudonym, other.of(id), "keyed");
        assert_ne!(pseudonym, ids.of("66f1b5a1c2d3e4f5a6b7c8da"));
        let raw = UserIds::new(&Secret::new("a".repeat(32)), true);
        assert_eq!(raw.of(id), id);
    }

    /// A recorder counting `hf_auth_bearer_cache_total` by result.
    #[cfg(feature = "metrics")]
    #[derive(Default)]
    struct Counting {
        hits: std::sync::Arc<std::sync::atomic::AtomicU64>,
        misses: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    #[cfg(feature = "metrics")]
    impl ::metrics::Recorder for Counting {
        fn describe_counter(
            &self,
            _: ::metrics::KeyName,
            _: Option<::metrics::Unit>,
            _: ::metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: ::metrics::KeyName,
            _: Option<::metrics::Unit>,
            _: ::metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: ::metrics::KeyName,
            _: Option<::metrics::Unit>,
            _: ::metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &::metrics::Key,
            _: &::metrics::Metadata<'_>,
        ) -> ::metrics::Counter {
            assert_eq!(key.name(), "hf_auth_bearer_cache_total");
            match key.labels().next().map(|l| l.value()) {
                Some("hit") => ::metrics::Counter::from_arc(self.hits.clone()),
                Some("miss") => ::metrics::Counter::from_arc(self.misses.clone()),
                other => panic!("unexpected label {other:?}"),
            }
        }
        fn register_gauge(
            &self,
            _: &::metrics::Key,
            _: &::metrics::Metadata<'_>,
        ) -> ::metrics::Gauge {
            ::metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &::metrics::Key,
            _: &::metrics::Metadata<'_>,
        ) -> ::metrics::Histogram {
            ::metrics::Histogram::noop()
        }
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn bearer_checks_are_counted_by_the_recorder_in_force_though_handles_are_kept() {
        use std::sync::atomic::Ordering::Relaxed;
        let (first, second) = (Counting::default(), Counting::default());
        let count = |hit| bearer_done(&Step::bearer_cached(), "accepted", None, hit);
        // None in force: counted nowhere, and nothing kept stands in for a recorder.
        count(true);
        ::metrics::with_local_recorder(&first, || {
            count(true);
            count(true);
            count(false);
        });
        ::metrics::with_local_recorder(&second, || count(true));
        ::metrics::with_local_recorder(&first, || count(false));
        assert_eq!(
            (first.hits.load(Relaxed), first.misses.load(Relaxed)),
            (2, 2)
        );
        assert_eq!(
            (second.hits.load(Relaxed), second.misses.load(Relaxed)),
            (1, 0)
        );
    }
}
