//! Policy variables: `${aws:username}` in a `Resource` or a string condition's value stands
//! for the signer's access key, so one policy can give every user a home prefix
//! (`arn:aws:s3:::bucket/home/${aws:username}/*`).
//!
//! Only the variables whose values cannot hold a wildcard are offered: `${aws:username}`,
//! `${aws:userid}` (both the access key, whose characters are letters, digits and `._-`),
//! `${aws:PrincipalType}`, and `${$}` (a literal `$`). As in IAM they are substituted only in
//! policies of `"Version": "2012-10-17"`; anywhere else `${` is refused, since the text would
//! otherwise be matched literally and a Deny would protect nothing.

use std::borrow::Cow;

use super::condition::ConditionValues;

/// The condition keys a variable may name (canonical, lower case).
const KEYS: [&str; 3] = ["aws:username", "aws:userid", "aws:principaltype"];

/// Checks the variables of `text`; `allowed` is whether the policy's version substitutes them.
pub(crate) fn check(text: &str, allowed: bool) -> Result<(), String> {
    if !text.contains("${") {
        return Ok(());
    }
    if !allowed {
        return Err(format!(
            "{text:?}: policy variables (${{...}}) need \"Version\": \"2012-10-17\""
        ));
    }
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            return Err(format!("{text:?}: a policy variable is not closed with }}"));
        };
        let name = &rest[start + 2..start + len];
        if name != "$" && !KEYS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{text:?}: policy variable ${{{name}}} is not supported (aws:username, \
                 aws:userid, aws:PrincipalType, $)"
            ));
        }
        rest = &rest[start + len + 1..];
    }
    Ok(())
}

/// `text` with its variables replaced by the request's values; `None` when the request lacks
/// one (an anonymous request has no `aws:username`). `text` must have passed [`check`].
pub(crate) fn expand<'a>(text: &'a str, values: &ConditionValues) -> Option<Cow<'a, str>> {
    expand_with(text, values, None)
}

/// [`expand`], with `fallback` standing for a variable the request lacks.
pub(crate) fn expand_or<'a>(
    text: &'a str,
    values: &ConditionValues,
    fallback: &str,
) -> Cow<'a, str> {
    expand_with(text, values, Some(fallback)).unwrap_or(Cow::Borrowed(text))
}

fn expand_with<'a>(
    text: &'a str,
    values: &ConditionValues,
    fallback: Option<&str>,
) -> Option<Cow<'a, str>> {
    if !text.contains("${") {
        return Some(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let len = rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let name = &rest[start + 2..start + len];
        if name == "$" {
            out.push('$');
        } else {
            let value = values
                .get(&name.to_ascii_lowercase())
                .and_then(|v| v.first())
                .map(String::as_str)
                .or(fallback)?;
            out.push_str(value);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_and_expanded() {
        assert!(check("arn:aws:s3:::b/home/${aws:username}/*", true).is_ok());
        assert!(check("a${$}b", true).is_ok());
        assert!(check("plain", false).is_ok());
        let e = check("b/${aws:username}", false).expect_err("2008");
        assert!(e.contains("2012-10-17"), "{e}");
        let e = check("b/${aws:Referer}", true).expect_err("unsafe key");
        assert!(e.contains("not supported"), "{e}");
        let e = check("b/${*}", true).expect_err("wildcard");
        assert!(e.contains("not supported"), "{e}");
        let e = check("b/${aws:username", true).expect_err("open");
        assert!(e.contains("not closed"), "{e}");

        let mut values = ConditionValues::default();
        values.set("aws:username", "alice");
        assert_eq!(
            expand("home/${aws:username}/${AWS:USERNAME}${$}", &values).as_deref(),
            Some("home/alice/alice$")
        );
        assert_eq!(expand("plain", &values).as_deref(), Some("plain"));
        assert_eq!(expand("${aws:userid}", &values), None, "absent");
        assert_eq!(expand_or("b/${aws:userid}/x", &values, "*"), "b/*/x");
    }
}
