//! The background machinery of export jobs. Requests record PENDING jobs
//! through `service::exports`; one runner per instance (`runner`) takes them
//! race-free, builds their files (`build`) and records each status change as
//! an event of the tenant's chain.

pub mod build;
pub mod runner;
