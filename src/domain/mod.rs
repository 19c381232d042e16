//! Pure rules: no actix, no diesel, no I/O.

pub mod allowlist;
pub mod assets;
pub mod authz;
pub mod event;
pub mod exports;
pub mod forwarded;
pub mod groups;
pub mod key_format;
pub mod key_type;
pub mod leaks;
pub mod lifetime;
pub mod member;
pub mod notices;
pub mod redact;
pub mod request_path;
pub mod scim;
pub mod scim_attributes;
pub mod scim_filter;
pub mod segment;
pub mod sinks;
pub mod tenant;
pub mod text;
pub mod verification;

pub use authz::{Access, Method, Operation, Reach, Surface};
pub use key_type::KeyType;
pub use member::{MemberStatus, Role};
pub use tenant::TenantStatus;
