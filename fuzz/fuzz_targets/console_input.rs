//! What a browser sends the web console: form bodies and query strings,
//! path segments and `Cookie` headers. Parsers return a reason and never
//! panic; what a form holds survives its own query string; an encoded
//! segment decodes to itself; a cookie is found only when sent once.
#![no_main]

use latchkey_webform::{Form, cookie, decode_path, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(form) = Form::parse(rest) {
                let again = Form::parse(form.to_query().as_bytes()).expect("a query string parses");
                let kept: Vec<&(String, String)> =
                    form.pairs().iter().filter(|(_, v)| !v.is_empty()).collect();
                assert_eq!(again.pairs().iter().collect::<Vec<_>>(), kept);
            }
        }
        1 => {
            let text = String::from_utf8_lossy(rest);
            assert_eq!(decode_path(&encode(&text)).as_deref(), Ok(&*text));
            let _ = decode_path(&text);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            let (name, headers) = text.split_once('\0').unwrap_or(("s", &text));
            let headers: Vec<&str> = headers.split('\n').collect();
            if let Some(value) = cookie(headers.iter().copied(), name) {
                let sent = format!("{name}={value}");
                let times: usize = headers
                    .iter()
                    .flat_map(|h| h.split(';'))
                    .filter(|p| p.trim().split_once('=').is_some_and(|(k, _)| k == name))
                    .count();
                assert_eq!(times, 1, "{sent} found once");
                assert!(headers.iter().any(|h| h.contains(&sent)));
            }
        }
    }
});
