//! The OAuth scopes Hugging Face documents, as constants, so a typo is a compile error
//! rather than a route that denies forever.
//!
//! The first nine are those of the "Sign in with Hugging Face" page; the others appear
//! in the hub's documentation of newer features. Hugging Face adds scopes over time, so
//! any string is still accepted: a guard built with a scope not listed here logs one
//! warning naming it, in case it is a typo.
//!
//! ```
//! use tower_hf_auth::{RequireScopes, scope};
//!
//! let repos = RequireScopes::all([scope::READ_REPOS]);
//! let edit = RequireScopes::any([scope::WRITE_REPOS, scope::MANAGE_REPOS]);
//! assert!(scope::is_known("read-repos"));
//! assert!(!scope::is_known("write-repo"));
//! # let _ = (repos, edit);
//! ```

/// The ID token, besides the access token.
pub const OPENID: &str = "openid";
/// The user's profile: username, name, avatar.
pub const PROFILE: &str = "profile";
/// The user's email address.
pub const EMAIL: &str = "email";
/// Whether the user (and granted organizations) have a payment method.
pub const READ_BILLING: &str = "read-billing";
/// Read access to the user's personal repositories (and granted organizations').
pub const READ_REPOS: &str = "read-repos";
/// Write and read access to the user's personal repositories.
pub const WRITE_REPOS: &str = "write-repos";
/// Full access to the user's repositories, including creating and deleting them.
pub const MANAGE_REPOS: &str = "manage-repos";
/// Inference requests on the user's behalf.
pub const INFERENCE_API: &str = "inference-api";
/// Discussions and pull requests on the user's behalf.
pub const WRITE_DISCUSSIONS: &str = "write-discussions";
/// The user's organization memberships.
pub const READ_MEMBERSHIPS: &str = "read-memberships";
/// Gated repositories the user was granted access to.
pub const GATED_REPOS: &str = "gated-repos";
/// Pull requests to repositories on the user's behalf.
pub const CONTRIBUTE_REPOS: &str = "contribute-repos";
/// The user's collections, read.
pub const READ_COLLECTIONS: &str = "read-collections";
/// The user's collections, write.
pub const WRITE_COLLECTIONS: &str = "write-collections";
/// The user's Inference Endpoints, read.
pub const READ_ENDPOINTS: &str = "read-endpoints";
/// The user's Inference Endpoints, write.
pub const WRITE_ENDPOINTS: &str = "write-endpoints";
/// Jobs on the user's behalf.
pub const JOBS: &str = "jobs";
/// The user's webhooks.
pub const WEBHOOKS: &str = "webhooks";

/// Every scope above.
pub const ALL: &[&str] = &[
    OPENID,
    PROFILE,
    EMAIL,
    READ_BILLING,
    READ_REPOS,
    WRITE_REPOS,
    MANAGE_REPOS,
    INFERENCE_API,
    WRITE_DISCUSSIONS,
    READ_MEMBERSHIPS,
    GATED_REPOS,
    CONTRIBUTE_REPOS,
    READ_COLLECTIONS,
    WRITE_COLLECTIONS,
    READ_ENDPOINTS,
    WRITE_ENDPOINTS,
    JOBS,
    WEBHOOKS,
];

/// The bit standing for `scope` among [`ALL`] (for scope checks without string
/// comparisons), if it is one of them.
///
/// A `match` rather than a search of [`ALL`]: it runs for every scope of every session
/// opened (a test checks that the two agree).
pub(crate) fn bit(scope: &str) -> Option<u32> {
    bit_of_bytes(scope.as_bytes())
}

/// [`bit`] of a scope's bytes (a session record's scopes are read as bytes, and
/// checked to be UTF-8 once, all together).
pub(crate) fn bit_of_bytes(scope: &[u8]) -> Option<u32> {
    const _: () = assert!(ALL.len() <= 32, "one bit per known scope in a u32");
    let index = match scope {
        b"openid" => 0,
        b"profile" => 1,
        b"email" => 2,
        b"read-billing" => 3,
        b"read-repos" => 4,
        b"write-repos" => 5,
        b"manage-repos" => 6,
        b"inference-api" => 7,
        b"write-discussions" => 8,
        b"read-memberships" => 9,
        b"gated-repos" => 10,
        b"contribute-repos" => 11,
        b"read-collections" => 12,
        b"write-collections" => 13,
        b"read-endpoints" => 14,
        b"write-endpoints" => 15,
        b"jobs" => 16,
        b"webhooks" => 17,
        _ => return None,
    };
    Some(1 << index)
}

/// Whether `scope` is one Hugging Face documents.
#[must_use]
pub fn is_known(scope: &str) -> bool {
    ALL.contains(&scope)
}

/// Logs one warning per scope in `scopes` that Hugging Face does not document.
pub(crate) fn warn_unknown<'a>(scopes: impl IntoIterator<Item = &'a str>, what: &str) {
    for scope in scopes.into_iter().filter(|s| !is_known(s)) {
        tracing::warn!(
            scope,
            "{what} names the scope `{scope}`, which Hugging Face does not document: a \
             typo? (see tower_hf_auth::scope)"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    #[test]
    fn each_documented_scope_has_its_own_bit() {
        for (i, scope) in super::ALL.iter().enumerate() {
            assert_eq!(super::bit(scope), Some(1 << i), "{scope}");
        }
        for other in ["", "read-repo", "OPENID", "openid ", "x-new-scope"] {
            assert_eq!(super::bit(other), None, "{other:?}");
        }
    }

    /// A log sink tests can read.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_guard_with_an_unknown_scope_warns_once_naming_it() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _ = crate::RequireScopes::all([super::READ_REPOS, "write-repo"]);
            let _ = crate::RequireScopes::any([super::WRITE_REPOS, super::MANAGE_REPOS]);
        });
        let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
        assert_eq!(logs.matches("`write-repo`").count(), 1, "{logs}");
        assert!(!logs.contains("`read-repos`"), "{logs}");
    }

    #[test]
    fn every_documented_scope_is_known() {
        for scope in super::ALL {
            assert!(super::is_known(scope));
        }
        assert_eq!(super::ALL.len(), 18);
        assert!(!super::is_known("write-repo"));
    }
}
