//! The TLS handshake of one client connection: the ClientHello is read
//! first, its SNI picks the certificate (and so the handshake config) from
//! the snapshot in force, then the handshake completes, all within one
//! deadline. An unknown name without a default certificate is answered
//! with the `unrecognized_name` alert.

use std::io;
use std::sync::Arc;

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::snapshot::{Certificates, Served};

/// A fatal `unrecognized_name` alert (RFC 6066 §3) in a TLS 1.2-style
/// record, as sent before any handshake keys exist.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// Why a handshake did not complete (the metric's `result` label).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no certificate for the name the client asked for (or for clients without SNI)")]
    UnknownName {
        /// The client sent SNI (else it sent none and there is no default).
        sni_given: bool,
    },
    #[error("the handshake did not complete within the header-read timeout")]
    TimedOut,
    #[error("the client sent plain HTTP to the HTTPS port")]
    PlainHttp,
    #[error("handshake failed: {0}")]
    Failed(io::Error),
}

impl HandshakeError {
    /// The metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            HandshakeError::UnknownName { .. } => "unknown_name",
            HandshakeError::TimedOut => "timed_out",
            HandshakeError::PlainHttp => "plain_http",
            HandshakeError::Failed(_) => "failed",
        }
    }
}

/// A completed handshake.
#[derive(Debug)]
pub struct Established<T> {
    pub stream: TlsStream<T>,
    /// The certificate the connection was given.
    pub served: Arc<Served>,
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: &'static str,
    /// ALPN chose `h2`.
    pub h2: bool,
    /// The client's SNI named no certificate (it got the default one).
    pub sni_missed: bool,
}

/// Obtains a certificate for a name none covers, while its handshake
/// waits (ACME on demand).
pub trait OnDemand: Send + Sync + std::fmt::Debug {
    /// Try to make a certificate for `name` (as the client sent it) exist
    /// by `deadline`; whether one may now be in the snapshot.
    fn obtain<'a>(
        &'a self,
        name: &'a str,
        deadline: Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;
}

/// Complete the handshake on `io` by `deadline`; for a name no certificate
/// covers, `on_demand` may obtain one first (the handshake waits).
pub async fn handshake<T>(
    io: T,
    certificates: &Certificates,
    deadline: Instant,
    on_demand: Option<&dyn OnDemand>,
) -> Result<Established<T>, HandshakeError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = LazyConfigAcceptor::new(Acceptor::default(), io);
    let start = match tokio::time::timeout_at(deadline, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(err)) => return Err(HandshakeError::Failed(err)),
        Err(_) => return Err(HandshakeError::TimedOut),
    };
    let snapshot = certificates.load();
    let (mut served, mut sni_missed, sni) = {
        let hello = start.client_hello();
        let sni = hello.server_name().map(str::to_owned);
        let (served, missed) = snapshot.choose(sni.as_deref());
        (served.cloned(), missed, sni)
    };
    if let (true, Some(on_demand), Some(name)) = (sni_missed, on_demand, sni.as_deref()) {
        if on_demand.obtain(name, deadline).await {
            let again = certificates.load();
            let (now_served, missed) = again.choose(Some(name));
            (served, sni_missed) = (now_served.cloned(), missed);
        }
    }
    let Some(served) = served else {
        let mut io = start.io;
        let _ = tokio::time::timeout_at(deadline, async {
            io.write_all(&UNRECOGNIZED_NAME).await?;
            io.shutdown().await
        })
        .await;
        return Err(HandshakeError::UnknownName {
            sni_given: sni_missed,
        });
    };
    let stream = match tokio::time::timeout_at(
        deadline,
        start.into_stream(Arc::clone(&served.config)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(HandshakeError::Failed(err)),
        Err(_) => return Err(HandshakeError::TimedOut),
    };
    let session = stream.get_ref().1;
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1_3",
        _ => "TLSv1_2",
    };
    let h2 = session.alpn_protocol() == Some(b"h2");
    Ok(Established {
        stream,
        served,
        version,
        h2,
        sni_missed,
    })
}
