//! `latchkey sts ...` and `latchkey iam ...`: thin clients of the token
//! service with the AWS CLI's operation and option names
//! (`latchkey iam create-user --user-name alice`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use latchkey_awsconfig::{Environment, resolve_credentials, resolve_region};
use latchkey_client::{ClientError, Endpoint, form, interpret, send, signed_post, tls_connector};
use serde_json::Value;

use crate::exit;
use crate::output::{OutputFormat, now_or, print_json};

/// An operation and its options, as with the AWS CLI.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// The operation in the AWS CLI's spelling, e.g. get-caller-identity or create-user.
    operation: String,
    /// Its options, e.g. --user-name alice. Documents accept file://path.
    /// Lists: --tags Key=k,Value=v ... and --policy-arns ARN ...
    /// Also: --endpoint-url URL [env AWS_ENDPOINT_URL, default https://localhost:7443],
    /// --ca-bundle FILE [env AWS_CA_BUNDLE, default ./latchkey-data/ca.pem],
    /// --profile P, --region R, --output json|text.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    options: Vec<String>,
}

/// `create-virtual-mfa-device` -> `CreateVirtualMFADevice`.
fn pascal(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| match w {
            "mfa" => "MFA".to_owned(),
            w => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect()
}

struct Parsed {
    params: Vec<(String, String)>,
    endpoint: Option<String>,
    ca_bundle: Option<PathBuf>,
    profile: Option<String>,
    region: Option<String>,
    output: OutputFormat,
}

fn value_of(raw: &str) -> Result<String> {
    match raw.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}")),
        None => Ok(raw.to_owned()),
    }
}

fn parse_options(options: &[String]) -> Result<Parsed> {
    let mut p = Parsed {
        params: Vec::new(),
        endpoint: None,
        ca_bundle: None,
        profile: None,
        region: None,
        output: OutputFormat::Json,
    };
    let mut i = 0;
    while i < options.len() {
        let Some(name) = options[i].strip_prefix("--") else {
            bail!(
                "unexpected argument {:?}: options look like --user-name alice",
                options[i]
            );
        };
        // Collect the values up to the next option.
        let mut values = Vec::new();
        i += 1;
        while i < options.len() && !options[i].starts_with("--") {
            values.push(options[i].as_str());
            i += 1;
        }
        let one = || -> Result<&str> {
            match values.as_slice() {
                [v] => Ok(v),
                _ => bail!("--{name} takes exactly one value"),
            }
        };
        match name {
            "endpoint-url" => p.endpoint = Some(one()?.to_owned()),
            "ca-bundle" => p.ca_bundle = Some(one()?.into()),
            "profile" => p.profile = Some(one()?.to_owned()),
            "region" => p.region = Some(one()?.to_owned()),
            "output" => {
                p.output = match one()? {
                    "json" => OutputFormat::Json,
                    "text" => OutputFormat::Text,
                    other => bail!("--output {other}: use json or text"),
                }
            }
            "tags" => {
                for (n, tag) in values.iter().enumerate() {
                    let mut key = None;
                    let mut value = String::new();
                    for part in tag.split(',') {
                        match part.split_once('=') {
                            Some(("Key", k)) => key = Some(k.to_owned()),
                            Some(("Value", v)) => value = v.to_owned(),
                            _ => bail!("--tags expects Key=k,Value=v"),
                        }
                    }
                    let key = key.context("--tags expects Key=k,Value=v")?;
                    p.params.push((format!("Tags.member.{}.Key", n + 1), key));
                    p.params
                        .push((format!("Tags.member.{}.Value", n + 1), value));
                }
            }
            "policy-arns" => {
                for (n, arn) in values.iter().enumerate() {
                    let arn = arn.strip_prefix("arn=").unwrap_or(arn);
                    p.params.push((
                        format!("PolicyArns.member.{}.arn", n + 1),
                        (*arn).to_owned(),
                    ));
                }
            }
            _ => p.params.push((pascal(name), value_of(one()?)?)),
        }
    }
    Ok(p)
}

fn print_text(v: &Value) {
    match v {
        Value::Object(map) => {
            let scalars: Vec<String> = map
                .values()
                .filter(|v| !v.is_object() && !v.is_array())
                .map(text_of)
                .collect();
            if !scalars.is_empty() {
                println!("{}", scalars.join("\t"));
            }
            map.values()
                .filter(|v| v.is_object() || v.is_array())
                .for_each(print_text);
        }
        Value::Array(items) => items.iter().for_each(print_text),
        other => println!("{}", text_of(other)),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn run(service: &str, args: &ApiArgs) -> Result<u8> {
    let p = parse_options(&args.options)?;
    let env = Environment::from_process();
    let credentials = resolve_credentials(&env, p.profile.as_deref())?.credentials;
    let region = resolve_region(&env, p.region.as_deref(), p.profile.as_deref())
        .unwrap_or_else(|_| "us-east-1".into());
    let endpoint_url = p
        .endpoint
        .clone()
        .or_else(|| env.var("AWS_ENDPOINT_URL").map(str::to_owned))
        .unwrap_or_else(|| "https://localhost:7443".into());
    let endpoint = Endpoint::parse(&endpoint_url)?;
    let ca = p
        .ca_bundle
        .clone()
        .or_else(|| env.var("AWS_CA_BUNDLE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("latchkey-data/ca.pem"));
    let tls = tls_connector(&ca)?;
    let action = pascal(&args.operation);
    let version = if service == "sts" {
        "2011-06-15"
    } else {
        "2010-05-08"
    };
    let request = signed_post(
        &endpoint,
        service,
        &region,
        form(&action, version, &p.params),
        &credentials,
        now_or(None)?,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(send(&tls, &endpoint, request))?;
    match interpret(&action, status, &body) {
        Ok(value) => {
            match p.output {
                OutputFormat::Json if !value.is_null() => print_json(&value)?,
                OutputFormat::Json => {}
                OutputFormat::Text => print_text(&value),
            }
            Ok(exit::OK)
        }
        Err(e @ ClientError::Service { .. }) => {
            eprintln!("{e}");
            Ok(exit::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_aws_cli() {
        assert_eq!(
            pascal("create-virtual-mfa-device"),
            "CreateVirtualMFADevice"
        );
        assert_eq!(pascal("get-caller-identity"), "GetCallerIdentity");
        assert_eq!(pascal("authentication-code1"), "AuthenticationCode1");
        let opts: Vec<String> = [
            "--user-name",
            "alice",
            "--tags",
            "Key=a,Value=b",
            "Key=c,Value=d",
            "--output",
            "text",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let p = parse_options(&opts).unwrap();
        assert_eq!(p.params[0], ("UserName".into(), "alice".into()));
        assert_eq!(p.params[3], ("Tags.member.2.Key".into(), "c".into()));
        assert_eq!(p.output, OutputFormat::Text);
        assert!(parse_options(&["alice".to_owned()]).is_err());
        assert!(parse_options(&["--user-name".to_owned()]).is_err());
    }
}
