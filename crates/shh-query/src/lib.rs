//! The SQL sandbox research queries run in: a DataFusion session built from nothing but what
//! a permit allows, never from DataFusion's defaults.
//!
//! - [`gate`]: the statement gate. One statement, a query, parsed with a bounded recursion
//!   depth; DDL, DML, `COPY`, `SET`, `EXPLAIN` (and `EXPLAIN ANALYZE`), `SHOW`, transactions
//!   and every other statement are refused with the reason, before any planning.
//! - [`sandbox`]: the session. Its catalog holds only the views registered for the permit;
//!   no table functions (`generate_series`, `range`), no URL or file tables, no
//!   `information_schema`, no table factories; identifiers keep their case (SNDS names are
//!   upper case and written unquoted); a memory pool per query; fixed partitioning.
//!
//! Disclosure control and the permit's views plug in above this crate (the hub builds the
//! views; the rules are planner passes), so this layer knows nothing of permits.

#![forbid(unsafe_code)]

pub mod disclosure;
pub mod gate;
pub mod pseudonyms;
pub mod sandbox;
pub mod table;
pub mod view;

pub use datafusion;
pub use gate::{Refused, check_statement};
pub use sandbox::{Limits, QueryError, Sandbox};
