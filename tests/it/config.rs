//! Configuration from strings: layering, substitution, validation, every
//! error message and redaction. The binary itself is driven in `cli.rs`.

use crate::support;

use rise_registry::config::{Config, ConfigErrors, RegistryConfig};

const ECR_BASE: &str = r#"
registry:
  type: ecr
  region: us-east-1
  account_id: "123456789012"
  role_arn: arn:aws:iam::123456789012:role/rise-backend
  push_role_arn: arn:aws:iam::123456789012:role/rise-backend-ecr-push
projects:
  - name: my-app
    access: [user:alice@example.com, group:team-a]
auth:
  hs256_secret: a-test-secret-that-is-long-enough-0123456789
"#;

fn load_with(layers: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    support::load_config(layers, env)
}

fn load(layers: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    load_with(layers, &[])
}

fn errors(layers: &[(&str, &str)]) -> String {
    load(layers)
        .expect_err("config should be rejected")
        .to_string()
}

fn ecr(config: &Config) -> &rise_registry::config::EcrConfig {
    match &config.registry {
        RegistryConfig::Ecr(e) => e,
        other => panic!("expected ecr, got {other:?}"),
    }
}

#[test]
fn a_minimal_ecr_config_gets_documented_defaults() {
    let config = load(&[("default.yaml", ECR_BASE)]).unwrap();
    let e = ecr(&config);
    assert_eq!(e.repo_prefix.as_str(), "rise/");
    assert!(!e.auto_remove);
    assert_eq!(e.repository.get("scan_on_push"), true);
    assert_eq!(e.repository.get("lifecycle_policy"), 100);
    assert_eq!(e.repository.get("tag_mutability"), "MUTABLE");
    assert_eq!(config.auth.groups_claim, "groups");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:3000"); // loopback unless config says otherwise
}

#[test]
fn layers_merge_maps_and_replace_lists_and_scalars() {
    let config = load(&[
        ("default.yaml", ECR_BASE),
        (
            "production.yaml",
            "registry:\n  region: eu-west-1\n  auto_remove: true\nprojects:\n  - name: other\n",
        ),
        ("local.yaml", "registry:\n  region: eu-central-1\n"),
    ])
    .unwrap();
    let e = ecr(&config);
    assert_eq!(e.region.as_str(), "eu-central-1", "local beats production");
    assert!(e.auto_remove, "production beats default");
    assert_eq!(
        e.account_id.as_str(),
        "123456789012",
        "untouched keys survive"
    );
    let names: Vec<&str> = config.projects.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["other"], "lists replace, never concatenate");
}

#[test]
fn substituted_strings_fill_numbers_and_bools() {
    let local = "registry:\n  max_image_count: ${KEEP:-25}\n  scan_on_push: ${SCAN}\nserver:\n  listen: 127.0.0.1:${PORT}\n";
    let config = load_with(
        &[("default.yaml", ECR_BASE), ("local.yaml", local)],
        &[("PORT", "4000"), ("SCAN", "false")],
    )
    .unwrap();
    assert_eq!(ecr(&config).repository.get("lifecycle_policy"), 25);
    assert_eq!(ecr(&config).repository.get("scan_on_push"), false);
    assert_eq!(config.server.listen.port(), 4000);
}

#[test]
fn substitution_never_changes_structure() {
    let layer = ECR_BASE.replace(
        "hs256_secret: a-test-secret-that-is-long-enough-0123456789",
        "hs256_secret: ${SECRET}",
    );
    let injected = "x\nadmins: [group:everyone]\n-----------------------------";
    let config = load_with(&[("default.yaml", &layer)], &[("SECRET", injected)]).unwrap();
    assert!(config.auth.admins.is_empty());
    assert_eq!(config.auth.hs256_secret.unwrap().expose(), injected);
}

#[test]
fn a_variable_overridden_by_a_higher_layer_is_not_required() {
    let low = ECR_BASE.replace("region: us-east-1", "region: ${NOT_SET}");
    let config = load(&[
        ("default.yaml", &low),
        ("local.yaml", "registry:\n  region: us-west-2\n"),
    ]);
    assert_eq!(ecr(&config.unwrap()).region.as_str(), "us-west-2");
}

#[test]
fn unset_variables_are_named_with_their_file() {
    let low = ECR_BASE.replace("region: us-east-1", "region: ${AWS_REGION}");
    let high = "auth:\n  issuer: ${RISE_JWT_ISSUER}\n  audience: ${AUD:-rise}\n";
    snapshot!(errors(&[
        ("config/default.yaml", &low),
        ("config/production.yaml", high)
    ]));
}

#[test]
fn the_four_classic_mistakes_are_reported_together() {
    let local = r#"
registry:
  rolearn: arn:aws:iam::123456789012:role/typo
  push_role_arn: rise-backend-ecr-push
projects:
  - name: my-app
  - name: My_App
  - name: my-app
"#;
    let out = errors(&[
        ("config/default.yaml", ECR_BASE),
        ("config/local.yaml", local),
    ]);
    for needle in [
        "config/local.yaml:3: registry.rolearn: unknown key `rolearn`",
        "did you mean `role_arn`?",
        "config/local.yaml:4: registry.push_role_arn: `rise-backend-ecr-push` is not an IAM role ARN",
        "config/local.yaml:7: projects[1].name: project name contains upper-case `M`",
        "config/local.yaml:8: projects[2].name: duplicate project `my-app`",
        "first declared at config/local.yaml:6",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    snapshot!(out);
}

#[test]
fn every_validation_message() {
    let bad = r#"
registry:
  type: ecr
  region: mars-1
  account_id: 1234
  repo_prefix: Rise
  role_arn: arn:aws:iam::999999999999:role/rise-backend
  push_role_arn: arn:aws-cn:iam::999999999999:role/rise-backend
  auto_remove: maybe
  endpoint_url: localhost:4566
  image_tag_mutability: mutable
  scan_on_push: [true]
  max_image_count: 0
  tags:
    rise:managed: "false"
    team: {a: b}
  irsa:
    oidc_provider_arn: not-an-arn
    namespace: Rise_System
  trusted_principals: ["arn:aws:iam::123456789012:*"]
projects:
  - name: "*"
    access: [alice, role:admin, "group: x"]
  - {name: ok, acces: []}
  - just-a-string
auth:
  hs256_secret: short
  jwks_url: http://keys.example.com/jwks.json
  admins: group:platform
server:
  listen: localhost:3000
  tls: {cert_file: /tls.crt}
  port: 3000
extra: true
"#;
    snapshot!(errors(&[("bad.yaml", bad)]));
}

#[test]
fn cross_field_rules() {
    let local = r#"
registry:
  region: cn-north-1
  role_arn: arn:aws:iam::210987654321:role/rise-backend
  push_role_arn: arn:aws:iam::210987654321:role/rise-backend
  irsa:
    oidc_provider_arn: arn:aws:iam::210987654321:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC
"#;
    snapshot!(errors(&[("default.yaml", ECR_BASE), ("local.yaml", local)]));
}

#[test]
fn registry_type_problems() {
    let no_type = "registry:\n  region: us-east-1\nauth:\n  hs256_secret: a-test-secret-that-is-long-enough-0123456789\n";
    let typo = no_type.replace("region: us-east-1", "type: ecs");
    let oci_with_ecr_key = no_type.replace(
        "region: us-east-1",
        "type: oci-client-auth\n  registry_url: http://r:5000\n  account_id: '1'",
    );
    let token_mistakes = no_type.replace(
        "region: us-east-1",
        "type: oci-token\n  registry_url: r:5000\n  service: 'rise registry'\n  ticket_ttl_seconds: 5\n  region: us-east-1",
    );
    let out = [no_type, &typo, &oci_with_ecr_key, &token_mistakes]
        .iter()
        .map(|text| errors(&[("x.yaml", text)]))
        .collect::<Vec<_>>()
        .join("\n---\n");
    snapshot!(out);
}

#[test]
fn missing_sections_and_key_sources() {
    snapshot!(errors(&[("x.yaml", "projects: []\n")]));
    let no_keys = ECR_BASE.replace(
        "  hs256_secret: a-test-secret-that-is-long-enough-0123456789",
        "  issuer: x",
    );
    assert!(errors(&[("x.yaml", &no_keys)]).contains("auth: auth needs a key source"));
}

#[test]
fn repository_names_stay_within_the_ecr_limit() {
    let local = format!("projects:\n  - name: {}\n", "a".repeat(252));
    let out = errors(&[("default.yaml", ECR_BASE), ("local.yaml", &local)]);
    assert!(
        out.contains("would be 257 characters long; ECR allows 256"),
        "{out}"
    );
    let fits = format!("projects:\n  - name: {}\n", "a".repeat(251));
    assert!(load(&[("default.yaml", ECR_BASE), ("local.yaml", &fits)]).is_ok());
}

#[test]
fn yaml_syntax_errors_name_file_and_line() {
    let out = errors(&[
        ("default.yaml", ECR_BASE),
        ("local.yaml", "registry:\n  region: [us\n"),
    ]);
    assert!(
        out.starts_with("the configuration has 1 problem:\n  local.yaml:"),
        "{out}"
    );
    assert!(out.contains("invalid YAML"), "{out}");
    let out = errors(&[("local.yaml", "- a\n- b\n")]);
    assert!(
        out.contains("local.yaml:1: the file must hold a map of settings, found a list"),
        "{out}"
    );
}

#[test]
fn secrets_are_redacted_in_debug_and_output() {
    let config = load(&[("default.yaml", ECR_BASE)]).unwrap();
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    assert!(!format!("{config:?}").contains(secret));
    assert!(!format!("{config:#?}").contains(secret));
    let yaml = serde_yaml::to_string(&config).unwrap();
    assert!(!yaml.contains(secret));
    assert!(yaml.contains("hs256_secret: '[REDACTED]'"), "{yaml}");
}

#[test]
fn the_effective_config_renders_as_yaml() {
    let config = load_with(
        &[
            ("default.yaml", ECR_BASE),
            (
                "production.yaml",
                "registry:\n  tags: {Team: platform}\n  irsa:\n    oidc_provider_arn: arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC\n",
            ),
        ],
        &[],
    )
    .unwrap();
    snapshot!(serde_yaml::to_string(&config).unwrap());
}

#[test]
fn the_shipped_examples_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    let default = read("default.yaml");
    let config = load(&[
        ("default.yaml", &default),
        ("development.yaml", &read("development.yaml")),
    ])
    .unwrap();
    assert_eq!(config.registry.type_name(), "oci-client-auth");
    assert!(!config.projects.is_empty());
    let env = [
        ("RISE_JWT_ISSUER", "https://auth.example.com"),
        (
            "RISE_JWT_SECRET",
            "production-secret-production-secret-0123",
        ),
    ];
    let config = load_with(
        &[
            ("default.yaml", &default),
            ("production.yaml", &read("production.yaml")),
        ],
        &env,
    )
    .unwrap();
    let e = ecr(&config);
    assert_eq!(
        e.role_arn.as_str(),
        "arn:aws:iam::123456789012:role/rise-backend"
    );
    assert_eq!(e.push_role_arn.name(), "rise-backend-ecr-push");
}

/// A run mode of the operator's own (JWKS only) layered on the shipped
/// default.yaml inherits no secret, no admins and no projects from it.
#[test]
fn the_shipped_defaults_hold_nothing_a_run_mode_could_inherit_by_accident() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let default = std::fs::read_to_string(format!("{dir}/default.yaml")).unwrap();
    let idp = "auth:\n  jwks_url: https://idp.example.com/jwks.json\n  issuer: https://idp.example.com\n  audience: rise\n";
    let config = load(&[("default.yaml", &default), ("idp.yaml", idp)]).unwrap();
    assert!(
        config.auth.hs256_secret.is_none(),
        "no secret anyone could mint with"
    );
    assert!(config.auth.admins.is_empty());
    assert!(config.projects.is_empty());
    assert!(config.server.listen.ip().is_loopback());
    // default.yaml alone cannot verify any token at all.
    let alone = errors(&[("default.yaml", &default)]);
    assert!(alone.contains("auth needs a key source"), "{alone}");
}

#[test]
fn a_jwks_needs_issuer_and_audience_hs256_does_not() {
    let base = "registry: {type: oci-client-auth, registry_url: x}\n";
    let out = errors(&[(
        "a.yaml",
        &format!("{base}auth: {{jwks_url: https://idp.example.com/jwks.json}}\n"),
    )]);
    assert!(out.contains("auth.issuer: missing `issuer`"), "{out}");
    assert!(out.contains("auth.audience: missing `audience`"), "{out}");
    let out = errors(&[(
        "a.yaml",
        &format!("{base}auth: {{jwks_url: https://idp.example.com/jwks.json, issuer: i}}\n"),
    )]);
    assert!(!out.contains("auth.issuer"), "{out}");
    assert!(out.contains("auth.audience: missing `audience`"), "{out}");
    let hs = format!("{base}auth: {{hs256_secret: 0123456789abcdef0123456789abcdef}}\n");
    assert!(load(&[("a.yaml", &hs)]).is_ok());
}

/// What AWS would refuse only halfway through an apply is a config error
/// before any AWS call: tag characters, lengths and reserved prefixes, the
/// number of tags with rise-registry's own, the record of tag keys, and a
/// trust policy over IAM's quota (saying how many principals fit).
#[test]
fn tags_and_iam_quotas_are_checked_before_any_aws_call() {
    let tags = r#"
registry:
  tags:
    "team!": x
    AWS:owner: y
    cost: "a,b"
    ok: "ümlaut and space_.:/=+-@"
"#;
    snapshot!(
        "tag_characters_and_prefixes",
        errors(&[("default.yaml", ECR_BASE), ("local.yaml", tags)])
    );

    let many: String = (0..47).map(|i| format!("    k{i}: v\n")).collect();
    let too_many = format!("registry:\n  tags:\n{many}");
    let long_keys: String = (0..3)
        .map(|i| format!("    {}{i}: v\n", "k".repeat(100)))
        .collect();
    let long_record = format!("registry:\n  tags:\n{long_keys}");
    let principals: String = (0..40)
        .map(|i| {
            format!("    - arn:aws:iam::123456789012:role/some-rather-long-role-name-{i:02}\n")
        })
        .collect();
    let too_many_principals = format!("registry:\n  trusted_principals:\n{principals}");
    let principals = principals.as_str();
    snapshot!(
        "tag_counts_and_trust_policy_quota",
        [too_many, long_record, too_many_principals]
            .iter()
            .map(|local| errors(&[("default.yaml", ECR_BASE), ("local.yaml", local)]))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // 46 tags fit, and so do as many principals as the error says.
    let fits: String = (0..46).map(|i| format!("    k{i}: v\n")).collect();
    load(&[
        ("default.yaml", ECR_BASE),
        ("local.yaml", &format!("registry:\n  tags:\n{fits}")),
    ])
    .unwrap();
    let fitting: String = principals
        .lines()
        .take(28)
        .map(|l| format!("{l}\n"))
        .collect();
    load(&[
        ("default.yaml", ECR_BASE),
        (
            "local.yaml",
            &format!("registry:\n  trusted_principals:\n{fitting}"),
        ),
    ])
    .unwrap();
}

/// Regions of every partition, the European Sovereign Cloud's included,
/// take role ARNs of their partition.
#[test]
fn every_partition_takes_its_regions_and_role_arns() {
    for (region, partition) in [
        ("eusc-de-east-1", "aws-eusc"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-south-1", "aws-iso-f"),
        ("cn-north-1", "aws-cn"),
    ] {
        let local = format!(
            "registry:\n  region: {region}\n  role_arn: arn:{partition}:iam::123456789012:role/rise-backend\n  \
             push_role_arn: arn:{partition}:iam::123456789012:role/rise-backend-ecr-push\n"
        );
        let config = load(&[("default.yaml", ECR_BASE), ("local.yaml", &local)])
            .unwrap_or_else(|e| panic!("{region}: {e}"));
        assert_eq!(ecr(&config).partition(), partition);
        let wrong = local.replace(&format!("arn:{partition}:"), "arn:aws:");
        let e = errors(&[("default.yaml", ECR_BASE), ("local.yaml", &wrong)]);
        assert!(
            e.contains(&format!("but region {region} is in `{partition}`")),
            "{e}"
        );
    }
}

#[test]
fn the_metrics_listener_needs_an_address_of_its_own() {
    let same = "server:\n  listen: 127.0.0.1:3000\n  metrics_listen: 127.0.0.1:3000\n";
    let text = errors(&[("default.yaml", ECR_BASE), ("local.yaml", same)]);
    assert!(text.contains("local.yaml:3"), "{text}");
    assert!(text.contains("server.metrics_listen"), "{text}");
    assert!(text.contains("same address as `server.listen`"), "{text}");
    let apart = "server:\n  metrics_listen: 127.0.0.1:9464\n";
    let config = load(&[("default.yaml", ECR_BASE), ("local.yaml", apart)]).unwrap();
    assert_eq!(config.server.metrics_listen.map(|a| a.port()), Some(9464));
    assert_eq!(
        load(&[("default.yaml", ECR_BASE)])
            .unwrap()
            .server
            .metrics_listen,
        None
    );
}

/// `auth.issuers` and workload rules: what loads, and each mistake named
/// at its file, line and key, with a hint.
#[test]
fn issuers_and_workload_rules() {
    let good = r#"
registry: {type: oci-client-auth, registry_url: "localhost:5000"}
projects:
  - name: my-app
    access:
      - group:team-a
      - issuer: github
        claims: {repository: acme/my-app, event_name: [push, workflow_dispatch]}
        claims_like: {ref: "refs/heads/*"}
    pull_access:
      - issuer: gitlab
        claims: {project_path: acme/deploy, ref_protected: "true"}
auth:
  issuers:
    - name: github
      issuer: https://token.actions.githubusercontent.com
      audience: rise
    - name: gitlab
      issuer: https://gitlab.example.com
      audience: [rise, rise-ci]
      jwks_url: https://gitlab.example.com/oauth/discovery/keys
      algorithms: [RS256]
      leeway_seconds: 5
"#;
    let config = load(&[("a.yaml", good)]).unwrap();
    let names: Vec<&str> = config.auth.issuers().map(|i| i.name()).collect();
    assert_eq!(names, ["github", "gitlab"], "no single-issuer keys here");
    let gitlab = &config.auth.issuers[1];
    assert_eq!(gitlab.audience, ["rise", "rise-ci"]);
    assert!(
        !gitlab.principals,
        "workload issuers yield no principals by default"
    );
    let project = &config.projects[0];
    assert_eq!(project.access.len(), 2);
    assert_eq!(
        project.access[1].to_string(),
        "workload:github{event_name=push|workflow_dispatch,repository=acme/my-app,ref~refs/heads/*}"
    );
    assert_eq!(project.pull_access.len(), 1);
    let rendered = serde_yaml::to_string(&config).unwrap();
    assert!(rendered.contains("claims_like:"), "{rendered}");

    let bad = r#"
registry: {type: oci-client-auth, registry_url: "localhost:5000"}
projects:
  - name: my-app
    access:
      - issuer: github
      - issuer: githb
        claims: {repository: acme/my-app}
      - issuer: github
        claims_like: {ref: "*"}
      - issuer: github
        claims: {repository: []}
    pull_access:
      - issuer: gitlab
        claims: {ref: main}
        clams: {x: y}
auth:
  hs256_secret: 0123456789abcdef0123456789abcdef
  issuers:
    - {name: github, issuer: "https://token.actions.githubusercontent.com", audience: rise}
    - {name: default, issuer: "https://idp.example.com", audience: rise}
    - {name: GitHub, issuer: "http://idp2.example.com", audience: [], algorithms: [HS256]}
"#;
    let out = errors(&[("b.yaml", bad)]);
    for expected in [
        "b.yaml:6: projects[0].access[0]: a workload rule needs at least one condition in `claims` or `claims_like`",
        "b.yaml:7: projects[0].access[1].issuer: no issuer named `githb` in `auth`\n    hint: did you mean `github`?",
        "b.yaml:10: projects[0].access[2].claims_like.ref: `*` has no literal character, so it matches (nearly) every value",
        "b.yaml:12: projects[0].access[3].claims.repository: lists no value, so it can never hold",
        "b.yaml:16: projects[0].pull_access[0].clams: unknown key `clams`\n    hint: did you mean `claims`?",
        "b.yaml:14: projects[0].pull_access[0].issuer: no issuer named `gitlab` in `auth`",
        "auth.issuers[1].name: `default` is the name of the issuer the single-issuer keys of `auth` describe",
        "auth.issuers[2].issuer: `http://idp2.example.com` must use https://",
        "auth.issuers[2].name: `GitHub` is not an issuer name",
        "auth.issuers[2].audience: lists no audience",
        "auth.issuers[2].algorithms[0]: `HS256` is not RS256 or ES256",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Only issuers: no single-issuer key source is needed.
    let only = "registry: {type: oci-client-auth, registry_url: x}\nauth: {issuers: [{name: ci, issuer: 'https://ci.example.com', audience: rise}]}\n";
    assert!(load(&[("c.yaml", only)]).is_ok());
    let twice = "registry: {type: oci-client-auth, registry_url: x}\nauth: {issuers: [{name: ci, issuer: 'https://ci.example.com', audience: rise}, {name: ci, issuer: 'https://ci.example.com', audience: rise}]}\n";
    let out = errors(&[("d.yaml", twice)]);
    assert!(out.contains("duplicate issuer name `ci`"), "{out}");
    assert!(
        out.contains("issuer `https://ci.example.com` is listed twice"),
        "{out}"
    );
}

/// What review of the issuer rules turned up: conditions verification
/// already decides, `auth.issuer` repeated in `issuers`, and single-issuer
/// keys that would silently do nothing.
#[test]
fn issuer_rules_refuse_what_would_admit_everyone_or_do_nothing() {
    let text = r#"
registry: {type: oci-client-auth, registry_url: "localhost:5000"}
projects:
  - name: my-app
    access:
      - {issuer: ci, claims: {aud: rise}}
      - {issuer: ci, claims_like: {sub: "?*"}}
auth:
  issuers:
    - {name: ci, issuer: "https://ci.example.com", audience: rise}
  groups_claim: roles
"#;
    let out = errors(&[("a.yaml", text)]);
    for expected in [
        "a.yaml:6: projects[0].access[0]: `aud` cannot be a condition",
        "a.yaml:7: projects[0].access[1].claims_like.sub: `?*` has no literal character",
        "a.yaml:11: auth.groups_claim: `groups_claim` has no effect without `hs256_secret` or `jwks_url`",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let same = "registry: {type: oci-client-auth, registry_url: x}\nauth:\n  jwks_url: https://idp.example.com/jwks\n  issuer: https://idp.example.com\n  audience: rise\n  issuers: [{name: ci, issuer: 'https://idp.example.com', audience: rise}]\n";
    let out = errors(&[("b.yaml", same)]);
    assert!(
        out.contains("auth.issuers[0].issuer: `https://idp.example.com` is also `auth.issuer`"),
        "{out}"
    );
}

/// For an issuer that signs for every customer of a CI service (GitHub
/// Actions, gitlab.com), a rule must say whose pipelines it admits: a
/// pattern that admits almost everything, or a rule on `ref` alone, is
/// refused with the claims to pin; an owner fixed by a pattern (`acme/*`)
/// is enough; an issuer marked `private: true` may have such rules, and
/// `config --check` still warns of patterns made only of separators.
#[test]
fn rules_of_a_public_issuer_must_pin_whose_pipelines_they_admit() {
    let with = |private: &str, rules: &str| {
        format!(
            "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\"}}\n\
             projects:\n  - name: my-app\n    access:\n{rules}\
             auth:\n  issuers:\n    - {{name: gh, issuer: \"https://token.actions.githubusercontent.com\", audience: rise{private}}}\n"
        )
    };
    let loose = "      - {issuer: gh, claims_like: {repository: \"*/*\"}}\n\
                 \x20     - {issuer: gh, claims_like: {repository: \"?*/*\"}}\n\
                 \x20     - {issuer: gh, claims_like: {repository_owner: \"*-*\"}}\n\
                 \x20     - {issuer: gh, claims: {ref: refs/heads/main}}\n";
    let out = errors(&[("a.yaml", &with("", loose))]);
    for i in 0..4 {
        let expected = format!(
            "a.yaml:{}: projects[0].access[{i}]: this rule does not say whose pipelines it admits: `gh` signs tokens for every customer of its CI service",
            5 + i
        );
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        out.contains("hint: pin one of repository, repository_owner, repository_id, project_path, namespace_path, sub exactly"),
        "{out}"
    );
    assert!(
        out.contains("say `private: true` in its `auth.issuers` entry"),
        "{out}"
    );

    let pinned = "      - {issuer: gh, claims: {repository: acme/my-app, ref: refs/heads/main}}\n\
                  \x20     - {issuer: gh, claims_like: {repository: \"acme/*\"}}\n\
                  \x20     - {issuer: gh, claims: {sub: \"repo:acme/my-app:environment:prod\"}}\n\
                  \x20     - {issuer: gh, claims: {repository_owner: acme}, claims_like: {job_workflow_ref: \"*/*\"}}\n";
    let config = load(&[("b.yaml", &with("", pinned))]).unwrap_or_else(|e| panic!("{e}"));
    let advice = rise_registry::config::recommendations(&config);
    assert_eq!(
        advice,
        [
            "projects[my-app].access[3].claims_like.job_workflow_ref: `*/*` has only separators besides its wildcards, so it matches almost any value; name the values it should match"
        ],
    );

    let own =
        load(&[("c.yaml", &with(", private: true", loose))]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rise_registry::config::recommendations(&own).len(), 3);
}

/// An issuer's key fingerprint, which tickets carry, changes with what
/// makes its tokens (the shared secret, the `iss`, the JWKS URL or the
/// issuer a listed entry discovers keys at) and with nothing else.
#[test]
fn an_issuers_key_fingerprint_follows_its_keys_only() {
    let key = |auth: &str| {
        let text = format!(
            "registry: {{type: oci-client-auth, registry_url: \"localhost:5000\"}}\nauth: {auth}\n"
        );
        let config = load(&[("a.yaml", &text)]).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = config.auth.issuers().map(|i| i.key_fingerprint()).collect();
        names
    };
    let base = key("{hs256_secret: 0123456789abcdef0123456789abcdef, issuer: rise}");
    assert_eq!(base.len(), 1);
    assert_eq!(
        base,
        key("{hs256_secret: 0123456789abcdef0123456789abcdef, issuer: rise, admins: ['group:x']}")
    );
    assert_ne!(
        base,
        key("{hs256_secret: 0123456789abcdef0123456789abcdeF, issuer: rise}")
    );
    assert_ne!(
        base,
        key("{hs256_secret: 0123456789abcdef0123456789abcdef, issuer: rise2}")
    );
    let listed = |issuer: &str, jwks: &str| {
        key(&format!(
            "{{issuers: [{{name: gh, issuer: \"{issuer}\", audience: rise{jwks}}}]}}"
        ))
    };
    let gh = listed("https://token.actions.githubusercontent.com", "");
    assert_eq!(
        gh,
        listed("https://token.actions.githubusercontent.com", "")
    );
    assert_ne!(gh, listed("https://gitlab.com", ""));
    assert_ne!(
        gh,
        listed(
            "https://token.actions.githubusercontent.com",
            ", jwks_url: \"https://keys.example.com/jwks\""
        )
    );
}

/// `store` and `controller`: the URL's forms, an empty URL as no store,
/// the URL never repeated in an error, and the controller only with a
/// store.
#[test]
fn store_and_controller_settings() {
    let with = |extra: &str| vec![("default.yaml", ECR_BASE.to_string() + extra)];
    let load_extra = |extra: &str| {
        let layers = with(extra);
        let layers: Vec<(&str, &str)> = layers.iter().map(|(f, t)| (*f, t.as_str())).collect();
        load(&layers)
    };
    let config = load_extra("store: {url: 'sqlite:data/projects.db'}\n").unwrap();
    let Some(rise_registry::config::StoreConfig {
        url: rise_registry::config::StoreUrl::Sqlite(path),
    }) = &config.store
    else {
        panic!("{:?}", config.store)
    };
    // support::load_config names the config directory `config`.
    assert_eq!(
        path,
        std::path::Path::new("config/data/projects.db"),
        "relative to the config dir"
    );
    assert!(!config.controller.enabled);

    let empty = load_with(
        &[(
            "default.yaml",
            &(ECR_BASE.to_string() + "store: {url: '${RISE_STORE_URL:-}'}\n"),
        )],
        &[],
    )
    .unwrap();
    assert!(empty.store.is_none(), "an empty URL is no store");

    let secret = "postgres-password-never-printed";
    let pg = load_extra(&format!(
        "store: {{url: 'postgres://rise:{secret}@db:5432/rise'}}\ncontroller: {{enabled: true, interval_seconds: 30}}\n"
    ))
    .unwrap();
    assert!(pg.controller.enabled);
    assert_eq!(pg.controller.interval_seconds, 30);
    assert!(!format!("{pg:?}").contains(secret));
    assert!(!serde_yaml::to_string(&pg).unwrap().contains(secret));

    let layers = with(&format!(
        "store: {{url: 'mysql://root:{secret}@db/rise'}}\n"
    ));
    let err = errors(&[(layers[0].0, &layers[0].1)]);
    assert!(
        err.contains("store.url") && err.contains("postgres://"),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
    let layers = with("store: {url: 'sqlite::memory:'}\n");
    assert!(errors(&[(layers[0].0, &layers[0].1)]).contains("a SQLite store is a file"));
    let layers = with("controller: {enabled: true}\n");
    let err = errors(&[(layers[0].0, &layers[0].1)]);
    assert!(
        err.contains("controller.enabled") && err.contains("needs `store`"),
        "{err}"
    );
}
