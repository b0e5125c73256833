//! `Marker`/`MaxItems` pagination, one helper for every IAM list.
//!
//! Items are ordered by a unique key; a page ends after `MaxItems` items
//! (1 to 1000, default 100) and its `Marker` is the last key returned,
//! base64url-encoded behind a version tag. The next page starts after that
//! key, so a page stays correct when items are added or deleted between
//! calls. A marker this server did not write is a `ValidationError`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// AWS's bounds for `MaxItems`.
pub const MAX_ITEMS: std::ops::RangeInclusive<i64> = 1..=1000;
pub const DEFAULT_MAX_ITEMS: usize = 100;

const MARKER_TAG: &str = "lk1:";

/// One page of a list.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub marker: Option<String>,
}

impl<T> Page<T> {
    /// `<IsTruncated>` and, when there is more, `<Marker>`.
    pub fn write_truncation(&self, x: &mut Xml) {
        x.text(
            "IsTruncated",
            if self.marker.is_some() {
                "true"
            } else {
                "false"
            },
        );
        if let Some(m) = &self.marker {
            x.text("Marker", m);
        }
    }
}

pub fn encode_marker(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{MARKER_TAG}{key}"))
}

pub fn decode_marker(marker: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::validation("Invalid Marker: it was not returned by this server.");
    let bytes = URL_SAFE_NO_PAD
        .decode(marker.as_bytes())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(MARKER_TAG)
        .map(str::to_owned)
        .ok_or_else(invalid)
}

/// The page of `items` after `marker` (a value from [`encode_marker`]),
/// at most `max_items` long. Items are sorted by `key`, which must be
/// unique among them.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: Option<i64>,
) -> Result<Page<T>, ApiError> {
    let max = match max_items {
        None => DEFAULT_MAX_ITEMS,
        Some(n) if MAX_ITEMS.contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_ITEMS),
        Some(n) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            )));
        }
    };
    let after = marker.map(decode_marker).transpose()?;
    let mut keyed: Vec<(String, T)> = items.drain(..).map(|i| (key(&i), i)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match &after {
        Some(last) => keyed.partition_point(|(k, _)| k <= last),
        None => 0,
    };
    let mut rest = keyed.into_iter().skip(start);
    let page: Vec<(String, T)> = rest.by_ref().take(max).collect();
    let marker = match (rest.next(), page.last()) {
        (Some(_), Some((k, _))) => Some(encode_marker(k)),
        _ => None,
    };
    Ok(Page {
        items: page.into_iter().map(|(_, i)| i).collect(),
        marker,
    })
}

/// [`paginate`] with the request's `Marker` and `MaxItems`.
pub fn page_of<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    params: &Params,
) -> Result<Page<T>, ApiError> {
    let max = params.int("MaxItems", MAX_ITEMS)?;
    paginate(items, key, params.get("Marker"), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &Page<&str>) -> Vec<String> {
        p.items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pages_follow_each_other_until_the_end() {
        let items = vec!["d", "a", "c", "b", "e"];
        let id = |s: &&str| (*s).to_owned();
        let p1 = paginate(items.clone(), id, None, Some(2)).unwrap();
        assert_eq!(keys(&p1), ["a", "b"]);
        let m1 = p1.marker.clone().unwrap();
        let p2 = paginate(items.clone(), id, Some(&m1), Some(2)).unwrap();
        assert_eq!(keys(&p2), ["c", "d"]);
        let p3 = paginate(items.clone(), id, p2.marker.as_deref(), Some(2)).unwrap();
        assert_eq!(keys(&p3), ["e"]);
        assert_eq!(p3.marker, None);
        // Exactly one full page: no marker.
        let all = paginate(items.clone(), id, None, Some(5)).unwrap();
        assert_eq!(all.items.len(), 5);
        assert_eq!(all.marker, None);
        // Default page size.
        let many: Vec<String> = (0..250).map(|i| format!("{i:03}")).collect();
        let p = paginate(many, Clone::clone, None, None).unwrap();
        assert_eq!(p.items.len(), DEFAULT_MAX_ITEMS);
        assert!(p.marker.is_some());
    }

    #[test]
    fn a_page_survives_deletion_of_its_last_item() {
        let id = |s: &&str| (*s).to_owned();
        let p1 = paginate(vec!["a", "b", "c"], id, None, Some(2)).unwrap();
        let p2 = paginate(vec!["a", "c"], id, p1.marker.as_deref(), Some(2)).unwrap();
        assert_eq!(keys(&p2), ["c"]);
    }

    #[test]
    fn bad_markers_and_sizes_are_validation_errors() {
        let id = |s: &&str| (*s).to_owned();
        for bad in ["!!", "bm90IG91cnM", "", "%%%"] {
            let e = paginate(vec!["a"], id, Some(bad), None).unwrap_err();
            assert_eq!(e.code, "ValidationError", "{bad}");
        }
        for n in [0, -1, 1001] {
            assert!(paginate(vec!["a"], id, None, Some(n)).is_err());
        }
        assert_eq!(decode_marker(&encode_marker("user/é")).unwrap(), "user/é");
    }

    #[test]
    fn truncation_xml() {
        let mut x = Xml::new();
        Page::<()> {
            items: vec![],
            marker: Some("m".into()),
        }
        .write_truncation(&mut x);
        assert_eq!(
            x.into_string(),
            "<IsTruncated>true</IsTruncated><Marker>m</Marker>"
        );
    }
}
