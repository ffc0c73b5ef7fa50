use crate::Kit;

#[test]
fn passwords_and_tokens() {
    let kit = Kit::default();
    let password: String = kit.eval("crypto::password(24)");
    assert_eq!(password.len(), 24);
    assert!(
        password.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{password}"
    );
    let token: String = kit.eval("crypto::token(16)");
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert!(kit.eval::<bool>("crypto::token(16) != crypto::token(16)"));
}

#[test]
fn lengths_out_of_range_are_errors() {
    let kit = Kit::default();
    let (kind, message) = kit.fail("crypto::password(0)");
    assert_eq!(kind, "invalid");
    assert_eq!(message, "password length must be between 1 and 4096, got 0");
    assert_eq!(kit.fail("crypto::token(100000)").0, "invalid");
}

#[test]
fn short_hash_is_stable() {
    let kit = Kit::default();
    assert_eq!(
        kit.eval::<String>(r#"crypto::short_hash("abc")"#),
        "ba7816bf"
    );
}

#[test]
fn base64() {
    let kit = Kit::default();
    assert_eq!(kit.eval::<String>(r#"crypto::base64_encode("hi")"#), "aGk=");
    assert_eq!(kit.eval::<String>(r#"crypto::base64_decode("aGk=")"#), "hi");
    let (kind, message) = kit.fail(r#"crypto::base64_decode("not base64!")"#);
    assert_eq!(kind, "invalid");
    assert!(message.starts_with("not base64: "), "{message}");
    assert_eq!(kit.fail(r#"crypto::base64_decode("/w==")"#).0, "invalid");
}
