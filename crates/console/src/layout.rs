//! The page around every console page: header (who is signed in, the
//! role switched to and its time left, sign-out), navigation, and the
//! main region. Server-rendered; the script only enhances.

use maud::{DOCTYPE, Markup, html};

/// The navigation's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Users,
    Groups,
    Roles,
    Policies,
    Simulator,
    Databases,
    Sessions,
    Secrets,
    Parameters,
    Keys,
    Audit,
    Findings,
    Account,
}

impl Section {
    const ALL: [(Section, &'static str, &'static str); 14] = [
        (Section::Overview, "Overview", "/console"),
        (Section::Users, "Users", "/console/users"),
        (Section::Groups, "Groups", "/console/groups"),
        (Section::Roles, "Roles", "/console/roles"),
        (Section::Policies, "Policies", "/console/policies"),
        (Section::Simulator, "Simulator", "/console/simulate"),
        (Section::Databases, "Databases", "/console/databases"),
        (Section::Sessions, "Sessions", "/console/sessions"),
        (Section::Secrets, "Secrets", "/console/secrets"),
        (Section::Parameters, "Parameters", "/console/parameters"),
        (Section::Keys, "Keys", "/console/keys"),
        (Section::Audit, "Audit", "/console/audit"),
        (Section::Findings, "Findings", "/console/findings"),
        (Section::Account, "Account", "/console/account"),
    ];
}

/// Who is signed in, for the header.
pub struct Chrome<'a> {
    pub user: &'a str,
    pub account: &'a str,
    /// The role switched to and when it ends (Unix seconds).
    pub role: Option<(&'a str, i64)>,
    pub now: i64,
    pub csrf: &'a str,
    /// The sections this build of the console has.
    pub sections: &'a [Section],
}

/// `1 h 05 min`, `12 min`.
pub fn remaining(seconds: i64) -> String {
    let minutes = (seconds.max(0) + 59) / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m:02} min"),
    }
}

/// The CSRF field every state-changing form carries.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Latchkey" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A page for someone not signed in (sign-in, MFA).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "Latchkey" }
                    (body)
                }
            }
        }
    }
}

/// A console page.
pub fn page(chrome: &Chrome<'_>, active: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/console" { "Latchkey" }
                    div.who {
                        span #signed-in { (chrome.user) " @ " (chrome.account) }
                        @if let Some((role, expires)) = chrome.role {
                            span.role #active-role data-expires=(expires) {
                                "Role: " strong { (role) }
                                " (" span.left { (remaining(expires - chrome.now)) } " left)"
                            }
                            form method="post" action="/console/switch-back" {
                                (csrf_field(chrome.csrf))
                                button type="submit" { "Back to " (chrome.user) }
                            }
                        } @else {
                            a href="/console/switch-role" { "Switch role" }
                        }
                        form method="post" action="/console/signout" {
                            (csrf_field(chrome.csrf))
                            button type="submit" #sign-out { "Sign out" }
                        }
                    }
                }
                nav aria-label="Sections" {
                    ul {
                        @for (section, label, href) in Section::ALL {
                            @if chrome.sections.contains(&section) {
                                li {
                                    @if section == active {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A refusal or error, as a page shows it.
pub fn refusal(message: &str) -> Markup {
    html! { p.error role="alert" { (message) } }
}

pub fn notice(message: &str) -> Markup {
    html! { p.notice role="status" { (message) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_time_left_reads_well() {
        let chrome = Chrome {
            user: "<script>",
            account: "123456789012",
            role: Some(("admin", 3_900)),
            now: 0,
            csrf: "t",
            sections: &[Section::Overview, Section::Users],
        };
        let out = page(&chrome, Section::Users, "Users & more", html! {}).into_string();
        assert!(out.contains("&lt;script&gt;"));
        assert!(!out.contains("<script>"));
        assert!(out.contains("1 h 05 min"));
        assert!(out.contains("aria-current=\"page\""));
        assert!(
            !out.contains("/console/findings"),
            "sections not built are not shown"
        );
        assert_eq!(remaining(59), "1 min");
        assert_eq!(remaining(0), "0 min");
    }
}
