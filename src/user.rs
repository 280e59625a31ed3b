//! The signed-in user: [`HfUser`], their organizations ([`HfOrg`], [`OrgRole`]) and the
//! scopes they granted ([`Scopes`]).
//!
//! [`HfAuthLayer`](crate::HfAuthLayer) inserts an `HfUser` into the extensions of every
//! request that carries a valid session. It is cheap to clone (one `Arc`), and its
//! access token is a [`Secret`] that never shows in `Debug` output.
//!
//! ```
//! use tower_hf_auth::{HfUser, OrgRole};
//!
//! fn describe(user: &HfUser) -> String {
//!     let admin_of: Vec<&str> = user
//!         .orgs()
//!         .iter()
//!         .filter(|org| org.role() >= Some(OrgRole::Admin))
//!         .map(|org| org.name())
//!         .collect();
//!     format!("@{} administers {admin_of:?}", user.username())
//! }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Secret, scope};

/// A role in a Hugging Face organization, ordered
/// `NoAccess < Read < Contributor < Write < Admin`.
///
/// `NoAccess` (`no_access`) is a member whom the organization gives no access: it never
/// satisfies a [`RequireOrg`](crate::RequireOrg) guard, not even `member`.
///
/// ```
/// use tower_hf_auth::OrgRole;
/// assert!(OrgRole::NoAccess < OrgRole::Read);
/// assert!(OrgRole::Read < OrgRole::Contributor);
/// assert!(OrgRole::Write < OrgRole::Admin);
/// assert_eq!("write".parse::<OrgRole>(), Ok(OrgRole::Write));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OrgRole {
    /// A member the organization gives no access (`no_access`).
    #[serde(rename = "no_access")]
    NoAccess,
    /// Can read the organization's private repositories.
    Read,
    /// Can open pull requests and discussions.
    Contributor,
    /// Can write to the organization's repositories.
    Write,
    /// Administers the organization.
    Admin,
}

impl OrgRole {
    /// The role as Hugging Face spells it (`no_access`, `read`, `contributor`, `write`,
    /// `admin`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAccess => "no_access",
            Self::Read => "read",
            Self::Contributor => "contributor",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OrgRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "no_access" => Ok(Self::NoAccess),
            "read" => Ok(Self::Read),
            "contributor" => Ok(Self::Contributor),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            _ => Err(UnknownRole),
        }
    }
}

/// A role name that is not one of `no_access`, `read`, `contributor`, `write`, `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownRole;

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown organization role")
    }
}

impl std::error::Error for UnknownRole {}

/// An unknown role string becomes `None`: it grants nothing, and never fails parsing.
fn lenient_role<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OrgRole>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.and_then(|r| r.parse().ok()))
}

/// `null` and absent both become the default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Where one of an organization's strings lies in the text it shares with the other
/// organizations of its profile: bytes `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// One of a profile's strings: a [`Span`] of a text it may share with the profile's
/// other strings. A decoded session's strings all share the one text the session codec
/// laid them out in, so opening a session allocates none of them (and dropping it
/// frees one text, not one string each); any other string has a text of its own.
#[derive(Clone)]
pub(crate) struct Text {
    text: Arc<str>,
    span: Span,
}

impl Text {
    /// The bytes `span` of `text`, when they are a string of it.
    pub(crate) fn of(text: &Arc<str>, span: Span) -> Option<Self> {
        let start = span.start as usize;
        text.get(start..start.checked_add(span.len as usize)?)?;
        Some(Self {
            text: text.clone(),
            span,
        })
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        let start = self.span.start as usize;
        // Checked when made: `of` takes only spans of the text, `From` the whole.
        self.text
            .get(start..start + self.span.len as usize)
            .unwrap_or_default()
    }
}

impl Default for Text {
    fn default() -> Self {
        // One shared empty text: a default profile (what a record is decoded into
        // before its profile) allocates nothing.
        static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "".into());
        Self {
            text: EMPTY.clone(),
            span: Span { start: 0, len: 0 },
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        let len = u32::try_from(s.len()).expect("a profile string under 4 GiB");
        Self {
            text: s.into(),
            span: Span { start: 0, len },
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        s.as_str().into()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        std::borrow::Cow::<'de, str>::deserialize(deserializer).map(|s| (*s).into())
    }
}

/// An organization's fields, with its strings as [`Span`]s of a shared text: what the
/// session codec decodes an organization into.
#[derive(Debug, Clone)]
pub(crate) struct OrgSpans {
    pub(crate) sub: Span,
    pub(crate) name: Span,
    pub(crate) full_name: Option<Span>,
    pub(crate) picture: Option<Span>,
    pub(crate) plan: Option<Span>,
    pub(crate) role: Option<OrgRole>,
    pub(crate) can_pay: Option<bool>,
    pub(crate) security_restrictions: Vec<String>,
}

/// An organization the user belongs to, as userinfo reports it.
///
/// Its strings live in one text shared (an `Arc`) by the organizations of the same
/// profile: a session with 40 organizations opens with one allocation for all their
/// names, ids and avatar URLs rather than one per string.
#[derive(Clone)]
pub struct HfOrg {
    text: Arc<str>,
    fields: OrgSpans,
}

/// An organization as userinfo's JSON has it, before its strings are laid out in one
/// text; older payload shapes are folded into the current one on the way.
#[derive(Deserialize)]
struct OrgJson {
    #[serde(default)]
    sub: String,
    #[serde(default, rename = "preferred_username")]
    name: String,
    #[serde(default, rename = "name")]
    full_name: Option<String>,
    #[serde(default)]
    picture: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default, rename = "roleInOrg", deserialize_with = "lenient_role")]
    role: Option<OrgRole>,
    #[serde(default, rename = "canPay")]
    can_pay: Option<bool>,
    #[serde(
        default,
        rename = "securityRestrictions",
        deserialize_with = "null_default"
    )]
    security_restrictions: Vec<String>,
    // Older payload shape: folded into `plan` / `security_restrictions`.
    #[serde(default, rename = "isEnterprise")]
    legacy_enterprise: Option<bool>,
    #[serde(default, rename = "pendingSSO")]
    legacy_pending_sso: Option<bool>,
    #[serde(default, rename = "missingMFA")]
    legacy_missing_mfa: Option<bool>,
}

impl<'de> Deserialize<'de> for HfOrg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut org = OrgJson::deserialize(d)?;
        if org.plan.is_none() && org.legacy_enterprise == Some(true) {
            org.plan = Some("enterprise".to_owned());
        }
        for (flag, name) in [
            (org.legacy_pending_sso, "sso"),
            (org.legacy_missing_mfa, "mfa"),
        ] {
            if flag == Some(true) && !org.security_restrictions.iter().any(|r| r == name) {
                org.security_restrictions.push(name.to_owned());
            }
        }
        let mut text = String::new();
        let mut put = |s: &str| {
            let span = Span {
                start: u32::try_from(text.len()).unwrap_or(u32::MAX),
                len: u32::try_from(s.len()).unwrap_or(u32::MAX),
            };
            text.push_str(s);
            span
        };
        let fields = OrgSpans {
            sub: put(&org.sub),
            name: put(&org.name),
            full_name: org.full_name.as_deref().map(&mut put),
            picture: org.picture.as_deref().map(&mut put),
            plan: org.plan.as_deref().map(&mut put),
            role: org.role,
            can_pay: org.can_pay,
            security_restrictions: org.security_restrictions,
        };
        if u32::try_from(text.len()).is_err() {
            return Err(serde::de::Error::custom("organization too large"));
        }
        Ok(Self {
            text: text.into(),
            fields,
        })
    }
}

/// The length of each distinct text behind `profile`'s strings and its
/// organizations' (a profile read from a session record has one for all; organizations
/// that share theirs sit next to each other). The shared empty text is not counted.
pub(crate) fn shared_texts(profile: &Profile) -> impl Iterator<Item = usize> + '_ {
    let orgs = &profile.orgs;
    let own = [
        Some(&profile.sub),
        Some(&profile.preferred_username),
        profile.name.as_ref(),
        profile.picture.as_ref(),
        profile.profile.as_ref(),
        profile.website.as_ref(),
        profile.email.as_ref(),
    ];
    let texts = move || {
        let own = own.into_iter().flatten().map(|t| &t.text);
        let orgs = orgs
            .iter()
            .enumerate()
            .filter(|&(i, org)| i == 0 || !Arc::ptr_eq(&orgs[i - 1].text, &org.text))
            .map(|(_, org)| &org.text);
        own.chain(orgs)
    };
    texts()
        .enumerate()
        .filter(move |&(i, text)| {
            !text.is_empty() && !texts().take(i).any(|t| Arc::ptr_eq(t, text))
        })
        .map(|(_, text)| text.len())
}

/// The same keys userinfo uses, so that what is serialized parses back unchanged.
impl Serialize for HfOrg {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("sub", self.id())?;
        map.serialize_entry("preferred_username", self.name())?;
        map.serialize_entry("name", &self.full_name())?;
        if let Some(picture) = self.avatar_url() {
            map.serialize_entry("picture", picture)?;
        }
        if let Some(plan) = self.plan() {
            map.serialize_entry("plan", plan)?;
        }
        if let Some(role) = self.role() {
            map.serialize_entry("roleInOrg", &role)?;
        }
        if let Some(can_pay) = self.can_pay() {
            map.serialize_entry("canPay", &can_pay)?;
        }
        if !self.security_restrictions().is_empty() {
            map.serialize_entry("securityRestrictions", self.security_restrictions())?;
        }
        map.end()
    }
}

impl PartialEq for HfOrg {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
            && self.name() == other.name()
            && self.full_name() == other.full_name()
            && self.avatar_url() == other.avatar_url()
            && self.plan() == other.plan()
            && self.role() == other.role()
            && self.can_pay() == other.can_pay()
            && self.security_restrictions() == other.security_restrictions()
    }
}

impl Eq for HfOrg {}

impl HfOrg {
    /// An organization whose strings are `fields`' spans of `text`. A span outside
    /// `text` or not on character boundaries reads as `""`.
    pub(crate) fn from_spans(text: Arc<str>, fields: OrgSpans) -> Self {
        Self { text, fields }
    }

    fn text(&self, span: Span) -> &str {
        let start = span.start as usize;
        let end = start.saturating_add(span.len as usize);
        self.text.get(start..end).unwrap_or_default()
    }

    /// The organization's stable id (its `sub`).
    #[must_use]
    pub fn id(&self) -> &str {
        self.text(self.fields.sub)
    }

    /// The organization's handle, as in `huggingface.co/{name}`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.text(self.fields.name)
    }

    /// The organization's display name, when it has one.
    #[must_use]
    pub fn full_name(&self) -> Option<&str> {
        self.fields.full_name.map(|s| self.text(s))
    }

    /// The organization's avatar URL.
    #[must_use]
    pub fn avatar_url(&self) -> Option<&str> {
        self.fields.picture.map(|s| self.text(s))
    }

    /// The organization's plan (`team`, `enterprise`, …), when reported.
    #[must_use]
    pub fn plan(&self) -> Option<&str> {
        self.fields.plan.map(|s| self.text(s))
    }

    /// The user's role in the organization. `None` when the user did not grant this
    /// app access to the organization, or the role is one this crate does not know.
    #[must_use]
    pub fn role(&self) -> Option<OrgRole> {
        self.fields.role
    }

    /// Whether the organization can pay, when reported (needs `read-billing`).
    #[must_use]
    pub fn can_pay(&self) -> Option<bool> {
        self.fields.can_pay
    }

    /// Security restrictions the organization imposes on this user and that they have
    /// not met yet (`mfa`, `sso`, `ip`, `token-policy`): until they are met, the user may
    /// not access the organization, and org guards refuse them.
    #[must_use]
    pub fn security_restrictions(&self) -> &[String] {
        &self.fields.security_restrictions
    }

    /// Whether the user may act in this organization at all: their role is not
    /// [`OrgRole::NoAccess`] and no security restriction is unmet.
    #[must_use]
    pub fn grants_access(&self) -> bool {
        self.fields.role != Some(OrgRole::NoAccess) && self.fields.security_restrictions.is_empty()
    }

    /// Lowers the role to at most `cap` (a bearer token that may do less than its user).
    pub(crate) fn cap_role(&mut self, cap: OrgRole) {
        if let Some(role) = self.fields.role {
            self.fields.role = Some(role.min(cap));
        }
    }
}

impl fmt::Debug for HfOrg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfOrg")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("role", &self.role())
            .field("plan", &self.plan())
            .finish_non_exhaustive()
    }
}

/// The scopes the user actually granted, which can be fewer than the app asked for.
///
/// Unknown scope strings are kept: Hugging Face adds scopes over time.
///
/// ```
/// use tower_hf_auth::Scopes;
/// let scopes = Scopes::parse("openid profile read-repos");
/// assert!(scopes.contains("read-repos"));
/// assert!(!scopes.contains("write-repos"));
/// assert_eq!(scopes.to_string(), "openid profile read-repos");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    /// The scopes in the order granted, each once, joined by single spaces: one
    /// allocation however many there are.
    text: String,
    /// The documented scopes among them, one bit each ([`scope::bit`]).
    known: u32,
}

impl Scopes {
    /// Parses a space-separated scope string, dropping duplicates.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        s.split_ascii_whitespace().collect()
    }

    /// Whether `scope` was granted.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// The scopes, in the order granted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        // No scope is empty, so an empty text holds none (`split` would yield "").
        self.text.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether no scope was granted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The documented scopes granted, one bit each ([`scope::bit`]).
    pub(crate) fn known_bits(&self) -> u32 {
        self.known
    }

    /// Bytes allocated for the scopes (their text's capacity; none when empty).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity()
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scopes")
            .field(&self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// A list of strings, as before the scopes were kept as one text.
impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(Self::from_iter)
    }
}

/// Empty strings are skipped, and so is a scope seen before. A scope is a single
/// token: one holding a space is taken as the scopes it separates.
impl<S: AsRef<str>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut scopes = ScopesBuilder::default();
        for s in iter {
            scopes.push_all(s.as_ref().as_bytes());
        }
        // Made of `str`s cut at spaces: UTF-8.
        scopes.finish().unwrap_or_default()
    }
}

impl Scopes {
    /// Scopes from tokens read as bytes (a session record's), as `FromIterator` takes
    /// them; `None` when a token could not be read, or unless they are UTF-8 (checked
    /// once for all).
    pub(crate) fn read<'a>(tokens: impl IntoIterator<Item = Option<&'a [u8]>>) -> Option<Self> {
        let mut scopes = ScopesBuilder::default();
        for token in tokens {
            scopes.push_all(token?);
        }
        scopes.finish()
    }
}

/// Scopes being gathered, as bytes.
#[derive(Default)]
struct ScopesBuilder {
    text: Vec<u8>,
    known: u32,
}

impl ScopesBuilder {
    /// Adds the scopes `item` holds, separated by spaces.
    fn push_all(&mut self, item: &[u8]) {
        if item.contains(&b' ') {
            item.split(|&b| b == b' ').for_each(|s| self.push(s));
        } else {
            self.push(item);
        }
    }

    /// Adds `scope` (a token: no space) unless it is empty or already there.
    fn push(&mut self, scope: &[u8]) {
        let bit = scope::bit_of_bytes(scope);
        let seen = match bit {
            Some(bit) => self.known & bit != 0,
            None => scope.is_empty() || self.text.split(|&b| b == b' ').any(|t| t == scope),
        };
        if seen {
            return;
        }
        if self.text.is_empty() {
            // Room for the usual few scopes at once, instead of growing by each.
            self.text.reserve(64);
        } else {
            self.text.push(b' ');
        }
        self.text.extend_from_slice(scope);
        self.known |= bit.unwrap_or(0);
    }

    fn finish(self) -> Option<Scopes> {
        Some(Scopes {
            text: String::from_utf8(self.text).ok()?,
            known: self.known,
        })
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A user profile as the userinfo endpoint returns it. Old and new payload shapes both
/// parse; unknown fields are ignored.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) sub: Text,
    #[serde(default)]
    pub(crate) preferred_username: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) picture: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) website: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email_verified: Option<bool>,
    #[serde(default, rename = "isPro", deserialize_with = "null_default")]
    pub(crate) is_pro: bool,
    #[serde(default, rename = "canPay", skip_serializing_if = "Option::is_none")]
    pub(crate) can_pay: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) orgs: Vec<HfOrg>,
}

impl Profile {
    /// Drops an empty website (organizations fold older payload shapes as they parse).
    pub(crate) fn normalize(&mut self) {
        if self.website.as_deref() == Some("") {
            self.website = None;
        }
    }
}

/// What a session holds: the profile, granted scopes and tokens.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    /// Stored apart from the rest, compressed (see `session::record`).
    #[serde(skip)]
    pub(crate) profile: Profile,
    pub(crate) scopes: Scopes,
    #[serde(serialize_with = "crate::secret::raw")]
    pub(crate) access_token: Secret,
    /// Access token expiry, Unix seconds.
    pub(crate) expires_at: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::raw_opt"
    )]
    pub(crate) refresh_token: Option<Secret>,
    /// The scopes asked for at sign-in, to tell "declined" from "never asked".
    #[serde(default)]
    pub(crate) asked: Scopes,
    /// When the profile was read from the provider, Unix seconds (0 in cookies made
    /// before this was recorded: re-read at once).
    #[serde(default)]
    pub(crate) profile_at: u64,
    /// Where the session lives in a server-side store (never in a cookie's record).
    #[serde(skip)]
    pub(crate) stored: Option<crate::ticket::Stored>,
}

/// The signed-in Hugging Face user, inserted into request extensions by
/// [`HfAuthLayer`](crate::HfAuthLayer).
///
/// Serializing an `HfUser` (e.g. as JSON for an API) never includes its tokens.
#[derive(Clone)]
pub struct HfUser(Arc<SessionRecord>, Option<Via>);

/// What put a user into a request: the layer's running parts, which guards and
/// extractors answer denials with. Opaque here (the `layer` module makes and reads it,
/// and this module stays a leaf); carried by the user so that a signed-in request holds
/// one extension, not a user and the layer's context.
pub(crate) type Via = Arc<dyn std::any::Any + Send + Sync>;

impl HfUser {
    pub(crate) fn from_record(record: SessionRecord) -> Self {
        Self(Arc::new(record), None)
    }

    /// This user, as put into a request by `via`.
    pub(crate) fn with_via(mut self, via: Via) -> Self {
        self.1 = Some(via);
        self
    }

    /// What put this user into the request, if the layer did.
    pub(crate) fn via(&self) -> Option<&Via> {
        self.1.as_ref()
    }

    pub(crate) fn record(&self) -> &SessionRecord {
        &self.0
    }

    /// The id of this session in the server-side store, for
    /// [`HfAuthLayer::revoke_session`](crate::HfAuthLayer::revoke_session): keyed
    /// hashes, not a secret. `None` for cookie sessions and bearer tokens.
    #[must_use]
    pub fn session_id(&self) -> Option<&str> {
        self.0.stored.as_ref().map(|s| s.handle.as_str())
    }

    /// The user's stable id (`sub`): 24 hex characters that survive renames.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0.profile.sub
    }

    /// The user's handle, as in `huggingface.co/{username}`.
    #[must_use]
    pub fn username(&self) -> &str {
        &self.0.profile.preferred_username
    }

    /// The user's full name, when set.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.0.profile.name.as_deref()
    }

    /// The user's avatar URL.
    #[must_use]
    pub fn avatar_url(&self) -> Option<&str> {
        self.0.profile.picture.as_deref()
    }

    /// The user's profile page URL.
    #[must_use]
    pub fn profile_url(&self) -> Option<&str> {
        self.0.profile.profile.as_deref()
    }

    /// The user's website, when set.
    #[must_use]
    pub fn website(&self) -> Option<&str> {
        self.0.profile.website.as_deref()
    }

    /// The user's email (needs the `email` scope).
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.0.profile.email.as_deref()
    }

    /// Whether the email is verified (`false` when unknown).
    #[must_use]
    pub fn email_verified(&self) -> bool {
        self.0.profile.email_verified.unwrap_or(false)
    }

    /// Whether the user has a PRO subscription.
    #[must_use]
    pub fn is_pro(&self) -> bool {
        self.0.profile.is_pro
    }

    /// Whether the user can pay, when reported (needs `read-billing`).
    #[must_use]
    pub fn can_pay(&self) -> Option<bool> {
        self.0.profile.can_pay
    }

    /// The organizations the user belongs to. Roles are only reported for organizations
    /// the user granted this app access to.
    #[must_use]
    pub fn orgs(&self) -> &[HfOrg] {
        &self.0.profile.orgs
    }

    /// The organization with handle `name`, if the user belongs to it.
    #[must_use]
    pub fn org(&self, name: &str) -> Option<&HfOrg> {
        self.orgs().iter().find(|o| o.name() == name)
    }

    /// The scopes the user granted.
    #[must_use]
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// Whether the user granted `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.contains(scope)
    }

    /// The scopes the app asked for when this session was made (the user may have
    /// granted fewer).
    #[must_use]
    pub fn asked_scopes(&self) -> &Scopes {
        &self.0.asked
    }

    /// The OAuth access token, for calling Hugging Face on the user's behalf.
    #[must_use]
    pub fn access_token(&self) -> &Secret {
        &self.0.access_token
    }

    /// When the access token (and so the session) expires.
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.expires_at)
    }
}

impl fmt::Debug for HfUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfUser")
            .field("id", &self.id())
            .field("username", &self.username())
            .field("scopes", &self.0.scopes)
            .field("orgs", &self.0.profile.orgs)
            .field("access_token", &self.0.access_token)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

/// The public view of a user: everything but the tokens.
impl Serialize for HfUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let p = &self.0.profile;
        let mut s = serializer.serialize_struct("HfUser", 13)?;
        s.serialize_field("id", &p.sub)?;
        s.serialize_field("username", &p.preferred_username)?;
        s.serialize_field("name", &p.name)?;
        s.serialize_field("avatar_url", &p.picture)?;
        s.serialize_field("profile_url", &p.profile)?;
        s.serialize_field("website", &p.website)?;
        s.serialize_field("email", &p.email)?;
        s.serialize_field("email_verified", &self.email_verified())?;
        s.serialize_field("is_pro", &p.is_pro)?;
        s.serialize_field("can_pay", &p.can_pay)?;
        s.serialize_field("orgs", &p.orgs)?;
        s.serialize_field("scopes", &self.0.scopes)?;
        s.serialize_field("expires_at", &self.0.expires_at)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Profile {
        let mut p: Profile = serde_json::from_str(json).expect("parses");
        p.normalize();
        p
    }

    #[test]
    fn current_shape_parses_with_roles_and_restrictions() {
        let p = parse(
            r#"{"sub":"0123456789abcdef01234567","name":"Alice","preferred_username":"alice",
            "profile":"https://huggingface.co/alice","picture":"https://x/a.png","website":"",
            "email":"a@x.org","email_verified":true,"isPro":true,"canPay":false,"unknown":{"deep":[1]},
            "orgs":[{"sub":"aa","name":"Acme Inc","preferred_username":"acme","picture":"p","plan":"team",
            "roleInOrg":"admin","securityRestrictions":["mfa"],"resourceGroups":[]},
            {"sub":"bb","name":"HF","preferred_username":"huggingface","picture":"p","roleInOrg":"owner"}]}"#,
        );
        assert_eq!(p.preferred_username, "alice");
        assert_eq!(p.website, None, "empty website is none");
        assert!(p.is_pro);
        assert_eq!(p.orgs[0].name(), "acme");
        assert_eq!(p.orgs[0].full_name(), Some("Acme Inc"));
        assert_eq!(p.orgs[0].role(), Some(OrgRole::Admin));
        assert_eq!(p.orgs[0].security_restrictions(), ["mfa"]);
        assert_eq!(p.orgs[1].role(), None, "unknown role grants nothing");
    }

    #[test]
    fn legacy_shape_is_folded_into_current() {
        let p = parse(
            r#"{"sub":"x","preferred_username":"bob","isPro":null,"orgs":[{"sub":"o","preferred_username":"corp",
            "isEnterprise":true,"pendingSSO":true,"missingMFA":true,"roleInOrg":"write"}]}"#,
        );
        let org = &p.orgs[0];
        assert_eq!(org.plan(), Some("enterprise"));
        assert_eq!(org.security_restrictions(), ["sso", "mfa"]);
        assert_eq!(org.role(), Some(OrgRole::Write));
        assert!(!p.is_pro);
    }

    #[test]
    fn user_serialization_and_debug_hide_tokens() {
        let record = SessionRecord {
            profile: parse(r#"{"sub":"x","preferred_username":"bob"}"#),
            scopes: Scopes::parse("openid profile"),
            access_token: Secret::new("hf_oauth_secret_value"),
            expires_at: 10,
            refresh_token: Some(Secret::new("refresh_secret_value")),
            asked: Scopes::parse("openid profile"),
            profile_at: u64::MAX / 2,
            stored: None,
        };
        let user = HfUser::from_record(record);
        let json = serde_json::to_string(&user).unwrap();
        let debug = format!("{user:?}");
        for text in [&json, &debug] {
            assert!(!text.contains("secret_value"), "{text}");
        }
        assert!(json.contains(r#""username":"bob""#));
        assert!(user.has_scope("profile"));
    }

    #[test]
    fn scopes_dedupe_and_keep_unknown() {
        let s = Scopes::parse("openid  openid brand-new-scope");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["openid", "brand-new-scope"]);
    }

    #[test]
    fn scopes_are_tokens_kept_once_in_order_and_serialized_as_a_list() {
        let s: Scopes = ["profile", "", "openid profile", " read-repos ", "openid"]
            .into_iter()
            .collect();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            ["profile", "openid", "read-repos"]
        );
        assert_eq!(s.to_string(), "profile openid read-repos");
        assert!(s.contains("openid") && s.contains("read-repos"));
        assert!(!s.contains("") && !s.contains("openid profile") && !s.contains("read"));
        assert_eq!(
            format!("{s:?}"),
            r#"Scopes(["profile", "openid", "read-repos"])"#
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"["profile","openid","read-repos"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), s);
        let none = Scopes::parse("  ");
        assert!(none.is_empty() && none.iter().next().is_none());
        assert_eq!(none, Scopes::default());
        assert_eq!(none.to_string(), "");
    }

    #[test]
    fn scopes_read_as_bytes_are_what_the_strings_make_or_nothing() {
        let tokens: [&[u8]; 4] = [b"openid", b"x-new", b"openid", b"read-repos email"];
        let read = Scopes::read(tokens.map(Some)).unwrap();
        assert_eq!(read, Scopes::parse("openid x-new read-repos email"));
        assert!(
            read.contains("email")
                && read.known_bits() == Scopes::parse("openid read-repos email").known_bits()
        );
        assert_eq!(
            Scopes::read([Some(&b"openid"[..]), None]),
            None,
            "a token not read"
        );
        assert_eq!(Scopes::read([Some(&b"caf\xc3"[..])]), None, "not UTF-8");
        assert_eq!(
            Scopes::read([Some("café".as_bytes())]).unwrap().to_string(),
            "café"
        );
    }
}
