//! Times as lookups and verification windows take them, for the command
//! line and the console alike.

/// A time that is neither a duration nor an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a duration like 1h nor an RFC 3339 time")]
pub struct UnreadableTime(pub String);

/// `text` in milliseconds since the epoch: that long before `now_ms`
/// (`1h`, `7days`) or an RFC 3339 time; before the epoch counts as it.
pub fn parse_when_ms(text: &str, now_ms: i64) -> Result<i64, UnreadableTime> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago_ms = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ago_ms).max(0));
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|_| UnreadableTime(text.to_owned()))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_when_ms("1h", 7_200_000), Ok(3_600_000));
        assert_eq!(parse_when_ms("3h", 7_200_000), Ok(0));
        assert_eq!(parse_when_ms("1970-01-01T00:00:01Z", 0), Ok(1000));
        assert_eq!(
            parse_when_ms("yesterday", 0),
            Err(UnreadableTime("yesterday".into()))
        );
    }
}
