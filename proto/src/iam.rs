//! Names shared by the meta service (which stores users and custom policies) and the gateway
//! (which evaluates them).

/// The canned policies every user may have attached. They are built into the gateway
/// (`cairn_gateway::policy::canned`), never stored, and no custom policy may take their names.
pub const CANNED_POLICIES: [&str; 4] = ["readwrite", "readonly", "writeonly", "admin"];

/// Whether `name` is a canned policy.
pub fn is_canned(name: &str) -> bool {
    CANNED_POLICIES.contains(&name)
}

/// Whether `name` is acceptable as a custom policy name: 1 to 128 characters from
/// `[A-Za-z0-9+=,.@_-]` (IAM's set) and not a canned name.
pub fn valid_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !is_canned(name)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// Whether `key` is acceptable as an access key: 3 to 128 characters from
/// `[A-Za-z0-9._-]` (MinIO asks for at least 3).
pub fn valid_access_key(key: &str) -> bool {
    (3..=128).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Whether `secret` is acceptable as a secret key: 8 to 128 characters without control
/// characters (MinIO asks for at least 8).
pub fn valid_secret_key(secret: &str) -> bool {
    (8..=128).contains(&secret.len()) && !secret.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_canned("readonly"));
        assert!(!valid_policy_name("readonly"));
        assert!(valid_policy_name("team-a.read_only"));
        assert!(!valid_policy_name("a b"));
        assert!(!valid_policy_name(""));
        assert!(valid_access_key("alice"));
        assert!(!valid_access_key("al"));
        assert!(!valid_access_key("a/b/c"));
        assert!(valid_secret_key("12345678"));
        assert!(!valid_secret_key("1234567"));
    }
}
