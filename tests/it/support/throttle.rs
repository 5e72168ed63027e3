//! A loopback proxy in front of the AWS emulator that answers a share of
//! calls with AWS's throttling error instead of forwarding them, as AWS
//! does under load. The emulator cannot throttle by itself.
//!
//! The share is a pseudo-random pick with a fixed seed, so a run is
//! repeatable for the same order of requests. JSON-protocol calls (ECR,
//! with `X-Amz-Target`) get `ThrottlingException`; query-protocol calls
//! (IAM, STS) get the XML `Throttling` error. Both are what the SDK treats
//! as retryable throttling. With a share of 0 it only forwards, and
//! counts: requests per AWS service, and ECR's operations.
//!
//! [`ThrottlingProxy::invalid_principal`] answers instead the error IAM
//! gives for a few seconds after a role is created when a policy names it
//! (`MalformedPolicyDocument: Invalid principal in policy`), which the
//! emulator never gives: its IAM is consistent at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::http::{LoopbackServer, spawn_server};

pub struct ThrottlingProxy {
    shared: Arc<Shared>,
    server: LoopbackServer,
}

/// What every connection of the proxy shares.
struct Shared {
    upstream: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Percent of calls answered with throttling.
    percent: u64,
    /// The first `.1` IAM writes whose policy names `.0` are answered with
    /// `MalformedPolicyDocument: Invalid principal in policy`.
    invalid_principal: Option<(String, u64)>,
    /// IAM writes seen that name that principal.
    matched: AtomicU64,
    /// Requests seen per signing service (`iam`, `ecr`, `sts`), from the
    /// credential scope of their `Authorization` header.
    services: Mutex<BTreeMap<String, u64>>,
    /// ECR operations seen (`DescribeRepositories`, …).
    ecr_operations: Mutex<BTreeSet<String>>,
    seed: AtomicU64,
    throttled: AtomicU64,
    forwarded: AtomicU64,
}

impl ThrottlingProxy {
    pub fn start(upstream: SocketAddr, percent: u32) -> Self {
        Self::with(upstream, percent, None)
    }

    /// A proxy that answers the first `times` IAM CreateRole,
    /// UpdateAssumeRolePolicy and PutRolePolicy calls whose request names
    /// `principal` as IAM does while a new role is not yet known
    /// everywhere, and forwards everything else.
    pub fn invalid_principal(upstream: SocketAddr, principal: &str, times: u64) -> Self {
        Self::with(upstream, 0, Some((principal.to_string(), times)))
    }

    fn with(upstream: SocketAddr, percent: u32, invalid_principal: Option<(String, u64)>) -> Self {
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            percent: percent.into(),
            invalid_principal,
            matched: AtomicU64::new(0),
            services: Mutex::default(),
            ecr_operations: Mutex::default(),
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            throttled: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let s = shared.clone();
        let server = spawn_server(move |req| {
            let s = s.clone();
            async move { s.answer(req).await }
        });
        Self { shared, server }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Calls answered with throttling or another injected error so far.
    pub fn throttled(&self) -> u64 {
        self.shared.throttled.load(Ordering::Relaxed)
    }

    /// Requests seen so far that were signed for `service` (`iam`, `ecr`).
    pub fn requests_to(&self, service: &str) -> u64 {
        let services = self.shared.services.lock().unwrap();
        services.get(service).copied().unwrap_or(0)
    }

    /// The ECR operations requested so far, such as `CreateRepository`.
    pub fn ecr_operations(&self) -> BTreeSet<String> {
        self.shared.ecr_operations.lock().unwrap().clone()
    }

    /// Calls passed on to the emulator so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }
}

impl Shared {
    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        self.record(&req);
        if self.percent > 0 && next(&self.seed) % 100 < self.percent {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return throttle(&req);
        }
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Some((principal, times)) = &self.invalid_principal
            && names_principal_in_iam_write(&body, principal)
            && self.matched.fetch_add(1, Ordering::Relaxed) < *times
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return invalid_principal(principal);
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        forward(
            &self.client,
            self.upstream,
            Request::from_parts(parts, body),
        )
        .await
    }
}

/// Whether a query-protocol body is an IAM call that writes a policy
/// (CreateRole, UpdateAssumeRolePolicy, PutRolePolicy) naming `principal`.
fn names_principal_in_iam_write(body: &[u8], principal: &str) -> bool {
    let form = String::from_utf8_lossy(body).replace('+', " ");
    let form = percent_encoding::percent_decode_str(&form).decode_utf8_lossy();
    let writes = ["CreateRole", "UpdateAssumeRolePolicy", "PutRolePolicy"];
    form.split('&')
        .any(|pair| writes.iter().any(|w| pair == format!("Action={w}")))
        && form.contains(principal)
}

fn invalid_principal(principal: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>\
         <Code>MalformedPolicyDocument</Code><Message>Invalid principal in policy: \"AWS\":\"{principal}\"</Message>\
         </Error><RequestId>consistency</RequestId></ErrorResponse>"
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
    r.headers_mut()
        .insert("content-type", "text/xml".parse().unwrap());
    r
}

impl Shared {
    /// Counts the request by service, and ECR's by operation.
    fn record<B>(&self, req: &Request<B>) {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        // `Credential=AKID/20260101/us-east-1/iam/aws4_request, …`
        let service = header("authorization")
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unsigned")
            .to_string();
        *self.services.lock().unwrap().entry(service).or_default() += 1;
        if let Some(op) =
            header("x-amz-target").strip_prefix("AmazonEC2ContainerRegistry_V20150921.")
        {
            self.ecr_operations.lock().unwrap().insert(op.to_string());
        }
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
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: SocketAddr,
    req: Request<Bytes>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
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
