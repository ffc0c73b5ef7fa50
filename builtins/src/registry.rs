//! `registry::…`: container image references, parsed by the grammar every OCI registry client
//! (docker, containerd, the kubelet) uses, so a typo is caught before anything is written
//! instead of as an `ErrImagePull` minutes later.

use crate::errors::Kind;
use std::sync::LazyLock;

use regex::Regex;
use rhai::plugin::*;
use rhai::{EvalAltResult, Map};

use crate::host;

/// The longest repository name (registry host included) registries accept.
const NAME_MAX_LEN: usize = 255;

/// `[registry[:port]/]path[:tag][@algorithm:hex]`, from the distribution project's grammar.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let path_component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let host = format!(r"(?:{domain_component}(?:\.{domain_component})*|\[[a-fA-F0-9:]+\])");
    let name = format!(r"(?:{host}(?::[0-9]+)?/)?{path_component}(?:/{path_component})*");
    let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    Regex::new(&format!(r"^({name})(?::({tag}))?(?:@({digest}))?$"))
        .unwrap_or_else(|e| unreachable!("the reference grammar is a valid regex: {e}"))
});

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (with its port), or "" for the default registry.
    pub registry: String,
    /// The repository path inside the registry, e.g. `acme/api` or `nginx`.
    pub repository: String,
    /// The tag, or "" when none was given (registries then serve `latest`).
    pub tag: String,
    /// The digest (`sha256:…`), or "".
    pub digest: String,
}

/// Parses `text` as an image reference; the error says what is wrong in words.
pub fn parse(text: &str) -> Result<ImageRef, String> {
    let why = |reason: &str| format!("`{text}` is not an image reference: {reason}");
    if text.is_empty() {
        return Err("the image reference is empty".into());
    }
    if text.chars().any(char::is_whitespace) {
        return Err(why("it contains whitespace"));
    }
    let Some(found) = REFERENCE.captures(text) else {
        let path = text.split(['@', ':']).next().unwrap_or(text);
        let repository = path.split_once('/').map_or(path, |(first, rest)| {
            if first.contains(['.', ':']) || first == "localhost" {
                rest
            } else {
                path
            }
        });
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(why("repository names must be lowercase"));
        }
        return Err(why(
            "use [REGISTRY/]REPOSITORY[:TAG][@DIGEST] with lowercase letters, digits and . _ - / in the repository",
        ));
    };
    let name = &found[1];
    if name.len() > NAME_MAX_LEN {
        return Err(why(&format!(
            "the repository name is longer than {NAME_MAX_LEN} characters"
        )));
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':', '['])
                || first == "localhost"
                || first != first.to_lowercase() =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (String::new(), name.to_string()),
    };
    Ok(ImageRef {
        registry,
        repository,
        tag: found.get(2).map_or("", |m| m.as_str()).into(),
        digest: found.get(3).map_or("", |m| m.as_str()).into(),
    })
}

/// Image references for scripts, registered as the `registry` namespace.
#[export_module]
pub mod registry_module {
    use super::*;

    /// Parses an image reference (`nginx:1.27`, `ghcr.io/acme/api:v2`,
    /// `localhost:5000/web@sha256:…`) as registries and the kubelet do. Returns `#{registry,
    /// repository, tag, digest}` (each "" when absent; `registry` "" means the default one).
    ///
    /// Errors: `invalid` naming what is wrong: whitespace, uppercase letters in the repository,
    /// characters outside the grammar, a name over 255 characters.
    ///
    /// Example: `let r = registry::parse_ref("ghcr.io/acme/api:v2"); print(r.tag);`
    #[rhai_fn(return_raw)]
    pub fn parse_ref(ctx: rhai::NativeCallContext, text: &str) -> Result<Map, Box<EvalAltResult>> {
        crate::host::at_call(ctx.call_position(), || {
            let parsed = parse(text).map_err(|e| host::error(Kind::Invalid, e))?;
            let mut map = Map::new();
            map.insert("registry".into(), parsed.registry.into());
            map.insert("repository".into(), parsed.repository.into());
            map.insert("tag".into(), parsed.tag.into());
            map.insert("digest".into(), parsed.digest.into());
            Ok(map)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_what_registries_accept() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (text, registry, repository, tag) in [
            ("nginx", "", "nginx", ""),
            ("nginx:1.27", "", "nginx", "1.27"),
            ("library/nginx:latest", "", "library/nginx", "latest"),
            ("ghcr.io/acme/api:v2.1.0", "ghcr.io", "acme/api", "v2.1.0"),
            ("localhost:5000/web", "localhost:5000", "web", ""),
            (
                "127.0.0.1:5000/a/b_c__d-e:T_1",
                "127.0.0.1:5000",
                "a/b_c__d-e",
                "T_1",
            ),
            ("[::1]:5000/web:1", "[::1]:5000", "web", "1"),
            (
                "Registry.Example.com/web",
                "Registry.Example.com",
                "web",
                "",
            ),
        ] {
            let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (
                    parsed.registry.as_str(),
                    parsed.repository.as_str(),
                    parsed.tag.as_str()
                ),
                (registry, repository, tag),
                "{text}"
            );
        }
        let pinned = parse(&format!("nginx:1.27@{digest}")).unwrap();
        assert_eq!(
            (pinned.tag.as_str(), pinned.digest.as_str()),
            ("1.27", digest.as_str())
        );
    }

    #[test]
    fn refuses_with_the_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("nginx latest", "whitespace"),
            (" nginx", "whitespace"),
            ("nginx;$(id)", "use [REGISTRY/]REPOSITORY"),
            ("NGINX:1.27", "must be lowercase"),
            ("ghcr.io/Acme/api", "must be lowercase"),
            ("nginx:", "use [REGISTRY/]REPOSITORY"),
            ("nginx:-1", "use [REGISTRY/]REPOSITORY"),
            ("nginx@sha256:abc", "use [REGISTRY/]REPOSITORY"),
            ("-nginx", "use [REGISTRY/]REPOSITORY"),
            ("a//b", "use [REGISTRY/]REPOSITORY"),
            ("nginx:1.27\n", "whitespace"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(reason), "{text:?}: {err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(parse(&long).unwrap_err().contains("longer than 255"));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn accepted_references_hold_no_shell_or_space(text in "[ -~]{0,40}") {
            if parse(&text).is_ok() {
                prop_assert!(!text.contains([' ', ';', '$', '(', ')', '`', '|', '&', '"', '\'']));
            }
        }

        #[test]
        fn built_references_parse_back(
            registry in "(|[a-z]{1,8}\\.io/|localhost:[0-9]{1,5}/)",
            repository in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}",
            tag in "(|:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10})",
        ) {
            let parsed = parse(&format!("{registry}{repository}{tag}")).unwrap();
            prop_assert_eq!(parsed.registry, registry.trim_end_matches('/'));
            prop_assert_eq!(parsed.repository, repository);
            prop_assert_eq!(parsed.tag, tag.trim_start_matches(':'));
        }
    }
}
