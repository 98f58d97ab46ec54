//! Certificates made at test time (rcgen): a root CA, site certificates it
//! signs, and a rustls client that trusts the root.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A root CA that signs site certificates.
pub struct TestCa {
    pub root: CertificateDer<'static>,
    pub root_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A site certificate: its PEM chain (leaf, then the root) and key.
pub struct Site {
    pub chain_pem: String,
    pub leaf_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let root = params.self_signed(&key).unwrap();
        TestCa {
            root: root.der().clone(),
            root_pem: root.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names`, valid from yesterday for 90 days.
    pub fn site(&self, names: &[&str]) -> Site {
        self.site_with(names, |_| {})
    }

    /// A certificate for `names` after `adjust`ing its parameters.
    pub fn site_with(&self, names: &[&str], adjust: impl FnOnce(&mut CertificateParams)) -> Site {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let now = time_now();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Site {
            chain_pem: format!("{}{}", cert.pem(), self.root_pem),
            leaf_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client trusting this CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Now, as rcgen's time type.
pub fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A TLS connection to `addr` asking for `sni`.
pub async fn connect(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

/// `GET path` with `Host: host` over an HTTP/1.1 TLS connection for `sni`.
pub async fn get_https(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let tls = connect(config, addr, sni).await.expect("handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}
