//! The `backchannel` binary as an operator uses it: `serve` on a data directory, `admin`
//! commands against the same store with `--json`, graceful shutdown on SIGTERM, the reference
//! authenticator against a running server, and several `serve` nodes on one PostgreSQL
//! database (`cluster`); the relying-party library and `client`/`demo` commands against our
//! server and against panva's oidc-provider (`rp_*`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authenticator_device;
mod cluster;
mod crash;
mod multi_node;
mod outbound_proxy;
mod rp_caching;
mod rp_cli;
mod rp_library;
mod rp_oidc_provider;
mod serve_admin;
mod stand_in;
mod support;
