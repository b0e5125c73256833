//! HTTPS front: TLS, HTTP/1.1 and HTTP/2, one Query-protocol endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::ApiError;
use crate::query::{MAX_BODY, Params, lower_first};
use crate::state::{AppState, SignedRequest, now};
use crate::xml::{IAM_NS, STS_NS, response};
use crate::{iam, sts, xml};

/// A TLS handshake that has not finished by then is dropped (slowloris).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const STS_ACTIONS: &[&str] = &["GetCallerIdentity", "GetSessionToken", "AssumeRole"];

/// Accepts TCP connections until `shutdown` resolves, handing each (with
/// `TCP_NODELAY` set) to `on_connection`. Shared by every listener.
pub async fn accept_until(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
    mut on_connection: impl FnMut(tokio::net::TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; policies,
        // limits and the audit trail want a.b.c.d.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        on_connection(tcp, peer);
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    accept_until(listener, shutdown, |tcp, peer| {
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| handle(state.clone(), peer, req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
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
                        let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
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

async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let id = request_id();
    if req.method() == Method::GET && req.uri().path() == "/metrics" {
        return Ok(metrics_response(&state));
    }
    if req.method() != Method::POST && req.method() != Method::GET {
        return Ok(xml_response(
            405,
            xml::error(STS_NS, true, "InvalidAction", "Use POST or GET", &id),
        ));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
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
    let read_only = ["Get", "List"].iter().any(|p| action.starts_with(p));
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
    if state.is_blocked(peer.ip(), now()) {
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
    let now = now();
    call.access_key_id = header("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .filter(|k| k.len() <= 128 && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned);
    let caller = state.authenticate(&signed, service, now).map_err(fail)?;
    call.identity = Some(caller.audit_identity());
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
