output "rise_config" {
  description = "The `registry:` block for rise-registry's config (config/production.yaml); keys as in docs/configuration.md."
  value = merge(
    {
      type          = "ecr"
      region        = data.aws_region.current.name
      account_id    = local.account_id
      repo_prefix   = var.repo_prefix
      role_arn      = one(aws_iam_role.controller[*].arn)
      push_role_arn = aws_iam_role.push.arn
      auto_remove   = var.auto_remove
      # The roles are this module's: rise-registry's plan/apply default to
      # `--scope repositories` and never touch them.
      manage_roles = false
    },
    { for k, v in { irsa = local.irsa } : k => {
      oidc_provider_arn  = v.oidc_provider_arn
      namespace          = v.namespace
      service_account    = v.service_account
    } if v != null },
  )
}

output "role_arn" {
  description = "ARN of the controller role, or null when create_iam_role is false."
  value       = one(aws_iam_role.controller[*].arn)
}

output "push_role_arn" {
  description = "ARN of the push role."
  value       = aws_iam_role.push.arn
}

output "user_arn" {
  description = "ARN of the IAM user, or null when create_iam_user is false."
  value       = one(aws_iam_user.this[*].arn)
}

output "access_key_id" {
  description = "Access key id of the IAM user, or null when create_iam_user is false."
  value       = one(aws_iam_access_key.this[*].id)
  sensitive   = true
}

output "secret_access_key" {
  description = "Secret access key of the IAM user, or null when create_iam_user is false. Store it in a secret manager."
  value       = one(aws_iam_access_key.this[*].secret)
  sensitive   = true
}
