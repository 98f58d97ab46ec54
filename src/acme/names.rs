//! Which names a certificate can be ordered for over HTTP-01: the same rule
//! for the admin API and for on-demand handshakes.

use crate::routing::normalize_host;

/// `raw` normalized like a routing key, if a CA would issue for it over
/// HTTP-01; else why not (to follow the quoted name).
pub fn managed_name(raw: &str) -> Result<String, String> {
    if raw.starts_with("*.") {
        return Err("is a wildcard: HTTP-01 cannot prove wildcards; add each name".into());
    }
    let key = normalize_host(raw.as_bytes()).map_err(|e| format!("is not a host name: {e}"))?;
    let name = key.as_str();
    if raw.contains(':') || name.parse::<std::net::IpAddr>().is_ok() || name.starts_with('[') {
        return Err("is an IP address or has a port: give a domain name".into());
    }
    if !name.contains('.') {
        return Err("has no dot: a CA issues only for public domain names".into());
    }
    // Letters, digits and hyphens (no hyphen at a label's ends), and a
    // last label that is not all digits.
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last = name.rsplit('.').next().unwrap_or("");
    if !labels_ok || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "is not a name a CA issues for: letters, digits and hyphens only, no \
                    hyphen at the start or end of a label, and a top-level label that is \
                    not a number"
                .into(),
        );
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::managed_name;

    #[test]
    fn names_are_normalized_and_what_cas_refuse_is_refused() {
        assert_eq!(managed_name("WWW.Foo.Example.").unwrap(), "www.foo.example");
        assert_eq!(
            managed_name("Bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "*.foo.example",
            "10.0.0.1",
            "foo.example:443",
            "localhost",
            "a_b.example",
            "-a.example",
            "1.2.3",
        ] {
            assert!(managed_name(bad).is_err(), "{bad}");
        }
    }
}
