//! TLS counters: handshakes by result and protocol version, SNI misses,
//! and (read at scrape time) the certificates served and their expiry.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::acme::Acme;
use crate::tls::{HandshakeError, Keeper};

/// `(result, version)` of each handshake counter.
pub const HANDSHAKE_LABELS: [(&str, &str); 6] = [
    ("ok", "TLSv1_3"),
    ("ok", "TLSv1_2"),
    ("unknown_name", ""),
    ("timed_out", ""),
    ("failed", ""),
    ("plain_http", ""),
];

/// TLS counters.
#[derive(Debug, Default)]
pub struct TlsStats {
    handshakes: [AtomicU64; HANDSHAKE_LABELS.len()],
    sni_misses: AtomicU64,
    /// The certificates served (set once the store is open).
    keeper: OnceLock<Arc<Keeper>>,
    /// ACME, when it is on.
    acme: OnceLock<Arc<Acme>>,
}

impl TlsStats {
    /// A handshake completed with `version`; `sni_missed`: its SNI named no
    /// certificate (the default one was served).
    pub fn handshake_done(&self, version: &str, sni_missed: bool) {
        self.count(usize::from(version != "TLSv1_3"), sni_missed);
    }

    /// A handshake failed.
    pub fn handshake_failed(&self, err: &HandshakeError) {
        match err {
            HandshakeError::UnknownName { sni_given } => self.count(2, *sni_given),
            HandshakeError::TimedOut => self.count(3, false),
            HandshakeError::Failed(_) => self.count(4, false),
            HandshakeError::PlainHttp => self.count(5, false),
        }
    }

    fn count(&self, slot: usize, sni_missed: bool) {
        self.handshakes[slot].fetch_add(1, Relaxed);
        if sni_missed {
            self.sni_misses.fetch_add(1, Relaxed);
        }
    }

    /// Handshake counts in the order of [`HANDSHAKE_LABELS`].
    pub fn handshakes(&self) -> [u64; HANDSHAKE_LABELS.len()] {
        std::array::from_fn(|i| self.handshakes[i].load(Relaxed))
    }

    /// Handshakes whose SNI named no certificate (served the default one, or refused).
    pub fn sni_misses(&self) -> u64 {
        self.sni_misses.load(Relaxed)
    }

    /// Report the certificates `keeper` serves.
    pub fn watch(&self, keeper: Arc<Keeper>) {
        let _ = self.keeper.set(keeper);
    }

    /// Report `acme`'s orders.
    pub fn watch_acme(&self, acme: Arc<Acme>) {
        let _ = self.acme.set(acme);
    }

    /// `(id, first domain, not_after)` of every certificate served.
    pub fn expiries(&self) -> Vec<(String, String, i64)> {
        let Some(keeper) = self.keeper.get() else {
            return Vec::new();
        };
        keeper
            .entries()
            .iter()
            .filter_map(|entry| {
                let loaded = entry.loaded.as_ref().ok()?;
                let domain = loaded
                    .parsed
                    .names
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Some((entry.id.to_string(), domain, loaded.parsed.not_after))
            })
            .collect()
    }
}

impl TlsStats {
    /// The TLS metrics, for `/metrics`.
    pub(super) fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::{EncodeMetric, NoLabelSet};
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;

        let mut handshakes = encoder.encode_descriptor(
            "switchyard_tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result and protocol version",
            None,
            MetricType::Counter,
        )?;
        for ((result, version), count) in HANDSHAKE_LABELS.iter().zip(self.handshakes()) {
            handshakes
                .encode_family(&[("result", *result), ("version", *version)])?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        encoder
            .encode_descriptor(
                "switchyard_tls_sni_misses",
                "TLS handshakes whose SNI named no certificate (given the default one, or refused)",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&self.sni_misses(), None)?;
        let mut expiry = encoder.encode_descriptor(
            "switchyard_certificate_expiry_timestamp_seconds",
            "When each certificate served expires (Unix seconds), by id and first domain",
            None,
            MetricType::Gauge,
        )?;
        for (id, domain, not_after) in self.expiries() {
            ConstGauge::new(not_after).encode(
                expiry.encode_family(&[("id", id.as_str()), ("domain", domain.as_str())])?,
            )?;
        }
        let unservable = self.keeper.get().map_or(0, |keeper| {
            keeper
                .entries()
                .iter()
                .filter(|e| e.loaded.is_err())
                .count() as i64
        });
        ConstGauge::new(unservable).encode(encoder.encode_descriptor(
            "switchyard_certificates_unservable",
            "Stored certificates this node cannot serve (a key sealed with another storage key, or unreadable)",
            None,
            MetricType::Gauge,
        )?)?;
        if let Some(acme) = self.acme.get() {
            let stats = &acme.stats;
            let mut orders = encoder.encode_descriptor(
                "switchyard_acme_orders",
                "ACME orders this node made, by result",
                None,
                MetricType::Counter,
            )?;
            for (result, count) in [("ok", &stats.orders_ok), ("failed", &stats.orders_failed)] {
                orders
                    .encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, _, u64>(&count.load(Relaxed), None)?;
            }
            encoder
                .encode_descriptor(
                    "switchyard_acme_renewals",
                    "ACME orders this node made that replaced a certificate",
                    None,
                    MetricType::Counter,
                )?
                .encode_counter::<NoLabelSet, _, u64>(&stats.renewals.load(Relaxed), None)?;
        }
        Ok(())
    }
}
