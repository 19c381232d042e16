//! Handlers of export jobs: e-Discovery archives and SIEM bulk exports, and their signed downloads.

use actix_web::Route;

/// This surface's routes, by operation name.
pub fn route(name: &str) -> Option<Route> {
    let _ = name;
    None
}
