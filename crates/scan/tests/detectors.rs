#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Each detector on the shapes it is for, and the decoys it must leave.

use latchkey_scan::{Detector, Scanner, Severity};

/// (detector id, severity, the secret's text) of every finding in `text`.
fn found(text: &str) -> Vec<(&'static str, Severity, String)> {
    Scanner::new()
        .scan(text.as_bytes())
        .into_iter()
        .map(|f| {
            assert_eq!(&text[f.start..f.end], f.secret.expose());
            (f.detector.id(), f.severity, f.secret.expose().to_owned())
        })
        .collect()
}

fn only(text: &str) -> (&'static str, Severity, String) {
    let all = found(text);
    assert_eq!(all.len(), 1, "one finding in {text:?}: {all:?}");
    all.into_iter().next().unwrap()
}

const KEY: &str = "AKIA2E0A8F3B244C9986";
const SECRET: &str = "7Hq1p0y3VvU+9sKdWm2LxRz/4bNcTgEiJoAf5QhY";

#[test]
fn an_access_key_with_its_secret_is_critical() {
    for text in [
        format!("export AWS_ACCESS_KEY_ID={KEY}\nexport AWS_SECRET_ACCESS_KEY={SECRET}\n"),
        format!("{{\"AccessKeyId\": \"{KEY}\",\n \"SecretAccessKey\": \"{SECRET}\"}}"),
        format!("User name,Access key ID,Secret access key\nalice,{KEY},{SECRET}\n"),
        format!(
            "s3 = boto3.client('s3', aws_access_key_id='{KEY}',\n    aws_secret_access_key='{SECRET}')"
        ),
        format!("fs.s3a.path = s3a://{KEY}:{SECRET}@bucket/data"),
    ] {
        let (id, severity, secret) = only(&text);
        assert_eq!(
            (id, severity),
            ("aws-access-key", Severity::Critical),
            "{text}"
        );
        assert_eq!(secret, SECRET);
    }
    let f = &Scanner::new().scan(format!("id={KEY} key={SECRET}").as_bytes())[0];
    assert_eq!(f.key_id.as_deref(), Some(KEY));
    assert_eq!((f.line, f.column), (1, 29));
}

#[test]
fn a_credentials_file_is_its_own_finding() {
    let text = format!(
        "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n\n[profile x]\nregion = us-east-1\n"
    );
    let (id, severity, secret) = only(&text);
    assert_eq!(
        (id, severity, secret.as_str()),
        ("credentials-file", Severity::Critical, SECRET)
    );
}

#[test]
fn a_key_id_alone_and_a_secret_alone() {
    let (id, severity, secret) = only(&format!("key: {KEY}\n"));
    assert_eq!(
        (id, severity, secret.as_str()),
        ("aws-access-key", Severity::Medium, KEY)
    );
    let (id, severity, _) = only(&format!(
        "\n\n\n\n\n\n\n\naws_secret_access_key = \"{SECRET}\""
    ));
    assert_eq!((id, severity), ("aws-secret-key", Severity::High));
    let session = format!("ASIA{}", &KEY[4..]);
    let (id, _, _) = only(&format!("creds = '{session}'"));
    assert_eq!(id, "aws-access-key");
}

#[test]
fn session_tokens() {
    let token = "AQAAAAE".to_owned() + &"x9Kq_-Zb".repeat(20);
    let (id, severity, secret) = only(&format!("AWS_SESSION_TOKEN={token}\n"));
    assert_eq!((id, severity), ("session-token", Severity::High));
    assert_eq!(secret, token);
    // With no name before it, beside a temporary key and its secret (a
    // table, a script's output): Latchkey's shape is found there.
    let session = format!("ASIA{}", &KEY[4..]);
    let all = found(&format!("{session}  {SECRET}  {token}\n"));
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .any(|(d, _, v)| *d == "session-token" && *v == token)
    );
    // Under any token-ish name, however long.
    let long = "AQAAAAE".to_owned() + &"x9Kq_-Zb".repeat(40);
    for text in [
        format!("token = \"{long}\"\n"),
        format!("LATCHKEY_TOKEN=\"{long}\"\n"),
        format!("      aws-session-token: {long}\n"),
    ] {
        let (id, severity, secret) = only(&text);
        assert_eq!(
            (id, severity, secret.as_str()),
            ("session-token", Severity::High, long.as_str()),
            "{text}"
        );
    }
    // Alone, or beside a long-term key, such a string is no finding.
    assert_eq!(found(&format!("blob {token}\n")), []);
    assert_eq!(found(&format!("{KEY} {SECRET} {token}\n")).len(), 1);
}

#[test]
fn database_urls_dsns_and_environment() {
    let cases = [
        (
            "DATABASE_URL=postgres://app:S3cr3t-Pw@db.internal:5432/orders",
            "database-url",
            "S3cr3t-Pw",
        ),
        (
            "url = \"mysql://root:hunter2x@127.0.0.1/shop\"",
            "database-url",
            "hunter2x",
        ),
        (
            "postgresql://db/orders?user=app&password=Zq8pL2mK",
            "database-url",
            "Zq8pL2mK",
        ),
        (
            "jdbc:postgresql://db:5432/orders?user=app&password=Zq8pL2mK&ssl=true",
            "jdbc-url",
            "Zq8pL2mK",
        ),
        (
            "jdbc:mysql://app:Zq8pL2mK@db:3306/shop",
            "jdbc-url",
            "Zq8pL2mK",
        ),
        (
            "engine = create_engine('postgresql+psycopg2://app:Zq8pL2mK@db/orders')",
            "database-url",
            "Zq8pL2mK",
        ),
        (
            "DB = 'mysql+pymysql://app:Zq8pL2mK@db/shop'",
            "database-url",
            "Zq8pL2mK",
        ),
        (
            "conn = psycopg.connect(\"host=db dbname=orders user=app password=Zq8pL2mK\")",
            "libpq-dsn",
            "Zq8pL2mK",
        ),
        (
            r#"psycopg.connect("host=db user=app password='q u \'o t e d'")"#,
            "libpq-dsn",
            r"q u \'o t e d",
        ),
        ("PGPASSWORD=Zq8pL2mK psql -h db", "env-password", "Zq8pL2mK"),
        ("export MYSQL_PWD='Zq8pL2mK'", "env-password", "Zq8pL2mK"),
        ("      PGPASSWORD: Zq8pL2mK", "env-password", "Zq8pL2mK"),
        ("ENV PGPASSWORD Zq8pL2mK", "env-password", "Zq8pL2mK"),
        (
            "mysql -h db -u root -pZq8pL2mK shop",
            "env-password",
            "Zq8pL2mK",
        ),
        (
            "mysqldump --password='Zq8pL2mK' shop > x.sql",
            "env-password",
            "Zq8pL2mK",
        ),
        (
            "MONGO_URL=mongodb+srv://app:Zq8pL2mK@cluster0.example.net/shop",
            "database-url",
            "Zq8pL2mK",
        ),
        ("{\"PGPASSWORD\": \"Zq8pL2mK\"}", "env-password", "Zq8pL2mK"),
        (
            "env:\n  - name: PGPASSWORD\n    value: \"Zq8pL2mK\"\n",
            "env-password",
            "Zq8pL2mK",
        ),
        (
            "jdbc:sqlserver://db:1433;databaseName=shop;user=sa;password=Zq8pL2mK;",
            "jdbc-url",
            "Zq8pL2mK",
        ),
        (
            "url=jdbc:oracle:thin:scott/Zq8pL2mK@db.internal:1521/ORCL",
            "jdbc-url",
            "Zq8pL2mK",
        ),
        (
            "dsn := \"app:Zq8pL2mK@tcp(db:3306)/shop?parseTime=true\"",
            "database-url",
            "Zq8pL2mK",
        ),
        (
            "DSN=root:Zq8pL2mK@unix(/run/mysqld/mysqld.sock)/shop",
            "database-url",
            "Zq8pL2mK",
        ),
        (
            "dsn := \"app:J35Z@oIhM8W:4ek7@tcp(db:3306)/shop\"",
            "database-url",
            "J35Z@oIhM8W:4ek7",
        ),
    ];
    for (text, detector, secret) in cases {
        let all = found(text);
        assert!(
            all.iter()
                .any(|(d, s, v)| *d == detector && *s == Severity::High && v.contains(secret)),
            "{detector} in {text:?}: {all:?}"
        );
        assert!(
            all.iter().all(|(d, _, _)| *d != "generic-secret"),
            "one leak, one finding: {all:?}"
        );
    }
}

#[test]
fn private_keys_plain_and_encrypted() {
    let rsa = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq\nabc=\n-----END RSA PRIVATE KEY-----\n";
    let (id, severity, secret) = only(rsa);
    assert_eq!((id, severity), ("private-key", Severity::High));
    assert!(
        secret.ends_with("-----END RSA PRIVATE KEY-----"),
        "{secret}"
    );
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----";
    assert_eq!(only(encrypted).0, "private-key-encrypted");
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB\n\nMIIEowIBAAKCAQEAvRKXmU3aqYr4zW1pGmQk\n-----END RSA PRIVATE KEY-----";
    assert_eq!(only(legacy).1, Severity::Low);
    // OpenSSH: the cipher name inside the key says.
    use base64::Engine;
    let body = |cipher: &str| {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend((cipher.len() as u32).to_be_bytes());
        raw.extend(cipher.as_bytes());
        raw.extend([0u8; 40]);
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    let openssh = |cipher| {
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            body(cipher)
        )
    };
    assert_eq!(only(&openssh("none")).0, "private-key");
    assert_eq!(only(&openssh("aes256-ctr")).0, "private-key-encrypted");
    // A public key is not a finding.
    assert!(found("-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----").is_empty());
}

#[test]
fn rds_tokens_are_info_and_name_their_key() {
    let token = format!(
        "db.example.com:5432/?Action=connect&DBUser=app&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={KEY}%2F20261204%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261204T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
        "ab".repeat(32)
    );
    let all = Scanner::new().scan(format!("PGPASSWORD='{token}'").as_bytes());
    let rds: Vec<_> = all
        .iter()
        .filter(|f| f.detector == Detector::RdsAuthToken)
        .collect();
    assert_eq!(rds.len(), 1, "{all:?}");
    assert_eq!(rds[0].severity, Severity::Info);
    assert_eq!(rds[0].key_id.as_deref(), Some(KEY));
    assert!(
        all.iter().all(|f| f.detector != Detector::AwsAccessKey),
        "the key id inside is part of the token: {all:?}"
    );
}

#[test]
fn high_entropy_assignments() {
    for text in [
        "API_KEY = \"x8Fq2LmZ0vKp7RtY\"",
        "DB_PASS=Xk9mQ2vL8pR4",
        "client_secret: 'Qw3rT9zXcV1bN7mL'",
        "\"auth_token\": \"9f86d081884c7d659a2feaa0c55ad015\"",
        "db_password := \"Zq8pL2mK!r4\"",
        "API_TOKEN=X8FQ2LMZ0VKP7RTY",
        "auth_token = \"IyyRnOOByQRdDzuJyaCh\"",
        "client_secret = \"/k3J9+Qw2mZ7xV5bN1cR8tY4uI0oP6aS\"",
        // What people make: a word, a year and a sign (2.91 bits).
        "stripe_api_key = \"Summer1991%\"",
    ] {
        let (id, severity, _) = only(text);
        assert_eq!(
            (id, severity),
            ("generic-secret", Severity::Medium),
            "{text}"
        );
    }
}

#[test]
fn decoys_are_not_findings() {
    for text in [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "password = ${DB_PASSWORD}",
        "password: \"<password>\"",
        "PGPASSWORD=$PGPASS psql",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db/orders",
        "postgres://app@db/orders",
        "https://user:pass@example.com/",
        "password = 'changeme'",
        "token = \"xxxxxxxxxxxxxxxx\"",
        "password = config.database.password",
        "secret = os.environ.get('SECRET')",
        "password_hash = bcrypt(password)",
        "tokenizer = Tokenizer(vocab)",
        "let token = next_token();",
        "# the password must be at least eight characters",
        "sha256 = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "id = 123e4567-e89b-12d3-a456-426614174000",
        "password: correcthorsebatterystaple",
        "api_key = get_api_key(user)",
        "token: Option<String>,",
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf\"",
        "password_file: /run/secrets/db_password_2024",
        "password_env = \"DATABASE_PASSWORD\"",
        "token_url = \"https://auth.example.com/oauth2/token\"",
        "Detector::SessionToken => \"A session token\",",
        "sm.create_secret(Name=\"app/db\", SecretString='{\"password\":\"REAL\"}')",
        "tracing::warn!(secret = %secret.arn, \"failed\");",
        "let access_key_id = decode_utf8(akid)?;",
        "use latchkey_dbtoken::{TokenRequest, generate};",
        "TokenAction::DsqlConnect => \"DbConnect\",",
        "pub use password::{PasswordError, PasswordRules};",
        "token: &DbAuthToken<'_>,",
        "secrets: vec![SecretFacts {",
        "c = client(aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2])",
        "\"Condition\":{\"StringEquals\":{\"secretsmanager:ResourceTag/team\":\"payments\"}}",
        "arn:aws:secretsmanager:*:*:secret:prod/app/api-key-a1B2c3",
        "r#\"{\"username\":\"{user}\",\"password\":\"{password}\"}\"#",
        "image = \"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\"",
        // Hashes of passwords and digests are not the secrets.
        "password = \"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\"",
        "admin_password: $argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
        "password = 'SCRAM-SHA-256$4096:c2FsdHNhbHQ=$s3kR9+/storedKey=:serverKey0x9Q='",
        "token_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
        "secret_digest: 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
        "password_hash = \"Xk9mQ2vL8pR4zT7wQ2vL8pR4\"",
        // Names of secrets, not secrets.
        "secret_name = \"prod/db/Xk9mQ2vL8pR4\"",
        "\"SecretId\": \"prod-app-db-Xk9mQ2vL\"",
        "DB_PASSWORD_FILE=/run/secrets/Xk9mQ2vL8pR4",
        "apiTokenUrl: \"https://Xk9mQ2vL8pR4.auth.internal\"",
        "  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef: {name: db, key: password}",
        "  - name: PGPASSWORD\n    value: ${PGPASS}",
        "token = \"v1.2.3-beta.4\"",
        "# set PGPASSWORD before running psql",
        "mysql -h db -u root -p shop",
        "store-url: \"postgres://latchkey:REPLACE@store-pg:5432/latchkey\"",
        "run mysql -p -e 'select 1'",
        "    pub token_from_other_ip: TokenFromOtherIp,",
        "let secret = sessionTokenProvider;",
        "password_prompt = \"Password: \"",
        "password_regex = \"^[A-Za-z0-9]{12,}$\"",
    ] {
        assert_eq!(found(text), [], "{text}");
    }
}

#[test]
fn an_allow_comment_silences_its_line() {
    let text = format!("key = {KEY}  # latchkey:allow\nother = {KEY}\n");
    let all = found(&text);
    assert_eq!(all.len(), 1);
    assert_eq!(Scanner::new().scan(text.as_bytes())[0].line, 2);
    // On the key id's line, it accepts that line only: a secret on the
    // next line may be another key's, and is reported on its own.
    let pair = format!("id = {KEY}  # latchkey:allow\naws_secret_access_key = {SECRET}\n");
    assert_eq!(only(&pair).0, "aws-secret-key");
    let same_line = format!("id = {KEY} secret = {SECRET}  # latchkey:allow\n");
    assert_eq!(found(&same_line), []);
    // An allowed id above a real pair takes nothing from it.
    let real = "AKIAQ7RTX2MBLZ4KD9WE";
    let text = format!(
        "# CI uses the read-only key {KEY} (id only)  # latchkey:allow\n\
         AWS_ACCESS_KEY_ID={real}\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
    );
    let f = &Scanner::new().scan(text.as_bytes());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].detector.id(), f[0].key_id.as_deref()),
        ("aws-access-key", Some(real))
    );
    // On the secret's line, it accepts the secret; the id above is told
    // alone (see an_allow_comment_never_hides_the_other_half_of_a_pair).
}

#[test]
fn each_key_pairs_with_its_own_secret() {
    let (k1, s1) = (KEY, SECRET);
    let (k2, s2) = (
        "AKIAQ7RTX2MBLZ4KD9WE",
        "tZ8pQ2mV9xK4bN7cR1wE5yH3jL6fG0aS2dT8uI4o",
    );
    let pairs = |text: &str| -> Vec<(String, String)> {
        Scanner::new()
            .scan(text.as_bytes())
            .into_iter()
            .map(|f| (f.key_id.unwrap_or_default(), f.secret.expose().to_owned()))
            .collect()
    };
    let expected = vec![
        (k1.to_owned(), s1.to_owned()),
        (k2.to_owned(), s2.to_owned()),
    ];
    // The secret before its id, two blocks: not the next block's secret.
    let text = format!(
        "# prod\nAWS_SECRET_ACCESS_KEY={s1}\nAWS_ACCESS_KEY_ID={k1}\n# dev\n\
         AWS_SECRET_ACCESS_KEY={s2}\nAWS_ACCESS_KEY_ID={k2}\n"
    );
    assert_eq!(pairs(&text), expected);
    // Profiles of a credentials file, secret first: a header parts them.
    let text = format!(
        "[prod]\naws_secret_access_key = {s1}\naws_access_key_id = {k1}\n\
         [dev]\naws_secret_access_key = {s2}\naws_access_key_id = {k2}\n"
    );
    assert_eq!(pairs(&text), expected);
    // A decoy id above does not steal the real id's secret.
    let text = format!("old: AKIA2E0A8F3B244C0000\n\n{k2}\n{s2}\n");
    let found = pairs(&text);
    assert!(found.contains(&(k2.to_owned(), s2.to_owned())), "{found:?}");
}

#[test]
fn a_decoy_id_near_a_secret_leaves_the_real_id_a_candidate() {
    let real = "AKIAQ7RTX2MBLZ4KD9WE";
    let text = format!(
        "[default]\naws_access_key_id = {real}\naws_secret_access_key = {SECRET}\n# was {KEY}\n"
    );
    let all = Scanner::new().scan(text.as_bytes());
    let pair = all.iter().find(|f| f.secret.expose() == SECRET).unwrap();
    let ids: Vec<&str> = pair
        .key_id
        .iter()
        .chain(&pair.other_key_ids)
        .map(String::as_str)
        .collect();
    assert!(ids.contains(&real) && ids.contains(&KEY), "{ids:?}");
}

#[test]
fn an_allow_comment_never_hides_the_other_half_of_a_pair() {
    // On the id's line: its secret on the next line is told.
    let text = format!("AWS_ACCESS_KEY_ID={KEY}  # latchkey:allow\nAWS_SK={SECRET}\n");
    assert_eq!(only(&text).0, "aws-secret-key");
    // On the secret's line: its id on the line above is told.
    let text =
        format!("AWS_ACCESS_KEY_ID={KEY}\naws_secret_access_key={SECRET}  # latchkey:allow\n");
    let (id, severity, secret) = only(&text);
    assert_eq!(
        (id, severity, secret.as_str()),
        ("aws-access-key", Severity::Medium, KEY)
    );
}

#[test]
fn caps_never_hide_a_key_with_its_secret() {
    // A log of ten thousand ids alone, then a key with its secret.
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!("2026-12-05,s3,AKIA2E0A8F3B{i:08},GetObject\n"));
    }
    text.push_str(&format!(
        "\n\n\n\n\n\nAWS_ACCESS_KEY_ID=AKIAQ7RTX2MBLZ4KD9WE\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
    ));
    let all = Scanner::new().scan(text.as_bytes());
    assert!(
        all.iter()
            .any(|f| f.severity == Severity::Critical && f.secret.expose() == SECRET),
        "{} findings, the pair not among them",
        all.len()
    );
    // A line of RDS tokens (info), then a pair.
    let token = format!(
        "db.example.com:5432/?Action=connect&DBUser=app&X-Amz-Signature={} ",
        "0".repeat(64)
    );
    let line = format!(
        "{} aws_access_key_id={KEY} aws_secret_access_key={SECRET}\n",
        token.repeat(130)
    );
    let all = Scanner::new().scan(line.as_bytes());
    assert!(
        all.iter().any(|f| f.severity == Severity::Critical),
        "{} findings",
        all.len()
    );
    // Placeholders do not count towards the ids a line pairs.
    let line = format!("{} {KEY}, {SECRET}\n", "AKIAIOSFODNN7EXAMPLE, ".repeat(300));
    let all = Scanner::new().scan(line.as_bytes());
    assert!(
        all.iter().any(|f| f.severity == Severity::Critical),
        "{all:?}"
    );
    // One line of many ids and a pair at its end.
    let line = format!("{} {KEY} {SECRET}\n", "AKIA2E0A8F3B244C0000 ".repeat(2000));
    let all = Scanner::new().scan(line.as_bytes());
    assert!(all.len() <= 200, "a dump's line is capped: {}", all.len());
}

#[test]
fn a_begin_line_without_a_key_body_is_not_a_key() {
    // A constant naming the header, then a real pair: the pair is found.
    let text = format!(
        "PEM_HEADER = \"-----BEGIN RSA PRIVATE KEY-----\"\n\
         AWS_ACCESS_KEY_ID={KEY}\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
    );
    let (id, severity, secret) = only(&text);
    assert_eq!(
        (id, severity, secret.as_str()),
        ("aws-access-key", Severity::Critical, SECRET)
    );
    // A key cut off (no END line) ends where its base64 does.
    let body = "MIIEowIBAAKCAQEAvRKXmU3aqYr4zW1pGmQk8aP0r2Hn5Cq3dTZ6b1eLJkq9nX4y";
    let text = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body}\nAWS_ACCESS_KEY_ID={KEY}\nAWS_SECRET_ACCESS_KEY={SECRET}\n"
    );
    let all = found(&text);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0].0, "private-key");
    assert!(
        !all[0].2.contains("AWS_"),
        "the block stops at its body: {:?}",
        all[0].2
    );
    assert_eq!(all[1].0, "aws-access-key");
    // A fake block around a key pair: BEGIN, the pair, END. The pair is
    // not the block's body, and is found.
    let text = format!(
        "-----BEGIN RSA PRIVATE KEY-----\nAWS_ACCESS_KEY_ID={KEY}\nAWS_SECRET_ACCESS_KEY={SECRET}\n{body}\n-----END RSA PRIVATE KEY-----\n"
    );
    let all = found(&text);
    assert!(
        all.iter()
            .any(|(d, s, _)| *d == "aws-access-key" && *s == Severity::Critical),
        "{all:?}"
    );
    // The same on one line.
    let text = format!(
        "-----BEGIN ENCRYPTED PRIVATE KEY----- aws_access_key_id={KEY} aws_secret_access_key={SECRET} -----END ENCRYPTED PRIVATE KEY-----\n"
    );
    let all = found(&text);
    assert!(
        all.iter()
            .any(|(d, s, _)| *d == "aws-access-key" && *s == Severity::Critical),
        "{all:?}"
    );
    // A key on one line, its newlines escaped (JSON), ends at its END.
    let text = format!(
        "{{\"key\": \"-----BEGIN RSA PRIVATE KEY-----\\n{body}\\n-----END RSA PRIVATE KEY-----\\n\", \"id\": \"{KEY}\", \"secret\": \"{SECRET}\"}}\n"
    );
    let all = found(&text);
    assert_eq!(all[0].0, "private-key", "{all:?}");
    assert!(
        all[0].2.ends_with("-----END RSA PRIVATE KEY-----"),
        "{all:?}"
    );
    assert!(
        all.iter().any(|(d, _, _)| *d == "aws-access-key"),
        "{all:?}"
    );
}

#[test]
fn fingerprints_survive_moves_and_tell_secrets_apart() {
    let scanner = Scanner::new();
    let a = &scanner.scan(format!("x = 1\nk = {KEY}\n").as_bytes())[0];
    let b = &scanner.scan(format!("k = {KEY}\n").as_bytes())[0];
    assert_eq!(a.fingerprint("f"), b.fingerprint("f"));
    assert_ne!(a.fingerprint("f"), a.fingerprint("g"), "per file");
    assert_ne!(a.line, b.line);
    let other = &scanner.scan(b"k = AKIA2E0A8F3B244C9987")[0];
    assert_ne!(a.fingerprint("f"), other.fingerprint("f"));
}

#[test]
fn binary_and_hostile_input_does_not_panic() {
    let scanner = Scanner::new();
    let mut junk = vec![0xffu8, 0xfe, b'\n', b'A', b'K', b'I', b'A'];
    junk.extend(std::iter::repeat_n(b'=', 5000));
    junk.extend(b"password=\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8 -----BEGIN PRIVATE KEY-----");
    scanner.scan(&junk);
    scanner.scan(b"");
    scanner.scan(b"\n\n\n");
    scanner.scan(b"-----BEGIN OPENSSH PRIVATE KEY-----");
}

#[test]
fn dumps_of_candidates_are_read_once() {
    // Each of these took minutes when every candidate re-read its line.
    let scanner = Scanner::new();
    let ids = "AKIAABCDEFGHIJKLMNOP ".repeat(20_000);
    assert!(
        scanner.scan(ids.as_bytes()).len() <= 64,
        "a line's findings are capped"
    );
    let dsns = "host=x password=Zq8pL2mK ".repeat(20_000);
    assert!(!scanner.scan(dsns.as_bytes()).is_empty());
    let keys =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAvRKXmU3aqYr4zW1p\n".repeat(300_000);
    let found = scanner.scan(keys.as_bytes());
    // High findings may fill twice the cap of the others.
    assert!(!found.is_empty() && found.len() <= 20_000);
    assert!(found.iter().all(|f| f.detector == Detector::PrivateKey));
    // Headers alone (no body) are no keys, and are read once too.
    let headers = "-----BEGIN RSA PRIVATE KEY-----\n".repeat(300_000);
    assert!(scanner.scan(headers.as_bytes()).is_empty());
}

#[test]
fn each_profile_of_a_credentials_file_is_its_own_pair() {
    let second = "AKIA7F3B244C9986E0A8";
    let second_secret = "Zq8pL2mKx7Vb4Nc1Rt6Yw9Ue3Io5Pa0Sd2Fg8Hjk";
    let text = format!(
        "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n\n\
         [profile ops]\naws_access_key_id = {second}\naws_secret_access_key = {second_secret}\n"
    );
    let found = Scanner::new().scan(text.as_bytes());
    let pairs: Vec<(Option<&str>, &str)> = found
        .iter()
        .map(|f| (f.key_id.as_deref(), f.secret.expose()))
        .collect();
    assert_eq!(
        pairs,
        [(Some(KEY), SECRET), (Some(second), second_secret)],
        "{found:?}"
    );
    assert!(found.iter().all(|f| f.severity == Severity::Critical));
}

#[test]
fn a_fingerprint_holds_no_secret_of_its_line() {
    // Two secrets on one line: each one's fingerprint is the same whatever
    // the other secret is, so it confirms no guess of it.
    let scanner = Scanner::new();
    let line = |other: &str| format!("PGPASSWORD=Zq8pL2mKx7 MYSQL_PWD={other} run\n");
    let a = scanner.scan(line("Kq7vR2mX9pLw").as_bytes());
    let b = scanner.scan(line("Tt5wQ1nB3cVz").as_bytes());
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].fingerprint("f"), b[0].fingerprint("f"));
}
