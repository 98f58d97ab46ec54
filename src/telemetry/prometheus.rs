//! `/metrics`: the counters in the Prometheus text format, encoded straight
//! from the atomics on each scrape by a `prometheus-client` collector.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::latency::{HistogramSnapshot, BOUNDS_MICROS};
use super::{StatsSnapshot, Telemetry, CLASSES};
use crate::health::{HealthState, HealthView};
use crate::proxy::proxy_protocol::Refused;
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
            "Requests by backend and the status class of their answer (a client that went away before it is counted as 499)",
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

        let members = snapshot.backends();
        let views: Vec<HealthView> = members
            .iter()
            .map(|m| self.health.view(&m.address))
            .collect();
        let mut up = encoder.encode_descriptor(
            "switchyard_backend_up",
            "1 unless the backend is down (health checks took it out of traffic)",
            None,
            MetricType::Gauge,
        )?;
        for ((backend, _), view) in backends.iter().zip(&views) {
            up.encode_family(&[("backend", backend.as_str())])?
                .encode_gauge(&i64::from(view.state != HealthState::Down))?;
        }
        let mut health = encoder.encode_descriptor(
            "switchyard_backend_health",
            "1 for the backend's health state (up, down or unknown), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for ((backend, _), view) in backends.iter().zip(&views) {
            for state in [HealthState::Up, HealthState::Down, HealthState::Unknown] {
                health
                    .encode_family(&[("backend", backend.as_str()), ("state", state.as_str())])?
                    .encode_gauge(&i64::from(view.state == state))?;
            }
        }
        let mut since = encoder.encode_descriptor(
            "switchyard_backend_health_since_seconds",
            "When the backend entered its health state (seconds since the Unix epoch)",
            None,
            MetricType::Gauge,
        )?;
        for ((backend, _), view) in backends.iter().zip(&views) {
            let at = view
                .since
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            since
                .encode_family(&[("backend", backend.as_str())])?
                .encode_gauge(&at)?;
        }
        let mut reason = encoder.encode_descriptor(
            "switchyard_backend_health_reason",
            "Why the backend is in its health state, as a label (always 1)",
            None,
            MetricType::Gauge,
        )?;
        for ((backend, _), view) in backends.iter().zip(&views) {
            reason
                .encode_family(&[
                    ("backend", backend.as_str()),
                    ("reason", view.reason.as_str()),
                ])?
                .encode_gauge(&1i64)?;
        }
        let mut weight = encoder.encode_descriptor(
            "switchyard_backend_weight",
            "The backend's weight",
            None,
            MetricType::Gauge,
        )?;
        for (member, (backend, _)) in members.iter().zip(backends) {
            weight
                .encode_family(&[("backend", backend.as_str())])?
                .encode_gauge(&i64::from(member.weight))?;
        }
        let mut state = encoder.encode_descriptor(
            "switchyard_backend_state",
            "1 for the backend's membership state (active or draining), 0 for the other",
            None,
            MetricType::Gauge,
        )?;
        for (member, (backend, _)) in members.iter().zip(backends) {
            for s in [BackendState::Active, BackendState::Draining] {
                state
                    .encode_family(&[("backend", backend.as_str()), ("state", s.as_str())])?
                    .encode_gauge(&i64::from(member.state == s))?;
            }
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
            encode_histogram(
                &mut latency,
                &[("backend", backend.as_str())],
                &stats.latency,
            )?;
        }

        let mut durations = encoder.encode_descriptor(
            "switchyard_request_duration_seconds",
            "Time from a request's head to the end of its response body, as the proxy saw it, by status class",
            None,
            MetricType::Histogram,
        )?;
        for (class, histogram) in CLASSES.iter().zip(self.durations()) {
            encode_histogram(&mut durations, &[("class", class)], &histogram)?;
        }

        let mut by_state = encoder.encode_descriptor(
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
            by_state
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

        let resting = ConstGauge::new(self.resting_connections());
        resting.encode(encoder.encode_descriptor(
            "switchyard_client_connections_resting",
            "Idle keep-alive client connections resting without HTTP buffers (they come back on the next request)",
            None,
            resting.metric_type(),
        )?)?;

        let mut refused = encoder.encode_descriptor(
            "switchyard_client_connections_refused",
            "Client connections closed before HTTP: a PROXY protocol header missing, malformed, late, or from a peer that is not trusted",
            None,
            MetricType::Counter,
        )?;
        for why in [
            Refused::Missing,
            Refused::Malformed,
            Refused::TimedOut,
            Refused::Untrusted,
        ] {
            refused
                .encode_family(&[("reason", why.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(
                    &self.refused[why as usize].load(std::sync::atomic::Ordering::Relaxed),
                    None,
                )?;
        }

        encoder
            .encode_descriptor(
                "switchyard_h2_cancel_floods",
                "HTTP/2 connections closed because the client cancelled more requests in flight than its budget (rapid reset)",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(
                &self.cancel_floods.load(std::sync::atomic::Ordering::Relaxed),
                None,
            )?;

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
        self.tls.encode(&mut encoder)?;
        super::process::encode(&mut encoder)
    }
}

fn encode_histogram(
    family: &mut MetricEncoder,
    labels: &[(&str, &str)],
    histogram: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = BOUNDS_MICROS
        .iter()
        .map(|&b| b as f64 / 1e6)
        .chain([f64::INFINITY])
        .zip(histogram.buckets)
        .collect();
    family
        .encode_family(&labels)?
        .encode_histogram::<NoLabelSet>(
            histogram.sum_micros as f64 / 1e6,
            histogram.count(),
            &buckets,
            None,
        )
}
