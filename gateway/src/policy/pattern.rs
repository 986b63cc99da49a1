//! IAM wildcard matching: `*` matches any run of characters (including none, including `/`),
//! `?` exactly one character; everything else matches itself.

/// Whether `value` matches `pattern`; with `fold_case`, ASCII letters match either case (IAM
/// action names are case-insensitive, resources are not).
pub(crate) fn matches(pattern: &str, value: &str, fold_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let same = |a: char, b: char| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Greedy matching with backtracking to the last `*`: linear in practice, never
    // exponential.
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && same(p[pi], v[vi]))) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "", false));
        assert!(matches("*", "arn:aws:s3:::b/k", false));
        assert!(matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/a/b/c", false));
        assert!(!matches("arn:aws:s3:::b/*", "arn:aws:s3:::b", false));
        assert!(matches("arn:aws:s3:::b*", "arn:aws:s3:::b", false));
        assert!(matches("arn:aws:s3:::b?/k", "arn:aws:s3:::bx/k", false));
        assert!(!matches("arn:aws:s3:::b?/k", "arn:aws:s3:::b/k", false));
        assert!(matches("a*b*c", "aXXbYYbc", false));
        assert!(!matches("a*b*c", "aXXbYYbd", false));
        assert!(matches("s3:get*", "s3:GetObject", true));
        assert!(!matches("s3:get*", "s3:GetObject", false));
        assert!(matches("home/${x}", "home/${x}", false));
        assert!(!matches("abc", "abcd", false));
        assert!(!matches("abcd", "abc", false));
    }
}
