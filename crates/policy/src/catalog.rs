//! Which condition keys each action Latchkey implements carries, from AWS's
//! Service Authorization Reference (plus Latchkey's own actions), and the
//! warnings `latchkey policy validate` gives for a condition on a key that
//! none of a statement's actions ever carries (such a condition never sees
//! a value: an Allow never applies, a Deny never stops anything).
//!
//! Tag-key templates (`aws:RequestTag/${TagKey}`) match any tag key. Global
//! keys ([`is_global`]) are valid on every action.

use crate::document::{Finding, Policy};

const RT: &str = "aws:ResourceTag/${TagKey}";
const IRT: &str = "iam:ResourceTag/${TagKey}";
const REQ: &str = "aws:RequestTag/${TagKey}";
const TK: &str = "aws:TagKeys";
const PARN: &str = "iam:PolicyARN";
const PB: &str = "iam:PermissionsBoundary";

/// (action, condition keys it carries beyond the global ones). Users and
/// roles as resources carry `aws:ResourceTag/*` and `iam:ResourceTag/*`;
/// managed policies and MFA devices `aws:ResourceTag/*`; groups none.
static ACTIONS: &[(&str, &[&str])] = &[
    // ---- IAM: users ----
    ("iam:CreateUser", &[REQ, TK, PB, RT, IRT]),
    ("iam:GetUser", &[RT, IRT]),
    ("iam:UpdateUser", &[RT, IRT]),
    ("iam:DeleteUser", &[RT, IRT]),
    ("iam:ListUsers", &[]),
    ("iam:TagUser", &[REQ, TK, RT, IRT]),
    ("iam:UntagUser", &[TK, RT, IRT]),
    ("iam:ListUserTags", &[RT, IRT]),
    ("iam:ListGroupsForUser", &[RT, IRT]),
    // ---- console passwords ----
    ("iam:CreateLoginProfile", &[RT, IRT]),
    ("iam:GetLoginProfile", &[RT, IRT]),
    ("iam:UpdateLoginProfile", &[RT, IRT]),
    ("iam:DeleteLoginProfile", &[RT, IRT]),
    ("iam:ChangePassword", &[RT, IRT]),
    ("iam:UpdateAccountPasswordPolicy", &[]),
    ("iam:GetAccountPasswordPolicy", &[]),
    ("iam:DeleteAccountPasswordPolicy", &[]),
    // ---- access keys ----
    ("iam:CreateAccessKey", &[RT, IRT]),
    ("iam:ListAccessKeys", &[RT, IRT]),
    ("iam:UpdateAccessKey", &[RT, IRT]),
    ("iam:DeleteAccessKey", &[RT, IRT]),
    ("iam:GetAccessKeyLastUsed", &[RT, IRT]),
    // ---- the access advisor ----
    ("iam:GenerateServiceLastAccessedDetails", &[RT]),
    ("iam:GetServiceLastAccessedDetails", &[]),
    ("iam:GetServiceLastAccessedDetailsWithEntities", &[]),
    ("iam:ListPoliciesGrantingServiceAccess", &[]),
    ("iam:GenerateCredentialReport", &[]),
    ("iam:GetCredentialReport", &[]),
    // ---- roles ----
    ("iam:CreateRole", &[REQ, TK, PB, RT, IRT]),
    ("iam:GetRole", &[RT, IRT]),
    ("iam:UpdateRole", &[RT, IRT]),
    ("iam:UpdateRoleDescription", &[RT, IRT]),
    ("iam:DeleteRole", &[RT, IRT]),
    ("iam:ListRoles", &[]),
    ("iam:UpdateAssumeRolePolicy", &[RT, IRT]),
    ("iam:TagRole", &[REQ, TK, RT, IRT]),
    ("iam:UntagRole", &[TK, RT, IRT]),
    ("iam:ListRoleTags", &[RT, IRT]),
    (
        "iam:PassRole",
        &["iam:PassedToService", "iam:AssociatedResourceArn", RT, IRT],
    ),
    // ---- groups ----
    ("iam:CreateGroup", &[]),
    ("iam:GetGroup", &[]),
    ("iam:UpdateGroup", &[]),
    ("iam:DeleteGroup", &[]),
    ("iam:ListGroups", &[]),
    ("iam:AddUserToGroup", &[]),
    ("iam:RemoveUserFromGroup", &[]),
    // ---- inline policies ----
    ("iam:PutUserPolicy", &[PB, RT, IRT]),
    ("iam:GetUserPolicy", &[RT, IRT]),
    ("iam:DeleteUserPolicy", &[PB, RT, IRT]),
    ("iam:ListUserPolicies", &[RT, IRT]),
    ("iam:PutRolePolicy", &[PB, RT, IRT]),
    ("iam:GetRolePolicy", &[RT, IRT]),
    ("iam:DeleteRolePolicy", &[PB, RT, IRT]),
    ("iam:ListRolePolicies", &[RT, IRT]),
    ("iam:PutGroupPolicy", &[]),
    ("iam:GetGroupPolicy", &[]),
    ("iam:DeleteGroupPolicy", &[]),
    ("iam:ListGroupPolicies", &[]),
    // ---- managed policies ----
    ("iam:CreatePolicy", &[REQ, TK, RT]),
    ("iam:GetPolicy", &[RT]),
    ("iam:DeletePolicy", &[RT]),
    ("iam:ListPolicies", &[]),
    ("iam:CreatePolicyVersion", &[RT]),
    ("iam:GetPolicyVersion", &[RT]),
    ("iam:ListPolicyVersions", &[RT]),
    ("iam:DeletePolicyVersion", &[RT]),
    ("iam:SetDefaultPolicyVersion", &[RT]),
    ("iam:ListEntitiesForPolicy", &[RT]),
    ("iam:TagPolicy", &[REQ, TK, RT]),
    ("iam:UntagPolicy", &[TK, RT]),
    ("iam:ListPolicyTags", &[RT]),
    ("iam:AttachUserPolicy", &[PARN, PB, RT, IRT]),
    ("iam:DetachUserPolicy", &[PARN, PB, RT, IRT]),
    ("iam:AttachRolePolicy", &[PARN, PB, RT, IRT]),
    ("iam:DetachRolePolicy", &[PARN, PB, RT, IRT]),
    ("iam:AttachGroupPolicy", &[PARN]),
    ("iam:DetachGroupPolicy", &[PARN]),
    ("iam:ListAttachedUserPolicies", &[RT, IRT]),
    ("iam:ListAttachedRolePolicies", &[RT, IRT]),
    ("iam:ListAttachedGroupPolicies", &[]),
    // ---- MFA ----
    ("iam:CreateVirtualMFADevice", &[REQ, TK, RT]),
    (
        "iam:EnableMFADevice",
        &[
            "iam:RegisterSecurityKey",
            "iam:FIDO-FIPS-140-2-certification",
            "iam:FIDO-FIPS-140-3-certification",
            "iam:FIDO-certification",
            RT,
            IRT,
        ],
    ),
    ("iam:DeactivateMFADevice", &[RT, IRT]),
    ("iam:ListMFADevices", &[RT, IRT]),
    ("iam:ListVirtualMFADevices", &[]),
    ("iam:DeleteVirtualMFADevice", &[RT]),
    ("iam:ListMFADeviceTags", &[RT]),
    ("iam:TagMFADevice", &[REQ, TK, RT]),
    ("iam:UntagMFADevice", &[TK, RT]),
    // ---- account and simulator ----
    ("iam:GetAccountAuthorizationDetails", &[]),
    ("iam:SimulateCustomPolicy", &[]),
    ("iam:SimulatePrincipalPolicy", &[RT, IRT]),
    ("iam:GetContextKeysForCustomPolicy", &[]),
    ("iam:GetContextKeysForPrincipalPolicy", &[RT, IRT]),
    // Latchkey's extension: the user's or role's sessions.
    ("iam:RevokeSessions", &[RT, IRT]),
    // ---- STS ----
    (
        "sts:AssumeRole",
        &[
            REQ,
            TK,
            "sts:TransitiveTagKeys",
            "sts:ExternalId",
            "sts:RoleSessionName",
            "sts:SourceIdentity",
            RT,
            IRT,
        ],
    ),
    (
        "sts:TagSession",
        &[REQ, TK, "sts:TransitiveTagKeys", RT, IRT],
    ),
    ("sts:SetSourceIdentity", &["sts:SourceIdentity", RT, IRT]),
    ("sts:GetSessionToken", &[]),
    ("sts:GetCallerIdentity", &[]),
    // ---- databases ----
    ("rds-db:connect", &[RT]),
    ("latchkey:LoadDataLocalInfile", &[RT]),
    ("latchkey:ChangeDatabasePassword", &[RT]),
    ("latchkey:ExecuteDynamicSql", &[RT]),
    // Registrations and running sessions (the console's Databases and
    // Sessions pages), on `arn:aws:rds:REGION:ACCOUNT:db:NAME`.
    ("rds:DescribeDBInstances", &[RT]),
    ("rds:CreateDBInstance", &[REQ, TK]),
    ("rds:ModifyDBInstance", &[RT]),
    ("rds:AddTagsToResource", &[REQ, TK, RT]),
    ("rds:RemoveTagsFromResource", &[TK, RT]),
    ("latchkey:DescribeSessions", &[RT]),
    ("latchkey:EndSession", &[RT]),
    // ---- Secrets Manager ----
    ("secretsmanager:GetRandomPassword", &[]),
    // ---- statement policy (Latchkey's own service) ----
    ("sql:Select", SQL_KEYS),
    ("sql:Insert", SQL_KEYS),
    ("sql:Update", SQL_KEYS),
    ("sql:Delete", SQL_KEYS),
    ("sql:Truncate", SQL_KEYS),
    ("sql:Create", SQL_KEYS),
    ("sql:Alter", SQL_KEYS),
    ("sql:Drop", SQL_KEYS),
    ("sql:Grant", SQL_KEYS),
    ("sql:Execute", SQL_KEYS),
    ("sql:CopyIn", SQL_KEYS),
    ("sql:CopyOut", SQL_KEYS),
    ("sql:Admin", SQL_KEYS),
    ("sql:Unclassified", SQL_KEYS),
    // ---- Secrets Manager ----
    ("secretsmanager:BatchGetSecretValue", &[]),
    ("secretsmanager:CancelRotateSecret", SM_KEYS),
    (
        "secretsmanager:CreateSecret",
        &[
            REQ,
            TK,
            "secretsmanager:Name",
            "secretsmanager:Description",
            "secretsmanager:KmsKeyId",
            "secretsmanager:AddReplicaRegions",
            "secretsmanager:ForceOverwriteReplicaSecret",
        ],
    ),
    ("secretsmanager:DeleteResourcePolicy", SM_KEYS),
    (
        "secretsmanager:DeleteSecret",
        &[
            RT,
            SM_RT,
            SM_ID,
            SM_LAMBDA,
            "secretsmanager:RecoveryWindowInDays",
            "secretsmanager:ForceDeleteWithoutRecovery",
        ],
    ),
    ("secretsmanager:DescribeSecret", SM_KEYS),
    ("secretsmanager:GetResourcePolicy", SM_KEYS),
    (
        "secretsmanager:GetSecretValue",
        &[
            RT,
            SM_RT,
            SM_ID,
            SM_LAMBDA,
            "secretsmanager:VersionId",
            "secretsmanager:VersionStage",
        ],
    ),
    ("secretsmanager:ListSecretVersionIds", SM_KEYS),
    ("secretsmanager:ListSecrets", &[]),
    (
        "secretsmanager:PutResourcePolicy",
        &[
            RT,
            SM_RT,
            SM_ID,
            SM_LAMBDA,
            "secretsmanager:BlockPublicPolicy",
        ],
    ),
    (
        "secretsmanager:PutSecretValue",
        &[RT, SM_RT, SM_ID, SM_LAMBDA, "secretsmanager:VersionStage"],
    ),
    ("secretsmanager:RestoreSecret", SM_KEYS),
    (
        "secretsmanager:RotateSecret",
        &[
            RT,
            SM_RT,
            SM_ID,
            SM_LAMBDA,
            "secretsmanager:RotationLambdaARN",
            "secretsmanager:ModifyRotationRules",
            "secretsmanager:RotateImmediately",
        ],
    ),
    (
        "secretsmanager:TagResource",
        &[RT, SM_RT, SM_ID, SM_LAMBDA, REQ, TK],
    ),
    (
        "secretsmanager:UntagResource",
        &[RT, SM_RT, SM_ID, SM_LAMBDA, TK],
    ),
    (
        "secretsmanager:UpdateSecret",
        &[
            RT,
            SM_RT,
            SM_ID,
            SM_LAMBDA,
            "secretsmanager:Description",
            "secretsmanager:KmsKeyId",
        ],
    ),
    (
        "secretsmanager:UpdateSecretVersionStage",
        &[RT, SM_RT, SM_ID, SM_LAMBDA, "secretsmanager:VersionStage"],
    ),
    ("secretsmanager:ValidateResourcePolicy", SM_KEYS),
    // ---- KMS (symmetric and HMAC keys) ----
    (
        "kms:CreateKey",
        &[
            REQ,
            TK,
            "kms:BypassPolicyLockoutSafetyCheck",
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:ViaService",
        ],
    ),
    ("kms:DescribeKey", KMS_KEY),
    ("kms:ListKeys", &["kms:CallerAccount"]),
    ("kms:ListAliases", &["kms:CallerAccount"]),
    ("kms:CreateAlias", KMS_KEY),
    ("kms:UpdateAlias", KMS_KEY),
    ("kms:DeleteAlias", KMS_KEY),
    ("kms:EnableKey", KMS_KEY),
    ("kms:DisableKey", KMS_KEY),
    (
        "kms:ScheduleKeyDeletion",
        &[
            RT,
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:RequestAlias",
            "kms:ResourceAliases",
            "kms:ViaService",
            "kms:ScheduleKeyDeletionPendingWindowInDays",
        ],
    ),
    ("kms:CancelKeyDeletion", KMS_KEY),
    (
        "kms:EnableKeyRotation",
        &[
            RT,
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:RequestAlias",
            "kms:ResourceAliases",
            "kms:ViaService",
            "kms:RotationPeriodInDays",
        ],
    ),
    ("kms:DisableKeyRotation", KMS_KEY),
    ("kms:GetKeyRotationStatus", KMS_KEY),
    ("kms:RotateKeyOnDemand", KMS_KEY),
    ("kms:ListKeyRotations", KMS_KEY),
    ("kms:GetKeyPolicy", KMS_KEY),
    ("kms:ListKeyPolicies", KMS_KEY),
    (
        "kms:PutKeyPolicy",
        &[
            RT,
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:RequestAlias",
            "kms:ResourceAliases",
            "kms:ViaService",
            "kms:BypassPolicyLockoutSafetyCheck",
        ],
    ),
    ("kms:UpdateKeyDescription", KMS_KEY),
    (
        "kms:TagResource",
        &[
            RT,
            REQ,
            TK,
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:RequestAlias",
            "kms:ResourceAliases",
            "kms:ViaService",
        ],
    ),
    (
        "kms:UntagResource",
        &[
            RT,
            TK,
            "kms:CallerAccount",
            "kms:KeyOrigin",
            "kms:KeySpec",
            "kms:KeyUsage",
            "kms:MultiRegion",
            "kms:RequestAlias",
            "kms:ResourceAliases",
            "kms:ViaService",
        ],
    ),
    ("kms:ListResourceTags", KMS_KEY),
    ("kms:Encrypt", KMS_CRYPTO),
    ("kms:Decrypt", KMS_CRYPTO),
    ("kms:GenerateDataKey", KMS_CRYPTO),
    ("kms:GenerateDataKeyWithoutPlaintext", KMS_CRYPTO),
    ("kms:ReEncryptFrom", KMS_REENCRYPT),
    ("kms:ReEncryptTo", KMS_REENCRYPT),
    ("kms:GenerateRandom", &["kms:CallerAccount"]),
    ("kms:GenerateMac", KMS_MAC),
    ("kms:VerifyMac", KMS_MAC),
    // ---- SSM Parameter Store ----
    (
        "ssm:PutParameter",
        &[RT, SSM_RT, REQ, TK, "ssm:Overwrite", "ssm:Policies"],
    ),
    ("ssm:GetParameter", SSM_KEYS),
    ("ssm:GetParameters", SSM_KEYS),
    ("ssm:GetParametersByPath", &[RT, SSM_RT, "ssm:Recursive"]),
    ("ssm:GetParameterHistory", SSM_KEYS),
    ("ssm:DescribeParameters", &[]),
    ("ssm:DeleteParameter", SSM_KEYS),
    ("ssm:DeleteParameters", SSM_KEYS),
    ("ssm:LabelParameterVersion", SSM_KEYS),
    ("ssm:UnlabelParameterVersion", SSM_KEYS),
    ("ssm:AddTagsToResource", &[RT, SSM_RT, REQ, TK]),
    ("ssm:RemoveTagsFromResource", &[RT, SSM_RT, TK]),
    ("ssm:ListTagsForResource", SSM_KEYS),
    // ---- IAM Access Analyzer (its policy checks only) ----
    ("access-analyzer:ValidatePolicy", &[]),
];

/// What every KMS action on one key carries.
const KMS_KEY: &[&str] = &[
    RT,
    "kms:CallerAccount",
    "kms:KeyOrigin",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MultiRegion",
    "kms:RequestAlias",
    "kms:ResourceAliases",
    "kms:ViaService",
];

/// A symmetric key's cryptographic operations add the encryption context
/// and algorithm.
const KMS_CRYPTO: &[&str] = &[
    RT,
    "kms:CallerAccount",
    "kms:EncryptionAlgorithm",
    "kms:EncryptionContext:${EncryptionContextKey}",
    "kms:EncryptionContextKeys",
    "kms:KeyOrigin",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MultiRegion",
    "kms:RequestAlias",
    "kms:ResourceAliases",
    "kms:ViaService",
];

/// ReEncrypt's two halves add whether the key stays the same.
const KMS_REENCRYPT: &[&str] = &[
    RT,
    "kms:CallerAccount",
    "kms:EncryptionAlgorithm",
    "kms:EncryptionContext:${EncryptionContextKey}",
    "kms:EncryptionContextKeys",
    "kms:KeyOrigin",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MultiRegion",
    "kms:ReEncryptOnSameKey",
    "kms:RequestAlias",
    "kms:ResourceAliases",
    "kms:ViaService",
];

/// An HMAC key's operations add the MAC algorithm.
const KMS_MAC: &[&str] = &[
    RT,
    "kms:CallerAccount",
    "kms:KeyOrigin",
    "kms:KeySpec",
    "kms:KeyUsage",
    "kms:MacAlgorithm",
    "kms:MultiRegion",
    "kms:RequestAlias",
    "kms:ResourceAliases",
    "kms:ViaService",
];

const SSM_RT: &str = "ssm:resourceTag/${TagKey}";
/// What every Parameter Store action on one parameter carries.
const SSM_KEYS: &[&str] = &[RT, SSM_RT];

const SM_RT: &str = "secretsmanager:ResourceTag/${TagKey}";
const SM_ID: &str = "secretsmanager:SecretId";
const SM_LAMBDA: &str = "secretsmanager:resource/AllowRotationLambdaArn";
/// What every Secrets Manager action on one secret carries.
const SM_KEYS: &[&str] = &[RT, SM_RT, SM_ID, SM_LAMBDA];

/// What every `sql:` action carries: the database's tags, the object's
/// classification tags, the statement's fingerprint, and (on `UPDATE` and
/// `DELETE`) whether it has a WHERE clause.
const SQL_KEYS: &[&str] = &[
    RT,
    "sql:ObjectTag/${TagKey}",
    "sql:StatementFingerprint",
    "sql:WhereClausePresent",
];

/// A kind of resource, as its ARN names it: the ARN's service and the
/// first word of its resource part (`user` of `user/alice`, `dbuser` of
/// `dbuser:db-A/app`, `secret` of `secret:prod/db-AbC123`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceType {
    pub service: &'static str,
    pub kind: &'static str,
}

impl ResourceType {
    const fn new(service: &'static str, kind: &'static str) -> Self {
        Self { service, kind }
    }

    /// The type an ARN names, when the ARN says it: `None` for `*`, for
    /// what is not an ARN, and for a service or kind with a wildcard
    /// (`arn:aws:iam::1:*`, `arn:aws:iam::1:us*`), which may be any.
    /// The returned names borrow the ARN; compare with [`Self::is`].
    pub fn of_arn(arn: &str) -> Option<(&str, &str)> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some(service), Some(_region), Some(_account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let resource = parts.next()?;
        let kind = resource.split(['/', ':']).next().unwrap_or(resource);
        let wild = |s: &str| s.is_empty() || s.contains(['*', '?', '$']);
        (!wild(service) && !wild(kind)).then_some((service, kind))
    }

    /// Whether this is the type `(service, kind)` names (as ARNs compare:
    /// the service without case, the kind with it).
    pub fn is(&self, service: &str, kind: &str) -> bool {
        self.service.eq_ignore_ascii_case(service) && self.kind == kind
    }
}

const IAM_USER: ResourceType = ResourceType::new("iam", "user");
const IAM_ROLE: ResourceType = ResourceType::new("iam", "role");
const IAM_GROUP: ResourceType = ResourceType::new("iam", "group");
const IAM_POLICY: ResourceType = ResourceType::new("iam", "policy");
const IAM_MFA: ResourceType = ResourceType::new("iam", "mfa");
const DB_USER: ResourceType = ResourceType::new("rds-db", "dbuser");
const RDS_DB: ResourceType = ResourceType::new("rds", "db");
const SQL_TABLE: ResourceType = ResourceType::new("sql", "table");
const SQL_FUNCTION: ResourceType = ResourceType::new("sql", "function");
const SQL_DATABASE: ResourceType = ResourceType::new("sql", "database");
const SECRET: ResourceType = ResourceType::new("secretsmanager", "secret");
const KMS_KEY_TYPE: ResourceType = ResourceType::new("kms", "key");
const KMS_ALIAS: ResourceType = ResourceType::new("kms", "alias");
const PARAMETER: ResourceType = ResourceType::new("ssm", "parameter");

/// The resource types each catalogued action is authorised on, as
/// Latchkey builds its resource ARNs. An action in none of these lists is
/// in [`NO_RESOURCE`].
static RESOURCE_TYPES: &[(ResourceType, &[&str])] = &[
    (
        IAM_USER,
        &[
            "iam:CreateUser",
            "iam:GetUser",
            "iam:UpdateUser",
            "iam:DeleteUser",
            "iam:TagUser",
            "iam:UntagUser",
            "iam:ListUserTags",
            "iam:ListGroupsForUser",
            "iam:CreateAccessKey",
            "iam:ListAccessKeys",
            "iam:UpdateAccessKey",
            "iam:DeleteAccessKey",
            "iam:GetAccessKeyLastUsed",
            "iam:CreateLoginProfile",
            "iam:GetLoginProfile",
            "iam:UpdateLoginProfile",
            "iam:DeleteLoginProfile",
            "iam:ChangePassword",
            "iam:EnableMFADevice",
            "iam:DeactivateMFADevice",
            "iam:ListMFADevices",
            "iam:PutUserPolicy",
            "iam:GetUserPolicy",
            "iam:DeleteUserPolicy",
            "iam:ListUserPolicies",
            "iam:AttachUserPolicy",
            "iam:DetachUserPolicy",
            "iam:ListAttachedUserPolicies",
            "iam:RevokeSessions",
            "iam:GenerateServiceLastAccessedDetails",
            "iam:SimulatePrincipalPolicy",
            "iam:GetContextKeysForPrincipalPolicy",
        ],
    ),
    (
        IAM_ROLE,
        &[
            "iam:CreateRole",
            "iam:GetRole",
            "iam:UpdateRole",
            "iam:UpdateRoleDescription",
            "iam:DeleteRole",
            "iam:UpdateAssumeRolePolicy",
            "iam:TagRole",
            "iam:UntagRole",
            "iam:ListRoleTags",
            "iam:PassRole",
            "iam:PutRolePolicy",
            "iam:GetRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:ListRolePolicies",
            "iam:AttachRolePolicy",
            "iam:DetachRolePolicy",
            "iam:ListAttachedRolePolicies",
            "iam:RevokeSessions",
            "iam:GenerateServiceLastAccessedDetails",
            "iam:SimulatePrincipalPolicy",
            "iam:GetContextKeysForPrincipalPolicy",
            "sts:AssumeRole",
            "sts:TagSession",
            "sts:SetSourceIdentity",
        ],
    ),
    (
        IAM_GROUP,
        &[
            "iam:CreateGroup",
            "iam:GetGroup",
            "iam:UpdateGroup",
            "iam:DeleteGroup",
            "iam:AddUserToGroup",
            "iam:RemoveUserFromGroup",
            "iam:PutGroupPolicy",
            "iam:GetGroupPolicy",
            "iam:DeleteGroupPolicy",
            "iam:ListGroupPolicies",
            "iam:AttachGroupPolicy",
            "iam:DetachGroupPolicy",
            "iam:ListAttachedGroupPolicies",
            "iam:GenerateServiceLastAccessedDetails",
            "iam:SimulatePrincipalPolicy",
            "iam:GetContextKeysForPrincipalPolicy",
        ],
    ),
    (
        IAM_POLICY,
        &[
            "iam:CreatePolicy",
            "iam:GetPolicy",
            "iam:DeletePolicy",
            "iam:CreatePolicyVersion",
            "iam:GetPolicyVersion",
            "iam:ListPolicyVersions",
            "iam:DeletePolicyVersion",
            "iam:SetDefaultPolicyVersion",
            "iam:ListEntitiesForPolicy",
            "iam:TagPolicy",
            "iam:UntagPolicy",
            "iam:ListPolicyTags",
            "iam:GenerateServiceLastAccessedDetails",
        ],
    ),
    (
        IAM_MFA,
        &[
            "iam:CreateVirtualMFADevice",
            "iam:DeleteVirtualMFADevice",
            "iam:ListMFADeviceTags",
            "iam:TagMFADevice",
            "iam:UntagMFADevice",
        ],
    ),
    (
        DB_USER,
        &[
            "rds-db:connect",
            "latchkey:LoadDataLocalInfile",
            "latchkey:ChangeDatabasePassword",
            "latchkey:ExecuteDynamicSql",
        ],
    ),
    (
        RDS_DB,
        &[
            "rds:DescribeDBInstances",
            "rds:CreateDBInstance",
            "rds:ModifyDBInstance",
            "rds:AddTagsToResource",
            "rds:RemoveTagsFromResource",
            "latchkey:DescribeSessions",
            "latchkey:EndSession",
        ],
    ),
    (SQL_TABLE, SQL_ACTIONS),
    (SQL_FUNCTION, SQL_ACTIONS),
    (SQL_DATABASE, SQL_ACTIONS),
    (
        SECRET,
        &[
            "secretsmanager:CancelRotateSecret",
            "secretsmanager:CreateSecret",
            "secretsmanager:DeleteResourcePolicy",
            "secretsmanager:DeleteSecret",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetResourcePolicy",
            "secretsmanager:GetSecretValue",
            "secretsmanager:ListSecretVersionIds",
            "secretsmanager:PutResourcePolicy",
            "secretsmanager:PutSecretValue",
            "secretsmanager:RestoreSecret",
            "secretsmanager:RotateSecret",
            "secretsmanager:TagResource",
            "secretsmanager:UntagResource",
            "secretsmanager:UpdateSecret",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:ValidateResourcePolicy",
        ],
    ),
    (
        KMS_KEY_TYPE,
        &[
            "kms:DescribeKey",
            "kms:ListAliases",
            "kms:CreateAlias",
            "kms:UpdateAlias",
            "kms:DeleteAlias",
            "kms:EnableKey",
            "kms:DisableKey",
            "kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion",
            "kms:EnableKeyRotation",
            "kms:DisableKeyRotation",
            "kms:GetKeyRotationStatus",
            "kms:RotateKeyOnDemand",
            "kms:ListKeyRotations",
            "kms:GetKeyPolicy",
            "kms:ListKeyPolicies",
            "kms:PutKeyPolicy",
            "kms:UpdateKeyDescription",
            "kms:TagResource",
            "kms:UntagResource",
            "kms:ListResourceTags",
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateMac",
            "kms:VerifyMac",
        ],
    ),
    (
        KMS_ALIAS,
        &["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
    ),
    (
        PARAMETER,
        &[
            "ssm:PutParameter",
            "ssm:GetParameter",
            "ssm:GetParameters",
            "ssm:GetParametersByPath",
            "ssm:GetParameterHistory",
            "ssm:DeleteParameter",
            "ssm:DeleteParameters",
            "ssm:LabelParameterVersion",
            "ssm:UnlabelParameterVersion",
            "ssm:AddTagsToResource",
            "ssm:RemoveTagsFromResource",
            "ssm:ListTagsForResource",
        ],
    ),
];

static SQL_ACTIONS: &[&str] = &[
    "sql:Select",
    "sql:Insert",
    "sql:Update",
    "sql:Delete",
    "sql:Truncate",
    "sql:Create",
    "sql:Alter",
    "sql:Drop",
    "sql:Grant",
    "sql:Execute",
    "sql:CopyIn",
    "sql:CopyOut",
    "sql:Admin",
    "sql:Unclassified",
];

/// Catalogued actions authorised on `*` alone: what they act on is the
/// account, a listing or something not yet made. Only the tests read it:
/// with it, every action is classified on purpose.
#[cfg(test)]
static NO_RESOURCE: &[&str] = &[
    "iam:ListUsers",
    "iam:ListRoles",
    "iam:ListGroups",
    "iam:ListPolicies",
    "iam:ListVirtualMFADevices",
    "iam:GetAccountAuthorizationDetails",
    "iam:SimulateCustomPolicy",
    "iam:GetContextKeysForCustomPolicy",
    "iam:GetServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetailsWithEntities",
    "iam:ListPoliciesGrantingServiceAccess",
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:UpdateAccountPasswordPolicy",
    "iam:GetAccountPasswordPolicy",
    "iam:DeleteAccountPasswordPolicy",
    "sts:GetSessionToken",
    "sts:GetCallerIdentity",
    "access-analyzer:ValidatePolicy",
    "secretsmanager:GetRandomPassword",
    "secretsmanager:ListSecrets",
    "secretsmanager:BatchGetSecretValue",
    "kms:CreateKey",
    "kms:ListKeys",
    "kms:GenerateRandom",
    "ssm:DescribeParameters",
];

/// The resource types `action` (case-insensitive, catalogued) is
/// authorised on; empty when it is authorised on `*` alone, `None` for an
/// action the catalogue does not know.
pub fn resource_types(action: &str) -> Option<Vec<ResourceType>> {
    condition_keys(action)?;
    Some(
        RESOURCE_TYPES
            .iter()
            .filter(|(_, actions)| actions.iter().any(|a| a.eq_ignore_ascii_case(action)))
            .map(|(t, _)| *t)
            .collect(),
    )
}

/// Every kind of resource a service's ARNs name, for the services whose
/// resources Latchkey defines (its own): another kind is a mistake.
pub fn own_resource_kinds(service: &str) -> Option<&'static [&'static str]> {
    if service.eq_ignore_ascii_case("rds-db") {
        Some(&["dbuser"])
    } else if service.eq_ignore_ascii_case("sql") {
        Some(&["table", "function", "database"])
    } else {
        None
    }
}

/// The services whose actions the catalogue knows in full (all that
/// Latchkey implements of each): a wildcard within one of them stands for
/// the catalogued actions.
pub const SERVICES: [&str; 9] = [
    "iam",
    "sts",
    "rds-db",
    "latchkey",
    "sql",
    "secretsmanager",
    "kms",
    "ssm",
    "access-analyzer",
];

/// Keys every request may carry, whatever the action (AWS's global
/// condition context keys). `/${TagKey}` templates match any tag key.
static GLOBAL: &[&str] = &[
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:SecureTransport",
    "aws:MultiFactorAuthPresent",
    "aws:MultiFactorAuthAge",
    "aws:TokenIssueTime",
    "aws:PrincipalTag/${TagKey}",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:PrincipalType",
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalIsAWSService",
    "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList",
    "aws:username",
    "aws:userid",
    "aws:SourceIdentity",
    "aws:RequestedRegion",
    "aws:ViaAWSService",
    "aws:CalledVia",
    "aws:CalledViaFirst",
    "aws:CalledViaLast",
    "aws:FederatedProvider",
    "aws:AssumedRoot",
    "aws:Referer",
    "aws:UserAgent",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:SourceVpcArn",
    "aws:VpcSourceIp",
    "aws:SourceArn",
    "aws:SourceAccount",
    "aws:SourceOrgID",
    "aws:SourceOrgPaths",
    "aws:ResourceAccount",
    "aws:ResourceOrgID",
    "aws:ResourceOrgPaths",
    "aws:Ec2InstanceSourceVpc",
    "aws:Ec2InstanceSourcePrivateIPv4",
    "aws:VpceAccount",
    "aws:VpceOrgID",
    "aws:VpceOrgPaths",
];

/// Whether a policy's key (`aws:RequestTag/team`) is the catalogue's key
/// (`aws:RequestTag/${TagKey}`), case-insensitively.
fn key_matches(template: &str, key: &str) -> bool {
    // `aws:RequestTag/${TagKey}`, `kms:EncryptionContext:${EncryptionContextKey}`.
    let prefix = template
        .strip_suffix('}')
        .and_then(|t| t.rfind("${").map(|i| &template[..i]));
    match prefix {
        Some(prefix) => {
            key.len() > prefix.len()
                && key
                    .get(..prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        }
        None => template.eq_ignore_ascii_case(key),
    }
}

/// The condition keys `action` carries beyond the global ones
/// (case-insensitive); `None` for an action the catalogue does not know.
pub fn condition_keys(action: &str) -> Option<&'static [&'static str]> {
    ACTIONS
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(action))
        .map(|(_, keys)| *keys)
}

/// Whether `key` is a global condition key (valid on any action).
pub fn is_global(key: &str) -> bool {
    GLOBAL.iter().any(|t| key_matches(t, key))
}

/// Whether `key` exists: a global key, or one some catalogued action
/// carries (`aws:RequestTag/team`, `sql:Schema`).
pub fn key_defined(key: &str) -> bool {
    is_global(key)
        || ACTIONS
            .iter()
            .any(|(_, keys)| keys.iter().any(|t| key_matches(t, key)))
}

/// Whether `action` carries `key`: a global key, or one of the action's.
/// `None` for an action the catalogue does not know.
pub fn carries(action: &str, key: &str) -> Option<bool> {
    let keys = condition_keys(action)?;
    Some(is_global(key) || keys.iter().any(|t| key_matches(t, key)))
}

/// `*` and `?` wildcard match, ASCII case-insensitive.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether an action pattern (`iam:Get*`) matches `action`, as IAM
/// matches actions: `*` and `?` wildcards, case-insensitively.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(pattern.as_bytes(), action.as_bytes())
}

/// The catalogued actions an action pattern (`iam:List*`) stands for;
/// `None` when it may stand for actions the catalogue does not know (`*`,
/// `s3:Get*`, a literal `iam:CreateSAMLProvider`).
pub fn actions_matching(pattern: &str) -> Option<Vec<&'static str>> {
    let (service, name) = pattern.split_once(':')?;
    if !SERVICES.iter().any(|s| s.eq_ignore_ascii_case(service)) || name.is_empty() {
        return None;
    }
    if !name.contains(['*', '?']) {
        return condition_keys(pattern).and_then(|_| {
            ACTIONS
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(pattern))
                .map(|(a, _)| vec![*a])
        });
    }
    let found: Vec<&'static str> = ACTIONS
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| glob(pattern.as_bytes(), a.as_bytes()))
        .collect();
    Some(found)
}

/// Every catalogued action, in catalogue order (grouped by service).
pub fn all_actions() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|(a, _)| *a)
}

/// The catalogued actions a policy's `Allow` statements grant, whatever
/// their resources and conditions (what IAM's access advisor lists as
/// granted): `Action` patterns matched against the catalogue, `NotAction`
/// granting every catalogued action it does not name. Sorted, unique.
pub fn granted_actions(policy: &Policy) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for s in &policy.statements {
        if s.effect != crate::document::Effect::Allow {
            continue;
        }
        let (patterns, not_action) = &s.actions;
        out.extend(
            ACTIONS.iter().map(|(a, _)| *a).filter(|a| {
                patterns.iter().any(|p| glob(p.as_bytes(), a.as_bytes())) != *not_action
            }),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether a policy's `Allow` statements grant some action of the service
/// `namespace` (`iam`, `s3`), whatever their resources and conditions, as
/// IAM's `ListPoliciesGrantingServiceAccess` judges it. Not limited to the
/// catalogue: `s3:GetObject` grants `s3`. A `NotAction` statement grants
/// the service unless it names the whole of it (`*`, `s3:*`).
pub fn grants_service(policy: &Policy, namespace: &str) -> bool {
    let names_service = |pattern: &str| match pattern.split_once(':') {
        Some((service, _)) => glob(service.as_bytes(), namespace.as_bytes()),
        None => pattern.bytes().all(|c| c == b'*'),
    };
    let names_whole_service = |pattern: &str| match pattern.split_once(':') {
        Some((service, action)) => {
            glob(service.as_bytes(), namespace.as_bytes()) && action.bytes().all(|c| c == b'*')
        }
        None => pattern.bytes().all(|c| c == b'*'),
    };
    policy
        .statements
        .iter()
        .filter(|s| s.effect == crate::document::Effect::Allow)
        .any(|s| match &s.actions {
            (patterns, false) => patterns.iter().any(|p| names_service(p)),
            (patterns, true) => !patterns.iter().any(|p| names_whole_service(p)),
        })
}

/// Warnings for a parsed policy: each condition key (not global) that none
/// of its statement's actions carries. Statements with `NotAction`, or with
/// an action the catalogue cannot resolve (another service, `*`), are
/// skipped. Paths assume `Statement` is an array; see [`warnings_for_text`].
pub fn warnings(policy: &Policy) -> Vec<Finding> {
    warnings_at(policy, true)
}

/// As [`warnings`], with paths as written in `text` (`$.Statement.…` when
/// `Statement` is a single object).
pub fn warnings_for_text(text: &str, policy: &Policy) -> Vec<Finding> {
    let list = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("Statement").map(serde_json::Value::is_array))
        .unwrap_or(true);
    warnings_at(policy, list)
}

fn warnings_at(policy: &Policy, statement_list: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, s) in policy.statements.iter().enumerate() {
        let (patterns, not_action) = &s.actions;
        if *not_action || s.conditions.is_empty() {
            continue;
        }
        let mut actions: Vec<&'static str> = Vec::new();
        let mut resolved = true;
        for p in patterns {
            match actions_matching(p) {
                Some(found) => actions.extend(found),
                None => {
                    resolved = false;
                    break;
                }
            }
        }
        if !resolved || actions.is_empty() {
            continue;
        }
        actions.sort_unstable();
        actions.dedup();
        let base = if statement_list {
            format!("$.Statement[{i}]")
        } else {
            "$.Statement".to_owned()
        };
        for (op, key, _) in &s.conditions {
            if is_global(key) || actions.iter().any(|a| carries(a, key) == Some(true)) {
                continue;
            }
            let named = if actions.len() <= 3 {
                actions.join(", ")
            } else {
                format!("{} and {} more", actions[..2].join(", "), actions.len() - 2)
            };
            out.push(Finding {
                path: format!("{base}.Condition.{op}.{key}"),
                message: format!(
                    "condition key {key} is never in the request context of {named}: this condition never sees a value"
                ),
            });
        }
    }
    out
}

/// Every context key a policy uses, in conditions and as policy variables
/// (`${aws:username}`), first spelling kept, case-insensitively unique, in
/// document order (what `GetContextKeysFor*Policy` answers).
pub fn keys_used(policy: &Policy) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |k: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(k)) {
            out.push(k.to_owned());
        }
    };
    let variables = policy.version == crate::document::Version::V2012_10_17;
    for s in &policy.statements {
        if variables && let Some((resources, _)) = &s.resources {
            for r in resources {
                for v in variables_in(r) {
                    add(v);
                }
            }
        }
        for (_, key, values) in &s.conditions {
            add(key);
            if variables {
                for value in values {
                    for v in variables_in(value) {
                        add(v);
                    }
                }
            }
        }
    }
    out
}

/// The keys of `${key}` / `${key, 'default'}` variables in `text` (not the
/// `${*}`, `${?}`, `${$}` escapes).
fn variables_in(text: &str) -> impl Iterator<Item = &str> {
    text.split("${").skip(1).filter_map(|rest| {
        let inner = rest.split_once('}')?.0;
        let key = inner.split(',').next()?.trim();
        (!matches!(key, "" | "*" | "?" | "$")).then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{PolicyKind, parse};

    fn policy(text: &str) -> Policy {
        parse(text, PolicyKind::Identity).expect("valid policy")
    }

    #[test]
    fn which_services_a_policy_grants() {
        let doc = |statements: &str| {
            policy(&format!(
                r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
            ))
        };
        let p = doc(
            r#"{"Effect":"Allow","Action":["s3:GetObject","IAM:List*"],"Resource":"*"},
                       {"Effect":"Deny","Action":"kms:*","Resource":"*"}"#,
        );
        assert!(grants_service(&p, "s3"));
        assert!(grants_service(&p, "iam"));
        assert!(!grants_service(&p, "kms"), "a Deny grants nothing");
        assert!(!grants_service(&p, "rds-db"));
        assert!(!grants_service(&p, "s"), "a service is named whole");
        let p = doc(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
        assert!(grants_service(&p, "sts") && grants_service(&p, "anything"));
        let p = doc(r#"{"Effect":"Allow","Action":"RDS-DB:conn*","Resource":"*"}"#);
        assert!(grants_service(&p, "rds-db") && !grants_service(&p, "rds"));
        let p = doc(r#"{"Effect":"Allow","NotAction":["iam:*","sts:Get*"],"Resource":"*"}"#);
        assert!(!grants_service(&p, "iam"), "NotAction names all of iam");
        assert!(grants_service(&p, "sts"), "NotAction leaves sts:AssumeRole");
        assert!(grants_service(&p, "kms"));
        let p = doc(r#"{"Effect":"Allow","NotAction":"*","Resource":"*"}"#);
        assert!(!grants_service(&p, "kms"));
    }

    #[test]
    fn every_action_has_its_resource_types() {
        // Each catalogued action is classified once: on resource types,
        // or on `*` alone; and every classified action is catalogued.
        for action in all_actions() {
            let typed = RESOURCE_TYPES
                .iter()
                .any(|(_, actions)| actions.contains(&action));
            assert!(
                typed != NO_RESOURCE.contains(&action),
                "{action}: resource types, or NO_RESOURCE"
            );
        }
        for listed in RESOURCE_TYPES
            .iter()
            .flat_map(|(_, a)| a.iter())
            .chain(NO_RESOURCE)
        {
            assert!(condition_keys(listed).is_some(), "{listed} is catalogued");
        }
        assert_eq!(resource_types("IAM:getuser"), Some(vec![IAM_USER]));
        assert_eq!(
            resource_types("kms:CreateAlias"),
            Some(vec![KMS_KEY_TYPE, KMS_ALIAS])
        );
        assert_eq!(resource_types("iam:ListUsers"), Some(vec![]));
        assert_eq!(resource_types("s3:GetObject"), None);
        assert_eq!(
            ResourceType::of_arn("arn:aws:rds-db:us-east-1:1:dbuser:db-A/app"),
            Some(("rds-db", "dbuser"))
        );
        assert_eq!(
            ResourceType::of_arn("arn:aws:secretsmanager:r:1:secret:prod/db-AbC123"),
            Some(("secretsmanager", "secret"))
        );
        assert_eq!(
            ResourceType::of_arn("arn:aws:iam::1:root"),
            Some(("iam", "root"))
        );
        for any in [
            "*",
            "arn:aws:iam::1:*",
            "arn:aws:iam::1:us*",
            "arn:aws:*:r:1:user/x",
            "arn:aws:iam::1",
        ] {
            assert_eq!(ResourceType::of_arn(any), None, "{any}");
        }
    }

    #[test]
    fn actions_and_keys() {
        assert!(
            condition_keys("IAM:attachuserpolicy").is_some_and(|k| k.contains(&"iam:PolicyARN"))
        );
        assert_eq!(condition_keys("s3:GetObject"), None);
        assert_eq!(carries("iam:CreateUser", "aws:requesttag/Team"), Some(true));
        assert_eq!(carries("iam:CreateUser", "aws:RequestTag/"), Some(false));
        assert_eq!(carries("iam:CreateUser", "iam:PolicyARN"), Some(false));
        assert_eq!(carries("iam:CreateGroup", "aws:SourceIp"), Some(true));
        assert_eq!(carries("sts:AssumeRole", "sts:ExternalId"), Some(true));
        assert_eq!(carries("sts:TagSession", "sts:ExternalId"), Some(false));
        assert_eq!(carries("rds-db:connect", "aws:ResourceTag/env"), Some(true));
        assert_eq!(
            condition_keys("secretsmanager:GetRandomPassword"),
            Some(&[][..])
        );
        assert_eq!(
            carries("SecretsManager:getrandompassword", "aws:SourceIp"),
            Some(true)
        );
        assert_eq!(carries("nope:Thing", "aws:SourceIp"), None);
        assert!(is_global("AWS:PrincipalTag/dbuser"));
        assert!(!is_global("aws:PrincipalTag/"));
        assert!(!is_global("aws:RequestTag/x"));
        // Every catalogued key is `prefix:name`, and names are unique.
        for (i, (a, keys)) in ACTIONS.iter().enumerate() {
            assert!(a.contains(':'), "{a}");
            assert!(keys.iter().all(|k| k.contains(':')), "{a}");
            assert!(
                !ACTIONS[..i].iter().any(|(b, _)| b.eq_ignore_ascii_case(a)),
                "{a} twice"
            );
        }
    }

    #[test]
    fn granted_actions_follow_allow_statements_only() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":["iam:Get*","kms:Decrypt"],"Resource":"*"},
                {"Effect":"Deny","Action":"iam:GetUser","Resource":"*"},
                {"Effect":"Allow","NotAction":["iam:*","sts:*","rds-db:*","latchkey:*","sql:*","secretsmanager:*","kms:*","ssm:Get*","ssm:Put*","ssm:Delete*","ssm:Describe*","ssm:Label*","ssm:*Tag*"],"Resource":"*"}
            ]}"#,
        );
        let granted = granted_actions(&p);
        assert!(granted.contains(&"iam:GetUser") && granted.contains(&"iam:GetRole"));
        assert!(granted.contains(&"kms:Decrypt") && !granted.contains(&"kms:Encrypt"));
        assert!(!granted.contains(&"iam:CreateUser"));
        // What NotAction leaves of SSM, and nothing more.
        let ssm: Vec<_> = granted.iter().filter(|a| a.starts_with("ssm:")).collect();
        assert_eq!(ssm, [&"ssm:UnlabelParameterVersion"]);
        let all = granted_actions(&policy(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        ));
        assert_eq!(all.len(), all_actions().count());
    }

    #[test]
    fn wildcards_resolve_within_known_services() {
        let list = actions_matching("iam:*Tag*").expect("known service");
        assert!(list.contains(&"iam:TagUser") && list.contains(&"iam:ListRoleTags"));
        assert!(!list.contains(&"iam:CreateUser"));
        assert_eq!(actions_matching("iam:Get?ser"), Some(vec!["iam:GetUser"]));
        assert_eq!(
            actions_matching("RDS-DB:Connect"),
            Some(vec!["rds-db:connect"])
        );
        assert_eq!(actions_matching("iam:CreateSAMLProvider"), None);
        assert_eq!(actions_matching("s3:*"), None);
        assert_eq!(actions_matching("*"), None);
        assert_eq!(actions_matching("*:GetUser"), None);
        assert_eq!(actions_matching("iam:Nothing*"), Some(vec![]));
        assert_eq!(actions_matching("kms:Decrypt"), Some(vec!["kms:Decrypt"]));
        assert!(actions_matching("ssm:GetParameter*").is_some_and(|l| l.len() >= 3));
        assert!(glob(b"a*b*c", b"aXXbYc") && !glob(b"a*b", b"ab c"));
        assert!(
            action_matches("IAM:get*", "iam:GetUser") && !action_matches("iam:Get", "iam:GetUser")
        );
    }

    #[test]
    fn warns_about_keys_no_action_carries() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Deny","Action":"iam:AttachUserPolicy","Resource":"*",
               "Condition":{"ArnEquals":{"iam:PolicyARN":"arn:aws:iam::1:policy/x"}}},
              {"Effect":"Deny","Action":["iam:CreateUser","iam:CreateGroup"],"Resource":"*",
               "Condition":{"ArnEquals":{"iam:PolicyARN":"arn:aws:iam::1:policy/x"},
                            "StringEquals":{"aws:RequestTag/team":"db","aws:SourceIp":"10.0.0.1","s3:prefix":"a"}}},
              {"Effect":"Allow","Action":"s3:*","Resource":"*",
               "Condition":{"StringEquals":{"iam:PolicyARN":"x"}}},
              {"Effect":"Allow","NotAction":"iam:CreateUser","Resource":"*",
               "Condition":{"StringEquals":{"iam:PolicyARN":"x"}}},
              {"Effect":"Allow","Action":["iam:CreateUser","ec2:RunInstances"],"Resource":"*",
               "Condition":{"StringEquals":{"iam:PolicyARN":"x"}}},
              {"Effect":"Allow","Action":"iam:Tag*","Resource":"*",
               "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a"]},"StringEquals":{"sts:ExternalId":"x"}}}
            ]}"#,
        );
        let w = warnings(&p);
        let paths: Vec<&str> = w.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$.Statement[1].Condition.ArnEquals.iam:PolicyARN",
                "$.Statement[1].Condition.StringEquals.s3:prefix",
                "$.Statement[5].Condition.StringEquals.sts:ExternalId",
            ],
            "{w:?}"
        );
        assert!(
            w[0].message.contains("iam:CreateGroup, iam:CreateUser"),
            "{}",
            w[0].message
        );
    }

    #[test]
    fn paths_follow_the_document() {
        let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/x":"y"}}}}"#;
        let w = warnings_for_text(text, &policy(text));
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[0].path,
            "$.Statement.Condition.StringEquals.aws:RequestTag/x"
        );
    }

    #[test]
    fn keys_used_in_conditions_and_variables() {
        let p = policy(
            r#"{"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::1:user/${aws:username}${*}",
               "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"},
                            "StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team, 'none'}"}}},
              {"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"AWS:currenttime":"true"}}}
            ]}"#,
        );
        assert_eq!(
            keys_used(&p),
            [
                "aws:username",
                "aws:CurrentTime",
                "aws:ResourceTag/team",
                "aws:PrincipalTag/team"
            ]
        );
    }
}
