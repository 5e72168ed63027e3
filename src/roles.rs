//! The documents of the two roles, rendered from the template files in
//! `modules/rise-aws/policies/`, which the Terraform module renders with
//! `templatefile()` too: both provisioning paths produce the same policies
//! because they read the same files.
//!
//! Rendering follows Terraform's template language (hcl-rs): `${…}`
//! interpolation, `%{ if }` / `%{ for }` directives, `$${…}` left literal,
//! and an undefined variable is an error. The only function the templates
//! use is `length`, declared here with Terraform's meaning.
//!
//! Config renders these documents to check them against IAM's size quotas
//! ([`TRUST_POLICY_MAX_CHARS`], [`ROLE_INLINE_POLICIES_MAX_CHARS`]), so
//! this module knows nothing of config: the variables are plain strings,
//! and [`TemplateVars::from_config`] (in `config`) fills them from the ECR
//! settings.

use hcl::Template;
use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use serde::Serialize;
use serde_json::Value;

/// Each template: its name (file stem) and text, compiled in.
pub const TEMPLATES: [(&str, &str); 4] = [
    (
        "controller-trust",
        include_str!("../modules/rise-aws/policies/controller-trust.json.tftpl"),
    ),
    (
        "controller-policy",
        include_str!("../modules/rise-aws/policies/controller-policy.json.tftpl"),
    ),
    (
        "push-trust",
        include_str!("../modules/rise-aws/policies/push-trust.json.tftpl"),
    ),
    (
        "push-policy",
        include_str!("../modules/rise-aws/policies/push-policy.json.tftpl"),
    ),
];

/// The variables every template is rendered with: the same names the
/// Terraform module passes to `templatefile()`. Built from the ECR
/// settings by [`TemplateVars::from_config`].
#[derive(Debug, Clone, Serialize)]
pub struct TemplateVars {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub repo_prefix: String,
    pub auto_remove: bool,
    pub push_role_arn: String,
    /// EKS IRSA trust for the controller role instead of the account root.
    pub irsa: Option<IrsaVars>,
    /// Extra principals the controller role trusts.
    pub trusted_principals: Vec<String>,
    /// Who may assume the push role: the controller role, and the extra
    /// principals (an IAM user outside AWS acts as the controller).
    pub push_trusted_principals: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IrsaVars {
    pub oidc_provider_arn: String,
    /// The provider's host and path, prefix of the `:sub` and `:aud` keys.
    pub provider: String,
    pub namespace: String,
    pub service_account: String,
}

/// IAM's quota on a role's trust policy, in characters without white
/// space (the default; Service Quotas can raise it to 4096).
pub const TRUST_POLICY_MAX_CHARS: usize = 2048;
/// IAM's quota on all inline policies of one role together, in characters
/// without white space.
pub const ROLE_INLINE_POLICIES_MAX_CHARS: usize = 10_240;

/// A policy's size as IAM counts it against its quotas: the characters of
/// the document, white space not counted.
pub fn policy_chars(policy: &Value) -> usize {
    policy
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// The four documents, as JSON values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleDocuments {
    pub controller_trust: Value,
    pub controller_policy: Value,
    pub push_trust: Value,
    pub push_policy: Value,
}

/// Why a template did not render: a bug in a template, not in user input.
#[derive(Debug, thiserror::Error)]
#[error("template {template}: {message}")]
pub struct RenderError {
    pub template: &'static str,
    pub message: String,
}

/// Terraform's `length`: elements of a list or map, characters of a string.
fn length(args: FuncArgs) -> Result<hcl::Value, String> {
    match &args[0] {
        hcl::Value::Array(a) => Ok(a.len().into()),
        hcl::Value::Object(o) => Ok(o.len().into()),
        hcl::Value::String(s) => Ok(s.chars().count().into()),
        other => Err(format!("length() of {other:?}")),
    }
}

/// Renders one template and parses the result as JSON.
///
/// # Errors
/// A template that does not parse, uses an undefined variable or function,
/// or renders to something that is not JSON.
pub fn render(
    template: &'static str,
    text: &str,
    vars: &TemplateVars,
) -> Result<Value, RenderError> {
    let fail = |message: String| RenderError { template, message };
    let parsed: Template = text.parse().map_err(|e| fail(format!("{e}")))?;
    let mut ctx = Context::new();
    let hcl::Value::Object(values) = hcl::to_value(vars).map_err(|e| fail(e.to_string()))? else {
        return Err(fail("the variables are not an object".into()));
    };
    for (name, value) in values {
        ctx.declare_var(name, value);
    }
    ctx.declare_func("length", FuncDef::new(length, [ParamType::Any]));
    let rendered = parsed.evaluate(&ctx).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&rendered)
        .map_err(|e| fail(format!("renders to invalid JSON ({e}):\n{rendered}")))
}

/// Renders all four documents.
///
/// # Errors
/// As [`render`].
pub fn role_documents(vars: &TemplateVars) -> Result<RoleDocuments, RenderError> {
    let [ct, cp, pt, pp] = TEMPLATES.map(|(name, text)| render(name, text, vars));
    Ok(RoleDocuments {
        controller_trust: ct?,
        controller_policy: cp?,
        push_trust: pt?,
        push_policy: pp?,
    })
}
