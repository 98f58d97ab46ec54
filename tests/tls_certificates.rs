//! Uploaded certificates: what is refused (with a plain message), what is
//! accepted with a warning, and what a certificate is said to cover.
//! Certificates are made here with rcgen (and one with openssl, for SHA-1,
//! which rcgen cannot sign with).

mod common;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use switchyard::tls::{parse, CertError, CertName};

const NOW: i64 = 1_800_000_000; // 2027-01-15

/// A CA (root or intermediate) that can sign others.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        Some(parent) => params.signed_by(&key, &parent.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A site certificate for `names`, valid from `from` to `until` (years),
/// signed by `by` (self-signed if `None`); its PEM and its key's PEM.
fn site(names: &[&str], by: Option<&Ca>, (from, until): (i32, i32)) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "site");
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = match by {
        Some(ca) => params.signed_by(&key, &ca.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_complete_chain_is_accepted_and_described() {
    let root = ca("Test Root", None);
    let intermediate = ca("Test Intermediate", Some(&root));
    let (leaf, key) = site(
        &[
            "WWW.Foo.Example",
            "*.api.foo.example",
            "XN--Bcher-kva.example",
            "trailing.example.",
        ],
        Some(&intermediate),
        (2025, 2028),
    );
    let chain = format!("{leaf}{}", intermediate.pem);
    let parsed = parse(&chain, &key, NOW).unwrap();
    let names: Vec<String> = parsed.names.iter().map(CertName::to_string).collect();
    assert_eq!(
        names,
        [
            "www.foo.example",
            "*.api.foo.example",
            "xn--bcher-kva.example"
        ]
    );
    assert!(
        parsed.issuer.contains("Test Intermediate"),
        "{}",
        parsed.issuer
    );
    assert!(parsed.not_before < NOW && NOW < parsed.not_after);
    // A name with a trailing dot is one clients never match: not claimed, and said.
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert!(
        parsed.warnings[0].contains("\"trailing.example.\"")
            && parsed.warnings[0].contains("ignored"),
        "{:?}",
        parsed.warnings
    );
    assert_eq!(parsed.certified.cert.len(), 2);
}

#[test]
fn a_chain_with_only_the_site_certificate_is_accepted_with_a_warning() {
    let root = ca("Test Root", None);
    let intermediate = ca("Test Intermediate", Some(&root));
    let (leaf, key) = site(&["www.foo.example"], Some(&intermediate), (2025, 2028));
    let parsed = parse(&leaf, &key, NOW).unwrap();
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert!(parsed.warnings[0]
        .contains("intermediate certificate of \"CN=Test Intermediate\" is missing"));

    // A self-signed certificate has no intermediate to miss.
    let (own, own_key) = site(&["www.foo.example"], None, (2025, 2028));
    assert_eq!(
        parse(&own, &own_key, NOW).unwrap().warnings,
        Vec::<String>::new()
    );
}

#[test]
fn a_chain_out_of_order_is_accepted_with_a_warning() {
    let root = ca("Test Root", None);
    let intermediate = ca("Test Intermediate", Some(&root));
    let other = ca("Someone Else", Some(&root));
    let (leaf, key) = site(&["www.foo.example"], Some(&intermediate), (2025, 2028));
    let parsed = parse(&format!("{leaf}{}", other.pem), &key, NOW).unwrap();
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| w.contains("gap or is out of order")),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn bad_uploads_are_refused_with_a_plain_message() {
    let (leaf, key) = site(&["www.foo.example"], None, (2025, 2028));
    let (_, other_key) = site(&["www.foo.example"], None, (2025, 2028));
    let (expired, expired_key) = site(&["www.foo.example"], None, (2020, 2026));
    let (nameless, nameless_key) = site(&[], None, (2025, 2028));
    let cases: [(&str, &str, CertError); 6] = [
        ("not a certificate", &key, CertError::NoCertificate),
        (&leaf, "not a key", CertError::NoKey),
        (&leaf, &other_key, CertError::KeyMismatch),
        (&key, &key, CertError::KeyInChain),
        (&nameless, &nameless_key, CertError::NoNames),
        (
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            &key,
            CertError::BadPem(String::new()),
        ),
    ];
    for (chain, key, want) in cases {
        let got = parse(chain, key, NOW).unwrap_err();
        match want {
            CertError::BadPem(_) => assert!(matches!(got, CertError::BadPem(_)), "{got}"),
            want => assert_eq!(got, want),
        }
    }
    let err = parse(&expired, &expired_key, NOW).unwrap_err();
    assert!(matches!(err, CertError::Expired(_)), "{err}");
    assert!(err.to_string().contains("expired on"), "{err}");
}

/// Run openssl with `args` in `dir`; `None` if openssl is not installed.
fn openssl(dir: &std::path::Path, args: &[&str]) -> Option<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

#[test]
fn a_sha1_signature_in_the_chain_is_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let sha1 = ["-sha1", "-days", "3650"];
    // A CA, then a site certificate it signs, both with SHA-1.
    let ca = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=Old CA",
        ][..],
        &sha1,
        &["-keyout", "ca-key.pem", "-out", "ca.pem"],
    ]
    .concat();
    if openssl(dir.path(), &ca).is_none() {
        common::skipped("a_sha1_signature_in_the_chain", "openssl is not installed");
        return;
    }
    let request = [
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=old.example",
        "-addext",
        "subjectAltName=DNS:old.example",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ];
    openssl(dir.path(), &request).unwrap();
    let sign = [
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
        ][..],
        &sha1,
        &[
            "-set_serial",
            "7",
            "-copy_extensions",
            "copy",
            "-out",
            "leaf.pem",
        ],
    ]
    .concat();
    openssl(dir.path(), &sign).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let chain = format!("{}{}", read("leaf.pem"), read("ca.pem"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let parsed = parse(&chain, &read("key.pem"), now).unwrap();
    // The CA's own (self-signed) signature is never checked by clients.
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert!(
        parsed.warnings[0].contains("SHA-1"),
        "{:?}",
        parsed.warnings
    );
    assert!(
        parsed.warnings[0].contains("old.example"),
        "{:?}",
        parsed.warnings
    );
}

/// A snapshot of self-signed certificates for each of `sets` of names
/// (ids "0", "1", ...), with `default` as the default domain.
fn snapshot(sets: &[&[&str]], default: Option<&str>) -> switchyard::tls::CertSnapshot {
    let certificates = sets
        .iter()
        .enumerate()
        .map(|(i, names)| {
            let (cert, key) = site(names, None, (2025, 2028));
            (i.to_string(), parse(&cert, &key, NOW).unwrap())
        })
        .collect();
    let default = default.map(|d| switchyard::routing::normalize_host(d.as_bytes()).unwrap());
    let sessions = switchyard::tls::Sessions::new().unwrap();
    switchyard::tls::CertSnapshot::build(certificates, default.as_ref(), &sessions).unwrap()
}

fn chosen(snapshot: &switchyard::tls::CertSnapshot, sni: Option<&str>) -> Option<String> {
    snapshot.for_sni(sni).map(|served| served.id.clone())
}

#[test]
fn sni_picks_the_exact_name_then_a_one_label_wildcard_then_the_default() {
    let certs = snapshot(
        &[
            &["*.foo.example"],
            &["www.foo.example", "foo.example"],
            &["bar.example"],
        ],
        None,
    );
    let cases = [
        (Some("www.foo.example"), Some("1")),
        (Some("WWW.Foo.Example."), Some("1")),
        (Some("api.foo.example"), Some("0")),
        (Some("foo.example"), Some("1")),
        (Some("a.api.foo.example"), None),
        (Some("bar.example"), Some("2")),
        (Some("unknown.example"), None),
        (None, None),
    ];
    for (sni, want) in cases {
        assert_eq!(chosen(&certs, sni).as_deref(), want, "{sni:?}");
    }

    let with_default = snapshot(
        &[&["www.foo.example"], &["bar.example"]],
        Some("Bar.Example"),
    );
    assert_eq!(chosen(&with_default, None).as_deref(), Some("1"));
    assert_eq!(
        chosen(&with_default, Some("unknown.example")).as_deref(),
        Some("1")
    );
    assert_eq!(
        chosen(&with_default, Some("www.foo.example")).as_deref(),
        Some("0")
    );
}

#[test]
fn the_newer_certificate_wins_a_name_both_claim() {
    let certs = snapshot(
        &[&["www.foo.example"], &["www.foo.example", "x.example"]],
        None,
    );
    assert_eq!(
        chosen(&certs, Some("www.foo.example")).as_deref(),
        Some("1")
    );
    let served = certs.for_host("WWW.foo.example:443").unwrap();
    assert!(served.covers(&switchyard::routing::normalize_host(b"x.example").unwrap()));
    assert!(!served.covers(&switchyard::routing::normalize_host(b"y.example").unwrap()));
}

#[test]
fn validity_is_judged_when_shown_so_its_warning_is_never_stale() {
    use switchyard::tls::validity_warnings;
    let day = 86_400;
    assert_eq!(
        validity_warnings(NOW - day, NOW + day, NOW),
        Vec::<String>::new()
    );
    let expired = validity_warnings(NOW - 2 * day, NOW - day, NOW);
    assert!(expired[0].contains("expired on"), "{expired:?}");
    let early = validity_warnings(NOW + day, NOW + 2 * day, NOW);
    assert!(early[0].contains("not valid until"), "{early:?}");
    // The same certificate, a day later: valid, nothing to say.
    assert!(validity_warnings(NOW + day, NOW + 2 * day, NOW + day + 1).is_empty());
}
