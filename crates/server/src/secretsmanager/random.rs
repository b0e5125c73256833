//! `GetRandomPassword`.

use latchkey_identity::ActionContext;
use latchkey_secrets::password::{
    MAX_EXCLUDE_CHARACTERS, MAX_LENGTH, MIN_LENGTH, PasswordError, PasswordSpec, RandomError,
    random_password,
};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::json::{self, Answer, JsonCall};

pub fn get_random_password(call: &JsonCall) -> Result<Answer, ApiError> {
    call.state.authorize_in(
        call.caller,
        "secretsmanager:GetRandomPassword",
        "*",
        call.now,
        &ActionContext::new(),
    )?;
    let spec = spec(call.input)?;
    let password = random_password(&spec, os_random).map_err(|e| match e {
        PasswordError::Random => ApiError::new(
            500,
            "InternalServiceError",
            "An error occurred on the server side.",
        )
        .because("the OS random source failed"),
        other => json::invalid_parameter(other.to_string()),
    })?;
    Ok(Answer::output(
        serde_json::json!({ "RandomPassword": password.as_str() }),
    ))
}

/// The request's parameters, with AWS's defaults.
fn spec(input: &json::Input) -> Result<PasswordSpec, ApiError> {
    let defaults = PasswordSpec::default();
    let flag = |name: &str, default: bool| -> Result<bool, ApiError> {
        Ok(json::bool_field(input, name)?.unwrap_or(default))
    };
    let length = match json::int_field(
        input,
        "PasswordLength",
        MIN_LENGTH as i64,
        MAX_LENGTH as i64,
    )? {
        Some(n) => usize::try_from(n).map_err(|_| ApiError::internal())?,
        None => defaults.length,
    };
    let exclude = json::string(input, "ExcludeCharacters")?.unwrap_or_default();
    if exclude.chars().count() > MAX_EXCLUDE_CHARACTERS {
        return Err(json::invalid_parameter(format!(
            "1 validation error detected: Value at 'excludeCharacters' failed to satisfy constraint: Member must have length less than or equal to {MAX_EXCLUDE_CHARACTERS}"
        )));
    }
    Ok(PasswordSpec {
        length,
        exclude_characters: exclude.to_owned(),
        exclude_numbers: flag("ExcludeNumbers", defaults.exclude_numbers)?,
        exclude_punctuation: flag("ExcludePunctuation", defaults.exclude_punctuation)?,
        exclude_uppercase: flag("ExcludeUppercase", defaults.exclude_uppercase)?,
        exclude_lowercase: flag("ExcludeLowercase", defaults.exclude_lowercase)?,
        include_space: flag("IncludeSpace", defaults.include_space)?,
        require_each_included_type: flag(
            "RequireEachIncludedType",
            defaults.require_each_included_type,
        )?,
    })
}

/// The OS CSPRNG, through the store's one entry to it.
fn os_random(buf: &mut [u8]) -> Result<(), RandomError> {
    for chunk in buf.chunks_mut(64) {
        let block = Zeroizing::new(latchkey_store::random::<64>().map_err(|_| RandomError)?);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> json::Input {
        match v {
            serde_json::Value::Object(m) => m,
            _ => json::Input::new(),
        }
    }

    #[test]
    fn parameters_and_defaults() {
        assert_eq!(
            spec(&json::Input::new()).ok(),
            Some(PasswordSpec::default())
        );
        let s = spec(&input(json!({
            "PasswordLength": 40, "ExcludeCharacters": "abc", "ExcludeNumbers": true,
            "ExcludePunctuation": true, "ExcludeUppercase": true, "ExcludeLowercase": true,
            "IncludeSpace": true, "RequireEachIncludedType": false,
        })))
        .ok();
        assert_eq!(
            s,
            Some(PasswordSpec {
                length: 40,
                exclude_characters: "abc".into(),
                exclude_numbers: true,
                exclude_punctuation: true,
                exclude_uppercase: true,
                exclude_lowercase: true,
                include_space: true,
                require_each_included_type: false,
            })
        );
        for bad in [
            json!({"PasswordLength": 0}),
            json!({"PasswordLength": 4097}),
            json!({"PasswordLength": "40"}),
            json!({"ExcludeNumbers": "true"}),
            json!({"ExcludeCharacters": 5}),
            json!({"ExcludeCharacters": "x".repeat(4097)}),
        ] {
            let e = spec(&input(bad.clone())).err();
            assert_eq!(
                e.map(|e| (e.status, e.code)),
                Some((400, "InvalidParameterException")),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_os_source_fills_any_length() {
        for n in [0, 1, 63, 64, 65, 300] {
            let mut buf = vec![0u8; n];
            assert_eq!(os_random(&mut buf), Ok(()));
        }
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        assert!(os_random(&mut a).is_ok() && os_random(&mut b).is_ok());
        assert_ne!(a, b);
    }
}
