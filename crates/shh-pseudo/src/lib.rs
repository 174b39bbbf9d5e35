//! Pseudonymization: what turns a source identifier into something a researcher may hold.
//!
//! - [`pseudonym`]: `HMAC-SHA-256(K_hub[v], normalize(id))`, truncated to 128 bits and encoded
//!   in 22 URL-safe characters. Same input and same key version give the same pseudonym in every
//!   file and dataset, so tables join; without the key nobody can go back or test a guess.
//! - [`nir`]: recognizes a French social-security number (NIR) by its mod-97 key — the leak
//!   guard that stops an undeclared identifier column from being stored.
//! - [`guard`]: finds a NIR, an e-mail address or a phone number anywhere in a text, however
//!   it is written (separators, Unicode digits, number formatting), and redacts them.
//! - [`generalize`]: coarsening of quasi-identifiers (date → month or year, commune →
//!   département, age → band).
//! - [`risk`]: the re-identification risk report (equivalence classes over the
//!   quasi-identifiers, share of records in classes below k, columns that drive uniqueness).

#![forbid(unsafe_code)]

pub mod generalize;
pub mod guard;
pub mod nir;
pub mod pseudonym;
pub mod risk;

pub use generalize::{Generalization, GeneralizeError};
pub use pseudonym::{PSEUDONYM_LEN, Pseudonymizer};
pub use risk::{RiskAccumulator, RiskReport};
