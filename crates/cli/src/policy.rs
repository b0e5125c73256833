//! `latchkey policy validate|simulate`.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use latchkey_policy::{
    CompiledPolicy, Effect, Finding, PolicyKind, PolicySet, Request, analyze, catalog, parse,
};
use serde_json::json;

use crate::exit;
use crate::output::{OutputFormat, print_json};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check policy documents; exit 1 with path-precise findings when any is invalid.
    ///
    /// Also gives IAM Access Analyzer's kinds of findings (ERROR, SECURITY_WARNING, WARNING,
    /// SUGGESTION, each with an issue code and a JSON path): unknown actions, `*` on `*`,
    /// iam:PassRole on `*`, Allow with NotAction, open trust, resources of another service,
    /// conditions on keys none of a statement's actions carries, redundant actions and
    /// statements. ERROR findings make the exit code 1; warnings only with --strict.
    Validate(ValidateArgs),
    /// Decide actions on resources under a set of policies, like `aws iam simulate-custom-policy`.
    ///
    /// Exit code 0 whatever the decision; non-zero only for errors.
    Simulate(Box<SimulateArgs>),
    /// Write a least-privilege policy from what a user or role really did (IAM Access Analyzer's
    /// policy generation, from Latchkey's audit data): the actions, database users and tables
    /// used in the window, with the conditions and Denies of its current policies.
    Generate(Box<crate::advisor::GenerateArgs>),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    /// Identity policy, permissions boundary or session policy.
    Identity,
    /// Resource policy (needs Principal).
    Resource,
    /// Role trust policy (needs Principal).
    Trust,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Policy files; `-` reads standard input; `file://path` is accepted.
    #[arg(required = true)]
    files: Vec<String>,
    /// What kind of policy the files are.
    #[arg(long, value_enum, default_value = "identity")]
    kind: KindArg,
    /// Exit 1 on warnings too (Access Analyzer's WARNING and SECURITY_WARNING findings included).
    #[arg(long)]
    strict: bool,
    /// The account the policy is for: a trust policy's principals of other accounts are then
    /// checked for sts:ExternalId.
    #[arg(long)]
    account: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Identity policy files (repeatable).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// A resource policy file.
    #[arg(long)]
    resource_policy: Option<String>,
    /// A permissions boundary file.
    #[arg(long)]
    permissions_boundary: Option<String>,
    /// A session policy file (repeatable).
    #[arg(long = "session-policy")]
    session_policies: Vec<String>,
    /// Action to simulate, e.g. rds-db:connect (repeatable).
    #[arg(long = "action", required_unless_present = "sql")]
    actions: Vec<String>,
    /// A SQL statement (or several) to decide as statement policy would:
    /// each object it touches with its sql: action, on --db's ARNs, with
    /// its classification tags. Replaces --action and --resource.
    #[arg(long, requires = "db", conflicts_with_all = ["actions", "resources"])]
    sql: Option<String>,
    /// The registered database the SQL is for (with --sql).
    #[arg(long)]
    db: Option<String>,
    /// The database user (with --sql): `$user` in PostgreSQL's search_path.
    #[arg(long, default_value = "")]
    user: String,
    /// The database the client connects to (with --sql) [default: --db].
    #[arg(long)]
    database: Option<String>,
    /// PostgreSQL's search_path for unqualified names (with --sql).
    #[arg(long, default_value = "\"$user\", public")]
    search_path: String,
    /// MySQL's lower_case_table_names (with --sql): with 1 or 2, ARNs
    /// name tables and databases in lowercase, as the gateway does on
    /// such a server.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    lower_case_table_names: u8,
    #[command(flatten)]
    server: crate::config::ServerArgs,
    /// Resource ARN (repeatable) [default: *].
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Context key and values: KEY=VALUE[,VALUE...] (repeatable).
    #[arg(long = "context")]
    context: Vec<String>,
    /// The caller's ARN, for Principal matching in resource policies.
    #[arg(long)]
    caller_arn: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn run(cmd: PolicyCommand) -> Result<u8> {
    match cmd {
        PolicyCommand::Validate(args) => run_validate(&args),
        PolicyCommand::Simulate(args) => run_simulate(&args),
        PolicyCommand::Generate(args) => crate::advisor::generate(&args),
    }
}

/// Reads `-`, `file://path` or a path.
fn read_source(source: &str) -> Result<String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading a policy from standard input")?;
        return Ok(text);
    }
    let path = source.strip_prefix("file://").unwrap_or(source);
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

fn kind(k: KindArg) -> PolicyKind {
    match k {
        KindArg::Identity => PolicyKind::Identity,
        KindArg::Resource => PolicyKind::Resource,
        KindArg::Trust => PolicyKind::Trust,
    }
}

fn run_validate(args: &ValidateArgs) -> Result<u8> {
    let mut all_valid = true;
    let mut any_warning = false;
    let mut reports = Vec::new();
    let as_json = |list: &[Finding]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|f| json!({"path": f.path, "message": f.message}))
            .collect()
    };
    for file in &args.files {
        let text = read_source(file)?;
        let (findings, warnings) = match parse(&text, kind(args.kind)) {
            Ok(policy) => (Vec::new(), catalog::warnings_for_text(&text, &policy)),
            Err(findings) => (findings, Vec::new()),
        };
        // The parser's errors as Access Analyzer's, or its findings on a
        // valid policy.
        let analyzed = analyze::validate_text(
            &text,
            kind(args.kind),
            args.account.as_deref().unwrap_or(""),
        );
        all_valid &= findings.is_empty()
            && !analyzed
                .iter()
                .any(|f| f.finding_type == analyze::FindingType::Error);
        any_warning |= !warnings.is_empty()
            || analyzed.iter().any(|f| {
                matches!(
                    f.finding_type,
                    analyze::FindingType::Warning | analyze::FindingType::SecurityWarning
                )
            });
        match args.output {
            OutputFormat::Text => {
                if findings.is_empty() {
                    println!("{file}: valid");
                }
                for f in &findings {
                    println!("{file}: {f}");
                }
                for w in &warnings {
                    println!("{file}: warning: {w}");
                }
                // The condition-key warnings are printed just above, and
                // the parser's errors as findings.
                for f in analyzed
                    .iter()
                    .filter(|f| findings.is_empty() && f.issue_code != "UNREACHABLE_CONDITION")
                {
                    println!(
                        "{file}: {} {} {}: {}",
                        f.finding_type.as_str(),
                        f.issue_code,
                        f.path,
                        f.message
                    );
                }
            }
            OutputFormat::Json => reports.push(json!({
                "file": file,
                "valid": findings.is_empty(),
                "findings": as_json(&findings),
                "warnings": as_json(&warnings),
                // IAM Access Analyzer's ValidatePolicy findings, as its
                // API gives them.
                "analyzerFindings": analyze::aws_json(&text, &analyzed),
            })),
        }
    }
    if args.output == OutputFormat::Json {
        print_json(&json!({ "files": reports }))?;
    }
    Ok(if all_valid && !(args.strict && any_warning) {
        exit::OK
    } else {
        exit::FAILURE
    })
}

fn load(label: &str, source: &str, k: PolicyKind) -> Result<CompiledPolicy> {
    let text = read_source(source)?;
    match parse(&text, k) {
        Ok(policy) => Ok(CompiledPolicy::compile(label, &policy)),
        Err(findings) => {
            let list: Vec<String> = findings.iter().map(ToString::to_string).collect();
            bail!("{source} is not a valid policy:\n  {}", list.join("\n  "))
        }
    }
}

/// The requests statement policy would decide for `sql` on `--db`: one
/// per object and action, with the object's display name.
fn sql_requests(
    args: &SimulateArgs,
    sql: &str,
    base: &Request,
) -> Result<Vec<(Option<String>, String, Request)>> {
    use latchkey_gateway::statements::{
        ObjectTags, ServerCatalog, StatementTarget, parse_search_path,
    };
    use latchkey_sqlaccess::{Dialect, Scope};
    let config = args.server.resolve()?;
    let store = config.open_store()?;
    let name = args.db.as_deref().unwrap_or_default();
    let db = store.get_database(name)?;
    let tags = ObjectTags::of(name, &store.object_tags(Some(name))?);
    let dialect = match db.engine {
        latchkey_store::Engine::Postgres => Dialect::Postgres,
        latchkey_store::Engine::Mysql => Dialect::MySql,
    };
    let search_path = parse_search_path(&args.search_path)
        .into_iter()
        .map(|s| if s == "$user" { args.user.clone() } else { s })
        .filter(|s| !s.is_empty())
        .collect();
    let scope = Scope {
        database: Some(args.database.clone().unwrap_or_else(|| name.to_owned())),
        search_path,
        overloaded_functions: Vec::new(),
        attribute_functions: Vec::new(),
    };
    let target = StatementTarget::new(
        &config.region,
        store.account_id(),
        &db,
        std::sync::Arc::new(tags),
        std::sync::Arc::new(ServerCatalog {
            lower_case_table_names: args.lower_case_table_names != 0,
            ..ServerCatalog::default()
        }),
        None,
    );
    let classified = latchkey_sqlaccess::classify(sql, dialect, &scope);
    let fingerprint =
        latchkey_sqlnorm::fingerprint_hex(latchkey_sqlnorm::normalize(sql, dialect).fingerprint);
    Ok(classified
        .accesses
        .iter()
        .map(|access| {
            (
                Some(format!(
                    "{} {}",
                    access.object.kind.as_str(),
                    access.object.display_name()
                )),
                access.action.as_str().to_owned(),
                target.request(base, access, &fingerprint),
            )
        })
        .collect())
}

fn run_simulate(args: &SimulateArgs) -> Result<u8> {
    if args.policies.is_empty() && args.resource_policy.is_none() {
        bail!("give at least one --policy or a --resource-policy");
    }
    let mut set = PolicySet::default();
    for p in &args.policies {
        set.identity.push(load(p, p, PolicyKind::Identity)?.into());
    }
    if let Some(p) = &args.resource_policy {
        set.resource = Some(std::sync::Arc::new(load(p, p, PolicyKind::Resource)?));
    }
    if let Some(p) = &args.permissions_boundary {
        set.permissions_boundary = Some(load(p, p, PolicyKind::Identity)?);
    }
    for p in &args.session_policies {
        set.session.push(load(p, p, PolicyKind::Identity)?);
    }
    let mut context = Vec::new();
    for entry in &args.context {
        let (key, values) = entry
            .split_once('=')
            .with_context(|| format!("--context {entry:?} must be KEY=VALUE[,VALUE...]"))?;
        if key.is_empty() {
            bail!("--context {entry:?} has no key");
        }
        let values: Vec<&str> = if values.is_empty() {
            Vec::new()
        } else {
            values.split(',').collect()
        };
        context.push((key, values));
    }
    let resources = if args.resources.is_empty() {
        vec!["*".to_owned()]
    } else {
        args.resources.clone()
    };
    let mut base = Request::new("", "");
    if let Some(caller) = &args.caller_arn {
        base = base.with_caller(caller);
    }
    for (key, values) in &context {
        base.set_context(key, values.iter().copied());
    }
    let requests = match &args.sql {
        Some(sql) => sql_requests(args, sql, &base)?,
        None => args
            .actions
            .iter()
            .flat_map(|action| {
                resources.iter().map(|resource| {
                    let mut req = base.clone().with_action(action);
                    req.set_resource(resource);
                    (None, action.clone(), req)
                })
            })
            .collect(),
    };
    let mut results = Vec::new();
    for (object, action, req) in &requests {
        {
            let resource = req.resource();
            let e = set.explain(req);
            let statement = |s: &latchkey_policy::StatementRef| {
                json!({
                    "sourcePolicyId": s.policy,
                    "statement": s.statement,
                    "effect": if s.effect == Effect::Allow { "Allow" } else { "Deny" },
                })
            };
            results.push(json!({
                "action": action,
                "resource": resource,
                "object": object,
                "decision": e.decision.as_str(),
                "matchedStatements": e.matched.iter().map(statement).collect::<Vec<_>>(),
                "missingContextValues": e.missing_context_keys,
                "nearMisses": e.near_misses.iter().map(|n| json!({
                    "statement": statement(&n.statement),
                    "failedCondition": n.failed_condition,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    if results.is_empty() && args.output == OutputFormat::Text {
        println!("the statement touches no object: nothing to decide");
    }
    match args.output {
        OutputFormat::Json => print_json(&json!({ "results": results }))?,
        OutputFormat::Text => {
            for r in &results {
                println!(
                    "{}\t{}\t{}",
                    r["decision"].as_str().unwrap_or("?"),
                    r["action"].as_str().unwrap_or("?"),
                    r["resource"].as_str().unwrap_or("?")
                );
                if let Some(object) = r["object"].as_str() {
                    println!("  object  {object}");
                }
                for m in r["matchedStatements"].as_array().into_iter().flatten() {
                    println!(
                        "  matched  {} {} ({})",
                        m["sourcePolicyId"].as_str().unwrap_or(""),
                        m["statement"].as_str().unwrap_or(""),
                        m["effect"].as_str().unwrap_or("")
                    );
                }
                for n in r["nearMisses"].as_array().into_iter().flatten() {
                    println!(
                        "  near miss  {} {}: condition {} failed",
                        n["statement"]["sourcePolicyId"].as_str().unwrap_or(""),
                        n["statement"]["statement"].as_str().unwrap_or(""),
                        n["failedCondition"].as_str().unwrap_or("")
                    );
                }
                for k in r["missingContextValues"].as_array().into_iter().flatten() {
                    println!("  missing context  {}", k.as_str().unwrap_or(""));
                }
            }
        }
    }
    Ok(exit::OK)
}
