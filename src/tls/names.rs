//! The names a certificate covers, and which certificate a name gets.
//!
//! Names from certificates (their `subjectAltName` DNS entries) and from
//! clients (SNI, `Host`) go through the routing key's normalization, so a
//! certificate for `IronHand.example` is found for `ironhand.example.` and
//! for an IDNA name written either way. A wildcard `*.parent` covers
//! exactly one more label (RFC 6125 §6.4.3): `a.parent`, not `parent` nor
//! `a.b.parent`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::routing::{normalize_host, RoutingKey};

/// A name a certificate covers: a host, or all hosts one label under a parent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CertName {
    Exact(RoutingKey),
    /// `*.parent`, stored as its parent.
    Wildcard(RoutingKey),
}

impl CertName {
    /// A DNS name from a certificate (`www.foo.com`, `*.foo.com`), normalized;
    /// `None` for what no client could match (an IP, `*` elsewhere than the
    /// whole first label, a bare `*.com`-style top level, a port, a trailing
    /// dot, or anything but ASCII: clients compare A-labels).
    pub fn parse(raw: &str) -> Option<CertName> {
        if !raw.is_ascii() || raw.contains(':') || raw.ends_with('.') {
            return None;
        }
        match raw.strip_prefix("*.") {
            Some(parent) => {
                let parent = normalize_host(parent.as_bytes()).ok()?;
                (parent.as_str().contains('.') && !parent.as_str().starts_with('['))
                    .then_some(CertName::Wildcard(parent))
            }
            None if raw.contains('*') => None,
            None => {
                let key = normalize_host(raw.as_bytes()).ok()?;
                (!key.as_str().starts_with('[')).then_some(CertName::Exact(key))
            }
        }
    }

    /// Whether this name covers `host` (already normalized).
    pub fn covers(&self, host: &RoutingKey) -> bool {
        match self {
            CertName::Exact(name) => name == host,
            CertName::Wildcard(parent) => parent_of(host.as_str()) == Some(parent.as_str()),
        }
    }
}

impl std::fmt::Display for CertName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertName::Exact(name) => write!(f, "{name}"),
            CertName::Wildcard(parent) => write!(f, "*.{parent}"),
        }
    }
}

/// `b.c` for `a.b.c`; `None` for a single label.
fn parent_of(host: &str) -> Option<&str> {
    host.split_once('.').map(|(_, parent)| parent)
}

/// Which entry each name gets: exact names first, then wildcards. When two
/// entries claim the same name, the one inserted last wins (the caller
/// inserts in the order it prefers, e.g. the newest certificate last).
#[derive(Debug)]
pub struct NameIndex<T> {
    exact: HashMap<RoutingKey, Arc<T>>,
    /// By parent, as text: a normalized host's parent is normalized too.
    wildcard: HashMap<Box<str>, Arc<T>>,
}

impl<T> Default for NameIndex<T> {
    fn default() -> Self {
        NameIndex {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        }
    }
}

impl<T> NameIndex<T> {
    /// Index `entry` under each of `names`.
    pub fn insert(&mut self, names: &[CertName], entry: &Arc<T>) {
        for name in names {
            match name {
                CertName::Exact(key) => self.exact.insert(key.clone(), Arc::clone(entry)),
                CertName::Wildcard(parent) => self
                    .wildcard
                    .insert(parent.as_str().into(), Arc::clone(entry)),
            };
        }
    }

    /// The entry for `host` (normalized): its exact name, else the
    /// wildcard of its parent.
    pub fn find(&self, host: &RoutingKey) -> Option<&Arc<T>> {
        if let Some(entry) = self.exact.get(host) {
            return Some(entry);
        }
        self.wildcard.get(parent_of(host.as_str())?)
    }

    /// The entry for a raw name from a client (SNI), normalized first.
    pub fn find_raw(&self, raw: &str) -> Option<&Arc<T>> {
        self.find(&normalize_host(raw.as_bytes()).ok()?)
    }

    /// Whether no name is indexed.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> RoutingKey {
        normalize_host(s.as_bytes()).unwrap()
    }

    #[test]
    fn names_from_certificates_are_normalized_like_routing_keys() {
        assert_eq!(
            CertName::parse("IronHand.Example"),
            Some(CertName::Exact(key("ironhand.example")))
        );
        assert_eq!(
            CertName::parse("*.XN--bcher-kva.example"),
            Some(CertName::Wildcard(key("xn--bcher-kva.example")))
        );
        // What clients never match: not taken, so never claimed in the list.
        for unusable in [
            "IronHand.Example.",
            "*.Bücher.example",
            "port.example:443",
            "*.com",
            "a.*.example",
            "*foo.example",
            "f*o.example",
            "[::1]",
            "*",
        ] {
            assert_eq!(CertName::parse(unusable), None, "{unusable}");
        }
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let wildcard = CertName::parse("*.foo.example").unwrap();
        assert!(wildcard.covers(&key("www.foo.example")));
        assert!(!wildcard.covers(&key("foo.example")));
        assert!(!wildcard.covers(&key("a.www.foo.example")));
        assert!(!wildcard.covers(&key("www.otherfoo.example")));
    }

    #[test]
    fn exact_names_win_over_wildcards_and_sni_is_normalized() {
        let mut index = NameIndex::default();
        let wildcard = Arc::new("wildcard");
        let exact = Arc::new("exact");
        index.insert(&[CertName::parse("*.foo.example").unwrap()], &wildcard);
        index.insert(&[CertName::parse("www.foo.example").unwrap()], &exact);
        assert_eq!(index.find_raw("WWW.Foo.Example."), Some(&exact));
        assert_eq!(index.find_raw("api.foo.example"), Some(&wildcard));
        assert_eq!(index.find_raw("foo.example"), None);
        assert_eq!(index.find_raw("a.api.foo.example"), None);
        assert_eq!(index.find_raw("not a name"), None);
    }
}
