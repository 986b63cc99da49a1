//! The policy document: `{"Version", "Statement": [{"Sid", "Effect", "Principal", "Action" |
//! "NotAction", "Resource" | "NotResource", "Condition"}]}`, parsed and checked.
//!
//! `Action`, `Resource` and `Principal.AWS` take a string or a list of strings. Only `s3:`
//! actions and `arn:aws:s3:::` resources exist here. The conditions understood are those of
//! [`super::condition`]. Everything else is refused with a message that names it, so a policy
//! never means less than it says.

use serde_json::{Map, Value};

/// Why a policy document was refused (answered as `MalformedPolicy` for a bucket policy, as
/// an error of `cairn admin policy add` for a user policy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn bad(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// Where a policy is used, which decides what it may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user: applies to that user, so it names no `Principal`.
    User,
    /// The policy of this bucket: every statement names a `Principal`, and every resource lies
    /// inside the bucket.
    Bucket(String),
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants what the statement matches (unless a Deny matches too).
    Allow,
    /// Refuses what the statement matches, whatever allows it.
    Deny,
}

/// A list of wildcard patterns, or (`NotAction`, `NotResource`) everything but them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns {
    /// `NotAction` / `NotResource`: the statement matches what the patterns do not.
    pub negated: bool,
    /// The patterns (`*` and `?` wildcards).
    pub patterns: Vec<String>,
}

/// Who a bucket-policy statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous requests included.
    Anyone,
    /// Users, each named by its access key or `arn:aws:iam::<account>:user/<access key>`.
    Users(Vec<String>),
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    /// Bucket policies only.
    pub principal: Option<Principals>,
    /// `s3:` action patterns (matched without regard to case).
    pub actions: Patterns,
    /// ARN patterns.
    pub resources: Patterns,
    /// Every one must hold for the statement to apply.
    pub conditions: Vec<super::condition::Condition>,
    /// Whether a resource or condition value holds a policy variable (see
    /// [`Statement::for_request`]).
    pub has_variables: bool,
}

impl Statement {
    /// The statement with its policy variables replaced by the request's values. A variable
    /// the request lacks (no `aws:username` for an anonymous request) fails closed: an Allow
    /// does not apply (`None`); a Deny applies as if the variable matched anything, so a
    /// resource takes `*` for it and a condition that needs it holds (is dropped).
    pub fn for_request(&self, values: &super::ConditionValues) -> Option<Statement> {
        use super::variables::{expand, expand_or};
        let widen = self.effect == Effect::Deny;
        let mut patterns = Vec::with_capacity(self.resources.patterns.len());
        for r in &self.resources.patterns {
            patterns.push(match expand(r, values) {
                Some(r) => r.into_owned(),
                None if widen => expand_or(r, values, "*").into_owned(),
                None => return None,
            });
        }
        let mut conditions = Vec::with_capacity(self.conditions.len());
        for c in &self.conditions {
            let expanded = c
                .values
                .iter()
                .map(|v| expand(v, values).map(|v| v.into_owned()))
                .collect::<Option<Vec<_>>>();
            match expanded {
                Some(values) => conditions.push(super::condition::Condition {
                    values,
                    ..c.clone()
                }),
                None if widen => {}
                None => return None,
            }
        }
        Some(Statement {
            resources: Patterns {
                negated: self.resources.negated,
                patterns,
            },
            conditions,
            has_variables: false,
            ..self.clone()
        })
    }
}

/// A parsed, checked policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The statements, in document order (order does not matter to the outcome).
    pub statements: Vec<Statement>,
}

const S3_ARN: &str = "arn:aws:s3:::";

impl Policy {
    /// Parses and checks `json` as a policy of `kind`.
    pub fn parse(json: &str, kind: &PolicyKind) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| bad(format!("policy is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(bad("a policy is a JSON object"));
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(bad(format!("unknown policy element {key:?}")));
            }
        }
        match top.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(other) => {
                return Err(bad(format!(
                    "Version {other}: expected \"2012-10-17\" or \"2008-10-17\""
                )))
            }
        }
        let statements = match top.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect::<Vec<_>>(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => {
                return Err(bad(
                    "a policy needs a Statement (an object or a non-empty list)",
                ))
            }
        };
        // Policy variables are substituted in this version only (see `super::variables`).
        let variables = matches!(top.get("Version"), Some(Value::String(v)) if v == "2012-10-17");
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                statement(s, kind, variables)
                    .map_err(|e| bad(format!("Statement {}: {}", i + 1, e.0)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    /// Whether a condition tests `s3:ExistingObjectTag/...`, whose values cost a metadata
    /// read to find.
    pub fn tests_existing_object_tags(&self) -> bool {
        self.statements.iter().any(|s| {
            s.conditions
                .iter()
                .any(|c| c.key.starts_with("s3:existingobjecttag/"))
        })
    }

    /// Whether some statement allows anonymous access without conditions (what
    /// GetBucketPolicyStatus calls public).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.principal == Some(Principals::Anyone)
                && s.conditions.is_empty()
        })
    }
}

fn statement(value: &Value, kind: &PolicyKind, variables: bool) -> Result<Statement, PolicyError> {
    let Value::Object(s) = value else {
        return Err(bad("a statement is a JSON object"));
    };
    for key in s.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Principal" | "Action" | "NotAction" | "Resource"
            | "NotResource" | "Condition" => {}
            "NotPrincipal" => return Err(bad("NotPrincipal is not supported")),
            other => return Err(bad(format!("unknown statement element {other:?}"))),
        }
    }
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(bad(format!(
                "Effect {other}: expected \"Allow\" or \"Deny\""
            )))
        }
        None => return Err(bad("Effect is missing")),
    };
    let principal = match (kind, s.get("Principal")) {
        (PolicyKind::User, None) => None,
        (PolicyKind::User, Some(_)) => {
            return Err(bad(
                "a user policy names no Principal (it applies to its users)",
            ))
        }
        (PolicyKind::Bucket(_), None) => {
            return Err(bad("a bucket policy statement needs a Principal"))
        }
        (PolicyKind::Bucket(_), Some(p)) => Some(principals(p)?),
    };
    let actions = one_of(s, "Action", "NotAction")?;
    for a in &actions.patterns {
        let lower = a.to_ascii_lowercase();
        if a != "*" && !lower.starts_with("s3:") {
            return Err(bad(format!("action {a:?}: only s3: actions are supported")));
        }
    }
    let resources = one_of(s, "Resource", "NotResource")?;
    for r in &resources.patterns {
        check_resource(r, kind)?;
        super::variables::check(r, variables).map_err(bad)?;
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(block)) => super::condition::parse_block(block, variables)?,
        Some(_) => return Err(bad("Condition is a JSON object")),
    };
    let has_variables = resources.patterns.iter().any(|r| r.contains("${"))
        || conditions
            .iter()
            .any(|c| c.values.iter().any(|v| v.contains("${")));
    Ok(Statement {
        effect,
        principal,
        actions,
        resources,
        conditions,
        has_variables,
    })
}

/// A string or a non-empty list of strings.
fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(format!("{what}: {other} is not a string"))),
            })
            .collect(),
        other => Err(bad(format!(
            "{what}: {other} is not a string or a list of strings"
        ))),
    }
}

fn one_of(s: &Map<String, Value>, plain: &str, not: &str) -> Result<Patterns, PolicyError> {
    match (s.get(plain), s.get(not)) {
        (Some(v), None) => Ok(Patterns {
            negated: false,
            patterns: strings(v, plain)?,
        }),
        (None, Some(v)) => Ok(Patterns {
            negated: true,
            patterns: strings(v, not)?,
        }),
        _ => Err(bad(format!(
            "a statement needs exactly one of {plain} and {not}"
        ))),
    }
}

fn principals(value: &Value) -> Result<Principals, PolicyError> {
    let list = match value {
        Value::String(s) if s == "*" => return Ok(Principals::Anyone),
        Value::Object(map) => {
            if let Some(other) = map
                .keys()
                .find(|k| !matches!(k.as_str(), "AWS" | "Service"))
            {
                return Err(bad(format!(
                    "Principal {other:?} is not supported (AWS and Service)"
                )));
            }
            // A service principal (`{"Service": "logging.s3.amazonaws.com"}`) is accepted and
            // matches no request: no AWS service signs requests to Cairn.
            if let Some(v) = map.get("Service") {
                strings(v, "Principal.Service")?;
            }
            match map.get("AWS") {
                Some(v) => strings(v, "Principal.AWS")?,
                None if map.contains_key("Service") => Vec::new(),
                None => return Err(bad("Principal needs AWS or Service")),
            }
        }
        other => {
            return Err(bad(format!(
                "Principal {other}: expected \"*\" or {{\"AWS\": ...}}"
            )))
        }
    };
    if list.iter().any(|p| p == "*") {
        return Ok(Principals::Anyone);
    }
    for p in &list {
        let name = p
            .strip_prefix("arn:aws:iam::")
            .and_then(|rest| rest.split_once(":user/"))
            .map_or(p.as_str(), |(_, user)| user);
        if !cairn_proto::iam::valid_access_key(name) {
            return Err(bad(format!(
                "Principal {p:?}: expected \"*\", an access key or arn:aws:iam::<account>:user/<access key>"
            )));
        }
    }
    Ok(Principals::Users(list))
}

fn check_resource(r: &str, kind: &PolicyKind) -> Result<(), PolicyError> {
    match kind {
        PolicyKind::User => {
            if r != "*" && !r.starts_with(S3_ARN) {
                return Err(bad(format!(
                    "resource {r:?}: expected arn:aws:s3:::... or \"*\""
                )));
            }
        }
        PolicyKind::Bucket(bucket) => {
            let inside = r
                .strip_prefix(S3_ARN)
                .and_then(|rest| rest.strip_prefix(bucket.as_str()))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if !inside {
                return Err(bad(format!(
                    "Policy has invalid resource: {r:?} is not arn:aws:s3:::{bucket} or inside it"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse(json, &PolicyKind::User)
    }

    fn bucket(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse(json, &PolicyKind::Bucket("b".into()))
    }

    #[test]
    fn strings_or_lists_and_one_statement_or_many() {
        let p = user(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        )
        .unwrap();
        assert_eq!(p.statements.len(), 1);
        assert_eq!(p.statements[0].actions.patterns, vec!["s3:GetObject"]);
        let p = user(
            r#"{"Statement":[{"Effect":"Deny","NotAction":["s3:Get*","s3:List*"],"NotResource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#,
        )
        .unwrap();
        assert!(p.statements[0].actions.negated && p.statements[0].resources.negated);
        assert_eq!(p.statements[0].effect, Effect::Deny);
    }

    #[test]
    fn what_is_refused_is_named() {
        for (json, says) in [
            ("not json", "not valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "Statement"),
            (r#"{"Version":"2020-01-01","Statement":{}}"#, "Version"),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"s3:*","Resource":"*"}}"#,
                "Effect",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","NotResource":"*"}}"#,
                "exactly one",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}"#,
                "only s3:",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:sqs:::q"}}"#,
                "resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Principal":"*"}}"#,
                "no Principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"BinaryEquals":{"s3:prefix":"eA=="}}}}"#,
                "BinaryEquals",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"s3:prefix":"a"}}}}"#,
                "cannot test",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}}}"#,
                "cannot test",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/40"}}}}"#,
                "not an IP",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"s3:max-keys":"1"}}}}"#,
                "cannot test",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
                "2012-10-17",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Whatever":1}}"#,
                "Whatever",
            ),
        ] {
            let err = user(json).expect_err(json);
            assert!(err.0.contains(says), "{json}: {err}");
        }
    }

    #[test]
    fn bucket_policies_need_a_principal_and_stay_in_their_bucket() {
        let ok = bucket(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"}]}"#,
        )
        .unwrap();
        assert_eq!(ok.statements[0].principal, Some(Principals::Anyone));
        assert!(ok.is_public());
        for (json, says) in [
            (
                r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}}"#,
                "Principal",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::other/*"}}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::bb"}}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
                "Federated",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","NotPrincipal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b"}}"#,
                "NotPrincipal",
            ),
        ] {
            let err = bucket(json).expect_err(json);
            assert!(err.0.contains(says), "{json}: {err}");
        }
        let conditional = bucket(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":"pub/*"}}}}"#,
        )
        .unwrap();
        assert!(!conditional.is_public());
    }
}
