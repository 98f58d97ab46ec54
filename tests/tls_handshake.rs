//! TLS handshakes against the certificate snapshot, over loopback TCP with
//! a rustls client: SNI picks the certificate (and the client verifies the
//! chain it was served), an unknown name gets `unrecognized_name`, ALPN
//! offers `h2` and `http/1.1`, TLS 1.2 and 1.3 both work, and a session
//! resumes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::pki::{time_now, TestCa};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use switchyard::tls::{handshake, parse, CertSnapshot, Certificates, Sessions};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Pki {
    root: CertificateDer<'static>,
    certificates: Arc<Certificates>,
}

/// A root CA and two site certificates it signs: `www.foo.example` (id
/// "foo") and `*.bar.example` (id "bar"), published as the snapshot.
fn pki(default: Option<&str>) -> Pki {
    let ca = TestCa::new("Handshake Test Root");
    let now = time_now().unix_timestamp();
    let site = |names: &[&str]| {
        let site = ca.site(names);
        parse(&site.chain_pem, &site.key_pem, now).unwrap()
    };
    let list = vec![
        ("foo".to_owned(), site(&["www.foo.example"])),
        ("bar".to_owned(), site(&["*.bar.example"])),
    ];
    let default = default.map(|d| switchyard::routing::normalize_host(d.as_bytes()).unwrap());
    let sessions = Sessions::new().unwrap();
    let certificates = Arc::new(Certificates::default());
    certificates.publish(CertSnapshot::build(list, default.as_ref(), &sessions).unwrap());
    Pki {
        root: ca.root.clone(),
        certificates,
    }
}

fn client(pki: &Pki, versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(pki.root.clone()).unwrap();
    let mut config = ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Run one server handshake on a loopback listener while `connect` runs as
/// the client; the server's outcome (certificate id, version, h2) and the
/// client's.
async fn exchange<C, Fut, R>(
    pki: &Pki,
    connect: C,
) -> (Result<(String, &'static str, bool), String>, R)
where
    C: FnOnce(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let certificates = Arc::clone(&pki.certificates);
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        match handshake(stream, &certificates, deadline, None).await {
            Ok(done) => Ok((done.served.id.clone(), done.version, done.h2)),
            Err(err) => Err(err.as_str().to_owned()),
        }
    });
    let client = connect(addr).await;
    (server.await.unwrap(), client)
}

async fn connect_as(
    config: Arc<ClientConfig>,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

#[tokio::test]
async fn sni_picks_the_certificate_and_the_client_verifies_its_chain() {
    let pki = pki(None);
    let config = Arc::new(client(&pki, &[&rustls::version::TLS13]));
    for (sni, want) in [("www.foo.example", "foo"), ("api.bar.example", "bar")] {
        let (server, client) =
            exchange(&pki, |addr| connect_as(Arc::clone(&config), addr, sni)).await;
        let stream = client.unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        drop(stream);
        assert_eq!(server.unwrap(), (want.to_owned(), "TLSv1_3", true));
    }
}

#[tokio::test]
async fn an_unknown_name_gets_unrecognized_name_unless_there_is_a_default() {
    let without = pki(None);
    let config = Arc::new(client(&without, &[&rustls::version::TLS13]));
    let (server, refused) = exchange(&without, |addr| {
        connect_as(Arc::clone(&config), addr, "nobody.example")
    })
    .await;
    assert_eq!(server.unwrap_err(), "unknown_name");
    let err = refused.unwrap_err().to_string();
    assert!(
        err.contains("UnrecognisedName") || err.contains("UnrecognizedName"),
        "{err}"
    );

    // With a default, the client is served that certificate, which does
    // not cover the name it asked for: the client refuses it.
    let with = pki(Some("WWW.foo.example"));
    let config = Arc::new(client(&with, &[&rustls::version::TLS13]));
    let (server, refused) = exchange(&with, |addr| {
        connect_as(Arc::clone(&config), addr, "nobody.example")
    })
    .await;
    let err = refused.unwrap_err().to_string();
    assert!(err.contains("not valid for name"), "{err}");
    assert_eq!(server.unwrap_err(), "failed");
    // And a client without SNI (an IP address) gets it too.
    let (server, _) = exchange(&with, |addr| {
        connect_as(Arc::clone(&config), addr, "127.0.0.1")
    })
    .await;
    assert_eq!(server.unwrap_err(), "failed");
}

#[tokio::test]
async fn tls_1_2_and_http_1_1_work_and_a_session_resumes() {
    let pki = pki(None);
    let mut config = client(&pki, &[&rustls::version::TLS12]);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let (server, first) = exchange(&pki, |addr| {
        connect_as(Arc::clone(&config), addr, "www.foo.example")
    })
    .await;
    let first = first.unwrap();
    assert_eq!(first.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(first);
    assert_eq!(server.unwrap(), ("foo".to_owned(), "TLSv1_2", false));
    let (_, second) = exchange(&pki, |addr| {
        connect_as(Arc::clone(&config), addr, "www.foo.example")
    })
    .await;
    let second = second.unwrap();
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}
