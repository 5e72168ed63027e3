//! Reconciling AWS with the configuration, Terraform style, as values:
//! [`desired`] computes what should exist, [`plan::plan`] diffs it against
//! what was observed into ordered actions, and [`canonical`] makes policy
//! comparison ignore spelling. Nothing here talks to AWS; the observer and
//! the executor of `plan`/`apply` sit at the edge.

pub mod aws;
pub mod canonical;
pub mod desired;
pub mod plan;
pub mod render;
