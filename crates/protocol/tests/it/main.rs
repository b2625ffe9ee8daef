//! Integration tests of the JOSE module: published vectors, differential tests against
//! jsonwebtoken, key round trips and hostile-input decoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod decode;
mod differential;
mod roundtrip;
mod vectors;
