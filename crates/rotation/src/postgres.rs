//! The PostgreSQL statements rotation sends. Passwords go as SCRAM
//! verifiers ([`crate::scram`]), so the server stores them as they are
//! and its statement log (`log_statement`) shows the verifier, never the
//! password.
//!
//! Sessions that run these set `client_encoding` to UTF8 at login, so
//! the quoting below is read as written whatever the server's default.

use zeroize::Zeroizing;

use crate::plan::NameError;
use crate::scram::Verifier;

/// `"name"`, inner `"` doubled: an identifier whatever it contains.
pub fn quote_ident(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `E'text'` with `\` and `'` escaped: an escape string is read the same
/// whether `standard_conforming_strings` is on or off.
pub fn quote_literal(text: &str) -> Result<String, NameError> {
    if text.contains('\0') {
        return Err(NameError::Nul);
    }
    Ok(format!(
        "E'{}'",
        text.replace('\\', "\\\\").replace('\'', "''")
    ))
}

/// `ALTER ROLE "role" PASSWORD 'SCRAM-SHA-256$…'`: any role may run it
/// for itself; for another role it takes CREATEROLE (and, from
/// PostgreSQL 16, ADMIN OPTION on that role) or superuser.
pub fn set_password(role: &str, verifier: &Verifier) -> Result<Zeroizing<String>, NameError> {
    Ok(Zeroizing::new(format!(
        "ALTER ROLE {} PASSWORD '{}'",
        quote_ident(role)?,
        verifier.as_str()
    )))
}

/// One row when `role` exists.
pub fn role_exists(role: &str) -> Result<String, NameError> {
    Ok(format!(
        "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}",
        quote_literal(role)?
    ))
}

/// The clone of `source`, as AWS's multi-user template makes it: a new
/// login role that is a member of `source`, and so holds its privileges
/// (membership with INHERIT, the default) rather than copies of them.
/// Run in one transaction.
pub fn create_clone(
    clone: &str,
    source: &str,
    verifier: &Verifier,
) -> Result<[Zeroizing<String>; 2], NameError> {
    let clone = quote_ident(clone)?;
    Ok([
        Zeroizing::new(format!(
            "CREATE ROLE {clone} WITH LOGIN PASSWORD '{}'",
            verifier.as_str()
        )),
        Zeroizing::new(format!("GRANT {} TO {clone}", quote_ident(source)?)),
    ])
}

/// What testSecret runs once logged in (the templates' check).
pub const TEST_QUERY: &str = "SELECT now()";

/// Run first on every rotation login: the server gives up on a lock wait
/// (20 s, `55P03`) or a statement (25 s) itself, before the job's own
/// timeout (30 s) drops the connection. A dropped connection alone does not stop a backend waiting
/// on a lock: its `ALTER ROLE` would apply, unrecorded, once the lock is
/// let go.
pub const SESSION_LIMITS: &str = "SELECT set_config('statement_timeout', '25s', false), set_config('lock_timeout', '20s', false)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::verifier;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("app").unwrap(), "\"app\"");
        assert_eq!(quote_ident("we\"ird'user").unwrap(), "\"we\"\"ird'user\"");
        assert_eq!(quote_ident(""), Err(NameError::Empty));
        assert_eq!(quote_ident("a\0b"), Err(NameError::Nul));
        assert_eq!(
            quote_literal("we\"ird'user\\").unwrap(),
            "E'we\"ird''user\\\\'"
        );
        assert_eq!(quote_literal("a\0"), Err(NameError::Nul));
    }

    #[test]
    fn statements() {
        let v = verifier("pw", &[3; 16], 4096);
        let alter = set_password("we\"ird'user", &v).unwrap();
        assert_eq!(
            alter.as_str(),
            format!("ALTER ROLE \"we\"\"ird'user\" PASSWORD '{}'", v.as_str())
        );
        assert!(!alter.contains("pw'"));
        let [create, grant] = create_clone("app_clone", "app", &v).unwrap();
        assert_eq!(
            create.as_str(),
            format!(
                "CREATE ROLE \"app_clone\" WITH LOGIN PASSWORD '{}'",
                v.as_str()
            )
        );
        assert_eq!(grant.as_str(), "GRANT \"app\" TO \"app_clone\"");
        assert_eq!(
            role_exists("o'k").unwrap(),
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = E'o''k'"
        );
    }
}
