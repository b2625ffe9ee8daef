//! The `backchannel` binary as an operator uses it: `serve` on a data directory, `admin`
//! commands against the same store with `--json`, graceful shutdown on SIGTERM, and the
//! reference authenticator against a running server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authenticator_device;
mod crash;
mod outbound_proxy;
mod serve_admin;
mod support;
