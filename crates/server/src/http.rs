//! HTTPS front: TLS, HTTP/1.1 and HTTP/2, one endpoint for both
//! protocols: a POST with `X-Amz-Target` is an AWS JSON 1.1 call
//! ([`crate::json`]), anything else an AWS Query call (STS, IAM).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;
use crate::json;
use crate::query::{MAX_BODY, Params, lower_first};
use latchkey_audit::{ApiService, Resource};
use latchkey_identity::{AppState, Caller};

use crate::auth::SignedRequest;
use crate::xml::{IAM_NS, STS_NS, response};
use crate::{iam, sts, xml};
use latchkey_listen::accept_until;

/// A TLS handshake that has not finished by then is dropped (slowloris).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) const STS_ACTIONS: &[&str] = &["GetCallerIdentity", "GetSessionToken", "AssumeRole"];

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

/// A web front served on the API's port under a path prefix (the
/// console). The server reads the request's body within its limits and
/// hands the whole request over on a blocking thread.
pub trait WebFront: Send + Sync + 'static {
    /// The path it serves, and everything under it (`/console`).
    fn prefix(&self) -> &'static str;

    fn handle(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
        peer: SocketAddr,
    ) -> Response<Full<Bytes>>;
}

/// Whether `path` is `prefix` or under it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Serves until `shutdown` resolves; paths under `front`'s prefix go to
/// it.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: ApiLimits,
    front: Option<Arc<dyn WebFront>>,
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
        let front = front.clone();
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
                    let (state, limits, front) = (state.clone(), limits.clone(), front.clone());
                    async move {
                        let answer = match front {
                            Some(front) if under(req.uri().path(), front.prefix()) => {
                                Ok(front_call(&state, peer, req, &limits, front).await)
                            }
                            _ => handle(state, peer, req, &limits).await,
                        };
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

/// Whether a node should get new clients: answers `Err(why)` while it
/// drains or while its store or audit trail cannot take writes. Called on
/// a blocking thread (it may ask the store).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves, in plain HTTP until `shutdown` resolves: `/metrics` (for a
/// Prometheus that does not scrape HTTPS), `/healthz` (the process
/// answers: 200) and `/readyz` (200 when `ready` says so, else 503 with
/// the reason), for load balancers and Kubernetes probes.
pub async fn serve_metrics(
    state: Arc<AppState>,
    listener: TcpListener,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()>,
) {
    accept_until(listener, shutdown, |tcp, _| {
        let state = state.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                let ready = ready.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match req.uri().path() {
                        "/metrics" => metrics_response(&state),
                        "/healthz" => plain(StatusCode::OK, "ok\n".into()),
                        "/readyz" => match tokio::task::spawn_blocking(move || ready()).await {
                            Ok(Ok(())) => plain(StatusCode::OK, "ready\n".into()),
                            Ok(Err(why)) => plain(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("not ready: {why}\n"),
                            ),
                            Err(_) => plain(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "not ready: the check failed\n".into(),
                            ),
                        },
                        _ => not_found(),
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

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
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
    if req.method() == Method::POST
        && let Some(target) = req.headers().get("x-amz-target")
    {
        let target = target.to_str().unwrap_or_default().to_owned();
        return Ok(handle_json(state, peer, req, limits, &target, id).await);
    }
    // REST-JSON services, by method and path.
    if let Some(route) = json::rest_route(req.method(), req.uri().path()) {
        return Ok(json_call(state, peer, req, limits, route, id).await);
    }
    if req.method() != Method::POST && req.method() != Method::GET {
        return Ok(xml_response(
            405,
            xml::error(STS_NS, true, "InvalidAction", "Use POST or GET", &id),
        ));
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(&state, peer, body, limits, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            let r = xml_response(e.status, xml::error(STS_NS, true, e.code, &e.message, &id));
            return Ok(close_after_timeout(r, &e));
        }
    };
    let user_agent = user_agent(&parts);
    let request_id = id.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut call = Call::new(ApiService::Iam);
        let result = dispatch(&state, &parts, &body, peer, &mut call);
        let outcome = match &result {
            Ok((_, _, body)) => Ok(body.as_deref().and_then(response_elements)),
            Err((_, e)) => Err(e),
        };
        record_call(&state, call, outcome, peer, user_agent, request_id);
        result
    })
    .await;
    Ok(match result {
        Ok(Ok((op, ns, body))) => xml_response(200, response(&op, ns, body, &id)),
        Ok(Err((ns, e))) => {
            log_refusal(&id, &e, peer);
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

/// A request to a [`WebFront`].
async fn front_call(
    state: &Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
    limits: &ApiLimits,
    front: Arc<dyn WebFront>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match read_body(state, peer, body, limits, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(e.message.clone())));
            *r.status_mut() =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return close_after_timeout(r, &e);
        }
    };
    match tokio::task::spawn_blocking(move || front.handle(&parts, &body, peer)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "web front panicked");
            let mut r = Response::new(Full::new(Bytes::from_static(b"internal error\n")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// An AWS JSON 1.1 call: `target` is its `X-Amz-Target`.
async fn handle_json(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
    limits: &ApiLimits,
    target: &str,
    id: String,
) -> Response<Full<Bytes>> {
    let Some((service, operation)) = latchkey_awsjson::parse_target(target)
        .and_then(|(prefix, op)| Some((json::service(prefix)?, op.to_owned())))
    else {
        // No service to attribute it to, and nothing done: not a call to
        // record (CloudTrail records none either); counted, and logged.
        state
            .metrics
            .api_request("unknown", "Unknown", json::UNKNOWN_OPERATION);
        tracing::info!(request_id = %id, %peer, "unknown X-Amz-Target");
        return json_response(&json::unknown_operation(), &id);
    };
    let route = json::Route {
        service,
        operation,
        path_member: None,
    };
    json_call(state, peer, req, limits, route, id).await
}

/// A call to a JSON service (AWS JSON 1.1, or REST-JSON routed by path).
async fn json_call(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
    limits: &ApiLimits,
    route: json::Route,
    id: String,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match read_body(&state, peer, body, limits, json::MAX_BODY).await {
        Ok(body) => body,
        Err(e) => {
            let e = json::json_error(e);
            let r = json_response(&e, &id);
            return close_after_timeout(r, &e);
        }
    };
    let user_agent = user_agent(&parts);
    let request_id = id.clone();
    let service = route.service;
    let result = tokio::task::spawn_blocking(move || {
        let mut call = Call::new(service.audit);
        // A panicking handler is still a call: recorded as a fault.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            json::dispatch(&state, &parts, &body, peer, route, &mut call)
        }))
        .unwrap_or_else(|_| Err(ApiError::internal().because("the handler panicked")))
        .map_err(json::json_error);
        let outcome = match result {
            Ok(mut answer) => {
                call.resources = std::mem::take(&mut answer.resources);
                let elements = answer.response_elements.take().map(|v| {
                    latchkey_awsjson::without_secrets(&v, service.secret_fields).to_string()
                });
                record_call(&state, call, Ok(elements), peer, user_agent, request_id);
                Ok(answer.output)
            }
            Err(e) => {
                record_call(&state, call, Err(&e), peer, user_agent, request_id);
                Err(e)
            }
        };
        outcome.map(|output| output.to_string())
    })
    .await;
    match result {
        Ok(Ok(body)) => json_response_ok(body, &id),
        Ok(Err(e)) => {
            log_refusal(&id, &e, peer);
            json_response(&e, &id)
        }
        Err(e) => {
            tracing::error!(request_id = %id, error = %e, "JSON handler task failed");
            json_response(&ApiError::internal(), &id)
        }
    }
}

fn log_refusal(id: &str, e: &ApiError, peer: SocketAddr) {
    // The precise reason stays in the server log.
    tracing::info!(request_id = %id, code = e.code, reason = e.reason.as_deref().unwrap_or(""), %peer, "request refused");
}

fn user_agent(parts: &hyper::http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A too-large body is still read (and dropped) up to this many bytes
/// before the refusal, so that the client, still sending, reads the
/// answer rather than a reset connection; a larger one is cut off.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// A request's body, within the body timeout and `max` bytes; the refusal
/// is in the Query vocabulary (the JSON front maps it).
async fn read_body(
    state: &AppState,
    peer: SocketAddr,
    mut body: Incoming,
    limits: &ApiLimits,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::new(413, "RequestEntityTooLarge", "Request body too large");
    if usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX) > DRAIN_LIMIT {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(%peer, error = %e, "request body failed");
                return Err(ApiError::malformed("The request body could not be read."));
            }
            Err(_) => {
                state.metrics.api_connection_timed_out("body");
                tracing::debug!(%peer, "request body timed out");
                return Err(ApiError::new(
                    408,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                ));
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Err(too_large());
        }
        if seen <= max {
            kept.extend_from_slice(&data);
        }
    }
    if seen > max {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// A body that trickled in: answer and close the connection.
fn close_after_timeout(mut r: Response<Full<Bytes>>, e: &ApiError) -> Response<Full<Bytes>> {
    if e.status == 408 {
        r.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    r
}

fn json_headers(r: &mut Response<Full<Bytes>>, id: &str) {
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(json::CONTENT_TYPE),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(id) {
        h.insert("x-amzn-requestid", v);
    }
}

fn json_response_ok(body: String, id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    json_headers(&mut r, id);
    r
}

/// An AWS JSON 1.1 error: the code in `__type` and in `x-amzn-ErrorType`.
fn json_response(e: &ApiError, id: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(json::error_body(e))));
    *r.status_mut() = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_headers(&mut r, id);
    if let Ok(code) = hyper::header::HeaderValue::from_str(e.code) {
        r.headers_mut().insert("x-amzn-errortype", code);
    }
    r
}

/// What the audit record of an API call needs, filled in as the call
/// goes; the same for both protocols.
pub(crate) struct Call {
    pub service: ApiService,
    pub action: Option<String>,
    pub access_key_id: Option<String>,
    pub identity: Option<latchkey_audit::Identity>,
    /// The signature verified and was presented for the first time
    /// ([`crate::auth::SignedCaller::possession_proven`]).
    pub possession_proven: bool,
    /// CloudTrail's `requestParameters` (JSON object text), every secret
    /// removed.
    pub request_parameters: Option<String>,
    pub resources: Vec<Resource>,
}

impl Call {
    /// A call one of Latchkey's own fronts makes for `caller`, who it
    /// proved itself (a session it issued).
    fn of_front(service: ApiService, action: &str, caller: &latchkey_identity::Caller) -> Self {
        Self {
            action: Some(action.to_owned()),
            access_key_id: Some(caller.access_key_id.clone()),
            identity: Some(caller.audit_identity()),
            possession_proven: true,
            ..Self::new(service)
        }
    }

    pub fn new(service: ApiService) -> Self {
        Self {
            service,
            action: None,
            access_key_id: None,
            identity: None,
            possession_proven: false,
            request_parameters: None,
            resources: Vec::new(),
        }
    }
}

/// Parameters that carry secrets never reach the trail: passwords, MFA
/// codes, tokens, and any SigV4 query parameter (`X-Amz-Signature`,
/// `X-Amz-Security-Token`...).
fn is_secret_parameter(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    // The password policy's and login profile's settings
    // (`MinimumPasswordLength`, `PasswordResetRequired`...) are no secret;
    // a parameter that holds a password ends with the word.
    n.starts_with("x-amz-")
        || n.ends_with("password")
        || ["secret", "token", "authenticationcode"]
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

/// Whether an action only reads (CloudTrail's `readOnly`), by AWS's
/// naming of each protocol's actions.
fn read_only(service: ApiService, action: &str) -> bool {
    let prefixes: &[&str] = match service {
        ApiService::Sts | ApiService::Iam => &["Get", "List", "Simulate"],
        ApiService::SecretsManager
        | ApiService::Ssm
        | ApiService::Kms
        | ApiService::AccessAnalyzer => &["Get", "List", "Describe", "Batch", "Validate"],
        ApiService::Signin => &[],
        ApiService::GuardDuty | ApiService::Rds | ApiService::Gateway => {
            &["Get", "List", "Describe"]
        }
    };
    prefixes.iter().any(|p| action.starts_with(p))
}

/// Records an API call in the trail and the metrics, whatever its
/// protocol: `outcome` is the call's `responseElements` (JSON object text,
/// secrets removed) or its refusal.
pub(crate) fn record_call(
    state: &AppState,
    call: Call,
    outcome: Result<Option<String>, &ApiError>,
    peer: SocketAddr,
    user_agent: Option<String>,
    request_id: String,
) {
    use latchkey_audit::{ApiEvent, Event};
    let action = call.action.unwrap_or_else(|| "Unknown".to_owned());
    // Proven once the signature verified on its first presentation (a
    // repeat is what anyone who captured the request can send); a refused
    // credential says itself whether its signature did.
    let possession_proven =
        call.possession_proven || outcome.as_ref().err().is_some_and(|e| e.possession_proven);
    let (response_elements, error) = match outcome {
        Ok(elements) => (elements, None),
        Err(e) => (
            None,
            Some((
                e.code.to_owned(),
                e.reason.clone().unwrap_or_else(|| e.message.clone()),
            )),
        ),
    };
    let code = error.as_ref().map_or("Success", |(code, _)| code.as_str());
    // An unknown operation's name is the caller's text: one label for all.
    let label = if code == json::UNKNOWN_OPERATION {
        "Unknown"
    } else {
        action.as_str()
    };
    state.metrics.api_request(call.service.name(), label, code);
    state.audit().record(Event::from(ApiEvent {
        time: std::time::SystemTime::now(),
        service: call.service,
        read_only: read_only(call.service, &action),
        action,
        identity: call.identity,
        access_key_id: call.access_key_id,
        source_ip: peer.ip(),
        user_agent,
        request_parameters: call.request_parameters,
        response_elements,
        error,
        possession_proven,
        request_id,
        resources: call.resources,
    }));
}

/// A JSON 1.1 call (Secrets Manager `secretsmanager`, Parameter Store
/// `AmazonSSM`, KMS `TrentService`) made in process for `caller` by one of
/// Latchkey's own fronts: the service's handler, authorisation and audit
/// record, as [`call_in_process`] for the Query services. Its output, as
/// the service answers it.
pub fn call_json_in_process(
    state: &AppState,
    caller: &latchkey_identity::Caller,
    prefix: &str,
    operation: &str,
    input: serde_json::Map<String, serde_json::Value>,
    peer: SocketAddr,
    user_agent: &str,
) -> Result<serde_json::Value, ApiError> {
    let service = json::service(prefix).ok_or_else(json::unknown_operation)?;
    let mut call = Call::of_front(service.audit, operation, caller);
    call.request_parameters = latchkey_awsjson::request_parameters(&input, service.secret_fields);
    let result = (|| {
        gate(state, peer)?;
        state.check_bound(caller)?;
        (service.handle)(&json::JsonCall {
            state,
            caller,
            operation,
            input: &input,
            now: state.now(),
            peer,
        })
    })()
    .map_err(json::json_error);
    let request_id = request_id();
    match result {
        Ok(mut answer) => {
            call.resources = std::mem::take(&mut answer.resources);
            let elements = answer
                .response_elements
                .take()
                .map(|v| latchkey_awsjson::without_secrets(&v, service.secret_fields).to_string());
            record_call(
                state,
                call,
                Ok(elements),
                peer,
                Some(user_agent.to_owned()),
                request_id,
            );
            Ok(answer.output)
        }
        Err(e) => {
            record_call(
                state,
                call,
                Err(&e),
                peer,
                Some(user_agent.to_owned()),
                request_id,
            );
            Err(e)
        }
    }
}

/// A change one of Latchkey's own fronts (the console) made for `caller`
/// with no API call behind it (archiving findings): recorded like one,
/// with its parameters (no secrets) and its refusal, if refused.
#[allow(clippy::too_many_arguments)]
pub fn record_front_call(
    state: &AppState,
    caller: &latchkey_identity::Caller,
    service: ApiService,
    action: &str,
    request_parameters: serde_json::Value,
    refusal: Option<&ApiError>,
    peer: SocketAddr,
    user_agent: &str,
) {
    let mut call = Call::of_front(service, action, caller);
    call.request_parameters = Some(request_parameters.to_string());
    let outcome = match refusal {
        None => Ok(None),
        Some(e) => Err(e),
    };
    record_call(
        state,
        call,
        outcome,
        peer,
        Some(user_agent.to_owned()),
        request_id(),
    );
}

/// A console sign-in, as CloudTrail records one (`signin.amazonaws.com`,
/// `ConsoleLogin`): `user` is who it was for when the name is known,
/// `refusal` the precise reason it failed (the trail's `errorMessage` is
/// AWS's "Failed authentication" with it).
pub fn record_sign_in(
    state: &AppState,
    user: Option<&latchkey_identity::Caller>,
    user_name: &str,
    mfa_used: bool,
    refusal: Option<&str>,
    peer: SocketAddr,
    user_agent: Option<String>,
) {
    use latchkey_audit::{ApiEvent, Event};
    let identity = user.map(latchkey_identity::Caller::audit_identity);
    // CloudTrail's shape: the outcome in `responseElements` either way;
    // a failure's code is AWS's words, its message the precise reason.
    let elements = serde_json::json!({
        "ConsoleLogin": if refusal.is_none() { "Success" } else { "Failure" },
        "MFAUsed": if mfa_used { "Yes" } else { "No" },
    })
    .to_string();
    let code = if refusal.is_some() {
        "FailedAuthentication"
    } else {
        "Success"
    };
    state.metrics.api_request("signin", "ConsoleLogin", code);
    state.audit().record(Event::from(ApiEvent {
        time: std::time::SystemTime::now(),
        service: ApiService::Signin,
        read_only: false,
        action: "ConsoleLogin".to_owned(),
        access_key_id: identity.as_ref().map(|i| i.access_key_id.clone()),
        identity,
        source_ip: peer.ip(),
        user_agent,
        request_parameters: Some(serde_json::json!({ "userName": user_name }).to_string()),
        response_elements: Some(elements),
        error: refusal.map(|reason| ("Failed authentication".to_owned(), reason.to_owned())),
        possession_proven: refusal.is_none(),
        request_id: request_id(),
        resources: Vec::new(),
    }));
}

fn ns_of(service: ApiService) -> &'static str {
    if service == ApiService::Sts {
        STS_NS
    } else {
        IAM_NS
    }
}

type Dispatched = Result<(String, &'static str, Option<String>), (&'static str, ApiError)>;

/// The checks every call passes before its handler, whatever the
/// protocol: the trail takes records (fail closed), the source address is
/// not blocked, the SigV4 signature verifies for `signing_name`, temporary
/// credentials may call `action`, and the principal still exists. Fills
/// in who is calling as it learns it. Returns the caller and the time
/// the call is decided at.
pub(crate) fn admit(
    state: &AppState,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    signing_name: &str,
    action: &str,
    call: &mut Call,
) -> Result<(Caller, i64), ApiError> {
    gate(state, peer)?;
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    let header = |name: &str| -> Option<&str> {
        match parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(v) => Some(v),
            // HTTP/2 carries the host as :authority.
            None if name == "host" => authority.as_deref(),
            None => None,
        }
    };
    let header_names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        header: &header,
        header_names: &header_names,
        body,
        source_ip: peer.ip().to_string(),
    };
    let now = state.now();
    call.access_key_id = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .filter(|k| k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned);
    let signed = crate::auth::authenticate(state, &signed, signing_name, now)?;
    let caller = signed.caller;
    call.identity = Some(caller.audit_identity());
    call.possession_proven = signed.possession_proven;
    crate::auth::check_session_scope(&caller, signing_name, action)?;
    // Every call, `GetCallerIdentity` included: credentials of a deleted
    // (or re-created) user or role are refused everywhere.
    state.check_bound(&caller)?;
    Ok((caller, now))
}

/// CloudTrail's `requestParameters` of a Query call: every parameter but
/// `Action`, `Version` and secrets, named as CloudTrail does.
fn request_parameters(params: &Params) -> Option<String> {
    let parameters: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .filter(|(k, _)| *k != "Action" && *k != "Version" && !is_secret_parameter(k))
        .map(|(k, v)| (lower_first(k), serde_json::Value::from(v)))
        .collect();
    (!parameters.is_empty()).then(|| serde_json::Value::Object(parameters).to_string())
}

/// What every call passes before anything else, whoever authenticated
/// it: the trail takes records (fail closed), and the source address is
/// not blocked.
fn gate(state: &AppState, peer: SocketAddr) -> Result<(), ApiError> {
    if !state.audit().accepting() {
        // Fail closed: no call goes unrecorded. (The record is queued and
        // lands when the trail can write again.)
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "The service is unavailable. Please try again later.",
        )
        .because("the audit trail cannot write"));
    }
    if state.is_blocked(peer.ip(), state.now()) {
        return Err(ApiError::new(403, "AccessDenied", "Access denied")
            .because("the source address is blocked by a detection response"));
    }
    Ok(())
}

/// An STS or IAM call made in process by one of Latchkey's own fronts
/// (the console) for a caller it authenticated itself: the same handlers,
/// authorisation and audit record as over the Query protocol, without
/// SigV4 or the limits on what `GetSessionToken` credentials may call
/// (a console session is not one). Returns the whole XML response, as a
/// client would read it.
pub fn call_in_process(
    state: &AppState,
    caller: &latchkey_identity::Caller,
    action: &str,
    params: &[(&str, &str)],
    peer: SocketAddr,
    user_agent: &str,
) -> Result<String, ApiError> {
    let service = if STS_ACTIONS.contains(&action) {
        ApiService::Sts
    } else {
        ApiService::Iam
    };
    let mut call = Call::of_front(service, action, caller);
    let request_id = request_id();
    let result = (|| {
        let params = Params::from_pairs(params);
        call.request_parameters = request_parameters(&params);
        gate(state, peer)?;
        state.check_bound(caller)?;
        let now = state.now();
        match action {
            "GetCallerIdentity" => Ok(Some(sts::get_caller_identity(caller))),
            "AssumeRole" => sts::assume_role(state, caller, &params, now).map(Some),
            "GetSessionToken" => Err(ApiError::new(
                403,
                "AccessDenied",
                "Cannot call GetSessionToken with session credentials",
            )),
            _ => iam::handle(
                state,
                caller,
                action,
                &params,
                (now, peer.ip()),
                &mut call.resources,
            ),
        }
    })();
    let result = result.map(|x| x.map(|x| x.into_string()));
    let outcome = match &result {
        Ok(body) => Ok(body.as_deref().and_then(response_elements)),
        Err(e) => Err(e),
    };
    record_call(
        state,
        call,
        outcome,
        peer,
        Some(user_agent.to_owned()),
        request_id.clone(),
    );
    let body = result?;
    Ok(response(action, ns_of(service), body, &request_id))
}

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
    call.service = if is_sts {
        ApiService::Sts
    } else {
        ApiService::Iam
    };
    let ns = ns_of(call.service);
    let fail = |e| (ns, e);
    // Refusals before authentication are recorded like any other call,
    // with what was asked.
    call.request_parameters = request_parameters(&params);
    call.resources = params
        .iter()
        .filter(|(k, _)| *k == "RoleArn")
        .map(|(_, v)| Resource {
            arn: v.to_owned(),
            kind: "AWS::IAM::Role",
        })
        .collect();
    let (caller, now) =
        admit(state, parts, body, peer, call.service.name(), &action, call).map_err(fail)?;
    let result = match action.as_str() {
        "GetCallerIdentity" => Some(sts::get_caller_identity(&caller)),
        "GetSessionToken" => {
            Some(sts::get_session_token(state, &caller, &params, now).map_err(fail)?)
        }
        "AssumeRole" => Some(sts::assume_role(state, &caller, &params, now).map_err(fail)?),
        _ => iam::handle(
            state,
            &caller,
            &action,
            &params,
            (now, peer.ip()),
            &mut call.resources,
        )
        .map_err(fail)?,
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
            "OldPassword",
            "password",
        ] {
            assert!(is_secret_parameter(name), "{name}");
        }
        for name in [
            "RoleArn",
            "RoleSessionName",
            "UserName",
            "PolicyDocument",
            "SerialNumber",
            "MinimumPasswordLength",
            "PasswordResetRequired",
            "PasswordReusePrevention",
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
