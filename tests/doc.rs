//! `kip doc` and `docs/scripting.md`: the script reference is made from the binary's own
//! metadata, and the file in the repository is exactly what the binary prints.

use std::path::Path;
use std::process::Output;

use crate::common::{kip_in, stderr as err, stdout as out};

fn kip_doc(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    kip_in(home.path()).run(&[&["doc"], args].concat())
}

#[test]
fn the_reference_in_the_repository_is_what_kip_doc_prints() {
    let printed = kip_doc(&[]);
    assert!(printed.status.success(), "{}", err(&printed));
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scripting.md");
    let kept = std::fs::read_to_string(&file).expect("docs/scripting.md");
    assert!(
        out(&printed) == kept,
        "docs/scripting.md is out of date: run `cargo run -- doc > docs/scripting.md`"
    );
}

#[test]
fn every_builtin_library_function_and_verb_is_in_it_documented() {
    let text = out(&kip_doc(&[]));
    assert!(
        !text.contains("(undocumented)"),
        "every entry has its doc comment"
    );
    for part in [
        "## Errors",
        "### Module `k8s`",
        "#### `k8s::get(api_version: string, kind: string, ns: string, name: string) -> map`",
        "#### `kip::error(kind: string, message: string) -> map`",
        "### Library `lib/kipper`",
        "#### `kipper::target(opts)`",
        "### `kip app deploy`",
        "| `--replicas` | int | `1` |",
        "| `not-found` |",
    ] {
        assert!(text.contains(part), "{part} is missing");
    }
}

#[test]
fn kip_doc_prints_one_topic_or_says_which_exist() {
    let get = kip_doc(&["k8s::get"]);
    assert!(get.status.success(), "{}", err(&get));
    assert!(out(&get).starts_with("#### `k8s::get("), "{}", out(&get));
    assert!(
        !out(&get).contains("k8s::list"),
        "only the function asked for"
    );

    let verb = out(&kip_doc(&["app deploy"]));
    assert!(
        verb.starts_with("### `kip app deploy`") && verb.contains("`--image`"),
        "{verb}"
    );
    let errors = out(&kip_doc(&["errors"]));
    assert!(
        errors.contains("| `invalid` |") && !errors.contains("### Module"),
        "{errors}"
    );

    let missing = kip_doc(&["k8s::nope"]);
    assert_eq!(missing.status.code(), Some(1), "not-found exits 1");
    assert!(
        err(&missing).starts_with(
            "error: no topic `k8s::nope` in the reference: try errors, builtins, assert, config"
        ),
        "{}",
        err(&missing)
    );
}
