//! Handlers of the holds surface.

use actix_web::Route;

/// This surface's routes, by operation name.
pub fn route(name: &str) -> Option<Route> {
    let _ = name;
    None
}
