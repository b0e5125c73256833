//! What a store backend does, by concern. [`crate::Store`] is the facade
//! every caller uses; it holds one [`Backend`]: [`crate::sqlite`]'s
//! today, another (PostgreSQL, for several nodes sharing one store) later.
//!
//! A backend keeps rows; the rules of the IAM API (names, paths, quotas,
//! error kinds) are part of its contract, so every backend answers alike:
//! the tests in `crates/store/tests` are the specification. Besides, a
//! backend must guarantee, with several server processes (nodes) using the
//! same store at once:
//!
//! - **Secrets are sealed.** Access-key secrets, MFA seeds, cluster keys,
//!   upstream passwords and the database CA's and audit trail's private
//!   keys reach storage only sealed by the [`crate::Vault`] (with the
//!   contexts the SQLite backend uses, so that [`Backend::rewrap_all`] and
//!   a move between backends keep them readable); the vault check written
//!   at creation stops a wrong master key at open.
//! - **TOTP replay refusal is atomic.** [`Credentials::use_mfa_step`]
//!   records a step only if it is later than the last recorded one, in
//!   one conditional write (compare-and-set), so that two nodes given the
//!   same code at once accept it once.
//! - **Creation is idempotent under races.** Creating what exists
//!   (`EntityAlreadyExists`) changes nothing; the single-row objects
//!   ([`Databases::create_database_ca`],
//!   [`Audit::create_audit_signing_key`]) keep the first one stored and
//!   report whether the caller's was, so every node ends up using the same
//!   one; [`SessionKeys::revoke_sessions`] only ever moves a principal's
//!   cut-off later; [`Audit::put_audit_anchor`] never moves an anchor
//!   backwards or to another trail.
//! - **Cluster keys rotate once.** [`SessionKeys::rotate_cluster_keys`]
//!   runs on every node; the new key is inserted keyed by its id, so two
//!   nodes rotating at once add one key (the loser's insert does nothing),
//!   and the newest key is never dropped. [`SessionKeys::cluster_keys`]
//!   creates key 1 on an empty store; a node losing that race gets an
//!   error (a unique id), and key 1 is there when it asks again.
//! - **Checked deletes are transactions.** A delete that checks for
//!   dependents (`DeleteConflict`), with the rewrite of trust policies
//!   naming a deleted user or role, happens in one transaction, as do a
//!   managed policy's version changes with its default document.
//! - **Names compare as IAM's do.** User, role, group and policy names
//!   are unique ignoring ASCII case; rows keyed by them hold the entity's
//!   own spelling.

use zeroize::Zeroizing;

use crate::{
    AccessKey, Database, Fingerprint, FirewallConfig, FirewallProfile, Group, LearnedShape,
    LoginProfile, ManagedPolicy, MfaDevice, ObjectTag, PasswordHash, PasswordPolicy, PolicyEntity,
    PolicyVersion, PrincipalKind, ProfileMode, Result, Role, StoreError, User, Vault,
};

/// A whole store: every concern, shareable between threads.
pub trait Backend:
    Identities
    + Policies
    + Credentials
    + Passwords
    + SessionKeys
    + Databases
    + Classification
    + Firewall
    + Findings
    + Audit
    + Secrets
    + KmsKeys
    + Parameters
    + Usage
    + Nodes
    + AuditShipping
    + ConsoleSessions
    + Send
    + Sync
{
    /// The 12-digit account id, fixed when the store was created.
    fn account_id(&self) -> &str;

    /// Replaces the master keys (during master-key rotation). The new vault
    /// must open what is stored: it is checked first.
    fn set_vault(&self, vault: Vault) -> Result<()>;

    /// Re-wraps every sealed secret with the vault's current master key,
    /// in one transaction. Returns how many were re-wrapped.
    fn rewrap_all(&self) -> Result<usize>;

    /// Whether the store answers and would take a write now (a node's
    /// readiness).
    fn ready(&self) -> Result<()>;

    /// Calls `on_change` soon after any node commits a change that other
    /// nodes must act on (identities, keys, policies, revocations,
    /// databases, cluster keys), until the store is dropped; after a lost
    /// connection to the store it reports [`StoreChange::Lost`], and
    /// [`StoreChange::Listening`] once it listens again (changes may have
    /// been missed in between). Returns whether the backend has
    /// such a feed: without one, nodes rely on periodic reloads only.
    fn watch_changes(&self, on_change: ChangeCallback) -> Result<bool>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl`
    /// (Unix seconds), in one conditional write: it succeeds when the lease
    /// is free, expired or already `holder`'s. A background job that must
    /// run on one node at a time runs only while its node holds the lease;
    /// when that node dies the lease expires and another takes it.
    fn hold_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool>;
}

/// The nodes sharing a store, as each reports itself, and the master key
/// they agreed to seal with (a coordinated master-key rotation).
pub trait Nodes {
    /// Records `report` as its node's (replacing the one before).
    fn report_node(&self, report: &NodeReport) -> Result<()>;

    /// Every node that reported, by node id.
    fn nodes(&self) -> Result<Vec<NodeReport>>;

    /// Forgets a node's report (a node retired on purpose); whether there
    /// was one.
    fn forget_node(&self, node: &str) -> Result<bool>;

    /// The master key every node seals with, once a coordinated rotation
    /// set one; until then each node seals with the newest in its file.
    fn sealing_master_key(&self) -> Result<Option<u32>>;

    fn set_sealing_master_key(&self, id: u32) -> Result<()>;

    /// Publishes this node's gauges (live sessions per gateway, address
    /// and principal) that `changed` since its last exchange (a count of 0
    /// removes one; `fresh` replaces all of them, as after a restart),
    /// marks it alive at `now`, and returns the other nodes' gauges, of
    /// nodes alive after `alive_after`: (what, key, count).
    fn exchange_gauges(
        &self,
        node: &str,
        now: i64,
        fresh: bool,
        changed: &[(String, String, i64)],
        alive_after: i64,
    ) -> Result<Vec<(String, String, i64)>>;

    /// Publishes this node's running sessions for the other nodes'
    /// consoles: `upsert` adds or replaces rows, `ended` removes them (by
    /// session id); `fresh` first forgets every row this node published
    /// before (a restart) and those of nodes no longer known. Then takes
    /// the end requests other nodes left for this one (deleting them):
    /// their session ids.
    fn publish_live_sessions(
        &self,
        node: &str,
        fresh: bool,
        upsert: &[PublishedSession],
        ended: &[String],
    ) -> Result<Vec<String>>;

    /// The sessions other nodes than `except` published, of nodes that
    /// exchanged gauges after `alive_after` (a node that died shows none).
    fn published_sessions(&self, except: &str, alive_after: i64) -> Result<Vec<PublishedSession>>;

    /// Asks `node` to end its session `session_id`: it does at its next
    /// publish.
    fn request_session_end(&self, node: &str, session_id: &str, now: i64) -> Result<()>;
}

/// A running session as its node publishes it for the others: the
/// registered database it is on (what the console authorises on) and the
/// rest as JSON the console reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedSession {
    pub node: String,
    pub session_id: String,
    pub database: String,
    pub document: String,
}

/// What a node says of itself, every few seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    pub node: String,
    /// Unix seconds: when it started, and when it last reported.
    pub started: i64,
    pub seen: i64,
    pub version: String,
    /// The master keys it holds: id and fingerprint (never the key).
    pub master_keys: Vec<(u32, String)>,
    /// The master key it seals with.
    pub sealing_key: u32,
    /// The last audit record it sealed (0: none yet): a node that sealed
    /// records must have a trail in the store.
    pub sealed: u64,
    /// How it is set up, for the security checks to judge every node
    /// (`latchkey advisor checks`): JSON the advisor reads, empty when
    /// not reported.
    pub posture: String,
}

impl NodeReport {
    /// `master_keys` as stored: `ID:FINGERPRINT` separated by commas.
    pub fn keys_text(&self) -> String {
        self.master_keys
            .iter()
            .map(|(id, print)| format!("{id}:{print}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads [`NodeReport::keys_text`] back; what does not parse is left out.
    pub fn parse_keys(text: &str) -> Vec<(u32, String)> {
        text.split(',')
            .filter_map(|pair| {
                let (id, print) = pair.split_once(':')?;
                Some((id.parse().ok()?, print.to_owned()))
            })
            .collect()
    }
}

/// What [`Backend::watch_changes`] calls.
pub type ChangeCallback = std::sync::Arc<dyn Fn(StoreChange) + Send + Sync>;

/// What another node changed, as far as a node's caches are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreChange {
    /// Users, roles, groups, memberships, policies, access keys or MFA
    /// devices.
    Identities,
    /// A principal's sessions were revoked.
    Revocations,
    /// A source address was blocked.
    Blocklist,
    /// A database was registered, changed or removed, or its upstream
    /// logins changed.
    Databases,
    /// The cluster key ring.
    ClusterKeys,
    /// Anything: the feed may have missed changes.
    Everything,
    /// The feed is listening (again): anything may have changed while it
    /// was not.
    Listening,
    /// The feed lost its connection: changes go unreported until it
    /// reports [`StoreChange::Listening`], so a node must poll meanwhile.
    Lost,
}

impl StoreChange {
    /// The change a write to `table` makes.
    pub fn of_table(table: &str) -> Self {
        match table {
            "users"
            | "roles"
            | "groups"
            | "group_members"
            | "inline_policies"
            | "attachments"
            | "managed_policies"
            | "policy_versions"
            | "access_keys"
            | "deleted_access_keys"
            | "mfa_devices" => StoreChange::Identities,
            "revocations" => StoreChange::Revocations,
            "blocked_addresses" => StoreChange::Blocklist,
            "databases" | "database_passwords" | "object_tags" | "firewall_config" => {
                StoreChange::Databases
            }
            "cluster_keys" => StoreChange::ClusterKeys,
            _ => StoreChange::Everything,
        }
    }
}

/// Users, roles and groups, their tags and memberships.
pub trait Identities {
    fn create_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<User>;

    fn get_user(&self, name: &str) -> Result<User>;

    fn list_users(&self) -> Result<Vec<User>>;

    /// Deletes a user that has no keys, policies or MFA devices (rows of
    /// any spelling of its name count); trust policies naming it then name
    /// its unique id, so a new user of the same name is not trusted.
    fn delete_user(&self, name: &str) -> Result<()>;

    fn tag_user(&self, name: &str, tags: &[(String, String)]) -> Result<()>;

    fn untag_user(&self, name: &str, keys: &[&str]) -> Result<()>;

    #[allow(clippy::too_many_arguments)]
    fn create_role(
        &self,
        name: &str,
        path: &str,
        trust_policy: &str,
        max_session_duration: i64,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<Role>;

    fn get_role(&self, name: &str) -> Result<Role>;

    fn list_roles(&self) -> Result<Vec<Role>>;

    /// Deletes a role that has no policies (rows of any spelling of its
    /// name count); other roles' trust policies naming it then name its
    /// unique id, so a new role of the same name is not trusted.
    fn delete_role(&self, name: &str) -> Result<()>;

    fn update_assume_role_policy(&self, name: &str, document: &str) -> Result<()>;

    /// Changes a role's description and/or maximum session duration.
    fn update_role(
        &self,
        name: &str,
        description: Option<&str>,
        max_session_duration: Option<i64>,
    ) -> Result<()>;

    fn tag_role(&self, name: &str, tags: &[(String, String)]) -> Result<()>;

    fn untag_role(&self, name: &str, keys: &[&str]) -> Result<()>;

    fn create_group(&self, name: &str, path: &str, now: i64) -> Result<(String, String)>;

    fn get_group(&self, name: &str) -> Result<Group>;

    fn list_groups(&self) -> Result<Vec<Group>>;

    fn add_user_to_group(&self, group: &str, user: &str) -> Result<()>;

    fn remove_user_from_group(&self, group: &str, user: &str) -> Result<()>;

    /// The names of the groups a user belongs to.
    fn groups_for_user(&self, user: &str) -> Result<Vec<String>>;

    /// The groups a user belongs to.
    fn groups_of_user(&self, user: &str) -> Result<Vec<Group>>;

    /// The users of a group.
    fn group_members(&self, group: &str) -> Result<Vec<User>>;

    /// Deletes a group that has no members and no policies.
    /// Rows of any spelling of its name count.
    fn delete_group(&self, name: &str) -> Result<()>;
}

/// Inline and managed policies, their versions and attachments.
pub trait Policies {
    fn put_inline_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        name: &str,
        document: &str,
    ) -> Result<()>;

    fn get_inline_policy(&self, kind: PrincipalKind, principal: &str, name: &str)
    -> Result<String>;

    fn delete_inline_policy(&self, kind: PrincipalKind, principal: &str, name: &str) -> Result<()>;

    /// (name, document) of a user's, group's or role's inline policies.
    fn inline_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>>;

    /// Creates a managed policy with its first version, `v1`, as default.
    fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        description: &str,
        tags: &[(String, String)],
        now: i64,
    ) -> Result<ManagedPolicy>;

    /// Creates a managed policy (version `v1`, the default); returns
    /// (arn, id).
    fn create_managed_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        now: i64,
    ) -> Result<(String, String)> {
        self.create_policy(name, path, document, "", &[], now)
            .map(|p| (p.arn, p.id))
    }

    fn get_policy(&self, arn: &str) -> Result<ManagedPolicy>;

    /// Every managed policy, by ARN.
    fn list_policies(&self) -> Result<Vec<ManagedPolicy>>;

    /// The default version's document of a managed policy (kept in
    /// `managed_policies.document` by every version change).
    fn managed_policy(&self, arn: &str) -> Result<String>;

    /// Deletes a managed policy that is attached to nothing and has no
    /// version but the default.
    fn delete_policy(&self, arn: &str) -> Result<()>;

    /// Adds a version (at most [`MAX_POLICY_VERSIONS`]), optionally as the
    /// new default.
    fn create_policy_version(
        &self,
        arn: &str,
        document: &str,
        set_default: bool,
        now: i64,
    ) -> Result<PolicyVersion>;

    /// A policy's versions, newest first.
    fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersion>>;

    fn get_policy_version(&self, arn: &str, version_id: &str) -> Result<PolicyVersion> {
        self.list_policy_versions(arn)?
            .into_iter()
            .find(|v| v.version_id == version_id)
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "policy version",
                name: format!("{arn} {version_id}"),
            })
    }

    /// Deletes a version that is not the default.
    fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<()>;

    /// Makes a version the default: from now on the policy engine enforces
    /// its document.
    fn set_default_policy_version(&self, arn: &str, version_id: &str, now: i64) -> Result<()>;

    fn tag_policy(&self, arn: &str, tags: &[(String, String)]) -> Result<()>;

    fn untag_policy(&self, arn: &str, keys: &[&str]) -> Result<()>;

    fn attach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()>;

    fn detach_policy(&self, kind: PrincipalKind, principal: &str, arn: &str) -> Result<()>;

    /// The managed policies attached to a user, group or role.
    fn attached_policies(&self, kind: PrincipalKind, principal: &str)
    -> Result<Vec<ManagedPolicy>>;

    /// The users, groups and roles a managed policy is attached to.
    fn policy_entities(&self, arn: &str) -> Result<Vec<PolicyEntity>>;

    /// (label, document) of every identity policy that applies to a
    /// principal: its inline and attached policies (the default version's
    /// document, which `managed_policies.document` always holds), and for a
    /// user those of its groups.
    fn identity_policies(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<(String, String)>>;

    /// [`Policies::identity_policies`] of every user and role at once
    /// (users and roles without any policy are absent): (kind, name,
    /// label, document), in a few queries rather than one per principal.
    fn all_identity_policies(&self) -> Result<Vec<(PrincipalKind, String, String, String)>>;
}

/// Access keys and virtual MFA devices (secrets sealed).
pub trait Credentials {
    /// Creates an access key; the secret is returned once and stored sealed.
    fn create_access_key(&self, user: &str, now: i64) -> Result<(AccessKey, Zeroizing<String>)>;

    fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>>;

    fn update_access_key(&self, id: &str, active: bool) -> Result<()>;

    fn delete_access_key(&self, id: &str) -> Result<()>;

    /// A key's metadata (owner, status, creation), without its secret.
    fn access_key(&self, id: &str) -> Result<Option<AccessKey>>;

    /// The owner of a key that was deleted, and when (epoch seconds).
    fn deleted_access_key(&self, id: &str) -> Result<Option<(String, i64)>>;

    /// The key's owner and secret, for signature checks.
    fn access_key_secret(&self, id: &str) -> Result<Option<(AccessKey, Zeroizing<String>)>>;

    /// Creates a virtual MFA device; returns (serial, base32 seed) — the
    /// seed is shown once.
    fn create_virtual_mfa(&self, name: &str, path: &str) -> Result<(String, Zeroizing<String>)>;

    /// A device's seed and last accepted time step.
    fn mfa_seed(&self, serial: &str) -> Result<(MfaDevice, Zeroizing<Vec<u8>>, Option<i64>)>;

    /// Records an accepted code's step, refusing a step at or before the
    /// last one (atomically, so two servers cannot both accept a code).
    fn use_mfa_step(&self, serial: &str, step: i64) -> Result<bool>;

    fn enable_mfa(&self, serial: &str, user: &str, step: i64, now: i64) -> Result<()>;

    fn deactivate_mfa(&self, serial: &str, user: &str) -> Result<()>;

    fn list_mfa_devices(&self, user: &str) -> Result<Vec<MfaDevice>>;

    /// Every virtual MFA device, assigned or not, by serial number.
    fn list_virtual_mfa_devices(&self) -> Result<Vec<MfaDevice>>;
}

/// Session revocations and the cluster keys that seal temporary credentials.
/// A user's password as sign-in needs it: the profile, the hash, and the
/// hashes of earlier passwords (newest first) for the reuse rule.
#[derive(Debug, Clone)]
pub struct LoginPassword {
    pub profile: LoginProfile,
    pub hash: PasswordHash,
    pub previous: Vec<PasswordHash>,
}

/// How many earlier passwords a user's history keeps: IAM's largest
/// `PasswordReusePrevention`.
pub const PASSWORD_HISTORY: usize = 24;

/// Console passwords (IAM login profiles) and the account password
/// policy. Hashes are Argon2id (made by the caller) and reach storage
/// sealed, with the user's unique id as context: a row copied to another
/// user does not open.
pub trait Passwords {
    /// `EntityAlreadyExists` when the user has one already.
    fn create_login_profile(
        &self,
        user: &str,
        hash: &PasswordHash,
        reset_required: bool,
        now: i64,
    ) -> Result<LoginProfile>;

    fn login_profile(&self, user: &str) -> Result<Option<LoginProfile>>;

    /// The profile, its hash and up to `previous` earlier hashes.
    fn login_password(&self, user: &str, previous: usize) -> Result<Option<LoginPassword>>;

    /// A new password (the old one joins the history, of which the newest
    /// [`PASSWORD_HISTORY`] are kept) and/or a new reset flag; `changed`
    /// moves only with a new password. `NoSuchEntity` without a profile.
    fn update_login_profile(
        &self,
        user: &str,
        hash: Option<&PasswordHash>,
        reset_required: Option<bool>,
        now: i64,
    ) -> Result<LoginProfile>;

    /// Deletes the profile and its history.
    fn delete_login_profile(&self, user: &str) -> Result<()>;

    /// A successful sign-in (`PasswordLastUsed`); only moves forward.
    fn record_password_use(&self, user: &str, at: i64) -> Result<()>;

    /// Every user's profile, by user name.
    fn login_profiles(&self) -> Result<Vec<LoginProfile>>;

    fn password_policy(&self) -> Result<Option<PasswordPolicy>>;

    fn put_password_policy(&self, policy: &PasswordPolicy) -> Result<()>;

    /// Whether there was one.
    fn delete_password_policy(&self) -> Result<bool>;
}

pub trait SessionKeys {
    /// Denies every session of `arn` (a user or role) issued before `before`.
    fn revoke_sessions(&self, arn: &str, before: i64) -> Result<()>;

    fn revocations(&self) -> Result<Vec<(String, i64)>>;

    /// Refuses source address `ip` (its canonical text) until `until`
    /// (Unix seconds; a later block of the same address extends it), for
    /// failures seen up to `evidence` (Unix seconds). Whether it is
    /// blocked: not when an operator lifted a block of `ip` at or after
    /// `evidence` (the unblock forgave those failures; a node whose
    /// detection fires on them late must not undo it).
    fn block_address(&self, ip: &str, until: i64, evidence: i64) -> Result<bool>;

    /// The addresses blocked after `now`, with until when; forgets the
    /// blocks that ran out.
    fn blocked_addresses(&self, now: i64) -> Result<Vec<(String, i64)>>;

    /// Lifts the block of `ip` (its canonical text) at `now`, before it
    /// runs out, and forgives the failures seen until then (see
    /// [`SessionKeys::block_address`]); whether there was a block. Every
    /// node drops it at its next reload.
    fn unblock_address(&self, ip: &str, now: i64) -> Result<bool>;

    /// The cluster keys (id, material), creating the first on a new store.
    fn cluster_keys(&self, now: i64) -> Result<Vec<(u32, Zeroizing<[u8; 32]>)>>;

    fn add_cluster_key(&self, id: u32, now: i64) -> Result<()>;

    /// Adds a new cluster key when the newest is `every` seconds old, and
    /// drops keys retired (replaced by a newer key) more than `keep`
    /// seconds ago; the newest is never dropped.
    /// Safe to run on every node: the insert is keyed by id, so two nodes
    /// rotating at once add one key. Returns whether anything changed.
    fn rotate_cluster_keys(&self, now: i64, every: i64, keep: i64) -> Result<bool>;
}

/// Databases behind the gateway, their sealed upstream passwords and the database CA.
pub trait Databases {
    /// Registers a database behind the gateway.
    fn register_database(&self, db: &Database, now: i64) -> Result<Database>;

    /// Changes a registered database's settings (everything but its name
    /// and resource id, so connect ARNs stay the same). Stored upstream
    /// passwords are kept.
    fn update_database(&self, db: &Database) -> Result<Database>;

    fn list_databases(&self) -> Result<Vec<Database>>;

    /// One registered database by name.
    fn get_database(&self, name: &str) -> Result<Database> {
        self.list_databases()?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| StoreError::NoSuchEntity {
                kind: "database",
                name: name.to_owned(),
            })
    }

    fn remove_database(&self, name: &str) -> Result<()>;

    /// Stores (sealed) the password the gateway uses upstream for `user`,
    /// logging in as `user` itself: [`Databases::set_database_login`] with
    /// the same user (so it also clears a next login).
    fn set_database_password(&self, database: &str, user: &str, password: &str) -> Result<()> {
        self.set_database_login(database, user, user, password)
    }

    /// The current upstream password for `user` on `database`, if one is
    /// stored (whichever user it logs in as).
    fn database_password(&self, database: &str, user: &str) -> Result<Option<Zeroizing<String>>>;

    /// The credentials the gateway logs in upstream with for client db
    /// user `user` on `database`, if any are stored.
    fn database_logins(&self, database: &str, user: &str) -> Result<Option<UpstreamLogins>>;

    /// Sets the current login for client user `user`: the gateway logs in
    /// upstream as `login_user` (which may differ: alternating-users
    /// rotation logs in as `app_clone` for client user `app`) with
    /// `password`, stored sealed. Clears the next login.
    /// `NoSuchEntity` if the database does not exist.
    fn set_database_login(
        &self,
        database: &str,
        user: &str,
        login_user: &str,
        password: &str,
    ) -> Result<()>;

    /// Sets (`Some((login_user, password))`) or clears the login tried
    /// when the server refuses the current one: a rotation in progress.
    /// `NoSuchEntity` if the database does not exist. With no login stored
    /// yet for `user`, `Some` stores this one as both current and next;
    /// `None` then changes nothing.
    fn set_database_next_login(
        &self,
        database: &str,
        user: &str,
        next: Option<(&str, &str)>,
    ) -> Result<()>;

    /// Records that the Secrets Manager secret `arn` holds `user`'s upstream
    /// credential on `database` (`db set-password` on a database that
    /// rotates): the one secret built-in rotation may rotate that user with.
    /// `NoSuchEntity` unless a login is stored for `user`.
    fn bind_database_secret(&self, database: &str, user: &str, arn: &str) -> Result<()>;

    /// The database and client user whose credential secret `arn` holds,
    /// if it was bound by [`Databases::bind_database_secret`].
    fn database_secret_binding(&self, arn: &str) -> Result<Option<(String, String)>>;

    /// Latchkey's database CA, if made: its certificate and private key
    /// (PEM). The key is stored sealed.
    fn database_ca(&self) -> Result<Option<(String, Zeroizing<String>)>>;

    /// Stores the database CA unless one exists (another process may have
    /// made one first). Returns whether this one was stored.
    fn create_database_ca(&self, cert_pem: &str, key_pem: &str, now: i64) -> Result<bool>;
}

/// One credential the gateway logs in upstream with: the database user
/// it logs in as and its password. `Debug` shows the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamLogin {
    pub user: String,
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for UpstreamLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamLogin")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The credentials the gateway logs in upstream with, for one client db
/// user: the current one, and during a credential rotation the next one,
/// tried when the server refuses the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamLogins {
    pub current: UpstreamLogin,
    pub next: Option<UpstreamLogin>,
}

/// Classification tags on database objects (`latchkey db classify`).
pub trait Classification {
    /// Sets tags on an object or column of a registered database
    /// (replacing the values of keys it has). Refuses an unknown database.
    fn tag_objects(&self, tags: &[ObjectTag]) -> Result<()>;

    /// Removes keys from an object or column; returns how many went.
    fn untag_object(&self, target: &ObjectTag, keys: &[&str]) -> Result<usize>;

    /// Every tag on `database`'s objects (all databases when `None`),
    /// sorted by object, column, key.
    fn object_tags(&self, database: Option<&str>) -> Result<Vec<ObjectTag>>;
}

/// The SQL firewall: per database settings, and per (database,
/// principal) profiles of known statement shapes. Every change bumps the
/// database's [`FirewallConfig::revision`].
pub trait Firewall {
    /// Sets a registered database's firewall mode and learning window
    /// (refuses an unknown database).
    fn configure_firewall(
        &self,
        database: &str,
        mode: crate::FirewallMode,
        learning_secs: u64,
    ) -> Result<FirewallConfig>;

    /// Every database's firewall settings that were ever configured.
    fn firewall_configs(&self) -> Result<Vec<FirewallConfig>>;

    /// The profiles of `database` (one principal's when given), with
    /// their shapes sorted by first sight.
    fn firewall_profiles(
        &self,
        database: &str,
        principal: Option<&str>,
    ) -> Result<Vec<FirewallProfile>>;

    /// Records shapes run while learning, in one transaction: a profile is
    /// created (in `learn` mode, until the shape's `learning_until`) if
    /// missing, a shape known already is kept as it was, and the
    /// stacking and union flags are set. Returns how many shapes were new.
    fn learn_shapes(&self, shapes: &[LearnedShape]) -> Result<usize>;

    /// Makes a shape known for a principal (`approved`), creating its
    /// profile if missing (learning until `learning_until`). Returns
    /// whether the shape was new.
    fn approve_shape(
        &self,
        database: &str,
        principal: &str,
        fingerprint: Fingerprint,
        text: &str,
        now: i64,
        learning_until: Option<i64>,
    ) -> Result<bool>;

    /// Sets a principal's mode (creating its profile if missing); in
    /// `learn` mode, until `learning_until` (`None`: until changed).
    fn set_profile_mode(
        &self,
        database: &str,
        principal: &str,
        mode: ProfileMode,
        learning_until: Option<i64>,
        now: i64,
    ) -> Result<()>;
}

/// Detection findings.
pub trait Findings {
    /// Stores a finding (JSON `document`) or updates it; an archived finding
    /// stays archived.
    fn put_finding(
        &self,
        id: &str,
        kind: &str,
        severity: &str,
        last_seen: i64,
        document: &str,
    ) -> Result<()>;

    /// Findings, newest first: (document, archived).
    fn findings(
        &self,
        archived: bool,
        severity: Option<&str>,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, bool)>>;

    fn get_finding(&self, id: &str) -> Result<Option<(String, bool)>>;

    /// Archives (or unarchives) findings; returns how many exist.
    fn archive_findings(&self, ids: &[String], archived: bool) -> Result<usize>;
}

/// The audit trail's signing key and anchor.
pub trait Audit {
    /// The audit trail's Ed25519 signing key (PKCS#8), unsealed.
    fn audit_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>>;

    /// The audit trail's public key; needs no master key.
    fn audit_public_key(&self) -> Result<Option<Vec<u8>>>;

    /// Stores the audit signing key unless one exists. Returns whether
    /// this one was stored.
    fn create_audit_signing_key(&self, pkcs8: &[u8], public_key: &[u8], now: i64) -> Result<bool>;

    /// Node `node`'s audit anchor (its signed JSON document), if any. Each
    /// node keeps its own trail, so each has its own anchor.
    fn audit_anchor(&self, node: &str) -> Result<Option<String>>;

    /// Every node's anchor, by node id: what `latchkey audit verify`
    /// checks the nodes' trails against (a node whose trail is gone is
    /// still named here).
    fn audit_anchors(&self) -> Result<Vec<(String, String)>>;

    /// Stores a newer anchor of node `node`'s trail `trail_id`. An anchor
    /// of the same trail with a lower sequence, or of another trail, never
    /// replaces the stored one (that would erase the evidence of a
    /// truncation). Returns whether it was stored.
    fn put_audit_anchor(
        &self,
        node: &str,
        trail_id: &str,
        sequence: u64,
        document: &str,
        now: i64,
    ) -> Result<bool>;

    /// Removes node `node`'s anchor, returning it: for an operator who
    /// starts a new trail on purpose (the old one moved or archived), since
    /// the server refuses to write a trail that does not reach its anchor.
    fn forget_audit_anchor(&self, node: &str) -> Result<Option<String>>;

    /// Gives the one anchor stores before per-node anchors held to `node`
    /// (the node whose data directory the store was in), unless `node`
    /// has one already. Returns whether there was one to give.
    fn claim_legacy_audit_anchor(&self, node: &str) -> Result<bool>;
}

/// One record of a node's audit trail, shipped to a shared store: the
/// line exactly as the node sealed it (its hash chains on it), and the
/// fields `audit lookup` filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedRecord {
    pub sequence: u64,
    /// The first sequence of the segment that holds it on its node.
    pub segment: u64,
    pub time_ms: i64,
    pub name: String,
    pub principal: Option<String>,
    pub access_key_id: Option<String>,
    pub database: Option<String>,
    pub source_ip: Option<String>,
    pub error: bool,
    pub line: String,
}

/// How far a node's trail reached the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedHead {
    pub node: String,
    /// The trail id (16 hex digits).
    pub trail_id: String,
    /// Its first and last record in the store (0 and 0: none yet).
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Its newest digest in the store (0: none).
    pub last_digest: u64,
}

/// A node's trail as shipped: its records in sequence order (with the
/// lookup fields as stored, which verification holds to the lines) and
/// its digest files (sequence, text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShippedTrail {
    pub records: Vec<ShippedRecord>,
    pub digests: Vec<(u64, String)>,
}

/// `audit lookup`'s filters over the shipped records; every one given
/// must match.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only this node's records.
    pub node: Option<String>,
    /// Not this node's (the caller reads its own from its trail).
    pub except_node: Option<String>,
    pub principal: Option<String>,
    pub event_name: Option<String>,
    pub database: Option<String>,
    pub source_ip: Option<String>,
    pub access_key_id: Option<String>,
    pub errors_only: bool,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Newest first, at most this many.
    pub limit: u32,
}

/// The nodes' audit trails, copied into a shared store as each node seals
/// them, so that one `audit verify` checks every node's chain and one
/// `audit lookup` sees the cluster, even after a node and its disk are
/// gone. Each node writes only its own rows.
pub trait AuditShipping {
    /// Where node `node`'s shipped trail stands.
    fn shipped_head(&self, node: &str) -> Result<Option<ShippedHead>>;

    /// Every node with a shipped trail.
    fn shipped_heads(&self) -> Result<Vec<ShippedHead>>;

    /// Every node that records or digests in the store claim, whether or
    /// not it has a trail there (rows written under a made-up node are
    /// judged too).
    fn shipped_record_nodes(&self) -> Result<Vec<String>>;

    /// Adds records and digest files of node `node`'s trail `trail_id`, in
    /// one transaction; rows it has already are kept as they were. Refuses
    /// ([`StoreError::OtherTrail`]) while the store holds another trail of
    /// that node.
    fn ship_audit(
        &self,
        node: &str,
        trail_id: &str,
        records: &[ShippedRecord],
        digests: &[(u64, String)],
    ) -> Result<()>;

    /// Drops node `node`'s records before `sequence` and digests before
    /// `digest`: what retention removed from its trail.
    fn forget_shipped_before(&self, node: &str, sequence: u64, digest: u64) -> Result<()>;

    /// Drops everything shipped of node `node` (a new trail started on
    /// purpose, with `audit forget-anchor`). Returns how many records went.
    fn forget_shipped(&self, node: &str) -> Result<u64>;

    /// Up to `limit` of node `node`'s shipped records after sequence
    /// `after` (from the first when `None`), in sequence order: a trail
    /// read a page at a time.
    fn shipped_records(
        &self,
        node: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<ShippedRecord>>;

    /// Node `node`'s shipped digest files (digest sequence, text), in
    /// order.
    fn shipped_digests(&self, node: &str) -> Result<Vec<(u64, String)>>;

    /// Node `node`'s shipped trail, whole (tests and small trails;
    /// `audit verify` reads it a page at a time).
    fn shipped_trail(&self, node: &str) -> Result<ShippedTrail> {
        let mut records: Vec<ShippedRecord> = Vec::new();
        loop {
            let page = self.shipped_records(node, records.last().map(|r| r.sequence), 10_000)?;
            if page.is_empty() {
                break;
            }
            records.extend(page);
        }
        Ok(ShippedTrail {
            records,
            digests: self.shipped_digests(node)?,
        })
    }

    /// Shipped records matching `query`, newest first: (node, line).
    fn find_shipped(&self, query: &AuditQuery) -> Result<Vec<(String, String)>>;
}

/// A Secrets Manager secret as stored: its metadata as one JSON document
/// (written and read by `latchkey-secrets`), and a revision that every
/// update bumps, so that two writers cannot both win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub arn: String,
    pub name: String,
    pub revision: i64,
    pub document: String,
}

/// Secrets Manager's secrets. Each version's value is sealed by the
/// vault (context: the secret's ARN and the version id) and stored apart
/// from the metadata; a backend never sees a value unsealed.
pub trait Secrets {
    /// Creates a secret, with its first version's value if it has one.
    /// `EntityAlreadyExists` when the name is taken (a secret scheduled
    /// for deletion keeps its name).
    fn create_secret(
        &self,
        arn: &str,
        name: &str,
        document: &str,
        value: Option<(&str, &[u8])>,
    ) -> Result<()>;

    fn secret_by_name(&self, name: &str) -> Result<Option<StoredSecret>>;

    fn secret_by_arn(&self, arn: &str) -> Result<Option<StoredSecret>>;

    /// Every secret, in creation order.
    fn list_secrets(&self) -> Result<Vec<StoredSecret>>;

    /// Replaces the document of the secret at `revision` (returns false,
    /// changing nothing, when another writer got there first), adds a
    /// version's value, and drops the values of `dropped` versions, in one
    /// transaction.
    fn update_secret(
        &self,
        arn: &str,
        revision: i64,
        document: &str,
        value: Option<(&str, &[u8])>,
        dropped: &[String],
    ) -> Result<bool>;

    /// A version's value, unsealed.
    fn secret_value(&self, arn: &str, version: &str) -> Result<Option<Zeroizing<Vec<u8>>>>;

    /// Removes a secret and every value it had.
    fn purge_secret(&self, arn: &str) -> Result<()>;
}

/// A KMS key as stored: its metadata as one JSON document (written and
/// read by `latchkey-kms`) and a revision that every update bumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKmsKey {
    pub id: String,
    pub revision: i64,
    pub document: String,
}

/// A KMS alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsAlias {
    /// `alias/NAME`.
    pub name: String,
    pub key_id: String,
    pub created: i64,
    pub updated: i64,
}

/// KMS keys, their key material and aliases. Each key material version is
/// sealed by the vault (context: the key id and version) and stored apart
/// from the metadata; a backend never sees it unsealed.
pub trait KmsKeys {
    /// Creates a key with its first key material version (1).
    fn create_kms_key(&self, id: &str, document: &str, material: &[u8]) -> Result<()>;

    fn kms_key(&self, id: &str) -> Result<Option<StoredKmsKey>>;

    /// Every key, in creation order.
    fn list_kms_keys(&self) -> Result<Vec<StoredKmsKey>>;

    /// Replaces the document of the key at `revision` (returns false,
    /// changing nothing, when another writer got there first) and adds a
    /// key material version, in one transaction.
    fn update_kms_key(
        &self,
        id: &str,
        revision: i64,
        document: &str,
        material: Option<(u32, &[u8])>,
    ) -> Result<bool>;

    /// A key material version, unsealed.
    fn kms_key_material(&self, id: &str, version: u32) -> Result<Option<Zeroizing<Vec<u8>>>>;

    /// Removes a key, its key material and its aliases.
    fn purge_kms_key(&self, id: &str) -> Result<()>;

    /// `EntityAlreadyExists` when the name is taken.
    fn create_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<()>;

    fn kms_alias(&self, name: &str) -> Result<Option<KmsAlias>>;

    /// Every alias, by name.
    fn list_kms_aliases(&self) -> Result<Vec<KmsAlias>>;

    /// The aliases of one key, by name.
    fn kms_aliases_of(&self, key_id: &str) -> Result<Vec<KmsAlias>>;

    /// Points an alias at another key; false when there is no such alias.
    fn update_kms_alias(&self, name: &str, key_id: &str, now: i64) -> Result<bool>;

    /// False when there was no such alias.
    fn delete_kms_alias(&self, name: &str) -> Result<bool>;
}

/// A Parameter Store parameter as stored: its metadata (every version's
/// type, key, labels...) as one JSON document (written and read by
/// `latchkey-ssm`) and a revision that every update bumps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub name: String,
    pub revision: i64,
    pub document: String,
}

/// Parameter Store's parameters. Each version's value is sealed by the
/// vault (context: the name and version) and stored apart from the
/// metadata; a SecureString's value is a KMS ciphertext before that.
pub trait Parameters {
    /// Creates a parameter with its first version's value.
    /// `EntityAlreadyExists` when the name is taken.
    fn create_parameter(
        &self,
        name: &str,
        document: &str,
        version: u64,
        value: &[u8],
    ) -> Result<()>;

    fn parameter(&self, name: &str) -> Result<Option<StoredParameter>>;

    /// The parameters whose names begin with `prefix`, by name (bytewise).
    fn list_parameters(&self, prefix: &str) -> Result<Vec<StoredParameter>>;

    /// Replaces the document of the parameter at `revision` (returns
    /// false, changing nothing, when another writer got there first),
    /// adds a version's value and drops the values of `dropped` versions,
    /// in one transaction.
    fn update_parameter(
        &self,
        name: &str,
        revision: i64,
        document: &str,
        value: Option<(u64, &[u8])>,
        dropped: &[u64],
    ) -> Result<bool>;

    /// A version's value, unsealed.
    fn parameter_value(&self, name: &str, version: u64) -> Result<Option<Zeroizing<Vec<u8>>>>;

    /// Removes a parameter and its values; false when there was none.
    fn delete_parameter(&self, name: &str) -> Result<bool>;
}

/// A permission's last use by one entity on one resource (the access
/// advisor's finest grain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAccess {
    /// The user's or role's ARN.
    pub principal: String,
    /// `iam:CreateUser`, `rds-db:connect`, `sql:Select`.
    pub action: String,
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// Epoch seconds.
    pub at: i64,
}

/// A credential's last use: an access key (by id), or a user or role (by
/// ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialLastUse {
    pub id: String,
    /// Epoch seconds.
    pub at: i64,
    /// The service it was used with (`sts`, `rds-db`...).
    pub service: String,
}

/// A finished access-advisor job (`GenerateServiceLastAccessedDetails`):
/// what it was about and its report, as JSON written and read by the
/// server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisorJob {
    pub id: String,
    /// The user, group, role or policy ARN it reports on.
    pub arn: String,
    /// What kind of job: `SERVICE_LEVEL` or `ACTION_LEVEL` (last accessed),
    /// or `POLICY_GENERATION`.
    pub granularity: String,
    /// Epoch seconds.
    pub created: i64,
    pub report: String,
}

/// The access advisor's data: last uses kept from the audit stream, its
/// jobs, and the latest credential report. Last uses only move forward:
/// recording an older use than the one stored changes nothing, so the
/// live stream and a rebuild from the trail may write at once. Deleting a
/// user, role or access key forgets its uses.
pub trait Usage {
    /// Records uses, keeping the later time of each, in one transaction.
    fn record_usage(
        &self,
        permissions: &[LastAccess],
        credentials: &[CredentialLastUse],
    ) -> Result<()>;

    /// Every stored use by these principals (ARNs, names compared without
    /// case), ordered by principal, action and resource.
    fn last_accesses(&self, principals: &[&str]) -> Result<Vec<LastAccess>>;

    /// When a credential (access key id, or user or role ARN) was last
    /// used.
    fn credential_last_use(&self, id: &str) -> Result<Option<CredentialLastUse>>;

    /// Every credential's last use.
    fn credential_last_uses(&self) -> Result<Vec<CredentialLastUse>>;

    /// Forgets every use (before a rebuild from the trail).
    fn clear_usage(&self) -> Result<()>;

    /// Stores a job, dropping jobs created before `expire_before`, the
    /// oldest of its subject and kind beyond
    /// [`MAX_ADVISOR_JOBS_PER_SUBJECT`](crate::MAX_ADVISOR_JOBS_PER_SUBJECT)
    /// and the oldest of all beyond
    /// [`MAX_ADVISOR_JOBS`](crate::MAX_ADVISOR_JOBS): a caller looping on
    /// `Generate...` can neither fill the disk nor evict others' jobs.
    fn put_advisor_job(&self, job: &AdvisorJob, expire_before: i64) -> Result<()>;

    fn advisor_job(&self, id: &str) -> Result<Option<AdvisorJob>>;

    /// The jobs of one kind (`granularity`), oldest first, about `arn`
    /// when given.
    fn advisor_jobs(&self, granularity: &str, arn: Option<&str>) -> Result<Vec<AdvisorJob>>;

    /// Replaces the credential report.
    fn put_credential_report(&self, generated: i64, csv: &str) -> Result<()>;

    /// The latest credential report and when it was generated.
    fn credential_report(&self) -> Result<Option<(i64, String)>>;
}

/// Whether a console session is signed in or still waiting for its MFA
/// code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleSessionKind {
    /// The password matched; the MFA code has yet to.
    AwaitingMfa,
    SignedIn,
}

/// One console session as stored. `state` is what the console keeps of
/// it (credentials, CSRF token, role switched to), which the backend seals
/// (context: the row's key, kind, user and creation time, so that none of
/// them can be changed in the store), so the store holds nothing a browser
/// could use: rows are keyed by the SHA-256 of the cookie's id.
pub struct ConsoleSessionRow {
    pub kind: ConsoleSessionKind,
    /// The user, as signed in.
    pub user: String,
    /// Unix seconds: when it started, and when it was last used.
    pub created: i64,
    pub last_seen: i64,
    /// Wrong MFA codes so far ([`ConsoleSessionKind::AwaitingMfa`]).
    pub failures: u32,
    pub state: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ConsoleSessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSessionRow")
            .field("kind", &self.kind)
            .field("user", &self.user)
            .field("created", &self.created)
            .field("last_seen", &self.last_seen)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// Console sessions, shared by every node: a browser signed in through one
/// node is signed in on all of them (no sticky sessions needed), and
/// signing out, or a session's end, holds on all of them at once.
pub trait ConsoleSessions {
    /// Stores the session keyed `key` (replacing it), first dropping
    /// sessions last used at or before `idle_before` or created at or
    /// before `created_before`, then the least recently used beyond `keep`
    /// (so that sign-ins cannot fill the store). A sign-in awaiting its MFA
    /// code replaces any other of the same user (names compared without
    /// case): one at a time per user.
    fn put_console_session(
        &self,
        key: &[u8; 32],
        row: &ConsoleSessionRow,
        idle_before: i64,
        created_before: i64,
        keep: usize,
    ) -> Result<()>;

    /// Replaces a stored session's state (`row`'s; its kind, user and
    /// creation time must be the stored ones); whether it was still there.
    fn update_console_session(&self, key: &[u8; 32], row: &ConsoleSessionRow) -> Result<bool>;

    /// The session keyed `key`. A row whose state does not open under its
    /// own key, kind, user and creation time (moved or altered in the
    /// store) is deleted and reported absent.
    fn console_session(&self, key: &[u8; 32]) -> Result<Option<ConsoleSessionRow>>;

    /// Marks the session used at `now` (never earlier than it was).
    fn touch_console_session(&self, key: &[u8; 32], now: i64) -> Result<()>;

    /// Takes one of a pending sign-in's `limit` MFA tries before its code
    /// is checked, in one conditional write (tries through several nodes
    /// at once each take one): the tries taken now, `None` when none is
    /// left or the sign-in is gone.
    fn take_console_try(&self, key: &[u8; 32], limit: u32) -> Result<Option<u32>>;

    /// Ends one session; whether it was there.
    fn end_console_session(&self, key: &[u8; 32]) -> Result<bool>;
}

impl ConsoleSessionKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingMfa => "awaiting-mfa",
            Self::SignedIn => "signed-in",
        }
    }
}

/// A stored console session kind this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown console session kind")]
pub struct UnknownConsoleSessionKind;

impl std::str::FromStr for ConsoleSessionKind {
    type Err = UnknownConsoleSessionKind;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "awaiting-mfa" => Ok(Self::AwaitingMfa),
            "signed-in" => Ok(Self::SignedIn),
            _ => Err(UnknownConsoleSessionKind),
        }
    }
}

/// The sealing context of the console session keyed `key`, of `kind`,
/// `user` and `created`: a sealed state moved to another row, or a row
/// whose kind, user or creation time was changed, does not open.
pub(crate) fn console_session_context(
    key: &[u8; 32],
    kind: ConsoleSessionKind,
    user: &str,
    created: i64,
) -> Vec<u8> {
    let mut context = b"console-session/".to_vec();
    context.extend_from_slice(key);
    context.extend_from_slice(format!("/{}/{created}/{user}", kind.as_str()).as_bytes());
    context
}
