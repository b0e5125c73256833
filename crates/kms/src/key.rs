//! A key's metadata as stored, its states and its key material versions.
//! The key material itself is not here: the store keeps each version
//! sealed by the master key, under the key id and version number.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::KmsError;
use crate::key_id::{KeyUuid, key_arn};
use crate::mac::MacAlgorithm;

const DAY: i64 = 86_400;
/// `RotationPeriodInDays` bounds and default, as AWS's.
pub const MIN_ROTATION_DAYS: i64 = 90;
pub const MAX_ROTATION_DAYS: i64 = 2560;
pub const DEFAULT_ROTATION_DAYS: i64 = 365;
/// `PendingWindowInDays` bounds and default.
pub const MIN_DELETION_DAYS: i64 = 7;
pub const MAX_DELETION_DAYS: i64 = 30;
/// On-demand rotations a key may have in its life.
pub const MAX_ON_DEMAND_ROTATIONS: u32 = 10;
pub const MAX_DESCRIPTION: usize = 8192;
pub const MAX_TAGS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyUsage {
    #[serde(rename = "ENCRYPT_DECRYPT")]
    EncryptDecrypt,
    #[serde(rename = "GENERATE_VERIFY_MAC")]
    GenerateVerifyMac,
}

impl KeyUsage {
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        match s {
            "ENCRYPT_DECRYPT" => Ok(Self::EncryptDecrypt),
            "GENERATE_VERIFY_MAC" => Ok(Self::GenerateVerifyMac),
            "SIGN_VERIFY" | "KEY_AGREEMENT" => Err(KmsError::UnsupportedOperation(format!(
                "KeyUsage {s} is not supported here: only symmetric encryption and HMAC keys."
            ))),
            _ => Err(KmsError::Validation(
                "KeyUsage must be ENCRYPT_DECRYPT or GENERATE_VERIFY_MAC.".into(),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EncryptDecrypt => "ENCRYPT_DECRYPT",
            Self::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySpec {
    #[serde(rename = "SYMMETRIC_DEFAULT")]
    SymmetricDefault,
    #[serde(rename = "HMAC_224")]
    Hmac224,
    #[serde(rename = "HMAC_256")]
    Hmac256,
    #[serde(rename = "HMAC_384")]
    Hmac384,
    #[serde(rename = "HMAC_512")]
    Hmac512,
}

impl KeySpec {
    pub fn parse(s: &str) -> Result<Self, KmsError> {
        Ok(match s {
            "SYMMETRIC_DEFAULT" => Self::SymmetricDefault,
            "HMAC_224" => Self::Hmac224,
            "HMAC_256" => Self::Hmac256,
            "HMAC_384" => Self::Hmac384,
            "HMAC_512" => Self::Hmac512,
            s if s.starts_with("RSA_")
                || s.starts_with("ECC_")
                || s.starts_with("SM2")
                || s.starts_with("ML_DSA") =>
            {
                return Err(KmsError::UnsupportedOperation(format!(
                    "KeySpec {s} is not supported here: only SYMMETRIC_DEFAULT and HMAC keys."
                )));
            }
            _ => return Err(KmsError::Validation("KeySpec is not valid.".into())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SymmetricDefault => "SYMMETRIC_DEFAULT",
            Self::Hmac224 => "HMAC_224",
            Self::Hmac256 => "HMAC_256",
            Self::Hmac384 => "HMAC_384",
            Self::Hmac512 => "HMAC_512",
        }
    }

    /// The key material's length in bytes.
    pub fn material_len(self) -> usize {
        match self {
            Self::SymmetricDefault | Self::Hmac256 => 32,
            Self::Hmac224 => 28,
            Self::Hmac384 => 48,
            Self::Hmac512 => 64,
        }
    }

    /// The usage this spec allows.
    pub fn usage(self) -> KeyUsage {
        match self {
            Self::SymmetricDefault => KeyUsage::EncryptDecrypt,
            _ => KeyUsage::GenerateVerifyMac,
        }
    }

    /// The one MAC algorithm an HMAC key computes.
    pub fn mac_algorithm(self) -> Option<MacAlgorithm> {
        match self {
            Self::SymmetricDefault => None,
            Self::Hmac224 => Some(MacAlgorithm::Sha224),
            Self::Hmac256 => Some(MacAlgorithm::Sha256),
            Self::Hmac384 => Some(MacAlgorithm::Sha384),
            Self::Hmac512 => Some(MacAlgorithm::Sha512),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages the key: the account (`CreateKey`), or the service that
/// created it on first use (`alias/aws/ssm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    #[serde(rename = "CUSTOMER")]
    Customer,
    #[serde(rename = "AWS")]
    Aws,
}

/// How a key material version came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaterialOrigin {
    Created,
    #[serde(rename = "AUTOMATIC")]
    Automatic,
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

/// One version of a key's material; every version stays, so whatever it
/// encrypted stays readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Material {
    pub version: u32,
    pub created: i64,
    pub origin: MaterialOrigin,
}

/// A key's metadata. Holds nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub created: i64,
    pub description: String,
    pub usage: KeyUsage,
    pub spec: KeySpec,
    pub state: KeyState,
    /// When a key pending deletion is deleted.
    pub deletion_date: Option<i64>,
    pub pending_window_days: Option<i64>,
    pub manager: KeyManager,
    /// The key policy (JSON).
    pub policy: String,
    pub tags: Vec<(String, String)>,
    /// Automatic rotation: its period, and when it is next due.
    pub rotation_days: Option<i64>,
    pub next_rotation: Option<i64>,
    pub materials: Vec<Material>,
    pub on_demand_rotations: u32,
}

/// What `CreateKey` asks for, checked.
pub struct NewKey {
    pub description: String,
    pub spec: KeySpec,
    pub manager: KeyManager,
    pub policy: String,
    pub tags: Vec<(String, String)>,
}

/// A key's `Description`.
pub fn check_description(d: &str) -> Result<(), KmsError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(KmsError::Validation(format!(
            "Description must be at most {MAX_DESCRIPTION} characters."
        )));
    }
    Ok(())
}

/// Tags as KMS allows them (`TagException` otherwise).
pub fn check_tags(tags: &[(String, String)]) -> Result<(), KmsError> {
    // Policies name tag keys without case (`aws:ResourceTag/team`): a key
    // given twice, in any case, would be one key with two values.
    if let Some(k) = latchkey_tags::duplicate(tags) {
        return Err(KmsError::Tag(format!(
            "Duplicate tag key {k}: each key may be given once (keys are compared without case)."
        )));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(KmsError::Tag(
                "Tag keys must be 1-128 characters and values at most 256.".into(),
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(KmsError::Tag(
                "Tag keys must not start with \"aws:\".".into(),
            ));
        }
    }
    Ok(())
}

impl Key {
    /// Adds or replaces tags, within [`MAX_TAGS`]. A key that differs from
    /// one the key has only in case is refused: the two would be one key
    /// to a policy, and the later would hide the earlier.
    pub fn tag(&mut self, tags: &[(String, String)]) -> Result<(), KmsError> {
        check_tags(tags)?;
        let merged = latchkey_tags::merge(&self.tags, tags).map_err(|c| match c {
            latchkey_tags::Conflict::Duplicate(k) => KmsError::Tag(format!(
                "Duplicate tag key {k}: each key may be given once (keys are compared without case)."
            )),
            latchkey_tags::Conflict::CaseVariant { existing, given } => KmsError::Tag(format!(
                "The key already has the tag key {existing}, which differs from {given} only in case; untag {existing} first or use it as it is."
            )),
        })?;
        if merged.len() > MAX_TAGS {
            return Err(KmsError::Tag(format!(
                "A key may have at most {MAX_TAGS} tags."
            )));
        }
        self.tags = merged;
        Ok(())
    }

    /// A new key with its first key material version (1).
    pub fn new(
        id: &KeyUuid,
        region: &str,
        account: &str,
        new: NewKey,
        now: i64,
    ) -> Result<Self, KmsError> {
        check_description(&new.description)?;
        check_tags(&new.tags)?;
        if new.tags.len() > MAX_TAGS {
            return Err(KmsError::Tag(format!(
                "A key may have at most {MAX_TAGS} tags."
            )));
        }
        // AWS managed keys rotate every year, always.
        let aws = new.manager == KeyManager::Aws;
        Ok(Self {
            id: id.to_string(),
            arn: key_arn(region, account, id),
            account: account.to_owned(),
            created: now,
            description: new.description,
            usage: new.spec.usage(),
            spec: new.spec,
            state: KeyState::Enabled,
            deletion_date: None,
            pending_window_days: None,
            manager: new.manager,
            policy: new.policy,
            tags: new.tags,
            rotation_days: aws.then_some(DEFAULT_ROTATION_DAYS),
            next_rotation: aws.then_some(now + DEFAULT_ROTATION_DAYS * DAY),
            materials: vec![Material {
                version: 1,
                created: now,
                origin: MaterialOrigin::Created,
            }],
            on_demand_rotations: 0,
        })
    }

    /// The key material version that encrypts now.
    pub fn current_material(&self) -> u32 {
        self.materials.last().map_or(1, |m| m.version)
    }

    /// Whether `version` is one of this key's material versions.
    pub fn has_material(&self, version: u32) -> bool {
        self.materials.iter().any(|m| m.version == version)
    }

    /// Whether its deletion has taken effect: it is gone then.
    pub fn is_deleted(&self, now: i64) -> bool {
        self.state == KeyState::PendingDeletion && self.deletion_date.is_some_and(|d| now >= d)
    }

    /// A cryptographic operation needs an enabled key.
    pub fn check_usable(&self) -> Result<(), KmsError> {
        match self.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(self.arn.clone())),
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn
            ))),
        }
    }

    /// A cryptographic operation of `usage`: an enabled key of that usage.
    pub fn check_usage(&self, usage: KeyUsage, operation: &str) -> Result<(), KmsError> {
        self.check_usable()?;
        if self.usage != usage {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {operation}.",
                self.arn,
                self.usage.as_str()
            )));
        }
        Ok(())
    }

    fn check_customer(&self, what: &str) -> Result<(), KmsError> {
        if self.manager == KeyManager::Aws {
            return Err(KmsError::UnsupportedOperation(format!(
                "{what} is not allowed on an AWS managed key."
            )));
        }
        Ok(())
    }

    fn check_not_pending(&self) -> Result<(), KmsError> {
        if self.state == KeyState::PendingDeletion {
            return Err(KmsError::InvalidState(format!(
                "{} is pending deletion.",
                self.arn
            )));
        }
        Ok(())
    }

    pub fn enable(&mut self) -> Result<(), KmsError> {
        self.check_customer("EnableKey")?;
        self.check_not_pending()?;
        self.state = KeyState::Enabled;
        Ok(())
    }

    pub fn disable(&mut self) -> Result<(), KmsError> {
        self.check_customer("DisableKey")?;
        self.check_not_pending()?;
        self.state = KeyState::Disabled;
        Ok(())
    }

    /// Schedules deletion in `days` (7-30, default 30); returns the date.
    pub fn schedule_deletion(&mut self, days: Option<i64>, now: i64) -> Result<i64, KmsError> {
        self.check_customer("ScheduleKeyDeletion")?;
        let days = days.unwrap_or(MAX_DELETION_DAYS);
        if !(MIN_DELETION_DAYS..=MAX_DELETION_DAYS).contains(&days) {
            return Err(KmsError::Validation(format!(
                "PendingWindowInDays must be between {MIN_DELETION_DAYS} and {MAX_DELETION_DAYS}."
            )));
        }
        self.check_not_pending()?;
        let date = now + days * DAY;
        self.state = KeyState::PendingDeletion;
        self.deletion_date = Some(date);
        self.pending_window_days = Some(days);
        Ok(date)
    }

    /// Cancels a scheduled deletion; the key is then disabled, as in AWS.
    pub fn cancel_deletion(&mut self) -> Result<(), KmsError> {
        if self.state != KeyState::PendingDeletion {
            return Err(KmsError::InvalidState(format!(
                "{} is not pending deletion.",
                self.arn
            )));
        }
        self.state = KeyState::Disabled;
        self.deletion_date = None;
        self.pending_window_days = None;
        Ok(())
    }

    fn check_rotatable(&self, what: &str) -> Result<(), KmsError> {
        if self.spec != KeySpec::SymmetricDefault {
            return Err(KmsError::UnsupportedOperation(format!(
                "{what} is supported only on symmetric encryption keys."
            )));
        }
        self.check_customer(what)?;
        self.check_usable()
    }

    /// Turns automatic rotation on, every `days` (90-2560, default 365).
    pub fn enable_rotation(&mut self, days: Option<i64>, now: i64) -> Result<(), KmsError> {
        let days = days.unwrap_or(DEFAULT_ROTATION_DAYS);
        if !(MIN_ROTATION_DAYS..=MAX_ROTATION_DAYS).contains(&days) {
            return Err(KmsError::Validation(format!(
                "RotationPeriodInDays must be between {MIN_ROTATION_DAYS} and {MAX_ROTATION_DAYS}."
            )));
        }
        self.check_rotatable("EnableKeyRotation")?;
        self.rotation_days = Some(days);
        self.next_rotation = Some(now + days * DAY);
        Ok(())
    }

    pub fn disable_rotation(&mut self) -> Result<(), KmsError> {
        self.check_rotatable("DisableKeyRotation")?;
        self.rotation_days = None;
        self.next_rotation = None;
        Ok(())
    }

    /// Whether automatic rotation is due.
    pub fn rotation_due(&self, now: i64) -> bool {
        self.state == KeyState::Enabled && self.next_rotation.is_some_and(|t| now >= t)
    }

    fn add_material(&mut self, now: i64, origin: MaterialOrigin) -> u32 {
        let version = self.current_material() + 1;
        self.materials.push(Material {
            version,
            created: now,
            origin,
        });
        version
    }

    /// Rotates if automatic rotation is due; returns the new version.
    pub fn rotate_if_due(&mut self, now: i64) -> Option<u32> {
        if !self.rotation_due(now) {
            return None;
        }
        let days = self.rotation_days.unwrap_or(DEFAULT_ROTATION_DAYS);
        let version = self.add_material(now, MaterialOrigin::Automatic);
        self.next_rotation = Some(now + days * DAY);
        Some(version)
    }

    /// `RotateKeyOnDemand`: a new version now; the schedule is unchanged.
    pub fn rotate_on_demand(&mut self, now: i64) -> Result<u32, KmsError> {
        self.check_rotatable("RotateKeyOnDemand")?;
        if self.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
            return Err(KmsError::LimitExceeded(format!(
                "A key may be rotated on demand at most {MAX_ON_DEMAND_ROTATIONS} times."
            )));
        }
        self.on_demand_rotations += 1;
        Ok(self.add_material(now, MaterialOrigin::OnDemand))
    }

    /// `KeyMetadata` as AWS answers it.
    pub fn metadata(&self) -> Value {
        let mut m = json!({
            "AWSAccountId": self.account,
            "KeyId": self.id,
            "Arn": self.arn,
            "CreationDate": self.created,
            "Enabled": self.state == KeyState::Enabled,
            "Description": self.description,
            "KeyUsage": self.usage.as_str(),
            "KeyState": self.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": match self.manager { KeyManager::Customer => "CUSTOMER", KeyManager::Aws => "AWS" },
            "CustomerMasterKeySpec": self.spec.as_str(),
            "KeySpec": self.spec.as_str(),
            "MultiRegion": false,
        });
        match self.spec.mac_algorithm() {
            None => m["EncryptionAlgorithms"] = json!(["SYMMETRIC_DEFAULT"]),
            Some(alg) => m["MacAlgorithms"] = json!([alg.as_str()]),
        }
        if let Some(d) = self.deletion_date {
            m["DeletionDate"] = json!(d);
        }
        if self.materials.len() > 1 || self.rotation_days.is_some() {
            m["CurrentKeyMaterialId"] = json!(format!("{:064x}", self.current_material()));
        }
        m
    }

    /// `GetKeyRotationStatus`'s answer.
    pub fn rotation_status(&self) -> Value {
        let mut out = json!({
            "KeyId": self.arn,
            "KeyRotationEnabled": self.rotation_days.is_some(),
        });
        if let (Some(days), Some(next)) = (self.rotation_days, self.next_rotation) {
            out["RotationPeriodInDays"] = json!(days);
            out["NextRotationDate"] = json!(next);
        }
        if let Some(last) = self
            .materials
            .iter()
            .rev()
            .find(|m| m.origin == MaterialOrigin::OnDemand)
        {
            out["OnDemandRotationStartDate"] = json!(last.created);
        }
        out
    }

    /// `ListKeyRotations`' entries: every rotation, oldest first.
    pub fn rotations(&self) -> Vec<Value> {
        self.materials
            .iter()
            .filter(|m| m.origin != MaterialOrigin::Created)
            .map(|m| {
                json!({
                    "KeyId": self.arn,
                    "RotationDate": m.created,
                    "RotationType": match m.origin { MaterialOrigin::OnDemand => "ON_DEMAND", _ => "AUTOMATIC" },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(spec: KeySpec, manager: KeyManager) -> Key {
        Key::new(
            &KeyUuid::random().expect("id"),
            "us-east-1",
            "123456789012",
            NewKey {
                description: String::new(),
                spec,
                manager,
                policy: "{}".into(),
                tags: vec![],
            },
            1_000,
        )
        .expect("key")
    }

    #[test]
    fn tag_keys_are_one_key_whatever_their_case() {
        let mut k = key(KeySpec::SymmetricDefault, KeyManager::Customer);
        let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert!(k.tag(&[tag("team", "blue")]).is_ok());
        assert!(matches!(
            k.tag(&[tag("Team", "red")]),
            Err(KmsError::Tag(_))
        ));
        assert!(matches!(
            k.tag(&[tag("env", "a"), tag("ENV", "b")]),
            Err(KmsError::Tag(_))
        ));
        assert!(k.tag(&[tag("team", "green")]).is_ok());
        assert_eq!(k.tags, [tag("team", "green")]);
        assert!(check_tags(&[tag("a", "1"), tag("A", "2")]).is_err());
    }

    #[test]
    fn states() {
        let mut k = key(KeySpec::SymmetricDefault, KeyManager::Customer);
        assert!(k.check_usage(KeyUsage::EncryptDecrypt, "Encrypt").is_ok());
        assert_eq!(
            k.check_usage(KeyUsage::GenerateVerifyMac, "GenerateMac")
                .map_err(|e| e.code()),
            Err("InvalidKeyUsageException")
        );
        k.disable().expect("disable");
        assert_eq!(
            k.check_usable().map_err(|e| e.code()),
            Err("DisabledException")
        );
        k.enable().expect("enable");
        assert_eq!(
            k.cancel_deletion().map_err(|e| e.code()),
            Err("KMSInvalidStateException")
        );
        assert!(k.schedule_deletion(Some(6), 0).is_err());
        assert!(k.schedule_deletion(Some(31), 0).is_err());
        let date = k.schedule_deletion(Some(7), 1_000).expect("schedule");
        assert_eq!(date, 1_000 + 7 * DAY);
        assert_eq!(
            k.check_usable().map_err(|e| e.code()),
            Err("KMSInvalidStateException")
        );
        assert_eq!(
            k.enable().map_err(|e| e.code()),
            Err("KMSInvalidStateException")
        );
        assert!(!k.is_deleted(date - 1));
        assert!(k.is_deleted(date));
        k.cancel_deletion().expect("cancel");
        assert_eq!(k.state, KeyState::Disabled);
    }

    #[test]
    fn rotation_keeps_every_version() {
        let mut k = key(KeySpec::SymmetricDefault, KeyManager::Customer);
        assert!(k.enable_rotation(Some(89), 0).is_err());
        assert!(k.enable_rotation(Some(2561), 0).is_err());
        k.enable_rotation(Some(90), 1_000).expect("enable");
        assert_eq!(k.rotate_if_due(1_000 + 90 * DAY - 1), None);
        assert_eq!(k.rotate_if_due(1_000 + 90 * DAY), Some(2));
        assert_eq!(k.rotate_on_demand(2_000_000_000).expect("on demand"), 3);
        assert_eq!(k.current_material(), 3);
        assert!(k.has_material(1) && k.has_material(2) && !k.has_material(4));
        assert_eq!(k.rotations().len(), 2);
        for _ in 0..9 {
            k.rotate_on_demand(0).expect("on demand");
        }
        assert_eq!(
            k.rotate_on_demand(0).map_err(|e| e.code()),
            Err("LimitExceededException")
        );
        let mut h = key(KeySpec::Hmac256, KeyManager::Customer);
        assert_eq!(
            h.enable_rotation(None, 0).map_err(|e| e.code()),
            Err("UnsupportedOperationException")
        );
        let mut aws = key(KeySpec::SymmetricDefault, KeyManager::Aws);
        assert_eq!(aws.rotation_days, Some(365));
        assert_eq!(
            aws.disable().map_err(|e| e.code()),
            Err("UnsupportedOperationException")
        );
        assert!(aws.schedule_deletion(None, 0).is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let k = key(KeySpec::Hmac384, KeyManager::Customer);
        let text = serde_json::to_string(&k).expect("json");
        assert_eq!(serde_json::from_str::<Key>(&text).expect("parse"), k);
        assert_eq!(k.metadata()["MacAlgorithms"][0], "HMAC_SHA_384");
        assert_eq!(k.metadata()["KeyUsage"], "GENERATE_VERIFY_MAC");
    }
}
