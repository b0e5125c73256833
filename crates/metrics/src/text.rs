//! The text exposition format's small pieces: name grammar, escaping,
//! numbers, sample lines.

use std::fmt::Write as _;

use crate::MetricsError;

/// The `# TYPE` of a metric. Public only to name in the sealed trait:
/// unreachable from outside the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub(crate) fn check_metric_name(name: &str) -> Result<(), MetricsError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        Ok(())
    } else {
        Err(MetricsError::InvalidMetricName(name.to_owned()))
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, and not `__...` (reserved for Prometheus's
/// own use).
pub(crate) fn check_label_name(name: &str) -> Result<(), MetricsError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') && !name.starts_with("__")
    {
        Ok(())
    } else {
        Err(MetricsError::InvalidLabelName(name.to_owned()))
    }
}

/// Label names for a family: each valid, none twice, and no `le` when the
/// family holds histograms (whose buckets use it).
pub(crate) fn check_label_names(names: &[&str], histogram: bool) -> Result<(), MetricsError> {
    for (i, name) in names.iter().enumerate() {
        check_label_name(name)?;
        if histogram && *name == "le" {
            return Err(MetricsError::ReservedLabelName);
        }
        if names[..i].contains(name) {
            return Err(MetricsError::DuplicateLabelName((*name).to_owned()));
        }
    }
    Ok(())
}

/// HELP text: `\` and newline escaped.
pub(crate) fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A label value: `\`, `"` and newline escaped.
pub(crate) fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as Prometheus reads it: `+Inf`, `-Inf`, `NaN`, otherwise the
/// shortest decimal that reads back as the same `f64`.
pub(crate) fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{v}");
    }
}

/// A sample's value.
pub(crate) enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// One sample line: `name{labels,extra} value\n`, without braces when
/// there are no labels. `extra` is a histogram's `le`, after the others.
pub(crate) fn push_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    extra: Option<(&str, &str)>,
    value: Value,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(extra) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            push_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    // Writing to a String cannot fail.
    match value {
        Value::U64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::I64(v) => {
            let _ = write!(out, "{v}");
        }
        Value::F64(v) => push_f64(out, v),
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_grammar() {
        for ok in ["a", "_", ":", "latchkey_tx_total", "a:b_c9", "A1", "_9:"] {
            assert_eq!(check_metric_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "9a", "a-b", "a b", "a.b", "é", "a\n", "{a}", "a\"b"] {
            assert_eq!(
                check_metric_name(bad),
                Err(MetricsError::InvalidMetricName(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn label_names_follow_the_grammar() {
        for ok in ["a", "_", "outcome", "a_9", "_a", "A"] {
            assert_eq!(check_label_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "", "9a", "a:b", ":", "__", "__name__", "__a", "a-b", "a b", "ü",
        ] {
            assert_eq!(
                check_label_name(bad),
                Err(MetricsError::InvalidLabelName(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn label_name_lists_reject_duplicates_and_le_on_histograms() {
        assert_eq!(check_label_names(&["a", "b"], true), Ok(()));
        assert_eq!(check_label_names(&["le"], false), Ok(()));
        assert_eq!(
            check_label_names(&["a", "le"], true),
            Err(MetricsError::ReservedLabelName)
        );
        assert_eq!(
            check_label_names(&["a", "b", "a"], false),
            Err(MetricsError::DuplicateLabelName("a".to_owned()))
        );
        assert_eq!(
            check_label_names(&["a", "__b"], false),
            Err(MetricsError::InvalidLabelName("__b".to_owned()))
        );
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        assert_eq!(
            escape_help("a\\b\nc \"q\"\ttab"),
            "a\\\\b\\nc \"q\"\ttab".to_owned()
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut out = String::new();
        push_label_value(&mut out, "C:\\dir\n\"x\" é,}=");
        assert_eq!(out, "C:\\\\dir\\n\\\"x\\\" é,}=");
    }

    #[test]
    fn floats_read_back_exactly() {
        for (v, want) in [
            (1.0, "1"),
            (0.00001, "0.00001"),
            (2.5, "2.5"),
            (-0.25, "-0.25"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            let mut out = String::new();
            push_f64(&mut out, v);
            assert_eq!(out, want);
        }
        for v in [0.1 + 0.2, 1e-9, 123_456.789_012_345, 1e300, 5e-324] {
            let mut out = String::new();
            push_f64(&mut out, v);
            assert_eq!(out.parse::<f64>(), Ok(v), "{out}");
        }
    }

    #[test]
    fn sample_lines() {
        let mut out = String::new();
        push_sample(&mut out, "m", "", &[], None, Value::U64(u64::MAX));
        push_sample(&mut out, "m", "_x", &[("a", "1\"")], None, Value::I64(-3));
        push_sample(
            &mut out,
            "h",
            "_bucket",
            &[("a", "x"), ("b", "y")],
            Some(("le", "+Inf")),
            Value::F64(0.5),
        );
        push_sample(
            &mut out,
            "h",
            "_bucket",
            &[],
            Some(("le", "1")),
            Value::U64(2),
        );
        assert_eq!(
            out,
            "m 18446744073709551615\n\
             m_x{a=\"1\\\"\"} -3\n\
             h_bucket{a=\"x\",b=\"y\",le=\"+Inf\"} 0.5\n\
             h_bucket{le=\"1\"} 2\n"
        );
    }
}
