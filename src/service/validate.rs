//! Input limits shared by every route and message, so that no field reaches a
//! database or a log unbounded.

use super::ApiError;

/// Usernames: 3 to 32 of `[A-Za-z0-9_.-]`.
pub fn username(s: &str) -> Result<(), ApiError> {
    if !(3..=32).contains(&s.len())
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ApiError::bad_request(
            "username must be 3 to 32 characters of letters, digits, _ . -",
        ));
    }
    Ok(())
}

/// Passwords: 6 to 128 bytes.
pub fn password(s: &str) -> Result<(), ApiError> {
    if !(6..=128).contains(&s.len()) {
        return Err(ApiError::bad_request("password must be 6 to 128 bytes"));
    }
    Ok(())
}

/// E-mail: empty, or at most 254 bytes with one `@` inside.
pub fn email(s: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Ok(());
    }
    let at = s.find('@');
    if s.len() > 254
        || at.is_none_or(|i| i == 0 || i == s.len() - 1)
        || s.contains(char::is_whitespace)
    {
        return Err(ApiError::bad_request("email is not a valid address"));
    }
    Ok(())
}

/// A free-text field of at most `max` bytes with no control characters.
pub fn text(field: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.len() > max || s.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// A whole number within `range`, e.g. "quantity must be from 1 to 9999".
pub fn in_range(
    field: &str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), ApiError> {
    if !range.contains(&value) {
        return Err(ApiError::bad_request(format!(
            "{field} must be from {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(in_range("quantity", 1, 1..=5).is_ok());
        assert!(in_range("quantity", 5, 1..=5).is_ok());
        let e = in_range("quantity", 6, 1..=5).expect_err("above");
        assert_eq!(e.message, "quantity must be from 1 to 5");
        assert!(in_range("quantity", 0, 1..=5).is_err());
        assert!(username("bob").is_ok());
        assert!(username("bo").is_err());
        assert!(username("bob smith").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(password("12345").is_err());
        assert!(password("123456").is_ok());
        assert!(email("").is_ok());
        assert!(email("a@b.c").is_ok());
        assert!(email("@b").is_err());
        assert!(email("ab").is_err());
        assert!(text("nickname", "ok", 10).is_ok());
        assert!(text("nickname", "a\nb", 10).is_err());
    }
}
