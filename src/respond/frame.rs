//! Headers every page of the crate's own carries, and the page that leads a browser out
//! of an iframe where its cookies are dropped.

use http::{HeaderValue, Response, header};

use super::page::html_escape;
use super::{AuthError, Body, Caller, error};

/// Adds the crate's own-page headers: `Content-Security-Policy: frame-ancestors …`
/// (`'self'`, plus `https://huggingface.co` for an app shown on a Space) and
/// `X-Content-Type-Options: nosniff`.
pub(crate) fn own_page(mut res: Response<Body>, frame_policy: &str) -> Response<Body> {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(frame_policy) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The answer to a sign-in that failed inside an iframe because the browser dropped the
/// app's cookies: a page whose main link opens `top_href` (the app's own public URL) at
/// the top level, where the app's cookies are first-party. After the first failure it
/// also offers to try again in the frame (`retry`); after the second it navigates at
/// the top level itself where the browser allows it (browsers may require a click from
/// a frame of another site; the link stays).
pub(crate) fn top_level_escape(
    err: AuthError,
    top_href: &str,
    retry: Option<&str>,
) -> Response<Body> {
    let top = html_escape(top_href);
    let mut res = error(Caller::Browser, err, None);
    let again = retry.map_or_else(String::new, |href| {
        format!(
            r#" <a id="retry-in-frame" href="{}">Try again here</a>"#,
            html_escape(href)
        )
    });
    // The script runs only after the second failure (no retry offered).
    let script = if retry.is_none() {
        format!(
            "<script>try{{window.top.location.href=\"{}\"}}catch(e){{}}</script>",
            top_href.replace(['"', '<', '>', '\\'], "")
        )
    } else {
        String::new()
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Sign in outside the frame</title><style>body{{font-family:system-ui,\
         sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         .button{{display:inline-block;padding:.5rem 1rem;background:#ffd21e;color:#000;\
         border-radius:.5rem;text-decoration:none}}</style></head><body>\
         <h1>Sign in outside the frame</h1><p id=\"why\">Your browser did not keep this \
         app's sign-in cookie while it is shown inside another page (browsers that block \
         third-party cookies, and private windows, do this). Open the app on its own to \
         sign in there.</p><p><a class=\"button\" id=\"top-level\" target=\"_top\" \
         href=\"{top}\">Open the app and sign in</a>{again}</p>{script}</body></html>"
    );
    *res.body_mut() = Body::from(page);
    res
}
