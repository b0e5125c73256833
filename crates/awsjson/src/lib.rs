//! The request side of the AWS JSON 1.1 protocol, as botocore and the
//! SDKs speak it to Secrets Manager, SSM and KMS: `POST /` with
//! `X-Amz-Target: <prefix>.<Operation>` and a JSON object as the body.
//!
//! - [`parse_target`] and [`parse_body`] read a request; anything they
//!   cannot read is a `SerializationException`, as AWS answers it.
//! - The field readers ([`string`], [`int_field`], [`blob`]...) give
//!   handlers typed parameters, or an `InvalidParameterException` that
//!   names the parameter and never echoes its value.
//! - [`request_parameters`] is the body as the audit trail records it:
//!   every secret removed, at any depth.
//!
//! Pure: no I/O. The token service maps [`InputError`] onto its own error
//! type and HTTP answer.

use base64::Engine as _;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A request body: a JSON object.
pub type Input = Map<String, Value>;

/// AWS's code for a body it cannot read.
pub const SERIALIZATION: &str = "SerializationException";
/// AWS's code for a parameter of the wrong type or out of range.
pub const INVALID_PARAMETER: &str = "InvalidParameterException";

/// A request AWS would refuse before any handler ran. The message is
/// what the client is told: it names parameters, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InputError {
    pub code: &'static str,
    pub message: String,
}

impl InputError {
    pub fn serialization(message: impl Into<String>) -> Self {
        Self {
            code: SERIALIZATION,
            message: message.into(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self {
            code: INVALID_PARAMETER,
            message: message.into(),
        }
    }
}

/// `X-Amz-Target`'s `(prefix, operation)`: `secretsmanager.GetSecretValue`
/// is `("secretsmanager", "GetSecretValue")`. `None` for anything that
/// cannot name an operation (so nothing odd reaches a log or a metric).
pub fn parse_target(target: &str) -> Option<(&str, &str)> {
    let (prefix, operation) = target.split_once('.')?;
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let operation_ok = !operation.is_empty()
        && operation.len() <= 128
        && operation.bytes().all(|b| b.is_ascii_alphanumeric());
    (prefix_ok && operation_ok).then_some((prefix, operation))
}

/// The request body as a JSON object; an empty body is `{}`.
///
/// Nesting deeper than serde_json's limit (128) is refused, so no later
/// walk over the input recurses without bound.
pub fn parse_body(body: &[u8]) -> Result<Input, InputError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(InputError::serialization(
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(InputError::serialization(
            "The request body is not valid JSON.",
        )),
    }
}

/// A parameter's value; JSON `null` is absent, as AWS reads it.
fn field<'a>(input: &'a Input, name: &str) -> Option<&'a Value> {
    input.get(name).filter(|v| !v.is_null())
}

fn wrong_type(name: &str, expected: &str) -> InputError {
    InputError::invalid_parameter(format!(
        "Invalid type for parameter {name}: expected {expected}."
    ))
}

/// CloudTrail's and AWS's validation messages name members in lower
/// camel case (`passwordLength`).
pub fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A string parameter.
pub fn string<'a>(input: &'a Input, name: &str) -> Result<Option<&'a str>, InputError> {
    match field(input, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(name, "a string")),
    }
}

/// A string parameter that must be there.
pub fn required_string<'a>(input: &'a Input, name: &str) -> Result<&'a str, InputError> {
    string(input, name)?.ok_or_else(|| {
        InputError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))
    })
}

/// A boolean parameter.
pub fn bool_field(input: &Input, name: &str) -> Result<Option<bool>, InputError> {
    match field(input, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong_type(name, "a boolean")),
    }
}

/// An integer parameter within `min..=max`.
pub fn int_field(input: &Input, name: &str, min: i64, max: i64) -> Result<Option<i64>, InputError> {
    let Some(value) = field(input, name) else {
        return Ok(None);
    };
    let Some(n) = value.as_i64() else {
        return Err(wrong_type(name, "an integer"));
    };
    // Only the number is echoed: it is no secret.
    let bound = if n < min {
        format!("greater than or equal to {min}")
    } else if n > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(Some(n));
    };
    Err(InputError::invalid_parameter(format!(
        "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: Member must have value {bound}",
        lower_first(name)
    )))
}

/// A list of strings.
pub fn string_list<'a>(input: &'a Input, name: &str) -> Result<Option<Vec<&'a str>>, InputError> {
    match field(input, name) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| wrong_type(name, "a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong_type(name, "a list of strings")),
    }
}

/// A blob: base64 text on the wire, bytes here (wiped on drop: blobs
/// are secret values and ciphertexts).
pub fn blob(input: &Input, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, InputError> {
    match field(input, name) {
        None => Ok(None),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Some(Zeroizing::new(b)))
            .map_err(|_| wrong_type(name, "base64-encoded binary data")),
        Some(_) => Err(wrong_type(name, "base64-encoded binary data")),
    }
}

/// Tags: `[{"Key": "k", "Value": "v"}]` as `(key, value)` pairs; a
/// missing `Value` is empty.
pub fn tags(input: &Input, name: &str) -> Result<Option<Vec<(String, String)>>, InputError> {
    let expected = r#"a list of {"Key": string, "Value": string} objects"#;
    let Some(value) = field(input, name) else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(wrong_type(name, expected));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(tag) = item else {
            return Err(wrong_type(name, expected));
        };
        let key = string(tag, "Key")
            .ok()
            .flatten()
            .ok_or_else(|| wrong_type(name, expected))?;
        let value = string(tag, "Value").map_err(|_| wrong_type(name, expected))?;
        out.push((key.to_owned(), value.unwrap_or_default().to_owned()));
    }
    Ok(Some(out))
}

/// Whether a member carries a secret: one of the service's
/// `secret_fields` (any case), or any name that says it is a password
/// or a secret's value.
pub fn is_secret_field(name: &str, secret_fields: &[&str]) -> bool {
    if secret_fields.iter().any(|f| f.eq_ignore_ascii_case(name)) {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    ["password", "secretstring", "secretbinary"]
        .iter()
        .any(|s| lower.contains(s))
}

/// A string longer than this is left out of the audit record (a
/// resource policy, the longest non-secret string these APIs take, is at
/// most 20,480 characters).
pub const MAX_AUDITED_STRING: usize = 20_480;

/// `value` without any secret member, at any depth (inside objects and
/// lists), and without overlong strings.
pub fn without_secrets(value: &Value, secret_fields: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !is_secret_field(k, secret_fields))
                .map(|(k, v)| (k.clone(), without_secrets(v, secret_fields)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| without_secrets(v, secret_fields))
                .collect(),
        ),
        Value::String(s) if s.len() > MAX_AUDITED_STRING => {
            Value::String(format!("(omitted: {} bytes)", s.len()))
        }
        other => other.clone(),
    }
}

/// CloudTrail's `requestParameters`: the input without its secrets, top
/// level members in lower camel case as CloudTrail writes them (nested
/// names are left as sent: some are the caller's own map keys). `None`
/// when nothing is left.
pub fn request_parameters(input: &Input, secret_fields: &[&str]) -> Option<String> {
    let kept: Map<String, Value> = input
        .iter()
        .filter(|(k, _)| !is_secret_field(k, secret_fields))
        .map(|(k, v)| (lower_first(k), without_secrets(v, secret_fields)))
        .collect();
    (!kept.is_empty()).then(|| Value::Object(kept).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn input(v: Value) -> Input {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("secretsmanager.GetRandomPassword"),
            Some(("secretsmanager", "GetRandomPassword"))
        );
        assert_eq!(
            parse_target("AmazonSSM.GetParameter"),
            Some(("AmazonSSM", "GetParameter"))
        );
        for bad in [
            "",
            "secretsmanager",
            "secretsmanager.",
            ".GetSecretValue",
            "a.b.c",
            "a.B\nC",
            "a b.C",
            "a.Get-Secret",
        ] {
            assert_eq!(parse_target(bad), None, "{bad:?}");
        }
        assert_eq!(parse_target(&format!("a.{}", "X".repeat(129))), None);
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b""), Ok(Map::new()));
        assert_eq!(parse_body(b" \r\n"), Ok(Map::new()));
        assert_eq!(parse_body(b"{}"), Ok(Map::new()));
        assert_eq!(
            parse_body(br#"{"A":1}"#).map(|m| m.len()),
            Ok(1),
            "an object"
        );
        let deep_list = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        let huge_string = format!("\"{}\"", "x".repeat(1 << 20));
        let bad: [&[u8]; 9] = [
            b"not json",
            b"[]",
            b"\"text\"",
            b"42",
            b"null",
            b"{\"a\":",
            b"\xff\xfe{}",
            deep_list.as_bytes(),
            huge_string.as_bytes(),
        ];
        for body in bad.iter().chain([&deep_object.as_bytes()]) {
            let e = parse_body(body).err();
            assert_eq!(
                e.as_ref().map(|e| e.code),
                Some(SERIALIZATION),
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
    }

    #[test]
    fn field_readers() {
        let i = input(json!({
            "Name": "db", "Flag": true, "N": 40, "Big": 5000, "Neg": -1, "F": 1.5,
            "List": ["a", "b"], "Blob": "aGVsbG8=", "Null": null,
            "Tags": [{"Key": "env", "Value": "dev"}, {"Key": "team"}],
        }));
        assert_eq!(string(&i, "Name"), Ok(Some("db")));
        assert_eq!(string(&i, "Missing"), Ok(None));
        assert_eq!(string(&i, "Null"), Ok(None));
        assert_eq!(required_string(&i, "Name"), Ok("db"));
        let missing = required_string(&i, "SecretId").err();
        assert_eq!(missing.as_ref().map(|e| e.code), Some(INVALID_PARAMETER));
        assert!(missing.is_some_and(|e| e.message.contains("'secretId'")));
        assert_eq!(bool_field(&i, "Flag"), Ok(Some(true)));
        assert_eq!(int_field(&i, "N", 1, 4096), Ok(Some(40)));
        assert_eq!(
            int_field(&i, "Big", 1, 4096).map_err(|e| e.message),
            Err("1 validation error detected: Value '5000' at 'big' failed to satisfy constraint: Member must have value less than or equal to 4096".into())
        );
        assert!(
            int_field(&i, "Neg", 1, 4096)
                .is_err_and(|e| e.message.ends_with("greater than or equal to 1"))
        );
        assert_eq!(string_list(&i, "List"), Ok(Some(vec!["a", "b"])));
        assert_eq!(
            blob(&i, "Blob").map(|b| b.map(|b| b.to_vec())),
            Ok(Some(b"hello".to_vec()))
        );
        assert_eq!(
            tags(&i, "Tags"),
            Ok(Some(vec![
                ("env".into(), "dev".into()),
                ("team".into(), String::new())
            ]))
        );
        // Wrong types name the parameter, never the value.
        for (name, e) in [
            ("Name", bool_field(&i, "Name").err()),
            ("Flag", string(&i, "Flag").err()),
            ("F", int_field(&i, "F", 0, 10).err()),
            ("Name", int_field(&i, "Name", 0, 10).err()),
            ("List", string(&i, "List").err()),
            ("Name", string_list(&i, "Name").err()),
            ("Name", blob(&i, "Name").err()),
            ("Flag", blob(&i, "Flag").err()),
            ("List", tags(&i, "List").err()),
            ("Name", tags(&i, "Name").err()),
        ] {
            let e = e.unwrap_or_else(|| panic!("{name} should be refused"));
            assert_eq!(e.code, INVALID_PARAMETER);
            assert!(e.message.contains(&format!("parameter {name}:")), "{e}");
            assert!(
                !e.message.contains("db") && !e.message.contains("[\"a\""),
                "{e}"
            );
        }
        let bad_tags = input(json!({"Tags": [{"Value": "x"}], "T2": [{"Key": 1}], "T3": ["k"]}));
        assert!(tags(&bad_tags, "Tags").is_err());
        assert!(tags(&bad_tags, "T2").is_err());
        assert!(tags(&bad_tags, "T3").is_err());
    }

    #[test]
    fn secrets_never_reach_request_parameters() {
        let i = input(json!({
            "SecretId": "db/app",
            "SecretString": "hunter2",
            "SecretBinary": "aHVudGVyMg==",
            "PasswordLength": 40,
            "ExcludePunctuation": true,
            "Nested": {"secretString": "hunter2", "Keep": 1,
                       "List": [{"NewPassword": "hunter2", "Name": "n"}]},
            "Plaintext": "hunter2",
            "Description": "x".repeat(MAX_AUDITED_STRING + 1),
        }));
        let text = request_parameters(&i, &["Plaintext"]).unwrap_or_default();
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["secretId"], "db/app");
        assert_eq!(v["excludePunctuation"], true);
        assert!(v.get("passwordLength").is_none());
        assert_eq!(v["nested"], json!({"Keep": 1, "List": [{"Name": "n"}]}));
        assert_eq!(v["description"], "(omitted: 20481 bytes)");
        assert_eq!(
            request_parameters(&input(json!({"SecretString": "s"})), &[]),
            None
        );
        assert_eq!(request_parameters(&Map::new(), &[]), None);
    }

    /// Every key path in `v`, for checking what the audit keeps.
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "SecretId",
            "SecretString",
            "secretBinary",
            "MasterUserPassword",
            "Name",
            "Plaintext",
            "Tags",
            "Key",
        ]);
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,8}".prop_map(Value::from),
            Just(Value::Null),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..5).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn redaction_leaves_no_secret_member(v in arb_json()) {
            let Value::Object(map) = v else { return Ok(()) };
            if let Some(text) = request_parameters(&map, &["Plaintext"]) {
                let out: Value = serde_json::from_str(&text).unwrap_or_default();
                let mut found = Vec::new();
                keys(&out, &mut found);
                for k in found {
                    prop_assert!(!is_secret_field(&k, &["Plaintext"]), "{k} kept in {text}");
                }
            }
        }
    }
}
