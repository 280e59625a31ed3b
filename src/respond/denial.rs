//! The answer table of denials: what a guard's or an extractor's "no" becomes for a
//! browser, an API client and a gRPC client (the table is in the [`guard`] module's
//! docs). Guards decide *whether* to deny; this decides *how*.
//!
//! [`guard`]: crate::guard

use std::sync::Arc;

use http::{HeaderValue, Response, header};

use super::{AuthError, AuthErrorKind, Body, Caller, error, redirect};
use crate::bearer::BearerRejected;
use crate::runtime::Runtime;
use crate::session::store::StoreUnavailable;
use crate::user::{HfUser, OrgRole};

/// Why a guard turned a request away. Built only on denial, so a passing guard
/// allocates nothing.
#[derive(Debug)]
pub(crate) enum Denial {
    /// Nobody is signed in.
    NotSignedIn,
    /// The user did not grant these scopes.
    MissingScopes(Vec<String>),
    /// The user may not act in the organization, for `why`.
    Org {
        org: Arc<str>,
        role: Option<OrgRole>,
        why: OrgShortfall,
    },
    /// A predicate guard said no.
    Predicate(Arc<str>),
}

impl Denial {
    /// The kind of error this denial is answered with.
    pub(crate) fn kind(&self) -> AuthErrorKind {
        match self {
            Self::NotSignedIn => AuthErrorKind::Unauthenticated,
            Self::MissingScopes(_) => AuthErrorKind::InsufficientScope,
            Self::Org {
                why: OrgShortfall::Restricted(_),
                ..
            } => AuthErrorKind::OrgRestricted,
            Self::Org { .. } => AuthErrorKind::OrgRequired,
            Self::Predicate(_) => AuthErrorKind::Forbidden,
        }
    }
}

/// What an organization guard found missing.
#[derive(Debug)]
pub(crate) enum OrgShortfall {
    /// Not a member (not listed, or listed with the `no_access` role).
    NotMember,
    /// A member whose organization was not granted to this app on the consent screen,
    /// so Hugging Face does not say their role.
    NotGranted,
    /// A member whose role is below the one needed.
    RoleTooLow(OrgRole),
    /// Security restrictions of the organization the user has not met.
    Restricted(Vec<String>),
}

/// Where a user revokes an app's access, so the next sign-in shows the consent
/// screen again.
pub(crate) const CONNECTED_APPS: &str = "https://huggingface.co/settings/connected-applications";

/// `{login path}?return_to=…&org=…`: sign in again asking for access to `org`.
pub(crate) fn org_consent_href(runtime: &Runtime, return_to: &str, org: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .append_pair("org", org)
        .finish();
    format!("{}?{query}", runtime.config.login_path)
}

/// What to do about unmet security restrictions, one sentence each.
pub(crate) fn restriction_advice(org: &str, restrictions: &[String]) -> String {
    restrictions
        .iter()
        .map(|r| match r.as_str() {
            "mfa" => "enable two-factor authentication on your Hugging Face account \
                      (https://huggingface.co/settings/authentication)"
                .to_owned(),
            "sso" => format!(
                "sign in with the single sign-on of `{org}` (open https://huggingface.co/{org} \
                 and follow its SSO prompt)"
            ),
            "ip" => format!("connect from a network that `{org}` allows"),
            "token-policy" => format!(
                "use an access token that meets the token policy of `{org}` \
                 (https://huggingface.co/settings/tokens)"
            ),
            other => format!(
                "meet the organization's `{}` requirement",
                other
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(40)
                    .collect::<String>()
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `{login path}?return_to=…` for a sign-in or retry link.
pub(crate) fn login_href(runtime: &Runtime, return_to: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    format!("{}?{query}", runtime.config.login_path)
}

/// `{login path}?return_to=…&scope=…`: sign in again asking for more scopes.
pub(crate) fn consent_href(runtime: &Runtime, return_to: &str, scope: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .append_pair("scope", scope)
        .finish();
    format!("{}?{query}", runtime.config.login_path)
}

/// The error of a guard or extractor that found no [`HfAuthLayer`](crate::HfAuthLayer)
/// around it (logged: it is the app's mistake, not the caller's).
pub(crate) fn missing_layer_error() -> AuthError {
    let err = AuthError::new(
        AuthErrorKind::MissingLayer,
        "HfAuthLayer is missing: add `.layer(HfAuthLayer::new(config))` around the routes \
         or services that use a guard or read HfUser",
    );
    tracing::error!("{err}");
    err
}

/// [`missing_layer_error`] answered in the caller's protocol.
pub(crate) fn missing_layer(caller: Caller) -> Response<Body> {
    error(caller, missing_layer_error(), None)
}

/// What "not signed in" tells a program: why the bearer token it sent failed, or how to
/// sign in (a `/login` link means nothing to a gRPC client). `login` is the sign-in
/// link for API callers.
pub(crate) fn not_signed_in_message(
    runtime: &Runtime,
    extensions: &http::Extensions,
    caller: Caller,
    login: &str,
) -> String {
    if extensions.get::<BearerRejected>().is_some() {
        return "Hugging Face did not accept the bearer token: it is invalid, expired or revoked"
            .to_owned();
    }
    match (caller, runtime.bearer.is_some()) {
        (Caller::Grpc, true) => "Sign in with Hugging Face first: send `authorization: Bearer \
                                 <token>` with a Hugging Face access token"
            .to_owned(),
        (Caller::Grpc, false) => {
            "Sign in with Hugging Face first: this service accepts signed-in sessions only"
                .to_owned()
        }
        (_, true) => format!(
            "Sign in with Hugging Face first ({login}), or send `Authorization: Bearer \
             <token>` with a Hugging Face access token"
        ),
        (_, false) => format!("Sign in with Hugging Face first: {login}"),
    }
}

/// The answer to a denied request, in the caller's protocol. `here` is the request's
/// path and query, already made a safe return path.
pub(crate) fn deny(
    runtime: &Runtime,
    caller: Caller,
    here: &str,
    extensions: &http::Extensions,
    denial: Denial,
) -> Response<Body> {
    // A session the store could not read: not a reason to sign in again.
    if extensions.get::<StoreUnavailable>().is_some() && extensions.get::<HfUser>().is_none() {
        return super::store_unavailable(caller);
    }
    crate::observe::denied(denial.kind().code());
    match denial {
        Denial::NotSignedIn => not_signed_in(runtime, caller, here, extensions),
        Denial::MissingScopes(missing) => {
            missing_scopes(runtime, caller, here, extensions.get::<HfUser>(), &missing)
        }
        Denial::Org { org, role, why } => org_denied(runtime, caller, here, &org, role, why),
        Denial::Predicate(name) => {
            let err = AuthError::new(AuthErrorKind::Forbidden, format!("This needs {name}."));
            error(caller, err, None)
        }
    }
}

fn org_denied(
    runtime: &Runtime,
    caller: Caller,
    here: &str,
    org: &str,
    role: Option<OrgRole>,
    why: OrgShortfall,
) -> Response<Body> {
    let needed = role.map_or_else(
        || format!("membership of the organization `{org}`"),
        |r| format!("the `{r}` role (or higher) in the organization `{org}`"),
    );
    let (kind, detail) = match why {
        OrgShortfall::NotMember => (
            AuthErrorKind::OrgRequired,
            format!(
                "Hugging Face does not list you as a member of `{org}` with access. If you \
                 joined since, sign in again: access to an organization is granted on \
                 Hugging Face's consent screen."
            ),
        ),
        OrgShortfall::NotGranted => (
            AuthErrorKind::OrgRequired,
            format!(
                "You are a member of `{org}`, but this app was not granted access to it on \
                 Hugging Face's consent screen: sign in again and grant it. If Hugging Face \
                 signs you in without asking, it is remembering your earlier choice: remove \
                 this app at {CONNECTED_APPS}, then sign in again."
            ),
        ),
        OrgShortfall::RoleTooLow(have) => (
            AuthErrorKind::OrgRequired,
            format!(
                "Your role in `{org}` is `{have}`. If it changed since, sign in again \
                 (access to an organization is granted on Hugging Face's consent screen)."
            ),
        ),
        OrgShortfall::Restricted(restrictions) => (
            AuthErrorKind::OrgRestricted,
            format!(
                "`{org}` asks more of you before you may access it: {}. Then sign in again.",
                restriction_advice(org, &restrictions)
            ),
        ),
    };
    let err = AuthError::new(kind, format!("This needs {needed}. {detail}"));
    error(caller, err, Some(&org_consent_href(runtime, here, org)))
}

fn not_signed_in(
    runtime: &Runtime,
    caller: Caller,
    here: &str,
    extensions: &http::Extensions,
) -> Response<Body> {
    let login = login_href(runtime, here);
    if caller == Caller::Browser {
        return redirect(&login);
    }
    let err = AuthError::new(
        AuthErrorKind::Unauthenticated,
        not_signed_in_message(runtime, extensions, caller, &login),
    );
    let mut res = error(caller, err, None);
    if caller == Caller::Api {
        // RFC 6750 §3.1: say why a presented token did not sign anyone in.
        let invalid = if extensions.get::<BearerRejected>().is_some() {
            ", error=\"invalid_token\""
        } else {
            ""
        };
        let realm = runtime.config.public_url.replace(['"', '\\'], "");
        challenge(&mut res, &format!("Bearer realm=\"{realm}\"{invalid}"));
    }
    res
}

fn missing_scopes(
    runtime: &Runtime,
    caller: Caller,
    here: &str,
    user: Option<&HfUser>,
    missing: &[String],
) -> Response<Body> {
    let wanted = missing.join(" ");
    let retry = consent_href(runtime, here, &wanted);
    // Asked before and still not granted: explain instead of looping.
    let asked = user.is_some_and(|u| missing.iter().all(|m| u.asked_scopes().contains(m)));
    if caller == Caller::Browser && !asked {
        // Incremental consent: sign in again asking for the missing scopes too.
        return redirect(&retry);
    }
    let err = AuthError::new(
        AuthErrorKind::InsufficientScope,
        format!("This needs the scope(s) `{wanted}`, which were not granted."),
    );
    let mut res = error(caller, err, Some(&retry));
    if caller == Caller::Api {
        let scope = wanted.replace(['"', '\\'], "");
        challenge(
            &mut res,
            &format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
        );
    }
    res
}

/// Sets `WWW-Authenticate` (RFC 6750).
fn challenge(res: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}
