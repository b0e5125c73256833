//! IAM's credential report: one CSV row per user (the account's root
//! first), with AWS's columns in AWS's order and AWS's values (`true`,
//! `N/A`, `no_information`, `not_supported`, ISO 8601 times with
//! `+00:00`), so tools written for AWS's report read it unchanged.

use std::time::{Duration, UNIX_EPOCH};

/// AWS's columns, in order.
pub const COLUMNS: [&str; 22] = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// An access key's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportKey {
    pub active: bool,
    /// Creation (IAM's "last rotated"), epoch seconds.
    pub created: i64,
    /// Last use: epoch seconds and service.
    pub last_used: Option<(i64, String)>,
}

/// A user's console password, in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPassword {
    pub last_changed: i64,
    pub last_used: Option<i64>,
    pub next_rotation: Option<i64>,
}

/// A user's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUser {
    pub name: String,
    pub arn: String,
    pub created: i64,
    pub password: Option<ReportPassword>,
    pub mfa_active: bool,
    /// In creation order: the first two are `access_key_1` and `_2`.
    pub keys: Vec<ReportKey>,
}

/// `2024-01-31T12:00:00+00:00`, as the report writes times.
pub fn report_time(at: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0));
    let text = latchkey_audit::rfc3339(t);
    let whole = text.split('.').next().unwrap_or(&text);
    format!("{whole}+00:00")
}

fn field(out: &mut String, value: &str) {
    // IAM names may hold commas (`+=,.@_-` are legal), so quote as CSV
    // does. A name starting with `=`, `+`, `-` or `@` is written as it is,
    // as AWS's report writes it: a spreadsheet may read it as a formula.
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn row(out: &mut String, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, v);
    }
    out.push('\n');
}

fn flag(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

fn na() -> String {
    "N/A".to_owned()
}

fn key_columns(key: Option<&ReportKey>, region: &str) -> [String; 5] {
    match key {
        None => [flag(false), na(), na(), na(), na()],
        Some(k) => match &k.last_used {
            None => [flag(k.active), report_time(k.created), na(), na(), na()],
            Some((at, service)) => [
                flag(k.active),
                report_time(k.created),
                report_time(*at),
                region.to_owned(),
                service.clone(),
            ],
        },
    }
}

/// The report: a header, the account's root (which has no password, key
/// or certificate here: Latchkey has no root sign-in), then `users`.
pub fn credential_report(
    account_id: &str,
    account_created: i64,
    region: &str,
    users: &[ReportUser],
) -> String {
    let mut out = String::with_capacity(256 * (users.len() + 2));
    row(&mut out, &COLUMNS.map(str::to_owned));
    let mut root = vec![
        "<root_account>".to_owned(),
        format!("arn:aws:iam::{account_id}:root"),
        report_time(account_created),
        "not_supported".to_owned(),
        na(),
        "not_supported".to_owned(),
        "not_supported".to_owned(),
        flag(false),
    ];
    root.extend(key_columns(None, region));
    root.extend(key_columns(None, region));
    root.extend([flag(false), na(), flag(false), na()]);
    row(&mut out, &root);
    for u in users {
        let mut line = vec![u.name.clone(), u.arn.clone(), report_time(u.created)];
        match &u.password {
            None => line.extend([flag(false), na(), na(), na()]),
            Some(p) => line.extend([
                flag(true),
                p.last_used
                    .map_or_else(|| "no_information".to_owned(), report_time),
                report_time(p.last_changed),
                p.next_rotation.map_or_else(na, report_time),
            ]),
        }
        line.push(flag(u.mfa_active));
        line.extend(key_columns(u.keys.first(), region));
        line.extend(key_columns(u.keys.get(1), region));
        line.extend([flag(false), na(), flag(false), na()]);
        row(&mut out, &line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_aws_columns_and_values() {
        let users = [
            ReportUser {
                name: "alice".into(),
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                created: 1_700_000_000,
                password: None,
                mfa_active: true,
                keys: vec![
                    ReportKey {
                        active: true,
                        created: 1_700_000_100,
                        last_used: Some((1_700_086_400, "sts".into())),
                    },
                    ReportKey {
                        active: false,
                        created: 1_700_000_200,
                        last_used: None,
                    },
                ],
            },
            ReportUser {
                name: "bob".into(),
                arn: "arn:aws:iam::123456789012:user/team,x/bob".into(),
                created: 1_700_000_000,
                password: None,
                mfa_active: false,
                keys: vec![],
            },
        ];
        let csv = credential_report("123456789012", 1_600_000_000, "us-east-1", &users);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert!(lines[1].starts_with(
            "<root_account>,arn:aws:iam::123456789012:root,2020-09-13T12:26:40+00:00,not_supported,N/A,not_supported,not_supported,false,false,N/A"
        ));
        assert_eq!(
            lines[2],
            "alice,arn:aws:iam::123456789012:user/alice,2023-11-14T22:13:20+00:00,false,N/A,N/A,N/A,true,\
             true,2023-11-14T22:15:00+00:00,2023-11-15T22:13:20+00:00,us-east-1,sts,\
             false,2023-11-14T22:16:40+00:00,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        assert!(lines[3].starts_with("bob,\"arn:aws:iam::123456789012:user/team,x/bob\","));
        for l in &lines[..3] {
            assert_eq!(l.split(',').count(), COLUMNS.len(), "{l}");
        }
    }
}
