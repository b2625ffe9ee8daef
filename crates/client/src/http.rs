//! The one place the library speaks HTTP: sends a request, reads the whole answer (status, the
//! headers the protocol uses, body), shows it to the [`Observer`] and turns error bodies into
//! [`OAuthError`]s.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{ErrorBody, OAuthError, error_chain};
use crate::{ClientError, Clock};

/// Per-request timeout. Long enough for a server that holds polls (long polling).
const HTTP_TIMEOUT: Duration = Duration::from_secs(90);
/// Answers larger than this are refused: no document of the protocol comes near it.
const MAX_BODY_BYTES: usize = 1 << 20;

/// One HTTP exchange as the library made it, for logging and narration. Secrets are already
/// masked: a `client_secret` form value and the credentials of an `Authorization` header read
/// `…`.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    /// The `Authorization` header with its credentials masked (`Basic …`), if one was sent.
    pub authorization: Option<String>,
    /// The form parameters sent, in order (empty for a GET).
    pub form: Vec<(String, String)>,
    pub status: u16,
    /// The response body as text (lossy UTF-8).
    pub response: String,
}

/// Sees every exchange the client makes (see [`crate::CibaClient::with_observer`]).
pub type Observer = Arc<dyn Fn(&Exchange) + Send + Sync>;

/// An answer read to the end.
#[derive(Debug)]
pub(crate) struct Answer {
    pub url: String,
    pub status: u16,
    pub body: Vec<u8>,
    pub request_id: Option<String>,
    /// `Retry-After` in seconds from now (RFC 9110 §10.2.3), as delay or HTTP date.
    pub retry_after: Option<u64>,
    /// `Cache-Control: max-age` in seconds, absent with `no-store`/`no-cache`.
    pub max_age: Option<u64>,
}

impl Answer {
    /// The body as `T` when the status is a success, else the OAuth error it carries.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if (200..300).contains(&self.status) {
            return serde_json::from_slice(&self.body).map_err(|e| ClientError::InvalidResponse {
                url: self.url.clone(),
                reason: format!("HTTP {}: {e}", self.status),
            });
        }
        Err(self.error())
    }

    /// The OAuth error of a failed answer, or why there is none.
    pub fn error(&self) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(body) => {
                let mut e = OAuthError::from_body(body, self.status, self.request_id.clone());
                e.retry_after = self.retry_after;
                e.into()
            }
            Err(_) => ClientError::InvalidResponse {
                url: self.url.clone(),
                reason: format!(
                    "HTTP {} without an OAuth error body{}",
                    self.status,
                    self.request_id
                        .as_deref()
                        .map(|id| format!(" [request id {id}]"))
                        .unwrap_or_default()
                ),
            },
        }
    }
}

pub(crate) fn default_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        // A redirect from a token endpoint is never right, and would resend credentials.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) fn http_err(url: &str, source: reqwest::Error) -> ClientError {
    let source = source.without_url();
    ClientError::Http {
        url: url.to_owned(),
        detail: error_chain(&source),
        source,
    }
}

/// What a request carries, for sending and for the observer.
pub(crate) struct Outgoing<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub authorization: Option<String>,
    pub form: Vec<(&'static str, String)>,
}

pub(crate) async fn send(
    http: &reqwest::Client,
    observer: Option<&Observer>,
    clock: &dyn Clock,
    out: Outgoing<'_>,
) -> Result<Answer, ClientError> {
    let url = out.url;
    let mut req = http.request(out.method.clone(), url);
    if out.method == reqwest::Method::POST {
        req = req.form(&out.form);
    }
    if let Some(h) = &out.authorization {
        req = req.header(reqwest::header::AUTHORIZATION, h);
    }
    let mut resp = req.send().await.map_err(|e| http_err(url, e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| http_err(url, e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ClientError::InvalidResponse {
                url: url.to_owned(),
                reason: format!("answer larger than {MAX_BODY_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let answer = Answer {
        url: url.to_owned(),
        status,
        request_id: header("x-request-id").map(str::to_owned),
        retry_after: header("retry-after").and_then(|v| parse_retry_after(v, clock.now_secs())),
        max_age: header("cache-control").and_then(parse_max_age),
        body,
    };
    if let Some(observe) = observer {
        observe(&Exchange {
            method: out.method.to_string(),
            url: url.to_owned(),
            authorization: out.authorization.as_deref().map(mask_authorization),
            form: out
                .form
                .iter()
                .map(|(k, v)| {
                    let v = if *k == "client_secret" {
                        "…"
                    } else {
                        v.as_str()
                    };
                    ((*k).to_owned(), v.to_owned())
                })
                .collect(),
            status,
            response: String::from_utf8_lossy(&answer.body).into_owned(),
        });
    }
    Ok(answer)
}

fn mask_authorization(h: &str) -> String {
    match h.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} …"),
        None => "…".to_owned(),
    }
}

/// RFC 9110 §10.2.3: `Retry-After` is a number of seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now_secs: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(u64::try_from(now_secs).unwrap_or(0)))
}

/// RFC 9111 §5.2.2: the freshness lifetime a response may be cached for; none when it must not
/// be stored or reused unchecked.
pub(crate) fn parse_max_age(value: &str) -> Option<u64> {
    let mut max_age = None;
    for directive in value.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return None;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse().ok();
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("7", 0), Some(7));
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(7)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn max_age_is_read_unless_storing_is_forbidden() {
        assert_eq!(parse_max_age("public, max-age=3600"), Some(3600));
        assert_eq!(parse_max_age("Max-Age=60"), Some(60));
        assert_eq!(parse_max_age("no-store"), None);
        assert_eq!(parse_max_age("max-age=60, no-cache"), None);
        assert_eq!(parse_max_age("private"), None);
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(mask_authorization("Basic YWJjOmRlZg=="), "Basic …");
        assert_eq!(mask_authorization("secret"), "…");
    }
}
