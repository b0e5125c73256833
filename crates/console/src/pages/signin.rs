//! Sign-in: user name and password, then the MFA code when the user has a
//! device, then a new password when one is due.

use maud::{Markup, html};

use crate::layout::{bare, csrf_field, refusal};

/// What the sign-in form says after a failure: AWS's words for every
/// wrong case, so that it tells nothing about which.
pub const INCORRECT: &str = "Your authentication information is incorrect. Please try again.";
pub const LOCKED: &str = "Too many failed sign-in attempts. Wait 15 minutes, or ask an administrator to reset your password.";
pub const EXPIRED: &str = "Your password has expired. Ask an administrator to reset it.";

pub fn form(csrf: &str, user: &str, error: Option<&str>) -> Markup {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { (refusal(e)) }
            form method="post" action="/console/signin" #signin {
                (csrf_field(csrf))
                label for="username" { "IAM user name" }
                input #username name="username" type="text" autocomplete="username"
                    required autofocus value=(user);
                label for="password" { "Password" }
                input #password name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn mfa(csrf: &str, serial: &str, error: Option<&str>) -> Markup {
    bare(
        "Multi-factor authentication",
        html! {
            h1 { "Multi-factor authentication" }
            @if let Some(e) = error { (refusal(e)) }
            p { "Enter the code from your authenticator app (device " code { (serial) } ")." }
            form method="post" action="/console/signin/mfa" #mfa {
                (csrf_field(csrf))
                label for="code" { "MFA code" }
                input #code name="code" type="text" inputmode="numeric" pattern="[0-9]{6}"
                    maxlength="6" autocomplete="one-time-code" required autofocus;
                button type="submit" { "Submit" }
            }
            p { a href="/console/signin" { "Cancel" } }
        },
    )
}

pub fn change_password(csrf: &str, forced: bool, error: Option<&str>) -> Markup {
    bare(
        "Change password",
        html! {
            h1 { "Change password" }
            @if forced { p { "You must choose a new password before you continue." } }
            @if let Some(e) = error { (refusal(e)) }
            form method="post" action="/console/password" #change-password {
                (csrf_field(csrf))
                label for="old" { "Current password" }
                input #old name="old" type="password" autocomplete="current-password" required;
                label for="new" { "New password" }
                input #new name="new" type="password" autocomplete="new-password" required;
                label for="confirm" { "Confirm new password" }
                input #confirm name="confirm" type="password" autocomplete="new-password" required;
                button type="submit" { "Change password" }
            }
            @if !forced { p { a href="/console" { "Cancel" } } }
        },
    )
}

pub fn expired_form() -> Markup {
    bare(
        "Form expired",
        html! {
            h1 { "This form has expired" }
            p { "It did not come from this console, or it was opened too long ago." }
            p { a href="/console" { "Back to the console" } }
        },
    )
}
