//! The sandbox's OpenAPI documents through the real `kubectl`: `explain` of built-in and
//! custom kinds, and `diff`.

use std::process::Output;

use crate::common::ServedSandbox;

const APP_CRD: &str = include_str!("../templates/crds/apps.yaml.j2");

fn deployment(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn explain_prints_the_real_descriptions_of_built_in_kinds() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();

    let replicas = k.ok(&["explain", "deployment.spec.replicas"]);
    assert!(replicas.contains("KIND:       Deployment"), "{replicas}");
    assert!(replicas.contains("GROUP:      apps"), "{replicas}");
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
    assert!(replicas.contains("Number of desired pods."), "{replicas}");

    let pods = k.ok(&["explain", "pods", "--recursive"]);
    assert!(pods.contains("DESCRIPTION:"), "{pods}");
    let image = pods
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("containers\t"))
        .any(|l| l.trim_start().starts_with("image\t"));
    assert!(image, "spec.containers.image is not listed: {pods}");
}

#[test]
fn explain_reads_a_crd_schema_once_it_is_applied() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], APP_CRD);

    let port = k.ok(&["explain", "apps.kipper.run.spec.port"]);
    assert!(port.contains("KIND:       App"), "{port}");
    assert!(port.contains("FIELD: port <integer>"), "{port}");
    assert!(port.contains("Port the app listens on"), "{port}");
    let metadata = k.ok(&["explain", "apps.kipper.run.metadata.labels"]);
    assert!(
        metadata.contains("Map of string keys and values"),
        "{metadata}"
    );
}

#[test]
fn diff_shows_a_change_and_nothing_when_unchanged() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    k.ok_stdin(&["apply", "-f", "-"], &deployment(2));

    let same = k.run_with_stdin(&["diff", "-f", "-"], Some(&deployment(2)));
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert_eq!(String::from_utf8_lossy(&same.stdout), "");

    let changed = k.run_with_stdin(&["diff", "-f", "-"], Some(&deployment(3)));
    assert_eq!(changed.status.code(), Some(1), "{}", text(&changed));
    let diff = String::from_utf8_lossy(&changed.stdout);
    assert!(diff.contains("-  replicas: 2"), "{diff}");
    assert!(diff.contains("+  replicas: 3"), "{diff}");
    // A dry run: the Deployment is as it was.
    let replicas = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");
}

/// kubectl must keep computing strategic merge patches from the metadata compiled into it:
/// the served schemas have no patch merge keys, and a list replaced rather than merged by name
/// would keep a container the manifest no longer has.
#[test]
fn apply_still_merges_containers_by_name() {
    let sb = ServedSandbox::start();
    let k = sb.kubectl();
    let two = deployment(1).replace(
        "        image: nginx:1.27\n",
        "        image: nginx:1.27\n      - name: cache\n        image: redis:7\n",
    );
    k.ok_stdin(&["apply", "-f", "-"], &two);
    let names = "jsonpath={.spec.template.spec.containers[*].name}";
    let both = k.ok(&["get", "deployment", "web", "-o", names]);
    assert_eq!(both, "web cache");
    let one = deployment(1).replace("nginx:1.27", "nginx:1.28");
    k.ok_stdin(&["apply", "-f", "-"], &one);
    let containers = k.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].name}={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(containers, "web=nginx:1.28");
}
