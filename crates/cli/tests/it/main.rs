//! The `backchannel` binary as an operator uses it: `serve` on a data directory, `admin`
//! commands against the same store with `--json`, graceful shutdown on SIGTERM, the reference
//! authenticator against a running server, and several `serve` nodes on one PostgreSQL
//! database (`cluster`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authenticator_device;
mod cluster;
mod crash;
mod multi_node;
mod outbound_proxy;
mod serve_admin;
mod stand_in;
mod support;
