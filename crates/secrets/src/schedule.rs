//! Rotation schedules: `RotationRules` as `RotateSecret` takes them
//! (`AutomaticallyAfterDays`, or `ScheduleExpression` with `rate()` or
//! `cron()`, and a `Duration` window), and when a secret next rotates.
//! Times are UTC, as AWS's are.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

type Result<T> = std::result::Result<T, ScheduleError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(ScheduleError(message.into()))
}

/// `RotationRules`, as given and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRules {
    #[serde(default)]
    pub automatically_after_days: Option<i64>,
    /// `Duration`: the window, `Nh` (1-24 hours).
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub schedule_expression: Option<String>,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many seconds after the last rotation.
    Every(i64),
    Cron(Box<Cron>),
}

impl RotationRules {
    /// Checks the rules and gives their schedule and window (seconds).
    pub fn schedule(&self) -> Result<(Schedule, Option<i64>)> {
        let schedule = match (&self.automatically_after_days, &self.schedule_expression) {
            (Some(_), Some(_)) => {
                return err(
                    "You can't specify both AutomaticallyAfterDays and ScheduleExpression.",
                );
            }
            (Some(days), None) if (1..=1000).contains(days) => Schedule::Every(days * 86_400),
            (Some(_), None) => return err("AutomaticallyAfterDays must be between 1 and 1000."),
            (None, Some(expr)) => Schedule::parse(expr)?,
            (None, None) => {
                return err("RotationRules needs AutomaticallyAfterDays or ScheduleExpression.");
            }
        };
        let window = match &self.duration {
            None => None,
            Some(d) => {
                let hours = d
                    .strip_suffix('h')
                    .and_then(|h| h.parse::<i64>().ok())
                    .filter(|h| (1..=24).contains(h));
                match hours {
                    Some(h) => Some(h * 3600),
                    None => return err("Duration must be 1h to 24h, such as 4h."),
                }
            }
        };
        if let (Schedule::Every(every), Some(window)) = (&schedule, window)
            && window >= *every
        {
            return err(
                "The rotation window (Duration) must be shorter than the rotation interval.",
            );
        }
        Ok((schedule, window))
    }

    /// When a secret last rotated at `last` next rotates (after `now` for
    /// a cron schedule).
    pub fn next_rotation(&self, last: i64, now: i64) -> Result<i64> {
        match self.schedule()?.0 {
            Schedule::Every(every) => Ok(last + every),
            Schedule::Cron(cron) => cron
                .next_after(last.max(now))
                .ok_or_else(|| ScheduleError("The cron expression never matches.".into())),
        }
    }
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self> {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|e| e.strip_suffix(')')) {
            let mut words = inner.split_whitespace();
            let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
                return err("A rate expression is rate(N days) or rate(N hours).");
            };
            let Ok(n) = n.parse::<i64>() else {
                return err("The rate must be a whole number.");
            };
            return match unit {
                "day" | "days" if (1..=1000).contains(&n) => Ok(Self::Every(n * 86_400)),
                "hour" | "hours" if (4..=23).contains(&n) => Ok(Self::Every(n * 3600)),
                "day" | "days" => err("A rate in days must be 1 to 1000 days."),
                "hour" | "hours" => err("A rate in hours must be 4 to 23 hours."),
                _ => err("A rate expression is rate(N days) or rate(N hours)."),
            };
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|e| e.strip_suffix(')')) {
            return Ok(Self::Cron(Box::new(Cron::parse(inner)?)));
        }
        err("A schedule expression is rate(...) or cron(...).")
    }
}

/// A six-field cron expression as AWS writes them: minutes, hours,
/// day of month, month, day of week (1-7, Sunday first), year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    /// `None` for `?` or `*` (any day).
    days_of_month: Option<Vec<u32>>,
    months: Vec<u32>,
    /// 1 = Sunday ... 7 = Saturday; `None` for `?` or `*`.
    days_of_week: Option<Vec<u32>>,
    /// `None` for any year.
    years: Option<Vec<u32>>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field: `*`, numbers, names, `a-b`, `a/n`, `a-b/n` and lists.
fn field(text: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<u32>> {
    let value = |v: &str| -> Result<u32> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(lo + u32::try_from(i).unwrap_or(0));
        }
        match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => err(format!(
                "The {what} field must hold values from {lo} to {hi}: {v}"
            )),
        }
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        if part.contains(['L', 'W', '#']) && !names.iter().any(|n| n.eq_ignore_ascii_case(part)) {
            return err(format!(
                "The {what} field's L, W and # are not supported: {part}"
            ));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(s) if s > 0 => (r, s),
                _ => return err(format!("The {what} field has a bad step: {part}")),
            },
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return err(format!("The {what} field has an empty range: {part}"));
        }
        out.extend((from..=to).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = fields.as_slice() else {
            return err(
                "A cron expression has six fields: minutes hours day-of-month month day-of-week year.",
            );
        };
        let any = |f: &str| f == "?" || f == "*";
        if !(*dom == "?" || *dow == "?") {
            return err("One of day-of-month and day-of-week must be ?.");
        }
        Ok(Self {
            minutes: field(min, "minutes", 0, 59, &[])?,
            hours: field(hour, "hours", 0, 23, &[])?,
            days_of_month: (!any(dom))
                .then(|| field(dom, "day-of-month", 1, 31, &[]))
                .transpose()?,
            months: field(month, "month", 1, 12, &MONTHS)?,
            days_of_week: (!any(dow))
                .then(|| field(dow, "day-of-week", 1, 7, &DAYS))
                .transpose()?,
            years: (!any(year))
                .then(|| field(year, "year", 1970, 2199, &[]))
                .transpose()?,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let month = u32::from(u8::from(date.month()));
        let dow = u32::from(date.weekday().number_from_sunday());
        let year = u32::try_from(date.year()).unwrap_or(0);
        self.months.contains(&month)
            && self
                .days_of_month
                .as_ref()
                .is_none_or(|d| d.contains(&u32::from(date.day())))
            && self.days_of_week.as_ref().is_none_or(|d| d.contains(&dow))
            && self.years.as_ref().is_none_or(|y| y.contains(&year))
    }

    /// The first matching minute strictly after `t` (Unix seconds),
    /// within eight years.
    pub fn next_after(&self, t: i64) -> Option<i64> {
        let start = OffsetDateTime::from_unix_timestamp(t).ok()?;
        let mut date = start.date();
        for _ in 0..(8 * 366) {
            if self.day_matches(date) {
                let midnight = date.midnight().assume_utc().unix_timestamp();
                for h in &self.hours {
                    for m in &self.minutes {
                        let at = midnight + i64::from(*h) * 3600 + i64::from(*m) * 60;
                        if at > t {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.next_day()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    /// 2026-12-02T00:00:00Z, a Wednesday.
    const WED: i64 = 1_796_169_600;

    fn rules(days: Option<i64>, expr: Option<&str>, duration: Option<&str>) -> RotationRules {
        RotationRules {
            automatically_after_days: days,
            duration: duration.map(str::to_owned),
            schedule_expression: expr.map(str::to_owned),
        }
    }

    #[test]
    fn days_and_rates_count_from_the_last_rotation() {
        assert_eq!(
            rules(Some(30), None, None).next_rotation(WED, WED).unwrap(),
            WED + 30 * 86_400
        );
        assert_eq!(
            rules(None, Some("rate(10 days)"), Some("3h"))
                .next_rotation(WED, WED)
                .unwrap(),
            WED + 10 * 86_400
        );
        assert_eq!(
            rules(None, Some("rate(4 hours)"), None)
                .next_rotation(WED, WED)
                .unwrap(),
            WED + 4 * 3600
        );
        for bad in [
            rules(Some(0), None, None),
            rules(Some(1001), None, None),
            rules(Some(1), Some("rate(1 days)"), None),
            rules(None, Some("rate(3 hours)"), None),
            rules(None, Some("rate(1 week)"), None),
            rules(None, Some("rate(1 days)"), Some("25h")),
            rules(None, Some("rate(4 hours)"), Some("4h")),
            rules(None, None, None),
        ] {
            assert!(bad.schedule().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cron_finds_the_next_matching_minute() {
        // 16:00 on the 1st and 15th of each month.
        let c = Cron::parse("0 16 1,15 * ? *").unwrap();
        let next = c.next_after(WED).unwrap();
        // 2026-12-15T16:00:00Z
        assert_eq!(next, WED + 13 * 86_400 + 16 * 3600);
        // Every Sunday at 04:30: the first after Wednesday is 4 days on.
        let sun = Cron::parse("30 4 ? * SUN *").unwrap();
        assert_eq!(
            sun.next_after(WED).unwrap(),
            WED + 4 * 86_400 + 4 * 3600 + 1800
        );
        assert_eq!(Cron::parse("30 4 ? * 1 *").unwrap(), sun);
        // Every 6 hours from midnight, weekdays.
        let six = Cron::parse("0 */6 ? * MON-FRI *").unwrap();
        assert_eq!(six.next_after(WED).unwrap(), WED + 6 * 3600);
        // A year that has passed never matches.
        assert_eq!(Cron::parse("0 0 1 1 ? 2020").unwrap().next_after(WED), None);
        for bad in [
            "0 16 1 * 1 *",
            "0 16 1 *",
            "60 0 ? * * *",
            "0 0 L * ? *",
            "0 0 ? * 2#1 *",
            "0 5-1 ? * * *",
            "0 0/0 ? * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
