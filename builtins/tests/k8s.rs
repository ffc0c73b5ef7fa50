//! `k8s::…` builtins, exercised by real Rhai scripts against an in-process sandbox on loopback.

use std::sync::Arc;

use builtins::{ClusterChoice, ClusterClient, Host, NoTemplates, UiSettings};
use rhai::{Dynamic, Engine, EvalAltResult, Map};

/// A sandbox served on loopback and an engine whose host points at it.
struct Fixture {
    engine: Engine,
    _runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::serving(false)
    }

    /// A sandbox that runs exec commands on this machine for pods annotated to allow it.
    fn with_host_exec() -> Fixture {
        Fixture::serving(true)
    }

    fn serving(host_exec: bool) -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let address = runtime.block_on(async {
            let sandbox = sandbox::Sandbox::in_memory()
                .await
                .expect("sandbox")
                .allow_host_exec(host_exec);
            sandbox
                .spawn("127.0.0.1:0".parse().unwrap())
                .await
                .expect("spawn")
        });
        Fixture::at(runtime, format!("http://{address}"))
    }

    fn at(runtime: tokio::runtime::Runtime, url: String) -> Fixture {
        let client = move || {
            let config = kube::Config::new(url.parse().map_err(|e| format!("{e}"))?);
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            Ok(ClusterClient {
                client,
                server: url.clone(),
            })
        };
        let host = Host::new(
            runtime.handle().clone(),
            std::env::temp_dir(),
            Arc::new(NoTemplates),
            UiSettings::default(),
            ClusterChoice {
                name: "sandbox".into(),
                unreachable_hint: "start the local cluster with `kip sandbox up`".into(),
                client: Arc::new(client),
            },
        );
        let mut engine = Engine::new();
        builtins::register_all(&mut engine, Arc::new(host));
        Fixture {
            engine,
            _runtime: runtime,
        }
    }

    /// Runs `script` on this (non-runtime) thread, as the CLI runs scripts on a blocking one.
    fn run<T: Clone + Send + Sync + 'static>(&self, script: &str) -> T {
        match self.engine.eval::<T>(script) {
            Ok(v) => v,
            Err(e) => panic!("script failed: {e}\n{script}"),
        }
    }

    fn fail(&self, script: &str) -> Map {
        match *self
            .engine
            .eval::<Dynamic>(script)
            .expect_err("script should fail")
        {
            EvalAltResult::ErrorRuntime(value, _) => value.try_cast::<Map>().expect("error map"),
            other => panic!("unexpected error: {other}"),
        }
    }
}

fn text(map: &Map, key: &str) -> String {
    map.get(key)
        .map(|v| v.to_string())
        .unwrap_or_else(|| panic!("no `{key}` in {map:?}"))
}

const CONFIG_MAP: &str = r#"
    let cm = #{
        apiVersion: "v1", kind: "ConfigMap",
        metadata: #{name: "settings", namespace: "default", labels: #{app: "shop"}},
        data: #{colour: "blue"},
    };
"#;

#[test]
fn apply_report_says_created_unchanged_configured() {
    let f = Fixture::new();
    let actions: String = f.run(&format!(
        r#"{CONFIG_MAP}
        let first = k8s::apply_report(cm);
        let second = k8s::apply_report(cm);
        cm.data.colour = "green";
        let third = k8s::apply_report(cm);
        `${{first.action}} ${{second.action}} ${{third.action}} ${{third.object.data.colour}}`
    "#
    ));
    assert_eq!(actions, "created unchanged configured green");
}

#[test]
fn get_exists_and_list_with_a_selector() {
    let f = Fixture::new();
    let out: String = f.run(&format!(
        r#"{CONFIG_MAP}
        k8s::apply(cm);
        let other = cm; other.metadata.name = "other"; other.metadata.labels = #{{app: "blog"}};
        k8s::apply_all([other]);
        let got = k8s::get("v1", "ConfigMap", "default", "settings");
        let shop = k8s::list("v1", "ConfigMap", "default", "app=shop");
        let all = k8s::list("v1", "ConfigMap", "");
        let names = all.map(|o| o.metadata.name);
        `${{got.data.colour}} ${{k8s::exists("v1", "ConfigMap", "default", "settings")}} `
          + `${{k8s::exists("v1", "ConfigMap", "default", "nope")}} ${{shop.len()}} `
          + `${{shop[0].metadata.name}} ${{names.contains("other") && names.contains("settings")}}`
    "#
    ));
    assert_eq!(out, "blue true false 1 settings true");
}

#[test]
fn delete_then_get_opt_is_unit_and_not_found_is_catchable() {
    let f = Fixture::new();
    let out: String = f.run(&format!(
        r#"{CONFIG_MAP}
        k8s::apply(cm);
        let deleted = k8s::delete("v1", "ConfigMap", "default", "settings");
        let again = k8s::delete("v1", "ConfigMap", "default", "settings", "Foreground");
        let gone = k8s::get_opt("v1", "ConfigMap", "default", "settings") == ();
        let reason = "found";
        try {{ k8s::get("v1", "ConfigMap", "default", "settings"); }}
        catch (e) {{ reason = `${{e.kind}} ${{e.code}} ${{e.reason}}`; }}
        `${{deleted}} ${{again}} ${{gone}} ${{reason}}`
    "#
    ));
    assert_eq!(out, "true false true not-found 404 NotFound");
}

#[test]
fn custom_resources_are_found_after_their_crd_is_applied() {
    let f = Fixture::new();
    let out: String = f.run(
        r#"
        let before = "";
        try { k8s::get("kipper.run/v1alpha1", "App", "default", "web"); }
        catch (e) { before = e.reason; }
        if k8s::has_kind("kipper.run/v1alpha1", "App") { throw "served before its CRD"; }
        k8s::apply(#{
            apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition",
            metadata: #{name: "apps.kipper.run"},
            spec: #{
                group: "kipper.run", scope: "Namespaced",
                names: #{plural: "apps", singular: "app", kind: "App"},
                versions: [#{name: "v1alpha1", served: true, storage: true,
                    schema: #{openAPIV3Schema: #{type: "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        });
        k8s::wait_condition("apiextensions.k8s.io/v1", "CustomResourceDefinition", "",
            "apps.kipper.run", "Established", 10);
        if !k8s::has_kind("kipper.run/v1alpha1", "App") { throw "not served after its CRD"; }
        k8s::apply(#{apiVersion: "kipper.run/v1alpha1", kind: "App",
            metadata: #{name: "web", namespace: "default"}, spec: #{image: "nginx"}});
        let app = k8s::get("kipper.run/v1alpha1", "App", "default", "web");
        let kinds = k8s::kinds().filter(|k| k.api_version == "kipper.run/v1alpha1");
        `${before} ${app.spec.image} ${kinds[0].kind} ${kinds[0].plural} ${kinds[0].namespaced}`
    "#,
    );
    assert_eq!(out, "NoKindMatch nginx App apps true");
}

const DEPLOYMENT: &str = r#"
    let deployment = #{
        apiVersion: "apps/v1", kind: "Deployment",
        metadata: #{name: "web", namespace: "default"},
        spec: #{
            replicas: 2,
            selector: #{matchLabels: #{app: "web"}},
            template: #{
                metadata: #{labels: #{app: "web"}},
                spec: #{containers: [#{name: "web", image: "nginx:1.27"}]},
            },
        },
    };
"#;

#[test]
fn a_deployment_rolls_out_and_scales_to_zero() {
    let f = Fixture::new();
    let out: String = f.run(&format!(
        r#"{DEPLOYMENT}
        k8s::apply(deployment);
        let done = k8s::wait_rollout("default", "web", 15);
        let pods = k8s::pods_of("default", "app=web");
        k8s::patch_strategic("apps/v1", "Deployment", "default", "web",
            #{{spec: #{{template: #{{spec: #{{containers: [#{{name: "web", image: "nginx:1.28"}}]}}}}}}}});
        k8s::wait_rollout("default", "web", 15);
        k8s::patch("apps/v1", "Deployment", "default", "web", #{{spec: #{{replicas: 0}}}});
        let zero = k8s::wait_rollout("default", "web", 15);
        let image = zero.spec.template.spec.containers[0].image;
        `${{done.status.availableReplicas}} ${{pods.len()}} ${{zero.spec.replicas}} ${{image}}`
    "#
    ));
    assert_eq!(out, "2 2 0 nginx:1.28");
}

#[test]
fn a_job_completes_and_a_pod_has_logs() {
    let f = Fixture::new();
    let out: String = f.run(
        r#"
        k8s::apply_yaml(`
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: default}
spec:
  template:
    metadata: {labels: {job: migrate}}
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: busybox}]
---
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: default}
spec:
  containers: [{name: main, image: nginx}]
`);
        let job = k8s::wait_condition("batch/v1", "Job", "default", "migrate", "Complete", 15);
        k8s::wait_condition("v1", "Pod", "default", "solo", "Ready", 15);
        let log = k8s::logs("default", "solo");
        let tail = k8s::logs("default", "solo", #{container: "main", tail: 1});
        let job_pod = k8s::pods_of("default", "job=migrate")[0].metadata.name;
        let followed = k8s::logs("default", job_pod, #{follow: true});
        `${job.status.succeeded} ${log.contains("[sandbox] started container main")} `
          + `${tail.split("\n").len()} ${followed.len()}`
    "#,
    );
    assert_eq!(out, "1 true 2 0");
}

/// A running pod whose exec commands run on this machine, with a Secret-backed variable and an
/// extra one from the annotation.
const HOST_POD: &str = r#"
        k8s::apply_yaml(`
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: default}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: default
  annotations: {sandbox.kipper.run/exec: host, sandbox.kipper.run/exec-env: "EXTRA=from-annotation"}
spec:
  containers:
  - name: db
    image: mysql
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
`);
        k8s::wait_condition("v1", "Pod", "default", "db-0", "Ready", 15);
"#;

#[test]
fn exec_returns_the_exit_code_and_both_outputs() {
    let f = Fixture::with_host_exec();
    let out: Map = f.run(&format!(
        r#"{HOST_POD}
        let r = k8s::exec("default", "db-0", ["sh", "-c", "echo \"$PASSWORD $EXTRA\"; echo oops >&2; exit 3"]);
        let fed = k8s::exec("default", "db-0", ["sh", "-c", "tr a-z A-Z; exit 0"], #{{stdin: "shout\n", container: "db"}});
        let ok = k8s::exec("default", "db-0", ["true"]);
        #{{status: r.status, stdout: r.stdout, stderr: r.stderr, fed: fed.stdout, fed_status: fed.status, ok: ok.status}}
    "#
    ));
    assert_eq!(text(&out, "status"), "3");
    assert_eq!(text(&out, "stdout"), "s3cret from-annotation\n");
    assert_eq!(text(&out, "stderr"), "oops\n");
    assert_eq!(text(&out, "fed"), "SHOUT\n");
    assert_eq!(text(&out, "fed_status"), "0");
    assert_eq!(text(&out, "ok"), "0");
}

#[test]
fn exec_errors_name_the_pod_and_the_fix() {
    let f = Fixture::with_host_exec();
    f.run::<Map>(&format!("{HOST_POD} #{{}}"));
    let missing = f.fail(r#"k8s::exec("default", "nope-0", ["true"])"#);
    assert_eq!(text(&missing, "reason"), "NotFound");
    assert!(
        text(&missing, "message").starts_with("cannot exec in pod default/nope-0: "),
        "{missing:?}"
    );
    let absent = f.fail(r#"k8s::exec("default", "db-0", ["no-such-program-kip"])"#);
    assert_eq!(text(&absent, "kind"), "failed");
    assert!(
        text(&absent, "message").contains("executable file not found"),
        "{absent:?}"
    );
    let container = f.fail(r#"k8s::exec("default", "db-0", ["true"], #{container: "web"})"#);
    assert!(
        text(&container, "message").contains("container web is not valid for pod db-0"),
        "{container:?}"
    );
    let slow = f.fail(r#"k8s::exec("default", "db-0", ["sleep", "30"], #{timeout_secs: 1})"#);
    assert_eq!(text(&slow, "kind"), "timeout");
    for (script, says) in [
        (r#"k8s::exec("default", "db-0", [])"#, "needs a command"),
        (
            r#"k8s::exec("default", "db-0", ["echo", 1])"#,
            "array of strings",
        ),
        (
            r#"k8s::exec("default", "db-0", ["true"], #{tty: true})"#,
            "unknown exec option `tty`",
        ),
        (
            r#"k8s::exec("default", "db-0", ["true"], #{timeout_secs: 0})"#,
            "positive integer",
        ),
    ] {
        let err = f.fail(script);
        assert_eq!(text(&err, "kind"), "invalid", "{script}");
        assert!(text(&err, "message").contains(says), "{script}: {err:?}");
    }
}

/// Without `--allow-host-exec` the sandbox refuses, and says how to opt in.
#[test]
fn exec_without_the_opt_in_is_refused_with_the_way_to_allow_it() {
    let f = Fixture::new();
    f.run::<Map>(&format!("{HOST_POD} #{{}}"));
    let err = f.fail(r#"k8s::exec("default", "db-0", ["true"])"#);
    assert_eq!(text(&err, "reason"), "Forbidden");
    let message = text(&err, "message");
    assert!(message.contains("--allow-host-exec"), "{message}");
    assert!(
        message.contains("sandbox.kipper.run/exec: host"),
        "{message}"
    );
}

#[test]
fn waits_time_out_with_the_last_status() {
    let f = Fixture::new();
    let err = f.fail(&format!(
        r#"{CONFIG_MAP}
        k8s::apply(cm);
        k8s::wait_condition("v1", "ConfigMap", "default", "settings", "Ready", 1)
    "#
    ));
    assert_eq!(text(&err, "kind"), "timeout");
    assert!(
        text(&err, "message").contains("condition `Ready` of ConfigMap `settings`"),
        "{err:?}"
    );
    let out: bool = f.run(
        r#"
        k8s::delete("v1", "ConfigMap", "default", "settings");
        k8s::wait_deleted("v1", "ConfigMap", "default", "settings", 15);
        !k8s::exists("v1", "ConfigMap", "default", "settings")
    "#,
    );
    assert!(out);
}

#[test]
fn an_unreachable_cluster_names_the_address_and_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let f = Fixture::at(runtime, format!("http://127.0.0.1:{port}"));
    let err = f.fail(r#"k8s::server_version()"#);
    assert_eq!(text(&err, "kind"), "unreachable");
    let message = text(&err, "message");
    assert!(
        message.starts_with(&format!(
            "cluster unreachable at http://127.0.0.1:{port}: connection refused"
        )),
        "{message}"
    );
    assert!(message.contains("kip sandbox up"), "{message}");
}

#[test]
fn server_version_and_invalid_objects() {
    let f = Fixture::new();
    let version: String = f.run("k8s::server_version()");
    assert!(version.starts_with("v1."), "{version}");
    let err = f.fail(r#"k8s::apply(#{kind: "ConfigMap"})"#);
    assert_eq!(text(&err, "kind"), "invalid");
}

#[test]
fn every_builtin_is_documented_with_an_example() {
    let f = Fixture::new();
    let json = f.engine.gen_fn_metadata_to_json(false).expect("metadata");
    let metadata: serde_json::Value = serde_json::from_str(&json).expect("json");
    let functions = metadata["modules"]["k8s"]["functions"]
        .as_array()
        .expect("k8s functions");
    assert!(functions.len() >= 20, "{} functions", functions.len());
    for function in functions {
        let docs = function["docComments"].to_string();
        assert!(docs.contains("Example:"), "undocumented: {function}");
    }
}

/// The kinds builtins know without discovery are the ones a server reports.
#[test]
fn statically_known_kinds_match_discovery() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let checked = runtime.block_on(async {
        let sandbox = sandbox::Sandbox::in_memory().await.expect("sandbox");
        let address = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let discovery = kube::discovery::Discovery::new(client).run().await.unwrap();
        let mut checked = Vec::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let Some((known, known_caps)) =
                        builtins::k8s::kinds::builtin(&ar.api_version, &ar.kind)
                    else {
                        continue;
                    };
                    assert_eq!(
                        (&known.group, &known.version, &known.plural),
                        (&ar.group, &ar.version, &ar.plural),
                        "{}",
                        ar.kind
                    );
                    assert_eq!(known_caps.scope, caps.scope, "{}", ar.kind);
                    checked.push(ar.kind.clone());
                }
            }
        }
        checked
    });
    for kind in [
        "Deployment",
        "Service",
        "Ingress",
        "Namespace",
        "Node",
        "ClusterRole",
        "CustomResourceDefinition",
    ] {
        assert!(checked.iter().any(|k| k == kind), "{kind} in {checked:?}");
    }
}

/// A loopback server that echoes every connection.
fn echo_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().expect("clone");
                let mut reader = conn;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    address
}

/// Sends `data` to the local port and reads it back.
fn echo_via(port: i64, data: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port as u16)).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    conn.write_all(data).expect("write");
    let mut back = vec![0; data.len()];
    conn.read_exact(&mut back).expect("read the echo");
    back
}

#[test]
fn tunnel_forwards_connections_until_closed() {
    let fx = Fixture::new();
    let echo = echo_server();
    let _: Map = fx.run(&format!(
        r#"k8s::apply(#{{apiVersion: "v1", kind: "Pod",
            metadata: #{{name: "db", namespace: "default", annotations: #{{"sandbox.kipper.run/forward": "5432={echo}"}}}},
            spec: #{{containers: [#{{name: "main", image: "postgres:17"}}]}}}})"#
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fx.run::<String>(r#"k8s::get("v1", "Pod", "default", "db").status?.phase ?? """#)
        != "Running"
    {
        assert!(std::time::Instant::now() < deadline, "the pod never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let handle: Map = fx.run(r#"tunnel::open("default", "db", 5432, 0)"#);
    let port = handle["local_port"].as_int().expect("local_port");
    assert!(port > 0);
    assert_eq!(text(&handle, "pod"), "db");
    // Several connections at once, each with its own bytes.
    let clients: Vec<_> = (0u8..3)
        .map(|i| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..100_000).map(|n| (n as u8) ^ i).collect();
                echo_via(port, &data) == data
            })
        })
        .collect();
    for client in clients {
        assert!(
            client.join().expect("client"),
            "a connection echoed its own bytes"
        );
    }

    // The same port again is refused, naming the port.
    let err = fx.fail(&format!(r#"tunnel::open("default", "db", 5432, {port})"#));
    assert_eq!(text(&err, "kind"), "conflict");
    assert_eq!(text(&err, "reason"), "in-use");
    assert!(text(&err, "message").contains(&format!("localhost:{port} is already in use")));

    // Taken on the IPv6 loopback only (where the machine has one): `localhost` could reach
    // the other program, so that is refused too.
    if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
        let v6_port = v6.local_addr().expect("address").port();
        let err = fx.fail(&format!(
            r#"tunnel::open("default", "db", 5432, {v6_port})"#
        ));
        assert_eq!(text(&err, "reason"), "in-use");
    }

    let mut engine_scope = rhai::Scope::new();
    engine_scope.push("t", handle);
    fx.engine
        .run_with_scope(
            &mut engine_scope,
            "tunnel::close(t); tunnel::close(t); tunnel::wait(t);",
        )
        .expect("close twice, then wait on a closed tunnel");
    std::net::TcpListener::bind(("127.0.0.1", port as u16)).expect("the port is free again");

    let err = fx.fail(r#"tunnel::open("default", "nope", 5432, 0)"#);
    assert_eq!(text(&err, "reason"), "NotFound");
    let err = fx.fail(r#"tunnel::open("default", "db", 0, 0)"#);
    assert_eq!(text(&err, "kind"), "invalid");
    assert!(text(&err, "message").contains("invalid remote port 0"));
}

#[test]
fn pg_refuses_bad_input_before_connecting() {
    let fx = Fixture::new();
    let err = fx.fail(r#"pg::ensure_database(#{}, "Shop-API")"#);
    assert_eq!(text(&err, "kind"), "invalid");
    assert!(text(&err, "message").contains("invalid database name `Shop-API`"));
    let err = fx.fail(r#"pg::query(#{namespace: "default", port: 5432}, "SELECT 1")"#);
    assert!(text(&err, "message").contains("the connection has no `pod`"));
    let err = fx.fail(
        r#"pg::query(#{namespace: "default", pod: "db", port: 99999, username: "u", password: "p", database: "d"}, "SELECT 1")"#,
    );
    assert!(text(&err, "message").contains("invalid port `99999`"));
    // No such pod: the API server's answer.
    let err = fx.fail(
        r#"pg::query(#{namespace: "default", pod: "db", port: 5432, username: "u", password: "p", database: "d"}, "SELECT 1")"#,
    );
    assert_eq!(text(&err, "reason"), "NotFound");
}

/// More objects than one page: `k8s::list` and `k8s::select` follow the continue tokens to
/// the end, each object once; `select` keeps only the fields asked for.
#[test]
fn lists_and_selects_read_every_page() {
    let f = Fixture::new();
    let out: String = f.run(
        r#"
        k8s::apply(#{apiVersion: "v1", kind: "Namespace", metadata: #{name: "bulk"}});
        for i in 0..1203 {
            k8s::apply(#{
                apiVersion: "v1", kind: "ConfigMap",
                metadata: #{name: `cm-${i}`, namespace: "bulk", labels: #{"kipper.run/n": `${i}`, bulk: "yes"}},
                data: #{colour: if i % 2 == 0 { "blue" } else { "green" }},
            });
        }
        let whole = k8s::list("v1", "ConfigMap", "bulk", "bulk=yes");
        let rows = k8s::select("v1", "ConfigMap", "bulk", "bulk=yes", #{
            name: "metadata.name",
            colour: "data.colour",
            n: ["metadata", "labels", "kipper.run/n"],
            manager: "metadata.managedFields.0.manager",
            missing: "spec.nothing.here",
            past_a_string: "data.colour.deeper",
            labels: "metadata.labels",
        });
        let everywhere = k8s::select("v1", "ConfigMap", "", #{ns: "metadata.namespace"});
        let both = k8s::select_many([
            #{api_version: "v1", kind: "ConfigMap", ns: "bulk", label_selector: "bulk=yes", fields: #{name: "metadata.name"}},
            #{api_version: "v1", kind: "Namespace", fields: #{name: "metadata.name"}},
        ]);
        let names = #{};
        for r in rows { names[r.name] = true; }
        let first = rows.filter(|r| r.name == "cm-7")[0];
        `${whole.len()} ${whole[0].data.colour != ()} ${rows.len()} ${names.len()} `
          + `${first.colour} ${first.n} ${first.manager} ${first.missing == ()} ${first.keys().len()} `
          + `${first.past_a_string == ()} ${first.labels.bulk} `
          + `${everywhere.filter(|r| r.ns == "bulk").len()} `
          + `${both.len()} ${both[0].len()} ${both[1].filter(|n| n.name == "bulk").len()}`
    "#,
    );
    // Unselected, the namespace also holds its `kube-root-ca.crt`, as on a real cluster.
    assert_eq!(
        out,
        "1203 true 1203 1203 green 7 kip true 7 true yes 1204 2 1203 1"
    );
    let err = f.fail(r#"k8s::select("v1", "ConfigMap", "bulk", #{name: 42})"#);
    assert_eq!(text(&err, "kind"), "invalid");
    assert!(
        text(&err, "message").contains("field `name` of k8s::select has the path 42"),
        "{err:?}"
    );
    let err = f.fail(r#"k8s::select_many([#{kind: "ConfigMap", fields: #{}}])"#);
    assert!(
        text(&err, "message").contains("`api_version` is missing or not a string"),
        "{err:?}"
    );
}
