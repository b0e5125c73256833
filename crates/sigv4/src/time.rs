//! `X-Amz-Date` timestamps (`YYYYMMDDTHHMMSSZ`, always UTC).
//!
//! Time is passed in as Unix seconds so that the crate never reads a clock:
//! callers decide what "now" is, which keeps verification testable.

use std::fmt;

/// A point in time with one-second resolution, as SigV4 uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmzDate {
    unix: i64,
}

/// Seconds from 0000-03-01 to 1970-01-01 are folded into the civil-date
/// algorithm below; these bounds keep it in the four-digit years SigV4 allows.
const MIN_UNIX: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Why a timestamp string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmzDateError {
    #[error("expected 16 characters in the form YYYYMMDDTHHMMSSZ")]
    Length,
    #[error("expected the form YYYYMMDDTHHMMSSZ")]
    Shape,
    #[error("the date or time is out of range")]
    Range,
}

impl AmzDate {
    /// A timestamp from Unix seconds. Returns `None` outside years 0000-9999.
    pub fn from_unix(unix: i64) -> Option<Self> {
        (MIN_UNIX..=MAX_UNIX)
            .contains(&unix)
            .then_some(Self { unix })
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        self.unix
    }

    /// Parses the strict `YYYYMMDDTHHMMSSZ` form.
    pub fn parse(text: &str) -> Result<Self, AmzDateError> {
        let b = text.as_bytes();
        if b.len() != 16 {
            return Err(AmzDateError::Length);
        }
        if b[8] != b'T' || b[15] != b'Z' {
            return Err(AmzDateError::Shape);
        }
        let digits = |range: std::ops::Range<usize>| -> Result<i64, AmzDateError> {
            b[range].iter().try_fold(0i64, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + i64::from(c - b'0'))
                } else {
                    Err(AmzDateError::Shape)
                }
            })
        };
        let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
        let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(AmzDateError::Range);
        }
        let unix = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Ok(Self { unix })
    }

    /// The `YYYYMMDDTHHMMSSZ` form, without allocating.
    pub fn to_bytes(self) -> [u8; 16] {
        let days = self.unix.div_euclid(86_400);
        let secs = self.unix.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"00000000T000000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[4..6], month);
        put_digits(&mut out[6..8], day);
        put_digits(&mut out[9..11], secs / 3600);
        put_digits(&mut out[11..13], secs % 3600 / 60);
        put_digits(&mut out[13..15], secs % 60);
        out
    }

    /// The `YYYYMMDD` date used in the credential scope.
    pub fn date_stamp(self) -> [u8; 8] {
        let full = self.to_bytes();
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }

    /// RFC 3339 form (`2024-08-26T22:00:00Z`), for people and JSON output.
    pub fn to_rfc3339(self) -> String {
        let b = self.to_bytes();
        let s = |r: std::ops::Range<usize>| std::str::from_utf8(&b[r]).unwrap_or("??");
        format!(
            "{}-{}-{}T{}:{}:{}Z",
            s(0..4),
            s(4..6),
            s(6..8),
            s(9..11),
            s(11..13),
            s(13..15)
        )
    }

    /// Adds seconds, saturating at the representable range.
    pub fn saturating_add(self, secs: i64) -> Self {
        Self {
            unix: self.unix.saturating_add(secs).clamp(MIN_UNIX, MAX_UNIX),
        }
    }
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        // Always ASCII by construction.
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

fn put_digits(out: &mut [u8], mut value: i64) {
    for slot in out.iter_mut().rev() {
        // Digits are 0-9 by the modulo, so the narrowing cannot truncate.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-date algorithms (public domain), proleptic Gregorian.
/// Days from 1970-01-01 to a (year, month, day).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's
/// algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        let d = AmzDate::parse("20240826T220000Z").unwrap();
        assert_eq!(d.unix(), 1_724_709_600);
        assert_eq!(&d.to_bytes(), b"20240826T220000Z");
        assert_eq!(&d.date_stamp(), b"20240826");
        assert_eq!(d.to_rfc3339(), "2024-08-26T22:00:00Z");
        assert_eq!(
            AmzDate::from_unix(0).unwrap().to_string(),
            "19700101T000000Z"
        );
        assert_eq!(
            AmzDate::parse("20000229T235959Z").unwrap().unix(),
            951_868_799
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(AmzDate::parse("2024"), Err(AmzDateError::Length));
        assert_eq!(AmzDate::parse("20240826X220000Z"), Err(AmzDateError::Shape));
        assert_eq!(AmzDate::parse("2024082aT220000Z"), Err(AmzDateError::Shape));
        assert_eq!(AmzDate::parse("20230229T000000Z"), Err(AmzDateError::Range));
        assert_eq!(AmzDate::parse("20241301T000000Z"), Err(AmzDateError::Range));
        assert_eq!(AmzDate::parse("20240101T240000Z"), Err(AmzDateError::Range));
        assert_eq!(AmzDate::parse("2024-8-26T22000Z"), Err(AmzDateError::Shape));
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_is_identity(unix in MIN_UNIX..=MAX_UNIX) {
            let d = AmzDate::from_unix(unix).unwrap();
            let text = d.to_string();
            proptest::prop_assert_eq!(AmzDate::parse(&text), Ok(d));
        }
    }
}
