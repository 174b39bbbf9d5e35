//! The hub: configuration, opening with a passphrase, and the operations the CLI and server share
