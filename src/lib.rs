//! keyward: enterprise compliance key management.
//!
//! Data flows one way: HTTP (`api`) → caller (`auth`) → rules (`domain`) →
//! storage and audit in one transaction (`service`, `db`, `audit`) → response.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod exports;
pub mod metrics;
pub mod ratelimit;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod threads;
pub mod witness;
