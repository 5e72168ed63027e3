//! `rise-registry serve`: wire config to the server and run until SIGTERM
//! or SIGINT, reloading the config on SIGHUP and when its files change
//! ([`crate::serve::reload`] says what a reload may change).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Status;
use crate::auth::Authenticator;
use crate::config::{self, Config, Location, Source, check_serve_secret};
use crate::registry::create_registry_provider;
use crate::serve::{self, App, Limits, Surface};

/// Serves until SIGTERM or SIGINT. Before anything starts, refuses a
/// published example secret unless `run_mode` is development on loopback.
pub fn run(config: Config, location: &Location, listen: Option<SocketAddr>) -> Result<Status> {
    super::config::check_files(&config)?;
    let addr = listen.unwrap_or(config.server.listen);
    let addrs: Vec<SocketAddr> = [addr]
        .into_iter()
        .chain(config.server.metrics_listen)
        .collect();
    check_serve_secret(&config.auth, location.run_mode(), &addrs)?;
    let runtime = crate::runtime::build()?;
    let source = ConfigSource {
        location: location.clone(),
        addrs,
    };
    runtime.block_on(serve(config, addr, source))?;
    Ok(Status::Success)
}

/// Where the running config came from, to load it again.
struct ConfigSource {
    location: Location,
    /// The addresses serve listens on, for the secret check.
    addrs: Vec<SocketAddr>,
}

async fn serve(config: Config, addr: SocketAddr, source: ConfigSource) -> Result<()> {
    let tls = config
        .server
        .tls
        .as_ref()
        .map(serve::tls::acceptor)
        .transpose()?;
    let auth = Authenticator::new(&config.auth).await?;
    let provider = create_registry_provider(&config.registry)
        .await
        .context("setting up the registry provider")?;
    // Before the port is bound: a store that cannot be opened stops
    // serve before anything could connect.
    let store =
        match &config.store {
            Some(store) => Some(crate::store::Store::open(&store.url).await.with_context(
                || format!("opening the project store ({})", store.url.describe()),
            )?),
            None => None,
        };
    let limits = Limits::from_config(&config.server);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let ops_listener = match config.server.metrics_listen {
        Some(ops) => Some(
            TcpListener::bind(ops)
                .await
                .with_context(|| format!("listening on {ops} (server.metrics_listen)"))?,
        ),
        None => None,
    };
    let (audit, audit_writer) = audit_to_stdout();
    let mut app = App::new(config, auth, provider, audit);
    if let Some(store) = store {
        app = app.with_store(store);
    }
    let app = Arc::new(app);
    // The first read before the listener answers: a project of the store
    // is never refused for having been read too late.
    if let Some(link) = app.store_link() {
        serve::follow::full_read(&app, link)
            .await
            .context("reading the project store")?;
        let live = app.live();
        for name in serve::snapshot::clashes(&live.base, &live.rows) {
            tracing::warn!(project = %name, "a project of the store has the name of one declared in config: the config's wins, the store's row is ignored");
        }
    }
    tracing::info!(
        addr = %local,
        metrics_addr = ?ops_listener.as_ref().and_then(|l| l.local_addr().ok()),
        tls = tls.is_some(),
        registry = app.config().registry.type_name(),
        projects = app.config().projects.len(),
        "serving"
    );
    // One signal stops both listeners.
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let watcher = tokio::spawn(watch_config(app.clone(), source, stopped.clone()));
    let follower = tokio::spawn(serve::follow::follow(app.clone(), stopped.clone()));
    let controller = tokio::spawn(serve::controller::run(app.clone(), stopped.clone()));
    let renewer = tokio::spawn(serve::pacing::renew(app.clone(), stopped.clone()));
    let ops = ops_listener.map(|l| {
        let limits = Limits {
            max_connections: OPS_MAX_CONNECTIONS,
            ..limits.clone()
        };
        let shutdown = until_stopped(stopped.clone());
        tokio::spawn(serve::run_on(
            Surface::Ops,
            l,
            app.clone(),
            limits,
            None,
            shutdown,
        ))
    });
    serve::run(listener, app, limits, tls, until_stopped(stopped)).await?;
    if let Some(ops) = ops {
        ops.await
            .context("the metrics listener stopped abnormally")??;
    }
    watcher.abort();
    follower.abort();
    renewer.abort();
    // The controller gives its lease up on the way out, so another replica
    // leads at once rather than when the lease runs out.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), controller).await;
    audit_writer.finish();
    Ok(())
}

/// How often the config directory is read for changes. Reading three small
/// files costs nothing; a mounted ConfigMap changes on the kubelet's
/// schedule (a minute or so) anyway.
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Reloads the config on SIGHUP, and when the layer files' contents change.
/// Contents, not modification times or inotify events: a Kubernetes
/// ConfigMap volume updates by swapping a `..data` symlink, which changes
/// neither the watched names nor, often, their times; reading through the
/// links sees the swap whatever way it was made.
async fn watch_config(app: Arc<App>, source: ConfigSource, mut stopped: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; the config reloads only when its files change");
            None
        }
    };
    let mut settle = Settle::new(fingerprint(&source.location.read_layers()));
    // When to try refused files again, and the wait before that try.
    let mut retry: Option<(tokio::time::Instant, Duration)> = None;
    let mut tick = tokio::time::interval(CONFIG_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let trigger = tokio::select! {
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => "SIGHUP",
            _ = tick.tick() => "files",
            _ = stopped.wait_for(|s| *s) => return,
        };
        let sources = source.location.read_layers();
        let now = fingerprint(&sources);
        // SIGHUP is an operator's word: applied at once. A change in the
        // files waits until they have read the same for CONFIG_SETTLE.
        let at = tokio::time::Instant::now();
        // The files that were refused, still as they were: tried again once
        // the back-off has passed (a refusal for keys that could not be
        // fetched may pass by itself). Never files still settling.
        let retry_due = retry.is_some_and(|(due, _)| at >= due) && settle.is_applied(&now);
        let trigger = if trigger == "SIGHUP" {
            settle.applied(now);
            Some("SIGHUP")
        } else if settle.read(now, at) {
            Some("files")
        } else if retry_due {
            Some("retry")
        } else {
            None
        };
        if let Some(trigger) = trigger {
            retry = match reload(&app, &source, sources, trigger).await {
                Reloaded::Refused => {
                    // Files new to this refusal start the back-off afresh.
                    let wait = match retry {
                        Some((_, wait)) if trigger == "retry" => (wait * 2).min(RETRY_MAX),
                        _ => RETRY_FIRST,
                    };
                    Some((at + wait, wait))
                }
                Reloaded::Applied | Reloaded::Invalid => None,
            };
        }
    }
}

/// A refused reload is tried again after this, then twice as long each
/// time, up to [`RETRY_MAX`], while the files stay as they are.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What became of a reload.
enum Reloaded {
    Applied,
    /// The files do not load: they must change before another try.
    Invalid,
    /// They load, but the new config could not be put in place (keys of an
    /// issuer that verifies tokens now could not be fetched): may pass.
    Refused,
}

/// How long changed files must read the same before they are applied: a
/// writer that rewrites a file in place (truncate, then write) may pause
/// halfway, and a half-written file can read as a valid config that
/// grants more than either the old or the new one (a rule cut before its
/// last condition). Two polls at least, so a pause shorter than this is
/// never applied. A ConfigMap's atomic swap only waits this long.
const CONFIG_SETTLE: Duration = Duration::from_secs(3);

/// When a change in the config files is applied: once they have read the
/// same for [`CONFIG_SETTLE`]. Pure: times are given.
#[derive(Debug)]
struct Settle<F> {
    /// The files as last applied or refused (a refused config is reported
    /// once, not every poll).
    seen: F,
    /// Files that differ from `seen`, and since when they read so.
    pending: Option<(F, tokio::time::Instant)>,
}

impl<F: PartialEq> Settle<F> {
    fn new(seen: F) -> Self {
        Self {
            seen,
            pending: None,
        }
    }

    /// `now` was applied without waiting (SIGHUP).
    fn applied(&mut self, now: F) {
        self.seen = now;
        self.pending = None;
    }

    /// Whether `read` is what was last applied (or refused).
    fn is_applied(&self, read: &F) -> bool {
        *read == self.seen
    }

    /// The files read `read` at `at`: whether to apply them now.
    fn read(&mut self, read: F, at: tokio::time::Instant) -> bool {
        if read == self.seen {
            // Back to what runs (a writer that put the old text back).
            self.pending = None;
            return false;
        }
        match &self.pending {
            Some((files, since)) if *files == read => {
                if at.duration_since(*since) >= CONFIG_SETTLE {
                    self.applied(read);
                    return true;
                }
                false
            }
            // New, or still moving: the settle window starts again.
            _ => {
                self.pending = Some((read, at));
                false
            }
        }
    }
}

/// The layer files' names and texts, or the error reading them.
fn fingerprint(
    sources: &Result<Vec<Source>, config::ConfigErrors>,
) -> Result<Vec<(String, String)>, String> {
    match sources {
        Ok(sources) => Ok(sources
            .iter()
            .map(|s| (s.file.to_string(), s.text.clone()))
            .collect()),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads, validates and applies the config read; refused, it is logged
/// with every problem (file, key and line) and counted, and the running
/// config stays.
async fn reload(
    app: &App,
    source: &ConfigSource,
    sources: Result<Vec<Source>, config::ConfigErrors>,
    trigger: &'static str,
) -> Reloaded {
    let dir_label: Arc<str> = Arc::from(source.location.dir().display().to_string());
    let env = |k: &str| std::env::var(k).ok();
    let loaded = sources
        .and_then(|s| config::load_sources(&s, &dir_label, &env))
        .map_err(|e| e.to_string())
        .and_then(|c| {
            check_serve_secret(&c.auth, source.location.run_mode(), &source.addrs)
                .map(|()| c)
                .map_err(|e| format!("{e:#}"))
        });
    let refused = |reason: String| {
        app.metrics.reload(false);
        app.metrics.set_config_stale(true);
        tracing::error!(
            trigger,
            "config reload refused; the running config stays:\n{reason}"
        );
    };
    let config = match loaded {
        Ok(config) => config,
        Err(reason) => {
            refused(reason);
            return Reloaded::Invalid;
        }
    };
    match app.reload(config).await {
        Err(e) => {
            refused(e.to_string());
            Reloaded::Refused
        }
        Ok(change) => {
            app.metrics.reload(true);
            app.metrics.set_config_stale(false);
            tracing::info!(
                trigger,
                added = ?change.added,
                removed = ?change.removed,
                auth_changed = change.auth_changed,
                projects = change.config.projects.len(),
                access = ?change.access,
                "config reloaded"
            );
            if !change.restart_needed.is_empty() {
                tracing::warn!(
                    settings = ?change.restart_needed,
                    "these settings changed but apply only after a restart; serve keeps running with their old values"
                );
            }
            Reloaded::Applied
        }
    }
}

/// Connections the metrics listener serves at once: scrapers and probes
/// are few, and keep their slots whatever the API listener carries.
const OPS_MAX_CONNECTIONS: usize = 64;

/// How often the audit writer wakes to write what has queued up.
const AUDIT_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);
/// Past this many queued bytes, a request writes the queue out itself, so a
/// stalled stdout cannot grow memory without bound.
const AUDIT_QUEUE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Audit lines are data: stdout, one JSON object per line, apart from the
/// logs on stderr. Requests append their line to one shared buffer; a
/// dedicated thread swaps the buffer out every [`AUDIT_FLUSH_EVERY`] and
/// writes it in one go. Nothing wakes that thread per request, and no line
/// is allocated in one thread and freed in another (which makes the
/// allocator take locks): at thousands of requests a second either costs
/// more than the request itself. Lines are at most that period late; the
/// rest are written when serve stops.
fn audit_to_stdout() -> (crate::serve::app::AuditSink, AuditWriter) {
    let queue: Arc<std::sync::Mutex<String>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (q, s) = (queue.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut spare = String::new();
        loop {
            let stopping = s.load(std::sync::atomic::Ordering::Acquire);
            write_out(&q, &mut spare);
            if stopping {
                break;
            }
            std::thread::sleep(AUDIT_FLUSH_EVERY);
        }
    });
    let sink_queue = queue.clone();
    let sink = Box::new(move |line: &str| {
        let full = {
            let mut q = sink_queue.lock().unwrap_or_else(|e| e.into_inner());
            q.push_str(line);
            q.push('\n');
            q.len() >= AUDIT_QUEUE_MAX_BYTES
        };
        if full {
            write_out(&sink_queue, &mut String::new());
        }
    });
    (sink, AuditWriter { stop, thread })
}

/// Swaps the queued lines for `spare` (keeping both buffers' capacity) and
/// writes them to stdout in one go.
fn write_out(queue: &std::sync::Mutex<String>, spare: &mut String) {
    std::mem::swap(&mut *queue.lock().unwrap_or_else(|e| e.into_inner()), spare);
    if spare.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(spare.as_bytes());
    let _ = out.flush();
    spare.clear();
}

/// The audit writer thread; [`AuditWriter::finish`] writes what is left.
struct AuditWriter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl AuditWriter {
    fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.thread.join();
    }
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT will stop serve");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn changed_files_apply_once_they_read_the_same_for_the_settle_window() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut settle = Settle::new("a");
        assert!(!settle.read("a", at(2)), "unchanged");
        // Half-written at 2 s, whole at 4 s: the half is never applied.
        assert!(!settle.read("a-half", at(2)));
        assert!(!settle.read("a-whole", at(4)));
        assert!(!settle.read("a-whole", at(6)));
        assert!(settle.read("a-whole", at(8)), "the same for 4 s >= 3 s");
        assert!(!settle.read("a-whole", at(10)), "applied once");
        // A change that goes back before it settles applies nothing.
        assert!(!settle.read("b", at(12)));
        assert!(!settle.read("a-whole", at(14)));
        assert!(!settle.read("a-whole", at(20)));
        // SIGHUP applies at once and the window starts from there.
        settle.applied("c");
        assert!(!settle.read("c", at(22)));
    }
}
