//! Latchkey's web console, served by `latchkey serve` under `/console` on
//! the API's HTTPS port.
//!
//! - Sign-in with a console password (`latchkey-password`, checked and
//!   throttled by the identity core) and the user's MFA device, recorded
//!   as CloudTrail records it (`ConsoleLogin`); a password that is due is
//!   changed first.
//! - A server-side session ([`session`]): the browser holds a random id in
//!   a `__Host-` cookie (`Secure`, `HttpOnly`, `SameSite=Strict`); idle and
//!   absolute timeouts; sign-out ends it on the server. The session holds
//!   temporary credentials of the user (revoked with the user's sessions)
//!   and, after "switch role", a role session's.
//! - Every state-changing request carries the session's CSRF token and
//!   comes from this origin; every response carries a strict CSP
//!   ([`web::CSP`]), `X-Frame-Options: DENY` and `Referrer-Policy`.
//! - Pages act through the API ([`api`]): each read and change is the
//!   STS or IAM call the AWS CLI would make, in process, with its
//!   authorisation and audit record, so a console user can do nothing
//!   their policies would refuse through the CLI.
//! - Pages work without JavaScript; `static/console.js` only enhances
//!   (validation as you type, the role's time left).

pub mod api;
pub mod charts;
pub mod layout;
pub mod pages;
pub mod session;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use latchkey_identity::{AppState, PasswordFailure};
use maud::{Markup, html};

use api::Api;
use layout::{Chrome, Section};
use pages::identities::Kind;
use session::{Credentials, Pending, RoleSession, Session, SessionLimits, Sessions, token_text};
use web::{Form, Reply, SESSION_COOKIE, SIGNIN_COOKIE, read_cookie, redirect};

const CSS: &str = include_str!("../static/console.css");
const JS: &str = include_str!("../static/console.js");

/// Wrong MFA codes a pending sign-in may take before it starts over.
const MFA_TRIES: u32 = 3;

/// A signed-in request: who acts (the role switched to, or the user), and
/// what every page shows.
pub struct Signed<'a> {
    pub api: Api<'a>,
    pub user: String,
    pub account: String,
    pub csrf: String,
    pub role: Option<(String, i64)>,
    pub now: i64,
    sections: &'a [Section],
}

impl Signed<'_> {
    pub fn page(&self, section: Section, title: &str, body: Markup) -> Reply {
        self.page_status(StatusCode::OK, section, title, body)
    }

    pub fn page_status(
        &self,
        status: StatusCode,
        section: Section,
        title: &str,
        body: Markup,
    ) -> Reply {
        let chrome = Chrome {
            user: &self.user,
            account: &self.account,
            role: self.role.as_ref().map(|(r, e)| (r.as_str(), *e)),
            now: self.now,
            csrf: &self.csrf,
            sections: self.sections,
        };
        web::html(status, layout::page(&chrome, section, title, body))
    }

    /// A page that says only why it cannot show what was asked.
    pub fn refused(&self, status: StatusCode, section: Section, title: &str, why: &str) -> Reply {
        self.page_status(status, section, title, layout::refusal(why))
    }

    pub fn not_found(&self) -> Reply {
        self.page_status(
            StatusCode::NOT_FOUND,
            Section::Overview,
            "Not found",
            html! { p { "There is no such page." } },
        )
    }
}

pub struct Console {
    state: Arc<AppState>,
    limits: SessionLimits,
    sections: Vec<Section>,
    /// The audit trail's directory, for the Audit page.
    trail: Option<std::path::PathBuf>,
    /// The gateways whose running sessions the Sessions page shows.
    gateways: Vec<Arc<dyn latchkey_gateway::Running>>,
    /// This node's id when it shares its store with other nodes: the Audit
    /// page then shows their records too, from their copies in the store,
    /// and the Sessions page their published sessions.
    node: Option<String>,
}

fn random32() -> Option<[u8; 32]> {
    latchkey_store::random::<32>().ok()
}

/// What a request needs of its session, copied out of the table.
struct SessionView {
    user: String,
    creds: Credentials,
    user_creds: Credentials,
    csrf: zeroize::Zeroizing<String>,
    role: Option<(String, i64)>,
    must_change: bool,
    password_set: i64,
}

impl Console {
    /// The console over `state`; the Audit page reads the trail in
    /// `trail`, the Sessions page lists the sessions of `gateways`.
    pub fn new(
        state: Arc<AppState>,
        limits: SessionLimits,
        trail: Option<std::path::PathBuf>,
        gateways: Vec<Arc<dyn latchkey_gateway::Running>>,
    ) -> Self {
        Self {
            state,
            limits,
            sections: vec![
                Section::Overview,
                Section::Users,
                Section::Groups,
                Section::Roles,
                Section::Policies,
                Section::Simulator,
                Section::Databases,
                Section::Sessions,
                Section::Secrets,
                Section::Parameters,
                Section::Keys,
                Section::Audit,
                Section::Findings,
            ],
            trail,
            gateways,
            node: None,
        }
    }

    /// This node's id, on a store it shares with other nodes: the Audit
    /// and Sessions pages show theirs too.
    #[must_use]
    pub fn in_cluster(mut self, node: String) -> Self {
        self.node = Some(node);
        self
    }

    /// Where the Sessions page finds running sessions.
    fn sources(&self) -> pages::sessions::Sources<'_> {
        pages::sessions::Sources {
            gateways: &self.gateways,
            node: self.node.as_deref(),
        }
    }

    /// The sessions, in the store every node shares.
    fn sessions(&self) -> Sessions<'_> {
        Sessions {
            store: &self.state.store,
            limits: self.limits,
        }
    }

    fn unavailable() -> Reply {
        web::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The console is unavailable. Please try again later.\n",
        )
    }

    fn route(&self, parts: &hyper::http::request::Parts, body: &[u8], peer: SocketAddr) -> Reply {
        let path = parts.uri.path();
        let get = parts.method == Method::GET || parts.method == Method::HEAD;
        let post = parts.method == Method::POST;
        match (get, post, path) {
            (true, _, "/console/static/console.css") => return web::asset("text/css", CSS),
            (true, _, "/console/static/console.js") => {
                return web::asset("text/javascript", JS);
            }
            (true, _, "/console/signin") => return self.signin_page(None, "", StatusCode::OK),
            (_, true, "/console/signin") => return self.signin(parts, body, peer),
            (_, true, "/console/signin/mfa") => return self.signin_mfa(parts, body, peer),
            _ => {}
        }
        if !get && !post {
            return web::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let now = self.state.now();
        let Some(id) = read_cookie(parts, SESSION_COOKIE) else {
            return redirect("/console/signin");
        };
        let view = match self.view(id, now) {
            Ok(Some(view)) => view,
            Ok(None) => return web::cookie(redirect("/console/signin"), SESSION_COOKIE, None),
            Err(e) => {
                tracing::warn!(error = %e, "reading a console session failed");
                return Self::unavailable();
            }
        };
        let form = if post {
            // The JSON API's body is the document, not a form.
            let parsed = if path == "/console/api/validate" {
                Some(Form::default())
            } else {
                Form::parse(body).ok()
            };
            let Some(form) = parsed.filter(|_| web::same_origin(parts)) else {
                return web::html(StatusCode::FORBIDDEN, pages::signin::expired_form());
            };
            // The JSON API sends the token in a header, its body is the
            // document.
            let token = match path {
                "/console/api/validate" => parts
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
                _ => form.get("csrf").unwrap_or(""),
            };
            if !session::csrf_matches(&view.csrf, token) {
                tracing::info!(%peer, path, "console form refused: CSRF token missing or wrong");
                return web::html(StatusCode::FORBIDDEN, pages::signin::expired_form());
            }
            Some(form)
        } else {
            None
        };
        if post && path == "/console/signout" {
            return self.end(id);
        }
        // The console password deleted, or reset by someone else, since
        // this session signed in: the session is over.
        let password_current = match self.state.store.login_profile(&view.user) {
            Ok(Some(p)) => p.changed <= view.password_set,
            Ok(None) => false,
            Err(_) => return Self::unavailable(),
        };
        if !password_current {
            tracing::info!(%peer, user = %view.user, "console session ended: the password changed");
            return self.end(id);
        }
        // Credentials revoked, expired, or of a user deleted since: the
        // session is over.
        let caller = match self
            .state
            .credentials(
                &view.creds.access_key_id,
                Some(&view.creds.session_token),
                now,
                &peer.ip().to_string(),
            )
            .and_then(|(caller, _)| self.state.check_bound(&caller).map(|_| caller))
        {
            Ok(caller) => caller,
            Err(e) => {
                if view.role.is_some() {
                    // The role's session ended: back to the user.
                    return self.change_session(id, now, |s| s.role = None, "/console");
                }
                tracing::info!(%peer, reason = %e, "console session ended");
                return self.end(id);
            }
        };
        let signed = Signed {
            api: Api {
                state: &self.state,
                caller,
                peer,
            },
            user: view.user.clone(),
            account: self.state.store.account_id().to_owned(),
            csrf: view.csrf.as_str().to_owned(),
            role: view.role.clone(),
            now,
            sections: &self.sections,
        };
        if view.must_change && path != "/console/password" {
            return redirect("/console/password");
        }
        let empty = Form::default();
        let form = form.as_ref().unwrap_or(&empty);
        let query = web::query(parts);
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        match (post, segments.as_slice()) {
            (false, []) => self.overview(&signed),
            (_, ["password"]) => self.password(&signed, &view, id, post.then_some(form)),
            (false, ["switch-role"]) => self.switch_role_page(&signed, form, None),
            (true, ["switch-role"]) => self.switch_role(&signed, &view, id, form),
            (true, ["switch-back"]) => self.change_session(id, now, |s| s.role = None, "/console"),
            (false, ["users"]) => pages::identities::users(&signed, query.text("marker")),
            (false, ["users", "new"]) => pages::identities::new_user(&signed),
            (true, ["users"]) => pages::identities::create_user(&signed, form),
            (false, ["users", name]) => match web_segment(name) {
                Some(name) => pages::identities::user(&signed, &name, query.text("done"), None),
                None => signed.not_found(),
            },
            (true, ["users", name, what]) => match web_segment(name) {
                Some(name) => pages::identities::change(&signed, Kind::User, &name, what, form),
                None => signed.not_found(),
            },
            (false, ["groups"]) => {
                pages::identities::groups(&signed, query.text("marker"), None, &Form::default())
            }
            (true, ["groups"]) => pages::identities::create_group(&signed, form),
            (false, ["groups", name]) => match web_segment(name) {
                Some(name) => pages::identities::group(&signed, &name, query.text("done"), None),
                None => signed.not_found(),
            },
            (true, ["groups", name, what]) => match web_segment(name) {
                Some(name) => pages::identities::change(&signed, Kind::Group, &name, what, form),
                None => signed.not_found(),
            },
            (false, ["roles"]) => pages::identities::roles(&signed, query.text("marker")),
            (false, ["roles", "new"]) => pages::identities::new_role(&signed),
            (true, ["roles"]) => pages::identities::create_role(&signed, form),
            (false, ["roles", name]) => match web_segment(name) {
                Some(name) => pages::identities::role(&signed, &name, query.text("done"), None),
                None => signed.not_found(),
            },
            (true, ["roles", name, what]) => match web_segment(name) {
                Some(name) => pages::identities::change(&signed, Kind::Role, &name, what, form),
                None => signed.not_found(),
            },
            (false, ["policies"]) => pages::policies::policies(&signed),
            (false, ["policies", "new"]) => pages::policies::new_policy(&signed),
            (true, ["policies"]) => pages::policies::create_policy(&signed, form),
            (true, ["policies", "validate"]) => pages::policies::validate_form(&signed, form),
            (true, ["api", "validate"]) => pages::policies::validate_json(&signed, body),
            (false, ["databases"]) => pages::databases::databases(&signed, &query),
            (false, ["databases", "new"]) => pages::databases::new_database(&signed),
            (true, ["databases"]) => pages::databases::register(&signed, form),
            (false, ["databases", name]) => match web_segment(name) {
                Some(name) => pages::databases::database(&signed, &name, &query),
                None => signed.not_found(),
            },
            (true, ["databases", name]) => match web_segment(name) {
                Some(name) => pages::databases::save(&signed, &name, form),
                None => signed.not_found(),
            },
            (false, ["sessions"]) => pages::sessions::sessions(&signed, &self.sources(), &query),
            (true, ["sessions", id, "end"]) => pages::sessions::end(&signed, &self.sources(), id),
            (true, ["sessions", id, "revoke"]) => {
                pages::sessions::revoke(&signed, &self.sources(), id)
            }
            (false, ["secrets"]) => pages::vault::secrets(&signed, query.text("next")),
            (false, ["secrets", name]) => match web_segment(name) {
                Some(name) => pages::vault::secret(&signed, &name),
                None => signed.not_found(),
            },
            (false, ["parameters"]) => pages::vault::parameters(&signed, query.text("next")),
            (false, ["keys"]) => pages::vault::keys(&signed, query.text("next")),
            (false, ["findings"]) => pages::observe::findings(&signed, &query),
            (false, ["findings", id]) => pages::observe::finding(&signed, id),
            (true, ["findings", id, "archive"]) => pages::observe::archive(&signed, id),
            (false, ["audit"]) => {
                pages::observe::audit(&signed, self.trail.as_deref(), self.node.as_deref(), &query)
            }
            (false, ["simulate"]) => pages::policies::simulate(&signed, &query, false),
            (true, ["simulate"]) => pages::policies::simulate(&signed, form, true),
            _ => signed.not_found(),
        }
    }

    fn view(&self, id: &str, now: i64) -> Result<Option<SessionView>, latchkey_store::StoreError> {
        let Some(s) = self.sessions().get(id, now)? else {
            return Ok(None);
        };
        Ok(Some(SessionView {
            user: s.user.clone(),
            creds: s.acting().clone(),
            role: s.role.as_ref().map(|r| (r.display.clone(), r.expires)),
            user_creds: s.creds,
            csrf: s.csrf,
            must_change: s.must_change,
            password_set: s.password_set,
        }))
    }

    /// Ends the session of the cookie `id` on every node, and sends the
    /// browser to sign in.
    fn end(&self, id: &str) -> Reply {
        if let Err(e) = self.sessions().remove(id) {
            tracing::warn!(error = %e, "ending a console session failed");
            return Self::unavailable();
        }
        web::cookie(redirect("/console/signin"), SESSION_COOKIE, None)
    }

    /// Changes the session of the cookie `id` as every node will see it,
    /// then sends the browser `to`.
    fn change_session(
        &self,
        id: &str,
        now: i64,
        change: impl FnOnce(&mut Session),
        to: &str,
    ) -> Reply {
        let sessions = self.sessions();
        let changed = sessions.get(id, now).and_then(|found| match found {
            Some(mut session) => {
                change(&mut session);
                sessions.save(id, &session).map(|_| ())
            }
            None => Ok(()),
        });
        match changed {
            Ok(()) => redirect(to),
            Err(e) => {
                tracing::warn!(error = %e, "changing a console session failed");
                Self::unavailable()
            }
        }
    }

    fn signin_page(&self, error: Option<&str>, user: &str, status: StatusCode) -> Reply {
        let Some(token) = random32().map(|b| token_text(&b)) else {
            return Self::unavailable();
        };
        web::cookie(
            web::html(status, pages::signin::form(&token, user, error)),
            SIGNIN_COOKIE,
            Some(&token),
        )
    }

    /// `POST /console/signin`.
    fn signin(&self, parts: &hyper::http::request::Parts, body: &[u8], peer: SocketAddr) -> Reply {
        let form = Form::parse(body).unwrap_or_default();
        let cookie = read_cookie(parts, SIGNIN_COOKIE).unwrap_or("");
        let token = form.get("csrf").unwrap_or("");
        if !web::same_origin(parts)
            || cookie.is_empty()
            || token.len() != cookie.len()
            || !bool::from(subtle::ConstantTimeEq::ct_eq(
                token.as_bytes(),
                cookie.as_bytes(),
            ))
        {
            return web::html(StatusCode::FORBIDDEN, pages::signin::expired_form());
        }
        let user = form.text("username");
        let password = form.get("password").unwrap_or("");
        let user_agent = user_agent(parts);
        if !self.state.audit().accepting() || self.state.is_blocked(peer.ip(), self.state.now()) {
            return Self::unavailable();
        }
        if user.is_empty() || user.len() > 64 || password.is_empty() || password.len() > 512 {
            return self.signin_page(Some(pages::signin::INCORRECT), "", StatusCode::UNAUTHORIZED);
        }
        let refused = |f: &PasswordFailure| {
            latchkey_server::http::record_sign_in(
                &self.state,
                None,
                user,
                false,
                Some(f.reason()),
                peer,
                user_agent.clone(),
            );
        };
        match self.state.check_password(user, password, peer.ip()) {
            Err(f) => {
                refused(&f);
                let (message, status) = match f {
                    PasswordFailure::Incorrect { .. } => {
                        (pages::signin::INCORRECT, StatusCode::UNAUTHORIZED)
                    }
                    PasswordFailure::Throttled(_) => {
                        (pages::signin::LOCKED, StatusCode::TOO_MANY_REQUESTS)
                    }
                    PasswordFailure::Expired => (pages::signin::EXPIRED, StatusCode::FORBIDDEN),
                    PasswordFailure::Unavailable => return Self::unavailable(),
                };
                self.signin_page(Some(message), user, status)
            }
            Ok(accepted) => {
                let device = match self.state.store.list_mfa_devices(&accepted.user.name) {
                    Ok(devices) => devices.into_iter().find(|d| d.enabled_at.is_some()),
                    Err(_) => return Self::unavailable(),
                };
                match device {
                    None => self.finish_signin(
                        &accepted.user,
                        false,
                        (accepted.must_change, accepted.profile.changed),
                        peer,
                        user_agent,
                    ),
                    Some(device) => {
                        let (Some(id), Some(csrf)) = (random32(), random32()) else {
                            return Self::unavailable();
                        };
                        let pending = Pending {
                            user: accepted.user.name.clone(),
                            serial: device.serial.clone(),
                            must_change: accepted.must_change,
                            password_set: accepted.profile.changed,
                            created: self.state.now(),
                            failures: 0,
                            csrf: token_text(&csrf),
                        };
                        let id =
                            match self
                                .sessions()
                                .insert_pending(&id, &pending, self.state.now())
                            {
                                Ok(id) => id,
                                Err(e) => {
                                    tracing::warn!(error = %e, "storing a console sign-in failed");
                                    return Self::unavailable();
                                }
                            };
                        let csrf = pending.csrf;
                        web::cookie(
                            web::html(
                                StatusCode::OK,
                                pages::signin::mfa(&csrf, &device.serial, None),
                            ),
                            SIGNIN_COOKIE,
                            Some(&id),
                        )
                    }
                }
            }
        }
    }

    /// `POST /console/signin/mfa`.
    fn signin_mfa(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
        peer: SocketAddr,
    ) -> Reply {
        let form = Form::parse(body).unwrap_or_default();
        let Some(id) = read_cookie(parts, SIGNIN_COOKIE) else {
            return redirect("/console/signin");
        };
        let now = self.state.now();
        let pending = match self.sessions().pending(id, now) {
            Ok(Some(pending)) => pending,
            Ok(None) => return redirect("/console/signin"),
            Err(e) => {
                tracing::warn!(error = %e, "reading a console sign-in failed");
                return Self::unavailable();
            }
        };
        let token = form.get("csrf").unwrap_or("");
        if !web::same_origin(parts) || !session::csrf_matches(&pending.csrf, token) {
            return web::html(StatusCode::FORBIDDEN, pages::signin::expired_form());
        }
        // A code is a guess at a locked-out user's second factor like any
        // other: refused while the user (or the address) is locked out, or
        // while the guesses under way could use up what is left.
        let _step = match self.state.begin_sign_in(&pending.user, peer.ip()) {
            Ok(step) => step,
            Err(_) => {
                return self.signin_page(
                    Some(pages::signin::LOCKED),
                    "",
                    StatusCode::TOO_MANY_REQUESTS,
                );
            }
        };
        // One of the sign-in's tries is taken before the code is checked,
        // in one write: guesses sent at once through several nodes cannot
        // all be checked.
        let tries = match self.sessions().take_try(id, MFA_TRIES) {
            Ok(Some(tries)) => tries,
            Ok(None) => return self.mfa_tries_used(id),
            Err(e) => {
                tracing::warn!(error = %e, "counting an MFA try failed");
                return Self::unavailable();
            }
        };
        let user_agent = user_agent(parts);
        let code = form.text("code");
        let checked = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            latchkey_server::check_console_mfa(
                &self.state,
                &pending.user,
                &pending.serial,
                code,
                now,
            )
            .map_err(|e| e.reason.unwrap_or(e.message))
        } else {
            Err("the MFA code is not six digits".to_owned())
        };
        match checked {
            Ok(true) => {
                // The sign-in is used once, whichever node it reaches.
                match self.sessions().remove(id) {
                    Ok(true) => {}
                    Ok(false) => return redirect("/console/signin"),
                    Err(e) => {
                        tracing::warn!(error = %e, "ending a console sign-in failed");
                        return Self::unavailable();
                    }
                }
                let Ok(user) = self.state.store.get_user(&pending.user) else {
                    return redirect("/console/signin");
                };
                // An administrator who set a new password since the
                // password step ended this sign-in.
                let must_change = match self.state.store.login_profile(&user.name) {
                    Ok(Some(p)) if p.changed == pending.password_set => {
                        pending.must_change || p.reset_required
                    }
                    Ok(_) => return redirect("/console/signin"),
                    Err(_) => return Self::unavailable(),
                };
                let reply = self.finish_signin(
                    &user,
                    true,
                    (must_change, pending.password_set),
                    peer,
                    user_agent,
                );
                web::cookie(reply, SIGNIN_COOKIE, None)
            }
            Ok(false) | Err(_) => {
                let reason = checked.err().unwrap_or_else(|| "no MFA code".into());
                self.state.sign_in_failed(&pending.user, peer.ip());
                latchkey_server::http::record_sign_in(
                    &self.state,
                    None,
                    &pending.user,
                    true,
                    Some(&format!("wrong MFA code: {reason}")),
                    peer,
                    user_agent,
                );
                if tries >= MFA_TRIES {
                    return self.mfa_tries_used(id);
                }
                web::html(
                    StatusCode::UNAUTHORIZED,
                    pages::signin::mfa(
                        &pending.csrf,
                        &pending.serial,
                        Some("The MFA code is incorrect. Please try again."),
                    ),
                )
            }
        }
    }

    /// The pending sign-in `id` took its last wrong MFA code: it ends, and
    /// the user starts over.
    fn mfa_tries_used(&self, id: &str) -> Reply {
        if let Err(e) = self.sessions().remove(id) {
            tracing::warn!(error = %e, "ending a console sign-in failed");
            return Self::unavailable();
        }
        self.signin_page(Some(pages::signin::INCORRECT), "", StatusCode::UNAUTHORIZED)
    }

    /// The password (and MFA code) matched: a session starts.
    /// The password checked: whether it must be changed first, and when it
    /// was set (a later one ends the session).
    fn finish_signin(
        &self,
        user: &latchkey_store::User,
        mfa: bool,
        (must_change, password_set): (bool, i64),
        peer: SocketAddr,
        user_agent: Option<String>,
    ) -> Reply {
        let now = self.state.now();
        let limits = self.limits;
        let creds = match latchkey_server::console_credentials(
            &self.state,
            user,
            mfa,
            &peer.ip().to_string(),
            now,
            limits.absolute,
        ) {
            Ok(c) => c,
            Err(_) => return Self::unavailable(),
        };
        let caller = self
            .state
            .credentials(
                &creds.access_key_id,
                Some(&creds.session_token),
                now,
                &peer.ip().to_string(),
            )
            .ok()
            .map(|(c, _)| c);
        let (Some(id), Some(csrf)) = (random32(), random32()) else {
            return Self::unavailable();
        };
        let session = Session {
            user: user.name.clone(),
            creds: Credentials {
                access_key_id: creds.access_key_id.clone(),
                session_token: zeroize::Zeroizing::new(creds.session_token.clone()),
            },
            mfa,
            created: now,
            last_seen: now,
            csrf: zeroize::Zeroizing::new(token_text(&csrf)),
            role: None,
            must_change,
            password_set,
        };
        let cookie = match self.sessions().insert(&id, &session, now) {
            Ok(cookie) => cookie,
            Err(e) => {
                tracing::warn!(error = %e, "storing a console session failed");
                return Self::unavailable();
            }
        };
        self.state.sign_in_succeeded(&user.name);
        if let Err(e) = self.state.store.record_password_use(&user.name, now) {
            tracing::warn!(error = %e, "recording a password's use failed");
        }
        latchkey_server::http::record_sign_in(
            &self.state,
            caller.as_ref(),
            &user.name,
            mfa,
            None,
            peer,
            user_agent,
        );
        let to = if must_change {
            "/console/password"
        } else {
            "/console"
        };
        web::cookie(
            web::cookie(redirect(to), SESSION_COOKIE, Some(&cookie)),
            SIGNIN_COOKIE,
            None,
        )
    }

    /// `GET`/`POST /console/password`: `ChangePassword`, always as the
    /// user (not a role switched to).
    fn password(&self, s: &Signed<'_>, view: &SessionView, id: &str, form: Option<&Form>) -> Reply {
        let Some(form) = form else {
            return web::html(
                StatusCode::OK,
                pages::signin::change_password(&s.csrf, view.must_change, None),
            );
        };
        let again = |e: &str| {
            web::html(
                StatusCode::BAD_REQUEST,
                pages::signin::change_password(&s.csrf, view.must_change, Some(e)),
            )
        };
        let new = form.get("new").unwrap_or("");
        if new != form.get("confirm").unwrap_or("") {
            return again("The new passwords do not match.");
        }
        let Some(as_user) = self.as_user(s, view) else {
            return redirect("/console/signin");
        };
        match as_user.call(
            "ChangePassword",
            &[
                ("OldPassword", form.get("old").unwrap_or("")),
                ("NewPassword", new),
            ],
        ) {
            Ok(_) => {
                let changed = self
                    .state
                    .store
                    .login_profile(&view.user)
                    .ok()
                    .flatten()
                    .map_or(s.now, |p| p.changed);
                self.change_session(
                    id,
                    s.now,
                    |session| {
                        session.must_change = false;
                        session.password_set = changed;
                    },
                    "/console?done=password",
                )
            }
            Err(e) => again(&e.message),
        }
    }

    /// The API as the signed-in user, not the role switched to: changing
    /// one's password and switching roles are the user's acts.
    fn as_user(&self, s: &Signed<'_>, view: &SessionView) -> Option<Api<'_>> {
        let (caller, _) = self
            .state
            .credentials(
                &view.user_creds.access_key_id,
                Some(&view.user_creds.session_token),
                s.now,
                &s.api.peer.ip().to_string(),
            )
            .ok()?;
        Some(Api {
            state: &self.state,
            caller,
            peer: s.api.peer,
        })
    }

    fn switch_role_page(&self, s: &Signed<'_>, form: &Form, error: Option<&str>) -> Reply {
        let body = html! {
            @if let Some(e) = error { (layout::refusal(e)) }
            p { "Act as a role for elevated work. The role's session lasts one hour; the header shows the time left." }
            form method="post" action="/console/switch-role" #switch-role {
                (layout::csrf_field(&s.csrf))
                label for="role" { "Role (name or ARN)" }
                input #role name="role" type="text" required value=(form.text("role"));
                label for="display" { "Display name (optional)" }
                input #display name="display" type="text" maxlength="64" value=(form.text("display"));
                label for="mfa-code" { "MFA code (when the role requires MFA)" }
                input #mfa-code name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code";
                button type="submit" { "Switch role" }
            }
        };
        let status = if error.is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        s.page_status(status, Section::Overview, "Switch role", body)
    }

    /// `POST /console/switch-role`: `AssumeRole` as the user, with the MFA
    /// code when given.
    fn switch_role(&self, s: &Signed<'_>, view: &SessionView, id: &str, form: &Form) -> Reply {
        let role = form.text("role");
        let arn = if role.starts_with("arn:") {
            role.to_owned()
        } else {
            format!("arn:aws:iam::{}:role/{role}", s.account)
        };
        let Some(as_user) = self.as_user(s, view) else {
            return redirect("/console/signin");
        };
        let session_name: String = view
            .user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c))
            .take(64)
            .collect();
        let code = form.text("code");
        let serial = if code.is_empty() {
            None
        } else {
            self.state
                .store
                .list_mfa_devices(&view.user)
                .ok()
                .and_then(|d| d.into_iter().find(|d| d.enabled_at.is_some()))
                .map(|d| d.serial)
        };
        let mut params = vec![
            ("RoleArn", arn.as_str()),
            ("RoleSessionName", session_name.as_str()),
            ("DurationSeconds", "3600"),
        ];
        if let Some(serial) = &serial {
            params.push(("SerialNumber", serial));
            params.push(("TokenCode", code));
        }
        match as_user.call("AssumeRole", &params) {
            Err(e) => {
                let hint = if code.is_empty() {
                    " If the role requires MFA, enter your MFA code."
                } else {
                    ""
                };
                self.switch_role_page(s, form, Some(&format!("{e}{hint}")))
            }
            Ok(v) => {
                let c = &v["Credentials"];
                let creds = Credentials {
                    access_key_id: api::text(c, "AccessKeyId").to_owned(),
                    session_token: zeroize::Zeroizing::new(api::text(c, "SessionToken").to_owned()),
                };
                // At most 64 characters, as the form says (and AWS's).
                let display: String = match form.text("display") {
                    "" => arn.rsplit('/').next().unwrap_or(&arn),
                    d => d,
                }
                .chars()
                .take(64)
                .collect();
                let role = RoleSession {
                    creds,
                    role_arn: arn.clone(),
                    display,
                    expires: s.now + 3600,
                };
                self.change_session(id, s.now, |session| session.role = Some(role), "/console")
            }
        }
    }

    /// `GET /console`.
    fn overview(&self, s: &Signed<'_>) -> Reply {
        let findings = s.api.allowed("guardduty:ListFindings", "*").and_then(|()| {
            self.state
                .store
                .findings(false, None, None, 10_000)
                .map_err(|e| api::Refusal {
                    code: "InternalFailure".into(),
                    message: e.to_string(),
                })
        });
        let findings: Result<Vec<serde_json::Value>, _> = findings.map(|list| {
            list.iter()
                .filter_map(|(doc, _)| serde_json::from_str(doc).ok())
                .collect()
        });
        let body = html! {
            (pages::sessions::overview(s, &self.sources()))
            section aria-labelledby="findings-heading" {
                h2 #findings-heading { "Open findings" }
                @match &findings {
                    Err(e) => (layout::refusal(&e.to_string())),
                    Ok(list) => {
                        @let count = |sev: &str| list.iter().filter(|d| d["severity"] == sev).count();
                        dl.counts {
                            @for sev in ["High", "Medium", "Low"] {
                                dt { (sev) } dd class={ "sev-" (sev.to_ascii_lowercase()) } {
                                    a href={ "/console/findings?severity=" (sev) } { (count(sev)) }
                                }
                            }
                        }
                        @let failed: Vec<&serde_json::Value> = list.iter()
                            .filter(|d| api::text(d, "type").starts_with(latchkey_advisor::checks::FINDING_KIND))
                            .collect();
                        h3 { "Failed security checks" }
                        @if failed.is_empty() {
                            p.empty { "None: every security check passes (or none has run yet)." }
                        } @else {
                            ul #failed-checks { @for f in failed {
                                li { a href={ "/console/findings/" (web::encode(api::text(f, "id"))) } { (api::text(f, "title")) } }
                            } }
                        }
                    }
                }
            }
            section aria-labelledby="you-heading" {
                h2 #you-heading { "You" }
                p { "Signed in as " code { (s.api.caller.arn) } "." }
            }
        };
        s.page(Section::Overview, "Overview", body)
    }
}

/// A path segment, percent-decoded (`+` is itself: IAM names hold it).
fn web_segment(segment: &str) -> Option<String> {
    web::decode_path(segment).ok()
}

fn user_agent(parts: &hyper::http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect())
}

impl latchkey_server::http::WebFront for Console {
    fn prefix(&self) -> &'static str {
        "/console"
    }

    fn handle(&self, parts: &hyper::http::request::Parts, body: &[u8], peer: SocketAddr) -> Reply {
        self.route(parts, body, peer)
    }
}
