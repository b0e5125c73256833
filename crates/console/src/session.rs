//! Console sessions, kept in the store so that every node sharing it
//! knows them: a browser signed in through one node is signed in on all,
//! and signing out ends the session on all. The browser holds only a
//! random id; the store keys the row by its SHA-256 (so it holds no usable
//! cookie) and seals what the session holds (credentials, CSRF token).
//! The rules (timeouts, which kind of row a cookie may name) are here; the
//! caller passes the time and the random bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_store::{ConsoleSessionKind, ConsoleSessionRow, Store, StoreError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Seconds without a request before a session ends.
    pub idle: i64,
    /// Seconds after sign-in a session ends whatever happens (AWS's
    /// console: 12 hours).
    pub absolute: i64,
    /// Seconds a sign-in waiting for its MFA code (or a new password) is
    /// kept.
    pub pending: i64,
    /// Sessions kept at most (the least recently used go first).
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: 30 * 60,
            absolute: 12 * 3600,
            pending: 5 * 60,
            max_sessions: 100_000,
        }
    }
}

impl SessionLimits {
    /// How often a session's last use is written: a tenth of the idle
    /// timeout (so a session ends at most that much early), between 1 and
    /// 30 seconds, so that a busy page does not write on every request.
    fn touch_every(self) -> i64 {
        (self.idle / 10).clamp(1, 30)
    }

    /// Whether a session created at `created`, last used at `last_seen`,
    /// is over at `now`.
    pub fn expired(self, created: i64, last_seen: i64, now: i64) -> bool {
        now.saturating_sub(last_seen) > self.idle || now.saturating_sub(created) > self.absolute
    }
}

/// Temporary credentials a session acts with: the access key id and the
/// session token identify them in process (the secret is never needed).
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub session_token: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The role a session switched to.
#[derive(Clone, Debug)]
pub struct RoleSession {
    pub creds: Credentials,
    pub role_arn: String,
    /// What the header shows (`role@account`, or the name given).
    pub display: String,
    pub expires: i64,
}

/// A signed-in user.
#[derive(Clone)]
pub struct Session {
    pub user: String,
    /// The user's console credentials (a session of the user, revoked
    /// with the user's sessions).
    pub creds: Credentials,
    pub mfa: bool,
    pub created: i64,
    pub last_seen: i64,
    /// Put in every form, compared on every state-changing request.
    pub csrf: Zeroizing<String>,
    pub role: Option<RoleSession>,
    /// Must choose a new password before anything else.
    pub must_change: bool,
    /// When the password this session signed in with (or changed to) was
    /// set: a newer one (an administrator's reset) ends the session.
    pub password_set: i64,
}

impl Session {
    /// The credentials it acts with: the role's, when switched to one.
    pub fn acting(&self) -> &Credentials {
        self.role.as_ref().map_or(&self.creds, |r| &r.creds)
    }

    fn state(&self) -> Zeroizing<Vec<u8>> {
        let role = self.role.as_ref().map(|r| {
            json!({
                "access_key_id": r.creds.access_key_id,
                "session_token": r.creds.session_token.as_str(),
                "role_arn": r.role_arn,
                "display": r.display,
                "expires": r.expires,
            })
        });
        let value = json!({
            "access_key_id": self.creds.access_key_id,
            "session_token": self.creds.session_token.as_str(),
            "mfa": self.mfa,
            "csrf": self.csrf.as_str(),
            "role": role,
            "must_change": self.must_change,
            "password_set": self.password_set,
        });
        Zeroizing::new(value.to_string().into_bytes())
    }

    fn from_row(row: &ConsoleSessionRow) -> Option<Self> {
        let v: Value = serde_json::from_slice(&row.state).ok()?;
        let role = match v.get("role")? {
            Value::Null => None,
            r => Some(RoleSession {
                creds: credentials(r)?,
                role_arn: r.get("role_arn")?.as_str()?.to_owned(),
                display: r.get("display")?.as_str()?.to_owned(),
                expires: r.get("expires")?.as_i64()?,
            }),
        };
        Some(Self {
            user: row.user.clone(),
            creds: credentials(&v)?,
            mfa: v.get("mfa")?.as_bool()?,
            created: row.created,
            last_seen: row.last_seen,
            csrf: Zeroizing::new(v.get("csrf")?.as_str()?.to_owned()),
            role,
            must_change: v.get("must_change")?.as_bool()?,
            password_set: v.get("password_set")?.as_i64()?,
        })
    }
}

fn credentials(v: &Value) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: v.get("access_key_id")?.as_str()?.to_owned(),
        session_token: Zeroizing::new(v.get("session_token")?.as_str()?.to_owned()),
    })
}

/// Whether `token` is `csrf` (constant time).
pub fn csrf_matches(csrf: &str, token: &str) -> bool {
    token.len() == csrf.len() && bool::from(token.as_bytes().ct_eq(csrf.as_bytes()))
}

/// A sign-in whose password matched, waiting for its MFA code.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user: String,
    pub serial: String,
    pub must_change: bool,
    /// When the password that matched was set: a newer one (an
    /// administrator's reset since) refuses the sign-in.
    pub password_set: i64,
    pub created: i64,
    pub failures: u32,
    pub csrf: String,
}

impl Pending {
    fn state(&self) -> Zeroizing<Vec<u8>> {
        let value = json!({
            "serial": self.serial,
            "must_change": self.must_change,
            "password_set": self.password_set,
            "csrf": self.csrf,
        });
        Zeroizing::new(value.to_string().into_bytes())
    }

    fn from_row(row: &ConsoleSessionRow) -> Option<Self> {
        let v: Value = serde_json::from_slice(&row.state).ok()?;
        Some(Self {
            user: row.user.clone(),
            serial: v.get("serial")?.as_str()?.to_owned(),
            must_change: v.get("must_change")?.as_bool()?,
            password_set: v.get("password_set")?.as_i64()?,
            created: row.created,
            failures: row.failures,
            csrf: v.get("csrf")?.as_str()?.to_owned(),
        })
    }
}

/// Random text for an id or a token: 32 bytes, base64url.
pub fn token_text(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The store's key of the cookie `id`: the SHA-256 of its bytes.
fn key(id: &str) -> Option<[u8; 32]> {
    // Only what we hand out: 43 characters of base64url.
    if id.len() != 43 {
        return None;
    }
    let raw = Zeroizing::new(URL_SAFE_NO_PAD.decode(id).ok()?);
    Some(Sha256::digest(&raw).into())
}

/// The console's sessions in `store`, under `limits`.
pub struct Sessions<'a> {
    pub store: &'a Store,
    pub limits: SessionLimits,
}

impl Sessions<'_> {
    fn put(
        &self,
        id_bytes: &[u8; 32],
        kind: ConsoleSessionKind,
        user: &str,
        created: i64,
        state: Zeroizing<Vec<u8>>,
        now: i64,
    ) -> Result<String, StoreError> {
        let row = ConsoleSessionRow {
            kind,
            user: user.to_owned(),
            created,
            last_seen: now,
            failures: 0,
            state,
        };
        // Pending sign-ins are swept by the same rules: their own
        // deadline is checked when they are read.
        self.store.put_console_session(
            &Sha256::digest(id_bytes).into(),
            &row,
            now.saturating_sub(self.limits.idle) - 1,
            now.saturating_sub(self.limits.absolute) - 1,
            self.limits.max_sessions,
        )?;
        Ok(token_text(id_bytes))
    }

    /// Keeps `session` under the id made of `id_bytes`; returns the id for
    /// the cookie.
    pub fn insert(
        &self,
        id_bytes: &[u8; 32],
        session: &Session,
        now: i64,
    ) -> Result<String, StoreError> {
        let state = session.state();
        self.put(
            id_bytes,
            ConsoleSessionKind::SignedIn,
            &session.user,
            session.created,
            state,
            now,
        )
    }

    /// The live session of the cookie `id`, marked as used now. An idle
    /// or too old session is ended and not returned, and so is one whose
    /// state does not read; a sign-in still waiting for its MFA code is
    /// not a session.
    pub fn get(&self, id: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let Some(key) = key(id) else {
            return Ok(None);
        };
        let Some(row) = self.store.console_session(&key)? else {
            return Ok(None);
        };
        if row.kind != ConsoleSessionKind::SignedIn {
            return Ok(None);
        }
        let session = Session::from_row(&row);
        let Some(mut session) =
            session.filter(|_| !self.limits.expired(row.created, row.last_seen, now))
        else {
            self.store.end_console_session(&key)?;
            return Ok(None);
        };
        if now.saturating_sub(row.last_seen) >= self.limits.touch_every() {
            self.store.touch_console_session(&key, now)?;
            session.last_seen = now;
        }
        // A switched role past its end is dropped, back to the user.
        if session.role.as_ref().is_some_and(|r| now >= r.expires) {
            session.role = None;
            self.save(id, &session)?;
        }
        Ok(Some(session))
    }

    /// Stores a changed session (a role switched to or left, a password
    /// changed); whether it was still there.
    pub fn save(&self, id: &str, session: &Session) -> Result<bool, StoreError> {
        let Some(key) = key(id) else {
            return Ok(false);
        };
        let row = ConsoleSessionRow {
            kind: ConsoleSessionKind::SignedIn,
            user: session.user.clone(),
            created: session.created,
            last_seen: session.last_seen,
            failures: 0,
            state: session.state(),
        };
        self.store.update_console_session(&key, &row)
    }

    /// Ends the session (or the pending sign-in) of the cookie `id`, on
    /// every node.
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        let Some(key) = key(id) else {
            return Ok(false);
        };
        self.store.end_console_session(&key)
    }

    pub fn insert_pending(
        &self,
        id_bytes: &[u8; 32],
        pending: &Pending,
        now: i64,
    ) -> Result<String, StoreError> {
        self.put(
            id_bytes,
            ConsoleSessionKind::AwaitingMfa,
            &pending.user,
            pending.created,
            pending.state(),
            now,
        )
    }

    /// The sign-in of the cookie `id` waiting for its MFA code, unless its
    /// time ran out.
    pub fn pending(&self, id: &str, now: i64) -> Result<Option<Pending>, StoreError> {
        let Some(key) = key(id) else {
            return Ok(None);
        };
        let Some(row) = self.store.console_session(&key)? else {
            return Ok(None);
        };
        if row.kind != ConsoleSessionKind::AwaitingMfa {
            return Ok(None);
        }
        match Pending::from_row(&row)
            .filter(|p| now.saturating_sub(p.created) <= self.limits.pending)
        {
            Some(p) => Ok(Some(p)),
            None => {
                self.store.end_console_session(&key)?;
                Ok(None)
            }
        }
    }

    /// Takes one of the pending sign-in `id`'s `limit` MFA tries, before
    /// its code is checked: the tries taken now (through every node),
    /// `None` when none is left or it is gone.
    pub fn take_try(&self, id: &str, limit: u32) -> Result<Option<u32>, StoreError> {
        let Some(key) = key(id) else {
            return Ok(None);
        };
        self.store.take_console_try(&key, limit)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(
            &dir.path().join("store.db"),
            latchkey_store::Vault::new(1, &[3; 32]),
        )
        .unwrap()
    }

    fn creds(token: &str) -> Credentials {
        Credentials {
            access_key_id: "ASIAEXAMPLE".into(),
            session_token: Zeroizing::new(token.into()),
        }
    }

    fn session(user: &str, now: i64) -> Session {
        Session {
            user: user.into(),
            creds: creds("t"),
            mfa: false,
            created: now,
            last_seen: now,
            csrf: Zeroizing::new(token_text(&[7; 32])),
            role: None,
            must_change: false,
            password_set: now,
        }
    }

    fn pending(user: &str, now: i64) -> Pending {
        Pending {
            user: user.into(),
            serial: "arn:aws:iam::1:mfa/x".into(),
            must_change: false,
            password_set: now,
            created: now,
            failures: 0,
            csrf: token_text(&[8; 32]),
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let s = Sessions {
            store: &store,
            limits: SessionLimits {
                idle: 100,
                absolute: 250,
                ..SessionLimits::default()
            },
        };
        let id = s.insert(&[1; 32], &session("alice", 0), 0).unwrap();
        assert_eq!(id.len(), 43);
        assert!(s.get(&id, 90).unwrap().is_some());
        assert!(s.get(&id, 180).unwrap().is_some());
        // Used every 90 s, it still ends at 250 s after sign-in.
        assert!(s.get(&id, 251).unwrap().is_none());
        let id = s.insert(&[2; 32], &session("alice", 300), 300).unwrap();
        assert!(s.get(&id, 401).unwrap().is_none(), "idle for 101 s");
        // Over is over: the row went.
        assert!(s.get(&id, 302).unwrap().is_none());
    }

    #[test]
    fn only_the_exact_id_finds_a_session_and_its_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let s = Sessions {
            store: &store,
            limits: SessionLimits::default(),
        };
        let mut kept = session("bob", 0);
        kept.creds = creds("user-token");
        kept.mfa = true;
        kept.must_change = true;
        let id = s.insert(&[3; 32], &kept, 0).unwrap();
        let mut other = id.clone();
        other.replace_range(0..1, if id.starts_with('A') { "B" } else { "A" });
        assert!(s.get(&other, 1).unwrap().is_none());
        assert!(s.get("", 1).unwrap().is_none());
        assert!(s.get(&format!("{id}x"), 1).unwrap().is_none());
        let found = s.get(&id, 1).unwrap().unwrap();
        assert!(csrf_matches(&found.csrf, &token_text(&[7; 32])));
        assert!(!csrf_matches(&found.csrf, "nope"));
        assert_eq!(
            (
                found.user.as_str(),
                found.creds.session_token.as_str(),
                found.mfa,
                found.must_change
            ),
            ("bob", "user-token", true, true)
        );
        assert!(format!("{:?}", found.creds).contains("ASIAEXAMPLE"));
        assert!(!format!("{:?}", found.creds).contains("user-token"));
        assert!(s.remove(&id).unwrap());
        assert!(s.get(&id, 2).unwrap().is_none());
    }

    #[test]
    fn a_pending_sign_in_is_not_a_session_and_a_session_is_not_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let s = Sessions {
            store: &store,
            limits: SessionLimits::default(),
        };
        let waiting = s.insert_pending(&[4; 32], &pending("carol", 0), 0).unwrap();
        assert!(s.get(&waiting, 1).unwrap().is_none(), "MFA skipped");
        assert_eq!(s.pending(&waiting, 1).unwrap().unwrap().user, "carol");
        assert_eq!(s.take_try(&waiting, 3).unwrap(), Some(1));
        assert_eq!(s.take_try(&waiting, 3).unwrap(), Some(2));
        assert_eq!(s.pending(&waiting, 2).unwrap().unwrap().failures, 2);
        // Its five minutes run out.
        assert!(s.pending(&waiting, 301).unwrap().is_none());
        assert_eq!(s.take_try(&waiting, 3).unwrap(), None);
        let signed = s.insert(&[5; 32], &session("carol", 0), 0).unwrap();
        assert!(s.pending(&signed, 1).unwrap().is_none());
        assert!(s.get(&signed, 1).unwrap().is_some(), "still signed in");
    }

    #[test]
    fn the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let s = Sessions {
            store: &store,
            limits: SessionLimits {
                max_sessions: 3,
                ..SessionLimits::default()
            },
        };
        let a = s.insert(&[1; 32], &session("Carol", 0), 0).unwrap();
        s.insert(&[2; 32], &session("carol", 1), 1).unwrap();
        s.insert(&[3; 32], &session("dave", 2), 2).unwrap();
        s.insert(&[4; 32], &session("erin", 3), 3).unwrap();
        assert!(s.get(&a, 4).unwrap().is_none(), "the oldest went");
        assert!(s.get(&token_text(&[4; 32]), 4).unwrap().is_some());
    }

    #[test]
    fn a_switched_role_ends_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let s = Sessions {
            store: &store,
            limits: SessionLimits::default(),
        };
        let id = s.insert(&[5; 32], &session("alice", 0), 0).unwrap();
        let mut switched = s.get(&id, 1).unwrap().unwrap();
        switched.role = Some(RoleSession {
            creds: creds("role-token"),
            role_arn: "arn:aws:iam::1:role/admin".into(),
            display: "admin".into(),
            expires: 100,
        });
        assert!(s.save(&id, &switched).unwrap());
        let found = s.get(&id, 99).unwrap().unwrap();
        assert_eq!(found.acting().session_token.as_str(), "role-token");
        assert_eq!(found.role.as_ref().unwrap().display, "admin");
        assert!(s.get(&id, 100).unwrap().unwrap().role.is_none());
        // Dropped in the store, not only in the answer.
        let row = store.console_session(&key(&id).unwrap()).unwrap().unwrap();
        assert!(Session::from_row(&row).unwrap().role.is_none());
    }
}
