//! Any registration body: no panic, and what is accepted is a usable backend that reads back
//! the same when written out again.
#![no_main]

use kip_gateway::registry::Registration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(registration) = Registration::parse(data) else {
        return;
    };
    let address = registration.address;
    assert_ne!(address.port(), 0, "port 0 accepted from {data:?}");
    assert!(
        !address.ip().is_unspecified(),
        "wildcard accepted from {data:?}"
    );
    assert!(
        !address.ip().is_multicast(),
        "multicast accepted from {data:?}"
    );
    let broadcast = matches!(address.ip(), std::net::IpAddr::V4(v4) if v4.is_broadcast());
    assert!(!broadcast, "broadcast accepted from {data:?}");
    let written = format!(r#"{{"address":"{address}","tls":{}}}"#, registration.tls);
    let again = Registration::parse(written.as_bytes()).expect("a written registration parses");
    assert_eq!((again.address, again.tls), (address, registration.tls));
});
