//! Console sessions, held on the server: the browser holds only a random
//! id (its SHA-256 is the key here, so the table holds no usable cookie).
//! Pure: the caller passes the time and the random bytes.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_session::TemporaryCredentials;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    /// Sessions kept at most (the oldest go first).
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

/// The role a session switched to.
pub struct RoleSession {
    pub creds: TemporaryCredentials,
    pub role_arn: String,
    /// What the header shows (`role@account`, or the name given).
    pub display: String,
    pub expires: i64,
}

/// A signed-in user.
pub struct Session {
    pub user: String,
    /// The user's console credentials (a session of the user, revoked
    /// with the user's sessions).
    pub creds: TemporaryCredentials,
    pub mfa: bool,
    pub created: i64,
    pub last_seen: i64,
    /// Put in every form, compared on every state-changing request.
    pub csrf: String,
    pub role: Option<RoleSession>,
    /// Must choose a new password before anything else.
    pub must_change: bool,
    /// When the password this session signed in with (or changed to) was
    /// set: a newer one (an administrator's reset) ends the session.
    pub password_set: i64,
}

impl Session {
    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        token.len() == self.csrf.len() && bool::from(token.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// A sign-in whose password matched, waiting for its MFA code.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user: String,
    pub serial: String,
    pub must_change: bool,
    pub created: i64,
    pub failures: u32,
    pub csrf: String,
}

/// Random text for an id or a token: 32 bytes, base64url.
pub fn token_text(bytes: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(id: &str) -> Option<[u8; 32]> {
    // Only what we hand out: 43 characters of base64url.
    if id.len() != 43 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
    Some(Sha256::digest(raw).into())
}

#[derive(Default)]
pub struct Sessions {
    limits: SessionLimits,
    live: HashMap<[u8; 32], Session>,
    pending: HashMap<[u8; 32], Pending>,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Keeps `session` under the id made of `id_bytes`; returns the id for
    /// the cookie.
    pub fn insert(&mut self, id_bytes: &[u8; 32], session: Session, now: i64) -> String {
        if self.live.len() >= self.limits.max_sessions {
            self.sweep(now);
            if self.live.len() >= self.limits.max_sessions
                && let Some(oldest) = self
                    .live
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| *k)
            {
                self.live.remove(&oldest);
            }
        }
        self.live.insert(Sha256::digest(id_bytes).into(), session);
        token_text(id_bytes)
    }

    /// The live session of the cookie `id`, marked as used now. An idle
    /// or too old session is ended and not returned.
    pub fn get(&mut self, id: &str, now: i64) -> Option<&mut Session> {
        let key = key(id)?;
        let limits = self.limits;
        let expired = {
            let s = self.live.get(&key)?;
            now - s.last_seen > limits.idle || now - s.created > limits.absolute
        };
        if expired {
            self.live.remove(&key);
            return None;
        }
        let s = self.live.get_mut(&key)?;
        s.last_seen = now;
        // A switched role past its end is dropped, back to the user.
        if s.role.as_ref().is_some_and(|r| now >= r.expires) {
            s.role = None;
        }
        Some(s)
    }

    /// Ends the session of the cookie `id`.
    pub fn remove(&mut self, id: &str) -> Option<Session> {
        self.live.remove(&key(id)?)
    }

    /// Ends every session of `user` (names compare without case).
    pub fn remove_user(&mut self, user: &str) -> usize {
        let before = self.live.len();
        self.live.retain(|_, s| !s.user.eq_ignore_ascii_case(user));
        before - self.live.len()
    }

    pub fn insert_pending(&mut self, id_bytes: &[u8; 32], pending: Pending, now: i64) -> String {
        self.pending
            .retain(|_, p| now - p.created <= self.limits.pending);
        if self.pending.len() >= self.limits.max_sessions {
            self.pending.clear();
        }
        self.pending
            .insert(Sha256::digest(id_bytes).into(), pending);
        token_text(id_bytes)
    }

    pub fn pending(&mut self, id: &str, now: i64) -> Option<&mut Pending> {
        let key = key(id)?;
        if self
            .pending
            .get(&key)
            .is_some_and(|p| now - p.created > self.limits.pending)
        {
            self.pending.remove(&key);
            return None;
        }
        self.pending.get_mut(&key)
    }

    pub fn remove_pending(&mut self, id: &str) -> Option<Pending> {
        self.pending.remove(&key(id)?)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Drops idle and too old sessions.
    pub fn sweep(&mut self, now: i64) {
        let limits = self.limits;
        self.live
            .retain(|_, s| now - s.last_seen <= limits.idle && now - s.created <= limits.absolute);
        self.pending
            .retain(|_, p| now - p.created <= limits.pending);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn creds() -> TemporaryCredentials {
        TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: zeroize::Zeroizing::new("s".into()),
            session_token: "t".into(),
        }
    }

    fn session(user: &str, now: i64) -> Session {
        Session {
            user: user.into(),
            creds: creds(),
            mfa: false,
            created: now,
            last_seen: now,
            csrf: token_text(&[7; 32]),
            role: None,
            must_change: false,
            password_set: now,
        }
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let mut s = Sessions::new(SessionLimits {
            idle: 100,
            absolute: 250,
            ..SessionLimits::default()
        });
        let id = s.insert(&[1; 32], session("alice", 0), 0);
        assert_eq!(id.len(), 43);
        assert!(s.get(&id, 90).is_some());
        assert!(s.get(&id, 180).is_some());
        // Used every 90 s, it still ends at 250 s after sign-in.
        assert!(s.get(&id, 251).is_none());
        let id = s.insert(&[2; 32], session("alice", 300), 300);
        assert!(s.get(&id, 401).is_none(), "idle for 101 s");
    }

    #[test]
    fn only_the_exact_id_finds_a_session() {
        let mut s = Sessions::default();
        let id = s.insert(&[3; 32], session("bob", 0), 0);
        let mut other = id.clone();
        other.replace_range(0..1, if id.starts_with('A') { "B" } else { "A" });
        assert!(s.get(&other, 1).is_none());
        assert!(s.get("", 1).is_none());
        assert!(s.get(&format!("{id}x"), 1).is_none());
        assert!(s.get(&id, 1).unwrap().csrf_matches(&token_text(&[7; 32])));
        assert!(!s.get(&id, 1).unwrap().csrf_matches("nope"));
        assert!(s.remove(&id).is_some());
        assert!(s.get(&id, 2).is_none());
    }

    #[test]
    fn a_user_can_be_signed_out_everywhere_and_the_table_is_bounded() {
        let mut s = Sessions::new(SessionLimits {
            max_sessions: 3,
            ..SessionLimits::default()
        });
        let a = s.insert(&[1; 32], session("Carol", 0), 0);
        s.insert(&[2; 32], session("carol", 1), 1);
        s.insert(&[3; 32], session("dave", 2), 2);
        s.insert(&[4; 32], session("erin", 3), 3);
        assert_eq!(s.len(), 3);
        assert!(s.get(&a, 4).is_none(), "the oldest went");
        assert_eq!(s.remove_user("CAROL"), 1);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_switched_role_ends_on_time() {
        let mut s = Sessions::default();
        let mut session = session("alice", 0);
        session.role = Some(RoleSession {
            creds: creds(),
            role_arn: "arn:aws:iam::1:role/admin".into(),
            display: "admin".into(),
            expires: 100,
        });
        let id = s.insert(&[5; 32], session, 0);
        assert!(s.get(&id, 99).unwrap().role.is_some());
        assert!(s.get(&id, 100).unwrap().role.is_none());
    }
}
