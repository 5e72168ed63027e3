variable "name" {
  description = "Name of the controller role (and of the IAM user, when created); the push role is named \"{name}-ecr-push\"."
  type        = string
  default     = "rise-backend"

  validation {
    # 64 is IAM's limit for role names; the push role adds 9 characters.
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,55}$", var.name))
    error_message = "name must be 1 to 55 characters of letters, digits and +=,.@_- (the push role appends \"-ecr-push\")."
  }
}

variable "repo_prefix" {
  description = "Prefix of every repository rise-registry manages, such as \"rise/\": lower-case ECR path components ending in /, ., _ or -."
  type        = string
  default     = "rise/"

  validation {
    condition     = can(regex("^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*[/._-]$", var.repo_prefix))
    error_message = "repo_prefix must be lower-case ECR path components ending in /, ., _ or - (for example \"rise/\")."
  }
}

variable "auto_remove" {
  description = "Whether rise-registry may delete the repositories of removed projects; when false they are only tagged rise:orphaned=true and the controller gets no delete permission."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the roles and the user."
  type        = map(string)
  default     = {}
}

variable "create_iam_role" {
  description = "Create the controller role, for rise-registry running in AWS (EC2, ECS, or EKS with IRSA)."
  type        = bool
  default     = true
}

variable "create_iam_user" {
  description = "Create an IAM user with an access key, for rise-registry running outside AWS; the user may manage repositories and assume the push role."
  type        = bool
  default     = false
}

variable "irsa_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider; when set, the controller role trusts the service account below instead of the account."
  type        = string
  default     = null

  validation {
    condition     = var.irsa_oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[^ ]+$", var.irsa_oidc_provider_arn))
    error_message = "irsa_oidc_provider_arn must be an IAM OIDC provider ARN (arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST/PATH)."
  }
}

variable "irsa_namespace" {
  description = "Kubernetes namespace of the service account rise-registry runs as (IRSA)."
  type        = string
  default     = "rise-system"
}

variable "irsa_service_account" {
  description = "Kubernetes service account rise-registry runs as (IRSA)."
  type        = string
  default     = "rise-backend"
}
