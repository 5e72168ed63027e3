# rise-registry on EKS: the controller role trusts the backend's Kubernetes
# service account through IRSA instead of the whole account. Annotate the
# service account with the role ARN (Helm: serviceAccount.iamRoleArn).

variable "oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider ARN (for example module.eks.oidc_provider_arn)."
  type        = string
}

module "rise_ecr" {
  source = "../../modules/rise-aws"

  name                   = "rise-backend"
  repo_prefix            = "rise/"
  irsa_oidc_provider_arn = var.oidc_provider_arn
  irsa_namespace         = "rise-system"
  irsa_service_account   = "rise-backend"
}

output "rise_ecr_config" {
  description = "The registry block for rise-registry's config."
  value       = module.rise_ecr.rise_config
}

output "service_account_role_arn" {
  description = "The role ARN to annotate the service account with (eks.amazonaws.com/role-arn)."
  value       = module.rise_ecr.role_arn
}
