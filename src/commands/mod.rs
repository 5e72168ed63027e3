//! One module per subcommand. Each takes loaded settings and a writer and
//! returns a [`crate::run::Status`]; none prints to stdout directly.

pub mod config;
pub mod oci_token;
pub mod reconcile;
pub mod serve;
pub mod token;
