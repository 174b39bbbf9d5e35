//! The producer's side: synthetic SNDS-shaped source files (raw fake NIRs), for the demo,
//! tests and benchmarks. It never touches a hub.

pub use shh_ingest::synth::{SynthReport, TABLES, generate};
