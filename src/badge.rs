//! The official "Sign in with Hugging Face" badge as a sign-in link, and a small
//! sign-in/sign-out widget built on it.
//!
//! The badges are the images Hugging Face publishes for this purpose (sizes `sm`, `md`,
//! `lg`, `xl`, each light and dark), loaded from
//! `https://huggingface.co/datasets/huggingface/badges/resolve/main/`. The link goes to
//! the app's `/login?return_to=…` (the return path made safe). For an app shown in an
//! iframe (on a Space) the link opens the app's own public URL at the top level
//! (`target="_top"`): sign-in happens outside the frame, as Hugging Face's own clients
//! do it, and the app's cookies are first-party there.
//!
//! ```
//! use tower_hf_auth::badge::{BadgeSize, SignInBadge};
//!
//! let config = tower_hf_auth::HfAuthConfig::builder()
//!     .with_client_id("id")
//!     .with_public_url("http://127.0.0.1:7860")
//!     .build()?;
//! let html = SignInBadge::new()
//!     .with_size(BadgeSize::Lg)
//!     .with_dark(true)
//!     .with_return_to("/repos")
//!     .to_html(&config);
//! assert!(html.contains(r#"href="/login?return_to=%2Frepos""#));
//! assert!(html.contains("sign-in-with-huggingface-lg-dark.svg"));
//! assert!(html.contains(r#"alt="Sign in with Hugging Face""#));
//! # Ok::<(), tower_hf_auth::ConfigError>(())
//! ```

use crate::config::HfAuthConfig;
use crate::flow::return_to;
use crate::respond::html_escape;
use crate::user::HfUser;

/// Where the official badges live.
const BADGE_BASE: &str = "https://huggingface.co/datasets/huggingface/badges/resolve/main";

/// The size of the official badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BadgeSize {
    /// `sm`.
    Sm,
    /// `md`.
    Md,
    /// `lg` (the default).
    #[default]
    Lg,
    /// `xl`.
    Xl,
}

impl BadgeSize {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sm => "sm",
            Self::Md => "md",
            Self::Lg => "lg",
            Self::Xl => "xl",
        }
    }
}

/// The official "Sign in with Hugging Face" badge, linking to the app's sign-in route.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SignInBadge {
    size: BadgeSize,
    dark: bool,
    return_to: Option<String>,
}

impl SignInBadge {
    /// A large, light badge returning to `/` after sign-in.
    pub fn new() -> Self {
        Self::default()
    }

    /// The badge's size. Default [`BadgeSize::Lg`].
    ///
    /// ```
    /// let b = tower_hf_auth::badge::SignInBadge::new().with_size(tower_hf_auth::badge::BadgeSize::Sm);
    /// ```
    pub fn with_size(mut self, size: BadgeSize) -> Self {
        self.size = size;
        self
    }

    /// The dark variant, for dark pages. Default: light.
    ///
    /// ```
    /// let b = tower_hf_auth::badge::SignInBadge::new().with_dark(true);
    /// ```
    pub fn with_dark(mut self, dark: bool) -> Self {
        self.dark = dark;
        self
    }

    /// Where the browser goes after signing in: a local path (anything else becomes
    /// `/`). Default `/`.
    ///
    /// ```
    /// let b = tower_hf_auth::badge::SignInBadge::new().with_return_to("/repos");
    /// ```
    pub fn with_return_to(mut self, path: impl Into<String>) -> Self {
        self.return_to = Some(path.into());
        self
    }

    /// The official image's URL.
    #[must_use]
    pub fn image_url(&self) -> String {
        let dark = if self.dark { "-dark" } else { "" };
        format!(
            "{BADGE_BASE}/sign-in-with-huggingface-{}{dark}.svg",
            self.size.as_str()
        )
    }

    /// The sign-in URL the badge links to, for `config`: relative, or the public URL's
    /// in iframe mode.
    #[must_use]
    pub fn href(&self, config: &HfAuthConfig) -> String {
        let return_to = return_to::sanitize(self.return_to.as_deref().unwrap_or("/"));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .finish();
        let base = if config.iframe_cookies() {
            config.public_url()
        } else {
            ""
        };
        format!("{base}{}?{query}", config.login_path())
    }

    /// The badge as an HTML link (`<a class="hf-sign-in" …><img …></a>`), escaped.
    #[must_use]
    pub fn to_html(&self, config: &HfAuthConfig) -> String {
        let target = if config.iframe_cookies() {
            r#" target="_top""#
        } else {
            ""
        };
        format!(
            r#"<a class="hf-sign-in" href="{}"{target}><img src="{}" alt="Sign in with Hugging Face"></a>"#,
            html_escape(&self.href(config)),
            html_escape(&self.image_url()),
        )
    }
}

/// Escapes text for HTML element content and attribute values (`&`, `<`, `>`, `"`,
/// `'`), for pages that show user data next to the widget.
///
/// ```
/// assert_eq!(tower_hf_auth::badge::escape_html("<b>\"Al\"</b>"), "&lt;b&gt;&quot;Al&quot;&lt;/b&gt;");
/// ```
#[must_use]
pub fn escape_html(text: &str) -> String {
    html_escape(text)
}

/// A small account widget: the badge when nobody is signed in; otherwise the avatar,
/// the name and a sign-out link.
///
/// ```
/// # let config = tower_hf_auth::HfAuthConfig::builder()
/// #     .with_client_id("id").with_public_url("http://127.0.0.1:1").build().unwrap();
/// let html = tower_hf_auth::badge::account_widget(&config, None, "/");
/// assert!(html.contains("sign-in-with-huggingface"));
/// ```
#[must_use]
pub fn account_widget(config: &HfAuthConfig, user: Option<&HfUser>, return_to: &str) -> String {
    let Some(user) = user else {
        let badge = SignInBadge::new().with_return_to(return_to).to_html(config);
        return format!(r#"<div class="hf-account">{badge}</div>"#);
    };
    let avatar = user.avatar_url().map_or_else(String::new, |src| {
        format!(
            r#"<img class="hf-avatar" src="{}" alt="" width="32" height="32"> "#,
            html_escape(src)
        )
    });
    format!(
        r#"<div class="hf-account">{avatar}<span class="hf-name">{}</span> <span class="hf-handle">@{}</span> · <a class="hf-sign-out" href="{}">Sign out</a></div>"#,
        html_escape(user.name().unwrap_or(user.username())),
        html_escape(user.username()),
        html_escape(&config.logout_path),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public: &str, iframe: bool) -> HfAuthConfig {
        HfAuthConfig::builder()
            .with_client_id("id")
            .with_public_url(public)
            .with_iframe_cookies(iframe)
            .build()
            .unwrap()
    }

    #[test]
    fn every_official_variant_has_its_image() {
        for (size, name) in [
            (BadgeSize::Sm, "sm"),
            (BadgeSize::Md, "md"),
            (BadgeSize::Lg, "lg"),
            (BadgeSize::Xl, "xl"),
        ] {
            let light = SignInBadge::new().with_size(size).image_url();
            assert_eq!(
                light,
                format!("{BADGE_BASE}/sign-in-with-huggingface-{name}.svg")
            );
            let dark = SignInBadge::new()
                .with_size(size)
                .with_dark(true)
                .image_url();
            assert!(dark.ends_with(&format!("-{name}-dark.svg")), "{dark}");
        }
    }

    #[test]
    fn hostile_return_paths_become_home_and_text_is_escaped() {
        let c = config("http://127.0.0.1:1", false);
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "javascript:x",
        ] {
            let html = SignInBadge::new().with_return_to(bad).to_html(&c);
            assert!(
                html.contains(r#"href="/login?return_to=%2F""#),
                "{bad}: {html}"
            );
        }
        let html = SignInBadge::new()
            .with_return_to("/a?b=1&c=\"x\"")
            .to_html(&c);
        assert!(!html.contains("\"x\""), "{html}");
        assert!(!html.contains("target="), "no frame, no target");
    }

    #[test]
    fn in_iframe_mode_the_badge_opens_the_public_url_at_the_top() {
        let c = config("https://alice-app.hf.space", true);
        let html = SignInBadge::new().to_html(&c);
        assert!(
            html.contains(r#"href="https://alice-app.hf.space/login?return_to=%2F" target="_top""#),
            "{html}"
        );
    }
}
