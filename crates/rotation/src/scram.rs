//! PostgreSQL's SCRAM-SHA-256 password verifier, computed client-side as
//! libpq's `PQencryptPasswordConn` does (RFC 5802, RFC 7677), so that
//! `ALTER ROLE … PASSWORD` carries the verifier, never the password:
//!
//! ```text
//! SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
//! ```
//!
//! The password is SASLprep'd first when it is valid UTF-8 and SASLprep
//! accepts it; otherwise its bytes are used as they are (libpq's and
//! the server's rule, so logins hash it alike).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// libpq's and the server's default (`scram_iterations`, PG 16+).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// libpq's salt length.
pub const SALT_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// A verifier made by [`verifier`]: its text has only base64 characters,
/// `$`, `:` and `-`, so it goes into an SQL literal unescaped. Wiped on
/// drop and hidden from `Debug`: with it an attacker can pose as the
/// server, and with one observed exchange also log in.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier(Zeroizing<String>);

impl Verifier {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<redacted>)")
    }
}

/// The verifier of `password` with `salt` (from [`crate::random::salt`]
/// outside tests).
pub fn verifier(password: &str, salt: &[u8; SALT_LEN], iterations: u32) -> Verifier {
    let prepared: Zeroizing<String> = match stringprep::saslprep(password) {
        Ok(p) => Zeroizing::new(p.into_owned()),
        Err(_) => Zeroizing::new(password.to_owned()),
    };
    let salted = hi(prepared.as_bytes(), salt, iterations);
    let client_key = Zeroizing::new(hmac(salted.as_slice(), b"Client Key"));
    let stored_key: [u8; 32] = Sha256::digest(*client_key).into();
    let server_key = Zeroizing::new(hmac(salted.as_slice(), b"Server Key"));
    Verifier(Zeroizing::new(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(*server_key)
    )))
}

/// Whether `s` has the verifier's shape, and so only characters that
/// need no quoting in an SQL literal.
pub fn is_verifier(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys)) = rest.split_once('$') else {
        return false;
    };
    let Some((iterations, salt)) = params.split_once(':') else {
        return false;
    };
    let Some((stored, server)) = keys.split_once(':') else {
        return false;
    };
    let b64 = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    iterations.parse::<u32>().is_ok_and(|i| i > 0)
        && iterations.bytes().all(|b| b.is_ascii_digit())
        && b64(salt)
        && b64(stored)
        && b64(server)
}

/// RFC 5802's Hi(): PBKDF2-HMAC-SHA-256 with one block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut mac = hmac_key(password);
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
    let mut out = Zeroizing::new(*u);
    for _ in 1..iterations {
        let mut mac = hmac_key(password);
        mac.update(&*u);
        *u = mac.finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac_key(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hmac_key(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this arm is never taken.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn salt_of(verifier: &str) -> [u8; SALT_LEN] {
        let b64 = verifier.split(['$', ':']).nth(2).unwrap();
        STANDARD.decode(b64).unwrap().try_into().unwrap()
    }

    /// Made by PostgreSQL 15 itself (`SET password_encryption =
    /// 'scram-sha-256'; CREATE ROLE v PASSWORD '…'`, read from
    /// `pg_authid`): the same salt must give the same verifier. The
    /// second password has a ligature SASLprep maps to "fi".
    #[test]
    fn matches_verifiers_postgresql_made() {
        for (password, theirs) in [
            (
                "pencil",
                "SCRAM-SHA-256$4096:5bv9eLw/45GEJ64GgdAeog==$8TbLX3zcfyLeoxw/jZjF2HEvKbPG3oclln8dpib0jbg=:WsvpPJUErpN7HFc1e9IhUHs7hwoRvaBJzouhTfV/dTo=",
            ),
            (
                "Ünïcødé \u{fb01} pass",
                "SCRAM-SHA-256$4096:mvbgqECZKo9dRMxsIKPF4A==$lP/KfNwwj1L6J9aEhJFegZ2jf87ctN/n1uOaXWstcp8=:eI4r5QQoIM6Dib/5P7YCFg5sF5fyNKltDHjNFuwnQok=",
            ),
        ] {
            let ours = verifier(password, &salt_of(theirs), 4096);
            assert_eq!(ours.as_str(), theirs);
            assert!(is_verifier(ours.as_str()));
            assert_eq!(format!("{ours:?}"), "Verifier(<redacted>)");
        }
    }

    /// RFC 7677's example exchange (user "user", password "pencil"): the
    /// verifier's StoredKey and ServerKey must reproduce the client
    /// proof and server signature of section 3.
    #[test]
    fn reproduces_the_rfc_7677_exchange() {
        let salt: [u8; 16] = STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap()
            .try_into()
            .unwrap();
        let v = verifier("pencil", &salt, 4096);
        let (stored, server) = v
            .as_str()
            .rsplit_once('$')
            .unwrap()
            .1
            .split_once(':')
            .unwrap();
        let stored = STANDARD.decode(stored).unwrap();
        let server = STANDARD.decode(server).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_signature = hmac(&server, auth_message.as_bytes());
        assert_eq!(
            STANDARD.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let proof = STANDARD
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_signature = hmac(&stored, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(Sha256::digest(&client_key).as_slice(), stored.as_slice());
    }

    #[test]
    fn salt_and_iterations_change_it() {
        let a = verifier("x", &[1; 16], 4096);
        assert_ne!(a, verifier("x", &[2; 16], 4096));
        assert_ne!(a, verifier("x", &[1; 16], 4097));
        assert!(
            a.as_str()
                .starts_with("SCRAM-SHA-256$4096:AQEBAQEBAQEBAQEBAQEBAQ==$")
        );
    }

    #[test]
    fn shape_check() {
        let v = verifier("x", &[7; 16], 4096);
        assert!(is_verifier(v.as_str()));
        for bad in [
            "md5abc",
            "SCRAM-SHA-256$4096:abc",
            "SCRAM-SHA-256$0:YQ==$YQ==:YQ==",
            "SCRAM-SHA-256$4096:YQ==$YQ==:YQ=='",
            "SCRAM-SHA-256$4096:YQ==$YQ==:",
        ] {
            assert!(!is_verifier(bad), "{bad}");
        }
    }
}
