//! The `backchannel` binary as an operator uses it: `serve` on a data directory, `admin`
//! commands against the same store with `--json`, and graceful shutdown on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_admin;
