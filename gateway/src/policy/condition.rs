//! A statement's `Condition` block: its grammar, the request values it tests, and how it is
//! judged.
//!
//! `{"<qualifier>:<Operator><IfExists>": {"<key>": <value or list of values>}}`. Every test
//! of a block must hold (AND); any of a key's values may match (OR), as in IAM. What is
//! understood:
//!
//! - **Operators**: `String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike}`,
//!   `Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,GreaterThanEquals}`, the
//!   same six for `Date`, `Bool`, `IpAddress`, `NotIpAddress` and `Null`; any of them but
//!   `Null` with the `IfExists` suffix (holds when the request lacks the key); the set
//!   qualifiers `ForAnyValue:` and `ForAllValues:` for keys with several values.
//! - **Keys**: see [`key_type`]. Each has a type, and an operator of another type is refused
//!   (a string comparison of `aws:SourceIp` would never mean what its writer meant).
//!
//! A key the request does not carry makes the positive operators false and the negated ones
//! (`...NotEquals`, `StringNotLike`, `NotIpAddress`) true, as in IAM.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cidr::Block;
use super::document::PolicyError;
use super::pattern::matches;

fn bad(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// The values a request carries for the condition keys, by key name in lower case (the part
/// after `s3:ExistingObjectTag/` and `s3:RequestObjectTag/` keeps its case: tag keys are
/// case-sensitive). A key with no entry is absent from the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionValues(BTreeMap<String, Vec<String>>);

/// A request that carries no condition key at all.
pub static NO_VALUES: ConditionValues = ConditionValues(BTreeMap::new());

impl ConditionValues {
    /// Sets `key` (any case; see the type's doc) to the single value `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(canonical_key(key), vec![value.into()]);
    }

    /// Adds `value` to the values of `key` (for keys with several values).
    pub fn push(&mut self, key: &str, value: impl Into<String>) {
        self.0
            .entry(canonical_key(key))
            .or_default()
            .push(value.into());
    }

    /// The values of `key` (in canonical form), `None` when the request lacks it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.0.get(key).map(Vec::as_slice)
    }
}

/// The canonical name of a key: lower case, but for the tag key after a tag family's `/`.
fn canonical_key(key: &str) -> String {
    match key.split_once('/') {
        Some((family, tag)) => format!("{}/{tag}", family.to_ascii_lowercase()),
        None => key.to_ascii_lowercase(),
    }
}

/// What kind of value a key has, which decides the operators that may test it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Compared as text (`String...`).
    String,
    /// A number (`Numeric...`).
    Numeric,
    /// A time (`Date...`): ISO 8601 / RFC 3339, a date, or seconds since the epoch.
    Date,
    /// `true` or `false` (`Bool`).
    Bool,
    /// An address (`IpAddress`, `NotIpAddress`).
    Ip,
    /// An ARN (`Arn...`).
    Arn,
}

/// The keys this gateway supplies, with their types (`key` in canonical form); `None` for a
/// key it does not know, which a policy may then not use.
///
/// - `aws:SourceIp`: the address of the client's connection to the gateway (behind a proxy,
///   the proxy's). `aws:SecureTransport`: whether that connection is TLS (the gateway serves
///   plain HTTP, so `false`). `aws:Referer`, `aws:UserAgent`: those headers.
///   `aws:CurrentTime`, `aws:EpochTime`: the gateway's clock. `aws:username`, `aws:userid`:
///   the signer's access key (absent for anonymous requests). `aws:PrincipalType`:
///   `Anonymous`, `User` or `Account` (the root).
/// - `s3:prefix`, `s3:delimiter`, `s3:max-keys`: a listing's parameters (`s3:prefix` is
///   empty when a listing gives none). `s3:VersionId`: the `versionId` parameter.
/// - `s3:x-amz-*`: the request header of that name. `s3:object-lock-mode`,
///   `s3:object-lock-retain-until-date`, `s3:object-lock-legal-hold`: the
///   `x-amz-object-lock-*` headers. `s3:signatureversion`: `AWS4-HMAC-SHA256` or `AWS`
///   (SigV2). `s3:authType`: `REST-HEADER`, `REST-QUERY-STRING` (presigned) or `POST`.
/// - `s3:ExistingObjectTag/<tag>`: that tag of the object as stored (for the operations
///   AWS offers it on: reads, the tagging operations and the ACL ones); `s3:RequestObjectTag/<tag>`
///   and `s3:RequestObjectTagKeys`: the tags a request sets (`x-amz-tagging`, or
///   PutObjectTagging's body).
pub fn key_type(key: &str) -> Option<KeyType> {
    if let Some((family, tag)) = key.split_once('/') {
        return (matches!(family, "s3:existingobjecttag" | "s3:requestobjecttag")
            && !tag.is_empty())
        .then_some(KeyType::String);
    }
    Some(match key {
        // Only the requests of AWS services carry these (bucket logging's delivery, say);
        // no request to Cairn does, so a condition on them tests an absent key.
        "aws:sourcearn" => KeyType::Arn,
        "aws:sourceaccount" => KeyType::String,
        "aws:sourceip" => KeyType::Ip,
        "aws:securetransport" => KeyType::Bool,
        "aws:currenttime" | "s3:object-lock-retain-until-date" => KeyType::Date,
        "aws:epochtime" | "s3:max-keys" => KeyType::Numeric,
        "aws:referer"
        | "aws:useragent"
        | "aws:username"
        | "aws:userid"
        | "aws:principaltype"
        | "s3:prefix"
        | "s3:delimiter"
        | "s3:versionid"
        | "s3:signatureversion"
        | "s3:authtype"
        | "s3:requestobjecttagkeys"
        | "s3:object-lock-mode"
        | "s3:object-lock-legal-hold" => KeyType::String,
        header if header.starts_with("s3:x-amz-") && HEADER_KEYS.contains(&&header[3..]) => {
            KeyType::String
        }
        _ => return None,
    })
}

/// Request headers that are condition keys of their own name (`s3:<header>`).
pub const HEADER_KEYS: [&str; 13] = [
    "x-amz-acl",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-storage-class",
    "x-amz-content-sha256",
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

/// How a condition compares (the operator's name without `IfExists` and qualifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Equal to a value (case-sensitive).
    StringEquals,
    /// Equal to none of the values.
    StringNotEquals,
    /// Equal to a value, ignoring case.
    StringEqualsIgnoreCase,
    /// Equal to none of the values, ignoring case.
    StringNotEqualsIgnoreCase,
    /// Matches a wildcard pattern (`*`, `?`).
    StringLike,
    /// Matches none of the patterns.
    StringNotLike,
    /// `==` a number.
    NumericEquals,
    /// `!=` every number.
    NumericNotEquals,
    /// `<`.
    NumericLessThan,
    /// `<=`.
    NumericLessThanEquals,
    /// `>`.
    NumericGreaterThan,
    /// `>=`.
    NumericGreaterThanEquals,
    /// The same instant.
    DateEquals,
    /// Another instant than every value.
    DateNotEquals,
    /// Before.
    DateLessThan,
    /// Before or at.
    DateLessThanEquals,
    /// After.
    DateGreaterThan,
    /// At or after.
    DateGreaterThanEquals,
    /// `true` / `false`.
    Bool,
    /// In one of the address blocks.
    IpAddress,
    /// In none of the blocks.
    NotIpAddress,
    /// `true`: the request lacks the key; `false`: it has it.
    Null,
    /// The same ARN.
    ArnEquals,
    /// Another ARN than every value.
    ArnNotEquals,
    /// Matches an ARN pattern (`*`, `?`).
    ArnLike,
    /// Matches none of the ARN patterns.
    ArnNotLike,
}

impl Operator {
    fn parse(name: &str) -> Option<Self> {
        use Operator::*;
        Some(match name {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "DateEquals" => DateEquals,
            "DateNotEquals" => DateNotEquals,
            "DateLessThan" => DateLessThan,
            "DateLessThanEquals" => DateLessThanEquals,
            "DateGreaterThan" => DateGreaterThan,
            "DateGreaterThanEquals" => DateGreaterThanEquals,
            "Bool" => Bool,
            "IpAddress" => IpAddress,
            "NotIpAddress" => NotIpAddress,
            "Null" => Null,
            "ArnEquals" => ArnEquals,
            "ArnNotEquals" => ArnNotEquals,
            "ArnLike" => ArnLike,
            "ArnNotLike" => ArnNotLike,
            _ => return None,
        })
    }

    /// The type of key the operator compares; `None` for `Null`, which tests any key.
    fn key_type(self) -> Option<KeyType> {
        use Operator::*;
        Some(match self {
            StringEquals
            | StringNotEquals
            | StringEqualsIgnoreCase
            | StringNotEqualsIgnoreCase
            | StringLike
            | StringNotLike => KeyType::String,
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => KeyType::Numeric,
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => KeyType::Date,
            Bool => KeyType::Bool,
            IpAddress | NotIpAddress => KeyType::Ip,
            ArnEquals | ArnNotEquals | ArnLike | ArnNotLike => KeyType::Arn,
            Null => return None,
        })
    }

    /// Whether the operator holds when no value matches (the `Not` forms).
    fn is_negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }

    /// Whether the request's `actual` matches the policy's `expected`, in the positive form
    /// of the operator (a `Not` operator negates the outcome over all values).
    fn matches(self, actual: &str, expected: &str) -> bool {
        use Operator::*;
        match self {
            StringEquals | StringNotEquals | ArnEquals | ArnNotEquals => actual == expected,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                actual.to_lowercase() == expected.to_lowercase()
            }
            StringLike | StringNotLike | ArnLike | ArnNotLike => matches(expected, actual, false),
            NumericEquals | NumericNotEquals => {
                compare(number(actual), number(expected), |o| o.is_eq())
            }
            NumericLessThan => compare(number(actual), number(expected), |o| o.is_lt()),
            NumericLessThanEquals => compare(number(actual), number(expected), |o| o.is_le()),
            NumericGreaterThan => compare(number(actual), number(expected), |o| o.is_gt()),
            NumericGreaterThanEquals => compare(number(actual), number(expected), |o| o.is_ge()),
            DateEquals | DateNotEquals => compare(date(actual), date(expected), |o| o.is_eq()),
            DateLessThan => compare(date(actual), date(expected), |o| o.is_lt()),
            DateLessThanEquals => compare(date(actual), date(expected), |o| o.is_le()),
            DateGreaterThan => compare(date(actual), date(expected), |o| o.is_gt()),
            DateGreaterThanEquals => compare(date(actual), date(expected), |o| o.is_ge()),
            Bool => actual.eq_ignore_ascii_case(expected),
            IpAddress | NotIpAddress => match (actual.parse(), Block::parse(expected)) {
                (Ok(ip), Some(block)) => block.contains(ip),
                _ => false,
            },
            // Judged on presence, before any value is compared.
            Null => false,
        }
    }
}

/// `Some(ordering)` of two parsed values; a value that does not parse matches nothing.
fn compare<T: PartialOrd>(
    actual: Option<T>,
    expected: Option<T>,
    test: impl Fn(std::cmp::Ordering) -> bool,
) -> bool {
    match (actual, expected) {
        (Some(a), Some(e)) => a.partial_cmp(&e).is_some_and(test),
        _ => false,
    }
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A time as seconds since the epoch (with fractions): RFC 3339 (`2030-01-01T00:00:00Z`), a
/// date alone (`2030-01-01`, midnight UTC), or a number of seconds.
fn date(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos() as f64 / 1e9);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, day) {
        return Some(d.midnight().assume_utc().unix_timestamp() as f64);
    }
    number(s)
}

/// `ForAnyValue:` / `ForAllValues:`: how a key with several request values is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// Some request value satisfies the operator (false when there is none).
    ForAnyValue,
    /// Every request value does (true when there is none).
    ForAllValues,
}

/// One test of a `Condition` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// How the values are compared.
    pub operator: Operator,
    /// `...IfExists`: holds when the request lacks the key.
    pub if_exists: bool,
    /// `ForAnyValue:` / `ForAllValues:`, if given.
    pub qualifier: Option<SetQualifier>,
    /// The key, in canonical form (see [`ConditionValues`]).
    pub key: String,
    /// The policy's values (patterns for the `Like` operators).
    pub values: Vec<String>,
}

impl Condition {
    /// Whether the condition holds for a request carrying `request`.
    pub fn holds(&self, request: &ConditionValues) -> bool {
        let actual = request.get(&self.key).filter(|v| !v.is_empty());
        if self.operator == Operator::Null {
            let absent = actual.is_none();
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let Some(actual) = actual else {
            if self.if_exists {
                return true;
            }
            return match self.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.operator.is_negated(),
            };
        };
        // One request value against the policy's: any may match; a `Not` operator holds
        // when none does.
        let one = |a: &String| {
            let any = self.values.iter().any(|e| self.operator.matches(a, e));
            any != self.operator.is_negated()
        };
        match self.qualifier {
            Some(SetQualifier::ForAllValues) => actual.iter().all(one),
            Some(SetQualifier::ForAnyValue) => actual.iter().any(one),
            // A single-valued key (several values only arise for a multi-valued key used
            // without a qualifier): the positive form holds when some value matches.
            None if self.operator.is_negated() => actual.iter().all(one),
            None => actual.iter().any(one),
        }
    }
}

/// Parses a statement's `Condition` block.
/// `variables`: whether the policy's version substitutes policy variables (see
/// [`super::variables`]), which string operators' values may then hold.
pub fn parse_block(
    block: &Map<String, Value>,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::new();
    for (name, tests) in block {
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else {
            (None, name.as_str())
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let operator = Operator::parse(base)
            .filter(|op| !(if_exists && *op == Operator::Null))
            .ok_or_else(|| {
                bad(format!(
                    "condition operator {name:?} is not supported (String..., Numeric..., \
                     Date..., Arn..., Bool, IpAddress, NotIpAddress, each with IfExists, and \
                     Null; optionally ForAnyValue: or ForAllValues:)"
                ))
            })?;
        let Value::Object(tests) = tests else {
            return Err(bad(format!("condition {name}: expected an object of keys")));
        };
        for (key, values) in tests {
            let canonical = canonical_key(key);
            let Some(key_type) = key_type(&canonical) else {
                return Err(bad(format!(
                    "condition key {key:?} is not supported (aws:SourceIp, aws:SourceArn, \
                     aws:SourceAccount, aws:SecureTransport, \
                     aws:Referer, aws:UserAgent, aws:CurrentTime, aws:EpochTime, aws:username, \
                     aws:userid, aws:PrincipalType, s3:prefix, s3:delimiter, s3:max-keys, \
                     s3:VersionId, s3:x-amz-... headers, s3:object-lock-..., \
                     s3:signatureversion, s3:authType, s3:ExistingObjectTag/<tag>, \
                     s3:RequestObjectTag/<tag>, s3:RequestObjectTagKeys)"
                )));
            };
            // aws:EpochTime is a number that the Date operators also compare, as in IAM.
            let epoch_as_date =
                canonical == "aws:epochtime" && operator.key_type() == Some(KeyType::Date);
            if operator.key_type().is_some_and(|t| t != key_type) && !epoch_as_date {
                return Err(bad(format!(
                    "condition {name} cannot test {key:?}, a {key_type:?} key"
                )));
            }
            let values = values_of(values, name)?;
            for v in &values {
                check_value(operator, v, variables)
                    .map_err(|why| bad(format!("condition {name}: {why}")))?;
            }
            out.push(Condition {
                operator,
                if_exists,
                qualifier,
                key: canonical,
                values,
            });
        }
    }
    Ok(out)
}

/// A string, number or boolean, or a non-empty list of them, as strings (IAM accepts
/// `"NumericLessThan": {"s3:max-keys": 10}` and `"Bool": {"aws:SecureTransport": false}`).
fn values_of(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(bad(format!("{what}: {other} is not a string"))),
    };
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(one).collect(),
        Value::Array(_) => Err(bad(format!("{what}: an empty list of values"))),
        other => Ok(vec![one(other)?]),
    }
}

/// Refuses a policy value the operator could never compare, so that a typo is an error when
/// the policy is stored instead of a condition that silently never holds.
fn check_value(operator: Operator, v: &str, variables: bool) -> Result<(), String> {
    if operator.key_type() == Some(KeyType::String) {
        super::variables::check(v, variables)?;
    } else if v.contains("${") {
        return Err(format!(
            "{v:?}: policy variables (${{...}}) are only substituted in string conditions"
        ));
    }
    let ok = match operator.key_type() {
        Some(KeyType::Numeric) => number(v).is_some(),
        Some(KeyType::Date) => date(v).is_some(),
        Some(KeyType::Bool) | None => {
            v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
        }
        Some(KeyType::Ip) => Block::parse(v).is_some(),
        Some(KeyType::String) => true,
        Some(KeyType::Arn) => v.starts_with("arn:") || v.contains('*'),
    };
    if ok {
        Ok(())
    } else {
        let expected = match operator.key_type() {
            Some(KeyType::Numeric) => "a number",
            Some(KeyType::Date) => "a date (RFC 3339, YYYY-MM-DD or epoch seconds)",
            Some(KeyType::Ip) => "an IP address or CIDR block",
            Some(KeyType::Arn) => "an ARN",
            _ => "true or false",
        };
        Err(format!("{v:?} is not {expected}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(json: &str) -> Result<Vec<Condition>, PolicyError> {
        let Value::Object(map) = serde_json::from_str(json).expect("json") else {
            panic!("not an object");
        };
        parse_block(&map, true)
    }

    fn holds(json: &str, request: &[(&str, &str)]) -> bool {
        let conditions = block(json).expect(json);
        let mut values = ConditionValues::default();
        for (k, v) in request {
            values.push(k, *v);
        }
        conditions.iter().all(|c| c.holds(&values))
    }

    #[test]
    fn string_operators_and_missing_keys() {
        let eq = r#"{"StringEquals":{"s3:x-amz-acl":["private","bucket-owner-read"]}}"#;
        assert!(holds(eq, &[("s3:x-amz-acl", "private")]));
        assert!(!holds(eq, &[("s3:x-amz-acl", "Private")]));
        assert!(!holds(eq, &[]), "a positive operator needs the key");
        let ne = r#"{"StringNotEquals":{"s3:x-amz-acl":"public-read"}}"#;
        assert!(holds(ne, &[("s3:x-amz-acl", "private")]));
        assert!(!holds(ne, &[("s3:x-amz-acl", "public-read")]));
        assert!(holds(ne, &[]), "a negated operator holds without the key");
        let ic = r#"{"StringEqualsIgnoreCase":{"aws:UserAgent":"RCLONE"}}"#;
        assert!(holds(ic, &[("aws:useragent", "rclone")]));
        let like = r#"{"StringLikeIfExists":{"aws:Referer":"http://www.example.com/*"}}"#;
        assert!(holds(like, &[("aws:referer", "http://www.example.com/a")]));
        assert!(!holds(like, &[("aws:referer", "http://evil.com/")]));
        assert!(holds(like, &[]), "IfExists holds without the key");
        let not_like = r#"{"StringNotLike":{"s3:prefix":"private/*"}}"#;
        assert!(holds(not_like, &[("s3:prefix", "public/")]));
        assert!(!holds(not_like, &[("s3:prefix", "private/x")]));
    }

    #[test]
    fn every_key_of_a_block_must_hold() {
        let both = r#"{"StringEquals":{"s3:prefix":"a/","s3:delimiter":"/"}}"#;
        assert!(holds(both, &[("s3:prefix", "a/"), ("s3:delimiter", "/")]));
        assert!(!holds(both, &[("s3:prefix", "a/")]));
        let two_ops =
            r#"{"StringEquals":{"s3:prefix":"a/"},"NumericLessThanEquals":{"s3:max-keys":"10"}}"#;
        assert!(holds(
            two_ops,
            &[("s3:prefix", "a/"), ("s3:max-keys", "10")]
        ));
        assert!(!holds(
            two_ops,
            &[("s3:prefix", "a/"), ("s3:max-keys", "11")]
        ));
    }

    #[test]
    fn numeric_date_bool_and_ip() {
        let lt = r#"{"NumericLessThan":{"s3:max-keys":100}}"#;
        assert!(holds(lt, &[("s3:max-keys", "99")]));
        assert!(!holds(lt, &[("s3:max-keys", "100")]));
        assert!(
            !holds(lt, &[("s3:max-keys", "lots")]),
            "unparseable: no match"
        );
        let ne = r#"{"NumericNotEquals":{"s3:max-keys":["1","2"]}}"#;
        assert!(holds(ne, &[("s3:max-keys", "3")]));
        assert!(!holds(ne, &[("s3:max-keys", "2")]));
        let before = r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#;
        assert!(holds(
            before,
            &[("aws:currenttime", "2026-12-07T21:00:00Z")]
        ));
        assert!(!holds(
            before,
            &[("aws:currenttime", "2030-01-01T00:00:01Z")]
        ));
        let epoch = r#"{"DateGreaterThanEquals":{"aws:EpochTime":"2030-01-01"}}"#;
        assert!(holds(epoch, &[("aws:epochtime", "1893456000")]));
        assert!(!holds(epoch, &[("aws:epochtime", "1893455999")]));
        let tls = r#"{"Bool":{"aws:SecureTransport":false}}"#;
        assert!(holds(tls, &[("aws:securetransport", "false")]));
        assert!(!holds(tls, &[("aws:securetransport", "true")]));
        let ip = r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]}}"#;
        assert!(holds(ip, &[("aws:sourceip", "192.0.2.1")]));
        assert!(!holds(ip, &[("aws:sourceip", "10.1.1.1")]));
        assert!(!holds(ip, &[("aws:sourceip", "::1")]));
    }

    #[test]
    fn service_keys_are_never_carried() {
        let like = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::src*"}}"#;
        assert!(!holds(like, &[]));
        assert!(holds(like, &[("aws:sourcearn", "arn:aws:s3:::src1")]));
        let not = r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:s3:::src"}}"#;
        assert!(holds(not, &[]), "negated: holds without the key");
        let account = r#"{"StringEquals":{"aws:SourceAccount":"123"}}"#;
        assert!(!holds(account, &[]));
    }

    #[test]
    fn null_tests_presence() {
        let absent = r#"{"Null":{"s3:x-amz-server-side-encryption":"true"}}"#;
        assert!(holds(absent, &[]));
        assert!(!holds(
            absent,
            &[("s3:x-amz-server-side-encryption", "AES256")]
        ));
        let present = r#"{"Null":{"s3:x-amz-server-side-encryption":false}}"#;
        assert!(holds(
            present,
            &[("s3:x-amz-server-side-encryption", "AES256")]
        ));
        assert!(!holds(present, &[]));
    }

    #[test]
    fn tags_keep_their_case_and_sets_are_qualified() {
        let tag = r#"{"StringEquals":{"S3:ExistingObjectTag/Security":"public"}}"#;
        assert!(holds(tag, &[("s3:existingobjecttag/Security", "public")]));
        assert!(!holds(tag, &[("s3:existingobjecttag/security", "public")]));
        let all = r#"{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["a","b"]}}"#;
        assert!(holds(
            all,
            &[
                ("s3:requestobjecttagkeys", "a"),
                ("s3:requestobjecttagkeys", "b")
            ]
        ));
        assert!(!holds(
            all,
            &[
                ("s3:requestobjecttagkeys", "a"),
                ("s3:requestobjecttagkeys", "c")
            ]
        ));
        assert!(holds(all, &[]), "ForAllValues holds over no values");
        let any = r#"{"ForAnyValue:StringEquals":{"s3:RequestObjectTagKeys":"secret"}}"#;
        assert!(holds(
            any,
            &[
                ("s3:requestobjecttagkeys", "x"),
                ("s3:requestobjecttagkeys", "secret")
            ]
        ));
        assert!(!holds(any, &[("s3:requestobjecttagkeys", "x")]));
        assert!(!holds(any, &[]), "ForAnyValue needs a value");
        let any_if = r#"{"ForAnyValue:StringEqualsIfExists":{"s3:RequestObjectTagKeys":"secret"}}"#;
        assert!(
            holds(any_if, &[]),
            "IfExists holds without the key, qualified or not"
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused() {
        for (json, says) in [
            (r#"{"StringEquals":{"aws:SourceArn":"x"}}"#, "cannot test"),
            (r#"{"ArnLike":{"s3:prefix":"x"}}"#, "cannot test"),
            (r#"{"ArnLike":{"aws:SourceArn":"bucket"}}"#, "not an ARN"),
            (
                r#"{"BinaryEquals":{"aws:SourceArn":"eA=="}}"#,
                "BinaryEquals",
            ),
            (
                r#"{"StringEquals":{"aws:PrincipalOrgID":"o-1"}}"#,
                "aws:PrincipalOrgID",
            ),
            (r#"{"NullIfExists":{"s3:prefix":"true"}}"#, "NullIfExists"),
            (r#"{"IpAddress":{"s3:prefix":"a"}}"#, "cannot test"),
            (
                r#"{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}"#,
                "cannot test",
            ),
            (r#"{"StringEquals":{"s3:max-keys":"1"}}"#, "cannot test"),
            (
                r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/40"}}"#,
                "not an IP",
            ),
            (
                r#"{"NumericLessThan":{"s3:max-keys":"ten"}}"#,
                "not a number",
            ),
            (
                r#"{"DateLessThan":{"aws:CurrentTime":"soon"}}"#,
                "not a date",
            ),
            (r#"{"Bool":{"aws:SecureTransport":"yes"}}"#, "true or false"),
            (
                r#"{"StringLike":{"s3:prefix":"home/${aws:Referer}/*"}}"#,
                "not supported",
            ),
            (
                r#"{"NumericLessThan":{"s3:max-keys":"${aws:username}"}}"#,
                "string conditions",
            ),
            (
                r#"{"StringEquals":{"s3:ExistingObjectTag/":"x"}}"#,
                "not supported",
            ),
            (r#"{"StringEquals":{"s3:prefix":[]}}"#, "empty list"),
            (r#"{"StringEquals":"s3:prefix"}"#, "object of keys"),
        ] {
            let err = block(json).expect_err(json);
            assert!(err.0.contains(says), "{json}: {err}");
        }
    }
}
