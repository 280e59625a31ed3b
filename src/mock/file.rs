//! The mock's users from a JSON file, so teams can sign in as their own users and
//! organizations in local development and tests without writing Rust.
//!
//! ```json
//! {"users": [
//!   {"username": "dora", "name": "Dora Explorer", "email": "dora@example.com",
//!    "pro": true, "orgs": [
//!      {"name": "maps", "role": "admin", "plan": "team"},
//!      {"name": "secret-lab", "role": "write", "security_restrictions": ["mfa"]},
//!      {"name": "elsewhere", "granted": false}
//!   ]}
//! ]}
//! ```
//!
//! Every field but `username` (and an org's `name`) is optional, with
//! [`MockUser`]'s and [`MockOrg`]'s defaults; unknown fields are errors, so a typo never
//! passes silently. Roles are `no_access`, `read`, `contributor`, `write` or `admin`.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::{MockOrg, MockUser};
use crate::user::OrgRole;

/// A users file that cannot be used: which file, where, and why. The file's format is
/// in the `src/mock/file.rs` docs and the README ("Testing against the offline provider").
#[derive(Debug)]
#[non_exhaustive]
pub struct MockUsersError {
    /// What went wrong, naming the field (e.g. `users[0].orgs[1].role`).
    pub message: String,
}

impl fmt::Display for MockUsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MockUsersError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    users: Vec<User>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    username: String,
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    pro: Option<bool>,
    can_pay: Option<bool>,
    sub: Option<String>,
    website: Option<String>,
    granted_scopes: Option<Vec<String>>,
    #[serde(default)]
    orgs: Vec<Org>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Org {
    name: String,
    full_name: Option<String>,
    sub: Option<String>,
    role: Option<String>,
    plan: Option<String>,
    #[serde(default)]
    security_restrictions: Vec<String>,
    granted: Option<bool>,
}

/// Parses a users file's text; `origin` names it in errors.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Vec<MockUser>, MockUsersError> {
    let fail = |message: String| MockUsersError {
        message: format!("{origin}: {message}"),
    };
    let file: File = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
    if file.users.is_empty() {
        return Err(fail("`users` lists no user".into()));
    }
    let mut users = Vec::with_capacity(file.users.len());
    for (i, user) in file.users.into_iter().enumerate() {
        let at = format!("users[{i}]");
        if user.username.trim().is_empty() {
            return Err(fail(format!("{at}.username is empty")));
        }
        if users.iter().any(|u: &MockUser| u.username == user.username) {
            return Err(fail(format!(
                "{at}.username `{}` appears twice",
                user.username
            )));
        }
        users.push(build_user(user, &at).map_err(fail)?);
    }
    Ok(users)
}

/// Reads and parses a users file.
pub(crate) fn read(path: &Path) -> Result<Vec<MockUser>, MockUsersError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MockUsersError {
        message: format!("{origin}: cannot read it: {e}"),
    })?;
    parse(&text, &origin)
}

fn build_user(user: User, at: &str) -> Result<MockUser, String> {
    let mut out = MockUser::new(user.username);
    if let Some(v) = user.name {
        out = out.with_name(v);
    }
    if user.email.is_some() {
        out = out.with_email(user.email);
    }
    if let Some(v) = user.email_verified {
        out = out.with_email_verified(v);
    }
    out = out
        .with_pro(user.pro.unwrap_or(false))
        .with_can_pay(user.can_pay.unwrap_or(false));
    if let Some(v) = user.sub {
        out = out.with_sub(v);
    }
    if let Some(v) = user.website {
        out = out.with_website(v);
    }
    out = out.with_granted_scopes(user.granted_scopes);
    for (j, org) in user.orgs.into_iter().enumerate() {
        out = out.add_org(build_org(org, &format!("{at}.orgs[{j}]"))?);
    }
    Ok(out)
}

fn build_org(org: Org, at: &str) -> Result<MockOrg, String> {
    if org.name.trim().is_empty() {
        return Err(format!("{at}.name is empty"));
    }
    let mut out = MockOrg::new(org.name);
    if let Some(v) = org.full_name {
        out = out.with_full_name(v);
    }
    if let Some(v) = org.sub {
        out = out.with_sub(v);
    }
    if let Some(role) = org.role {
        let role: OrgRole = role.parse().map_err(|_| {
            format!(
                "{at}.role `{role}` is not a role: use no_access, read, contributor, write \
                 or admin"
            )
        })?;
        out = out.with_role(role);
    }
    if org.plan.is_some() {
        out = out.with_plan(org.plan.as_deref());
    }
    for (k, r) in org.security_restrictions.iter().enumerate() {
        if !matches!(r.as_str(), "mfa" | "sso" | "ip" | "token-policy") {
            return Err(format!(
                "{at}.security_restrictions[{k}] `{r}` is not one of mfa, sso, ip, token-policy"
            ));
        }
    }
    out = out.with_security_restrictions(org.security_restrictions);
    Ok(out.with_granted(org.granted.unwrap_or(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_with_defaults_for_the_rest() {
        let users = parse(
            r#"{"users": [{"username": "dora", "name": "Dora", "pro": true, "orgs": [
                {"name": "maps", "role": "admin", "plan": "team"},
                {"name": "lab", "role": "no_access", "security_restrictions": ["mfa"]},
                {"name": "far", "granted": false}]},
               {"username": "eve"}]}"#,
            "users.json",
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        let dora = &users[0];
        assert_eq!(dora.username(), "dora");
        assert!(dora.pro);
        assert_eq!(dora.orgs[0].role.as_deref(), Some("admin"));
        assert_eq!(dora.orgs[1].role.as_deref(), Some("no_access"));
        assert_eq!(dora.orgs[1].security_restrictions, ["mfa"]);
        assert!(!dora.orgs[2].granted);
        assert_eq!(
            dora.orgs[2].role.as_deref(),
            Some("read"),
            "the default role"
        );
        assert_eq!(users[1].email.as_deref(), Some("eve@example.com"));
    }

    #[test]
    fn bad_files_name_the_field_and_what_to_do() {
        for (text, needle) in [
            (
                r#"{"users": [{"username": "a", "orgs": [{"name": "o", "role": "boss"}]}]}"#,
                "users[0].orgs[0].role `boss` is not a role",
            ),
            (
                r#"{"users": [{"username": "a", "rol": 1}]}"#,
                "unknown field `rol`",
            ),
            (
                r#"{"users": [{"username": ""}]}"#,
                "users[0].username is empty",
            ),
            (
                r#"{"users": [{"username": "a"}, {"username": "a"}]}"#,
                "`a` appears twice",
            ),
            (r#"{"users": []}"#, "lists no user"),
            (
                r#"{"users": [{"username": "a", "orgs": [{"name": "o",
                "security_restrictions": ["2fa"]}]}]}"#,
                "users[0].orgs[0].security_restrictions[0] `2fa`",
            ),
            ("not json", "users.json: expected"),
        ] {
            let err = parse(text, "users.json").unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
            assert!(err.starts_with("users.json: "), "{err}");
        }
    }
}
