//! The Helm chart in charts/rise-registry, rendered by Helm's own engine
//! (scripts/check-chart: the Go SDK through helm-python-sdk), linted
//! (strict), and every rendered object validated against the Kubernetes
//! API schemas (kubernetes-validate). The config the chart renders is then
//! fed to the real binary exactly as the pod would see it: the ConfigMap
//! and the Secret laid out as the kubelet mounts them, the container's
//! environment with secret references resolved, so the chart can never
//! ship a config serve or the reconcile jobs reject.

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

/// The chart rendered with `values` (YAML) over its defaults.
struct Rendered {
    /// Template path to rendered text.
    manifests: BTreeMap<String, String>,
    objects: Vec<Value>,
}

/// Runs scripts/check-chart; its stderr when rendering fails.
fn try_render(values: &str) -> Result<Rendered, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).unwrap();
    let out = Command::new(python())
        .arg(repo().join("scripts/check-chart"))
        .arg(&file)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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

/// The default values: every object valid, the config accepted by serve
/// and by the reconcile jobs as their pods see it, the pod locked down, and
/// the whole rendering pinned by a snapshot.
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
    assert_eq!(seq(&c["args"]), ["serve"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(seq(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // server.metrics_listen is on by default: probes and metrics there.
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    // The Service and the PDB select serve's pods, not the jobs'.
    for selector in [
        &r.get("Service")["spec"]["selector"],
        &r.get("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ] {
        assert_eq!(selector["app.kubernetes.io/component"], "serve");
    }
    assert_eq!(r.get("CronJob")["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(
        r.get("Job")["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );
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
            "auth": {"issuer": "rise", "audience": "rise", "jwks_url": null},
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
    let r = render(&serde_json::to_string(&values).unwrap());
    assert!(r.find("Job").is_none() && r.find("CronJob").is_none());
    r.config_check("Deployment", &no_secrets());
    let effective = r.effective_config("Deployment", &no_secrets());
    assert_eq!(effective["registry"]["type"], "oci-token");
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
    let r = render(
        r#"
secrets:
  hs256: true
  existingSecret: rise-registry-auth
config:
  auth: {issuer: rise, audience: rise, jwks_url: null}
"#,
    );
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
    let r = render(
        r#"
secrets: {hs256: true, existingSecret: rise-registry-auth}
config:
  auth: {issuer: rise, audience: rise, jwks_url: null, project_managers: ["user:rise-backend"]}
store: {existingSecret: rise-store}
controller: {enabled: true, intervalSeconds: 120}
"#,
    );
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

    let err = try_render("controller: {enabled: true}\n")
        .err()
        .expect("the controller needs a store");
    assert!(err.contains("store.existingSecret"), "{err}");
}

/// A secret written into `config` would land in the ConfigMap: the chart
/// refuses to render, saying where it belongs.
#[test]
fn chart_refuses_a_secret_in_config() {
    let err =
        try_render("config:\n  auth:\n    hs256_secret: oops-this-is-a-secret-0123456789abcdef\n")
            .err()
            .expect("rendering must fail");
    assert!(err.contains("secrets.hs256"), "{err}");
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
