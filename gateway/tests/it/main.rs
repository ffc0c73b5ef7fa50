//! Integration tests of `kip-gateway`: the real binary on loopback, real backends, real HTTP.

mod addresses;
mod admin;
mod clusters;
mod durability;
mod faults;
mod files;
mod props;
mod proxy;
mod support;
mod timeouts;
mod tls;
