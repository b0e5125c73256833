//! Opaque `NextToken`s. A token holds where the last page ended (a
//! parameter's name, or a version number), so a page boundary survives
//! parameters added or removed between calls. It is not a secret, and a
//! caller who forges one learns only what a listing shows anyway: every
//! item on a page is still filtered and authorised.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::SsmError;

const PREFIX: &str = "lk1:";
/// The longest token AWS accepts.
pub const MAX_TOKEN: usize = 1024;

/// The token that resumes after `last`.
pub fn encode(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{last}"))
}

/// Where a token resumes: after the item it names.
pub fn decode(token: &str) -> Result<String, SsmError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(SsmError::InvalidNextToken);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| SsmError::InvalidNextToken)?;
    let text = String::from_utf8(bytes).map_err(|_| SsmError::InvalidNextToken)?;
    text.strip_prefix(PREFIX)
        .map(str::to_owned)
        .ok_or(SsmError::InvalidNextToken)
}

/// Pages `items` (sorted by `key`, ascending) after `token`'s item, at most
/// `size` of them; the token for the next page when more remain.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    token: Option<&str>,
    size: usize,
) -> Result<(Vec<T>, Option<String>), SsmError> {
    let after = token.map(decode).transpose()?;
    let mut rest: Vec<T> = match &after {
        Some(after) => items.into_iter().filter(|i| key(i) > *after).collect(),
        None => items,
    };
    let more = rest.len() > size;
    rest.truncate(size);
    let next = if more {
        rest.last().map(|i| encode(&key(i)))
    } else {
        None
    };
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        assert_eq!(decode(&encode("/a/b")), Ok("/a/b".to_owned()));
        for bad in ["", "!!", "bm9wZQ", &"A".repeat(2000)] {
            assert_eq!(decode(bad), Err(SsmError::InvalidNextToken), "{bad}");
        }
    }

    #[test]
    fn pages_resume_after_the_last_item() {
        let items: Vec<String> = (0..7).map(|i| format!("/p/{i}")).collect();
        let (first, next) = page(items.clone(), Clone::clone, None, 3).unwrap_or_default();
        assert_eq!(first, ["/p/0", "/p/1", "/p/2"]);
        let (second, next) =
            page(items.clone(), Clone::clone, next.as_deref(), 3).unwrap_or_default();
        assert_eq!(second, ["/p/3", "/p/4", "/p/5"]);
        let (third, next) = page(items, Clone::clone, next.as_deref(), 3).unwrap_or_default();
        assert_eq!(third, ["/p/6"]);
        assert_eq!(next, None);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,64}") {
            let _ = decode(&text);
        }

        #[test]
        fn any_text_round_trips(text in "\\PC{0,64}") {
            proptest::prop_assert_eq!(decode(&encode(&text)), Ok(text));
        }
    }
}
