//! A small client for Latchkey's token service (the AWS Query protocol):
//! builds and SigV4-signs `Action=...` requests, sends them over HTTPS
//! with a chosen CA bundle, and turns XML results into JSON the way the AWS
//! CLI prints them.

use std::path::Path;
use std::sync::Arc;
/// The TLS client a [`tls_connector`] makes, for holding one.
pub use tokio_rustls::TlsConnector;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use latchkey_sigv4::encoding::encode;
use latchkey_sigv4::{AmzDate, Credentials, SignRequest, sign_request};
use rustls::pki_types::ServerName;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("endpoint: {0}")]
    Endpoint(&'static str),
    #[error("CA bundle {path}: {reason}")]
    CaBundle { path: String, reason: String },
    #[error("connection: {0}")]
    Connection(String),
    #[error("signing: {0}")]
    Signing(#[from] latchkey_sigv4::SigV4Error),
    #[error("response is not valid XML: {0}")]
    Xml(String),
    /// The service refused: AWS error code and message.
    #[error("An error occurred ({code}) when calling the {action} operation: {message}")]
    Service {
        action: String,
        code: String,
        message: String,
        status: u16,
    },
}

/// Where the service is.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// `host:port` as sent in the `host` header.
    pub authority: String,
}

impl Endpoint {
    /// Parses `https://host:port` (port 443 when omitted).
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let rest = url
            .strip_prefix("https://")
            .ok_or(ClientError::Endpoint("must start with https://"))?
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(ClientError::Endpoint("expected https://host[:port]"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => {
                (h, p.parse().map_err(|_| ClientError::Endpoint("bad port"))?)
            }
            _ => (rest, 443),
        };
        let authority = if port == 443 {
            host.to_owned()
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            authority,
        })
    }
}

/// A TLS client trusting the roots in a PEM bundle.
pub fn tls_connector(ca_bundle: &Path) -> Result<tokio_rustls::TlsConnector, ClientError> {
    let err = |reason: String| ClientError::CaBundle {
        path: ca_bundle.display().to_string(),
        reason,
    };
    let pem = std::fs::read(ca_bundle).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificates".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The Query form body for `action` with `params` (already in API names).
pub fn form(action: &str, version: &str, params: &[(String, String)]) -> String {
    let mut body = format!("Action={}&Version={}", encode(action), encode(version));
    for (k, v) in params {
        body.push('&');
        body.push_str(&encode(k));
        body.push('=');
        body.push_str(&encode(v));
    }
    body
}

/// A signed POST of `body` to `service`, dated `time`.
pub fn signed_post(
    endpoint: &Endpoint,
    service: &str,
    region: &str,
    body: String,
    credentials: &Credentials,
    time: AmzDate,
) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
    signed_post_as(
        endpoint,
        service,
        region,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body,
        credentials,
        time,
    )
}

/// A signed AWS JSON 1.1 call: `target` is `<prefix>.<Operation>`, as in
/// `secretsmanager.GetSecretValue`.
pub fn signed_json(
    endpoint: &Endpoint,
    service: &str,
    region: &str,
    target: &str,
    body: String,
    credentials: &Credentials,
    time: AmzDate,
) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
    signed_post_as(
        endpoint,
        service,
        region,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ],
        body,
        credentials,
        time,
    )
}

/// A POST of `body` with `content` headers (signed with the rest).
fn signed_post_as(
    endpoint: &Endpoint,
    service: &str,
    region: &str,
    content: &[(&str, &str)],
    body: String,
    credentials: &Credentials,
    time: AmzDate,
) -> Result<hyper::Request<Full<Bytes>>, ClientError> {
    let date = time.to_string();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let mut headers = content.to_vec();
    headers.extend([
        ("host", endpoint.authority.as_str()),
        ("x-amz-date", date.as_str()),
    ]);
    if let Some(t) = &credentials.session_token {
        headers.push(("x-amz-security-token", t.as_str()));
    }
    let authorization = sign_request(
        &SignRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload_hash: &payload,
            region,
            service,
            time,
        },
        credentials,
    )?;
    let mut builder = hyper::Request::post("/");
    for (k, v) in &headers {
        builder = builder.header(*k, *v);
    }
    builder
        .header("authorization", authorization)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ClientError::Connection(e.to_string()))
}

/// Sends one request on a new connection; returns (status, body).
pub async fn send(
    tls: &tokio_rustls::TlsConnector,
    endpoint: &Endpoint,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(u16, String), ClientError> {
    let conn = |e: &dyn std::fmt::Display| ClientError::Connection(e.to_string());
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| conn(&e))?;
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| conn(&e))?;
    let stream = tls.connect(name, tcp).await.map_err(|e| conn(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| conn(&e))?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| conn(&e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| conn(&e))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Element tree of an XML document: `(name, children, text)`.
struct Node {
    name: String,
    children: Vec<Node>,
    text: String,
}

fn parse_xml(text: &str) -> Result<Node, ClientError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = vec![Node {
        name: String::new(),
        children: Vec::new(),
        text: String::new(),
    }];
    loop {
        match reader
            .read_event()
            .map_err(|e| ClientError::Xml(e.to_string()))?
        {
            Event::Start(e) => stack.push(Node {
                name: e.local_name().as_ref().to_owned(),
                children: Vec::new(),
                text: String::new(),
            }),
            Event::Empty(e) => {
                let node = Node {
                    name: e.local_name().as_ref().to_owned(),
                    children: Vec::new(),
                    text: String::new(),
                };
                stack
                    .last_mut()
                    .ok_or(ClientError::Xml("unbalanced".into()))?
                    .children
                    .push(node);
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let name: String = r.as_ref().to_owned();
                let c = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => return Err(ClientError::Xml(format!("unknown entity &{name};"))),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(c);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or(ClientError::Xml("unbalanced".into()))?;
                stack
                    .last_mut()
                    .ok_or(ClientError::Xml("unbalanced".into()))?
                    .children
                    .push(node);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut root = stack.pop().ok_or(ClientError::Xml("empty".into()))?;
    root.children
        .pop()
        .ok_or(ClientError::Xml("no root element".into()))
}

fn to_json(node: &Node) -> Value {
    if node.children.is_empty() {
        return Value::String(node.text.clone());
    }
    if node.children.iter().all(|c| c.name == "member") {
        return Value::Array(node.children.iter().map(to_json).collect());
    }
    let mut map = Map::new();
    for c in &node.children {
        map.insert(c.name.clone(), to_json(c));
    }
    Value::Object(map)
}

/// Interprets a response: the `<{Action}Result>` as JSON (policy documents
/// URL-decoded and parsed, as the AWS CLI shows them), or the service error.
pub fn interpret(action: &str, status: u16, body: &str) -> Result<Value, ClientError> {
    let root = parse_xml(body)?;
    if root.name == "ErrorResponse" {
        let error = root.children.iter().find(|c| c.name == "Error");
        let field = |n: &str| {
            error
                .and_then(|e| e.children.iter().find(|c| c.name == n))
                .map(|c| c.text.clone())
                .unwrap_or_default()
        };
        return Err(ClientError::Service {
            action: action.to_owned(),
            code: field("Code"),
            message: field("Message"),
            status,
        });
    }
    let result = root
        .children
        .iter()
        .find(|c| c.name == format!("{action}Result"));
    let mut value = result.map_or(Value::Null, to_json);
    decode_policies(&mut value);
    Ok(value)
}

/// IAM returns policy documents URL-encoded; show them as JSON.
fn decode_policies(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if k.ends_with("PolicyDocument")
                    && let Value::String(s) = val
                    && let Ok(decoded) = latchkey_sigv4::encoding::decode_utf8(s)
                    && let Ok(doc) = serde_json::from_str::<Value>(&decoded)
                {
                    *val = doc;
                } else {
                    decode_policies(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(decode_policies),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://localhost:7443/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("localhost", 7443, "localhost:7443")
        );
        assert_eq!(
            Endpoint::parse("https://sts.example.com")
                .unwrap()
                .authority,
            "sts.example.com"
        );
        assert!(Endpoint::parse("http://x").is_err());
    }

    #[test]
    fn responses_become_json() {
        let ok = "<ListUsersResponse xmlns=\"x\"><ListUsersResult><Users><member><UserName>a&amp;b</UserName></member><member><UserName>c</UserName></member></Users><IsTruncated>false</IsTruncated></ListUsersResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></ListUsersResponse>";
        let v = interpret("ListUsers", 200, ok).unwrap();
        assert_eq!(v["Users"][0]["UserName"], "a&b");
        assert_eq!(v["Users"][1]["UserName"], "c");
        let role = "<GetRoleResponse><GetRoleResult><Role><AssumeRolePolicyDocument>%7B%22Version%22%3A%222012-10-17%22%7D</AssumeRolePolicyDocument></Role></GetRoleResult></GetRoleResponse>";
        assert_eq!(
            interpret("GetRole", 200, role).unwrap()["Role"]["AssumeRolePolicyDocument"]["Version"],
            "2012-10-17"
        );
        let err = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>";
        let e = interpret("CreateUser", 403, err).unwrap_err();
        assert_eq!(
            e.to_string(),
            "An error occurred (AccessDenied) when calling the CreateUser operation: no"
        );
        assert!(interpret("X", 200, "<a><b></a>").is_err());
    }
}
