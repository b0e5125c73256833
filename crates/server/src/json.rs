//! The AWS JSON 1.1 front: Secrets Manager, KMS and Parameter Store, on
//! the token service's endpoint.
//!
//! A POST with `X-Amz-Target: <prefix>.<Operation>` comes here from
//! [`crate::http`]. The prefix picks a [`Service`] from [`SERVICES`]; the
//! body is parsed (a `SerializationException` if it is not a JSON
//! object), the call passes the same checks as a Query call
//! ([`crate::http::admit`]: audit accepting, blocked address, SigV4 with
//! the service's signing name, session scope, principal still bound), and
//! the service's `handle` answers it. Every call is audited like a Query
//! call, its request parameters without the service's secret fields.
//!
//! To add a service: a module with `pub fn handle(&JsonCall) ->
//! Result<Answer, ApiError>` matching on `call.operation` (an unknown one
//! is [`unknown_operation`]), its secret fields, and an entry in
//! [`SERVICES`]. Handlers authorise with `call.state.authorize_in` and
//! return the service's own error codes; [`json_error`] rewords the
//! shared authentication and policy refusals for the JSON services.

use std::net::SocketAddr;

use latchkey_audit::{ApiService, Resource};
use latchkey_identity::{AppState, Caller, Denial};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::http::Call;

pub use latchkey_awsjson::{
    Input, blob, bool_field, int_field, required_string, string, string_list, tags,
};

/// What JSON 1.1 requests and answers are.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// JSON requests larger than this are refused before parsing
/// (`RequestEntityTooLargeException`). A Secrets Manager secret is at most
/// 64 KiB; JSON escaping can make that six times longer.
pub const MAX_BODY: usize = 512 * 1024;

/// The code for a target no service or operation answers to.
pub const UNKNOWN_OPERATION: &str = "UnknownOperationException";

/// One JSON 1.1 service.
pub struct Service {
    /// `X-Amz-Target`'s prefix (`secretsmanager`, `AmazonSSM`, `TrentService`).
    pub prefix: &'static str,
    /// SigV4's service name (`secretsmanager`, `ssm`, `kms`).
    pub signing_name: &'static str,
    /// The audit trail's event source and the metrics' service label.
    pub audit: ApiService,
    /// Members whose values are secrets, removed at any depth from the
    /// audit's `requestParameters` and `responseElements` (names with
    /// `Password`, `SecretString` or `SecretBinary` in them are removed
    /// whatever the service says).
    pub secret_fields: &'static [&'static str],
    /// A REST-JSON service's members that travel in the URI's query
    /// (`maxResults`, `nextToken`): merged into the input before anything
    /// reads it, so the audit record shows them too.
    pub query_members: &'static [&'static str],
    pub handle: fn(&JsonCall) -> Result<Answer, ApiError>,
}

/// The JSON 1.1 services, by target prefix.
pub static SERVICES: &[Service] = &[
    Service {
        prefix: "secretsmanager",
        signing_name: "secretsmanager",
        audit: ApiService::SecretsManager,
        secret_fields: crate::secretsmanager::SECRET_FIELDS,
        query_members: &[],
        handle: crate::secretsmanager::handle,
    },
    Service {
        prefix: "TrentService",
        signing_name: "kms",
        audit: ApiService::Kms,
        secret_fields: crate::kms::SECRET_FIELDS,
        query_members: &[],
        handle: crate::kms::handle,
    },
    Service {
        prefix: "AmazonSSM",
        signing_name: "ssm",
        audit: ApiService::Ssm,
        secret_fields: crate::ssm::SECRET_FIELDS,
        query_members: &[],
        handle: crate::ssm::handle,
    },
];

/// IAM Access Analyzer, a REST-JSON service: [`rest_route`] names its
/// operations by method and path. It has no `X-Amz-Target` prefix, so it
/// is not in [`SERVICES`].
pub static ACCESS_ANALYZER: Service = Service {
    prefix: "",
    signing_name: "access-analyzer",
    audit: ApiService::AccessAnalyzer,
    secret_fields: crate::accessanalyzer::SECRET_FIELDS,
    query_members: &[
        "maxResults",
        "nextToken",
        "principalArn",
        "includeResourcePlaceholders",
        "includeServiceLevelTemplate",
    ],
    handle: crate::accessanalyzer::handle,
};

/// What a request calls: a service's operation, and for a REST-JSON call
/// the member its path carries (`jobId` in `/policy/generation/{jobId}`).
pub struct Route {
    pub service: &'static Service,
    pub operation: String,
    pub path_member: Option<(&'static str, String)>,
}

/// The REST-JSON operation a method and path name.
pub fn rest_route(method: &hyper::Method, path: &str) -> Option<Route> {
    use hyper::Method;
    let route = |operation: &str, path_member| Route {
        service: &ACCESS_ANALYZER,
        operation: operation.to_owned(),
        path_member,
    };
    match (method, path) {
        (&Method::POST, "/policy/validation") => Some(route("ValidatePolicy", None)),
        (&Method::PUT, "/policy/generation") => Some(route("StartPolicyGeneration", None)),
        (&Method::GET, "/policy/generation") => Some(route("ListPolicyGenerations", None)),
        _ => {
            let id = path
                .strip_prefix("/policy/generation/")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let operation = match *method {
                Method::GET => "GetGeneratedPolicy",
                Method::PUT => "CancelPolicyGeneration",
                _ => return None,
            };
            Some(route(operation, Some(("jobId", id.to_owned()))))
        }
    }
}

/// The service a target prefix names.
pub fn service(prefix: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.prefix == prefix)
}

/// An authenticated call, for a service's handler.
pub struct JsonCall<'a> {
    pub state: &'a AppState,
    pub caller: &'a Caller,
    pub operation: &'a str,
    /// The request body (a JSON object; `{}` when empty).
    pub input: &'a Map<String, Value>,
    pub now: i64,
    /// Where the call came from (for the records of calls a service makes
    /// on its caller's behalf).
    pub peer: SocketAddr,
}

/// A handler's answer.
pub struct Answer {
    /// The response object.
    pub output: Value,
    /// ARNs (and CloudTrail resource types, e.g.
    /// "AWS::SecretsManager::Secret") for the audit record.
    pub resources: Vec<Resource>,
    /// CloudTrail responseElements: only identifiers (ARN, Name,
    /// VersionId), never a value.
    pub response_elements: Option<Value>,
}

impl Answer {
    /// An answer that touches no resource and records no response elements.
    pub fn output(output: Value) -> Self {
        Self {
            output,
            resources: Vec::new(),
            response_elements: None,
        }
    }
}

/// A target no service or operation answers to.
pub fn unknown_operation() -> ApiError {
    ApiError::new(
        400,
        UNKNOWN_OPERATION,
        "The requested operation is not supported.",
    )
}

/// A parameter of the wrong value. Never put the value in `message`.
pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::new(400, latchkey_awsjson::INVALID_PARAMETER, message)
}

/// The JSON services' wording of a policy denial:
/// `User: ARN is not authorized to perform: ACTION on resource: X because
/// no identity-based policy allows the ACTION action`.
fn denied_message(d: &Denial) -> String {
    // AWS names no resource for actions on `*` (GetRandomPassword).
    let on = if d.shown == "*" {
        String::new()
    } else {
        format!(" on resource: {}", d.shown)
    };
    let (article, kind) = if d.by_resource_policy {
        ("a", "resource-based")
    } else {
        ("an", "identity-based")
    };
    let why = if d.decision == "explicitDeny" {
        format!("with an explicit deny in {article} {kind} policy")
    } else {
        format!("because no {kind} policy allows the {} action", d.action)
    };
    format!(
        "User: {} is not authorized to perform: {}{on} {why}",
        d.caller, d.action
    )
}

/// The JSON services' codes (and statuses) for the refusals both
/// protocols share, which [`crate::auth`] and the identity core word as
/// the Query services do. Anything else, the handlers' own codes
/// included, is left as it is.
pub fn json_error(mut e: ApiError) -> ApiError {
    let (status, code) = match e.code {
        "MissingAuthenticationToken" => (400, "MissingAuthenticationTokenException"),
        "InvalidClientTokenId" => (400, "UnrecognizedClientException"),
        "SignatureDoesNotMatch" | "XAmzContentSHA256Mismatch" | "RequestExpired" => {
            (400, "InvalidSignatureException")
        }
        "IncompleteSignature" => (400, "IncompleteSignatureException"),
        "ExpiredToken" => (400, "ExpiredTokenException"),
        "AccessDenied" => (400, "AccessDeniedException"),
        "MalformedQueryString" => (400, latchkey_awsjson::SERIALIZATION),
        "RequestTimeout" => (408, "RequestTimeoutException"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLargeException"),
        _ => return e,
    };
    if let Some(d) = &e.denial {
        e.message = denied_message(d);
    }
    e.status = status;
    e.code = code;
    e
}

/// An error's body: `__type` is the code botocore and the SDKs read;
/// `message` is what they show, and the modelled exceptions' `Message`
/// member carries the same text.
pub fn error_body(e: &ApiError) -> String {
    serde_json::json!({
        "__type": e.code,
        "message": e.message,
        "Message": e.message,
    })
    .to_string()
}

/// Parses, admits and answers one call to `route`; fills in `call` for
/// the audit record as it goes.
pub(crate) fn dispatch(
    state: &AppState,
    parts: &hyper::http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    route: Route,
    call: &mut Call,
) -> Result<Answer, ApiError> {
    let Route {
        service,
        operation,
        path_member,
    } = route;
    let operation = operation.as_str();
    call.service = service.audit;
    call.action = Some(operation.to_owned());
    // Parsed before authentication, as the Query front parses its form: a
    // refusal's record shows what was asked.
    let mut input = latchkey_awsjson::parse_body(body)?;
    if !service.query_members.is_empty() {
        let query = crate::query::Params::parse(parts.uri.query().unwrap_or_default())?;
        for name in service.query_members {
            if let Some(v) = query.get(name) {
                let value = match v {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => v
                        .parse::<i64>()
                        .map_or_else(|_| Value::from(v), Value::from),
                };
                input.insert((*name).to_owned(), value);
            }
        }
    }
    if let Some((name, value)) = path_member {
        input.insert(name.to_owned(), Value::String(value));
    }
    call.request_parameters = latchkey_awsjson::request_parameters(&input, service.secret_fields);
    let (caller, now) = crate::http::admit(
        state,
        parts,
        body,
        peer,
        service.signing_name,
        operation,
        call,
    )?;
    (service.handle)(&JsonCall {
        state,
        caller: &caller,
        operation,
        input: &input,
        now,
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: &ApiError) -> Value {
        serde_json::from_str(&error_body(e)).unwrap_or_default()
    }

    #[test]
    fn errors_are_shaped_as_botocore_reads_them() {
        let e = invalid_parameter("PasswordLength must be between 1 and 4096.");
        let v = body(&e);
        assert_eq!(v["__type"], "InvalidParameterException");
        assert_eq!(v["message"], "PasswordLength must be between 1 and 4096.");
        assert_eq!(v["Message"], v["message"]);
        assert_eq!(e.status, 400);
        let quoted = invalid_parameter("a \"quoted\"\nline");
        assert_eq!(body(&quoted)["message"], "a \"quoted\"\nline");
        assert_eq!(unknown_operation().status, 400);
        assert_eq!(body(&unknown_operation())["__type"], UNKNOWN_OPERATION);
    }

    #[test]
    fn shared_refusals_get_the_json_services_codes() {
        for (query, status, json) in [
            (
                ApiError::new(403, "MissingAuthenticationToken", "m"),
                400,
                "MissingAuthenticationTokenException",
            ),
            (
                ApiError::invalid_token(),
                400,
                "UnrecognizedClientException",
            ),
            (
                ApiError::new(403, "SignatureDoesNotMatch", "m"),
                400,
                "InvalidSignatureException",
            ),
            (
                ApiError::new(400, "RequestExpired", "m"),
                400,
                "InvalidSignatureException",
            ),
            (
                ApiError::new(400, "IncompleteSignature", "m"),
                400,
                "IncompleteSignatureException",
            ),
            (
                ApiError::new(400, "ExpiredToken", "m"),
                400,
                "ExpiredTokenException",
            ),
            (
                ApiError::new(403, "AccessDenied", "m"),
                400,
                "AccessDeniedException",
            ),
            (
                ApiError::malformed("m"),
                400,
                latchkey_awsjson::SERIALIZATION,
            ),
            (
                ApiError::new(413, "RequestEntityTooLarge", "m"),
                413,
                "RequestEntityTooLargeException",
            ),
            (
                ApiError::new(503, "ServiceUnavailable", "m"),
                503,
                "ServiceUnavailable",
            ),
            (
                invalid_parameter("m"),
                400,
                latchkey_awsjson::INVALID_PARAMETER,
            ),
            (ApiError::internal(), 500, "InternalFailure"),
        ] {
            let e = json_error(query.because("why").proven(true));
            assert_eq!((e.status, e.code), (status, json));
            // The log's reason and the audit's proof survive the rewording.
            assert_eq!(e.reason.as_deref(), Some("why"));
            assert!(e.possession_proven);
        }
    }

    #[test]
    fn policy_denials_say_why_as_aws_does() {
        let denial = |resource: &str, decision| {
            ApiError::from(latchkey_identity::IdentityError::Denied(Denial {
                caller: "arn:aws:iam::123456789012:user/bob".into(),
                action: "secretsmanager:GetSecretValue".into(),
                resource: format!("{resource}-stored"),
                shown: resource.into(),
                decision,
                by_resource_policy: false,
            }))
        };
        let e = json_error(denial(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db",
            "implicitDeny",
        ));
        assert_eq!((e.status, e.code), (400, "AccessDeniedException"));
        assert_eq!(
            e.message,
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:db because no identity-based policy allows the secretsmanager:GetSecretValue action"
        );
        let e = json_error(denial("*", "explicitDeny"));
        assert_eq!(
            e.message,
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: secretsmanager:GetSecretValue with an explicit deny in an identity-based policy"
        );
        assert!(!e.message.contains("stored"));
        // A key policy's refusal names the policy kind that refused.
        let mut by_key = denial("arn:aws:kms:us-east-1:123456789012:key/k", "implicitDeny");
        if let Some(d) = by_key.denial.as_mut() {
            d.by_resource_policy = true;
        }
        assert!(json_error(by_key).message.ends_with(
            "because no resource-based policy allows the secretsmanager:GetSecretValue action"
        ));
    }

    #[test]
    fn input_errors_keep_their_codes() {
        let e = ApiError::from(
            latchkey_awsjson::parse_body(b"[]")
                .err()
                .unwrap_or_else(|| {
                    latchkey_awsjson::InputError::invalid_parameter("unexpected success")
                }),
        );
        let e = json_error(e);
        assert_eq!((e.status, e.code), (400, "SerializationException"));
    }

    #[test]
    fn services_are_registered_once() {
        for (i, s) in SERVICES.iter().enumerate() {
            assert!(
                !SERVICES[..i].iter().any(|o| o.prefix == s.prefix),
                "{}",
                s.prefix
            );
            assert_eq!(
                service(s.prefix).map(|f| f.signing_name),
                Some(s.signing_name)
            );
        }
        assert!(service("SecretsManager").is_none(), "prefixes are exact");
    }
}
