//! The operator console (`/console`): static files compiled into the binary,
//! so a node serves it without a build step or a file on disk. The page logs
//! in with an admin account and then calls the same HTTP API, with the same
//! permission checks, as any other client; these responses only carry the
//! files, under a Content-Security-Policy that allows no inline script or
//! style and no origin but this one.

use super::response::Response;

/// The console's files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("console/console.css"),
    ),
];

/// Same-origin only, nothing inline, no frames, no plugins, no forms posted
/// anywhere: the page talks to this server's API and nowhere else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /console` or `/console/` (`name` none or empty) or `GET
/// /console/<name>`: the file, or 404.
pub fn file(name: Option<&str>) -> Response {
    let name = match name {
        None | Some("") => "index.html",
        Some(name) => name,
    };
    match FILES.iter().find(|(n, _, _)| *n == name) {
        None => Response::status(404, "no such console file"),
        Some((_, content_type, bytes)) => {
            let mut r = Response::raw(200, bytes.to_vec())
                .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                .with_header("X-Content-Type-Options", "nosniff")
                .with_header("X-Frame-Options", "DENY")
                .with_header("Referrer-Policy", "no-referrer")
                .with_header("Cache-Control", "no-cache");
            r.content_type = content_type;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_the_policy_and_others_are_404() {
        for (name, content_type, bytes) in FILES {
            let r = file(Some(name));
            assert_eq!((r.status, r.content_type), (200, *content_type));
            assert_eq!(r.body, bytes.to_vec());
            assert!(r
                .headers
                .iter()
                .any(|(h, v)| *h == "Content-Security-Policy" && v == CONTENT_SECURITY_POLICY));
        }
        assert_eq!(file(None).body, file(Some("index.html")).body);
        assert_eq!(file(Some("../Cargo.toml")).status, 404);
        assert_eq!(file(Some("secret.js")).status, 404);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = String::from_utf8_lossy(FILES[0].2);
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("javascript:"));
        // No event handler attributes (`onclick=` and the like).
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            assert!(
                !html[i + 3 + name.len()..].starts_with('='),
                "inline handler on{name}"
            );
        }
        for tag in html.split("<script").skip(1) {
            assert!(tag.trim_start().starts_with("src="), "inline script: {tag}");
        }
    }
}
