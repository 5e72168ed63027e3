//! The Resource Groups Tagging API's `GetResources`, the one bulk read of
//! plan/apply: the tags of every managed repository, 100 a page, instead
//! of one `ListTagsForResource` per repository.
//!
//! Its SDK crate is not a dependency, so the call is built here: a JSON
//! request signed with SigV4 (service `tagging`) with the credentials of
//! the SDK settings, sent with hyper, and retried on throttling with the
//! same bounds as the SDK's retries for plan/apply.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ecr::config::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::tags::TAG_MANAGED;

/// Tags of repositories by ARN.
pub(crate) type TagsByArn = BTreeMap<String, BTreeMap<String, String>>;

/// Why the bulk read did not answer, when the per-repository reads can
/// stand in for it.
#[derive(Debug)]
pub(crate) struct Unavailable(pub String);

pub(crate) struct TaggingClient {
    limit: std::sync::Arc<crate::aws::adaptive::AdaptiveLimit>,
    sdk: aws_config::SdkConfig,
    endpoint: String,
    region: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// Attempts per page, and the cap on the wait between them: as the SDK's
/// settings for plan/apply (src/aws.rs).
const MAX_ATTEMPTS: u32 = 10;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most one GetResources answer may be (bytes).
const MAX_PAGE_BYTES: usize = 32 << 20;

impl TaggingClient {
    /// `endpoint_url` as for the other clients (the configured one, then
    /// `AWS_ENDPOINT_URL`), else the regional endpoint.
    pub(crate) fn new(
        limit: std::sync::Arc<crate::aws::adaptive::AdaptiveLimit>,
        sdk: &aws_config::SdkConfig,
        endpoint_url: Option<&str>,
        region: &str,
        dns_suffix: &str,
    ) -> Result<Self> {
        let endpoint = endpoint_url
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://tagging.{region}.{dns_suffix}"));
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .context("loading the system's root certificates for the tagging client")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            limit,
            sdk: sdk.clone(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Every ECR repository tagged `rise:managed` with all its tags,
    /// calling `on_page` for each request sent. `Err(Unavailable)` when
    /// the API refuses (access denied, unknown operation): the caller reads
    /// per repository instead. Any other failure is an error.
    pub(crate) async fn managed_repositories(
        &self,
        on_page: &(dyn Fn() + Sync),
    ) -> Result<std::result::Result<TagsByArn, Unavailable>> {
        let mut found = TagsByArn::new();
        let mut token = String::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut request = json!({
                "TagFilters": [{"Key": TAG_MANAGED}],
                "ResourceTypeFilters": ["ecr:repository"],
                "ResourcesPerPage": 100,
            });
            if !token.is_empty() {
                request["PaginationToken"] = token.as_str().into();
            }
            let page = match self.send(&request, on_page).await? {
                Ok(page) => page,
                Err(unavailable) => return Ok(Err(unavailable)),
            };
            for mapping in page["ResourceTagMappingList"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(arn) = mapping["ResourceARN"].as_str() else {
                    continue;
                };
                let tags = mapping["Tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| Some((t["Key"].as_str()?.into(), t["Value"].as_str()?.into())))
                    .collect();
                found.insert(arn.to_string(), tags);
            }
            token = page["PaginationToken"].as_str().unwrap_or_default().into();
            if token.is_empty() {
                return Ok(Ok(found));
            }
            // An endpoint that hands back a token it gave before would
            // keep the read going forever.
            if !seen.insert(token.clone()) {
                bail!(crate::aws::sdk::Unreachable::new(
                    "reading repository tags in bulk",
                    "GetResources returned a pagination token it had returned before"
                ));
            }
        }
    }

    /// One page, retried on throttling and server errors with capped
    /// exponential backoff.
    async fn send(
        &self,
        request: &Value,
        on_page: &(dyn Fn() + Sync),
    ) -> Result<std::result::Result<Value, Unavailable>> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            on_page();
            let (status, body, error_type) = {
                let _slot = self.limit.acquire().await;
                self.send_once(request).await?
            };
            if crate::aws::sdk::is_throttling(status.as_u16(), error_type.as_deref(), &body) {
                self.limit.on_throttled();
            } else {
                self.limit.on_answer();
            }
            let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(Ok(reply));
            }
            let code = reply["__type"]
                .as_str()
                .unwrap_or_default()
                .rsplit('#')
                .next()
                .unwrap_or_default()
                .to_string();
            let message = reply["Message"]
                .as_str()
                .or(reply["message"].as_str())
                .unwrap_or_default();
            let text = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("{code}: {message}")
            };
            if code.starts_with("AccessDenied")
                || code.starts_with("UnknownOperation")
                || code == "UnrecognizedClientException"
                || status == hyper::StatusCode::NOT_FOUND
            {
                return Ok(Err(Unavailable(text)));
            }
            let retryable = code.contains("Throttl")
                || code == "TooManyRequestsException"
                || status.is_server_error();
            if !retryable || attempt >= MAX_ATTEMPTS {
                return Err(anyhow!("reading repository tags in bulk: {text}"));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Status, body and `x-amzn-errortype` of one attempt.
    async fn send_once(
        &self,
        request: &Value,
    ) -> Result<(hyper::StatusCode, Bytes, Option<String>)> {
        let credentials = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| anyhow!("no AWS credentials found"))?
            .provide_credentials()
            .await
            .map_err(|e| anyhow!("loading AWS credentials: {}", crate::aws::error_text(&e)))?;
        let identity: Identity = credentials.into();
        let body = request.to_string();
        let mut http_request = hyper::Request::post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "x-amz-target",
                "ResourceGroupsTaggingAPI_20170126.GetResources",
            )
            .body(Full::new(Bytes::from(body.clone())))
            .context("building the GetResources request")?;
        let host = http_request
            .uri()
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default();
        http_request
            .headers_mut()
            .insert("host", host.parse().context("the tagging endpoint's host")?);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("tagging")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("signing GetResources")?
            .into();
        let headers: Vec<(&str, &str)> = http_request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            http_request.uri().to_string(),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .context("signing GetResources")?;
        let (instructions, _) = sign(signable, &params)
            .context("signing GetResources")?
            .into_parts();
        instructions.apply_to_request_http1x(&mut http_request);
        let response =
            tokio::time::timeout(Duration::from_secs(30), self.client.request(http_request))
                .await
                .map_err(|_| {
                    anyhow!(crate::aws::sdk::Unreachable::new(
                        "reading repository tags in bulk",
                        "timed out"
                    ))
                })?
                .map_err(|e| {
                    anyhow!(crate::aws::sdk::Unreachable::new(
                        "reading repository tags in bulk",
                        &crate::aws::error_text(&e)
                    ))
                })?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A page holds at most 100 repositories of at most 50 tags: far
        // below this; more is not an answer of the tagging API.
        let body = http_body_util::Limited::new(response.into_body(), MAX_PAGE_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| anyhow!("reading the GetResources answer: {e}"))?;
        Ok((status, body, error_type))
    }
}
