# rise-registry outside AWS: an IAM user with an access key manages the
# repositories and assumes the push role. Keep the key in a secret manager
# and give it to serve through the environment (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY), never in config files.

module "rise_ecr" {
  source = "../../modules/rise-aws"

  name            = "rise-backend"
  repo_prefix     = "rise/"
  create_iam_role = false
  create_iam_user = true
}

resource "aws_secretsmanager_secret" "rise_ecr_creds" {
  #checkov:skip=CKV_AWS_149:An example: the account's default key keeps it self-contained; set kms_key_id to a customer-managed key in real use.
  #checkov:skip=CKV2_AWS_57:Secrets Manager cannot rotate an IAM access key without a rotation function; rotate by tainting module.rise_ecr.aws_iam_access_key.this.
  name        = "rise-backend-ecr-credentials"
  description = "Access key of the rise-backend IAM user."
}

resource "aws_secretsmanager_secret_version" "rise_ecr_creds" {
  secret_id = aws_secretsmanager_secret.rise_ecr_creds.id
  secret_string = jsonencode({
    access_key_id     = module.rise_ecr.access_key_id
    secret_access_key = module.rise_ecr.secret_access_key
  })
}

output "rise_ecr_config" {
  description = "The registry block for rise-registry's config."
  value       = module.rise_ecr.rise_config
}

output "user_arn" {
  description = "The IAM user serve authenticates as."
  value       = module.rise_ecr.user_arn
}
