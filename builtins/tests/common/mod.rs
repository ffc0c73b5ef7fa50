//! Helpers shared by the test binaries; each uses a part of them.

#[allow(dead_code)]
pub mod sshd;
