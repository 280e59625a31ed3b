//! The mock's accounts: users, their organizations, and the JSON shapes Hugging Face
//! serves about them (ID token claims, userinfo, whoami-v2).

use serde_json::{Map, Value, json};

use crate::user::OrgRole;

/// The public site the mock's profile and avatar URLs point to.
const HUB: &str = "https://huggingface.co";

/// A Hugging Face account known to a [`MockHfProvider`](super::MockHfProvider).
///
/// Only the username is required; everything else has a plausible default.
///
/// ```
/// use tower_hf_auth::OrgRole;
/// use tower_hf_auth::mock::{MockOrg, MockUser};
///
/// let dora = MockUser::new("dora")
///     .with_name("Dora Explorer")
///     .with_pro(true)
///     .add_org(MockOrg::new("maps").with_role(OrgRole::Write).with_plan(Some("team")))
///     .with_granted_scopes(Some(vec!["openid".into(), "profile".into()]));
/// assert_eq!(dora.username(), "dora");
/// assert_eq!(dora.sub().len(), 24);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockUser {
    pub(crate) username: String,
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) pro: bool,
    pub(crate) can_pay: bool,
    pub(crate) sub: String,
    pub(crate) website: String,
    pub(crate) orgs: Vec<MockOrg>,
    pub(crate) granted_scopes: Option<Vec<String>>,
    pub(crate) legacy_shape: bool,
}

impl MockUser {
    /// A user called `username`, with the username as full name, the email
    /// `<username>@example.com` (verified), not pro, cannot pay, no website, no orgs,
    /// granting every scope asked for, and a `sub` of 24 hex characters derived from the
    /// username (the same username always gets the same `sub`).
    #[must_use]
    pub fn new(username: impl Into<String>) -> Self {
        let username = username.into();
        Self {
            name: username.clone(),
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            pro: false,
            can_pay: false,
            sub: derived_sub("user", &username),
            website: String::new(),
            orgs: Vec::new(),
            granted_scopes: None,
            legacy_shape: false,
            username,
        }
    }

    /// The full name (`name` claim). Default: the username.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The email address, shown only with the `email` scope; `None` for an account
    /// without one. Default: `Some("<username>@example.com")`.
    #[must_use]
    pub fn with_email(mut self, email: Option<String>) -> Self {
        self.email = email;
        self
    }

    /// Whether the email is verified (`email_verified`). Default: `true`.
    #[must_use]
    pub fn with_email_verified(mut self, verified: bool) -> Self {
        self.email_verified = verified;
        self
    }

    /// Whether the user has a PRO subscription (`isPro`). Default: `false`.
    #[must_use]
    pub fn with_pro(mut self, pro: bool) -> Self {
        self.pro = pro;
        self
    }

    /// Whether the user can pay (`canPay`, shown only with `read-billing`).
    /// Default: `false`.
    #[must_use]
    pub fn with_can_pay(mut self, can_pay: bool) -> Self {
        self.can_pay = can_pay;
        self
    }

    /// The stable user id (`sub`). Default: 24 hex characters derived from the username.
    #[must_use]
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = sub.into();
        self
    }

    /// The user's website (`website`). Default: `""`, as Hugging Face sends it.
    #[must_use]
    pub fn with_website(mut self, website: impl Into<String>) -> Self {
        self.website = website.into();
        self
    }

    /// Adds an organization membership. Default: none.
    #[must_use]
    pub fn add_org(mut self, org: MockOrg) -> Self {
        self.orgs.push(org);
        self
    }

    /// Which scopes the user agrees to on the consent page: `None` grants everything
    /// requested, `Some(list)` grants only the requested scopes that are in `list`, like a
    /// user unticking boxes (`openid` is always granted). Default: `None`.
    #[must_use]
    pub fn with_granted_scopes(mut self, scopes: Option<Vec<String>>) -> Self {
        self.granted_scopes = scopes;
        self
    }

    /// Serve organizations in the older userinfo shape (`isEnterprise`, `pendingSSO`,
    /// `missingMFA` instead of `plan` and `securityRestrictions`). Default: `false`.
    #[must_use]
    pub fn with_legacy_shape(mut self, legacy: bool) -> Self {
        self.legacy_shape = legacy;
        self
    }

    /// The username (`preferred_username`).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The stable user id (`sub`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The scopes granted when `requested` is asked for: in request order, without
    /// duplicates, limited by [`with_granted_scopes`](Self::with_granted_scopes).
    /// Grants apps access to the organizations with these ids (the consent screen).
    pub(crate) fn grant_orgs<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        for id in ids {
            if let Some(org) = self.orgs.iter_mut().find(|o| o.sub == id) {
                org.granted = true;
            }
        }
    }

    pub(crate) fn grant<'a>(&self, requested: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut granted: Vec<String> = Vec::new();
        for scope in requested {
            let allowed = scope == "openid"
                || self
                    .granted_scopes
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|s| s == scope));
            if allowed && !granted.iter().any(|s| s == scope) {
                granted.push(scope.to_owned());
            }
        }
        granted
    }

    fn picture(&self) -> String {
        format!("{HUB}{}", self.avatar_path())
    }

    fn avatar_path(&self) -> String {
        format!("/avatars/{}.svg", self.sub)
    }

    /// The profile claims shared by the ID token and userinfo.
    pub(crate) fn profile_claims(&self, scopes: &[String]) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(self.sub));
        claims.insert("name".into(), json!(self.name));
        claims.insert("preferred_username".into(), json!(self.username));
        claims.insert("profile".into(), json!(format!("{HUB}/{}", self.username)));
        claims.insert("picture".into(), json!(self.picture()));
        claims.insert("website".into(), json!(self.website));
        if has_scope(scopes, "email")
            && let Some(email) = &self.email
        {
            claims.insert("email".into(), json!(email));
            claims.insert("email_verified".into(), json!(self.email_verified));
        }
        claims
    }

    /// The `/oauth/userinfo` document for a token with `scopes`.
    pub(crate) fn userinfo(&self, scopes: &[String]) -> Map<String, Value> {
        let mut info = self.profile_claims(scopes);
        info.insert("isPro".into(), json!(self.pro));
        if has_scope(scopes, "read-billing") {
            info.insert("canPay".into(), json!(self.can_pay));
        }
        let orgs = self
            .orgs
            .iter()
            .map(|org| org.userinfo(self.legacy_shape))
            .collect();
        info.insert("orgs".into(), Value::Array(orgs));
        info
    }

    /// The `/api/whoami-v2` document, with `auth` describing the token used.
    pub(crate) fn whoami(&self, show_email: bool, auth: Value) -> Value {
        let orgs: Vec<Value> = self.orgs.iter().map(MockOrg::whoami).collect();
        let mut doc = json!({
            "type": "user",
            "id": self.sub,
            "name": self.username,
            "fullname": self.name,
            "isPro": self.pro,
            "canPay": self.can_pay,
            "avatarUrl": self.avatar_path(),
            "orgs": orgs,
            "auth": auth,
        });
        if show_email {
            doc["email"] = json!(self.email);
            doc["emailVerified"] = json!(self.email_verified);
        }
        doc
    }
}

/// An organization membership of a [`MockUser`].
///
/// ```
/// use tower_hf_auth::OrgRole;
/// use tower_hf_auth::mock::MockOrg;
///
/// let org = MockOrg::new("acme")
///     .with_full_name("ACME Corp")
///     .with_role(OrgRole::Admin)
///     .with_plan(Some("enterprise"))
///     .with_security_restrictions(vec!["mfa".into()]);
/// assert_eq!(org.name(), "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOrg {
    pub(crate) name: String,
    pub(crate) full_name: String,
    pub(crate) sub: String,
    pub(crate) role: Option<String>,
    pub(crate) plan: Option<String>,
    pub(crate) security_restrictions: Vec<String>,
    /// Whether the user granted apps access to this organization on the consent screen.
    pub(crate) granted: bool,
}

impl MockOrg {
    /// An organization called `name`: full name = name, role `read`, no plan, no
    /// security restrictions, and a `sub` of 24 hex characters derived from the name.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            full_name: name.clone(),
            sub: derived_sub("org", &name),
            role: Some("read".to_owned()),
            plan: None,
            security_restrictions: Vec::new(),
            granted: true,
            name,
        }
    }

    /// Whether the user granted apps access to this organization on the consent screen.
    /// Default: `true`. When `false`, userinfo lists the organization without the
    /// user's role, `canPay` or security restrictions, as Hugging Face does, until a
    /// sign-in asks for it (`orgIds` with its id) and the user consents.
    #[must_use]
    pub fn with_granted(mut self, granted: bool) -> Self {
        self.granted = granted;
        self
    }

    /// The organization id (`sub`, what `orgIds` takes). Default: derived from the name.
    #[must_use]
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = sub.into();
        self
    }

    /// The user's role in the organization (`roleInOrg`). Default: [`OrgRole::Read`].
    #[must_use]
    pub fn with_role(mut self, role: OrgRole) -> Self {
        self.role = Some(role.as_str().to_owned());
        self
    }

    /// Leaves the role out (`roleInOrg` absent), as for an organization the user did not
    /// grant the app access to on the consent screen.
    #[must_use]
    pub fn without_role(mut self) -> Self {
        self.role = None;
        self
    }

    /// The organization's plan (`plan`, e.g. `team`, `enterprise`). Default: none.
    #[must_use]
    pub fn with_plan(mut self, plan: Option<&str>) -> Self {
        self.plan = plan.map(str::to_owned);
        self
    }

    /// Security restrictions the user has not satisfied (`securityRestrictions`: `mfa`,
    /// `sso`, `ip`, `token-policy`). Default: none.
    #[must_use]
    pub fn with_security_restrictions(mut self, restrictions: Vec<String>) -> Self {
        self.security_restrictions = restrictions;
        self
    }

    /// The display name (the org's `name` claim). Default: the organization name.
    #[must_use]
    pub fn with_full_name(mut self, full_name: impl Into<String>) -> Self {
        self.full_name = full_name.into();
        self
    }

    /// The organization name (`preferred_username`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The organization id (`sub`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    fn avatar_path(&self) -> String {
        format!("/avatars/{}.svg", self.sub)
    }

    fn userinfo(&self, legacy: bool) -> Value {
        let mut org = json!({
            "sub": self.sub,
            "name": self.full_name,
            "preferred_username": self.name,
            "picture": format!("{HUB}{}", self.avatar_path()),
        });
        if !self.granted {
            // Hugging Face says no more about an organization the app was not granted.
            return org;
        }
        if let Some(role) = &self.role {
            org["roleInOrg"] = json!(role);
        }
        let restricted = |what: &str| self.security_restrictions.iter().any(|r| r == what);
        if legacy {
            org["isEnterprise"] = json!(self.plan.as_deref() == Some("enterprise"));
            org["pendingSSO"] = json!(restricted("sso"));
            org["missingMFA"] = json!(restricted("mfa"));
        } else {
            if let Some(plan) = &self.plan {
                org["plan"] = json!(plan);
            }
            if !self.security_restrictions.is_empty() {
                org["securityRestrictions"] = json!(self.security_restrictions);
            }
        }
        org
    }

    fn whoami(&self) -> Value {
        let mut org = json!({
            "type": "org",
            "id": self.sub,
            "name": self.name,
            "fullname": self.full_name,
            "avatarUrl": self.avatar_path(),
            "isEnterprise": self.plan.as_deref() == Some("enterprise"),
        });
        if let Some(role) = &self.role {
            org["roleInOrg"] = json!(role);
        }
        if let Some(plan) = &self.plan {
            org["plan"] = json!(plan);
        }
        org
    }
}

/// The users a provider gets when none is added: `alice`, `bob` and `carol`.
pub(crate) fn default_users() -> Vec<MockUser> {
    let alice = MockUser::new("alice")
        .with_name("Alice Liddell")
        .with_pro(true)
        .with_can_pay(true)
        .with_email_verified(true)
        .with_website("https://example.com/alice")
        .add_org(
            MockOrg::new("acme")
                .with_full_name("ACME Corp")
                .with_role(OrgRole::Admin)
                .with_plan(Some("team")),
        )
        .add_org(
            MockOrg::new("huggingface")
                .with_full_name("Hugging Face")
                .with_role(OrgRole::Read),
        );
    let bob = MockUser::new("bob").with_name("Bob");
    let mut carol = MockUser::new("carol").with_name("Carol").add_org(
        MockOrg::new("acme")
            .with_full_name("ACME Corp")
            .with_role(OrgRole::Write)
            .with_plan(Some("team")),
    );
    for i in 0..40 {
        carol = carol.add_org(MockOrg::new(format!("org-{i:02}")).with_role(OrgRole::Read));
    }
    vec![alice, bob, carol]
}

fn has_scope(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope)
}

/// 24 hex characters derived from `kind` and `name`, stable across runs.
fn derived_sub(kind: &str, name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("tower-hf-auth mock {kind}:{name}").as_bytes(),
    );
    digest.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
