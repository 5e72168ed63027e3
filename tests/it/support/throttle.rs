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
//!
//! [`ThrottlingProxy::aws_like`] is AWS as plan/apply meet it: every
//! request waits a fixed delay (default 30 ms, a round trip to a nearby
//! region) before it is answered, requests above a fixed rate get the
//! throttling error (a token bucket holding one second of requests), and
//! the Resource Groups Tagging API's `GetResources` is answered from the
//! emulator's ECR tags (fakecloud answers it, but never lists ECR
//! repositories), or denied.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// GetRolePolicy answers have their document cut short, so it is no
    /// longer JSON ([`ThrottlingProxy::garbling_policies`]).
    garble_policies: std::sync::atomic::AtomicBool,
    /// Requests seen per signing service (`iam`, `ecr`, `sts`), from the
    /// credential scope of their `Authorization` header.
    services: Mutex<BTreeMap<String, u64>>,
    /// ECR operations seen (`DescribeRepositories`, …).
    ecr_operations: Mutex<BTreeSet<String>>,
    seed: AtomicU64,
    throttled: AtomicU64,
    forwarded: AtomicU64,
    /// Requests seen, answered or not.
    requests: AtomicU64,
    latency: Latency,
    /// Tokens left and when they were last topped up.
    bucket: Mutex<(f64, Instant)>,
    /// The same, per operation with a quota.
    quota_buckets: Mutex<BTreeMap<String, (f64, Instant)>>,
    /// Calls per operation (any service), answered or throttled, and the
    /// throttled ones.
    operations: Mutex<BTreeMap<String, u64>>,
    throttled_operations: Mutex<BTreeMap<String, u64>>,
    /// Results of `GetResources` calls, kept for their later pages.
    tagging_pages: Mutex<Vec<Vec<serde_json::Value>>>,
    ecr: aws_sdk_ecr::Client,
}

/// What [`ThrottlingProxy::aws_like`] adds to the emulator.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Added before every answer.
    pub delay: Duration,
    /// Requests per second above which calls are throttled (`None`: never).
    pub rate: Option<u32>,
    /// Answer `GetResources` from the emulator's ECR tags.
    pub tagging: Tagging,
    /// Per-operation quotas, as AWS enforces them per account and region:
    /// `(operation, per second, burst)`, e.g. ECR's
    /// `("GetAuthorizationToken", 20, 200)`. Calls of that operation
    /// beyond its bucket get the throttling error.
    pub quotas: Vec<(&'static str, u32, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    /// Passed to the emulator, which lists no ECR repository.
    Forward,
    /// Answered from the emulator's repositories and their tags.
    Answer,
    /// Answered with `AccessDeniedException`, as for a role without
    /// `tag:GetResources`.
    Deny,
    /// Answered, page after page, with no resource and the same
    /// `PaginationToken`: a broken endpoint that would keep a reader
    /// paging forever.
    Loop,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(30),
            rate: None,
            tagging: Tagging::Answer,
            quotas: Vec::new(),
        }
    }
}

impl ThrottlingProxy {
    pub fn start(upstream: SocketAddr, percent: u32) -> Self {
        Self::with(upstream, percent, None, None)
    }

    /// AWS's latency and throttling in front of the emulator, as
    /// `latency` describes.
    pub fn aws_like(upstream: SocketAddr, latency: Latency) -> Self {
        Self::with(upstream, 0, None, Some(latency))
    }

    /// AWS's Resource Groups Tagging API as `tagging` says, with no delay
    /// or rate limit; everything else forwarded.
    pub fn tagging(upstream: SocketAddr, tagging: Tagging) -> Self {
        Self::aws_like(
            upstream,
            Latency {
                delay: Duration::ZERO,
                rate: None,
                tagging,
                quotas: Vec::new(),
            },
        )
    }

    /// A proxy that answers the first `times` IAM CreateRole,
    /// UpdateAssumeRolePolicy and PutRolePolicy calls whose request names
    /// `principal` as IAM does while a new role is not yet known
    /// everywhere, and forwards everything else.
    pub fn invalid_principal(upstream: SocketAddr, principal: &str, times: u64) -> Self {
        Self::with(upstream, 0, Some((principal.to_string(), times)), None)
    }

    /// A proxy that forwards everything but cuts the document of every
    /// GetRolePolicy answer short, as a broken endpoint might: IAM itself
    /// (and the emulator) refuses to store a policy that is not JSON.
    pub fn garbling_policies(upstream: SocketAddr) -> Self {
        let proxy = Self::with(upstream, 0, None, None);
        proxy.shared.garble_policies.store(true, Ordering::Relaxed);
        proxy
    }

    fn with(
        upstream: SocketAddr,
        percent: u32,
        invalid_principal: Option<(String, u64)>,
        latency: Option<Latency>,
    ) -> Self {
        let latency = latency.unwrap_or(Latency {
            delay: Duration::ZERO,
            rate: None,
            tagging: Tagging::Forward,
            quotas: Vec::new(),
        });
        let quota_buckets = latency
            .quotas
            .iter()
            .map(|(op, _, burst)| (op.to_string(), (f64::from(*burst), Instant::now())))
            .collect();
        let ecr = aws_sdk_ecr::Client::from_conf(
            aws_sdk_ecr::Config::builder()
                .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
                .region(aws_sdk_ecr::config::Region::new(super::REGION))
                .endpoint_url(format!("http://{upstream}"))
                .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                    super::ADMIN_KEY,
                    super::ADMIN_KEY,
                    None,
                    None,
                    "proxy",
                ))
                .build(),
        );
        let shared = Arc::new(Shared {
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
            percent: percent.into(),
            invalid_principal,
            matched: AtomicU64::new(0),
            garble_policies: false.into(),
            services: Mutex::default(),
            ecr_operations: Mutex::default(),
            seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
            throttled: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bucket: Mutex::new((f64::from(latency.rate.unwrap_or(0)), Instant::now())),
            quota_buckets: Mutex::new(quota_buckets),
            operations: Mutex::default(),
            throttled_operations: Mutex::default(),
            latency,
            tagging_pages: Mutex::default(),
            ecr,
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

    /// Requests seen so far, answered by the emulator or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Calls of `operation` so far (`AssumeRole`, `GetAuthorizationToken`,
    /// …), throttled ones included.
    pub fn calls(&self, operation: &str) -> u64 {
        self.shared
            .operations
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of `operation` answered with throttling so far.
    pub fn throttled_calls(&self, operation: &str) -> u64 {
        self.shared
            .throttled_operations
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Calls passed on to the emulator so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }
}

impl Shared {
    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        self.record(&req);
        self.requests.fetch_add(1, Ordering::Relaxed);
        // The round trip: the answer (throttling included) comes no sooner.
        let due = tokio::time::Instant::now() + self.latency.delay;
        let response = self.decide(req).await;
        tokio::time::sleep_until(due).await;
        response
    }

    /// Whether a token is left in the bucket (one second of requests at
    /// the rate), taking it.
    fn over_rate(&self) -> bool {
        let Some(rate) = self.latency.rate else {
            return false;
        };
        !take_token(&mut self.bucket.lock().unwrap(), rate, rate)
    }

    /// Whether `operation` is over its quota, taking a token if not.
    fn over_quota(&self, operation: &str) -> bool {
        let Some((_, rate, burst)) = self.latency.quotas.iter().find(|(o, _, _)| *o == operation)
        else {
            return false;
        };
        let mut buckets = self.quota_buckets.lock().unwrap();
        let Some(bucket) = buckets.get_mut(operation) else {
            return false;
        };
        !take_token(bucket, *rate, *burst)
    }

    async fn decide(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // JSON protocols name the operation in the target header, the
        // query protocols (IAM, STS) in the form body's `Action`.
        let operation = match target.rsplit_once('.') {
            Some((_, op)) => op.to_string(),
            None => String::from_utf8_lossy(&body)
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or("unknown")
                .to_string(),
        };
        *self
            .operations
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
        if (self.percent > 0 && next(&self.seed) % 100 < self.percent)
            || self.over_rate()
            || self.over_quota(&operation)
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            *self
                .throttled_operations
                .lock()
                .unwrap()
                .entry(operation)
                .or_default() += 1;
            return throttle(&Request::from_parts(parts, ()));
        }
        if target == "ResourceGroupsTaggingAPI_20170126.GetResources" {
            match self.latency.tagging {
                Tagging::Forward => {}
                Tagging::Answer => return self.get_resources(&body).await,
                Tagging::Deny => return access_denied("tag:GetResources"),
                Tagging::Loop => {
                    let body = r#"{"PaginationToken": "again", "ResourceTagMappingList": []}"#;
                    return Response::new(Full::new(Bytes::from(body)));
                }
            }
        }
        if let Some((principal, times)) = &self.invalid_principal
            && names_principal_in_iam_write(&body, principal)
            && self.matched.fetch_add(1, Ordering::Relaxed) < *times
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return invalid_principal(principal);
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let garble = self.garble_policies.load(Ordering::Relaxed)
            && String::from_utf8_lossy(&body).contains("Action=GetRolePolicy");
        let response = forward(
            &self.client,
            self.upstream,
            Request::from_parts(parts, body),
        )
        .await;
        if garble {
            garbled(response).await
        } else {
            response
        }
    }
}

/// `response` (a GetRolePolicy answer) with its `PolicyDocument` cut to
/// its first 20 characters: URL-encoded JSON that does not end.
async fn garbled(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    let xml = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let xml = String::from_utf8_lossy(&xml);
    let cut = match (xml.find("<PolicyDocument>"), xml.find("</PolicyDocument>")) {
        (Some(start), Some(end)) => {
            let keep = (start + "<PolicyDocument>".len() + 20).min(end);
            format!("{}{}", &xml[..keep], &xml[end..])
        }
        _ => xml.into_owned(),
    };
    parts.headers.remove("content-length");
    Response::from_parts(parts, Full::new(Bytes::from(cut)))
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

impl Shared {
    /// `GetResources` answered from the emulator: its repositories (ECR is
    /// the only resource type the proxy knows), their tags from
    /// `ListTagsForResource`, the request's tag and type filters applied,
    /// `ResourcesPerPage` at a time. The first page reads everything; later
    /// pages come from that reading, as a token names it.
    async fn get_resources(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let per_page = request["ResourcesPerPage"].as_u64().unwrap_or(100) as usize;
        let (snapshot, offset) = match request["PaginationToken"].as_str().unwrap_or_default() {
            "" => {
                let all = self.tagged_repositories(&request).await;
                let mut pages = self.tagging_pages.lock().unwrap();
                pages.push(all);
                (pages.len() - 1, 0)
            }
            token => {
                let (s, o) = token.split_once(':').unwrap_or(("0", "0"));
                (s.parse().unwrap_or(0), o.parse().unwrap_or(0))
            }
        };
        let pages = self.tagging_pages.lock().unwrap();
        let all = &pages[snapshot];
        let end = (offset + per_page).min(all.len());
        let token = if end < all.len() {
            format!("{snapshot}:{end}")
        } else {
            String::new()
        };
        let body = serde_json::json!({
            "PaginationToken": token,
            "ResourceTagMappingList": all[offset..end],
        });
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        r.headers_mut().insert(
            "content-type",
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        r
    }

    async fn tagged_repositories(&self, request: &serde_json::Value) -> Vec<serde_json::Value> {
        let types: Vec<&str> = request["ResourceTypeFilters"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| *t == "ecr" || *t == "ecr:repository") {
            return Vec::new();
        }
        let mut arns = Vec::new();
        let mut pages = self.ecr.describe_repositories().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.expect("DescribeRepositories on the emulator");
            arns.extend(
                page.repositories
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.repository_arn),
            );
        }
        let mut reads = tokio::task::JoinSet::new();
        for chunk in arns.chunks(arns.len().div_ceil(16).max(1)) {
            let (ecr, chunk) = (self.ecr.clone(), chunk.to_vec());
            reads.spawn(async move {
                let mut tagged = Vec::new();
                for arn in chunk {
                    let tags = ecr
                        .list_tags_for_resource()
                        .resource_arn(&arn)
                        .send()
                        .await
                        .expect("ListTagsForResource on the emulator")
                        .tags
                        .unwrap_or_default();
                    tagged.push((arn, tags));
                }
                tagged
            });
        }
        let filters = request["TagFilters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut found = Vec::new();
        for (arn, tags) in reads.join_all().await.into_iter().flatten() {
            let matches = filters.iter().all(|f| {
                let values: Vec<&str> = f["Values"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                tags.iter().any(|t| {
                    Some(t.key.as_str()) == f["Key"].as_str()
                        && (values.is_empty() || values.contains(&t.value.as_str()))
                })
            });
            if matches {
                let tags: Vec<_> = tags
                    .iter()
                    .map(|t| serde_json::json!({"Key": t.key, "Value": t.value}))
                    .collect();
                found.push(serde_json::json!({"ResourceARN": arn, "Tags": tags}));
            }
        }
        found.sort_by(|a, b| a["ResourceARN"].as_str().cmp(&b["ResourceARN"].as_str()));
        found
    }
}

fn access_denied(action: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "__type": "AccessDeniedException",
        "Message": format!("User: arn:aws:sts::123456789012:assumed-role/rise-backend/plan is not authorized to perform: {action}"),
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
    r.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.1".parse().unwrap(),
    );
    r.headers_mut()
        .insert("x-amzn-errortype", "AccessDeniedException".parse().unwrap());
    r
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

/// Tops up a token bucket `(tokens, when)` at `rate` a second, holding at
/// most `burst`, and takes a token if there is one: whether it did.
fn take_token(bucket: &mut (f64, Instant), rate: u32, burst: u32) -> bool {
    let now = Instant::now();
    bucket.0 = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * f64::from(rate))
        .min(f64::from(burst));
    bucket.1 = now;
    if bucket.0 >= 1.0 {
        bucket.0 -= 1.0;
        true
    } else {
        false
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
