//! Doc comments are the script API reference: every builtin in these modules must have one,
//! with an example line.

use crate::Kit;

#[test]
fn every_builtin_is_documented() {
    let kit = Kit::default();
    let json = kit.engine.gen_fn_metadata_to_json(false).unwrap();
    let metadata: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut seen = 0;
    for module in [
        "k8s", "ssh", "tmpl", "ui", "crypto", "config", "gateway", "tunnel", "pg", "registry",
    ] {
        let functions = metadata["modules"][module]["functions"]
            .as_array()
            .unwrap_or_else(|| panic!("module {module} is not registered: {json}"));
        for function in functions {
            let name = &function["name"];
            let docs = function["docComments"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            assert!(docs > 0, "{module}::{name} has no doc comment");
            let text = function["docComments"].to_string();
            assert!(
                text.contains(&format!("{module}::")),
                "{module}::{name} has no example"
            );
            seen += 1;
        }
    }
    assert!(seen >= 20, "{seen} builtins");
}

/// The script API at a glance; a change here is a change scripts see.
#[test]
fn signatures() {
    let kit = Kit::default();
    let mut signatures: Vec<String> = kit
        .engine
        .gen_fn_signatures(false)
        .into_iter()
        .filter(|sig| {
            [
                "k8s::",
                "ssh::",
                "tmpl::",
                "ui::",
                "crypto::",
                "config::",
                "gateway::",
                "tunnel::",
                "pg::",
                "registry::",
            ]
            .iter()
            .any(|m| sig.starts_with(m))
        })
        .collect();
    signatures.sort();
    insta::assert_snapshot!("signatures", signatures.join("\n"));
}
