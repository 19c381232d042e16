//! Every query keyward makes, one file per entity. Each one that touches
//! tenant data takes the tenant id and filters on it: tenant isolation is
//! enforced here, once.

mod archives;
mod assets;
mod audit;
mod chain_reader;
mod exports;
mod groups;
mod holds;
mod keys;
mod leaks;
mod members;
mod notices;
mod sinks;
mod tenants;
mod tree;
mod verification_runs;

pub use archives::*;
pub use assets::*;
pub use audit::*;
pub use chain_reader::*;
pub use exports::*;
pub use groups::*;
pub use holds::*;
pub use keys::*;
pub use leaks::*;
pub use members::*;
pub use notices::*;
pub use sinks::*;
pub use tenants::*;
pub use tree::*;
pub use verification_runs::*;

use crate::db::DbConn;
use crate::error::AppResult;
use diesel::RunQueryDsl;

// SQL `lower()`, for case-insensitive matches (SCIM userName, asset names).
diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// Readiness probe query.
pub fn ping(conn: &mut DbConn) -> AppResult<()> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}
