//! Prometheus text metrics, kept in atomics; no exporter crate is needed
//! for a handful of counters.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::auth::AccessKind;

/// Upper bounds (seconds) of the provider-call latency histogram.
const LATENCY_BUCKETS: [f64; 9] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The routes serve answers, as labelled in metrics.
pub(crate) const ROUTES: [&str; 7] = [
    "credentials",
    "projects",
    "token",
    "healthz",
    "readyz",
    "metrics",
    "other",
];
/// Statuses serve's handlers produce; anything else counts as `other`.
const STATUSES: [u16; 13] = [
    200, 201, 202, 400, 401, 404, 405, 409, 412, 413, 429, 500, 503,
];
/// Outcomes of a credential request as metrics count them: the audit
/// line's `outcome`, except that its `unknown_project` and `not_permitted`
/// are one `not_found` here, as in the response.
pub(crate) const OUTCOMES: [&str; 11] = [
    "issued",
    "not_ready",
    "cache_hit",
    "stale",
    "bad_request",
    "unauthenticated",
    "rate_limited",
    "not_found",
    "unavailable",
    "method_not_allowed",
    "no_route",
];

/// What a call of the projects API that changes a project came to.
pub(crate) const CHANGE_OUTCOMES: [&str; 8] = [
    "created",
    "updated",
    "deleting",
    "invalid",
    "conflict",
    "precondition_failed",
    "not_found",
    "unavailable",
];

/// The certificates whose expiry serve exports: `server.tls`'s chain and
/// the `oci-token` signing chain.
pub(crate) const CERTIFICATES: [&str; 2] = ["tls", "oci-token"];

/// This build's version and the commit it was built from (set by
/// `scripts/release` and the Dockerfile through `RISE_REGISTRY_REVISION`;
/// `unknown` for a plain `cargo build`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("RISE_REGISTRY_REVISION");

/// One counter per access kind (push, pull) and credential outcome.
type OutcomeCounters = [[AtomicU64; OUTCOMES.len()]; AccessKind::ALL.len()];

/// Counters are all fixed (routes, statuses, the configured projects,
/// outcomes), so counting is one atomic add: no lock, no allocation, and no
/// label a caller could invent. Only a config reload changes the project
/// set ([`Metrics::set_projects`]).
pub struct Metrics {
    provider: &'static str,
    /// Whether credential counters are kept and shown per project
    /// (`server.metrics_project_labels`); without, one set of counters
    /// with no `project` label counts every request.
    project_labels: bool,
    /// [route][status index, then `other`].
    requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES.len()],
    /// Per configured project, plus `-` for requests not authorised for
    /// one of them; one counter per outcome. Replaced whole on a config
    /// reload, keeping the counters of projects that stay.
    credentials: ArcSwap<HashMap<String, Arc<OutcomeCounters>>>,
    provider_calls_ok: AtomicU64,
    provider_calls_failed: AtomicU64,
    /// Counts per bucket of [`LATENCY_BUCKETS`], then +Inf.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    pub connections_open: AtomicI64,
    connections_total: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// 1 while a reloaded config changes settings that apply only after a
    /// restart.
    restart_required: AtomicI64,
    /// 1 while the files hold a config that was refused and serve runs an
    /// older one.
    config_stale: AtomicI64,
    /// Project changes through the API: [put, delete][outcome].
    project_changes: [[AtomicU64; CHANGE_OUTCOMES.len()]; 2],
    /// -1 without a store; else 1 while its last read succeeded.
    store_up: AtomicI64,
    /// Projects held in the store (all states).
    store_projects: AtomicI64,
    /// -1 without the controller; else 1 on the leader, 0 elsewhere.
    controller_leader: AtomicI64,
    /// Controller passes that ended [ok, failed].
    controller_passes: [AtomicU64; 2],
    /// The last pass's duration, in milliseconds.
    controller_last_pass_ms: AtomicU64,
    /// Store projects whose repository is not in its final state yet.
    controller_pending: AtomicI64,
    /// Per [`CERTIFICATES`]: the soonest `notAfter` of its chain, Unix
    /// seconds; `i64::MIN` when serve has no such certificate.
    certificate_expiry: [AtomicI64; CERTIFICATES.len()],
    /// The provider's throttled AWS answers (ECR only).
    throttled: Option<crate::aws::sdk::ThrottleCount>,
}

impl Metrics {
    /// Counters for `projects`, labelled by project only with
    /// `project_labels`.
    pub fn new<'a>(
        projects: impl IntoIterator<Item = &'a str>,
        provider: &'static str,
        project_labels: bool,
    ) -> Self {
        let projects = projects.into_iter().filter(|_| project_labels);
        let credentials = ArcSwap::from_pointee(project_counters(projects, &HashMap::new()));
        Self {
            provider,
            project_labels,
            requests: Default::default(),
            credentials,
            provider_calls_ok: AtomicU64::new(0),
            provider_calls_failed: AtomicU64::new(0),
            latency_buckets: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            restart_required: AtomicI64::new(0),
            config_stale: AtomicI64::new(0),
            project_changes: Default::default(),
            store_up: AtomicI64::new(-1),
            store_projects: AtomicI64::new(0),
            controller_leader: AtomicI64::new(-1),
            controller_passes: Default::default(),
            controller_last_pass_ms: AtomicU64::new(0),
            controller_pending: AtomicI64::new(0),
            certificate_expiry: [const { AtomicI64::new(i64::MIN) }; CERTIFICATES.len()],
            throttled: None,
        }
    }

    /// The configured projects after a reload: counters of projects that
    /// stay keep counting, new ones start at 0, removed ones go.
    pub(crate) fn set_projects<'a>(&self, projects: impl IntoIterator<Item = &'a str>) {
        if !self.project_labels {
            return;
        }
        let old = self.credentials.load();
        self.credentials
            .store(Arc::new(project_counters(projects, &old)));
    }

    /// Counts one reload of the config: applied or refused.
    pub(crate) fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the running config is older than the files (their config
    /// was refused).
    pub fn set_config_stale(&self, stale: bool) {
        self.config_stale.store(i64::from(stale), Ordering::Relaxed);
    }

    /// Counts one change through the projects API (`put` or `delete`).
    pub(crate) fn project_change(&self, delete: bool, outcome: &'static str) {
        if let Some(i) = CHANGE_OUTCOMES.iter().position(|o| *o == outcome) {
            self.project_changes[usize::from(delete)][i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether this replica leads the controller.
    pub(crate) fn set_controller_leader(&self, leader: bool) {
        self.controller_leader
            .store(i64::from(leader), Ordering::Relaxed);
    }

    /// Counts one controller pass, how long it took, and what it left
    /// pending.
    pub(crate) fn controller_pass(&self, ok: bool, took: std::time::Duration, pending: usize) {
        self.controller_passes[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        self.controller_last_pass_ms.store(
            u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.controller_pending.store(
            i64::try_from(pending).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Where throttled AWS answers are counted (the ECR provider's
    /// clients).
    pub(crate) fn count_throttles_of(&mut self, counts: crate::aws::sdk::ThrottleCount) {
        self.throttled = Some(counts);
    }

    /// The soonest expiry (Unix seconds) of certificate chain `which` (one
    /// of [`CERTIFICATES`]), read once at start since the files are too.
    pub(crate) fn set_certificate_expiry(&self, which: &str, not_after: i64) {
        if let Some(i) = CERTIFICATES.iter().position(|c| *c == which) {
            self.certificate_expiry[i].store(not_after, Ordering::Relaxed);
        }
    }

    /// Whether the store answered its last read.
    pub(crate) fn set_store_up(&self, up: bool) {
        self.store_up.store(i64::from(up), Ordering::Relaxed);
    }

    /// How many projects the store's snapshot holds.
    pub(crate) fn set_store_projects(&self, n: usize) {
        self.store_projects
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn set_restart_required(&self, required: bool) {
        self.restart_required
            .store(i64::from(required), Ordering::Relaxed);
    }

    pub fn request(&self, route: &'static str, status: u16) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len());
        self.requests[r][s].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one credential request. A project that is not configured
    /// counts as `-`; callers pass `-` themselves until the caller is
    /// authorised for the project.
    pub fn credential(&self, project: &str, access: AccessKind, outcome: &'static str) {
        let credentials = self.credentials.load();
        let counters = credentials.get(project).or_else(|| credentials.get("-"));
        if let (Some(counters), Some(i)) = (counters, OUTCOMES.iter().position(|o| *o == outcome)) {
            counters[access as usize][i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one issuance round trip to the provider and its duration.
    pub(crate) fn provider_call(&self, ok: bool, took: std::time::Duration) {
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

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    /// `cached` is the number of projects with credentials in the cache.
    pub fn render(&self, cached: usize) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "rise_registry_build_info",
            "gauge",
            "1, labelled with the version and the commit serve was built from.",
        );
        let _ = writeln!(
            out,
            "rise_registry_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            label_value(VERSION),
            label_value(REVISION)
        );
        let expiries: Vec<_> = CERTIFICATES
            .iter()
            .zip(&self.certificate_expiry)
            .map(|(name, at)| (name, at.load(Ordering::Relaxed)))
            .filter(|(_, at)| *at != i64::MIN)
            .collect();
        if !expiries.is_empty() {
            family(
                &mut out,
                "rise_registry_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the soonest-expiring certificate of a chain serve loaded at start expires (Unix seconds); rotating it needs a restart.",
            );
            for (name, at) in expiries {
                let _ = writeln!(
                    out,
                    "rise_registry_certificate_expiry_timestamp_seconds{{certificate=\"{name}\"}} {at}"
                );
            }
        }
        family(
            &mut out,
            "rise_registry_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for (route, counts) in ROUTES.iter().zip(&self.requests) {
            for (i, count) in counts.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n > 0 {
                    let status = STATUSES.get(i).map_or("other".to_string(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "rise_registry_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        family(
            &mut out,
            "rise_registry_credential_requests_total",
            "counter",
            "Credential requests by project (with server.metrics_project_labels), access kind, provider and outcome.",
        );
        let provider = self.provider;
        let credentials = self.credentials.load_full();
        let mut projects: Vec<_> = credentials.iter().collect();
        projects.sort_by(|a, b| a.0.cmp(b.0));
        for (project, by_access) in projects {
            for (access, counts) in AccessKind::ALL.iter().zip(by_access.iter()) {
                for (outcome, count) in OUTCOMES.iter().zip(counts.iter()) {
                    let n = count.load(Ordering::Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let _ = if self.project_labels {
                        writeln!(
                            out,
                            "rise_registry_credential_requests_total{{project=\"{project}\",access=\"{access}\",provider=\"{provider}\",outcome=\"{outcome}\"}} {n}"
                        )
                    } else {
                        writeln!(
                            out,
                            "rise_registry_credential_requests_total{{access=\"{access}\",provider=\"{provider}\",outcome=\"{outcome}\"}} {n}"
                        )
                    };
                }
            }
        }
        family(
            &mut out,
            "rise_registry_provider_calls_total",
            "counter",
            "Credential issuances asked of the registry provider (AWS for ECR).",
        );
        for (result, counter) in [
            ("ok", &self.provider_calls_ok),
            ("error", &self.provider_calls_failed),
        ] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rise_registry_provider_calls_total{{result=\"{result}\"}} {n}"
            );
        }
        if let Some(throttled) = &self.throttled {
            family(
                &mut out,
                "rise_registry_provider_throttled_total",
                "counter",
                "AWS answers that throttled the provider's calls, by operation, retries included.",
            );
            // The issuance's two series from the start, so a rate() sees
            // the first throttle; others (the readiness probe's) once seen.
            let mut counts: std::collections::BTreeMap<String, u64> =
                ["AssumeRole", "GetAuthorizationToken"]
                    .into_iter()
                    .map(|o| (o.to_string(), 0))
                    .collect();
            counts.extend(throttled.counts());
            for (operation, n) in counts {
                let _ = writeln!(
                    out,
                    "rise_registry_provider_throttled_total{{operation=\"{}\"}} {n}",
                    label_value(&operation)
                );
            }
        }
        family(
            &mut out,
            "rise_registry_provider_call_duration_seconds",
            "histogram",
            "Time to issue credentials upstream (AssumeRole + GetAuthorizationToken for ECR).",
        );
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
        for (name, kind, help, value) in [
            (
                "rise_registry_credential_cache_entries",
                "gauge",
                "Projects with credentials in the cache.",
                cached as i64,
            ),
            (
                "rise_registry_connections_open",
                "gauge",
                "Client connections open now.",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "rise_registry_connections_total",
                "counter",
                "Client connections accepted.",
                self.connections_total.load(Ordering::Relaxed) as i64,
            ),
            (
                "rise_registry_config_restart_required",
                "gauge",
                "1 while the config on disk changes settings that apply only after a restart.",
                self.restart_required.load(Ordering::Relaxed),
            ),
            (
                "rise_registry_config_stale",
                "gauge",
                "1 while the config files hold a config that was refused, so serve runs an older one (a refusal that may pass, such as keys that could not be fetched, is retried).",
                self.config_stale.load(Ordering::Relaxed),
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        family(
            &mut out,
            "rise_registry_config_reloads_total",
            "counter",
            "Config reloads (SIGHUP or a change in the config directory), applied or refused.",
        );
        for (result, counter) in [("ok", &self.reloads_ok), ("error", &self.reloads_failed)] {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rise_registry_config_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        let leader = self.controller_leader.load(Ordering::Relaxed);
        if leader >= 0 {
            for (name, help, value) in [
                (
                    "rise_registry_controller_leader",
                    "1 on the replica whose controller leads (holds the lease), 0 elsewhere.",
                    leader,
                ),
                (
                    "rise_registry_controller_pending",
                    "Projects of the store whose repository the controller has not brought to its final state (after the last pass).",
                    self.controller_pending.load(Ordering::Relaxed),
                ),
            ] {
                family(&mut out, name, "gauge", help);
                let _ = writeln!(out, "{name} {value}");
            }
            family(
                &mut out,
                "rise_registry_controller_last_pass_seconds",
                "gauge",
                "How long the controller's last pass took (AWS read, plan, changes, states written).",
            );
            let _ = writeln!(
                out,
                "rise_registry_controller_last_pass_seconds {}",
                self.controller_last_pass_ms.load(Ordering::Relaxed) as f64 / 1000.0
            );
            family(
                &mut out,
                "rise_registry_controller_passes_total",
                "counter",
                "Controller passes, by result (`failed`: AWS could not be read or an action failed).",
            );
            for (result, counter) in ["ok", "failed"].iter().zip(&self.controller_passes) {
                let _ = writeln!(
                    out,
                    "rise_registry_controller_passes_total{{result=\"{result}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        let store_up = self.store_up.load(Ordering::Relaxed);
        if store_up >= 0 {
            for (name, help, value) in [
                (
                    "rise_registry_store_up",
                    "1 while the project store answered its last read; credentials keep flowing from the last snapshot while it is 0.",
                    store_up,
                ),
                (
                    "rise_registry_store_projects",
                    "Projects in the project store, in every state.",
                    self.store_projects.load(Ordering::Relaxed),
                ),
            ] {
                family(&mut out, name, "gauge", help);
                let _ = writeln!(out, "{name} {value}");
            }
            family(
                &mut out,
                "rise_registry_project_changes_total",
                "counter",
                "Calls of the projects API that change a project, by operation and outcome.",
            );
            for (op, counts) in ["put", "delete"].iter().zip(&self.project_changes) {
                for (outcome, count) in CHANGE_OUTCOMES.iter().zip(counts) {
                    let n = count.load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "rise_registry_project_changes_total{{op=\"{op}\",outcome=\"{outcome}\"}} {n}"
                        );
                    }
                }
            }
        }
        out
    }
}

/// Counters for `projects` and `-`, taking over those `old` has.
fn project_counters<'a>(
    projects: impl IntoIterator<Item = &'a str>,
    old: &HashMap<String, Arc<OutcomeCounters>>,
) -> HashMap<String, Arc<OutcomeCounters>> {
    projects
        .into_iter()
        .chain(["-"])
        .map(|p| (p.to_string(), old.get(p).cloned().unwrap_or_default()))
        .collect()
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format escapes it: the revision comes from the
/// build's environment and may hold anything.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_certificate_expiry_are_exported() {
        let m = Metrics::new(["a"], "oci-token", false);
        let text = m.render(0);
        assert!(text.contains(&format!(
            "rise_registry_build_info{{version=\"{VERSION}\",revision=\"{REVISION}\"}} 1\n"
        )));
        // No certificate loaded: no series, so an alert on it cannot fire.
        assert!(!text.contains("rise_registry_certificate_expiry_timestamp_seconds"));
        m.set_certificate_expiry("oci-token", 1_900_000_000);
        m.set_certificate_expiry("unknown", 5);
        let text = m.render(0);
        assert!(text.contains(
            "rise_registry_certificate_expiry_timestamp_seconds{certificate=\"oci-token\"} 1900000000\n"
        ));
        assert!(!text.contains("certificate=\"tls\""));
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_new_project_set_keeps_the_counts_of_projects_that_stay() {
        let m = Metrics::new(["a", "b"], "ecr", true);
        m.credential("a", AccessKind::Push, "issued");
        m.credential("b", AccessKind::Push, "issued");
        m.set_projects(["a", "c"]);
        m.credential("c", AccessKind::Push, "cache_hit");
        m.credential("c", AccessKind::Pull, "issued");
        let text = m.render(0);
        assert!(
            text.contains(
                "{project=\"a\",access=\"push\",provider=\"ecr\",outcome=\"issued\"} 1\n"
            )
        );
        assert!(text.contains(
            "{project=\"c\",access=\"push\",provider=\"ecr\",outcome=\"cache_hit\"} 1\n"
        ));
        assert!(
            text.contains(
                "{project=\"c\",access=\"pull\",provider=\"ecr\",outcome=\"issued\"} 1\n"
            )
        );
        assert!(!text.contains("project=\"b\""), "{text}");
        m.credential("b", AccessKind::Push, "not_found");
        assert!(m.render(0).contains(
            "{project=\"-\",access=\"push\",provider=\"ecr\",outcome=\"not_found\"} 1\n"
        ));
    }

    #[test]
    fn without_project_labels_no_project_name_is_shown_and_every_request_counts() {
        let m = Metrics::new(["my-app", "secret-launch"], "ecr", false);
        m.credential("my-app", AccessKind::Push, "issued");
        m.credential("secret-launch", AccessKind::Push, "issued");
        m.credential("-", AccessKind::Push, "not_found");
        m.set_projects(["my-app", "secret-launch", "other"]);
        m.credential("other", AccessKind::Pull, "cache_hit");
        let text = m.render(0);
        let series: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("rise_registry_credential_requests_total{"))
            .collect();
        assert_eq!(
            series,
            [
                "rise_registry_credential_requests_total{access=\"push\",provider=\"ecr\",outcome=\"issued\"} 2",
                "rise_registry_credential_requests_total{access=\"push\",provider=\"ecr\",outcome=\"not_found\"} 1",
                "rise_registry_credential_requests_total{access=\"pull\",provider=\"ecr\",outcome=\"cache_hit\"} 1",
            ],
            "{text}"
        );
        for name in ["my-app", "secret-launch", "other", "project="] {
            assert!(!text.contains(name), "{name} in {text}");
        }
    }

    #[test]
    fn renders_counters_in_prometheus_text() {
        let m = Metrics::new(["my-app"], "ecr", true);
        m.request("credentials", 200);
        m.request("credentials", 200);
        m.request("credentials", 418);
        m.credential("my-app", AccessKind::Push, "issued");
        m.credential("invented", AccessKind::Push, "not_found");
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
            "rise_registry_credential_requests_total{project=\"my-app\",access=\"push\",provider=\"ecr\",outcome=\"issued\"} 1\n"
        ));
        assert!(
            text.contains("{route=\"credentials\",status=\"other\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "{project=\"-\",access=\"push\",provider=\"ecr\",outcome=\"not_found\"} 1\n"
            ),
            "names that are not configured never become labels: {text}"
        );
        assert!(!text.contains("invented"));
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
