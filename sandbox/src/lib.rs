//! A local, file-backed server that speaks the Kubernetes REST API.
//!
//! The sandbox is kip's default cluster when none is configured and the backend of the test suite.

pub mod apply;
pub mod patch;
pub mod selector;
pub mod table;
pub mod validation;
