//! Deciding a request against policies: an explicit Deny wins, then an Allow, else the
//! request is implicitly denied.

use super::condition::ConditionValues;
use super::document::{Effect, Patterns, Policy, Principals};
use super::pattern::matches;

/// What a request is, as the policies see it.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The IAM action, e.g. `s3:GetObject` (see [`super::action`]).
    pub action: &'a str,
    /// The resource ARN: `arn:aws:s3:::bucket`, `arn:aws:s3:::bucket/key`, or
    /// `arn:aws:s3:::*` for ListAllMyBuckets.
    pub resource: &'a str,
    /// The caller's access key; `None` for an anonymous (unsigned) request.
    pub principal: Option<&'a str>,
    /// The values of the condition keys the request carries.
    pub values: &'a ConditionValues,
}

/// The outcome of one policy, or of several combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows the request and none denies it.
    Allow,
    /// A statement denies the request explicitly: nothing else can allow it.
    Deny,
    /// No statement applies (an implicit deny, unless another policy allows).
    NotApplicable,
}

impl Decision {
    /// Combines the outcomes of several policies: Deny wins over Allow, Allow over nothing.
    pub fn combine(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
            (Decision::Allow, _) | (_, Decision::Allow) => Decision::Allow,
            _ => Decision::NotApplicable,
        }
    }

    /// Whether the request may proceed.
    pub fn allowed(self) -> bool {
        self == Decision::Allow
    }
}

impl Policy {
    /// This policy's decision on `cx`. A user policy's statements name no principal and apply
    /// to whoever the policy is attached to; a bucket policy's apply to the principals they
    /// name.
    pub fn evaluate(&self, cx: &RequestContext<'_>) -> Decision {
        let mut decision = Decision::NotApplicable;
        for s in &self.statements {
            let expanded;
            let s = if s.has_variables {
                // `None`: an Allow with a variable the request cannot fill (fails closed).
                let Some(e) = s.for_request(cx.values) else {
                    continue;
                };
                expanded = e;
                &expanded
            } else {
                s
            };
            let applies = principal_matches(s.principal.as_ref(), cx.principal)
                && patterns_match(&s.actions, cx.action, true)
                && patterns_match(&s.resources, cx.resource, false)
                && s.conditions.iter().all(|c| c.holds(cx.values));
            if applies {
                match s.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }
}

fn patterns_match(p: &Patterns, value: &str, fold_case: bool) -> bool {
    let any = p.patterns.iter().any(|pat| matches(pat, value, fold_case));
    any != p.negated
}

/// `None` (a user policy) applies to its user. A named user is its access key, alone or as
/// the last part of `arn:aws:iam::<account>:user/<access key>`; only `*` covers anonymous
/// requests.
fn principal_matches(principal: Option<&Principals>, caller: Option<&str>) -> bool {
    match (principal, caller) {
        (None, _) | (Some(Principals::Anyone), _) => true,
        (Some(Principals::Users(_)), None) => false,
        (Some(Principals::Users(list)), Some(key)) => list.iter().any(|p| {
            let name = p
                .strip_prefix("arn:aws:iam::")
                .and_then(|rest| rest.split_once(":user/"))
                .map_or(p.as_str(), |(_, user)| user);
            name == key
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::canned;
    use crate::policy::document::PolicyKind;

    fn user(json: &str) -> Policy {
        Policy::parse(json, &PolicyKind::User).expect("policy parses")
    }

    fn cx<'a>(action: &'a str, resource: &'a str) -> RequestContext<'a> {
        RequestContext {
            action,
            resource,
            principal: Some("alice"),
            values: &crate::policy::NO_VALUES,
        }
    }

    /// `p`'s decision on `cx` carrying the condition key `key` with `value` (if any).
    fn with(p: &Policy, cx: RequestContext<'_>, key: &str, value: Option<&str>) -> Decision {
        let mut values = ConditionValues::default();
        if let Some(v) = value {
            values.set(key, v);
        }
        p.evaluate(&RequestContext {
            values: &values,
            ..cx
        })
    }

    #[test]
    fn explicit_deny_overrides_allow_and_nothing_is_implicit_deny() {
        let p = user(
            r#"{"Statement":[
                {"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/keep/*"}]}"#,
        );
        assert_eq!(
            p.evaluate(&cx("s3:GetObject", "arn:aws:s3:::b/x")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx("s3:DeleteObject", "arn:aws:s3:::b/x")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx("s3:DeleteObject", "arn:aws:s3:::b/keep/x")),
            Decision::Deny
        );
        // The bucket itself is not b/*.
        assert_eq!(
            p.evaluate(&cx("s3:ListBucket", "arn:aws:s3:::b")),
            Decision::NotApplicable
        );
        assert_eq!(
            p.evaluate(&cx("s3:GetObject", "arn:aws:s3:::other/x")),
            Decision::NotApplicable
        );
        // Across policies too: a Deny in one beats an Allow in another.
        let allow_all = canned::policy("readwrite").expect("canned");
        let d = allow_all
            .evaluate(&cx("s3:DeleteObject", "arn:aws:s3:::b/keep/x"))
            .combine(p.evaluate(&cx("s3:DeleteObject", "arn:aws:s3:::b/keep/x")));
        assert_eq!(d, Decision::Deny);
        assert_eq!(
            Decision::NotApplicable.combine(Decision::Allow),
            Decision::Allow
        );
        assert!(!Decision::NotApplicable.allowed());
    }

    #[test]
    fn actions_match_without_case_and_resources_with_it() {
        let p = user(
            r#"{"Statement":{"Effect":"Allow","Action":"S3:get*","Resource":"arn:aws:s3:::B?/*"}}"#,
        );
        assert_eq!(
            p.evaluate(&cx("s3:GetObject", "arn:aws:s3:::B1/k")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx("s3:GetObject", "arn:aws:s3:::b1/k")),
            Decision::NotApplicable
        );
        assert_eq!(
            p.evaluate(&cx("s3:PutObject", "arn:aws:s3:::B1/k")),
            Decision::NotApplicable
        );
    }

    #[test]
    fn not_action_and_not_resource() {
        let p = user(
            r#"{"Statement":{"Effect":"Allow","NotAction":"s3:Delete*","NotResource":"arn:aws:s3:::secret/*"}}"#,
        );
        assert_eq!(
            p.evaluate(&cx("s3:PutObject", "arn:aws:s3:::b/k")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&cx("s3:DeleteObject", "arn:aws:s3:::b/k")),
            Decision::NotApplicable
        );
        assert_eq!(
            p.evaluate(&cx("s3:GetObject", "arn:aws:s3:::secret/k")),
            Decision::NotApplicable
        );
    }

    #[test]
    fn prefix_conditions() {
        let p = user(
            r#"{"Statement":[
                {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["home/alice/*","home/alice/"]}}},
                {"Effect":"Deny","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringEquals":{"s3:prefix":"home/alice/private/"}}}]}"#,
        );
        let list = |p: &Policy, prefix| {
            with(
                p,
                cx("s3:ListBucket", "arn:aws:s3:::b"),
                "s3:prefix",
                prefix,
            )
        };
        assert_eq!(list(&p, Some("home/alice/docs")), Decision::Allow);
        assert_eq!(list(&p, Some("home/alice/")), Decision::Allow);
        assert_eq!(list(&p, Some("home/bob/")), Decision::NotApplicable);
        assert_eq!(list(&p, Some("")), Decision::NotApplicable);
        assert_eq!(list(&p, None), Decision::NotApplicable);
        assert_eq!(list(&p, Some("home/alice/private/")), Decision::Deny);
        let not = user(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{"StringNotLike":{"s3:prefix":"private/*"}}}}"#,
        );
        assert_eq!(list(&not, Some("public/")), Decision::Allow);
        assert_eq!(list(&not, Some("private/x")), Decision::NotApplicable);
        // A request without the key: the negated operator holds.
        assert_eq!(list(&not, None), Decision::Allow);
        let ne = user(
            r#"{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{"StringNotEquals":{"s3:prefix":"x"}}}}"#,
        );
        assert_eq!(list(&ne, Some("x")), Decision::NotApplicable);
        assert_eq!(list(&ne, Some("y")), Decision::Allow);
    }

    #[test]
    fn policy_variables_are_the_caller_and_fail_closed_without_one() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/home/${aws:username}/*"},
                {"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/home/${aws:username}/keep/*"}]}"#,
            &PolicyKind::Bucket("b".into()),
        )
        .expect("parses");
        let as_user = |who: Option<&str>, action, resource| {
            let mut values = ConditionValues::default();
            if let Some(who) = who {
                values.set("aws:username", who);
            }
            p.evaluate(&RequestContext {
                principal: who,
                values: &values,
                ..cx(action, resource)
            })
        };
        let alice_obj = "arn:aws:s3:::b/home/alice/x";
        assert_eq!(
            as_user(Some("alice"), "s3:GetObject", alice_obj),
            Decision::Allow
        );
        assert_eq!(
            as_user(Some("bob"), "s3:GetObject", alice_obj),
            Decision::NotApplicable
        );
        assert_eq!(
            as_user(
                Some("alice"),
                "s3:DeleteObject",
                "arn:aws:s3:::b/home/alice/keep/x"
            ),
            Decision::Deny
        );
        // Anonymous: no aws:username. The Allow does not apply; the Deny does, to every
        // home's keep/ (the variable matches anything) and nothing else.
        assert_eq!(
            as_user(None, "s3:GetObject", alice_obj),
            Decision::NotApplicable
        );
        assert_eq!(
            as_user(None, "s3:DeleteObject", "arn:aws:s3:::b/home/bob/keep/x"),
            Decision::Deny
        );
        assert_eq!(
            as_user(None, "s3:DeleteObject", alice_obj),
            Decision::NotApplicable
        );
    }

    #[test]
    fn source_ip_conditions() {
        let p = Policy::parse(
            r#"{"Statement":[
                {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.7"]}}},
                {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.66.0.0/16"}}}]}"#,
            &PolicyKind::Bucket("b".into()),
        )
        .expect("parses");
        let anonymous = RequestContext {
            principal: None,
            ..cx("s3:GetObject", "arn:aws:s3:::b/k")
        };
        let from = |p: &Policy, ip| with(p, anonymous, "aws:SourceIp", ip);
        assert_eq!(from(&p, Some("10.1.2.3")), Decision::Allow);
        assert_eq!(from(&p, Some("192.0.2.7")), Decision::Allow);
        assert_eq!(from(&p, Some("192.0.2.8")), Decision::NotApplicable);
        assert_eq!(from(&p, Some("10.66.1.1")), Decision::Deny);
        assert_eq!(from(&p, None), Decision::NotApplicable);
        let outside = user(
            r#"{"Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}}"#,
        );
        let at = |p: &Policy, ip| {
            with(
                p,
                cx("s3:GetObject", "arn:aws:s3:::b/k"),
                "aws:SourceIp",
                Some(ip),
            )
        };
        assert_eq!(at(&outside, "127.0.0.1"), Decision::NotApplicable);
        assert_eq!(at(&outside, "::ffff:127.0.0.1"), Decision::NotApplicable);
        assert_eq!(at(&outside, "10.0.0.1"), Decision::Deny);
    }

    #[test]
    fn a_service_principal_matches_no_request() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::src"}}}}"#,
            &PolicyKind::Bucket("b".into()),
        )
        .expect("parses");
        for principal in [None, Some("alice")] {
            let cx = RequestContext {
                principal,
                ..cx("s3:PutObject", "arn:aws:s3:::b/k")
            };
            assert_eq!(p.evaluate(&cx), Decision::NotApplicable);
        }
        assert!(!p.is_public());
    }

    #[test]
    fn bucket_policy_principals() {
        let p = Policy::parse(
            r#"{"Statement":[
                {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/pub/*"},
                {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::*:user/alice","bob"]},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Principal":{"AWS":"carol"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
            &PolicyKind::Bucket("b".into()),
        )
        .expect("parses");
        let who = |principal, action| RequestContext {
            principal,
            ..cx(action, "arn:aws:s3:::b/pub/x")
        };
        assert_eq!(p.evaluate(&who(None, "s3:GetObject")), Decision::Allow);
        assert_eq!(
            p.evaluate(&who(None, "s3:PutObject")),
            Decision::NotApplicable
        );
        assert_eq!(
            p.evaluate(&who(Some("alice"), "s3:PutObject")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&who(Some("bob"), "s3:PutObject")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&who(Some("dave"), "s3:PutObject")),
            Decision::NotApplicable
        );
        assert_eq!(
            p.evaluate(&who(Some("dave"), "s3:GetObject")),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&who(Some("carol"), "s3:GetObject")),
            Decision::Deny
        );
    }

    #[test]
    fn canned_policies() {
        let readonly = canned::policy("readonly").expect("readonly");
        let writeonly = canned::policy("writeonly").expect("writeonly");
        let readwrite = canned::policy("readwrite").expect("readwrite");
        let admin = canned::policy("admin").expect("admin");
        assert!(canned::policy("nope").is_none());
        let obj = "arn:aws:s3:::b/k";
        let bucket = "arn:aws:s3:::b";
        for (action, resource) in [
            ("s3:GetObject", obj),
            ("s3:ListBucket", bucket),
            ("s3:ListAllMyBuckets", "arn:aws:s3:::*"),
            ("s3:GetBucketLocation", bucket),
            ("s3:GetObjectTagging", obj),
        ] {
            assert!(
                readonly.evaluate(&cx(action, resource)).allowed(),
                "{action}"
            );
            assert!(
                !writeonly.evaluate(&cx(action, resource)).allowed(),
                "{action}"
            );
            assert!(
                readwrite.evaluate(&cx(action, resource)).allowed(),
                "{action}"
            );
        }
        for (action, resource) in [
            ("s3:PutObject", obj),
            ("s3:DeleteObject", obj),
            ("s3:CreateBucket", bucket),
            ("s3:DeleteBucket", bucket),
            ("s3:PutBucketTagging", bucket),
        ] {
            assert!(
                !readonly.evaluate(&cx(action, resource)).allowed(),
                "{action}"
            );
            assert!(
                readwrite.evaluate(&cx(action, resource)).allowed(),
                "{action}"
            );
            assert!(admin.evaluate(&cx(action, resource)).allowed(), "{action}");
        }
        assert!(writeonly.evaluate(&cx("s3:PutObject", obj)).allowed());
        assert!(writeonly
            .evaluate(&cx("s3:AbortMultipartUpload", obj))
            .allowed());
        assert!(!writeonly.evaluate(&cx("s3:DeleteObject", obj)).allowed());
    }
}
