//! The HTTP client of the Cases Insert endpoint: one multipart POST per payload.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::Url;

use super::Operation;
use super::classify::Attempt;
use super::token::Token;
use crate::mapping::Payload;

pub use crate::wolkvox::INSERT_PATH;
use crate::wolkvox::TOKEN_INFO_PATH;

/// A `--server` value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--server {given:?}: {reason}")]
pub struct ServerError {
    given: String,
    reason: String,
}

/// The insert endpoint for `--server`, a bare host (`crm0001.wolkvox.com`, https assumed)
/// or a base URL (`http://127.0.0.1:8080`).
pub fn insert_url(server: &str) -> Result<Url, ServerError> {
    let given = server.trim();
    let fail = |reason: String| ServerError {
        given: given.to_string(),
        reason,
    };
    let lower = given.to_ascii_lowercase();
    if lower.matches("://").count() > 1 {
        return Err(fail(
            "the scheme is written twice (a known cause of failed inserts): give the host alone, \
             e.g. crm0001.wolkvox.com"
                .into(),
        ));
    }
    let with_scheme = if lower.contains("://") {
        given.to_string()
    } else {
        format!("https://{given}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|e| fail(format!("not a host or URL ({e})")))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if let Some(number) = host
        .strip_prefix("sv")
        .and_then(|rest| rest.strip_suffix(".crmvox.com"))
    {
        return Err(fail(format!(
            "the sv*.crmvox.com hosts were turned off on 2024-11-30; use crm{number}.wolkvox.com"
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(fail(
                "plain http would send the token unencrypted; use https (plain http is only \
                 allowed to 127.0.0.1/localhost, for the simulator)"
                    .into(),
            ));
        }
        other => return Err(fail(format!("unsupported scheme {other:?}; use https"))),
    }
    if !url.path().ends_with(".php") {
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{INSERT_PATH}"));
    }
    Ok(url)
}

/// The CA roots compiled into the binary (webpki-root-certs, Mozilla's list).
fn bundled_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        // `from_der` only copies the bytes (rustls parses them when the client is built,
        // see the test below), so none is dropped here.
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok())
}

pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// How long making a connection may take: half of `--timeout`, at most 10 s. Strictly
/// less than the whole request's timeout, so a connection that cannot be made (a network
/// partition drops the SYN) ends as a connect failure, which proves nothing left and is
/// retried, and never as the request's timeout, which must count as maybe stored: with
/// both equal, the request's timer could win the race and a row that never left was
/// left `uncertain`.
pub fn connect_timeout(timeout: Duration) -> Duration {
    (timeout / 2).min(Duration::from_secs(10))
}

/// One HTTP client, with its keep-alive pool, for the whole run (its clones share it).
#[derive(Debug, Clone)]
pub struct Client {
    /// The HTTP client now in use, and how many times its pool was replaced.
    http: Arc<RwLock<(u64, reqwest::Client)>>,
    timeout: Duration,
    url: Url,
    /// The multipart boundary of this run's requests (random, so no value holds it).
    boundary: String,
    content_type: reqwest::header::HeaderValue,
}

impl Client {
    pub fn new(url: Url, timeout: Duration) -> Result<Client, reqwest::Error> {
        let http = http_client(&url, timeout)?;
        let boundary = format!("wolkvox-import-{:032x}", rand::random::<u128>());
        let content_type = reqwest::header::HeaderValue::from_str(&format!(
            "multipart/form-data; boundary={boundary}"
        ))
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("multipart/form-data"));
        Ok(Client {
            http: Arc::new(RwLock::new((0, http))),
            timeout,
            url,
            boundary,
            content_type,
        })
    }

    /// The HTTP client to send with, and its generation (for `distrust_pool`).
    fn http(&self) -> (u64, reqwest::Client) {
        let current = self.http.read().unwrap_or_else(|p| p.into_inner());
        (current.0, current.1.clone())
    }

    /// A request of generation `generation` got no answer (a timeout, a cut connection):
    /// the network may be gone, and with it every idle connection of the pool. A request
    /// written to one of those would be lost as well, after it left, so it would be
    /// `uncertain` too. Start a new pool instead: the next request must connect first, and
    /// a connection that cannot be made proves nothing left (it is retried). Through a
    /// partition, then, no more rows are left uncertain than there were requests in flight.
    fn distrust_pool(&self, generation: u64) {
        let mut current = self.http.write().unwrap_or_else(|p| p.into_inner());
        if current.0 != generation {
            return; // another request has replaced it already
        }
        match http_client(&self.url, self.timeout) {
            Ok(fresh) => {
                *current = (generation + 1, fresh);
                tracing::debug!("A request got no answer: new connections from now on.");
            }
            Err(e) => {
                tracing::warn!(%e, "Could not start a new connection pool; keeping the old one.")
            }
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// The reqwest client of a run: its timeouts, no redirects, no retries of its own, the
/// bundled CA roots.
fn http_client(url: &Url, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("wolkvox-import/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(connect_timeout(timeout))
        // A redirected POST could be replayed somewhere else: stop and tell the user.
        .redirect(reqwest::redirect::Policy::none())
        // Every retry is ours, decided by what the answer proves (`classify`): none
        // behind our back. (reqwest's default retries only HTTP/2 refusals, which we
        // do not speak, but it still copied every request in case.)
        .retry(reqwest::retry::never().max_retries_per_request(0))
        // Mozilla's roots beside the system's: a static binary in an empty container
        // has no system store (and rustls' platform verifier will not build a client
        // with no roots), while a system that has one, or SSL_CERT_FILE, still adds
        // its own roots (a private CA, a TLS-inspecting proxy).
        .tls_certs_merge(bundled_roots());
    if url.host_str().is_some_and(is_loopback) {
        // A proxy from the environment must not carry simulator traffic.
        builder = builder.no_proxy();
    }
    builder.build()
}

impl Client {
    /// The request body: the payload as `multipart/form-data` text parts, written in one
    /// buffer (reqwest's streamed `Form` cost more than the rest of a request's handling).
    /// `None` in the vanishing case that a value holds the boundary.
    fn body(&self, payload: &Payload) -> Option<Vec<u8>> {
        let form = ("form", payload.form());
        multipart_body(
            &self.boundary,
            payload.fields().chain(std::iter::once(form)),
        )
    }

    /// One request of `operation` for `payload`: an insert to the insert URL, an update to
    /// `cases/update.php` beside it.
    pub async fn send(&self, operation: Operation, token: &Token, payload: &Payload) -> Attempt {
        let url = match operation {
            Operation::Insert => self.url.clone(),
            Operation::Update => self.sibling("cases/update.php"),
        };
        self.post(url, token, payload).await
    }

    /// The API endpoint `tail` (`cases/update.php`) beside the insert endpoint.
    fn sibling(&self, tail: &str) -> Url {
        let mut url = self.url.clone();
        let path = url.path().to_string();
        let base = path
            .strip_suffix("cases/insert.php")
            .unwrap_or("/server/API/v2/");
        url.set_path(&format!("{base}{tail}"));
        url
    }

    async fn post(&self, url: Url, token: &Token, payload: &Payload) -> Attempt {
        self.exchange(url, token, |request| match self.body(payload) {
            Some(body) => request
                .header(reqwest::header::CONTENT_TYPE, self.content_type.clone())
                .body(body),
            None => {
                let mut form = reqwest::multipart::Form::new();
                for (name, value) in payload.fields() {
                    form = form.text(name, value.to_string());
                }
                request.multipart(form.text("form", payload.form().to_string()))
            }
        })
        .await
    }

    /// One `custom/delete.php` call for the cases `ids` (raw JSON, `multiple: true`).
    pub async fn delete_cases(&self, token: &Token, operation: &str, ids: &[String]) -> Attempt {
        let body = serde_json::json!({
            "operation": operation,
            "module": "cases",
            "multiple": true,
            "wolkvox-id": ids,
        });
        self.post_json("custom/delete.php", token, &body).await
    }

    /// One raw-JSON call of the endpoint `tail` (`custom/query.php`) beside the insert
    /// endpoint: the look-ups, deletes and contact inserts take JSON, not a form.
    pub async fn post_json(&self, tail: &str, token: &Token, body: &serde_json::Value) -> Attempt {
        let url = self.sibling(tail);
        self.exchange(url, token, |request| {
            request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
        })
        .await
    }

    /// Send the request `build` makes to `url` with `token`, and read its answer.
    async fn exchange(
        &self,
        url: Url,
        token: &Token,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Attempt {
        let mut secret = match reqwest::header::HeaderValue::from_str(token.expose()) {
            Ok(value) => value,
            Err(_) => {
                return Attempt::NotSent("the token holds characters a header cannot carry".into());
            }
        };
        // Marked sensitive, the value is redacted from the HTTP stack's debug output.
        secret.set_sensitive(true);
        let (generation, http) = self.http();
        let request = build(http.post(url).header("Wolkvox-Token", secret));
        let response = request.send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let failure = transport_failure(&e);
                if matches!(failure, Attempt::MaybeSent(_)) {
                    self.distrust_pool(generation);
                }
                return failure;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match response.text().await {
            Ok(body) => Attempt::Answer {
                status,
                body,
                retry_after,
            },
            Err(e) => {
                self.distrust_pool(generation);
                Attempt::MaybeSent(format!(
                    "HTTP {status}, then the body was cut: {}",
                    describe(&e)
                ))
            }
        }
    }
}

pub use super::classify::{TokenInfo, TokenInfoError};

impl Client {
    /// The token information endpoint beside the insert endpoint.
    fn token_info_url(&self, operation: &str) -> Url {
        let mut url = self.url.clone();
        let path = url.path().to_string();
        let base = path
            .strip_suffix("/cases/insert.php")
            .map(|b| format!("{b}/token/tokenInformation.php"))
            .unwrap_or_else(|| TOKEN_INFO_PATH.to_string());
        url.set_path(&base);
        url.query_pairs_mut()
            .clear()
            .append_pair("operation", operation);
        url
    }

    /// One call to the token information API (it costs one unit of quota).
    pub async fn token_info(
        &self,
        token: &Token,
        operation: &str,
    ) -> Result<TokenInfo, TokenInfoError> {
        let mut secret = reqwest::header::HeaderValue::from_str(token.expose())
            .map_err(|_| TokenInfoError::Rejected("malformed token".into()))?;
        secret.set_sensitive(true);
        let response = self
            .http()
            .1
            .get(self.token_info_url(operation))
            .header("Wolkvox-Token", secret)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    TokenInfoError::Unreachable(describe(&e))
                } else {
                    TokenInfoError::Unavailable(describe(&e))
                }
            })?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| TokenInfoError::Unavailable(describe(&e)))?;
        super::classify::token_info(status, &body)
    }
}

fn transport_failure(error: &reqwest::Error) -> Attempt {
    if error.is_connect() || error.is_builder() {
        Attempt::NotSent(describe(error))
    } else {
        Attempt::MaybeSent(describe(error))
    }
}

/// The error and its causes, without the URL's query (there is none) or any header.
fn describe(error: &reqwest::Error) -> String {
    // The kind only: the URL is the user's own --server and the cause chain follows.
    let mut text = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut"
    } else {
        "the request failed"
    }
    .to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Text parts as `multipart/form-data` (RFC 7578), in one buffer; `None` if a value
/// holds the boundary (the caller then lets reqwest pick another).
fn multipart_body<'n, 'v>(
    boundary: &str,
    parts: impl Iterator<Item = (&'n str, &'v str)>,
) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(1024);
    for (name, value) in parts {
        if value.contains(boundary) {
            return None;
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\"\r\n\r\n");
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_body_frames_each_part_and_refuses_a_value_holding_the_boundary() {
        let parts = [("operation", "op"), ("form", "{\"Ciudad\":\"Cúcuta\"}")];
        let body = multipart_body("XyZ", parts.into_iter()).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--XyZ\r\nContent-Disposition: form-data; name=\"operation\"\r\n\r\nop\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"form\"\r\n\r\n\
             {\"Ciudad\":\"Cúcuta\"}\r\n--XyZ--\r\n"
        );
        let holding = [("description", "see --XyZ above")];
        assert_eq!(multipart_body("XyZ", holding.into_iter()), None);
    }

    #[test]
    fn the_client_builds_with_every_bundled_root() {
        // The verifier parses each extra root and fails the build on a bad one.
        assert_eq!(
            bundled_roots().count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        let url = insert_url("crm0001.wolkvox.com").unwrap();
        assert!(Client::new(url, Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn a_connection_gets_less_time_than_the_whole_request() {
        for secs in [0.2, 1.0, 5.0, 19.0, 30.0, 600.0] {
            let timeout = Duration::from_secs_f64(secs);
            let connect = connect_timeout(timeout);
            assert!(connect < timeout, "{secs}");
            assert!(connect <= Duration::from_secs(10), "{secs}");
        }
        assert_eq!(
            connect_timeout(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            connect_timeout(Duration::from_secs(5)),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn a_bare_host_becomes_the_https_insert_url() {
        assert_eq!(
            insert_url("crm0001.wolkvox.com").unwrap().as_str(),
            "https://crm0001.wolkvox.com/server/API/v2/cases/insert.php"
        );
        assert_eq!(
            insert_url("http://127.0.0.1:8080/").unwrap().as_str(),
            "http://127.0.0.1:8080/server/API/v2/cases/insert.php"
        );
    }

    #[test]
    fn doubled_schemes_retired_hosts_and_plain_http_are_refused() {
        assert!(insert_url("https://https://crm0001.wolkvox.com").is_err());
        let e = insert_url("sv0001.crmvox.com").unwrap_err().to_string();
        assert!(e.contains("crm0001.wolkvox.com"), "{e}");
        assert!(insert_url("http://crm0001.wolkvox.com").is_err());
        assert!(insert_url("http://localhost:9/").is_ok());
        assert!(insert_url("http://[::1]:9/").is_ok());
    }
}
