//! Any bytes from a cluster, read as a response head or a chunked body: no panic, and what is
//! accepted is consistent with the bytes it came from.
#![no_main]

use hyper::StatusCode;
use kip_gateway::upstream::Framing;
use kip_gateway::upstream::bytes_only::{chunked_body, response_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for head_request in [false, true] {
        let Ok(Some((status, framing, rest))) = response_head(data, head_request) else {
            continue;
        };
        assert!(rest.len() < data.len() && data.ends_with(&rest), "{data:?}");
        let bodiless = head_request
            || (status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS)
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        match framing {
            Framing::Upgraded => assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS),
            Framing::Empty { .. } => {}
            _ => assert!(
                !bodiless,
                "{status} for HEAD={head_request} has a body: {data:?}"
            ),
        }
    }

    // A body decoded from the bytes is never longer than they are.
    if let Ok(Some(body)) = chunked_body(data) {
        assert!(body.len() <= data.len());
    }

    // The bytes as a body, cut into chunks whose size the first byte picks, decode to themselves.
    let size = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
    let mut wire = Vec::with_capacity(data.len() * 2 + 5);
    for piece in data.chunks(size) {
        wire.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
    assert_eq!(chunked_body(&wire), Ok(Some(data.to_vec())));
});
