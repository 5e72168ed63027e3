//! Clients for talking to the server under test: hyper's, and a plain
//! keep-alive socket client ([`Conn`]) for tests that count connections or
//! time requests without a pool in between. And [`spawn_server`], a small
//! HTTP server of the tests' own (a baseline, a proxy).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request with optional bearer token.
pub async fn request(method: Method, url: &str, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    send(method, url, &headers, "").await
}

/// Sends one request with the given headers and body (with
/// `Content-Length`).
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = client
        .request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(url: &str, token: Option<&str>) -> Reply {
    request(Method::GET, url, token).await
}

/// A keep-alive HTTP/1.1 connection that reads `Content-Length` bodies.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Conn {
    /// Connects on the first request, and again if the server closed.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// `GET path` with an optional bearer token: status and body.
    pub fn get(&mut self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
        loop {
            // Only a kept-alive connection the server may have closed in
            // the meantime earns a second try; a fresh one must answer.
            let reused = self.stream.is_some();
            let s = match &mut self.stream {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(self.addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    self.stream.insert(s)
                }
            };
            if s.write_all(req.as_bytes()).is_ok()
                && let Some(reply) = read_response(s)
            {
                return reply;
            }
            self.stream = None;
            if !reused {
                break;
            }
        }
        panic!("no answer to {path}");
    }
}

fn read_response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned(),
    ))
}

/// An HTTP/1.1 server on a free loopback port, with its own two-worker
/// runtime; it stops when dropped.
pub struct LoopbackServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Serves every request with `handle`.
pub fn spawn_server<F, Fut>(handle: F) -> LoopbackServer
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => return,
                };
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let response = handle(req);
                        async move { Ok::<_, std::convert::Infallible>(response.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    LoopbackServer {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
