//! HTTPS front: TLS, HTTP/1.1 and HTTP/2, one Query-protocol endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;
use crate::query::{MAX_BODY, Params, lower_first};
use latchkey_identity::AppState;

use crate::auth::SignedRequest;
use crate::xml::{IAM_NS, STS_NS, response};
use crate::{iam, sts, xml};
use latchkey_listen::accept_until;

/// A TLS handshake that has not finished by then is dropped (slowloris).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const STS_ACTIONS: &[&str] = &["GetCallerIdentity", "GetSessionToken", "AssumeRole"];

/// Timeouts and caps of the token service's connections (`serve`'s
/// `--api-*` options). Every refusal and timeout is counted in
/// `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// A request's headers must arrive within this, from its first byte
    /// (HTTP/1.1; over HTTP/2 control frames come at any time, and the
    /// idle timeout bounds a request that never completes its headers).
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this, from the end of its
    /// headers (a deadline for the body, not for each read).
    pub body_timeout: Duration,
    /// A connection with no request in progress is closed after this
    /// (between keep-alive requests, and before the first).
    pub idle_timeout: Duration,
    /// Connections open at once, in all; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one source address.
    pub max_connections_per_ip: usize,
    /// Also answer `GET /metrics` on the API port (unauthenticated); by
    /// default it is only on the metrics listener.
    pub metrics: bool,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_ip: 128,
            metrics: false,
        }
    }
}

/// Open connections, in all and by source address.
struct Caps {
    limits: ApiLimits,
    total: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<latchkey_identity::metrics::Metrics>,
}

/// A place among the open connections, given back on drop.
struct CapSlot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Caps {
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<CapSlot, &'static str> {
        let mut by_ip = self.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.limits.max_connections {
            return Err("total");
        }
        let here = by_ip.entry(ip).or_insert(0);
        if *here >= self.limits.max_connections_per_ip {
            return Err("per_ip");
        }
        *here += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        self.metrics.api_connections_open.inc();
        Ok(CapSlot {
            caps: self.clone(),
            ip,
        })
    }
}

impl Drop for CapSlot {
    fn drop(&mut self) {
        let mut by_ip = self.caps.by_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
        self.caps.total.fetch_sub(1, Ordering::Relaxed);
        self.caps.metrics.api_connections_open.dec();
    }
}

/// What one connection is doing, for its header and idle timeouts.
struct Activity {
    start: Instant,
    /// Requests in the handler now.
    busy: AtomicUsize,
    /// Milliseconds from `start` when the connection last fell idle.
    idle_since: AtomicU64,
    /// One more than the milliseconds from `start` when bytes arrived with
    /// no request in the handler (a request's headers on the way); 0 when
    /// none are pending.
    pending_since: AtomicU64,
    /// HTTP/1.1: bytes while idle are a request's headers.
    track_headers: bool,
}

impl Activity {
    fn new(track_headers: bool) -> Self {
        Self {
            start: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            pending_since: AtomicU64::new(0),
            track_headers,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes came in.
    fn read(&self) {
        if self.track_headers
            && self.busy.load(Ordering::Acquire) == 0
            && self.pending_since.load(Ordering::Acquire) == 0
        {
            self.pending_since
                .store(self.now_ms().saturating_add(1), Ordering::Release);
        }
    }

    /// A request reached the handler (its headers are in).
    fn enter(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.pending_since.store(0, Ordering::Release);
        Busy(self.clone())
    }

    /// Why the connection must close now, if it must.
    fn expired(&self, limits: &ApiLimits) -> Option<&'static str> {
        if self.busy.load(Ordering::Acquire) > 0 {
            // The handler bounds the body; answering is quick.
            return None;
        }
        let now = self.now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let pending = self.pending_since.load(Ordering::Acquire);
        if pending > 0 {
            return (now.saturating_sub(pending - 1) >= ms(limits.header_timeout))
                .then_some("header");
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        (now.saturating_sub(idle) >= ms(limits.idle_timeout)).then_some("idle")
    }
}

/// A request in the handler; the connection is idle again when the last
/// one is dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
        }
    }
}

/// A connection's stream, reporting reads to its [`Activity`].
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves with the reason once the connection's header or idle timeout
/// passes.
async fn watchdog(activity: &Activity, limits: &ApiLimits) -> &'static str {
    let tick = (limits.header_timeout.min(limits.idle_timeout) / 5)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Some(reason) = activity.expired(limits) {
            return reason;
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: ApiLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let caps = Arc::new(Caps {
        limits: limits.clone(),
        total: AtomicUsize::new(0),
        by_ip: Mutex::new(HashMap::new()),
        metrics: state.metrics.clone(),
    });
    let limits = Arc::new(limits);
    accept_until(listener, shutdown, |tcp, peer| {
        let slot = match caps.acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                // Closed before TLS: costs a file descriptor for no time.
                state.metrics.api_connection_refused(reason);
                tracing::debug!(%peer, cap = reason, "API connection refused");
                drop(tcp);
                return;
            }
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // A connection that never finishes its handshake is idle.
            let handshake = HANDSHAKE_TIMEOUT.min(limits.idle_timeout);
            let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.api_connection_timed_out("handshake");
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let activity = Arc::new(Activity::new(!h2));
            let io = Watched {
                inner: tls,
                activity: activity.clone(),
            };
            let service = {
                let (state, limits, activity) = (state.clone(), limits.clone(), activity.clone());
                hyper::service::service_fn(move |req| {
                    let busy = activity.enter();
                    let (state, limits) = (state.clone(), limits.clone());
                    async move {
                        let answer = handle(state, peer, req, &limits).await;
                        drop(busy);
                        answer
                    }
                })
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // The header and idle timeouts are the watchdog's (hyper's own
            // header timer also closes idle keep-alive connections).
            builder.http1().header_read_timeout(None);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                reason = watchdog(&activity, &limits) => {
                    state.metrics.api_connection_timed_out(reason);
                    tracing::debug!(%peer, reason, "API connection timed out");
                }
            }
        });
    })
    .await;
    Ok(())
}

fn xml_response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    r
}

/// `/metrics`, in Prometheus's text format.
fn metrics_response(state: &AppState) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(state.metrics.render())));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(latchkey_metrics::CONTENT_TYPE),
    );
    r
}

/// Serves `/metrics` in plain HTTP (for a Prometheus that does not scrape
/// HTTPS) until `shutdown` resolves.
pub async fn serve_metrics(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    accept_until(listener, shutdown, |tcp, _| {
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(if req.uri().path() == "/metrics" {
                        metrics_response(&state)
                    } else {
                        not_found()
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    })
    .await;
}

fn request_id() -> String {
    latchkey_audit::trail::uuid_text(latchkey_store::random::<16>().unwrap_or_default())
}

fn not_found() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
    limits: &ApiLimits,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let id = request_id();
    if req.method() == Method::GET && req.uri().path() == "/metrics" {
        // Unauthenticated: on the API port only when configured.
        return Ok(if limits.metrics {
            metrics_response(&state)
        } else {
            not_found()
        });
    }
    if req.method() != Method::POST && req.method() != Method::GET {
        return Ok(xml_response(
            405,
            xml::error(STS_NS, true, "InvalidAction", "Use POST or GET", &id),
        ));
    }
    let (parts, body) = req.into_parts();
    let collected =
        tokio::time::timeout(limits.body_timeout, Limited::new(body, MAX_BODY).collect()).await;
    let body = match collected {
        Ok(Ok(b)) => b.to_bytes(),
        Err(_) => {
            // A body trickled in: answer and close the connection.
            state.metrics.api_connection_timed_out("body");
            tracing::debug!(%peer, "request body timed out");
            let mut r = xml_response(
                408,
                xml::error(
                    STS_NS,
                    true,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                    &id,
                ),
            );
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return Ok(r);
        }
        Ok(Err(_)) => {
            return Ok(xml_response(
                413,
                xml::error(
                    STS_NS,
                    true,
                    "RequestEntityTooLarge",
                    "Request body too large",
                    &id,
                ),
            ));
        }
    };
    let user_agent = parts
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request_id = id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut call = Call::default();
        let result = dispatch(&state, &parts, &body, peer, &mut call);
        record_call(&state, call, &result, peer, user_agent, request_id);
        result
    })
    .await;
    Ok(match result {
        Ok(Ok((op, ns, body))) => xml_response(200, response(&op, ns, body, &id)),
        Ok(Err((ns, e))) => {
            // The precise reason stays in the server log.
            tracing::info!(request_id = %id, code = e.code, reason = e.reason.as_deref().unwrap_or(""), %peer, "request refused");
            xml_response(
                e.status,
                xml::error(ns, e.status < 500, e.code, &e.message, &id),
            )
        }
        Err(e) => {
            tracing::error!(request_id = %id, error = %e, "handler panicked");
            let e = ApiError::internal();
            xml_response(e.status, xml::error(STS_NS, false, e.code, &e.message, &id))
        }
    })
}

/// What the audit record of an API call needs, filled in as the call goes.
#[derive(Default)]
struct Call {
    action: Option<String>,
    sts: bool,
    access_key_id: Option<String>,
    identity: Option<latchkey_audit::Identity>,
    /// The signature verified and was presented for the first time
    /// ([`crate::auth::SignedCaller::possession_proven`]).
    possession_proven: bool,
    /// Request parameters other than `Action` and `Version`, secrets removed.
    parameters: Vec<(String, String)>,
}

/// Parameters that carry secrets never reach the trail: passwords, MFA
/// codes, tokens, and any SigV4 query parameter (`X-Amz-Signature`,
/// `X-Amz-Security-Token`...).
fn is_secret_parameter(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("x-amz-")
        || ["password", "secret", "token", "authenticationcode"]
            .iter()
            .any(|s| n.contains(s))
}

/// The text of the first `<tag>` in `xml`.
fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// CloudTrail's `responseElements`: only fields known to be safe
/// (identifiers, names and expiries) from known containers, never a secret
/// key or session token.
fn response_elements(xml: &str) -> Option<String> {
    const SAFE: &[(&str, &str)] = &[
        ("AccessKeyId", "accessKeyId"),
        ("Expiration", "expiration"),
        ("Arn", "arn"),
        ("AssumedRoleId", "assumedRoleId"),
        ("UserName", "userName"),
        ("UserId", "userId"),
        ("RoleName", "roleName"),
        ("RoleId", "roleId"),
        ("GroupName", "groupName"),
        ("PolicyName", "policyName"),
        ("Status", "status"),
        ("SerialNumber", "serialNumber"),
    ];
    const CONTAINERS: &[(&str, &str)] = &[
        ("Credentials", "credentials"),
        ("AssumedRoleUser", "assumedRoleUser"),
        ("AccessKey", "accessKey"),
        ("User", "user"),
        ("Role", "role"),
        ("Group", "group"),
        ("Policy", "policy"),
    ];
    let mut out = serde_json::Map::new();
    for (tag, key) in CONTAINERS {
        let Some(inner) = xml_field(xml, tag) else {
            continue;
        };
        let mut fields = serde_json::Map::new();
        for (field, name) in SAFE {
            if let Some(v) = xml_field(inner, field) {
                fields.insert((*name).into(), v.into());
            }
        }
        if !fields.is_empty() {
            out.insert((*key).into(), fields.into());
        }
    }
    (!out.is_empty()).then(|| serde_json::Value::Object(out).to_string())
}

fn record_call(
    state: &AppState,
    call: Call,
    result: &Dispatched,
    peer: SocketAddr,
    user_agent: Option<String>,
    request_id: String,
) {
    use latchkey_audit::{ApiEvent, ApiService, Event, Resource};
    let action = call.action.unwrap_or_else(|| "Unknown".to_owned());
    let request_parameters = (!call.parameters.is_empty()).then(|| {
        let map: serde_json::Map<String, serde_json::Value> = call
            .parameters
            .iter()
            .map(|(k, v)| (lower_first(k), serde_json::Value::from(v.as_str())))
            .collect();
        serde_json::Value::Object(map).to_string()
    });
    let resources = call
        .parameters
        .iter()
        .filter(|(k, _)| k == "RoleArn")
        .map(|(_, v)| Resource {
            arn: v.clone(),
            kind: "AWS::IAM::Role",
        })
        .collect();
    let (response_elements, error) = match result {
        Ok((_, _, body)) => (body.as_deref().and_then(response_elements), None),
        Err((_, e)) => (
            None,
            Some((
                e.code.to_owned(),
                e.reason.clone().unwrap_or_else(|| e.message.clone()),
            )),
        ),
    };
    // Proven once the signature verified on its first presentation (a
    // repeat is what anyone who captured the request can send); a refused
    // credential says itself whether its signature did.
    let possession_proven = call.possession_proven
        || result
            .as_ref()
            .err()
            .is_some_and(|(_, e)| e.possession_proven);
    let read_only = ["Get", "List", "Simulate"]
        .iter()
        .any(|p| action.starts_with(p));
    state.metrics.api_request(
        if call.sts { "sts" } else { "iam" },
        &action,
        error.as_ref().map_or("Success", |(code, _)| code.as_str()),
    );
    state.audit().record(Event::Api(ApiEvent {
        time: std::time::SystemTime::now(),
        service: if call.sts {
            ApiService::Sts
        } else {
            ApiService::Iam
        },
        action,
        identity: call.identity,
        access_key_id: call.access_key_id,
        source_ip: peer.ip(),
        user_agent,
        request_parameters,
        response_elements,
        error,
        possession_proven,
        request_id,
        read_only,
        resources,
    }));
}

fn ns_of(sts: bool) -> &'static str {
    if sts { STS_NS } else { IAM_NS }
}

type Dispatched = Result<(String, &'static str, Option<String>), (&'static str, ApiError)>;

fn dispatch(
    state: &AppState,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    call: &mut Call,
) -> Dispatched {
    let fail_sts = |e| (STS_NS, e);
    let body_text = std::str::from_utf8(body)
        .map_err(|_| fail_sts(ApiError::malformed("the body is not UTF-8")))?;
    let query = parts.uri.query().unwrap_or("");
    let form = match (query.is_empty(), body_text.is_empty()) {
        (true, _) => body_text.to_owned(),
        (false, true) => query.to_owned(),
        (false, false) => format!("{query}&{body_text}"),
    };
    let params = Params::parse(&form).map_err(fail_sts)?;
    let action = params.required("Action").map_err(fail_sts)?.to_owned();
    let is_sts = STS_ACTIONS.contains(&action.as_str());
    call.action = Some(action.clone());
    call.sts = is_sts;
    // Refusals before authentication are recorded like any other call.
    if !state.audit().accepting() {
        // Fail closed: no call goes unrecorded. (The record is queued and
        // lands when the trail can write again.)
        return Err((
            ns_of(is_sts),
            ApiError::new(
                503,
                "ServiceUnavailable",
                "The service is unavailable. Please try again later.",
            )
            .because("the audit trail cannot write"),
        ));
    }
    if state.is_blocked(peer.ip(), state.now()) {
        return Err((
            ns_of(is_sts),
            ApiError::new(403, "AccessDenied", "Access denied")
                .because("the source address is blocked by a detection response"),
        ));
    }
    call.parameters = params
        .iter()
        .filter(|(k, _)| *k != "Action" && *k != "Version" && !is_secret_parameter(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (service, ns) = if is_sts {
        ("sts", STS_NS)
    } else {
        ("iam", IAM_NS)
    };
    let fail = |e| (ns, e);

    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    let header = |name: &str| -> Option<&str> {
        match parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(v) => Some(v),
            // HTTP/2 carries the host as :authority.
            None if name == "host" => authority.as_deref(),
            None => None,
        }
    };
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        header: &header,
        body,
        source_ip: peer.ip().to_string(),
    };
    let now = state.now();
    call.access_key_id = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .filter(|k| k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned);
    let signed = crate::auth::authenticate(state, &signed, service, now).map_err(fail)?;
    let caller = signed.caller;
    call.identity = Some(caller.audit_identity());
    call.possession_proven = signed.possession_proven;
    crate::auth::check_session_scope(&caller, service, &action).map_err(fail)?;
    // Every call, `GetCallerIdentity` included: credentials of a deleted
    // (or re-created) user or role are refused everywhere.
    state.check_bound(&caller).map_err(|e| fail(e.into()))?;
    let result = match action.as_str() {
        "GetCallerIdentity" => Some(sts::get_caller_identity(&caller)),
        "GetSessionToken" => {
            Some(sts::get_session_token(state, &caller, &params, now).map_err(fail)?)
        }
        "AssumeRole" => Some(sts::assume_role(state, &caller, &params, now).map_err(fail)?),
        _ => iam::handle(state, &caller, &action, &params, now).map_err(fail)?,
    };
    Ok((action, ns, result.map(|x| x.into_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_become_request_parameters() {
        for name in [
            "Password",
            "NewPassword",
            "TokenCode",
            "AuthenticationCode1",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "x-amz-credential",
            "SecretAccessKey",
        ] {
            assert!(is_secret_parameter(name), "{name}");
        }
        for name in [
            "RoleArn",
            "RoleSessionName",
            "UserName",
            "PolicyDocument",
            "SerialNumber",
        ] {
            assert!(!is_secret_parameter(name), "{name}");
        }
    }

    #[test]
    fn response_elements_keep_only_safe_fields() {
        let xml = "<AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId>\
                   <SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>tok</SessionToken>\
                   <Expiration>2026-11-23T20:00:00Z</Expiration></Credentials>\
                   <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></AssumedRoleUser></AssumeRoleResult>";
        let text = response_elements(xml).unwrap_or_default();
        assert!(
            !text.contains("s3cr3t") && !text.contains("tok\""),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["credentials"]["accessKeyId"], "ASIAX");
        assert_eq!(
            v["assumedRoleUser"]["arn"],
            "arn:aws:sts::1:assumed-role/r/s"
        );
    }
}
