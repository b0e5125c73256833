//! What an IAM call is authorised against: the [`Target`] (resource ARN,
//! condition keys, the name shown in a refusal) and the [`Targets`]
//! builders on the application state, which read the stored entity so that
//! its path and tags count.

use latchkey_store::PrincipalKind;

use crate::error::ApiError;
use crate::query::Params;
use latchkey_identity::{ActionContext, AppState};

use super::path_param;

/// What an IAM call acts on: the resource ARN, built from the stored
/// entity (its path included), and the condition keys that come with it.
pub(super) struct Target {
    pub(super) arn: String,
    pub(super) context: ActionContext,
    /// The resource as the request named it, for a refusal's message:
    /// naming the stored ARN would tell a caller who may not see the
    /// entity that it exists, and its path. `None`: the same as `arn`.
    pub(super) shown: Option<String>,
}

impl Target {
    /// Adds condition keys of the action.
    pub(super) fn with(mut self, f: impl FnOnce(ActionContext) -> ActionContext) -> Self {
        self.context = f(self.context);
        self
    }
}

/// Targets of IAM actions, built from the stored entity (see [`Target`]).
pub(super) trait Targets {
    fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String;

    /// A new entity's ARN from the path the request gives.
    fn new_target(&self, kind: &str, params: &Params, name: &str) -> Target;

    /// An existing user with its tags, or the ARN it would have (the call
    /// then fails with `NoSuchEntity` once authorised, as AWS answers).
    fn user_target(&self, name: &str) -> Target;

    fn role_target(&self, name: &str) -> Target;

    fn group_target(&self, name: &str) -> Target;

    /// A managed policy by ARN, with `aws:ResourceTag/*` of its tags; or,
    /// when there is no such policy, the ARN as given.
    fn policy_target(&self, arn: &str) -> Result<Target, ApiError>;

    /// Calls with no resource type in AWS's model (`ListUsers`, ...).
    fn any_target(&self) -> Target;

    fn missing_target(&self, kind: &str, name: &str) -> Target;

    /// The user, role or group a `*UserPolicy`/`*RolePolicy`/`*GroupPolicy`
    /// call names: (name, target).
    fn principal<'p>(
        &self,
        params: &'p Params,
        kind: PrincipalKind,
    ) -> Result<(&'p str, Target), ApiError>;
}

impl Targets for AppState {
    fn iam_arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!(
            "arn:aws:iam::{}:{kind}{path}{name}",
            self.store.account_id()
        )
    }

    fn new_target(&self, kind: &str, params: &Params, name: &str) -> Target {
        Target {
            arn: self.iam_arn(kind, path_param(params), name),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn user_target(&self, name: &str) -> Target {
        match self.store.get_user(name) {
            Ok(u) => Target {
                arn: u.arn,
                context: ActionContext::new().resource_tags(&u.tags),
                shown: Some(self.iam_arn("user", "/", name)),
            },
            Err(_) => self.missing_target("user", name),
        }
    }

    fn role_target(&self, name: &str) -> Target {
        match self.store.get_role(name) {
            Ok(r) => Target {
                arn: r.arn,
                context: ActionContext::new().resource_tags(&r.tags),
                shown: Some(self.iam_arn("role", "/", name)),
            },
            Err(_) => self.missing_target("role", name),
        }
    }

    fn group_target(&self, name: &str) -> Target {
        match self.store.get_group(name) {
            Ok(g) => Target {
                arn: g.arn,
                context: ActionContext::new(),
                shown: Some(self.iam_arn("group", "/", name)),
            },
            Err(_) => self.missing_target("group", name),
        }
    }

    fn policy_target(&self, arn: &str) -> Result<Target, ApiError> {
        if !arn.starts_with("arn:") || arn.len() > 2048 {
            return Err(ApiError::new(
                400,
                "InvalidInput",
                format!("ARN {arn} is not valid."),
            ));
        }
        Ok(match self.store.get_policy(arn) {
            Ok(p) => Target {
                context: p.tags.iter().fold(ActionContext::new(), |c, (k, v)| {
                    c.key(format!("aws:ResourceTag/{k}"), [v.as_str()])
                }),
                arn: p.arn,
                shown: Some(arn.to_owned()),
            },
            Err(_) => Target {
                arn: arn.to_owned(),
                context: ActionContext::new(),
                shown: None,
            },
        })
    }

    fn any_target(&self) -> Target {
        Target {
            arn: "*".into(),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn missing_target(&self, kind: &str, name: &str) -> Target {
        Target {
            arn: self.iam_arn(kind, "/", name),
            context: ActionContext::new(),
            shown: None,
        }
    }

    fn principal<'p>(
        &self,
        params: &'p Params,
        kind: PrincipalKind,
    ) -> Result<(&'p str, Target), ApiError> {
        Ok(match kind {
            PrincipalKind::User => {
                let n = params.required("UserName")?;
                (n, self.user_target(n))
            }
            PrincipalKind::Role => {
                let n = params.required("RoleName")?;
                (n, self.role_target(n))
            }
            PrincipalKind::Group => {
                let n = params.required("GroupName")?;
                (n, self.group_target(n))
            }
        })
    }
}
