//! The Helm chart in charts/rise-registry, rendered by Helm's own engine
//! (scripts/check-chart: the Go SDK through helm-python-sdk), linted
//! (strict), and every rendered object validated against the Kubernetes
//! API schemas (kubernetes-validate). The config the chart renders is then
//! fed to the real binary exactly as the pod would see it: the ConfigMap
//! and the Secret laid out as the kubelet mounts them, the container's
//! environment with secret references resolved, so the chart can never
//! ship a config serve or the reconcile jobs reject. The chart's alerting
//! rules and dashboard go through promtool (`scripts/check-chart
//! --monitoring`: `promtool check rules`, the rules' unit tests).

use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use serde::Deserialize;
use serde_yaml::Value;
use support::kube::write_volume;
use support::server::BIN;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let venv = std::env::var_os("RISE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".venv"));
    let venv = if venv.is_absolute() {
        venv
    } else {
        repo().join(venv)
    };
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "no Python venv at {}: run `scripts/install-test-deps` (scripts/test does it for you)",
        venv.display()
    );
    python
}

/// The values an operator must give (the chart has no example registry
/// or issuer of its own): the operator doc's ECR registry, with roles
/// Terraform owns, and (AUTH) a JWKS issuer. `render` puts each test's
/// values over both.
const REGISTRY: &str = r#"
config:
  registry:
    type: ecr
    region: us-east-1
    account_id: "123456789012"
    repo_prefix: rise/
    role_arn: arn:aws:iam::123456789012:role/rise-backend
    push_role_arn: arn:aws:iam::123456789012:role/rise-backend-ecr-push
    manage_roles: false
"#;

const AUTH: &str = r#"
config:
  auth:
    issuer: https://auth.example.com
    audience: rise
    jwks_url: https://auth.example.com/.well-known/jwks.json
"#;

/// The chart rendered with `values` (YAML) over its defaults.
struct Rendered {
    /// Template path to rendered text.
    manifests: BTreeMap<String, String>,
    objects: Vec<Value>,
}

/// Runs scripts/check-chart with `args`: its report, or its stderr when
/// Helm refuses the values.
fn check_chart(
    args: &[&std::ffi::OsStr],
    chart: Option<&std::path::Path>,
) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("scripts/check-chart")).args(args);
    if let Some(chart) = chart {
        cmd.env("RISE_CHART_DIR", chart);
    }
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// `values` over REGISTRY and AUTH.
fn try_render(values: &str) -> Result<Rendered, String> {
    try_render_layers(&[REGISTRY, AUTH, values])
}

/// Value files in order, each over the ones before (`helm -f A -f B`).
fn try_render_layers(layers: &[&str]) -> Result<Rendered, String> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = layers
        .iter()
        .enumerate()
        .map(|(i, values)| {
            let file = dir.path().join(format!("values{i}.yaml"));
            std::fs::write(&file, values).unwrap();
            file
        })
        .collect();
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let report = check_chart(&args, None)?;
    assert_eq!(
        report["lint"],
        serde_json::json!([]),
        "helm lint --strict found problems"
    );
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "objects the Kubernetes schemas refuse"
    );
    assert_eq!(
        report["rules"],
        serde_json::json!([]),
        "promtool on the alerting rules"
    );
    assert_eq!(
        report["dashboard"],
        serde_json::json!([]),
        "the dashboard's problems"
    );
    let manifests: BTreeMap<String, String> =
        serde_json::from_value(report["manifests"].clone()).unwrap();
    let objects = manifests
        .iter()
        .filter(|(path, _)| !path.ends_with("NOTES.txt"))
        .flat_map(|(_, text)| {
            serde_yaml::Deserializer::from_str(text)
                .map(Value::deserialize)
                .collect::<Vec<_>>()
        })
        .map(Result::unwrap)
        .filter(|v| !v.is_null())
        .collect();
    Ok(Rendered { manifests, objects })
}

fn render(values: &str) -> Rendered {
    try_render(values).unwrap_or_else(|e| panic!("rendering failed:\n{e}"))
}

fn render_layers(layers: &[&str]) -> Rendered {
    try_render_layers(layers).unwrap_or_else(|e| panic!("rendering failed:\n{e}"))
}

/// Rendering must fail, with a message naming each of `words`.
fn refused(values: &str, words: &[&str]) {
    let err = try_render(values)
        .err()
        .unwrap_or_else(|| panic!("the chart rendered with\n{values}"));
    for word in words {
        assert!(err.contains(word), "{word} is not named in:\n{err}");
    }
}

impl Rendered {
    fn kinds(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect()
    }

    fn find(&self, kind: &str) -> Option<&Value> {
        self.objects.iter().find(|o| o["kind"] == kind)
    }

    fn get(&self, kind: &str) -> &Value {
        self.find(kind)
            .unwrap_or_else(|| panic!("no {kind} among {:?}", self.kinds()))
    }

    /// The manifests as one stream, in template order, for the snapshot.
    fn stream(&self) -> String {
        self.manifests
            .iter()
            .map(|(path, text)| format!("# {path}\n{}\n", text.trim()))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// The pod spec of the serve Deployment, the hook Job or the CronJob.
    fn pod(&self, kind: &str) -> &Value {
        let o = self.get(kind);
        match kind {
            "CronJob" => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => &o["spec"]["template"]["spec"],
        }
    }

    /// Runs the binary with `args` as the first container of `kind`'s pod
    /// would: its mounts laid out as the kubelet does (ConfigMap and Secret
    /// from this render, or `existing` for a Secret the chart does not
    /// make), its environment, mount paths mapped to temporary folders.
    fn run_as_pod(
        &self,
        kind: &str,
        args: &[&str],
        existing: &BTreeMap<String, Vec<u8>>,
    ) -> std::process::Output {
        let pod = self.pod(kind);
        let container = &pod["containers"][0];
        let root = tempfile::tempdir().unwrap();
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for (i, mount) in container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .enumerate()
        {
            let name = mount["name"].as_str().unwrap();
            let volume = pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap();
            let dir = root.path().join(format!("mount{i}"));
            write_volume(&dir, &self.volume_files(volume, existing));
            mounts.push((mount["mountPath"].as_str().unwrap().to_string(), dir));
        }
        let map_paths = |value: &str| {
            mounts
                .iter()
                .find_map(|(path, dir)| {
                    value
                        .strip_prefix(path.as_str())
                        .map(|rest| format!("{}{rest}", dir.display()))
                })
                .unwrap_or_else(|| value.to_string())
        };
        let mut cmd = Command::new(BIN);
        cmd.env_clear().env("NO_COLOR", "1");
        for var in container["env"].as_sequence().unwrap() {
            let name = var["name"].as_str().unwrap();
            let value = match var["value"].as_str() {
                Some(v) => v.to_string(),
                None => {
                    let key = &var["valueFrom"]["secretKeyRef"];
                    let data = self.secret_data(key["name"].as_str().unwrap(), existing);
                    String::from_utf8(data[key["key"].as_str().unwrap()].clone()).unwrap()
                }
            };
            cmd.env(name, map_paths(&value));
        }
        cmd.args(args).output().unwrap()
    }

    /// The files a volume holds: a ConfigMap's data, or the Secret's items.
    fn volume_files(
        &self,
        volume: &Value,
        existing: &BTreeMap<String, Vec<u8>>,
    ) -> BTreeMap<String, Vec<u8>> {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            let cm = self
                .objects
                .iter()
                .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("no ConfigMap {name}"));
            return cm["data"]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        v.as_str().unwrap().as_bytes().to_vec(),
                    )
                })
                .collect();
        }
        let secret = &volume["secret"];
        let data = self.secret_data(secret["secretName"].as_str().unwrap(), existing);
        secret["items"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|item| {
                let key = item["key"].as_str().unwrap();
                let bytes = data
                    .get(key)
                    .unwrap_or_else(|| panic!("the Secret has no key {key}"));
                (item["path"].as_str().unwrap().to_string(), bytes.clone())
            })
            .collect()
    }

    /// A Secret's data: the one rendered under `name`, else `existing`.
    fn secret_data(
        &self,
        name: &str,
        existing: &BTreeMap<String, Vec<u8>>,
    ) -> BTreeMap<String, Vec<u8>> {
        match self
            .objects
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == name)
        {
            Some(secret) => secret["data"]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_string(),
                        base64::engine::general_purpose::STANDARD
                            .decode(v.as_str().unwrap())
                            .unwrap(),
                    )
                })
                .collect(),
            None => existing.clone(),
        }
    }

    /// `config --check` as the pod of `kind` would run it; must pass.
    fn config_check(&self, kind: &str, existing: &BTreeMap<String, Vec<u8>>) {
        let out = self.run_as_pod(kind, &["config", "--check"], existing);
        assert!(
            out.status.success(),
            "the config the chart renders for the {kind} is refused:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The effective config (`rise-registry config`, secrets redacted) as
    /// the pod of `kind` sees it.
    fn effective_config(&self, kind: &str, existing: &BTreeMap<String, Vec<u8>>) -> Value {
        let out = self.run_as_pod(kind, &["config"], existing);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_yaml::from_slice(&out.stdout).unwrap()
    }

    fn notes(&self) -> &str {
        self.manifests
            .iter()
            .find(|(path, _)| path.ends_with("NOTES.txt"))
            .map(|(_, text)| text.as_str())
            .unwrap()
    }

    fn config_map_text(&self) -> String {
        serde_yaml::to_string(&self.get("ConfigMap")["data"]).unwrap()
    }
}

fn no_secrets() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::new()
}

fn seq(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The default values (with the registry and issuer an operator must
/// give): every object valid, the config accepted by serve and by the
/// reconcile jobs as their pods see it, the pod locked down, and the whole
/// rendering pinned by a snapshot.
#[test]
fn chart_default_values_render_valid_manifests_and_a_config_serve_accepts() {
    let r = render("{}");
    let mut kinds = r.kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "Job",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
    );
    r.config_check("Deployment", &no_secrets());
    r.config_check("Job", &no_secrets());
    r.config_check("CronJob", &no_secrets());

    let deployment = r.get("Deployment");
    let pod = r.pod("Deployment");
    let c = &pod["containers"][0];
    assert_eq!(seq(&c["args"]), ["--log-format", "text", "serve"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(seq(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // server.metrics_listen is on by default: probes and metrics there.
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["startupProbe"]["httpGet"]["port"], "metrics");
    assert!(c["resources"]["limits"]["memory"].is_string());
    // The endpoints go before serve stops: a sleep shorter than the grace.
    let sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    assert!(sleep > 0 && sleep < pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
    // Spread over zones, then nodes, never blocking scheduling.
    let spread = pod["topologySpreadConstraints"].as_sequence().unwrap();
    let keys: Vec<&str> = spread
        .iter()
        .map(|c| c["topologyKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    );
    for c in spread {
        assert_eq!(c["whenUnsatisfiable"], "ScheduleAnyway");
        assert_eq!(
            c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
            "serve"
        );
    }
    // The Service and the PDB select serve's pods, not the jobs'.
    for selector in [
        &r.get("Service")["spec"]["selector"],
        &r.get("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ] {
        assert_eq!(selector["app.kubernetes.io/component"], "serve");
    }
    assert_eq!(r.get("CronJob")["spec"]["concurrencyPolicy"], "Forbid");
    let job = r.get("Job");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );
    // Kept after success, so `kubectl logs job/...` works, until the TTL.
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook-delete-policy"],
        "before-hook-creation"
    );
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 86400);
    snapshot!("chart_default_values", r.stream());
}

/// The operator doc's "With EKS + IRSA" values: the role ARN becomes the
/// service account's annotation, and serve, the hook Job and the CronJob
/// all run as that account, the jobs with `apply --scope repositories`.
#[test]
fn chart_irsa_values_run_serve_and_the_reconcile_jobs_as_the_annotated_service_account() {
    let r = render(
        r#"
serviceAccount:
  create: true
  name: rise-backend
  iamRoleArn: "arn:aws:iam::123456789012:role/rise-backend"
config:
  registry:
    type: "ecr"
    region: "us-east-1"
    account_id: "123456789012"
    repo_prefix: "rise/"
    role_arn: "arn:aws:iam::123456789012:role/rise-backend"
    push_role_arn: "arn:aws:iam::123456789012:role/rise-backend-ecr-push"
  projects:
    - {name: my-app, access: ["group:team-a"]}
ingress:
  enabled: true
  className: alb
  hosts: [{host: registry.example.com}]
metrics:
  serviceMonitor: {enabled: true}
reconcile:
  schedule: "*/15 * * * *"
"#,
    );
    let sa = r.get("ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "rise-backend");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/rise-backend"
    );
    for kind in ["Deployment", "Job", "CronJob"] {
        assert_eq!(r.pod(kind)["serviceAccountName"], "rise-backend", "{kind}");
        r.config_check(kind, &no_secrets());
    }
    for kind in ["Job", "CronJob"] {
        assert_eq!(
            seq(&r.pod(kind)["containers"][0]["args"]),
            [
                "--log-format",
                "json",
                "apply",
                "--scope",
                "repositories",
                "--auto-approve"
            ]
        );
    }
    assert_eq!(r.get("CronJob")["spec"]["schedule"], "*/15 * * * *");
    // No static credentials anywhere.
    let all = r.stream();
    assert!(!all.contains("AWS_ACCESS_KEY_ID") && !all.contains("AWS_SECRET_ACCESS_KEY"));
    let effective = r.effective_config("Deployment", &no_secrets());
    assert_eq!(effective["projects"][0]["name"], "my-app");

    let monitor = r.get("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let ingress = r.get("Ingress");
    let path = &ingress["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["path"], "/registry/");
    assert_eq!(path["backend"]["service"]["port"]["name"], "http");
}

/// `oci-token` with HTTPS and an HS256 secret, all from a Secret the chart
/// makes: the key files reach serve through the Secret's mount, the secret
/// through the environment, and none of it is in the ConfigMap. No
/// repositories to reconcile, so no jobs.
#[test]
fn chart_oci_token_values_take_every_secret_from_a_secret_never_the_config_map() {
    let pki = tempfile::tempdir().unwrap();
    support::dev_ca(pki.path());
    let read = |name: &str| std::fs::read_to_string(pki.path().join(name)).unwrap();
    let tls = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let hs256 = "chart-test-secret-chart-test-secret-0123456789";
    let values = serde_json::json!({
        "config": {
            "registry": {"type": "oci-token", "registry_url": "registry.example.com",
                          "namespace": "rise-apps", "service": "registry.example.com",
                          "issuer": "rise-registry"},
            "projects": [{"name": "my-app", "access": ["user:alice"]}],
            "auth": {"issuer": "rise", "audience": "rise"},
        },
        "secrets": {
            "hs256": true,
            "tls": true,
            "values": {
                "hs256-secret": hs256,
                "tls.crt": tls.cert.pem(),
                "tls.key": tls.signing_key.serialize_pem(),
                "oci-token-key.pem": read("token.key"),
                "oci-token-chain.pem": read("token.crt"),
            }
        }
    });
    // Alone, not over REGISTRY and AUTH: nothing of another registry
    // type or issuer.
    let r = render_layers(&[&serde_json::to_string(&values).unwrap()]);
    assert!(r.find("Job").is_none() && r.find("CronJob").is_none());
    r.config_check("Deployment", &no_secrets());
    let effective = r.effective_config("Deployment", &no_secrets());
    assert_eq!(effective["registry"]["type"], "oci-token");
    // Only what the values say: no example account or JWKS URL of the chart's.
    assert!(effective["auth"]["jwks_url"].is_null(), "{effective:?}");
    assert!(
        effective["registry"]["account_id"].is_null(),
        "{effective:?}"
    );
    assert!(!r.config_map_text().contains("123456789012"));
    assert!(effective["server"]["tls"]["key_file"].is_string());

    let config_map = r.config_map_text();
    for secret in [hs256, "PRIVATE KEY", "CERTIFICATE"] {
        assert!(
            !config_map.contains(secret),
            "the ConfigMap holds {secret}:\n{config_map}"
        );
    }
    let secret = r.get("Secret");
    let mut keys: Vec<String> = secret["data"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "hs256-secret",
            "oci-token-chain.pem",
            "oci-token-key.pem",
            "tls.crt",
            "tls.key"
        ]
    );
    // HTTPS on the API listener; the probes use the plain metrics listener.
    let c = &r.pod("Deployment")["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
}

/// A Secret made outside the chart (by an operator, or an external-secrets
/// controller): the chart makes none and refers to it by name.
#[test]
fn chart_existing_secret_values_refer_to_it_and_make_none() {
    let r = render_layers(&[
        REGISTRY,
        r#"
secrets:
  hs256: true
  existingSecret: rise-registry-auth
config:
  auth: {issuer: rise, audience: rise}
"#,
    ]);
    assert!(r.find("Secret").is_none(), "{:?}", r.kinds());
    let env = &r.pod("Deployment")["containers"][0]["env"];
    let jwt = env
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "RISE_JWT_SECRET")
        .expect("RISE_JWT_SECRET");
    assert_eq!(
        jwt["valueFrom"]["secretKeyRef"]["name"],
        "rise-registry-auth"
    );
    let existing: BTreeMap<String, Vec<u8>> = [(
        "hs256-secret".to_string(),
        b"existing-secret-existing-secret-0123456789".to_vec(),
    )]
    .into();
    for kind in ["Deployment", "Job", "CronJob"] {
        r.config_check(kind, &existing);
    }
}

/// The run mode and `${VAR:-default}` work in the pod as outside it: a
/// layer for the run mode from `configLayers`, values from `env`, and the
/// default where a variable is unset.
#[test]
fn chart_run_mode_layer_and_substitution_work_inside_the_pod() {
    let r = render(
        r#"
runMode: staging
env:
  - {name: RISE_REPO_PREFIX, value: "staging/"}
configLayers:
  staging.yaml: |
    registry:
      repo_prefix: ${RISE_REPO_PREFIX:-rise/}
      max_image_count: ${RISE_KEEP_IMAGES:-25}
    projects:
      - {name: from-layer, access: ["group:staging"]}
"#,
    );
    let data = &r.get("ConfigMap")["data"];
    assert!(data["staging.yaml"].is_string());
    let effective = r.effective_config("Deployment", &no_secrets());
    assert_eq!(effective["registry"]["repo_prefix"], "staging/");
    assert_eq!(effective["registry"]["max_image_count"], 25);
    assert_eq!(effective["projects"][0]["name"], "from-layer");
}

/// With the controller, serve reconciles and the chart renders no hook Job
/// or CronJob (one mechanism, never two); the store URL comes from its
/// Secret as an environment variable, never from the ConfigMap.
#[test]
fn chart_controller_values_run_the_controller_instead_of_the_jobs() {
    let r = render_layers(&[
        REGISTRY,
        r#"
secrets: {hs256: true, existingSecret: rise-registry-auth}
config:
  auth: {issuer: rise, audience: rise, project_managers: ["user:rise-backend"]}
store: {existingSecret: rise-store}
controller: {enabled: true, intervalSeconds: 120}
"#,
    ]);
    let kinds = r.kinds();
    assert!(!kinds.contains(&"Job".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"CronJob".to_string()), "{kinds:?}");
    let env = r.pod("Deployment")["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .clone();
    let store = env
        .iter()
        .find(|e| e["name"] == "RISE_STORE_URL")
        .expect("RISE_STORE_URL");
    assert_eq!(store["valueFrom"]["secretKeyRef"]["name"], "rise-store");
    assert_eq!(store["valueFrom"]["secretKeyRef"]["key"], "url");
    let url = "postgres://rise:pg-password-in-a-secret@db.internal:5432/rise";
    let existing: BTreeMap<String, Vec<u8>> = [
        (
            "hs256-secret".to_string(),
            b"existing-secret-existing-secret-0123456789".to_vec(),
        ),
        ("url".to_string(), url.as_bytes().to_vec()),
    ]
    .into();
    assert!(!r.config_map_text().contains("pg-password"));
    let effective = r.effective_config("Deployment", &existing);
    assert_eq!(effective["controller"]["enabled"], true);
    assert_eq!(effective["controller"]["interval_seconds"], 120);
    let printed = serde_yaml::to_string(&effective["store"]).unwrap();
    assert!(!printed.contains("pg-password"), "{printed}");
    assert!(printed.contains("[REDACTED]"), "{printed}");

    refused("controller: {enabled: true}\n", &["store.existingSecret"]);
}

/// A secret written into `config` would land in the ConfigMap: the chart
/// refuses to render, saying where it belongs.
#[test]
fn chart_refuses_a_secret_in_config() {
    refused(
        "config:\n  auth:\n    hs256_secret: oops-this-is-a-secret-0123456789abcdef\n",
        &["secrets.hs256"],
    );
}

/// The hook Job's own command line, run as its pod would run it against the
/// AWS emulator (admin keys from `env` in place of IRSA): a project added
/// to the values gets its repository with no administrator involved.
#[tokio::test]
async fn chart_reconcile_job_creates_the_repository_of_a_new_project() {
    let emulator = support::Emulator::start();
    let values = serde_json::json!({
        "config": {
            "registry": {"endpoint_url": emulator.endpoint_url()},
            "projects": [{"name": "new-app", "access": ["group:team-a"]}],
        },
        "env": [
            {"name": "AWS_ACCESS_KEY_ID", "value": support::ADMIN_KEY},
            {"name": "AWS_SECRET_ACCESS_KEY", "value": support::ADMIN_KEY},
            {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
        ],
    });
    let r = render(&serde_json::to_string(&values).unwrap());
    let args = seq(&r.pod("Job")["containers"][0]["args"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = r.run_as_pod("Job", &args, &no_secrets());
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ecr = aws_sdk_ecr::Client::new(&emulator.admin_config().await);
    let repos = ecr
        .describe_repositories()
        .repository_names("rise/new-app")
        .send()
        .await
        .expect("the Job created rise/new-app");
    assert_eq!(repos.repositories().len(), 1);
}

/// values.schema.json: Helm refuses a misspelt key or a value of the wrong
/// type before anything renders, naming it; objects Kubernetes takes as
/// they are (resources, affinity, annotations, the app's `config`) stay
/// free-form.
#[test]
fn chart_schema_refuses_misspelt_keys_and_wrong_types() {
    refused("replicaCont: 3\n", &["replicaCont"]);
    refused(
        "podDisruptionBudget: {minAvaliable: 1}\n",
        &["minAvaliable"],
    );
    refused("replicaCount: \"two\"\n", &["replicaCount", "string"]);
    refused("logFormat: yaml\n", &["logFormat"]);
    refused("image: {digest: \"latest\"}\n", &["digest"]);
    refused("networkPolicy: {metrics: {form: []}}\n", &["form"]);
    render(
        r#"
resources: {requests: {cpu: 1, memory: 1Gi}}
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Exists}]}]}}}
podAnnotations: {example.com/team: platform}
config: {projects: [{name: my-app, access: ["group:team-a"]}]}
"#,
    );
}

/// The registry and the issuer are the operator's to give: with neither,
/// rendering stops naming the value, instead of installing an example
/// account and issuer.
#[test]
fn chart_requires_the_registry_and_the_issuer() {
    let err = try_render_layers(&["{}"]).err().expect("no registry given");
    assert!(err.contains("config.registry is required"), "{err}");
    let err = try_render_layers(&[REGISTRY])
        .err()
        .expect("no issuer given");
    assert!(err.contains("config.auth.issuer is required"), "{err}");
    // Several issuers instead of one do.
    render_layers(&[
        REGISTRY,
        "config:\n  auth:\n    issuers: [{name: ci, issuer: \"https://ci.example.com\", audience: rise, jwks_url: \"https://ci.example.com/jwks\"}]\n",
    ])
    .config_check("Deployment", &no_secrets());
}

/// A PodDisruptionBudget only where more than one replica can run (with
/// one, `minAvailable: 1` blocks every node drain); with autoscaling the
/// HPA owns the replica count and the Deployment says none.
#[test]
fn chart_pdb_needs_two_replicas_and_autoscaling_owns_the_replica_count() {
    let has_pdb = |values: &str| render(values).find("PodDisruptionBudget").is_some();
    assert!(!has_pdb("replicaCount: 1\n"));
    assert!(has_pdb("replicaCount: 2\n"));
    assert!(!has_pdb(
        "autoscaling: {enabled: true, minReplicas: 1, maxReplicas: 4}\n"
    ));

    let r = render(
        "replicaCount: 1\nautoscaling: {enabled: true, minReplicas: 2, maxReplicas: 5, targetCPUUtilizationPercentage: 60}\n",
    );
    assert!(r.find("PodDisruptionBudget").is_some());
    let spec = &r.get("Deployment")["spec"];
    assert!(spec.get("replicas").is_none(), "{spec:?}");
    let hpa = &r.get("HorizontalPodAutoscaler")["spec"];
    assert_eq!(hpa["scaleTargetRef"]["name"], "rise-rise-registry");
    assert_eq!(hpa["minReplicas"], 2);
    assert_eq!(hpa["maxReplicas"], 5);
    assert_eq!(
        hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    refused(
        "autoscaling: {enabled: true, minReplicas: 4, maxReplicas: 2}\n",
        &["autoscaling.minReplicas"],
    );
}

/// An image by digest (the tag then ignored) for serve and both jobs;
/// `priorityClassName`, extra volumes and mounts, and the preStop sleep
/// kept below the grace period.
#[test]
fn chart_image_digest_and_pod_extras() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let r = render(&format!(
        r#"
image: {{repository: registry.example.com/rise-registry, tag: "9.9.9", digest: "{digest}"}}
priorityClassName: platform-critical
extraVolumes: [{{name: ca, configMap: {{name: corporate-ca}}}}]
extraVolumeMounts: [{{name: ca, mountPath: /etc/corporate-ca, readOnly: true}}]
"#
    ));
    for kind in ["Deployment", "Job", "CronJob"] {
        let pod = r.pod(kind);
        assert_eq!(
            pod["containers"][0]["image"],
            format!("registry.example.com/rise-registry@{digest}").as_str(),
            "{kind}"
        );
        assert!(
            pod["containers"][0]["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/etc/corporate-ca"),
            "{kind}"
        );
        assert!(
            pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "ca"),
            "{kind}"
        );
    }
    assert_eq!(
        r.pod("Deployment")["priorityClassName"],
        "platform-critical"
    );
    refused(
        "preStop: {sleepSeconds: 30}\nterminationGracePeriodSeconds: 30\n",
        &["preStop.sleepSeconds"],
    );
    let r = render("preStop: {sleepSeconds: 0}\n");
    let c = &r.pod("Deployment")["containers"][0];
    assert!(c.get("lifecycle").is_none(), "{c:?}");
}

/// `logFormat: json` is the binary's global flag, so it goes before the
/// subcommand, and `extraArgs` after serve's own; the binary parses the
/// command line as the chart writes it.
#[test]
fn chart_log_format_and_extra_args_make_a_command_line_serve_parses() {
    let r = render("logFormat: json\nextraArgs: [--listen, \"0.0.0.0:3000\"]\n");
    let args = seq(&r.pod("Deployment")["containers"][0]["args"]);
    assert_eq!(
        args,
        ["--log-format", "json", "serve", "--listen", "0.0.0.0:3000"]
    );
    let out = Command::new(BIN)
        .args(&args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// NOTES.txt gives the scheme serve answers on: https when it terminates
/// TLS itself.
#[test]
fn chart_notes_give_https_when_serve_terminates_tls() {
    let url = "://rise-rise-registry.rise-system.svc:80/registry/credentials";
    assert!(render("{}").notes().contains(&format!("http{url}")));
    let r = render(
        "secrets: {tls: true, values: {tls.crt: \"-----BEGIN CERTIFICATE-----\", tls.key: \"-----BEGIN PRIVATE KEY-----\"}}\n",
    );
    assert!(r.notes().contains(&format!("https{url}")), "{}", r.notes());
}

/// The NetworkPolicy, on by default: the API port from anyone, the metrics
/// port from the release's namespace only; configured peers added, egress
/// restricted only when rules are given.
#[test]
fn chart_network_policy_limits_the_metrics_port() {
    let r = render("{}");
    let np = &r.get("NetworkPolicy")["spec"];
    assert_eq!(
        np["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "serve"
    );
    assert_eq!(seq(&np["policyTypes"]), ["Ingress"]);
    let rules = np["ingress"].as_sequence().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["ports"][0]["port"], "http");
    assert!(
        rules[0].get("from").is_none(),
        "the API is open: {:?}",
        rules[0]
    );
    assert_eq!(rules[1]["ports"][0]["port"], "metrics");
    assert_eq!(
        serde_json::to_value(&rules[1]["from"]).unwrap(),
        serde_json::json!([{"podSelector": {}}])
    );

    let r = render(
        r#"
networkPolicy:
  api: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]}
  metrics: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443, protocol: TCP}]}]
"#,
    );
    let np = &r.get("NetworkPolicy")["spec"];
    assert_eq!(seq(&np["policyTypes"]), ["Ingress", "Egress"]);
    assert_eq!(
        np["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    let metrics_from = np["ingress"][1]["from"].as_sequence().unwrap();
    assert_eq!(metrics_from.len(), 2);
    assert_eq!(np["egress"][0]["ports"][0]["port"], 443);
    assert!(
        render("networkPolicy: {enabled: false}\n")
            .find("NetworkPolicy")
            .is_none()
    );
}

/// serve reads its secrets only at start: a new value in the chart's
/// Secret changes the pod template, so the pods roll. An existing Secret is
/// read with `lookup`, which has no cluster here: then no checksum at all,
/// rather than one that never changes.
#[test]
fn chart_secret_rotation_rolls_the_pods() {
    let checksum = |values: &str| {
        render(values).get("Deployment")["spec"]["template"]["metadata"]["annotations"]
            ["checksum/secret"]
            .as_str()
            .map(str::to_string)
    };
    let with = |secret: &str| {
        format!("secrets: {{hs256: true, values: {{hs256-secret: \"{secret}\"}}}}\n")
    };
    let before = checksum(&with("first-secret-first-secret-0123456789abc")).unwrap();
    let after = checksum(&with("second-secret-second-secret-0123456789a")).unwrap();
    assert_ne!(before, after);
    assert_eq!(checksum("{}"), None);
    assert_eq!(
        checksum("secrets: {hs256: true, existingSecret: rise-registry-auth}\n"),
        None
    );
}

/// The PrometheusRule and the dashboard with everything on
/// (charts/rise-registry/tests/monitoring-values.yaml): promtool accepts
/// the rules and their unit tests pass (tests/alerts.test.yaml: each alert
/// fires on its symptom and not on a healthy release), every dashboard
/// query parses and reads only series serve exports, and every alert's
/// runbook is a section of docs/troubleshooting.md.
#[test]
fn chart_alerts_and_dashboard_pass_promtool_and_their_unit_tests() {
    let report = check_chart(&[std::ffi::OsStr::new("--monitoring")], None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report["rules"],
        serde_json::json!([]),
        "{}",
        report["rules"]
    );
    assert_eq!(
        report["dashboard"],
        serde_json::json!([]),
        "{}",
        report["dashboard"]
    );
    assert_eq!(report["problems"], serde_json::json!([]));
    let manifests: BTreeMap<String, String> =
        serde_json::from_value(report["manifests"].clone()).unwrap();
    let rule: Value =
        serde_yaml::from_str(&manifests["rise-registry/templates/prometheusrule.yaml"]).unwrap();
    let alerts: Vec<&Value> = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .collect();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "RiseRegistryCredentialsUnavailable",
            "RiseRegistryProviderErrors",
            "RiseRegistryAwsThrottled",
            "RiseRegistryConfigReloadRefused",
            "RiseRegistryRestartRequired",
            "RiseRegistryCertificateExpiry",
            "RiseRegistryStoreDown",
            "RiseRegistryControllerWithoutLeader",
            "RiseRegistryControllerPending",
        ]
    );
    let tests = std::fs::read_to_string(repo().join("charts/rise-registry/tests/alerts.test.yaml"))
        .unwrap();
    let troubleshooting = std::fs::read_to_string(repo().join("docs/troubleshooting.md")).unwrap();
    let sections: Vec<String> = troubleshooting
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .map(|h| h.trim().to_lowercase())
        .collect();
    for (alert, name) in alerts.iter().zip(&names) {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "{name} has no unit test"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(alert["annotations"][key].is_string(), "{name} has no {key}");
        }
        let runbook = alert["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = runbook.rsplit_once('#').unwrap().1;
        assert!(
            sections.iter().any(|s| s == anchor),
            "{name}: docs/troubleshooting.md has no section `{anchor}`"
        );
    }
    let dashboard: Value =
        serde_yaml::from_str(&manifests["rise-registry/templates/dashboard.yaml"]).unwrap();
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(dashboard["data"]["rise-registry.json"].is_string());

    // Without a store and the controller, no alert on them.
    let r = render("prometheusRule: {enabled: true}\n");
    let text = &r.manifests["rise-registry/templates/prometheusrule.yaml"];
    assert!(text.contains("RiseRegistryProviderErrors"));
    assert!(!text.contains("RiseRegistryStoreDown") && !text.contains("RiseRegistryController"));
}

/// The checks behind the test above catch what they are for: a copy of the
/// chart with a misspelt metric in an alert, a PromQL syntax error in the
/// dashboard, and an alert whose unit test no longer holds.
#[test]
fn chart_monitoring_checks_catch_broken_alerts_and_dashboards() {
    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let broken = |file: &str, from: &str, to: &str| {
        let dir = tempfile::tempdir().unwrap();
        let chart = dir.path().join("rise-registry");
        copy_dir(&repo().join("charts/rise-registry"), &chart);
        let path = chart.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        check_chart(&[std::ffi::OsStr::new("--monitoring")], Some(&chart))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let report = broken(
        "files/alerts.yaml",
        "rise_registry_config_stale",
        "rise_registry_config_stael",
    );
    assert!(
        report["rules"]
            .to_string()
            .contains("rise_registry_config_stael"),
        "{}",
        report["rules"]
    );
    let report = broken("files/alerts.yaml", "> 0.05", "> 0.5");
    assert!(
        report["rules"]
            .to_string()
            .contains("RiseRegistryCredentialsUnavailable"),
        "{}",
        report["rules"]
    );
    let report = broken(
        "files/dashboard.json",
        "sum by (le) (rate(",
        "sum by (le (rate(",
    );
    assert!(
        report["dashboard"].to_string().contains("parse error"),
        "{}",
        report["dashboard"]
    );
    let report = broken(
        "files/dashboard.json",
        "rise_registry_connections_open",
        "rise_registry_connections_opened",
    );
    assert!(
        report["dashboard"]
            .to_string()
            .contains("rise_registry_connections_opened"),
        "{}",
        report["dashboard"]
    );
}
