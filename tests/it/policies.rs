//! The role documents rendered from `modules/rise-aws/policies/*.tftpl`
//! for each way of running (IAM role, EKS IRSA, IAM user outside AWS,
//! auto_remove), kept as golden JSON in snapshots/, plus the rules every
//! rendering must keep whatever the inputs.

use crate::support;

use rise_registry::config::{EcrConfig, RegistryConfig};
use rise_registry::roles::{RoleDocuments, TemplateVars, render, role_documents};
use serde_json::Value;

const BASE: &str = r#"
registry:
  type: ecr
  region: us-east-1
  account_id: "123456789012"
  repo_prefix: rise/
  role_arn: arn:aws:iam::123456789012:role/rise-backend
  push_role_arn: arn:aws:iam::123456789012:role/rise-backend-ecr-push
auth: {hs256_secret: 0123456789abcdef0123456789abcdef}
"#;

fn ecr(extra: &str) -> EcrConfig {
    match support::load_config(&[("default.yaml", BASE), ("local.yaml", extra)], &[])
        .unwrap()
        .registry
    {
        RegistryConfig::Ecr(e) => *e,
        other => panic!("{other:?}"),
    }
}

fn documents(extra: &str) -> RoleDocuments {
    role_documents(&TemplateVars::from_config(&ecr(extra))).unwrap()
}

const MODES: [(&str, &str); 4] = [
    ("role", ""),
    (
        "irsa",
        "registry:\n  irsa:\n    oidc_provider_arn: arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\n    namespace: rise-system\n    service_account: rise-backend\n",
    ),
    (
        "iam_user",
        "registry:\n  trusted_principals: [arn:aws:iam::123456789012:user/rise-backend]\n",
    ),
    ("auto_remove", "registry:\n  auto_remove: true\n"),
];

#[test]
fn golden_documents_for_each_mode() {
    for (mode, extra) in MODES {
        let docs = documents(extra);
        snapshot!(
            format!("policies_{mode}"),
            serde_json::to_string_pretty(&docs).unwrap()
        );
    }
}

fn statements(doc: &Value) -> &Vec<Value> {
    doc["Statement"].as_array().expect("a Statement list")
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        other => panic!("{other:?}"),
    }
}

/// Statements granting a write action on anything but the prefix's
/// repositories or the push role, or anything but the login on `*`.
/// Reads that IAM cannot scope to a resource (they have no resource type),
/// the only actions allowed on `*`.
const UNSCOPED_READS: [&str; 3] = [
    "ecr:GetAuthorizationToken",
    "ecr:GetRegistryScanningConfiguration",
    // The bulk tag read: IAM offers no resource to scope it to.
    "tag:GetResources",
];

fn unscoped_writes(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for st in statements(doc) {
        let resource = st["Resource"].as_str().unwrap_or_default();
        let writes: Vec<String> = actions(st)
            .into_iter()
            .filter(|a| !UNSCOPED_READS.contains(&a.as_str()) && a != "ecr:DescribeRepositories")
            .collect();
        let scoped = resource.ends_with(":repository/rise/*")
            || resource.ends_with(":role/rise-backend-ecr-push");
        if !writes.is_empty() && !scoped {
            found.push(format!("{writes:?} on {resource}"));
        }
        if resource == "*"
            && actions(st)
                .iter()
                .any(|a| !UNSCOPED_READS.contains(&a.as_str()))
        {
            found.push(format!("{:?} on *", actions(st)));
        }
    }
    found
}

#[test]
fn write_actions_are_never_unscoped() {
    for (mode, extra) in MODES {
        let docs = documents(extra);
        for doc in [&docs.controller_policy, &docs.push_policy] {
            assert_eq!(unscoped_writes(doc), Vec::<String>::new(), "{mode}");
        }
    }
}

#[test]
fn a_broken_template_with_an_unscoped_write_is_caught() {
    let vars = TemplateVars::from_config(&ecr(""));
    let (_, push) = rise_registry::roles::TEMPLATES[3];
    let scoped = "arn:${partition}:ecr:${region}:${account_id}:repository/${repo_prefix}*";
    assert!(push.contains(scoped));
    let broken = render("push-policy", &push.replacen(scoped, "*", 1), &vars).unwrap();
    assert!(!unscoped_writes(&broken).is_empty());
}

/// The Terraform module passes the templates exactly the variables
/// rise-registry renders them with: same names, nothing missing or extra.
#[test]
fn the_module_passes_the_same_template_variables() {
    let main = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/modules/rise-aws/main.tf"
    ))
    .unwrap();
    let body = hcl::parse(&main).unwrap();
    let locals: Vec<&hcl::Attribute> = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .collect();
    let keys_of = |name: &str| -> std::collections::BTreeSet<String> {
        let expr = locals
            .iter()
            .find(|a| a.key() == name)
            .unwrap_or_else(|| panic!("local {name}"))
            .expr();
        let mut keys = std::collections::BTreeSet::new();
        let mut collect = |e: &hcl::Expression| {
            if let hcl::Expression::Object(o) = e {
                keys.extend(
                    o.keys()
                        .map(|k| k.to_string().trim_matches('"').to_string()),
                );
            }
        };
        match expr {
            // merge(local.base_vars, { … })
            hcl::Expression::FuncCall(call) => {
                for arg in &call.args {
                    match arg {
                        hcl::Expression::Traversal(_) => {}
                        other => collect(other),
                    }
                }
            }
            other => collect(other),
        }
        keys
    };
    let mut module_vars = keys_of("base_vars");
    module_vars.extend(keys_of("template_vars"));
    let rust_vars: std::collections::BTreeSet<String> =
        serde_json::to_value(TemplateVars::from_config(&ecr("")))
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
    assert_eq!(module_vars, rust_vars);
}

#[test]
fn deletion_is_granted_only_with_auto_remove() {
    let grants_delete = |docs: &RoleDocuments| {
        statements(&docs.controller_policy)
            .iter()
            .flat_map(actions)
            .any(|a| a == "ecr:DeleteRepository" || a == "ecr:BatchDeleteImage")
    };
    assert!(!grants_delete(&documents("")));
    assert!(grants_delete(&documents(
        "registry:\n  auto_remove: true\n"
    )));
}

#[test]
fn irsa_trusts_exactly_one_service_account() {
    let docs = documents(MODES[1].1);
    let trust = &statements(&docs.controller_trust)[0];
    assert_eq!(trust["Action"], "sts:AssumeRoleWithWebIdentity");
    let cond = &trust["Condition"]["StringEquals"];
    let provider = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE";
    assert_eq!(
        cond[format!("{provider}:sub")],
        "system:serviceaccount:rise-system:rise-backend"
    );
    assert_eq!(cond[format!("{provider}:aud")], "sts.amazonaws.com");
    assert!(
        !docs.controller_trust.to_string().contains(":root"),
        "no account-wide trust with IRSA"
    );
}

#[test]
fn template_semantics_match_terraform() {
    let vars = TemplateVars::from_config(&ecr(""));
    // `$${…}` stays literal (IAM policy variables need it).
    let doc = render(
        "t",
        r#"{"v": "$${aws:username}", "p": "${partition}"}"#,
        &vars,
    )
    .unwrap();
    assert_eq!(doc["v"], "${aws:username}");
    assert_eq!(doc["p"], "aws");
    // An undefined variable is an error, not an empty string.
    let err = render("t", r#"{"v": "${no_such_variable}"}"#, &vars).unwrap_err();
    assert!(err.to_string().contains("no_such_variable"), "{err}");
    // So is a template that does not parse, or does not render to JSON.
    assert!(render("t", r#"{"v": "${partition"}"#, &vars).is_err());
    assert!(render("t", r#"{"v": ${partition}}"#, &vars).is_err());
}

#[test]
fn golden_session_policy() {
    let policy = rise_registry::policy::session_policy(
        &ecr(""),
        &rise_registry::naming::ProjectName::parse("my-app").unwrap(),
    )
    .unwrap();
    snapshot!(
        "policies_session",
        serde_json::to_string_pretty(&policy).unwrap()
    );
}
