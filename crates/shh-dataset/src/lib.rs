//! Immutable, content-addressed dataset versions: manifests, Parquet writers, verification and export
