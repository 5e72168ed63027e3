//! serve inside the test's own process, the way `commands::serve` runs it:
//! a listener bound here on `127.0.0.1:0`, [`rise_registry::serve::run`]
//! spawned on the test's runtime with a shutdown the test holds, audit
//! lines captured through the [`AuditSink`] and logs through a `tracing`
//! subscriber of its own.
//!
//! Starting takes milliseconds instead of a process start, the audit is
//! there as soon as the response is (no writer thread to wait for), and
//! the server's clock is the test's: `tokio::time::pause` and `advance`
//! reach the credential cache and the JWKS refresh interval. Tests that
//! run blocking clients (skopeo, std sockets) use a multi-thread runtime
//! so the server's tasks keep running meanwhile.
//!
//! What only the real process shows (signals, TLS set-up from config, the
//! CLI, memory) stays with [`super::server::Serve`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rise_registry::config::{Config, RegistryConfig};
use rise_registry::registry::RegistryProvider;
use rise_registry::registry::ecr::EcrProvider;
use rise_registry::serve::app::AuditSink;
use rise_registry::serve::{self, App, Limits};
use tracing::instrument::WithSubscriber;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The running application, for tests that reload its config.
    pub app: Arc<App>,
    audit: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<Vec<u8>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The renewal loop, when [`TestServer::renew_ahead`] started it.
    renewal: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl TestServer {
    /// Loads `config` as the only layer and serves it. An `ecr` provider
    /// gets the emulator's admin keys (the binary's tests give it them in
    /// its environment).
    pub async fn start(config: &str) -> Self {
        let config = super::load_config(&[("default.yaml", config)], &[])
            .unwrap_or_else(|e| panic!("the test config does not load:\n{e}"));
        let logs: Arc<Mutex<Vec<u8>>> = Arc::default();
        // INFO, as the binary's tests run it (`RUST_LOG=info`).
        let writer = Captured(logs.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let dispatch = tracing::Dispatch::new(subscriber);
        let provider = provider(&config).with_subscriber(dispatch.clone()).await;
        let auth = rise_registry::auth::Authenticator::new(&config.auth)
            .with_subscriber(dispatch.clone())
            .await
            .expect("the authenticator");
        let limits = Limits::from_config(&config.server);
        let audit: Arc<Mutex<Vec<String>>> = Arc::default();
        let lines = audit.clone();
        let sink: AuditSink = Box::new(move |line: &str| {
            lines.lock().unwrap().push(line.to_string());
        });
        let app = Arc::new(App::new(config, auth, provider, sink));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            serve::run(listener, app.clone(), limits, None, async {
                let _ = stopped.await;
            })
            .with_subscriber(dispatch),
        );
        Self {
            addr,
            app,
            audit,
            logs,
            shutdown: Some(shutdown),
            task: Some(task),
            renewal: None,
        }
    }

    /// Starts the background renewal of credentials (serve runs it from
    /// the start; tests that count issuances opt in), stopped with the
    /// server.
    pub fn renew_ahead(&mut self) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(rise_registry::serve::pacing::renew(
            self.app.clone(),
            stopped,
        ));
        self.renewal = Some((stop, task));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The audit lines, parsed; there must be exactly `expected`. A line
    /// is written before its response, so there is nothing to wait for.
    pub fn audit(&self, expected: usize) -> Vec<serde_json::Value> {
        let lines = self.audit.lock().unwrap().clone();
        assert_eq!(lines.len(), expected, "audit lines:\n{}", lines.join("\n"));
        lines
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The latest audit line, parsed; there must be one.
    pub fn last_audit(&self) -> serde_json::Value {
        let lines = self.audit.lock().unwrap();
        let line = lines.last().expect("an audit line");
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}"))
    }

    /// Every audit line so far, as written (one per line).
    pub fn audit_text(&self) -> String {
        self.audit.lock().unwrap().join("\n")
    }

    /// The audit lines that match `keep`; at least one must.
    pub fn audit_matching(
        &self,
        keep: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let text = self.audit_text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l| keep(l))
            .collect();
        assert!(!lines.is_empty(), "no matching audit line in:\n{text}");
        lines
    }

    /// What serve logged, as text.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    /// One value from `/metrics`: `series` is the metric name with its
    /// labels, as printed; 0 when the series is absent.
    pub async fn metric(&self, series: &str) -> u64 {
        let body = super::http::get(&self.url("/metrics"), None).await.body;
        body.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Stops serving the way SIGTERM does and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("serve::run did not panic")
                .expect("serve::run");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some((_, task)) = self.renewal.take() {
            task.abort();
        }
    }
}

/// A log writer into a shared buffer.
#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The provider `config` names; `ecr` with the emulator's admin keys in
/// place of the default credential chain.
async fn provider(config: &Config) -> RegistryProvider {
    match &config.registry {
        RegistryConfig::Ecr(ecr) => {
            let sdk = rise_registry::aws::sdk_config(
                ecr.region.as_str(),
                ecr.endpoint_url.as_deref(),
                rise_registry::aws::Caller::Serve,
            )
            .await
            .to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                aws_sdk_sts::config::Credentials::new(
                    super::ADMIN_KEY,
                    super::ADMIN_KEY,
                    None,
                    None,
                    "test-admin",
                ),
            ))
            .build();
            RegistryProvider::Ecr(EcrProvider::from_sdk_config(ecr, &sdk))
        }
        other => RegistryProvider::new(other)
            .await
            .expect("the registry provider"),
    }
}
