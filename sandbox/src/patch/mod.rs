//! The Kubernetes-specific patch format: strategic merge patch.
//!
//! JSON patch and JSON merge patch are generic and come from the `json-patch` crate; strategic merge
//! patch needs to know how each list field of the built-in kinds merges, which lives in [`keys`].

#[cfg(test)]
pub(crate) mod arbitrary;
pub mod keys;
mod order;
pub mod strategic;
