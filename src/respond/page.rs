//! The small HTML pages of the crate's own answers.

use super::AuthError;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for an error a browser gets, with a retry link when there is one.
pub(super) fn error_page(err: &AuthError, retry: Option<&str>) -> String {
    let retry = retry.map_or_else(String::new, |href| {
        format!(
            r#"<p><a class="button" href="{}">Try again</a></p>"#,
            html_escape(href)
        )
    });
    let status = err.status();
    let title = html_escape(status.canonical_reason().unwrap_or("Error"));
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:40rem;margin:4rem auto;padding:0 1rem}}code{{background:#eee}}\
         .button{{display:inline-block;padding:.5rem 1rem;background:#ffd21e;\
         color:#000;border-radius:.5rem;text-decoration:none}}</style></head><body>\
         <h1>Sign-in problem</h1><p>{}</p><p><small>Error code: <code>{}</code> \
         ({})</small></p>{retry}</body></html>",
        html_escape(err.message()),
        err.code(),
        status.as_u16(),
    )
}
