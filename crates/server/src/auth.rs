//! SigV4 authentication of a token service request, and what temporary
//! credentials may call: the HTTP-facing half of credential checks, over
//! the identity core's lookup ([`AppState::find_credentials`]).

use latchkey_identity::{AppState, Caller};
use latchkey_sigv4::{AmzDate, AuthorizationHeader, Expectations, SigV4Error};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Requests dated further than this from the server's clock are refused
/// (`RequestExpired`), as AWS does.
pub const MAX_CLOCK_SKEW_SECS: u64 = 900;

/// A caller whose request's signature verified ([`authenticate`]).
pub struct SignedCaller {
    pub caller: Caller,
    /// The signature was presented for the first time, so whoever sent it
    /// holds the secret. A repeat (a reused or replayed request) proves
    /// only that someone once signed it: detection must not act against
    /// the principal on it (see [`latchkey_identity::replay`]).
    pub possession_proven: bool,
}

/// The parts of an HTTP request that authentication reads.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    /// The names of every header the request carries.
    pub header_names: &'a [&'a str],
    pub body: &'a [u8],
    pub source_ip: String,
}

/// Authenticates a SigV4 header-signed request for `service`.
pub fn authenticate(
    state: &AppState,
    req: &SignedRequest<'_>,
    service: &str,
    now: i64,
) -> Result<SignedCaller, ApiError> {
    let header = req.header;
    let Some(auth) = header("authorization") else {
        return Err(ApiError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let auth = AuthorizationHeader::parse(auth).map_err(|e| {
        ApiError::new(
            400,
            "IncompleteSignature",
            "The request signature does not conform to AWS standards.",
        )
        .because(e.to_string())
    })?;
    // Every x-amz-* header must be signed, as AWS requires: an unsigned
    // X-Amz-Target would let anyone who saw a signed request send it
    // again as another operation.
    if let Some(name) = auth.unsigned_amz_header(req.header_names.iter().copied()) {
        return Err(ApiError::new(
            400,
            "IncompleteSignature",
            format!(
                "There were headers present in the request which were not signed: {}",
                name.to_ascii_lowercase()
            ),
        ));
    }
    let payload_hash = hex::encode(Sha256::digest(req.body));
    if let Some(declared) = header("x-amz-content-sha256")
        && declared != payload_hash
        && declared != "UNSIGNED-PAYLOAD"
    {
        return Err(ApiError::new(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let akid = auth.access_key_id.to_string();
    let found =
        state.find_credentials(&akid, header("x-amz-security-token"), now, &req.source_ip)?;
    let (caller, secret) = (found.caller, found.secret);
    let expect = Expectations {
        service,
        // A request signed for another region is refused, as AWS does.
        region: Some(state.region()),
        now: AmzDate::from_unix(now).ok_or_else(ApiError::internal)?,
        max_expires: 0,
        clock_skew: MAX_CLOCK_SKEW_SECS,
    };
    let verified = state.verifier.verify_header(
        &auth,
        req.method,
        req.path,
        req.query,
        header,
        &payload_hash,
        secret.as_bytes(),
        &expect,
    );
    // A verified signature proves possession only the first time it is
    // presented: a captured request can be sent again for as long as
    // its date is within the clock skew.
    let fresh = verified.is_ok() && {
        let valid_until = header("x-amz-date")
            .and_then(|d| AmzDate::parse(d).ok())
            .map_or(now, AmzDate::unix)
            .saturating_add(MAX_CLOCK_SKEW_SECS as i64);
        state
            .seen_signatures
            .first_sight(auth.signature.as_bytes(), valid_until, now)
    };
    // An expired, revoked or inactive credential gets the same answer
    // whatever its signature; the audit learns whether it verified.
    if let Some(refusal) = found.refusal {
        return Err(refusal.proven(fresh).into());
    }
    verified
        .map_err(|e| match e {
            SigV4Error::ClockSkew { .. } => ApiError::new(400, "RequestExpired", "Request has expired.").because(e.to_string()),
            SigV4Error::SignatureMismatch => ApiError::new(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ),
            SigV4Error::WrongRegion { .. } => ApiError::new(
                403,
                "SignatureDoesNotMatch",
                "Credential should be scoped to a valid region.",
            ).because(e.to_string()),
            SigV4Error::WrongService { .. } | SigV4Error::Malformed(_) | SigV4Error::UnsupportedAlgorithm => {
                ApiError::new(400, "IncompleteSignature", "The request signature does not conform to AWS standards.").because(e.to_string())
            }
            other => ApiError::new(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.").because(other.to_string()),
        })?;
    Ok(SignedCaller {
        caller,
        possession_proven: fresh,
    })
}

/// What credentials from `GetSessionToken` may call, as AWS has it: no
/// IAM unless MFA was given (or a short-lived credential could mint a
/// permanent key), and no STS action but `AssumeRole` and
/// `GetCallerIdentity`.
pub fn check_session_scope(caller: &Caller, service: &str, action: &str) -> Result<(), ApiError> {
    let Some(c) = &caller.session else {
        return Ok(());
    };
    if !c.role_arn.is_empty() {
        return Ok(());
    }
    match service {
        "iam" if !c.mfa_authenticated => Err(ApiError::invalid_token().because(format!(
            "{action}: GetSessionToken credentials obtained without MFA may not call IAM"
        ))),
        "sts" if !matches!(action, "AssumeRole" | "GetCallerIdentity") => Err(ApiError::new(
            403,
            "AccessDenied",
            format!("Cannot call {action} with session credentials"),
        )),
        _ => Ok(()),
    }
}
