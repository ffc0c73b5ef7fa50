use rhai::{Dynamic, Map};

use crate::Kit;

const SAMPLE: &str = "\
current-cluster: sandbox
clusters:
  - name: sandbox
    kubeconfig: /path
    cluster-id: 203-0-113-10
    domain: kipper.run
    org: \"\"
  - name: prod
    server: https://203.0.113.20:6443
    token: abc
";

fn kit_with_config() -> Kit {
    let kit = Kit::default();
    std::fs::write(kit.home.path().join("config.yaml"), SAMPLE).unwrap();
    kit
}

#[test]
fn home_is_the_hosts() {
    let kit = Kit::default();
    let home: String = kit.eval("config::home()");
    assert_eq!(home, kit.home.path().display().to_string());
}

#[test]
fn missing_file_loads_empty() {
    let kit = Kit::default();
    let config: Map = kit.eval("config::load()");
    assert_eq!(config.len(), 1);
    assert!(config["clusters"].clone().cast::<rhai::Array>().is_empty());
    assert!(kit.eval::<Dynamic>("config::current_cluster()").is_unit());
}

#[test]
fn current_cluster_and_active_project() {
    let kit = kit_with_config();
    assert_eq!(
        kit.eval::<String>("config::current_cluster().domain"),
        "kipper.run"
    );
    assert_eq!(
        kit.eval::<String>(r#"config::load()["current-cluster"]"#),
        "sandbox"
    );
    kit.eval::<()>(r#"config::set_active_project("shop/test")"#);
    assert_eq!(
        kit.eval::<String>(r#"config::current_cluster()["active-project"]"#),
        "shop/test"
    );
    let text = std::fs::read_to_string(kit.home.path().join("config.yaml")).unwrap();
    assert!(text.contains("active-project: shop/test"), "{text}");
    assert!(
        text.contains("token: abc"),
        "the other cluster survives: {text}"
    );
    kit.eval::<()>("config::clear_active_project()");
    assert!(
        kit.eval::<Dynamic>(r#"config::current_cluster()["active-project"]"#)
            .is_unit()
    );
}

#[test]
fn save_round_trips_a_script_map() {
    let kit = kit_with_config();
    kit.eval::<()>(
        r#"let cfg = config::load(); cfg["current-cluster"] = "prod"; config::save(cfg);"#,
    );
    assert_eq!(
        kit.eval::<String>(r#"config::load()["current-cluster"]"#),
        "prod"
    );
    assert_eq!(
        kit.eval::<String>("config::load().clusters[1].server"),
        "https://203.0.113.20:6443"
    );
}

#[test]
fn save_rejects_bad_shapes() {
    let kit = kit_with_config();
    let (kind, message) =
        kit.fail(r#"config::save(#{ "current-cluster": "nowhere", clusters: [] })"#);
    assert_eq!(kind, "invalid");
    assert_eq!(
        message,
        "current-cluster `nowhere` is not one of the configured clusters"
    );
    let (kind, message) = kit.fail(r#"config::save(#{ clusters: 3 })"#);
    assert_eq!(kind, "invalid");
    assert!(
        message.starts_with("not a valid configuration: "),
        "{message}"
    );
}

#[test]
fn settings_live_under_the_cluster_in_use() {
    let kit = Kit::default();
    assert_eq!(kit.eval::<String>("config::cluster_name()"), "sandbox");
    kit.eval::<()>("config::clear_active_project()");
    assert!(
        !kit.home.path().join("config.yaml").exists(),
        "clearing nothing writes nothing"
    );
    kit.eval::<()>(r#"config::set_active_project("shop/test")"#);
    let config: Map = kit.eval("config::load()");
    let clusters = config["clusters"].clone().cast::<rhai::Array>();
    assert_eq!(clusters.len(), 1);
    let entry = clusters[0].clone().cast::<Map>();
    assert_eq!(entry["name"].to_string(), "sandbox");
    assert_eq!(entry["active-project"].to_string(), "shop/test");
    assert!(
        !config.contains_key("current-cluster"),
        "an entry for settings does not choose the cluster"
    );
}

#[test]
fn malformed_file_is_named() {
    let kit = Kit::default();
    let path = kit.home.path().join("config.yaml");
    std::fs::write(&path, "clusters:\n  - name: [unclosed\n").unwrap();
    let (kind, message) = kit.fail("config::load()");
    assert_eq!(kind, "invalid");
    assert!(
        message.starts_with(&format!("malformed {}: ", path.display())),
        "{message}"
    );
}
