//! The secret value, as AWS's RDS rotation templates read and write it:
//! a JSON object in the version's `SecretString`.
//!
//! ```json
//! {"engine": "postgres", "host": "db.example", "port": 5432,
//!  "username": "app", "password": "…", "dbname": "orders",
//!  "masterarn": "arn:aws:secretsmanager:…", "master_username": "admin"}
//! ```
//!
//! `port` may be a number or a string of digits and defaults to the
//! engine's (the templates do both); `dbname`, `masterarn` and
//! `master_username` are optional (`null` counts as absent). Fields this
//! crate does not know (`ssl`, `dbClusterIdentifier`, …) are kept and
//! written back, since the templates carry the whole object from one
//! version to the next.

use std::fmt;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Largest secret value parsed (Secrets Manager's own limit).
pub const MAX_SECRET_LEN: usize = 65_536;

/// The `engine` field. The Aurora and MariaDB names are accepted as the
/// templates accept them, and written back as they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    Postgres,
    AuroraPostgresql,
    Mysql,
    AuroraMysql,
    Mariadb,
}

/// Which wire protocol and SQL dialect an [`Engine`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Postgres,
    Mysql,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::AuroraPostgresql => "aurora-postgresql",
            Engine::Mysql => "mysql",
            Engine::AuroraMysql => "aurora-mysql",
            Engine::Mariadb => "mariadb",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Engine::Postgres | Engine::AuroraPostgresql => Family::Postgres,
            Engine::Mysql | Engine::AuroraMysql | Engine::Mariadb => Family::Mysql,
        }
    }

    /// The port when the secret names none.
    pub fn default_port(self) -> u16 {
        match self.family() {
            Family::Postgres => 5432,
            Family::Mysql => 3306,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "postgres" => Engine::Postgres,
            "aurora-postgresql" => Engine::AuroraPostgresql,
            "mysql" => Engine::Mysql,
            "aurora-mysql" => Engine::AuroraMysql,
            "mariadb" => Engine::Mariadb,
            _ => return None,
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a secret value is refused. Never carries the password or any
/// other value of the secret but the engine name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret value is over {MAX_SECRET_LEN} bytes")]
    TooLarge,
    // serde_json's own message can quote the input; line and column do not.
    #[error("the secret value is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the secret value is not a JSON object")]
    NotObject,
    #[error("the secret has no \"{0}\"")]
    Missing(&'static str),
    #[error("\"{field}\" must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("\"{0}\" is empty")]
    Empty(&'static str),
    #[error("\"{0}\" contains a NUL character")]
    Nul(&'static str),
    #[error("engine {0:?} is not one of postgres, aurora-postgresql, mysql, aurora-mysql, mariadb")]
    UnknownEngine(String),
    #[error("\"port\" must be a whole number from 1 to 65535")]
    Port,
}

/// One version's value. `Debug` shows everything but the password (and
/// the values of fields this crate does not know, which may be secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Zeroizing<String>,
    pub dbname: Option<String>,
    /// The ARN of the secret holding the privileged ("master") login, as
    /// AWS's multi-user templates name it. Kept, not used: Latchkey
    /// finds that login by [`Secret::master_username`].
    pub masterarn: Option<String>,
    /// The privileged login the alternating-users strategy runs as: a
    /// user of the same registered database whose password Latchkey
    /// stores.
    pub master_username: Option<String>,
    /// Every other field, written back unchanged.
    pub other: Map<String, Value>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("dbname", &self.dbname)
            .field("masterarn", &self.masterarn)
            .field("master_username", &self.master_username)
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish()
    }
}

const KNOWN: [&str; 8] = [
    "engine",
    "host",
    "port",
    "username",
    "password",
    "dbname",
    "masterarn",
    "master_username",
];

impl Secret {
    /// Parses a `SecretString`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.len() > MAX_SECRET_LEN {
            return Err(SecretError::TooLarge);
        }
        let value: Value = serde_json::from_str(text).map_err(|e| SecretError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
        let Value::Object(mut map) = value else {
            return Err(SecretError::NotObject);
        };
        // Taken out of the map first, so the one copy ends up zeroised
        // whatever fails next.
        let password = match map.remove("password") {
            Some(Value::String(p)) => Zeroizing::new(p),
            Some(_) => {
                return Err(SecretError::WrongType {
                    field: "password",
                    expected: "a string",
                });
            }
            None => return Err(SecretError::Missing("password")),
        };
        if password.is_empty() {
            return Err(SecretError::Empty("password"));
        }
        if password.contains('\0') {
            return Err(SecretError::Nul("password"));
        }
        let engine_name = required_string(&map, "engine")?;
        let engine = Engine::parse(&engine_name)
            .ok_or_else(|| SecretError::UnknownEngine(engine_name.chars().take(40).collect()))?;
        let port = match map.get("port") {
            None | Some(Value::Null) => engine.default_port(),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n != 0)
                .ok_or(SecretError::Port)?,
            Some(Value::String(s)) => s
                .parse::<u16>()
                .ok()
                .filter(|&n| n != 0 && s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(SecretError::Port)?,
            Some(_) => return Err(SecretError::Port),
        };
        let secret = Secret {
            engine,
            host: required_string(&map, "host")?,
            port,
            username: required_string(&map, "username")?,
            password,
            dbname: optional_string(&map, "dbname")?,
            masterarn: optional_string(&map, "masterarn")?,
            master_username: optional_string(&map, "master_username")?,
            other: map
                .into_iter()
                .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
                .collect(),
        };
        Ok(secret)
    }

    /// The `SecretString` for this value: the known fields in a fixed
    /// order, then the others. Wiped on drop, since it holds the
    /// password.
    pub fn to_json(&self) -> Zeroizing<String> {
        let others: Vec<(&String, String)> =
            self.other.iter().map(|(k, v)| (k, v.to_string())).collect();
        let strings = [
            self.engine.as_str(),
            &self.host,
            &self.username,
            &self.password,
            self.dbname.as_deref().unwrap_or_default(),
            self.masterarn.as_deref().unwrap_or_default(),
            self.master_username.as_deref().unwrap_or_default(),
        ];
        // Reserved up front: a reallocation would leave a copy of the
        // password in freed memory. Escaping makes a character at most
        // 6 bytes.
        let capacity = 256
            + strings.iter().map(|s| 6 * s.len()).sum::<usize>()
            + others
                .iter()
                .map(|(k, v)| 6 * k.len() + v.len() + 4)
                .sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        out.push('{');
        field(&mut out, "engine", self.engine.as_str());
        out.push_str(&format!(",\"port\":{}", self.port));
        out.push(',');
        field(&mut out, "host", &self.host);
        out.push(',');
        field(&mut out, "username", &self.username);
        out.push(',');
        field(&mut out, "password", &self.password);
        for (name, value) in [
            ("dbname", &self.dbname),
            ("masterarn", &self.masterarn),
            ("master_username", &self.master_username),
        ] {
            if let Some(value) = value {
                out.push(',');
                field(&mut out, name, value);
            }
        }
        for (k, v) in &others {
            out.push(',');
            json_string(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }

    /// The same value with another user name and password (what a
    /// pending version is made of).
    pub fn with_credentials(&self, username: &str, password: Zeroizing<String>) -> Self {
        Secret {
            username: username.to_owned(),
            password,
            ..self.clone()
        }
    }
}

fn required_string(map: &Map<String, Value>, name: &'static str) -> Result<String, SecretError> {
    optional_string(map, name)?.ok_or(SecretError::Missing(name))
}

fn optional_string(
    map: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, SecretError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Err(SecretError::Empty(name)),
        Some(Value::String(s)) if s.contains('\0') => Err(SecretError::Nul(name)),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(SecretError::WrongType {
            field: name,
            expected: "a string",
        }),
    }
}

fn field(out: &mut String, name: &str, value: &str) {
    json_string(out, name);
    out.push(':');
    json_string(out, value);
}

/// Appends `s` as a JSON string (RFC 8259 escapes), in place.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz find (rotation_input): a number in a field the secret does not
    /// know came back one unit off after a write and a read, because
    /// serde_json rounded floats fast rather than exactly. serde_json's
    /// `float_roundtrip` makes them exact.
    #[test]
    fn numbers_in_unknown_fields_survive_a_write() {
        let text = r#"{"engine":"postgres","host":"db","username":"app","password":"ps","x":5555555755555555544442E5}"#;
        let secret = Secret::parse(text).expect("parses");
        assert_eq!(Secret::parse(&secret.to_json()).expect("parses"), secret);
    }

    const FULL: &str = r#"{"engine":"postgres","host":"db.example","port":5432,
        "username":"app","password":"s3cr\"et","dbname":"orders",
        "masterarn":"arn:aws:secretsmanager:us-east-1:123456789012:secret:m",
        "master_username":"admin","ssl":true}"#;

    #[test]
    fn parses_every_field_and_keeps_unknown_ones() {
        let s = Secret::parse(FULL).unwrap();
        assert_eq!(s.engine, Engine::Postgres);
        assert_eq!(s.host, "db.example");
        assert_eq!(s.port, 5432);
        assert_eq!(s.username, "app");
        assert_eq!(s.password.as_str(), "s3cr\"et");
        assert_eq!(s.dbname.as_deref(), Some("orders"));
        assert!(s.masterarn.as_deref().unwrap().ends_with(":secret:m"));
        assert_eq!(s.master_username.as_deref(), Some("admin"));
        assert_eq!(s.other.get("ssl"), Some(&Value::Bool(true)));
    }

    #[test]
    fn round_trips() {
        let s = Secret::parse(FULL).unwrap();
        let json = s.to_json();
        assert_eq!(Secret::parse(&json).unwrap(), s);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["port"], 5432);
        assert_eq!(v["ssl"], true);
    }

    #[test]
    fn escapes_what_json_needs() {
        let mut s = Secret::parse(FULL).unwrap();
        s.password = Zeroizing::new("a\\b\"c\n\u{1}é".to_owned());
        s.username = "we\"ird'user".to_owned();
        let back = Secret::parse(&s.to_json()).unwrap();
        assert_eq!(back.password, s.password);
        assert_eq!(back.username, s.username);
    }

    #[test]
    fn debug_hides_the_password_and_unknown_values() {
        let mut s = Secret::parse(FULL).unwrap();
        s.other
            .insert("api_key".into(), Value::String("hidden-value".into()));
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert!(!debug.contains("hidden-value"), "{debug}");
        assert!(debug.contains("<redacted>") && debug.contains("api_key"));
    }

    #[test]
    fn port_as_string_or_absent() {
        let s = Secret::parse(
            r#"{"engine":"mysql","host":"h","port":"3307","username":"u","password":"p"}"#,
        )
        .unwrap();
        assert_eq!((s.engine.family(), s.port), (Family::Mysql, 3307));
        let s = Secret::parse(r#"{"engine":"mariadb","host":"h","username":"u","password":"p"}"#)
            .unwrap();
        assert_eq!(s.port, 3306);
        assert_eq!(s.engine.as_str(), "mariadb");
        let s = Secret::parse(
            r#"{"engine":"postgres","host":"h","username":"u","password":"p","dbname":null}"#,
        )
        .unwrap();
        assert_eq!((s.port, s.dbname), (5432, None));
    }

    #[test]
    fn precise_errors_without_the_password() {
        let base =
            |patch: &str| format!(r#"{{"engine":"postgres","host":"h","username":"u",{patch}}}"#);
        let cases: Vec<(String, SecretError)> = vec![
            ("{".into(), SecretError::NotJson { line: 1, column: 1 }),
            ("[1]".into(), SecretError::NotObject),
            (base(r#""x":1"#), SecretError::Missing("password")),
            (
                base(r#""password":7"#),
                SecretError::WrongType {
                    field: "password",
                    expected: "a string",
                },
            ),
            (base(r#""password":"""#), SecretError::Empty("password")),
            (
                base(r#""password":"a\u0000b""#),
                SecretError::Nul("password"),
            ),
            (
                r#"{"engine":"oracle","host":"h","username":"u","password":"pw-123"}"#.into(),
                SecretError::UnknownEngine("oracle".into()),
            ),
            (
                r#"{"host":"h","username":"u","password":"pw-123"}"#.into(),
                SecretError::Missing("engine"),
            ),
            (
                r#"{"engine":"postgres","username":"u","password":"pw-123"}"#.into(),
                SecretError::Missing("host"),
            ),
            (base(r#""password":"pw-123","port":0"#), SecretError::Port),
            (
                base(r#""password":"pw-123","port":70000"#),
                SecretError::Port,
            ),
            (
                base(r#""password":"pw-123","port":"54x""#),
                SecretError::Port,
            ),
            (
                base(r#""password":"pw-123","port":"+5432""#),
                SecretError::Port,
            ),
            (
                base(r#""password":"pw-123","port":5432.5"#),
                SecretError::Port,
            ),
            (
                base(r#""password":"pw-123","dbname":5"#),
                SecretError::WrongType {
                    field: "dbname",
                    expected: "a string",
                },
            ),
            (
                base(r#""password":"pw-123","master_username":"""#),
                SecretError::Empty("master_username"),
            ),
        ];
        for (text, want) in cases {
            let got = Secret::parse(&text).unwrap_err();
            assert_eq!(got, want, "{text}");
            assert!(!got.to_string().contains("pw-123"));
        }
        // A type error in JSON syntax names no content either.
        let err = Secret::parse(r#"{"password":"pw-123" "#).unwrap_err();
        assert!(!err.to_string().contains("pw-123"), "{err}");
        assert_eq!(
            Secret::parse(&" ".repeat(MAX_SECRET_LEN + 1)),
            Err(SecretError::TooLarge)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_credentials_round_trip(user in "\\PC{1,40}", password in "\\PC{1,80}") {
            let s = Secret::parse(FULL).unwrap().with_credentials(&user, Zeroizing::new(password));
            proptest::prop_assume!(!s.username.contains('\0') && !s.password.contains('\0'));
            proptest::prop_assert_eq!(Secret::parse(&s.to_json()).unwrap(), s);
        }
    }
}
