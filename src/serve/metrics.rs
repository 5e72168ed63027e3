//! Prometheus text metrics, kept in atomics and a small map; no exporter
//! crate is needed for a handful of counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the provider-call latency histogram.
const LATENCY_BUCKETS: [f64; 9] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counts by project name.
type PerProject = BTreeMap<String, u64>;

#[derive(Default)]
pub struct Metrics {
    /// (route, status) → count. Routes are a fixed set, so the map is small.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// (project, provider, outcome) → count. `project` is a configured
    /// project or `-`, never a caller-supplied string, so the label set is
    /// bounded by the config.
    /// Keyed (provider, outcome) then project, so counting looks up by
    /// `&str` and allocates only the first time a project is seen.
    credentials: Mutex<BTreeMap<(&'static str, &'static str), PerProject>>,
    provider_calls_ok: AtomicU64,
    provider_calls_failed: AtomicU64,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`], then +Inf.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
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

    /// Counts one credential request. `project` must be a configured
    /// project (or `-`), never raw request input.
    pub fn credential(&self, project: &str, provider: &'static str, outcome: &'static str) {
        let mut credentials = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        let by_project = credentials.entry((provider, outcome)).or_default();
        match by_project.get_mut(project) {
            Some(n) => *n += 1,
            None => {
                by_project.insert(project.to_string(), 1);
            }
        }
    }

    /// Counts one issuance round trip to the provider and its duration.
    pub fn provider_call(&self, ok: bool, took: std::time::Duration) {
        let counter = if ok {
            &self.provider_calls_ok
        } else {
            &self.provider_calls_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    /// `cached` is the number of projects with credentials in the cache.
    pub fn render(&self, cached: usize) -> String {
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
        out.push_str("# HELP rise_registry_credential_requests_total Credential requests by project, provider and outcome.\n");
        out.push_str("# TYPE rise_registry_credential_requests_total counter\n");
        for ((provider, outcome), by_project) in self
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (project, n) in by_project {
                let _ = writeln!(
                    out,
                    "rise_registry_credential_requests_total{{project=\"{project}\",provider=\"{provider}\",outcome=\"{outcome}\"}} {n}"
                );
            }
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
        out.push_str("# HELP rise_registry_provider_call_duration_seconds Time to issue credentials upstream (AssumeRole + GetAuthorizationToken for ECR).\n");
        out.push_str("# TYPE rise_registry_provider_call_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, count) in self.latency_buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "rise_registry_provider_call_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "rise_registry_provider_call_duration_seconds_sum {sum}"
        );
        let _ = writeln!(
            out,
            "rise_registry_provider_call_duration_seconds_count {cumulative}"
        );
        out.push_str("# HELP rise_registry_credential_cache_entries Projects with credentials in the cache.\n");
        out.push_str("# TYPE rise_registry_credential_cache_entries gauge\n");
        let _ = writeln!(out, "rise_registry_credential_cache_entries {cached}");
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
        m.credential("my-app", "ecr", "issued");
        m.provider_call(true, std::time::Duration::from_millis(70));
        m.provider_call(false, std::time::Duration::from_secs(30));
        let text = m.render(1);
        assert!(
            text.contains(
                "rise_registry_http_requests_total{route=\"credentials\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "rise_registry_credential_requests_total{project=\"my-app\",provider=\"ecr\",outcome=\"issued\"} 1\n"
        ));
        assert!(text.contains("rise_registry_provider_calls_total{result=\"ok\"} 1\n"));
        assert!(text.contains("rise_registry_provider_calls_total{result=\"error\"} 1\n"));
        assert!(text.contains("_bucket{le=\"0.05\"} 0\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("rise_registry_provider_call_duration_seconds_count 2\n"));
        assert!(text.contains("rise_registry_credential_cache_entries 1\n"));
    }
}
