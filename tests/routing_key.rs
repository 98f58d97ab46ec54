//! The routing key, rule by rule (SPEC "The routing key").

use proptest::prelude::*;
use switchyard::routing::key::{normalize_host, reload_domain};
use switchyard::routing::{routing_key, KeyError, KeyInput, ReloadScope, RoutingKey, Rule};

fn host_request<'a>(hosts: &'a [&'a [u8]], path: &'a str) -> KeyInput<'a> {
    KeyInput {
        host_headers: hosts,
        path: path.as_bytes(),
        ..KeyInput::default()
    }
}

/// What a case expects: the key text and the rule, or the error.
type Expected = Result<(String, Rule), KeyError>;

fn key_of(input: &KeyInput<'_>) -> Expected {
    routing_key(input, &ReloadScope::AnyHost).map(|(k, r)| (k.as_str().to_owned(), r))
}

#[test]
fn host_rule_table() {
    let ok = |key: &str| Ok((key.to_owned(), Rule::Host));
    let cases: &[(&[&[u8]], Expected)] = &[
        (&[b"www.foo.com"], ok("www.foo.com")),
        (&[b"WWW.Foo.COM:8080"], ok("www.foo.com")),
        (&[b"www.foo.com."], ok("www.foo.com")),
        (&[b"IronHand.Example"], ok("ironhand.example")),
        (&["BÜCHER.example".as_bytes()], ok("xn--bcher-kva.example")),
        (&[b"xn--bcher-kva.example"], ok("xn--bcher-kva.example")),
        (
            &["bücher.example:443".as_bytes()],
            ok("xn--bcher-kva.example"),
        ),
        (&[b"127.0.0.1:8080"], ok("127.0.0.1")),
        (&[b"[::1]:8080"], ok("[::1]")),
        (&[b"[0:0:0:0:0:0:0:1]"], ok("[::1]")),
        (&[b"[2001:DB8::A]"], ok("[2001:db8::a]")),
        (&[b"host:"], ok("host")),
        (&[], Err(KeyError::MissingHost)),
        (&[b""], Err(KeyError::EmptyHost)),
        (&[b"  "], Err(KeyError::EmptyHost)),
        (&[b"a.example", b"a.example"], Err(KeyError::DuplicateHost)),
        (&[b"a.example", b"b.example"], Err(KeyError::DuplicateHost)),
        (&[b"."], Err(KeyError::InvalidHost)),
        (&[b"a..example"], Err(KeyError::InvalidHost)),
        (&[b"a.example:http"], Err(KeyError::InvalidHost)),
        (&[b"a.example:123456"], Err(KeyError::InvalidHost)),
        (&[b"a.example:99999"], Err(KeyError::InvalidHost)),
        (&[b"a.example:65536"], Err(KeyError::InvalidHost)),
        (&[b"[::1]:99999"], Err(KeyError::InvalidHost)),
        (&[b"a.example:65535"], ok("a.example")),
        (&[b"a b.example"], Err(KeyError::InvalidHost)),
        (&[b"a/b.example"], Err(KeyError::InvalidHost)),
        (&[b"[::1"], Err(KeyError::InvalidHost)),
        (&[b"[nope]"], Err(KeyError::InvalidHost)),
        (&[b"::1"], Err(KeyError::InvalidHost)),
        (&[b"\xff\xfe.example"], Err(KeyError::InvalidHost)),
        (
            &[b"xn--zz-invalid-punycode-\xc3.example"],
            Err(KeyError::InvalidHost),
        ),
        (&[b"www.foo.com.."], Err(KeyError::InvalidHost)),
    ];
    for (hosts, want) in cases {
        let got = key_of(&host_request(hosts, "/"));
        assert_eq!(
            &got,
            want,
            "Host {:?}",
            hosts
                .iter()
                .map(|h| String::from_utf8_lossy(h))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn reload_rule_table() {
    let reload = |key: &str| Ok((key.to_owned(), Rule::Reload));
    let host = Ok(("control.example".to_owned(), Rule::Host));
    let cases: &[(&str, Expected)] = &[
        (
            "/user/fred/webapps/IronHand.Example/reload",
            reload("ironhand.example"),
        ),
        (
            "/user/fred/webapps/ironhand.example/reload/",
            reload("ironhand.example"),
        ),
        (
            "/user/fred/webapps/www.foo.com/reload?now=1",
            reload("www.foo.com"),
        ),
        (
            "/user/fred/webapps/WWW.Foo.COM:8080/reload",
            reload("www.foo.com"),
        ),
        (
            "/user/fred/webapps/B%C3%9CCHER.example/reload",
            reload("xn--bcher-kva.example"),
        ),
        (
            "/user/fred/webapps/www.foo.com./reload",
            reload("www.foo.com"),
        ),
        (
            "/user/fred/webapps/www%2Efoo%2Ecom/reload",
            reload("www.foo.com"),
        ),
        (
            "/user/fred/webapps/bad%2Fslash/reload",
            Err(KeyError::InvalidReloadDomain),
        ),
        (
            "/user/fred/webapps/%ZZ/reload",
            Err(KeyError::InvalidReloadDomain),
        ),
        (
            "/user/fred/webapps/a..b/reload",
            Err(KeyError::InvalidReloadDomain),
        ),
        // Not reload URLs: the host rule applies.
        ("/user/fred/webapps/www.foo.com/reload//", host.clone()),
        ("/user//webapps/www.foo.com/reload", host.clone()),
        ("/user/fred/webapps//reload", host.clone()),
        ("/user/fred/webapps/www.foo.com/reloaded", host.clone()),
        ("/user/fred/webapps/www.foo.com/reload/extra", host.clone()),
        ("/user/fred/Webapps/www.foo.com/reload", host.clone()),
        ("/User/fred/webapps/www.foo.com/reload", host.clone()),
        ("/x/user/fred/webapps/www.foo.com/reload", host.clone()),
        ("/?/user/fred/webapps/www.foo.com/reload", host.clone()),
        ("/", host.clone()),
    ];
    for (path, want) in cases {
        assert_eq!(
            &key_of(&host_request(&[b"Control.Example"], path)),
            want,
            "path {path}"
        );
    }
}

#[test]
fn the_case_bug_cannot_happen_site_and_reload_url_share_a_key() {
    let site = key_of(&host_request(&[b"IronHand.Example"], "/")).unwrap();
    let lower = key_of(&host_request(&[b"ironhand.example"], "/")).unwrap();
    let reload = key_of(&host_request(
        &[b"www.pythonanywhere.com"],
        "/user/fred/webapps/IronHand.Example/reload",
    ))
    .unwrap();
    let reload_lower = key_of(&host_request(
        &[b"www.pythonanywhere.com"],
        "/user/fred/webapps/ironhand.example/reload",
    ))
    .unwrap();
    assert_eq!((site.1, reload.1), (Rule::Host, Rule::Reload));
    assert_eq!(site.0, "ironhand.example");
    assert_eq!([&lower.0, &reload.0, &reload_lower.0], [&site.0; 3]);
}

#[test]
fn target_authority_wins_and_must_agree_with_host() {
    let absolute = KeyInput {
        absolute_authority: Some(b"A.Example:80"),
        host_headers: &[b"a.example"],
        path: b"/",
        ..KeyInput::default()
    };
    assert_eq!(key_of(&absolute), Ok(("a.example".into(), Rule::Host)));
    let mismatch = KeyInput {
        absolute_authority: Some(b"a.example"),
        host_headers: &[b"b.example"],
        ..absolute
    };
    assert_eq!(key_of(&mismatch), Err(KeyError::HostMismatch));
    let h2 = KeyInput {
        h2_authority: Some(b"H2.example"),
        host_headers: &[],
        path: b"/",
        ..KeyInput::default()
    };
    assert_eq!(key_of(&h2), Ok(("h2.example".into(), Rule::Host)));
    let absolute_without_host = KeyInput {
        absolute_authority: Some(b"a.example"),
        ..KeyInput::default()
    };
    assert_eq!(
        key_of(&absolute_without_host),
        Ok(("a.example".into(), Rule::Host))
    );
}

#[test]
fn reload_rule_can_be_limited_to_control_hosts() {
    let scope = ReloadScope::ControlHosts(vec![normalize_host(b"www.pythonanywhere.com").unwrap()]);
    let path = "/user/fred/webapps/IronHand.Example/reload";
    let on_control =
        routing_key(&host_request(&[b"WWW.PythonAnywhere.com"], path), &scope).unwrap();
    assert_eq!(
        (on_control.0.as_str(), on_control.1),
        ("ironhand.example", Rule::Reload)
    );
    let elsewhere = routing_key(&host_request(&[b"someone.example"], path), &scope).unwrap();
    assert_eq!(
        (elsewhere.0.as_str(), elsewhere.1),
        ("someone.example", Rule::Host)
    );
}

#[test]
fn reload_domain_is_the_raw_segment() {
    assert_eq!(
        reload_domain(b"/user/a/webapps/X%2Ey/reload"),
        Some(&b"X%2Ey"[..])
    );
    assert_eq!(
        reload_domain(b"/user/a/webapps/x/reload?q=/user/b/webapps/y/reload"),
        Some(&b"x"[..])
    );
    assert_eq!(reload_domain(b"/user/a/webapps/x/y/reload"), None);
}

/// Domains made of 1–4 labels of letters, digits and inner hyphens.
fn domain() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..5)
        .prop_map(|labels| labels.join("."))
        .prop_filter("punycode labels need valid punycode", |d| {
            !d.split('.').any(|l| l.starts_with("xn--"))
        })
}

/// Randomly flip the ASCII case of each character.
fn recase(s: &str, flips: &[bool]) -> String {
    s.chars()
        .zip(flips.iter().cycle())
        .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
        .collect()
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        host in proptest::collection::vec(any::<u8>(), 0..80),
        second in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        authority in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        path in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let hosts: Vec<&[u8]> = std::iter::once(&host[..]).chain(second.as_deref()).collect();
        let input = KeyInput { absolute_authority: authority.as_deref(), host_headers: &hosts, path: &path, ..KeyInput::default() };
        let _ = routing_key(&input, &ReloadScope::AnyHost);
        let _ = normalize_host(&path);
    }

    #[test]
    fn never_panics_on_reload_like_paths(domain in "[ -~]{0,40}", name in "[a-z%./]{0,6}") {
        let path = format!("/user/{name}/webapps/{domain}/reload");
        let _ = routing_key(&host_request(&[b"a.example"], &path), &ReloadScope::AnyHost);
    }

    #[test]
    fn host_and_reload_rules_agree_in_any_letter_case(
        d in domain(),
        flips_host in proptest::collection::vec(any::<bool>(), 1..16),
        flips_path in proptest::collection::vec(any::<bool>(), 1..16),
        port in proptest::option::of(1u16..),
        trailing_dot in any::<bool>(),
    ) {
        let mut host = recase(&d, &flips_host);
        if trailing_dot { host.push('.'); }
        if let Some(port) = port { host.push_str(&format!(":{port}")); }
        let path = format!("/user/someone/webapps/{}/reload", recase(&d, &flips_path));
        let by_host = routing_key(&host_request(&[host.as_bytes()], "/"), &ReloadScope::AnyHost).unwrap();
        let by_reload = routing_key(&host_request(&[b"control.example"], &path), &ReloadScope::AnyHost).unwrap();
        prop_assert_eq!(by_host.1, Rule::Host);
        prop_assert_eq!(by_reload.1, Rule::Reload);
        prop_assert_eq!(&by_host.0, &by_reload.0);
        prop_assert_eq!(by_host.0, RoutingKey::clone(&normalize_host(d.as_bytes()).unwrap()));
    }

    #[test]
    fn normalization_is_idempotent(d in domain()) {
        let once = normalize_host(d.to_uppercase().as_bytes()).unwrap();
        let twice = normalize_host(once.as_str().as_bytes()).unwrap();
        prop_assert_eq!(once, twice);
    }
}
