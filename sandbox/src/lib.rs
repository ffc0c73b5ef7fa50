//! A local, file-backed server that speaks the Kubernetes REST API.
//!
//! The sandbox is kip's default cluster when none is configured and the backend of the test suite.

pub mod apply;
pub mod patch;
pub mod selector;
pub mod table;
pub mod validation;

pub mod error;
pub mod registry;
pub mod store;
pub mod http;
pub mod admission;
pub mod ops;
pub mod api;
pub mod controllers;
pub mod home;
pub mod server;

pub use server::Sandbox;
