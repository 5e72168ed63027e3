# rise-registry's AWS setup for a backend running in AWS with an IAM role.
# Variants: irsa/ (EKS with IRSA) and iam-user/ (a backend outside AWS).
#
#   terraform init && terraform apply
#   terraform output rise_ecr_config   # paste into config/production.yaml under `registry:`

module "rise_ecr" {
  source = "../modules/rise-aws"

  name        = "rise-backend"
  repo_prefix = "rise/"
  auto_remove = false

  tags = {
    Environment = "production"
    ManagedBy   = "terraform"
  }
}

output "rise_ecr_config" {
  description = "The registry block for rise-registry's config."
  value       = module.rise_ecr.rise_config
}
