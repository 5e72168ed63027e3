//! A loopback proxy in front of the AWS emulator that answers a share of
//! calls with AWS's throttling error instead of forwarding them, as AWS
//! does under load. The emulator cannot throttle by itself.
//!
//! The share is a pseudo-random pick with a fixed seed, so a run is
//! repeatable for the same order of requests. JSON-protocol calls (ECR,
//! with `X-Amz-Target`) get `ThrottlingException`; query-protocol calls
//! (IAM, STS) get the XML `Throttling` error. Both are what the SDK treats
//! as retryable throttling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub struct ThrottlingProxy {
    pub addr: SocketAddr,
    /// Percent of calls answered with throttling; change it at any time.
    pub percent: Arc<AtomicU32>,
    pub throttled: Arc<AtomicU64>,
    pub forwarded: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThrottlingProxy {
    pub fn start(upstream: SocketAddr, percent: u32) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let percent = Arc::new(AtomicU32::new(percent));
        let throttled = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (p, t, f) = (percent.clone(), throttled.clone(), forwarded.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
                let seed = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
                loop {
                    let stream = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    let (client, p, t, f, seed) = (
                        client.clone(),
                        p.clone(),
                        t.clone(),
                        f.clone(),
                        seed.clone(),
                    );
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (client, p, t, f, seed) = (
                                client.clone(),
                                p.clone(),
                                t.clone(),
                                f.clone(),
                                seed.clone(),
                            );
                            async move {
                                let roll = next(&seed) % 100;
                                if roll < u64::from(p.load(Ordering::Relaxed)) {
                                    t.fetch_add(1, Ordering::Relaxed);
                                    return Ok::<_, hyper::Error>(throttle(&req));
                                }
                                f.fetch_add(1, Ordering::Relaxed);
                                Ok(forward(&client, upstream, req).await)
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self {
            addr,
            percent,
            throttled,
            forwarded,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// xorshift64, shared by all connections.
fn next(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    loop {
        let mut y = x;
        y ^= y << 13;
        y ^= y >> 7;
        y ^= y << 17;
        match state.compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return y,
            Err(now) => x = now,
        }
    }
}

fn throttle<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let json = req.headers().contains_key("x-amz-target");
    let (content_type, body) = if json {
        (
            "application/x-amz-json-1.1",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string(),
        )
    } else {
        (
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error><RequestId>throttle</RequestId></ErrorResponse>"
                .to_string(),
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    if json {
        r.headers_mut()
            .insert("x-amzn-errortype", "ThrottlingException".parse().unwrap());
    }
    r
}

async fn forward(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = format!("http://{upstream}{path}").parse().unwrap();
    match client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(_) => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"upstream unreachable")));
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            r
        }
    }
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
