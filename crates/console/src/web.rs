//! HTTP for people: responses with the console's security headers,
//! cookies, strict form decoding and the same-origin check.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use maud::Markup;

pub use latchkey_webform::{Form, decode_path, encode};

pub type Reply = Response<Full<Bytes>>;

/// No inline script or style, nothing from another origin, no framing,
/// forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The session cookie. `__Host-`: only from this origin over HTTPS, for
/// the whole site, never for a parent domain.
pub const SESSION_COOKIE: &str = "__Host-latchkey-session";
/// The sign-in form's double-submit token, before any session exists.
pub const SIGNIN_COOKIE: &str = "__Host-latchkey-signin";

fn set(r: &mut Reply, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// The headers every console response carries.
pub fn secure(mut r: Reply) -> Reply {
    set(&mut r, "content-security-policy", CSP);
    set(&mut r, "x-frame-options", "DENY");
    set(&mut r, "referrer-policy", "same-origin");
    set(&mut r, "x-content-type-options", "nosniff");
    set(&mut r, "cross-origin-opener-policy", "same-origin");
    set(&mut r, "cross-origin-resource-policy", "same-origin");
    set(&mut r, "strict-transport-security", "max-age=31536000");
    if !r.headers().contains_key("cache-control") {
        set(&mut r, "cache-control", "no-store");
    }
    r
}

fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    set(&mut r, "content-type", content_type);
    secure(r)
}

pub fn html(status: StatusCode, page: Markup) -> Reply {
    with_body(
        status,
        "text/html; charset=utf-8",
        Bytes::from(page.into_string()),
    )
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    with_body(status, "application/json", Bytes::from(value.to_string()))
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    with_body(status, "text/plain; charset=utf-8", body.into())
}

/// `Link: <url>; rel="next"`: where the next page of a download starts.
pub fn with_next(mut r: Reply, url: &str) -> Reply {
    set(&mut r, "link", &format!("<{url}>; rel=\"next\""));
    r
}

/// A file to save (`Content-Disposition: attachment`).
pub fn download(content_type: &'static str, name: &str, body: String) -> Reply {
    let mut r = with_body(StatusCode::OK, content_type, Bytes::from(body));
    set(
        &mut r,
        "content-disposition",
        &format!("attachment; filename=\"{name}\""),
    );
    r
}

/// A static asset, cacheable for an hour.
pub fn asset(content_type: &'static str, body: &'static str) -> Reply {
    let mut r = with_body(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    set(&mut r, "cache-control", "public, max-age=3600");
    r
}

/// `303 See Other` to `location` (a path on this site).
pub fn redirect(location: &str) -> Reply {
    let mut r = with_body(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
    set(&mut r, "location", location);
    r
}

/// Adds a `Set-Cookie` for `name` (`None`: delete it).
pub fn cookie(mut r: Reply, name: &str, value: Option<&str>) -> Reply {
    let header = match value {
        Some(v) => format!("{name}={v}; Path=/; Secure; HttpOnly; SameSite=Strict"),
        None => format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    if let Ok(v) = HeaderValue::from_str(&header) {
        r.headers_mut().append(hyper::header::SET_COOKIE, v);
    }
    r
}

/// The value of cookie `name` in the request, if sent once
/// ([`latchkey_webform::cookie`]).
pub fn read_cookie<'a>(parts: &'a hyper::http::request::Parts, name: &str) -> Option<&'a str> {
    latchkey_webform::cookie(
        parts
            .headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok()),
        name,
    )
}

/// Whether a state-changing request comes from a page of this console:
/// browsers send `Sec-Fetch-Site` and `Origin` with every form; each that
/// is there must say this origin, and one must be there (fail closed).
/// The CSRF token is checked besides.
pub fn same_origin(parts: &hyper::http::request::Parts) -> bool {
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let site = header("sec-fetch-site");
    if site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    match header("origin") {
        None => site.is_some(),
        Some(origin) => {
            let host = header("host")
                .map(str::to_owned)
                .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
            host.is_some_and(|h| origin == format!("https://{h}"))
        }
    }
}

/// The query string of a request, as a form.
pub fn query(parts: &hyper::http::request::Parts) -> Form {
    Form::parse(parts.uri.query().unwrap_or("").as_bytes()).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> hyper::http::request::Parts {
        let mut b = hyper::Request::builder().uri("/console");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cookies_are_read_once_and_twice_is_none() {
        let p = parts(&[("cookie", "x=1; __Host-latchkey-session=abc")]);
        assert_eq!(read_cookie(&p, SESSION_COOKIE), Some("abc"));
        let p = parts(&[
            ("cookie", "__Host-latchkey-session=abc"),
            ("cookie", "__Host-latchkey-session=evil"),
        ]);
        assert_eq!(read_cookie(&p, SESSION_COOKIE), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        // Neither header: not a form from a browser page.
        assert!(!same_origin(&parts(&[("host", "lk:7443")])));
        assert!(same_origin(&parts(&[
            ("host", "lk:7443"),
            ("origin", "https://lk:7443")
        ])));
        assert!(same_origin(&parts(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&parts(&[("sec-fetch-site", "none")])));
        assert!(same_origin(&parts(&[
            ("host", "lk:7443"),
            ("origin", "https://lk:7443"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&parts(&[
            ("host", "lk:7443"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&parts(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&parts(&[("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn every_response_carries_the_headers() {
        let r = redirect("/console");
        assert_eq!(r.headers()["content-security-policy"], CSP);
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let r = cookie(r, SESSION_COOKIE, Some("v"));
        let c = r.headers()["set-cookie"].to_str().unwrap();
        assert!(
            c.starts_with("__Host-latchkey-session=v; Path=/; Secure; HttpOnly; SameSite=Strict")
        );
    }
}
