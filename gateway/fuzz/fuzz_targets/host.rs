//! Any Host header: no panic, and what is accepted obeys the hostname rule.
#![no_main]

use kip_gateway::host;
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = "kipper.run";

fuzz_target!(|data: &[u8]| {
    // hyper hands the proxy header values as bytes; only UTF-8 ones reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(label) = host::label(text, DOMAIN) else {
        return;
    };
    assert!(!label.is_empty(), "empty label from {text:?}");
    assert!(!label.contains('.'), "nested label {label:?} from {text:?}");
    assert_eq!(
        label.to_lowercase(),
        *label,
        "label not lowercased, from {text:?}"
    );
    // The label written back under the domain parses to itself.
    let again = format!("{label}.{DOMAIN}");
    assert_eq!(
        host::label(&again, DOMAIN).as_deref(),
        Ok(&*label),
        "{text:?}"
    );
    // Names of even length count as registered, so both kinds of cluster id are reached.
    let is_named = |name: &str| name.len().is_multiple_of(2);
    if let Some(split) = host::split(&label, is_named) {
        assert!(
            host::is_address_id(split.cluster) || is_named(split.cluster),
            "cluster {:?} is neither an address nor registered, from {text:?}",
            split.cluster
        );
        if split.app.is_empty() {
            assert_eq!(split.cluster, &*label);
        } else {
            assert_eq!(format!("{}-{}", split.app, split.cluster), *label);
            assert!(!split.app.ends_with('-'), "{text:?}");
        }
    }
});
