//! Condition operators: parsing the operator name, compiling its values,
//! and evaluating against a request context.

use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine;

use crate::pattern::{Pattern, VariableError};

/// The operator without its `ForAllValues:`/`ForAnyValue:` prefix or
/// `IfExists` suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseOp {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl BaseOp {
    const ALL: [(&'static str, BaseOp); 27] = [
        ("StringEquals", BaseOp::StringEquals),
        ("StringNotEquals", BaseOp::StringNotEquals),
        ("StringEqualsIgnoreCase", BaseOp::StringEqualsIgnoreCase),
        (
            "StringNotEqualsIgnoreCase",
            BaseOp::StringNotEqualsIgnoreCase,
        ),
        ("StringLike", BaseOp::StringLike),
        ("StringNotLike", BaseOp::StringNotLike),
        ("NumericEquals", BaseOp::NumericEquals),
        ("NumericNotEquals", BaseOp::NumericNotEquals),
        ("NumericLessThan", BaseOp::NumericLessThan),
        ("NumericLessThanEquals", BaseOp::NumericLessThanEquals),
        ("NumericGreaterThan", BaseOp::NumericGreaterThan),
        ("NumericGreaterThanEquals", BaseOp::NumericGreaterThanEquals),
        ("DateEquals", BaseOp::DateEquals),
        ("DateNotEquals", BaseOp::DateNotEquals),
        ("DateLessThan", BaseOp::DateLessThan),
        ("DateLessThanEquals", BaseOp::DateLessThanEquals),
        ("DateGreaterThan", BaseOp::DateGreaterThan),
        ("DateGreaterThanEquals", BaseOp::DateGreaterThanEquals),
        ("Bool", BaseOp::Bool),
        ("BinaryEquals", BaseOp::BinaryEquals),
        ("IpAddress", BaseOp::IpAddress),
        ("NotIpAddress", BaseOp::NotIpAddress),
        ("ArnEquals", BaseOp::ArnEquals),
        ("ArnLike", BaseOp::ArnLike),
        ("ArnNotEquals", BaseOp::ArnNotEquals),
        ("ArnNotLike", BaseOp::ArnNotLike),
        ("Null", BaseOp::Null),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(n, _)| n)
    }

    /// Policy variables work only in string and ARN operators.
    pub fn takes_variables(self) -> bool {
        use BaseOp::*;
        matches!(
            self,
            StringEquals
                | StringNotEquals
                | StringEqualsIgnoreCase
                | StringNotEqualsIgnoreCase
                | StringLike
                | StringNotLike
                | ArnEquals
                | ArnLike
                | ArnNotEquals
                | ArnNotLike
        )
    }

    /// Negated operators are true when the key is absent, and true for a
    /// value that matches none of the policy values.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            BaseOp::StringNotEquals
                | BaseOp::StringNotEqualsIgnoreCase
                | BaseOp::StringNotLike
                | BaseOp::NumericNotEquals
                | BaseOp::DateNotEquals
                | BaseOp::NotIpAddress
                | BaseOp::ArnNotEquals
                | BaseOp::ArnNotLike
        )
    }
}

/// `ForAllValues:` / `ForAnyValue:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

/// A full operator as written in a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operator {
    pub base: BaseOp,
    pub if_exists: bool,
    pub set: Option<SetQualifier>,
}

impl Operator {
    /// Parses `[ForAllValues:|ForAnyValue:]Name[IfExists]`.
    pub fn parse(text: &str) -> Option<Self> {
        let (set, rest) = if let Some(r) = text.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), r)
        } else if let Some(r) = text.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), r)
        } else {
            (None, text)
        };
        let (if_exists, name) = match rest.strip_suffix("IfExists") {
            Some(n) => (true, n),
            None => (false, rest),
        };
        let base = BaseOp::from_name(name)?;
        // `NullIfExists` and set-qualified `Null` mean nothing in IAM.
        if base == BaseOp::Null && (if_exists || set.is_some()) {
            return None;
        }
        Some(Self {
            base,
            if_exists,
            set,
        })
    }
}

/// An IP network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a single host).
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr.trim()).ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses an ISO 8601 date-time (`2024-01-31`, `2024-01-31T12:00:00Z`,
/// fractional seconds, `+hh:mm` offsets) or epoch seconds, to epoch
/// milliseconds.
pub fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().ok()?.checked_mul(1000);
    }
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = b.get(r)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let dim = [
        31,
        28 + i64::from(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > dim[usize::try_from(month - 1).ok()?] {
        return None;
    }
    let mut millis = 0i64;
    let mut offset = 0i64;
    if b.len() > 10 {
        if b[10] != b'T' && b[10] != b't' && b[10] != b' ' {
            return None;
        }
        if b.len() < 16 || b[13] != b':' {
            return None;
        }
        let (hour, minute) = (num(11..13)?, num(14..16)?);
        let mut i = 16;
        let mut second = 0;
        if b.get(16) == Some(&b':') {
            second = num(17..19)?;
            i = 19;
            if b.get(19) == Some(&b'.') {
                let start = 20;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let frac = &b[start..end.min(start + 3)];
                let mut ms = frac.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0'));
                for _ in frac.len()..3 {
                    ms *= 10;
                }
                millis = ms;
                i = end;
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        match &b[i..] {
            b"" | b"Z" | b"z" => {}
            [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
                let mins = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
                offset = if *sign == b'+' { mins } else { -mins };
            }
            _ => return None,
        }
        millis += ((hour * 60 + minute - offset) * 60 + second) * 1000;
    }
    // Days from civil (Howard Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400_000 + millis)
}

/// An ARN pattern: six components, each its own wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArnPattern {
    parts: [Pattern; 6],
}

/// Splits an ARN into its six components (the last keeps its colons).
pub fn split_arn(text: &str) -> Option<[&str; 6]> {
    let mut it = text.splitn(6, ':');
    let parts = [
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    ];
    (parts[0] == "arn").then_some(parts)
}

impl ArnPattern {
    pub fn compile(text: &str, variables: bool) -> Result<Option<Self>, VariableError> {
        let Some(parts) = split_arn(text) else {
            return Ok(None);
        };
        let compiled = [
            Pattern::compile(parts[0], variables, true)?,
            Pattern::compile(parts[1], variables, true)?,
            Pattern::compile(parts[2], variables, true)?,
            Pattern::compile(parts[3], variables, true)?,
            Pattern::compile(parts[4], variables, true)?,
            Pattern::compile(parts[5], variables, true)?,
        ];
        Ok(Some(Self { parts: compiled }))
    }

    fn matches<'v>(&self, value: &str, resolve: &impl Fn(&str) -> Option<&'v str>) -> Option<bool> {
        let Some(parts) = split_arn(value) else {
            return Some(false);
        };
        for (p, v) in self.parts.iter().zip(parts) {
            if !p.matches(v, resolve, false)? {
                return Some(false);
            }
        }
        Some(true)
    }
}

/// Compiled policy values of one condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Strings(Vec<Pattern>),
    Numbers(Vec<f64>),
    Dates(Vec<i64>),
    Bools(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Cidrs(Vec<Cidr>),
    Arns(Vec<ArnPattern>),
    /// `Null`: `true` means "the key must be absent".
    Null(Vec<bool>),
}

/// Why a condition value is invalid for its operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("not a numeric value")]
    Number,
    #[error("not a date (ISO 8601 or epoch seconds)")]
    Date,
    #[error("not a boolean (true or false)")]
    Bool,
    #[error("not base64")]
    Base64,
    #[error("not an IP address or CIDR block")]
    Cidr,
    #[error("not an ARN (arn:partition:service:region:account:resource)")]
    Arn,
    #[error("policy variable: {0}")]
    Variable(#[from] VariableError),
}

/// Compiles one condition value for `op`.
pub fn compile_values(
    op: BaseOp,
    raw: &[String],
    variables: bool,
) -> Result<Values, (usize, ValueError)> {
    use BaseOp::*;
    let each = |f: &dyn Fn(&str) -> Result<(), ValueError>| -> Result<(), (usize, ValueError)> {
        raw.iter()
            .enumerate()
            .try_for_each(|(i, v)| f(v).map_err(|e| (i, e)))
    };
    let err_at = |i: usize, e: ValueError| (i, e);
    Ok(match op {
        StringEquals | StringNotEquals | StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            let mut out = Vec::with_capacity(raw.len());
            for (i, v) in raw.iter().enumerate() {
                out.push(Pattern::compile(v, variables, false).map_err(|e| err_at(i, e.into()))?);
            }
            Values::Strings(out)
        }
        StringLike | StringNotLike => {
            let mut out = Vec::with_capacity(raw.len());
            for (i, v) in raw.iter().enumerate() {
                out.push(Pattern::compile(v, variables, true).map_err(|e| err_at(i, e.into()))?);
            }
            Values::Strings(out)
        }
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => {
            each(&|v| parse_number(v).map(|_| ()).ok_or(ValueError::Number))?;
            Values::Numbers(raw.iter().filter_map(|v| parse_number(v)).collect())
        }
        DateEquals
        | DateNotEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => {
            each(&|v| parse_date(v).map(|_| ()).ok_or(ValueError::Date))?;
            Values::Dates(raw.iter().filter_map(|v| parse_date(v)).collect())
        }
        Bool | Null => {
            each(&|v| parse_bool(v).map(|_| ()).ok_or(ValueError::Bool))?;
            let bools = raw.iter().filter_map(|v| parse_bool(v)).collect();
            if op == Bool {
                Values::Bools(bools)
            } else {
                Values::Null(bools)
            }
        }
        BinaryEquals => {
            let mut out = Vec::with_capacity(raw.len());
            for (i, v) in raw.iter().enumerate() {
                out.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|_| err_at(i, ValueError::Base64))?,
                );
            }
            Values::Binary(out)
        }
        IpAddress | NotIpAddress => {
            each(&|v| Cidr::parse(v).map(|_| ()).ok_or(ValueError::Cidr))?;
            Values::Cidrs(raw.iter().filter_map(|v| Cidr::parse(v)).collect())
        }
        ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => {
            let mut out = Vec::with_capacity(raw.len());
            for (i, v) in raw.iter().enumerate() {
                let arn = ArnPattern::compile(v, variables)
                    .map_err(|e| err_at(i, e.into()))?
                    .ok_or(err_at(i, ValueError::Arn))?;
                out.push(arn);
            }
            Values::Arns(out)
        }
    })
}

fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    let ok = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    ok.then(|| t.parse::<f64>().ok())
        .flatten()
        .filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Whether one request value satisfies the positive form of `op` against
/// some policy value. `None`: a policy variable could not be resolved.
fn value_matches<'v>(
    op: BaseOp,
    values: &Values,
    v: &str,
    resolve: &impl Fn(&str) -> Option<&'v str>,
) -> Option<bool> {
    use BaseOp::*;
    let ignore_case = matches!(op, StringEqualsIgnoreCase | StringNotEqualsIgnoreCase);
    Some(match values {
        // A policy value whose variable has no value is null: it equals and
        // is like nothing, so only negated operators match it (IAM User
        // Guide, "Policy variables with no value").
        Values::Strings(ps) => ps
            .iter()
            .any(|p| p.matches(v, resolve, ignore_case) == Some(true)),
        Values::Arns(ps) => ps.iter().any(|p| p.matches(v, resolve) == Some(true)),
        Values::Numbers(ns) => {
            let Some(x) = parse_number(v) else {
                return Some(false);
            };
            ns.iter().any(|&n| match op {
                NumericEquals | NumericNotEquals => x == n,
                NumericLessThan => x < n,
                NumericLessThanEquals => x <= n,
                NumericGreaterThan => x > n,
                _ => x >= n,
            })
        }
        Values::Dates(ds) => {
            let Some(x) = parse_date(v) else {
                return Some(false);
            };
            ds.iter().any(|&d| match op {
                DateEquals | DateNotEquals => x == d,
                DateLessThan => x < d,
                DateLessThanEquals => x <= d,
                DateGreaterThan => x > d,
                _ => x >= d,
            })
        }
        Values::Bools(bs) => parse_bool(v).is_some_and(|x| bs.contains(&x)),
        Values::Binary(bs) => base64::engine::general_purpose::STANDARD
            .decode(v)
            .is_ok_and(|x| bs.contains(&x)),
        Values::Cidrs(cs) => IpAddr::from_str(v).is_ok_and(|ip| cs.iter().any(|c| c.contains(ip))),
        Values::Null(_) => false,
    })
}

/// Evaluates one operator on one key. `request` is the key's values (an
/// empty slice means absent). `None`: unresolvable policy variable.
pub fn evaluate<'v>(
    op: &Operator,
    values: &Values,
    request: &[String],
    resolve: &impl Fn(&str) -> Option<&'v str>,
) -> Option<bool> {
    if let Values::Null(expect_absent) = values {
        let absent = request.is_empty();
        return Some(expect_absent.contains(&absent));
    }
    let negated = op.base.is_negated();
    // Does this single request value satisfy the operator (negation applied)?
    let one =
        |v: &str| -> Option<bool> { Some(value_matches(op.base, values, v, resolve)? != negated) };
    match op.set {
        None => {
            if request.is_empty() {
                return Some(op.if_exists || negated);
            }
            if negated {
                // True only when no request value matches any policy value.
                for v in request {
                    if !one(v)? {
                        return Some(false);
                    }
                }
                Some(true)
            } else {
                for v in request {
                    if one(v)? {
                        return Some(true);
                    }
                }
                Some(false)
            }
        }
        Some(SetQualifier::ForAnyValue) => {
            if request.is_empty() {
                return Some(op.if_exists);
            }
            for v in request {
                if one(v)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some(SetQualifier::ForAllValues) => {
            for v in request {
                if !one(v)? {
                    return Some(false);
                }
            }
            Some(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let op = Operator::parse("ForAnyValue:StringLikeIfExists").unwrap();
        assert_eq!(op.base, BaseOp::StringLike);
        assert!(op.if_exists);
        assert_eq!(op.set, Some(SetQualifier::ForAnyValue));
        assert!(Operator::parse("StringEqual").is_none());
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAllValues:Null").is_none());
        assert_eq!(BaseOp::NumericLessThan.name(), "NumericLessThan");
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.200".parse().unwrap()));
        assert!(!c.contains("203.0.114.1".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:DB8:1234:5678::/64").unwrap();
        assert!(v6.contains("2001:db8:1234:5678::abcd".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date("2020-01-01"), Some(1_577_836_800_000));
        assert_eq!(parse_date("1577836800"), Some(1_577_836_800_000));
        assert_eq!(
            parse_date("2020-01-01T01:00:00+01:00"),
            Some(1_577_836_800_000)
        );
        assert_eq!(
            parse_date("2020-01-01T00:00:00.5Z"),
            Some(1_577_836_800_500)
        );
        assert_eq!(parse_date("2020-02-30"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("2020-01-01T25:00:00Z"), None);
    }
}
