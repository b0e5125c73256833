//! Anything a Parameter Store caller controls before a parameter is read
//! or written: names, selectors, paths, secret references, filters,
//! allowed patterns, labels and page tokens. Parsers return a reason and
//! never panic; what they accept prints back to itself.
#![no_main]

use latchkey_ssm::filter::{FilterUse, ParameterFilter};
use latchkey_ssm::name::secret_reference;
use latchkey_ssm::parameter::Label;
use latchkey_ssm::{AllowedPattern, ParameterName, ParameterPath, Selector, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => {
            if let Ok(name) = ParameterName::parse(&text) {
                assert_eq!(ParameterName::parse(name.as_str()).as_ref(), Ok(&name));
                let _ = name.check_writable();
                let _ = name.arn("us-east-1", "123456789012");
            }
            if let Ok(s) = Selector::parse(&text) {
                let back = format!("{}{}", s.name, s.suffix().unwrap_or_default());
                assert_eq!(Selector::parse(&back), Ok(s));
            }
            let _ = secret_reference(&text);
        }
        1 => {
            if let Ok(path) = ParameterPath::parse(&text)
                && let Ok(name) = ParameterName::parse(&format!("{}/x", path.as_str().trim_end_matches('/')))
            {
                assert!(path.holds(&name, true));
            }
        }
        2 => {
            let mut parts = text.split('\u{1}');
            let key = parts.next().unwrap_or_default();
            let option = parts.next();
            let values: Vec<String> = parts.map(str::to_owned).collect();
            for used in [FilterUse::DescribeParameters, FilterUse::GetParametersByPath] {
                let _ = ParameterFilter::parse(key, option, values.clone(), used);
            }
            let _ = ParameterFilter::parse_legacy(key, values);
        }
        3 => {
            // A pattern and a value, split at the first NUL.
            let (pattern, value) = text.split_once('\0').unwrap_or((&text, ""));
            // A refusal names the pattern, never the value (short values
            // may appear in the message's own words).
            if let Ok(p) = AllowedPattern::parse(pattern)
                && let Err(e) = p.check(value)
                && value.len() >= 8
            {
                assert!(!e.to_string().replace(p.as_str(), "").contains(value));
            }
            let _ = Label::parse(&text);
        }
        _ => {
            if let Ok(after) = token::decode(&text) {
                assert_eq!(token::decode(&token::encode(&after)), Ok(after));
            }
        }
    }
});
