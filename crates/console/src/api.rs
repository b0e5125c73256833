//! The console acts through the API: every read and change is an STS or
//! IAM call made in process for the signed-in caller, with the same
//! handlers, authorisation and audit record as the AWS CLI's call would
//! have. Results come back as the CLI shows them (JSON).

use std::net::SocketAddr;

use latchkey_identity::{ActionContext, AppState, Caller};
use serde_json::Value;

/// What the console puts in the trail's `userAgent`.
pub const USER_AGENT: &str = "latchkey-console";

/// A refused or failed call, as the API answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

pub struct Api<'a> {
    pub state: &'a AppState,
    pub caller: Caller,
    pub peer: SocketAddr,
}

impl Api<'_> {
    /// Calls `action` with `params`; its result as JSON.
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, Refusal> {
        let xml = latchkey_server::http::call_in_process(
            self.state,
            &self.caller,
            action,
            params,
            self.peer,
            USER_AGENT,
        )
        .map_err(|e| Refusal {
            code: e.code.to_owned(),
            message: e.message,
        })?;
        latchkey_client::interpret(action, 200, &xml).map_err(|e| Refusal {
            code: "InternalFailure".into(),
            message: e.to_string(),
        })
    }

    /// Calls a JSON 1.1 service's `operation` (`prefix`: `secretsmanager`,
    /// `AmazonSSM`, `TrentService`) with `input`; its output.
    pub fn json(&self, prefix: &str, operation: &str, input: Value) -> Result<Value, Refusal> {
        let input = match input {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        latchkey_server::http::call_json_in_process(
            self.state,
            &self.caller,
            prefix,
            operation,
            input,
            self.peer,
            USER_AGENT,
        )
        .map_err(|e| Refusal {
            code: e.code.to_owned(),
            message: e.message,
        })
    }

    /// Authorises `action` on `resource` for a page that reads the store
    /// itself (nothing in the API lists it): the same policy engine.
    pub fn allowed(&self, action: &str, resource: &str) -> Result<(), Refusal> {
        self.allowed_in(action, resource, &ActionContext::new())
    }

    /// As [`Api::allowed`], with the condition keys the action carries
    /// (the resource's tags, the tags a change sets).
    pub fn allowed_in(
        &self,
        action: &str,
        resource: &str,
        context: &ActionContext,
    ) -> Result<(), Refusal> {
        self.state
            .authorize_shown(
                &self.caller,
                action,
                resource,
                resource,
                self.state.now(),
                context,
            )
            .map_err(|e| {
                let e = latchkey_server::error::ApiError::from(e);
                Refusal {
                    code: e.code.to_owned(),
                    message: e.message,
                }
            })
    }
}

/// A JSON list field as a slice (absent or empty: none).
pub fn list<'v>(v: &'v Value, field: &str) -> &'v [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A JSON field as text (absent: empty).
pub fn text<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}
