//! The value of `X-Instance-ID`: which pod answered, without naming it.

use sha2::{Digest, Sha256};

/// How many hex characters of the hash the header carries. Eight (32 bits) tell apart the
/// replicas of one app with room to spare and stay short enough to read in a log line.
const LEN: usize = 8;

/// The first eight hex characters of SHA-256 of the pod name.
///
/// A hash rather than the name itself: pod names carry the ReplicaSet hash and the namespace
/// layout, which clients have no business seeing, yet the value must be stable for a pod's
/// life so that a user can say "requests from f1582f7c are slow".
pub fn instance_id(pod_name: &str) -> String {
    let digest = Sha256::digest(pod_name.as_bytes());
    let mut id = String::with_capacity(LEN);
    for byte in &digest[..LEN / 2] {
        id.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        id.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::instance_id;

    #[test]
    fn fips_180_vector() {
        // SHA-256("abc") = ba7816bf 8f01cfea ... (FIPS 180-2, appendix B.1).
        assert_eq!(instance_id("abc"), "ba7816bf");
        // SHA-256("") = e3b0c442 98fc1c14 ...
        assert_eq!(instance_id(""), "e3b0c442");
    }
}
