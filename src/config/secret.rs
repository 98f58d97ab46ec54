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

/// `url` with the password of its user part and of `password=`-style
/// query parameters replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            // The user part ends at the last `@` before the path.
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    let user = match rest[..at].split_once(':') {
                        Some((name, _password)) => format!("{name}:***"),
                        None => rest[..at].to_owned(),
                    };
                    format!("{scheme}://{user}{}", &rest[at..])
                }
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
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
