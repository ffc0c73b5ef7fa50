use builtins::{OutputFormat, UiSettings};

use crate::Kit;

fn kit(ui: UiSettings) -> Kit {
    Kit::with(&[], ui)
}

#[test]
fn format_follows_dash_o() {
    assert_eq!(
        kit(UiSettings::default()).eval::<String>("ui::format()"),
        "table"
    );
    let json = UiSettings {
        output: OutputFormat::Json,
        ..UiSettings::default()
    };
    assert_eq!(kit(json).eval::<String>("ui::format()"), "json");
    let yaml = UiSettings {
        output: OutputFormat::Yaml,
        ..UiSettings::default()
    };
    assert_eq!(kit(yaml).eval::<String>("ui::format()"), "yaml");
}

#[test]
fn yes_confirms_without_asking() {
    let yes = kit(UiSettings {
        yes: true,
        ..UiSettings::default()
    });
    assert!(yes.eval::<bool>(r#"ui::confirm("Delete app api")"#));
    assert!(yes.eval::<bool>(r#"ui::confirm_typed("project name", "shop")"#));
}

#[test]
fn no_terminal_refuses() {
    let kit = kit(UiSettings::default());
    let (kind, message) = kit.fail(r#"ui::confirm("Delete app api")"#);
    assert_eq!(kind, "confirmation-required");
    assert_eq!(
        message,
        "Delete app api: refusing without a terminal; pass --yes to confirm"
    );
    let (kind, message) = kit.fail(r#"ui::confirm_typed("project name", "shop")"#);
    assert_eq!(kind, "confirmation-required");
    assert_eq!(
        message,
        "Type the project name to confirm: refusing without a terminal; pass --yes to confirm"
    );
}

#[test]
fn scripts_can_catch_the_refusal() {
    let kit = kit(UiSettings::default());
    let kind: String = kit.eval(
        r#"let kind = "asked"; try { ui::confirm("Delete"); } catch (e) { kind = e.kind; } kind"#,
    );
    assert_eq!(kind, "confirmation-required");
}
