//! Input limits shared by every route, message and configuration entry, so
//! that no field reaches a database or a log unbounded, and one kind of thing
//! (a catalogue entry, say) obeys one rule set wherever it comes from.
//!
//! Rules return [`Invalid`], a message naming the field; the service layer
//! answers it as 400, the configuration loader as an error naming the key.

use std::fmt;

/// Why a value was refused, naming the field; safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Invalid {
        Invalid(s.to_string())
    }
}

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

/// Most of one item a player may hold or move at once.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Highest price of a catalogue entry, in either currency.
pub const MAX_PRICE: i64 = 1_000_000_000_000;

/// Highest level a player may have: a profile update may set 1 to this, and
/// game logic never raises a level past it.
pub const MAX_LEVEL: i64 = 1_000_000;

/// Most experience a player may have: a profile update may set 0 to this,
/// and game logic refuses to add past it.
pub const MAX_EXP: i64 = 1_000_000_000_000_000;

/// Usernames: 3 to 32 of `[A-Za-z0-9_.-]`.
pub fn username(s: &str) -> Result<(), Invalid> {
    if !(3..=32).contains(&s.len())
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(Invalid::from(
            "username must be 3 to 32 characters of letters, digits, _ . -",
        ));
    }
    Ok(())
}

/// The one rule by which a username names an account, for registration,
/// login, look-ups and the login budgets alike: `Some` when `s` is a
/// username [`username`] accepts (compared byte for byte; nothing trimmed or
/// folded), `None` when no account can have it. A name that is not
/// canonical — `bob ` — must never reach a query, where MariaDB's PAD SPACE
/// collations would have matched `bob` (issue 21), nor get a budget of its
/// own.
pub fn canonical_username(s: &str) -> Option<&str> {
    username(s).is_ok().then_some(s)
}

/// Passwords: 6 to 128 bytes.
pub fn password(s: &str) -> Result<(), Invalid> {
    if !(6..=128).contains(&s.len()) {
        return Err(Invalid::from("password must be 6 to 128 bytes"));
    }
    Ok(())
}

/// E-mail: empty, or at most 254 bytes with one `@` inside.
pub fn email(s: &str) -> Result<(), Invalid> {
    if s.is_empty() {
        return Ok(());
    }
    let at = s.find('@');
    if s.len() > 254
        || at.is_none_or(|i| i == 0 || i == s.len() - 1)
        || s.contains(char::is_whitespace)
    {
        return Err(Invalid::from("email is not a valid address"));
    }
    Ok(())
}

/// A free-text field of at most `max` bytes with no control characters.
pub fn text(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.len() > max || s.chars().any(char::is_control) {
        return Err(Invalid::from(format!(
            "{field} must be at most {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// A free-text field of at most `max` characters that may span lines: no
/// control characters but line breaks and tabs (a message's body).
pub fn multiline_text(field: &str, s: &str, max: usize) -> Result<(), Invalid> {
    let control = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if s.chars().count() > max || s.chars().any(control) {
        return Err(Invalid::from(format!(
            "{field} must be at most {max} characters without control characters but line breaks and tabs"
        )));
    }
    Ok(())
}

/// A whole number within `range`, e.g. "quantity must be from 1 to 9999".
pub fn in_range(
    field: &str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), Invalid> {
    if !range.contains(&value) {
        return Err(Invalid::from(format!(
            "{field} must be from {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(())
}

/// Catalogue keys: 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn item_id(id: &str) -> Result<(), Invalid> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(Invalid::from(
            "item_id must be 1 to 64 of letters, digits, _ - .",
        ));
    }
    Ok(())
}

/// The fields of a catalogue entry that a creation, an update or a
/// configuration seed sets (`None`: left as it is).
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogueFields<'a> {
    /// Display name: 1 to 128 bytes.
    pub name: Option<&'a str>,
    /// Free-form type: at most 32 bytes.
    pub item_type: Option<&'a str>,
    /// Free-form quality: at most 32 bytes.
    pub quality: Option<&'a str>,
    /// Shop text: at most 1024 bytes.
    pub description: Option<&'a str>,
    /// 0 to [`MAX_PRICE`].
    pub price_gold: Option<i64>,
    /// 0 to [`MAX_PRICE`].
    pub price_diamonds: Option<i64>,
    /// 1 to [`MAX_QUANTITY`].
    pub max_stack: Option<i64>,
}

/// The one rule set of catalogue entries, for the admin API and the
/// configuration alike.
pub fn catalogue_fields(f: &CatalogueFields<'_>) -> Result<(), Invalid> {
    for (name, v, max) in [
        ("name", f.name, 128),
        ("type", f.item_type, 32),
        ("quality", f.quality, 32),
        ("description", f.description, 1024),
    ] {
        if let Some(v) = v {
            text(name, v, max)?;
        }
    }
    if f.name == Some("") {
        return Err(Invalid::from("name must not be empty"));
    }
    for (name, v) in [
        ("price_gold", f.price_gold),
        ("price_diamonds", f.price_diamonds),
    ] {
        if let Some(v) = v {
            in_range(name, v, 0..=MAX_PRICE)?;
        }
    }
    if let Some(s) = f.max_stack {
        in_range("max_stack", s, 1..=MAX_QUANTITY)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_body_may_span_lines_and_counts_characters() {
        assert!(multiline_text("body", "line 1\nline 2\r\n\tend", 30).is_ok());
        assert!(
            multiline_text("body", &"é".repeat(10), 10).is_ok(),
            "10 characters, 20 bytes"
        );
        assert!(multiline_text("body", &"é".repeat(11), 10).is_err());
        assert!(multiline_text("body", "bell \u{7}", 30).is_err());
        assert!(multiline_text("body", "nul \0", 30).is_err());
    }

    #[test]
    fn limits() {
        assert!(in_range("quantity", 1, 1..=5).is_ok());
        assert!(in_range("quantity", 5, 1..=5).is_ok());
        let e = in_range("quantity", 6, 1..=5).expect_err("above");
        assert_eq!(e.0, "quantity must be from 1 to 5");
        assert!(in_range("quantity", 0, 1..=5).is_err());
        assert!(username("bob").is_ok());
        assert!(username("bo").is_err());
        assert!(username("bob smith").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert_eq!(canonical_username("bob"), Some("bob"));
        assert_eq!(canonical_username("bob "), None);
        assert_eq!(canonical_username(" bob"), None);
        assert_eq!(canonical_username("bob\t"), None);
        assert!(password("12345").is_err());
        assert!(password("123456").is_ok());
        assert!(email("").is_ok());
        assert!(email("a@b.c").is_ok());
        assert!(email("@b").is_err());
        assert!(email("ab").is_err());
        assert!(text("nickname", "ok", 10).is_ok());
        assert!(text("nickname", "a\nb", 10).is_err());
    }

    #[test]
    fn catalogue_rules() {
        let full = CatalogueFields {
            name: Some("Bow"),
            item_type: Some("weapon"),
            quality: Some(""),
            description: Some(""),
            price_gold: Some(50),
            price_diamonds: Some(0),
            max_stack: Some(2),
        };
        assert!(catalogue_fields(&full).is_ok());
        assert!(catalogue_fields(&CatalogueFields::default()).is_ok());
        let refused = [
            CatalogueFields {
                name: Some(""),
                ..full
            },
            CatalogueFields {
                price_gold: Some(MAX_PRICE + 1),
                ..full
            },
            CatalogueFields {
                price_diamonds: Some(-1),
                ..full
            },
            CatalogueFields {
                max_stack: Some(0),
                ..full
            },
            CatalogueFields {
                max_stack: Some(MAX_QUANTITY + 1),
                ..full
            },
            CatalogueFields {
                description: Some(&"x".repeat(1025)),
                ..full
            },
        ];
        for f in refused {
            assert!(catalogue_fields(&f).is_err(), "{f:?}");
        }
        assert!(item_id("bow.2-a_b").is_ok());
        assert!(item_id("").is_err());
        assert!(item_id("a b").is_err());
        assert!(item_id(&"a".repeat(65)).is_err());
    }
}
