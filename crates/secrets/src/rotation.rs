//! A rotation's progress, kept in the secret's metadata so that it
//! survives a restart: which function runs it, which version it makes,
//! which of the four steps are done, and when a failed step is retried.
//! The rotation job (`latchkey-rotator`) drives it; the rules are here.

use serde::{Deserialize, Serialize};

use crate::secret::{Rotation, Secret, SecretsError, Step};

/// The function names that select Latchkey's built-in database rotation,
/// as the last part of a `RotationLambdaARN`
/// (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`) or alone.
pub const SINGLE_USER_FUNCTION: &str = "latchkey-rotation-single-user";
pub const ALTERNATING_USERS_FUNCTION: &str = "latchkey-rotation-alternating-users";
/// Accepted for [`ALTERNATING_USERS_FUNCTION`]: AWS calls the strategy
/// "multi user" in its template names.
const MULTI_USER_FUNCTION: &str = "latchkey-rotation-multi-user";

/// Longest `RotationLambdaARN` (AWS's limit).
pub const MAX_FUNCTION_LEN: usize = 2048;

/// What runs a secret's rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationFunction {
    /// A registered database's credential, changed in place.
    SingleUser,
    /// A registered database's credential, two users taking turns.
    AlternatingUsers,
    /// The four steps POSTed, signed, to this `http(s)://` URL: the
    /// Lambda contract without Lambda.
    Webhook(String),
}

impl RotationFunction {
    /// Reads `RotationLambdaARN`.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let refuse = |why: &str| {
            SecretsError::InvalidParameter(format!(
                "RotationLambdaARN {why}. Name a built-in rotation \
                 (arn:aws:lambda:REGION:ACCOUNT:function:{SINGLE_USER_FUNCTION} or \
                 ...:function:{ALTERNATING_USERS_FUNCTION}) or a webhook URL (https://...)."
            ))
        };
        if text.is_empty() || text.len() > MAX_FUNCTION_LEN {
            return Err(refuse(&format!(
                "must be 1 to {MAX_FUNCTION_LEN} characters"
            )));
        }
        if let Some(rest) = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
        {
            if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(refuse("is not a valid URL"));
            }
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.is_empty() || authority.contains('@') {
                // Credentials in the URL would be shown by DescribeSecret.
                return Err(refuse("must name a host, with no user or password in it"));
            }
            // The operator allows webhooks by URL prefix: a path that a
            // server could resolve elsewhere must not pass for one under
            // it. So the path is plain: unreserved characters and `/` (no
            // percent-encoding, `;`, backslash or fragment), with no `.` or
            // `..` segment.
            let path = rest[authority.len()..]
                .split('?')
                .next()
                .unwrap_or_default();
            let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
            if text.contains('#')
                || !path.bytes().all(plain)
                || path
                    .split('/')
                    .any(|segment| segment == "." || segment == "..")
            {
                return Err(refuse(
                    "must have a plain path: letters, digits, -._~ and /, with no . or .. segment and no fragment",
                ));
            }
            return Ok(Self::Webhook(text.to_owned()));
        }
        let name = match text.strip_prefix("arn:") {
            Some(_) => {
                let parts: Vec<&str> = text.split(':').collect();
                // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
                if parts.len() < 7 || parts[2] != "lambda" || parts[5] != "function" {
                    return Err(refuse("is not a Lambda function ARN"));
                }
                parts[6]
            }
            None => text,
        };
        match name {
            SINGLE_USER_FUNCTION => Ok(Self::SingleUser),
            ALTERNATING_USERS_FUNCTION | MULTI_USER_FUNCTION => Ok(Self::AlternatingUsers),
            _ => Err(refuse(&format!(
                "names function {name:?}, which Latchkey does not have"
            ))),
        }
    }

    pub fn is_built_in(&self) -> bool {
        !matches!(self, Self::Webhook(_))
    }

    /// Reads `RotationLambdaARN` into the one form policies see and the
    /// secret keeps, so that no alias slips past a condition on
    /// `secretsmanager:RotationLambdaARN`: a built-in function as
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME` of this region and
    /// account (another region, account or a qualifier is refused; a bare
    /// name or the multi-user alias becomes that ARN), a webhook's URL as
    /// given.
    pub fn canonical(
        text: &str,
        region: &str,
        account: &str,
    ) -> Result<(Self, String), SecretsError> {
        let function = Self::parse(text)?;
        let name = match &function {
            Self::Webhook(url) => return Ok((function.clone(), url.clone())),
            Self::SingleUser => SINGLE_USER_FUNCTION,
            Self::AlternatingUsers => ALTERNATING_USERS_FUNCTION,
        };
        if text.starts_with("arn:") {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() != 7 || parts[1] != "aws" || parts[3] != region || parts[4] != account {
                return Err(SecretsError::InvalidParameter(format!(
                    "RotationLambdaARN must name Latchkey's built-in function in this region and account, with no qualifier: arn:aws:lambda:{region}:{account}:function:{name}."
                )));
            }
        }
        Ok((
            function,
            format!("arn:aws:lambda:{region}:{account}:function:{name}"),
        ))
    }
}

/// A rotation under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRun {
    /// The `ClientRequestToken`: the id of the version it makes.
    pub token: String,
    pub started: i64,
    /// The last step that completed; `None` before `createSecret`.
    #[serde(default)]
    pub done: Option<Step>,
    /// Failed attempts so far.
    #[serde(default)]
    pub failures: u32,
    /// A failed step is not retried before this time.
    #[serde(default)]
    pub retry_at: i64,
    /// Why the last attempt failed (no secret in it: the job writes
    /// only errors that carry none).
    #[serde(default)]
    pub last_error: Option<String>,
    /// A built-in rotation's fingerprint of the pending value it made
    /// (SHA-256 of the stored bytes, hex), checked at every later step so
    /// that a value put under the token by anyone else is never used.
    #[serde(default)]
    pub pending_digest: Option<String>,
}

/// The first retry after a failure waits this long; each further
/// failure doubles it, up to [`MAX_RETRY_SECS`].
pub const FIRST_RETRY_SECS: i64 = 30;
pub const MAX_RETRY_SECS: i64 = 3600;

impl RotationRun {
    /// The step to run next; `None` once `finishSecret` is done.
    pub fn next_step(&self) -> Option<Step> {
        match self.done {
            None => Some(Step::CreateSecret),
            Some(Step::CreateSecret) => Some(Step::SetSecret),
            Some(Step::SetSecret) => Some(Step::TestSecret),
            Some(Step::TestSecret) => Some(Step::FinishSecret),
            Some(Step::FinishSecret) => None,
        }
    }
}

fn no_run(token: &str) -> SecretsError {
    SecretsError::InvalidRequest(format!("No rotation with token {token} is in progress."))
}

impl Secret {
    /// The rotation under way, if any.
    pub fn rotation_run(&self) -> Option<&RotationRun> {
        self.rotation.as_ref().and_then(|r| r.run.as_ref())
    }

    fn run_mut(&mut self, token: &str) -> Result<&mut RotationRun, SecretsError> {
        self.rotation
            .as_mut()
            .and_then(|r| r.run.as_mut())
            .filter(|run| run.token == token)
            .ok_or_else(|| no_run(token))
    }

    /// Starts a rotation with `token`, or finds it already started (a
    /// retried `RotateSecret`): true when it is new. Refused while
    /// another rotation is unfinished, as AWS refuses it.
    pub fn begin_rotation(&mut self, token: &str, now: i64) -> Result<bool, SecretsError> {
        crate::secret::check_token(token)?;
        self.check_rotation_start(token)?;
        let rotation = self.rotation.as_mut().ok_or_else(|| {
            SecretsError::InvalidRequest("The secret has no rotation configured.".into())
        })?;
        match &rotation.run {
            Some(run) if run.token == token => Ok(false),
            Some(_) => Err(SecretsError::InvalidRequest(
                "A previous rotation isn't complete. That rotation will be reattempted.".into(),
            )),
            None => {
                rotation.run = Some(RotationRun {
                    token: token.to_owned(),
                    started: now,
                    done: None,
                    failures: 0,
                    retry_at: now,
                    last_error: None,
                    pending_digest: None,
                });
                Ok(true)
            }
        }
    }

    /// Records that `step` of the rotation `token` completed.
    pub fn step_done(&mut self, token: &str, step: Step) -> Result<(), SecretsError> {
        let run = self.run_mut(token)?;
        run.done = Some(step);
        run.last_error = None;
        Ok(())
    }

    /// Records the fingerprint of the pending value a built-in rotation
    /// made (see [`RotationRun::pending_digest`]).
    pub fn set_pending_digest(&mut self, token: &str, digest: String) -> Result<(), SecretsError> {
        self.run_mut(token)?.pending_digest = Some(digest);
        Ok(())
    }

    /// Records a failed attempt; gives when to try again.
    pub fn step_failed(
        &mut self,
        token: &str,
        reason: &str,
        now: i64,
    ) -> Result<i64, SecretsError> {
        let run = self.run_mut(token)?;
        run.failures = run.failures.saturating_add(1);
        let shift = run.failures.saturating_sub(1).min(16);
        let wait = (FIRST_RETRY_SECS << shift).min(MAX_RETRY_SECS);
        run.retry_at = now + wait;
        run.last_error = Some(reason.chars().take(1000).collect());
        Ok(run.retry_at)
    }

    /// Whether the job should work on this secret at `now`: a rotation
    /// under way whose retry time has come, or a scheduled one due.
    pub fn rotation_ready(&self, now: i64) -> bool {
        if self.is_deleted() {
            return false;
        }
        match self.rotation_run() {
            Some(run) => run.retry_at <= now,
            None => self.rotation_due(now),
        }
    }

    /// `CancelRotateSecret`: turns automatic rotation off and abandons
    /// the rotation under way. Its `AWSPENDING` version stays, as AWS
    /// leaves it (remove the label with `UpdateSecretVersionStage` before
    /// the next rotation). Gives the abandoned rotation's token.
    pub fn cancel_rotation(&mut self) -> Result<Option<String>, SecretsError> {
        self.check_not_deleted()?;
        let Some(rotation) = self.rotation.as_mut() else {
            return Err(SecretsError::InvalidRequest(
                "The secret has no rotation configured.".into(),
            ));
        };
        rotation.enabled = false;
        rotation.next_rotation = None;
        Ok(rotation.run.take().map(|run| run.token))
    }
}

/// Settings `RotateSecret` applies to a secret.
pub fn configure(
    rotation: Option<Rotation>,
    function: Option<&str>,
    rules: Option<crate::RotationRules>,
    now: i64,
) -> Result<Rotation, SecretsError> {
    let mut rotation = rotation.unwrap_or(Rotation {
        enabled: false,
        lambda_arn: String::new(),
        rules: crate::RotationRules::default(),
        last_rotated: None,
        next_rotation: None,
        run: None,
    });
    if let Some(function) = function {
        RotationFunction::parse(function)?;
        rotation.lambda_arn = function.to_owned();
    }
    if rotation.lambda_arn.is_empty() {
        return Err(SecretsError::InvalidRequest(
            "No Lambda rotation function ARN is associated with this secret.".into(),
        ));
    }
    if let Some(rules) = rules {
        rules
            .schedule()
            .map_err(|e| SecretsError::InvalidParameter(e.0))?;
        rotation.rules = rules;
    }
    let scheduled = rotation.rules.schedule().is_ok();
    rotation.enabled = scheduled;
    rotation.next_rotation = if scheduled {
        rotation
            .rules
            .next_rotation(rotation.last_rotated.unwrap_or(now), now)
            .ok()
    } else {
        None
    };
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use crate::RotationRules;
    use crate::secret::{AWSCURRENT, AWSPENDING};

    #[test]
    fn functions_by_name_arn_or_url() {
        let arn = |name: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{name}");
        assert_eq!(
            RotationFunction::parse(&arn(SINGLE_USER_FUNCTION)).unwrap(),
            RotationFunction::SingleUser
        );
        assert_eq!(
            RotationFunction::parse(&arn("latchkey-rotation-multi-user")).unwrap(),
            RotationFunction::AlternatingUsers
        );
        assert_eq!(
            RotationFunction::parse(ALTERNATING_USERS_FUNCTION).unwrap(),
            RotationFunction::AlternatingUsers
        );
        assert_eq!(
            RotationFunction::parse("https://hooks.example/rotate").unwrap(),
            RotationFunction::Webhook("https://hooks.example/rotate".into())
        );
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:1:function:SecretsManagerRotation",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:us-east-1",
            "https://a b",
            "ftp://x",
            "https://user:pw@hooks.example/rotate",
            "https:///path",
            "https://hooks.example/rotate/../admin",
            "https://hooks.example/rotate/./x",
            "https://hooks.example/rotate/%2E%2E/admin",
            "https://hooks.example/rotate%2fadmin",
            "https://hooks.example/rotate\\..\\admin",
            "https://hooks.example/rotate/..;/admin",
            "https://hooks.example/rotate/#/../../admin",
            "https://hooks.example/rotate/%252e%252e/admin",
            "https://hooks.example/rotate/%c0%ae%c0%ae/admin",
        ] {
            assert_eq!(
                RotationFunction::parse(bad).unwrap_err().code(),
                "InvalidParameterException",
                "{bad}"
            );
        }
        assert!(RotationFunction::parse(&"h".repeat(MAX_FUNCTION_LEN + 1)).is_err());
    }

    #[test]
    fn built_in_functions_have_one_canonical_arn() {
        let canonical =
            format!("arn:aws:lambda:us-east-1:111122223333:function:{ALTERNATING_USERS_FUNCTION}");
        for alias in [
            ALTERNATING_USERS_FUNCTION.to_owned(),
            MULTI_USER_FUNCTION.to_owned(),
            canonical.clone(),
            "arn:aws:lambda:us-east-1:111122223333:function:latchkey-rotation-multi-user"
                .to_owned(),
        ] {
            let (function, arn) =
                RotationFunction::canonical(&alias, "us-east-1", "111122223333").unwrap();
            assert_eq!(
                (function, arn.as_str()),
                (RotationFunction::AlternatingUsers, canonical.as_str()),
                "{alias}"
            );
        }
        for other in [
            format!("{canonical}:1"),
            canonical.replace("us-east-1", "eu-west-1"),
            canonical.replace("111122223333", "000000000000"),
            canonical.replace("arn:aws:", "arn:aws-cn:"),
        ] {
            assert!(
                RotationFunction::canonical(&other, "us-east-1", "111122223333").is_err(),
                "{other}"
            );
        }
        let url = "https://hooks.example/rotate?x=1";
        assert_eq!(RotationFunction::canonical(url, "r", "a").unwrap().1, url);
    }

    fn rotating_secret() -> Secret {
        let mut s = Secret::new("r", "1", "db", "AbCdEf", 0).unwrap();
        s.add_version(&"a".repeat(32), &[AWSCURRENT.into()], 0)
            .unwrap();
        s.rotation = Some(
            configure(
                None,
                Some(SINGLE_USER_FUNCTION),
                Some(RotationRules {
                    automatically_after_days: Some(1),
                    ..RotationRules::default()
                }),
                0,
            )
            .unwrap(),
        );
        s
    }

    #[test]
    fn a_run_goes_through_the_four_steps_once() {
        let mut s = rotating_secret();
        assert_eq!(s.rotation.as_ref().unwrap().next_rotation, Some(86_400));
        assert!(!s.rotation_ready(86_399) && s.rotation_ready(86_400));
        let token = "b".repeat(32);
        assert!(s.begin_rotation(&token, 5).unwrap());
        // A retried RotateSecret with the same token finds it; another is refused.
        assert!(!s.begin_rotation(&token, 6).unwrap());
        assert_eq!(
            s.begin_rotation(&"c".repeat(32), 6).unwrap_err().code(),
            "InvalidRequestException"
        );
        let mut steps = Vec::new();
        while let Some(step) = s.rotation_run().unwrap().next_step() {
            steps.push(step);
            if step == Step::CreateSecret {
                s.add_version(&token, &[AWSPENDING.into()], 5).unwrap();
            }
            if step == Step::FinishSecret {
                s.finish_rotation(&token, 10).unwrap();
                break;
            }
            s.step_done(&token, step).unwrap();
        }
        assert_eq!(steps, Step::ALL);
        assert!(s.rotation_run().is_none());
        assert_eq!(s.staged(AWSCURRENT).unwrap().id, token);
        assert_eq!(
            s.rotation.as_ref().unwrap().next_rotation,
            Some(10 + 86_400)
        );
        assert!(s.step_done(&token, Step::SetSecret).is_err());
    }

    #[test]
    fn failures_back_off_and_cancel_abandons() {
        let mut s = rotating_secret();
        let token = "b".repeat(32);
        s.begin_rotation(&token, 100).unwrap();
        assert!(s.rotation_ready(100));
        assert_eq!(s.step_failed(&token, "refused", 100).unwrap(), 130);
        assert!(!s.rotation_ready(129) && s.rotation_ready(130));
        assert_eq!(s.step_failed(&token, "refused", 130).unwrap(), 190);
        for _ in 0..40 {
            s.step_failed(&token, "refused", 200).unwrap();
        }
        assert_eq!(s.rotation_run().unwrap().retry_at, 200 + MAX_RETRY_SECS);
        assert_eq!(s.cancel_rotation().unwrap(), Some(token.clone()));
        let r = s.rotation.as_ref().unwrap();
        assert!(!r.enabled && r.run.is_none() && r.next_rotation.is_none());
        assert!(!s.rotation_ready(i64::MAX));
    }

    #[test]
    fn configure_needs_a_function_and_checks_rules() {
        assert_eq!(
            configure(None, None, None, 0).unwrap_err().code(),
            "InvalidRequestException"
        );
        let bad_rules = RotationRules {
            schedule_expression: Some("rate(2 hours)".into()),
            ..RotationRules::default()
        };
        assert_eq!(
            configure(None, Some(SINGLE_USER_FUNCTION), Some(bad_rules), 0)
                .unwrap_err()
                .code(),
            "InvalidParameterException"
        );
        // No rules: rotation on demand only.
        let r = configure(None, Some(SINGLE_USER_FUNCTION), None, 0).unwrap();
        assert!(!r.enabled && r.next_rotation.is_none());
    }
}
