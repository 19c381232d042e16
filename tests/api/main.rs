//! One integration binary; every test runs on SQLite and on PostgreSQL
//! (`cargo test sqlite`, `cargo test postgres` to run one backend).

mod helpers;

mod assets;
mod audit;
mod cli;
mod console_auth;
mod docs;
mod errors;
mod evidence;
mod exports;
mod gateway;
mod gateway_envoy;
mod gateway_nginx;
mod holds;
mod hostile;
mod hostile_callers;
mod hot_path;
mod insider;
mod instances;
mod isolation;
mod key_auth;
mod keys;
mod leaks;
mod merkle;
mod notices;
mod ocsf;
mod proofs;
mod rate_limits;
mod reliability;
mod retention;
mod scim;
mod scim_conformance;
mod scim_groups;
mod secrets;
mod siem_feed;
mod sinks;
mod smoke;
mod team_users;
mod verifier;
