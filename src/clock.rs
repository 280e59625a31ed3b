//! Time, injectable so expiry can be tested without sleeping.
//!
//! Every expiry decision in the crate (session expiry, pending-login lifetime, ID token
//! `exp`/`iat`) asks a [`Clock`]. The default is [`SystemClock`]; tests can supply their
//! own through [`HfAuthConfig::with_clock`](crate::HfAuthConfigBuilder::with_clock).
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use tower_hf_auth::Clock;
//!
//! #[derive(Debug)]
//! struct Fixed(SystemTime);
//! impl Clock for Fixed {
//!     fn now(&self) -> SystemTime { self.0 }
//! }
//! let clock = Fixed(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
//! assert_eq!(tower_hf_auth::clock::unix_seconds(&clock), 1_700_000_000);
//! ```

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Seconds since the Unix epoch according to `clock` (0 for times before it).
pub fn unix_seconds(clock: &dyn Clock) -> u64 {
    clock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
