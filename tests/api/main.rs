//! One integration binary; every test runs on SQLite and on PostgreSQL
//! (`cargo test sqlite`, `cargo test postgres` to run one backend).

mod helpers;

mod audit;
mod cli;
mod console_auth;
mod docs;
mod errors;
mod gateway;
mod key_auth;
mod keys;
mod secrets;
mod smoke;
