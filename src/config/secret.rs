//! Values that must never be printed: tokens, and the password inside a
//! database URL. Their `Debug` and `Display` are redacted by construction,
//! so a log line, an error or `--check` cannot show them by accident; the
//! code that needs the real value asks for it with `expose()`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a secret is printed as.
pub const REDACTED: &str = "<redacted>";

/// A token or password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the code that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A membership database URL (`sqlite://PATH` or `postgres://...`). Shown
/// with its password (in the user part or a `password=` parameter)
/// replaced by `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// `text` (a database URL, or a libpq `key=value` string) with every
/// password hidden: the user part's password and any parameter whose name
/// holds "password" become `***`. A URL that does not parse loses its
/// whole user part and query instead: better too much hidden than a
/// password shown.
pub fn redact_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return redact_pairs(text, char::is_whitespace);
    };
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(key, value)| {
                    let value = if names_password(&key) {
                        "***".into()
                    } else {
                        value
                    };
                    (key.into_owned(), value.into_owned())
                })
                .collect();
            if url.query_pairs().any(|(key, _)| names_password(&key)) {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => {
            let after_user = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
            let user = if after_user.len() < rest.len() {
                "***@"
            } else {
                ""
            };
            let shown = match after_user.split_once('?') {
                Some((host, query)) => format!("{host}?{}", redact_pairs(query, |c| c == '&')),
                None => after_user.to_owned(),
            };
            format!("{scheme}://{user}{shown}")
        }
    }
}

/// Whether a parameter name (percent-decoded) names a password.
fn names_password(key: &str) -> bool {
    percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .to_ascii_lowercase()
        .contains("password")
}

/// `key=value` items split by `separator`, with password values hidden (a
/// quoted value, `'like this'`, is hidden whole).
fn redact_pairs(text: &str, separator: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            out.push_str(rest);
            break;
        };
        let key_start = rest[..eq].rfind(&separator).map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        out.push_str(&rest[..=eq]);
        let value = &rest[eq + 1..];
        let end = if value.starts_with('\'') {
            // Up to the closing quote that is not escaped.
            let mut chars = value.char_indices().skip(1);
            let mut end = value.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            end
        } else {
            value.find(&separator).unwrap_or(value.len())
        };
        out.push_str(if names_password(key) {
            "***"
        } else {
            &value[..end]
        });
        rest = &value[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_a_url_carries_them() {
        let cases = [
            (
                "postgres://sy:s3cret@db:5432/sy",
                "postgres://sy:***@db:5432/sy",
            ),
            (
                "postgresql://sy:p%40ss@db/sy?sslmode=require",
                "postgresql://sy:***@db/sy?sslmode=require",
            ),
            (
                "postgres://sy@db/sy?password=s3cret&x=1",
                "postgres://sy@db/sy?password=***&x=1",
            ),
            (
                "postgres://db/sy?sslpassword=k",
                "postgres://db/sy?sslpassword=***",
            ),
            ("postgres://a:b@c@db/sy", "postgres://a:***@db/sy"),
            ("sqlite://switchyard.db", "sqlite://switchyard.db"),
            (
                "sqlite:///var/lib/sy/state.db?mode=rwc",
                "sqlite:///var/lib/sy/state.db?mode=rwc",
            ),
            ("not a url:with@colons", "not a url:with@colons"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
            assert_eq!(DatabaseUrl::new(url).to_string(), shown);
            assert!(!format!("{:?}", DatabaseUrl::new(url)).contains("s3cret"));
        }
        assert_eq!(
            format!("{:?}", Secret::new("hunter2-hunter2-hunter2")),
            REDACTED
        );
    }
}
