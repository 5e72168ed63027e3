//! Prometheus text metrics, kept in atomics and a small map; no exporter
//! crate is needed for a handful of counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count. Routes are a fixed set, so the map is small.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// outcome → count: issued, cache_hit, stale, denied, unauthenticated, …
    credentials: Mutex<BTreeMap<&'static str, u64>>,
    provider_calls_ok: AtomicU64,
    provider_calls_failed: AtomicU64,
    pub connections_open: AtomicI64,
    connections_total: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    pub fn credential(&self, outcome: &'static str) {
        *self
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome)
            .or_default() += 1;
    }

    pub fn provider_call(&self, ok: bool) {
        let counter = if ok {
            &self.provider_calls_ok
        } else {
            &self.provider_calls_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP rise_registry_http_requests_total HTTP requests by route and status.\n",
        );
        out.push_str("# TYPE rise_registry_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "rise_registry_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP rise_registry_credential_requests_total Credential requests by outcome.\n",
        );
        out.push_str("# TYPE rise_registry_credential_requests_total counter\n");
        for (outcome, n) in self
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "rise_registry_credential_requests_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP rise_registry_provider_calls_total Credential issuances asked of the registry provider (AWS for ECR).\n");
        out.push_str("# TYPE rise_registry_provider_calls_total counter\n");
        let _ = writeln!(
            out,
            "rise_registry_provider_calls_total{{result=\"ok\"}} {}",
            self.provider_calls_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "rise_registry_provider_calls_total{{result=\"error\"}} {}",
            self.provider_calls_failed.load(Ordering::Relaxed)
        );
        out.push_str("# HELP rise_registry_connections_open Client connections open now.\n");
        out.push_str("# TYPE rise_registry_connections_open gauge\n");
        let _ = writeln!(
            out,
            "rise_registry_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        out.push_str("# HELP rise_registry_connections_total Client connections accepted.\n");
        out.push_str("# TYPE rise_registry_connections_total counter\n");
        let _ = writeln!(
            out,
            "rise_registry_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_in_prometheus_text() {
        let m = Metrics::default();
        m.request("credentials", 200);
        m.request("credentials", 200);
        m.credential("issued");
        m.provider_call(true);
        let text = m.render();
        assert!(
            text.contains(
                "rise_registry_http_requests_total{route=\"credentials\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("rise_registry_credential_requests_total{outcome=\"issued\"} 1\n"));
        assert!(text.contains("rise_registry_provider_calls_total{result=\"ok\"} 1\n"));
        assert!(text.contains("rise_registry_provider_calls_total{result=\"error\"} 0\n"));
    }
}
