//! `/metrics`: the counters in the Prometheus text format, encoded straight
//! from the atomics on each scrape by a `prometheus-client` collector.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::latency::BOUNDS_MICROS;
use super::{StatsSnapshot, Telemetry, CLASSES};
use crate::routing::BackendState;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl Telemetry {
    /// Every metric, in the Prometheus text format (version 0.0.4).
    pub fn render(self: &std::sync::Arc<Self>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(std::sync::Arc::clone(self)));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Collector for Telemetry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.pool.load();
        let mut series: Vec<(String, StatsSnapshot)> = snapshot
            .backends()
            .iter()
            .map(|b| (b.address.to_string(), self.backend(&b.address)))
            .collect();
        series.push(("none".to_owned(), self.unrouted()));

        let mut requests = encoder.encode_descriptor(
            "switchyard_requests",
            "Responses sent to clients, by backend and status class",
            None,
            MetricType::Counter,
        )?;
        for (backend, stats) in &series {
            for (class, count) in CLASSES.iter().zip(stats.classes) {
                let labels = [("backend", backend.as_str()), ("class", class)];
                requests
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let backends = &series[..series.len() - 1];
        let mut connect = encoder.encode_descriptor(
            "switchyard_backend_connect_errors",
            "Failed connection attempts to a backend",
            None,
            MetricType::Counter,
        )?;
        for (backend, stats) in backends {
            connect
                .encode_family(&[("backend", backend.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&stats.connect_errors, None)?;
        }

        for (name, help, value) in [
            (
                "switchyard_backend_failovers",
                "Requests that went to another candidate because this backend was down or refused the connection",
                (|s: &StatsSnapshot| s.failovers) as fn(&StatsSnapshot) -> u64,
            ),
            (
                "switchyard_backend_retries",
                "Requests resent on a fresh connection after the backend closed a kept-alive one",
                |s| s.retries,
            ),
            (
                "switchyard_backend_received_bytes",
                "Request body bytes sent to a backend",
                |s| s.bytes_in,
            ),
            (
                "switchyard_backend_sent_bytes",
                "Response body bytes from a backend sent to clients",
                |s| s.bytes_out,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (backend, stats) in backends {
                family
                    .encode_family(&[("backend", backend.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&value(stats), None)?;
            }
        }

        let mut health = encoder.encode_descriptor(
            "switchyard_backend_up",
            "1 unless health checks took the backend out of traffic",
            None,
            MetricType::Gauge,
        )?;
        for (member, (backend, _)) in snapshot.backends().iter().zip(backends) {
            let up = i64::from(!self.health.is_down(&member.address));
            health
                .encode_family(&[("backend", backend.as_str())])?
                .encode_gauge(&up)?;
        }

        let mut in_flight = encoder.encode_descriptor(
            "switchyard_backend_in_flight",
            "Requests sent to a backend whose response has not finished",
            None,
            MetricType::Gauge,
        )?;
        for (backend, stats) in backends {
            in_flight
                .encode_family(&[("backend", backend.as_str())])?
                .encode_gauge(&stats.in_flight)?;
        }

        let mut latency = encoder.encode_descriptor(
            "switchyard_upstream_latency_seconds",
            "Time from sending a request to a backend to its response head",
            None,
            MetricType::Histogram,
        )?;
        for (backend, stats) in backends {
            let buckets: Vec<(f64, u64)> = BOUNDS_MICROS
                .iter()
                .map(|&b| b as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(stats.latency.buckets)
                .collect();
            latency
                .encode_family(&[("backend", backend.as_str())])?
                .encode_histogram::<NoLabelSet>(
                    stats.latency.sum_micros as f64 / 1e6,
                    stats.latency.count(),
                    &buckets,
                    None,
                )?;
        }

        let mut members = encoder.encode_descriptor(
            "switchyard_backends",
            "Backends in the membership, by state",
            None,
            MetricType::Gauge,
        )?;
        for state in [BackendState::Active, BackendState::Draining] {
            let count = snapshot
                .backends()
                .iter()
                .filter(|b| b.state == state)
                .count() as i64;
            members
                .encode_family(&[("state", state.as_str())])?
                .encode_gauge(&count)?;
        }

        let open = ConstGauge::new(
            self.client_connections
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0),
        );
        open.encode(encoder.encode_descriptor(
            "switchyard_client_connections",
            "Client connections open now",
            None,
            open.metric_type(),
        )?)?;

        let mut reloads = encoder.encode_descriptor(
            "switchyard_config_reloads",
            "Config reloads (SIGHUP), by result",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in ["applied", "refused"].iter().zip(&self.reloads) {
            reloads
                .encode_family(&[("result", *result)])?
                .encode_counter::<NoLabelSet, _, u64>(
                    &count.load(std::sync::atomic::Ordering::Relaxed),
                    None,
                )?;
        }

        let generation = ConstGauge::new(i64::try_from(snapshot.generation()).unwrap_or(i64::MAX));
        generation.encode(encoder.encode_descriptor(
            "switchyard_membership_generation",
            "Generation of the membership the routing snapshot was built from",
            None,
            generation.metric_type(),
        )?)?;
        Ok(())
    }
}
