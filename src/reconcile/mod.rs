//! Reconciling AWS with the configuration, Terraform style, as values:
//! [`desired`] computes what should exist, [`plan::plan`] diffs it against
//! what was observed into ordered actions, [`canonical`] makes policy
//! comparison ignore spelling, and [`apply`] runs a plan's actions in
//! batches into a report. [`pipeline`] puts them together once for every
//! caller (`plan`, `apply`, `doctor`): observe, plan, re-check a
//! [`saved`] plan, execute. Only [`aws`] (with `tagging`, its bulk tag
//! read, both over the SDK plumbing of [`crate::aws::sdk`]) talks to AWS: it observes
//! the account and carries out single actions. For the reviewer,
//! [`render`] draws a plan as text, Markdown or JSON, showing policy
//! documents through [`diff`] and explaining each action through
//! [`meaning`].

pub mod apply;
pub mod aws;
pub mod canonical;
pub mod desired;
pub mod diff;
pub mod lock;
pub mod meaning;
pub mod pipeline;
pub mod plan;
#[cfg(test)]
mod props;
pub mod render;
pub mod saved;
mod tagging;
