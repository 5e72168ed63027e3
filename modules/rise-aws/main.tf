# The two-role setup of rise-registry: a controller role (or user) that
# manages repositories under the prefix and assumes the push role, and a
# push role whose permissions serve narrows to one repository per request.
# The policy documents come from policies/*.json.tftpl, the same files
# `rise-registry plan` and `apply` render.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition      = data.aws_partition.current.partition
  account_id     = data.aws_caller_identity.current.account_id
  push_role_name = "${var.name}-ecr-push"
  push_role_arn  = "arn:${local.partition}:iam::${local.account_id}:role/${local.push_role_name}"

  irsa = var.irsa_oidc_provider_arn == null ? null : {
    oidc_provider_arn = var.irsa_oidc_provider_arn
    provider          = split("oidc-provider/", var.irsa_oidc_provider_arn)[1]
    namespace         = var.irsa_namespace
    service_account   = var.irsa_service_account
  }

  # Trust policies name principals that must already exist, so they come
  # from the resources, which also orders their creation.
  user_arns = aws_iam_user.this[*].arn
  role_arns = aws_iam_role.controller[*].arn

  base_vars = {
    partition          = local.partition
    region             = data.aws_region.current.name
    account_id         = local.account_id
    repo_prefix        = var.repo_prefix
    auto_remove        = var.auto_remove
    push_role_arn      = local.push_role_arn
    irsa               = local.irsa
    trusted_principals = local.user_arns
  }

  # The controller role's own trust is rendered before the role exists, so
  # it cannot use the role's ARN (the template does not read this value).
  controller_trust_vars = merge(local.base_vars, { push_trusted_principals = [] })
  template_vars         = merge(local.base_vars, { push_trusted_principals = concat(local.role_arns, local.user_arns) })
}

resource "aws_iam_user" "this" {
  #checkov:skip=CKV_AWS_273:A service outside AWS cannot sign in through SSO; this user exists only when create_iam_user asks for it.
  count = var.create_iam_user ? 1 : 0

  name = var.name
  tags = var.tags
}

resource "aws_iam_access_key" "this" {
  count = var.create_iam_user ? 1 : 0

  user = aws_iam_user.this[0].name
}

resource "aws_iam_user_policy" "controller" {
  #checkov:skip=CKV_AWS_40:A single-purpose machine user; a group would add indirection, not reduce its privileges.
  count = var.create_iam_user ? 1 : 0

  name   = "rise-controller"
  user   = aws_iam_user.this[0].name
  policy = templatefile("${path.module}/policies/controller-policy.json.tftpl", local.template_vars)
}

resource "aws_iam_role" "controller" {
  count = var.create_iam_role ? 1 : 0

  name               = var.name
  assume_role_policy = templatefile("${path.module}/policies/controller-trust.json.tftpl", local.controller_trust_vars)
  tags               = var.tags
}

resource "aws_iam_role_policy" "controller" {
  count = var.create_iam_role ? 1 : 0

  name   = "rise-controller"
  role   = aws_iam_role.controller[0].id
  policy = templatefile("${path.module}/policies/controller-policy.json.tftpl", local.template_vars)
}

resource "aws_iam_role" "push" {
  name               = local.push_role_name
  assume_role_policy = templatefile("${path.module}/policies/push-trust.json.tftpl", local.template_vars)
  tags               = var.tags

  lifecycle {
    precondition {
      # AWS rejects a trust policy that trusts nobody.
      condition     = var.create_iam_role || var.create_iam_user
      error_message = "Set create_iam_role or create_iam_user (or both): something must be able to assume the push role."
    }
  }
}

resource "aws_iam_role_policy" "push" {
  name   = "rise-push"
  role   = aws_iam_role.push.id
  policy = templatefile("${path.module}/policies/push-policy.json.tftpl", local.template_vars)
}
