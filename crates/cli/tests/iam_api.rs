#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The IAM API end to end: one `latchkey serve`, the stock AWS CLI and
//! boto3's paginators (installed by scripts/test). Managed policies and
//! their versions, groups, tags, every list with `Marker`/`MaxItems`, and
//! two authorisation attacks performed with a restricted user's own key:
//! a Deny on a group path and a Deny on `iam:PolicyARN`.

mod common;

use std::process::Output;

use common::api::{ApiServer, Creds, aws, boto3, error_code, ok};
use serde_json::{Value, json};

/// `aws iam ARGS` against `server`: as the administrator, or with `key`.
fn aws_as(server: &ApiServer, key: Option<&Creds>, args: &[&str]) -> Output {
    let mut iam_args = vec!["iam"];
    iam_args.extend(args);
    aws(server, key, &iam_args)
}

/// `aws iam ARGS` as the administrator; the JSON output.
fn iam(server: &ApiServer, args: &[&str]) -> Value {
    ok(aws_as(server, None, args))
}

fn names(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {v}"))
        .iter()
        .map(|m| m[field].as_str().unwrap().to_owned())
        .collect()
}

fn doc(actions: &[&str]) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
        .to_string()
}

fn new_key(server: &ApiServer, user: &str) -> Creds {
    Creds::access_key(&iam(server, &["create-access-key", "--user-name", user]))
}

#[test]
fn iam_api_with_the_aws_cli_and_boto3_paginators() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&tmp.path().join("data"));
    let account = ok(aws(&server, None, &["sts", "get-caller-identity"]))["Account"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy_arn = |path: &str, name: &str| format!("arn:aws:iam::{account}:policy{path}{name}");

    // ---- bulk entities, and boto3's paginators over pages of two ----
    let pages = boto3(
        &server,
        r#"
doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]})
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
for i in range(5):
    iam.create_user(UserName=f"pu{i}", Path="/paged/")
    iam.create_role(RoleName=f"pr{i}", Path="/paged/", AssumeRolePolicyDocument=trust)
    arn = iam.create_policy(PolicyName=f"pp{i}", Path="/paged/", PolicyDocument=doc)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="pu0", PolicyArn=arn)
for i in range(3):
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=doc)
def walk(op, key, **kw):
    pages = list(iam.get_paginator(op).paginate(PaginationConfig={"PageSize": 2}, **kw))
    return {"pages": len(pages), "items": [x for p in pages for x in p[key]]}
out = {
    "users": walk("list_users", "Users", PathPrefix="/paged/"),
    "roles": walk("list_roles", "Roles", PathPrefix="/paged/"),
    "policies": walk("list_policies", "Policies", Scope="Local", PathPrefix="/paged/"),
    "versions": walk("list_policy_versions", "Versions", PolicyArn=arn),
    "attached": walk("list_attached_user_policies", "AttachedPolicies", UserName="pu0"),
    "details": walk("get_account_authorization_details", "Policies", Filter=["LocalManagedPolicy"]),
}
print(json.dumps(out, default=str))
"#,
    );
    for (list, field, want) in [
        ("users", "UserName", 5),
        ("roles", "RoleName", 5),
        ("policies", "PolicyName", 5),
        ("versions", "VersionId", 4),
        ("attached", "PolicyName", 5),
    ] {
        let got = &pages[list];
        assert_eq!(got["pages"], usize::div_ceil(want, 2), "{list}: {got}");
        let mut items = names(got, "items", field);
        let n = items.len();
        items.dedup();
        assert_eq!((n, items.len()), (want, want), "{list}: {got}");
    }
    assert_eq!(
        names(&pages["versions"], "items", "VersionId"),
        ["v4", "v3", "v2", "v1"]
    );
    assert!(pages["details"]["pages"].as_u64().unwrap() >= 3);

    // ---- --max-items then --starting-token (the CLI's own pagination) ----
    let first = iam(
        &server,
        &["list-users", "--path-prefix", "/paged/", "--max-items", "2"],
    );
    assert_eq!(names(&first, "Users", "UserName"), ["pu0", "pu1"]);
    let token = first["NextToken"].as_str().unwrap();
    let rest = iam(
        &server,
        &[
            "list-users",
            "--path-prefix",
            "/paged/",
            "--starting-token",
            token,
        ],
    );
    assert_eq!(names(&rest, "Users", "UserName"), ["pu2", "pu3", "pu4"]);
    let first = iam(
        &server,
        &[
            "list-policies",
            "--scope",
            "Local",
            "--path-prefix",
            "/paged/",
            "--max-items",
            "3",
        ],
    );
    let rest = iam(
        &server,
        &[
            "list-policies",
            "--scope",
            "Local",
            "--path-prefix",
            "/paged/",
            "--starting-token",
            first["NextToken"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        names(&first, "Policies", "PolicyName"),
        ["pp0", "pp1", "pp2"]
    );
    assert_eq!(names(&rest, "Policies", "PolicyName"), ["pp3", "pp4"]);
    // A marker the server never wrote.
    let out = aws_as(
        &server,
        None,
        &[
            "list-roles",
            "--starting-token",
            "garbage!",
            "--max-items",
            "1",
        ],
    );
    assert!(!out.status.success());
    // A marker the server never wrote, through the API.
    let out = boto3(
        &server,
        r#"
try:
    iam.list_users(Marker="bm90LW91cnM")
    print(json.dumps("accepted"))
except iam.exceptions.ClientError as e:
    print(json.dumps(e.response["Error"]["Code"]))
"#,
    );
    assert_eq!(out, "ValidationError");

    // ---- managed policies and their versions ----
    let created = iam(
        &server,
        &[
            "create-policy",
            "--policy-name",
            "Conn",
            "--path",
            "/app/",
            "--description",
            "connect",
            "--policy-document",
            &doc(&["iam:GetUser"]),
            "--tags",
            "Key=team,Value=db",
        ],
    );
    let conn = policy_arn("/app/", "Conn");
    assert_eq!(created["Policy"]["Arn"], conn.as_str());
    let got = iam(&server, &["get-policy", "--policy-arn", &conn]);
    assert_eq!(got["Policy"]["DefaultVersionId"], "v1");
    assert_eq!(got["Policy"]["AttachmentCount"], 0);
    assert_eq!(got["Policy"]["Description"], "connect");
    assert_eq!(got["Policy"]["Tags"][0]["Key"], "team");
    for i in 2..=5 {
        let v = iam(
            &server,
            &[
                "create-policy-version",
                "--policy-arn",
                &conn,
                "--policy-document",
                &doc(&["iam:GetUser", &format!("iam:List{i}")]),
            ],
        );
        assert_eq!(v["PolicyVersion"]["VersionId"], format!("v{i}"));
        assert_eq!(v["PolicyVersion"]["IsDefaultVersion"], false);
    }
    let sixth = aws_as(
        &server,
        None,
        &[
            "create-policy-version",
            "--policy-arn",
            &conn,
            "--policy-document",
            &doc(&["iam:GetUser"]),
            "--set-as-default",
        ],
    );
    assert_eq!(error_code(&sixth), "LimitExceeded");
    let v3 = iam(
        &server,
        &[
            "get-policy-version",
            "--policy-arn",
            &conn,
            "--version-id",
            "v3",
        ],
    );
    // botocore decodes the URL-encoded document into JSON.
    assert_eq!(
        v3["PolicyVersion"]["Document"]["Statement"][0]["Action"][1],
        "iam:List3"
    );
    assert_eq!(
        names(
            &iam(&server, &["list-policy-versions", "--policy-arn", &conn]),
            "Versions",
            "VersionId"
        ),
        ["v5", "v4", "v3", "v2", "v1"]
    );
    let out = aws_as(
        &server,
        None,
        &[
            "delete-policy-version",
            "--policy-arn",
            &conn,
            "--version-id",
            "v1",
        ],
    );
    assert_eq!(error_code(&out), "DeleteConflict");
    iam(
        &server,
        &[
            "set-default-policy-version",
            "--policy-arn",
            &conn,
            "--version-id",
            "v2",
        ],
    );
    for v in ["v1", "v3", "v4", "v5"] {
        iam(
            &server,
            &[
                "delete-policy-version",
                "--policy-arn",
                &conn,
                "--version-id",
                v,
            ],
        );
    }
    let got = iam(&server, &["get-policy", "--policy-arn", &conn]);
    assert_eq!(got["Policy"]["DefaultVersionId"], "v2");
    // Tags of policies.
    iam(
        &server,
        &[
            "tag-policy",
            "--policy-arn",
            &conn,
            "--tags",
            "Key=env,Value=prod",
        ],
    );
    iam(
        &server,
        &["untag-policy", "--policy-arn", &conn, "--tag-keys", "team"],
    );
    let tags = iam(&server, &["list-policy-tags", "--policy-arn", &conn]);
    assert_eq!(names(&tags, "Tags", "Key"), ["env"]);

    // ---- users, groups, roles and what is attached to them ----
    iam(
        &server,
        &[
            "create-user",
            "--user-name",
            "ann",
            "--tags",
            "Key=a,Value=1",
            "Key=b,Value=2",
        ],
    );
    iam(
        &server,
        &["untag-user", "--user-name", "ann", "--tag-keys", "a"],
    );
    assert_eq!(
        names(
            &iam(&server, &["list-user-tags", "--user-name", "ann"]),
            "Tags",
            "Key"
        ),
        ["b"]
    );
    iam(
        &server,
        &["create-group", "--group-name", "ops", "--path", "/priv/"],
    );
    iam(&server, &["create-group", "--group-name", "dev"]);
    iam(
        &server,
        &[
            "add-user-to-group",
            "--group-name",
            "ops",
            "--user-name",
            "ann",
        ],
    );
    iam(
        &server,
        &[
            "add-user-to-group",
            "--group-name",
            "dev",
            "--user-name",
            "ann",
        ],
    );
    let g = iam(&server, &["get-group", "--group-name", "ops"]);
    assert_eq!(g["Group"]["Path"], "/priv/");
    assert_eq!(
        g["Group"]["Arn"],
        format!("arn:aws:iam::{account}:group/priv/ops")
    );
    assert_eq!(names(&g, "Users", "UserName"), ["ann"]);
    assert_eq!(
        names(&iam(&server, &["list-groups"]), "Groups", "GroupName"),
        ["dev", "ops"]
    );
    assert_eq!(
        names(
            &iam(&server, &["list-groups", "--path-prefix", "/priv/"]),
            "Groups",
            "GroupName"
        ),
        ["ops"]
    );
    assert_eq!(
        names(
            &iam(&server, &["list-groups-for-user", "--user-name", "ann"]),
            "Groups",
            "GroupName"
        ),
        ["dev", "ops"]
    );
    let out = aws_as(&server, None, &["delete-group", "--group-name", "dev"]);
    assert_eq!(error_code(&out), "DeleteConflict");
    iam(
        &server,
        &[
            "remove-user-from-group",
            "--group-name",
            "dev",
            "--user-name",
            "ann",
        ],
    );
    iam(
        &server,
        &[
            "put-group-policy",
            "--group-name",
            "dev",
            "--policy-name",
            "inl",
            "--policy-document",
            &doc(&["iam:GetUser"]),
        ],
    );
    iam(
        &server,
        &[
            "attach-group-policy",
            "--group-name",
            "dev",
            "--policy-arn",
            &conn,
        ],
    );
    assert_eq!(
        iam(&server, &["list-group-policies", "--group-name", "dev"])["PolicyNames"],
        json!(["inl"])
    );
    assert_eq!(
        names(
            &iam(
                &server,
                &["list-attached-group-policies", "--group-name", "dev"]
            ),
            "AttachedPolicies",
            "PolicyArn"
        ),
        [conn.as_str()]
    );
    // DeletePolicy while attached.
    let out = aws_as(&server, None, &["delete-policy", "--policy-arn", &conn]);
    assert_eq!(error_code(&out), "DeleteConflict");
    let entities = iam(
        &server,
        &["list-entities-for-policy", "--policy-arn", &conn],
    );
    assert_eq!(names(&entities, "PolicyGroups", "GroupName"), ["dev"]);
    assert_eq!(
        iam(&server, &["get-policy", "--policy-arn", &conn])["Policy"]["AttachmentCount"],
        1
    );
    assert_eq!(
        names(
            &iam(
                &server,
                &[
                    "list-policies",
                    "--scope",
                    "Local",
                    "--only-attached",
                    "--path-prefix",
                    "/app/"
                ]
            ),
            "Policies",
            "PolicyName"
        ),
        ["Conn"]
    );
    assert!(
        iam(&server, &["list-policies", "--scope", "AWS"])["Policies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    iam(
        &server,
        &[
            "detach-group-policy",
            "--group-name",
            "dev",
            "--policy-arn",
            &conn,
        ],
    );
    iam(
        &server,
        &[
            "delete-group-policy",
            "--group-name",
            "dev",
            "--policy-name",
            "inl",
        ],
    );
    iam(&server, &["delete-group", "--group-name", "dev"]);
    let out = aws_as(&server, None, &["get-group", "--group-name", "dev"]);
    assert_eq!(error_code(&out), "NoSuchEntity");

    // Roles: inline and attached policies, tags, settings.
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "sts:AssumeRole"}]}).to_string();
    iam(
        &server,
        &[
            "create-role",
            "--role-name",
            "app",
            "--assume-role-policy-document",
            &trust,
            "--tags",
            "Key=t,Value=1",
        ],
    );
    iam(
        &server,
        &[
            "put-role-policy",
            "--role-name",
            "app",
            "--policy-name",
            "inl",
            "--policy-document",
            &doc(&["iam:GetUser"]),
        ],
    );
    iam(
        &server,
        &[
            "attach-role-policy",
            "--role-name",
            "app",
            "--policy-arn",
            &conn,
        ],
    );
    assert_eq!(
        iam(&server, &["list-role-policies", "--role-name", "app"])["PolicyNames"],
        json!(["inl"])
    );
    assert_eq!(
        names(
            &iam(
                &server,
                &["list-attached-role-policies", "--role-name", "app"]
            ),
            "AttachedPolicies",
            "PolicyName"
        ),
        ["Conn"]
    );
    iam(
        &server,
        &["tag-role", "--role-name", "app", "--tags", "Key=u,Value=2"],
    );
    iam(
        &server,
        &["untag-role", "--role-name", "app", "--tag-keys", "t"],
    );
    assert_eq!(
        names(
            &iam(&server, &["list-role-tags", "--role-name", "app"]),
            "Tags",
            "Key"
        ),
        ["u"]
    );
    iam(
        &server,
        &[
            "update-role",
            "--role-name",
            "app",
            "--description",
            "the app",
            "--max-session-duration",
            "7200",
        ],
    );
    let r = iam(&server, &["get-role", "--role-name", "app"]);
    assert_eq!(r["Role"]["Description"], "the app");
    assert_eq!(r["Role"]["MaxSessionDuration"], 7200);
    let r = iam(
        &server,
        &[
            "update-role-description",
            "--role-name",
            "app",
            "--description",
            "again",
        ],
    );
    assert_eq!(r["Role"]["Description"], "again");
    iam(
        &server,
        &[
            "update-assume-role-policy",
            "--role-name",
            "app",
            "--policy-document",
            &trust,
        ],
    );
    let details = iam(
        &server,
        &[
            "get-account-authorization-details",
            "--filter",
            "Role",
            "User",
        ],
    );
    let app = details["RoleDetailList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["RoleName"] == "app")
        .unwrap();
    assert_eq!(app["RolePolicyList"][0]["PolicyName"], "inl");
    assert_eq!(
        app["AttachedManagedPolicies"][0]["PolicyArn"],
        conn.as_str()
    );
    let ann = details["UserDetailList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["UserName"] == "ann")
        .unwrap();
    assert_eq!(ann["GroupList"], json!(["ops"]));
    assert!(details["Policies"].as_array().is_none_or(Vec::is_empty));

    // Keys and MFA devices.
    new_key(&server, "ann");
    new_key(&server, "ann");
    let keys = iam(
        &server,
        &["list-access-keys", "--user-name", "ann", "--max-items", "1"],
    );
    assert_eq!(keys["AccessKeyMetadata"].as_array().unwrap().len(), 1);
    assert!(keys["NextToken"].is_string());
    assert!(
        iam(&server, &["list-mfa-devices", "--user-name", "ann"])["MFADevices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mfa_dir = tmp.path().join("mfa");
    std::fs::create_dir(&mfa_dir).unwrap();
    let seed = mfa_dir.join("seed");
    iam(
        &server,
        &[
            "create-virtual-mfa-device",
            "--virtual-mfa-device-name",
            "annmfa",
            "--outfile",
            seed.to_str().unwrap(),
            "--bootstrap-method",
            "Base32StringSeed",
        ],
    );
    let v = iam(
        &server,
        &[
            "list-virtual-mfa-devices",
            "--assignment-status",
            "Unassigned",
        ],
    );
    assert_eq!(
        names(&v, "VirtualMFADevices", "SerialNumber"),
        [format!("arn:aws:iam::{account}:mfa/annmfa")]
    );
    let out = aws_as(
        &server,
        None,
        &["list-mfa-devices", "--user-name", "nobody"],
    );
    assert_eq!(error_code(&out), "NoSuchEntity");

    // ---- SetDefaultPolicyVersion changes what the engine enforces ----
    iam(&server, &["create-user", "--user-name", "bob"]);
    let perm = iam(
        &server,
        &[
            "create-policy",
            "--policy-name",
            "BobPerm",
            "--policy-document",
            &doc(&["iam:GetUser", "iam:ListGroups"]),
        ],
    )["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    iam(
        &server,
        &[
            "attach-user-policy",
            "--user-name",
            "bob",
            "--policy-arn",
            &perm,
        ],
    );
    let bob = new_key(&server, "bob");
    ok(aws_as(&server, Some(&bob), &["list-groups"]));
    iam(
        &server,
        &[
            "create-policy-version",
            "--policy-arn",
            &perm,
            "--policy-document",
            &doc(&["iam:GetUser"]),
            "--set-as-default",
        ],
    );
    assert_eq!(
        error_code(&aws_as(&server, Some(&bob), &["list-groups"])),
        "AccessDenied"
    );
    ok(aws_as(&server, Some(&bob), &["get-user"]));
    iam(
        &server,
        &[
            "set-default-policy-version",
            "--policy-arn",
            &perm,
            "--version-id",
            "v1",
        ],
    );
    ok(aws_as(&server, Some(&bob), &["list-groups"]));

    // ---- attacks, with a restricted user's own key ----
    // Mallory may do anything in IAM except touch groups under /priv/ and
    // attach the protected policy.
    let protected = iam(
        &server,
        &[
            "create-policy",
            "--policy-name",
            "Protected",
            "--policy-document",
            &doc(&["*"]),
        ],
    )["Policy"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let mallory_policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["iam:AddUserToGroup", "iam:PutGroupPolicy", "iam:RemoveUserFromGroup", "iam:DeleteGroup"],
         "Resource": "arn:aws:iam::*:group/priv/*"},
        {"Effect": "Deny", "Action": "iam:Attach*Policy", "Resource": "*",
         "Condition": {"ArnEquals": {"iam:PolicyARN": protected}}}
    ]})
    .to_string();
    iam(&server, &["create-user", "--user-name", "mallory"]);
    iam(
        &server,
        &[
            "put-user-policy",
            "--user-name",
            "mallory",
            "--policy-name",
            "limits",
            "--policy-document",
            &mallory_policy,
        ],
    );
    let mallory = new_key(&server, "mallory");
    // The group-path flaw: ops lives under /priv/.
    let out = aws_as(
        &server,
        Some(&mallory),
        &[
            "add-user-to-group",
            "--group-name",
            "ops",
            "--user-name",
            "mallory",
        ],
    );
    assert_eq!(error_code(&out), "AccessDenied");
    let out = aws_as(
        &server,
        Some(&mallory),
        &[
            "put-group-policy",
            "--group-name",
            "ops",
            "--policy-name",
            "x",
            "--policy-document",
            &doc(&["*"]),
        ],
    );
    assert_eq!(error_code(&out), "AccessDenied");
    assert_eq!(
        names(
            &iam(&server, &["get-group", "--group-name", "ops"]),
            "Users",
            "UserName"
        ),
        ["ann"]
    );
    // The PolicyARN flaw.
    let out = aws_as(
        &server,
        Some(&mallory),
        &[
            "attach-user-policy",
            "--user-name",
            "mallory",
            "--policy-arn",
            &protected,
        ],
    );
    assert_eq!(error_code(&out), "AccessDenied");
    assert!(
        iam(
            &server,
            &["list-attached-user-policies", "--user-name", "mallory"]
        )["AttachedPolicies"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Controls: the same calls on what the Denies do not cover succeed.
    ok(aws_as(
        &server,
        Some(&mallory),
        &["create-group", "--group-name", "open"],
    ));
    ok(aws_as(
        &server,
        Some(&mallory),
        &[
            "add-user-to-group",
            "--group-name",
            "open",
            "--user-name",
            "mallory",
        ],
    ));
    ok(aws_as(
        &server,
        Some(&mallory),
        &[
            "attach-user-policy",
            "--user-name",
            "mallory",
            "--policy-arn",
            &perm,
        ],
    ));

    // ---- finally, a policy with no attachments and one version goes ----
    iam(
        &server,
        &[
            "detach-role-policy",
            "--role-name",
            "app",
            "--policy-arn",
            &conn,
        ],
    );
    iam(&server, &["delete-policy", "--policy-arn", &conn]);
    let out = aws_as(&server, None, &["get-policy", "--policy-arn", &conn]);
    assert_eq!(error_code(&out), "NoSuchEntity");
}
