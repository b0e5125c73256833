//! Classification suggestions from column names and types (`latchkey db
//! classify --suggest`): card numbers, e-mail addresses, phone numbers,
//! national ids, dates of birth and stored credentials. Suggestions are
//! only proposed: a person reviews them and imports them with
//! `--from-file`. Pure: the caller reads the columns.

/// A column as the database's catalogue lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// The type as `information_schema.columns.data_type` says.
    pub data_type: String,
}

/// One proposed tag, on a table (`column` empty) or a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub key: &'static str,
    pub value: &'static str,
    pub reason: String,
}

/// What a kind of data is called, how sensitive it is, and which column
/// names and types hold it.
struct Rule {
    pii: &'static str,
    classification: &'static str,
    /// Column names (lower case, `_` between words) or their words.
    names: &'static [&'static str],
    /// Type families that can hold it.
    types: &'static [TypeFamily],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TypeFamily {
    Text,
    Number,
    Date,
}

const RULES: &[Rule] = &[
    Rule {
        pii: "payment-card",
        classification: "restricted",
        names: &[
            "pan",
            "card_number",
            "cardnumber",
            "card_no",
            "cc_number",
            "ccnumber",
            "credit_card",
            "creditcard",
            "cc_num",
            "primary_account_number",
        ],
        types: &[TypeFamily::Text, TypeFamily::Number],
    },
    Rule {
        pii: "national-id",
        classification: "restricted",
        names: &[
            "ssn",
            "social_security",
            "social_security_number",
            "national_id",
            "national_insurance",
            "nino",
            "passport",
            "passport_number",
            "tax_id",
            "tin",
            "sin",
            "aadhaar",
            "nif",
            "personnummer",
            "bsn",
        ],
        types: &[TypeFamily::Text, TypeFamily::Number],
    },
    Rule {
        pii: "credential",
        classification: "restricted",
        names: &[
            "password",
            "passwd",
            "password_hash",
            "secret",
            "api_key",
            "apikey",
            "access_token",
            "refresh_token",
            "private_key",
        ],
        types: &[TypeFamily::Text],
    },
    Rule {
        pii: "email",
        classification: "confidential",
        names: &["email", "e_mail", "email_address", "mail"],
        types: &[TypeFamily::Text],
    },
    Rule {
        pii: "phone",
        classification: "confidential",
        names: &[
            "phone",
            "phone_number",
            "mobile",
            "telephone",
            "tel",
            "msisdn",
            "cell_phone",
        ],
        types: &[TypeFamily::Text, TypeFamily::Number],
    },
    Rule {
        pii: "date-of-birth",
        classification: "confidential",
        names: &[
            "dob",
            "date_of_birth",
            "birth_date",
            "birthdate",
            "birthday",
        ],
        types: &[TypeFamily::Date, TypeFamily::Text],
    },
];

fn family(data_type: &str) -> Option<TypeFamily> {
    let t = data_type.to_ascii_lowercase();
    if ["char", "text", "string", "citext", "varbinary", "blob"]
        .iter()
        .any(|k| t.contains(k))
    {
        Some(TypeFamily::Text)
    } else if ["int", "numeric", "decimal"].iter().any(|k| t.contains(k)) {
        Some(TypeFamily::Number)
    } else if t.contains("date") || t.contains("time") {
        Some(TypeFamily::Date)
    } else {
        None
    }
}

/// Whether a column name is one of `names`: whole, or as its last words
/// (`customer_email`, `billing_phone_number`), in snake or camel case.
fn name_matches(column: &str, names: &[&str]) -> bool {
    let mut snake = String::with_capacity(column.len() + 4);
    for (i, c) in column.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !snake.ends_with('_') {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    names.iter().any(|n| {
        snake == *n
            || snake
                .strip_suffix(n)
                .is_some_and(|head| head.ends_with('_'))
    })
}

/// Column tags (`pii`, `classification`) for every column a rule
/// recognises, and for each table holding one the most sensitive
/// `classification` of its columns (restricted over confidential).
pub fn suggest(columns: &[Column]) -> Vec<Suggestion> {
    let mut out: Vec<Suggestion> = Vec::new();
    for c in columns {
        let Some(family) = family(&c.data_type) else {
            continue;
        };
        let Some(rule) = RULES
            .iter()
            .find(|r| r.types.contains(&family) && name_matches(&c.name, r.names))
        else {
            continue;
        };
        let reason = format!(
            "column {} ({}) looks like {}",
            c.name, c.data_type, rule.pii
        );
        for (key, value) in [("pii", rule.pii), ("classification", rule.classification)] {
            out.push(Suggestion {
                schema: c.schema.clone(),
                table: c.table.clone(),
                column: c.name.clone(),
                key,
                value,
                reason: reason.clone(),
            });
        }
        match out
            .iter_mut()
            .find(|s| s.schema == c.schema && s.table == c.table && s.column.is_empty())
        {
            Some(table) if table.value == "restricted" => {}
            Some(table) => {
                table.value = rule.classification;
                table.reason = reason;
            }
            None => out.push(Suggestion {
                schema: c.schema.clone(),
                table: c.table.clone(),
                column: String::new(),
                key: "classification",
                value: rule.classification,
                reason,
            }),
        }
    }
    out.sort_by(|a, b| {
        (&a.schema, &a.table, &a.column, a.key).cmp(&(&b.schema, &b.table, &b.column, b.key))
    });
    out
}

/// The suggestions as the CSV `--from-file` reads, with the reasons as
/// comments, for a person to review before importing.
pub fn to_csv(suggestions: &[Suggestion]) -> String {
    let mut out = String::from(
        "# Suggested by latchkey db classify --suggest: review, delete what is wrong, then\n\
         # import with latchkey db classify --db NAME --from-file THIS_FILE\n\
         object,column,key,value\n",
    );
    for s in suggestions {
        out.push_str(&format!(
            "# {}\n{}.{},{},{},{}\n",
            s.reason, s.schema, s.table, s.column, s.key, s.value
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(table: &str, name: &str, data_type: &str) -> Column {
        Column {
            schema: "public".into(),
            table: table.into(),
            name: name.into(),
            data_type: data_type.into(),
        }
    }

    #[test]
    fn recognises_sensitive_columns_by_name_and_type() {
        let found = suggest(&[
            column("cards", "pan", "character varying"),
            column("customers", "customerEmail", "text"),
            column("customers", "billing_phone_number", "varchar"),
            column("customers", "ssn", "char"),
            column("customers", "dob", "date"),
            // Not by type: a boolean named email, a timestamp named pan.
            column("flags", "email", "boolean"),
            column("events", "pan", "timestamp with time zone"),
            // Not by name: a word that only contains one.
            column("orders", "company", "text"),
            column("orders", "tinted", "text"),
        ]);
        let tags: Vec<(String, String, &str, &str)> = found
            .iter()
            .map(|s| (s.table.clone(), s.column.clone(), s.key, s.value))
            .collect();
        assert!(tags.contains(&("cards".into(), "".into(), "classification", "restricted")));
        assert!(tags.contains(&("cards".into(), "pan".into(), "pii", "payment-card")));
        assert!(tags.contains(&("customers".into(), "customerEmail".into(), "pii", "email")));
        assert!(tags.contains(&(
            "customers".into(),
            "billing_phone_number".into(),
            "pii",
            "phone"
        )));
        // The table takes its most sensitive column's classification.
        assert!(tags.contains(&(
            "customers".into(),
            "".into(),
            "classification",
            "restricted"
        )));
        assert!(
            !found
                .iter()
                .any(|s| ["flags", "events", "orders"].contains(&s.table.as_str()))
        );
        let csv = to_csv(&found);
        assert!(
            csv.contains("\npublic.cards,pan,pii,payment-card\n"),
            "{csv}"
        );
        let reread = crate::db::parse_tag_file("shop", latchkey_store::ObjectKind::Table, &csv)
            .expect("the CSV imports");
        assert_eq!(reread.len(), found.len());
    }
}
