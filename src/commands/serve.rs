//! `rise-registry serve`: wire config to the server and run until SIGTERM
//! or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::registry::create_registry_provider;
use crate::run::Status;
use crate::serve::{self, App, Limits};

pub fn run(config: Config, listen: Option<SocketAddr>) -> Result<Status> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, listen))?;
    Ok(Status::Success)
}

async fn serve(config: Config, listen: Option<SocketAddr>) -> Result<()> {
    let addr = listen.unwrap_or(config.server.listen);
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
    let limits = Limits::from_config(&config.server);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let app = Arc::new(App::new(config, auth, provider, Box::new(audit_to_stdout)));
    tracing::info!(
        addr = %local,
        tls = tls.is_some(),
        registry = app.config().registry.type_name(),
        projects = app.config().projects.len(),
        "serving"
    );
    serve::run(listener, app, limits, tls, shutdown_signal()).await
}

/// Audit lines are data: stdout, one JSON object per line, apart from the
/// logs on stderr.
fn audit_to_stdout(line: &str) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
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
