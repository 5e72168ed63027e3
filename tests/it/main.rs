//! The integration tests, as one test binary: each module is one area
//! (named as the file was when each was a binary of its own), and
//! `support` starts the real components they run against. One binary
//! links the library and `support` once instead of once per area.

#[macro_use]
mod support;

mod aws_harness;
mod chart;
mod cli;
mod config;
mod container;
mod docs;
mod doctor;
mod herd;
mod hostile;
mod login;
mod plan_review;
mod planner;
mod policies;
mod projects;
mod reconcile;
mod release;
mod reload;
mod serve;
mod serve_ecr;
mod serve_oci_token;
mod soak;
mod terraform;
mod workload;
