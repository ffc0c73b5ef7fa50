//! Sandbox performance with 10,000 stored objects, measured against the real `kip` binary over
//! HTTP: GET latency, filtered list latency, server-side apply throughput, watch delivery
//! latency, resident memory, and `kubectl get` side by side with kube-rs.
//!
//! Run: `cargo bench --bench sandbox` (results go into BENCHMARKS.md by hand).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

const CONFIGMAPS: usize = 9_000;
const DEPLOYMENTS: usize = 1_000;
const CONCURRENCY: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (Duration, String) {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let line = format!(
        "| {name} | {} | {} | {} | {} |",
        samples.len(),
        ms(p50),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99))
    );
    (p50, line)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn configmap(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i}"), "labels": {"bench": "yes", "shard": (i % 10).to_string()}},
        "data": {"index": i.to_string(), "payload": "x".repeat(200)},
    })
}

fn deployment(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("deploy-{i}"), "labels": {"app": "bench", "index": i.to_string()}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": format!("bench-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("bench-{i}")}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let home = tempfile::tempdir().expect("temp home");
    // KIP_BENCH_KIP runs another build of kip (an older commit, say) under the same harness,
    // so two builds are compared side by side in one session.
    let kip = std::env::var_os("KIP_BENCH_KIP").unwrap_or_else(|| env!("CARGO_BIN_EXE_kip").into());
    eprintln!("bench: {}", std::path::Path::new(&kip).display());
    let mut child = Command::new(&kip)
        .args(["sandbox", "serve"])
        .env("KIP_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kip sandbox serve");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    let url = first.trim().rsplit(' ').next().expect("url").to_string();
    let pid = child.id();
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_rss = rss_mb(pid);

    // Server-side apply throughput while filling the store.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (cms, deps, next) = (cms.clone(), deps.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let pp = PatchParams::apply("bench");
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= CONFIGMAPS + DEPLOYMENTS {
                    break;
                }
                if i < CONFIGMAPS {
                    cms.patch(&format!("cm-{i}"), &pp, &Patch::Apply(configmap(i)))
                        .await
                        .expect("apply cm");
                } else {
                    let d = i - CONFIGMAPS;
                    deps.patch(&format!("deploy-{d}"), &pp, &Patch::Apply(deployment(d)))
                        .await
                        .expect("apply deploy");
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let fill = started.elapsed();
    let applies_per_sec = (CONFIGMAPS + DEPLOYMENTS) as f64 / fill.as_secs_f64();
    // Let the controllers settle (each Deployment gets a ReplicaSet).
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Re-apply of unchanged objects (the idempotent path kip takes most).
    let started = Instant::now();
    let pp = PatchParams::apply("bench");
    let reapply = 2_000;
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (cms, pp) = (cms.clone(), pp.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..reapply).step_by(CONCURRENCY) {
                cms.patch(&format!("cm-{i}"), &pp, &Patch::Apply(configmap(i)))
                    .await
                    .expect("reapply");
            }
        }));
    }
    for t in tasks {
        t.await.expect("reapply worker");
    }
    let reapplies_per_sec = reapply as f64 / started.elapsed().as_secs_f64();

    // GET of one object.
    let mut gets = Vec::new();
    for i in 0..2_000 {
        let name = format!("cm-{}", (i * 7919) % CONFIGMAPS);
        let t = Instant::now();
        cms.get(&name).await.expect("get");
        gets.push(t.elapsed());
    }
    let (get_p50, get_line) = summary("GET one ConfigMap (kube-rs)", gets);

    // List of 1,000 Deployments by label selector, among everything else.
    let mut lists = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let list = deps
            .list(&ListParams::default().labels("app=bench"))
            .await
            .expect("list");
        assert_eq!(list.items.len(), DEPLOYMENTS);
        lists.push(t.elapsed());
    }
    let (list_p50, list_line) = summary(
        "list 1,000 Deployments with labelSelector (kube-rs, typed)",
        lists,
    );

    // The same list without decoding into typed structs: the server's share of it.
    let mut raw_lists = Vec::new();
    for _ in 0..30 {
        let request = http::Request::get(
            "/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dbench",
        )
        .body(Vec::new())
        .expect("request");
        let t = Instant::now();
        let text = client.request_text(request).await.expect("raw list");
        raw_lists.push(t.elapsed());
        assert!(text.len() > 1_000_000, "the list holds every deployment");
    }
    let (raw_list_p50, raw_list_line) = summary(
        "same list as raw bytes (no client-side decoding)",
        raw_lists,
    );

    // Watch delivery: from sending a write to receiving its event.
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(
            &WatchParams::default()
                .fields("metadata.name=cm-watch")
                .timeout(60),
            &rv,
        )
        .await
        .expect("watch")
        .boxed();
    let mut watch = Vec::new();
    for i in 0..300 {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-watch"}, "data": {"i": i.to_string()}});
        let t = Instant::now();
        let writer = cms.clone();
        tokio::spawn(async move {
            writer
                .patch(
                    "cm-watch",
                    &PatchParams::apply("bench"),
                    &Patch::Apply(body),
                )
                .await
                .expect("write");
        });
        loop {
            match stream.try_next().await.expect("event") {
                Some(WatchEvent::Added(_) | WatchEvent::Modified(_)) => break,
                Some(_) => continue,
                None => panic!("watch ended"),
            }
        }
        watch.push(t.elapsed());
    }
    let (watch_p50, watch_line) = summary("write → watch event delivered", watch);

    let loaded_rss = rss_mb(pid);

    // kubectl against kube-rs for the same request.
    let kubeconfig = home.path().join("sandbox/kubeconfig");
    let cache = home.path().join("kubectl-cache");
    let kubectl = |args: &[&str]| {
        let t = Instant::now();
        let out = Command::new("kubectl")
            .args(args)
            .arg(format!("--cache-dir={}", cache.display()))
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    };
    kubectl(&["get", "configmap", "cm-1", "-o", "json"]); // warm the discovery cache
    let kubectl_get: Vec<Duration> = (0..10)
        .map(|_| kubectl(&["get", "configmap", "cm-1", "-o", "json"]))
        .collect();
    let kubectl_list: Vec<Duration> = (0..10)
        .map(|_| kubectl(&["get", "deployments", "-l", "app=bench", "-o", "json"]))
        .collect();
    let mut kube_get = Vec::new();
    let mut kube_list = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        cms.get("cm-1").await.expect("get");
        kube_get.push(t.elapsed());
        let t = Instant::now();
        deps.list(&ListParams::default().labels("app=bench"))
            .await
            .expect("list");
        kube_list.push(t.elapsed());
    }
    let (kubectl_get_p50, kubectl_get_line) = summary(
        "`kubectl get configmap cm-1 -o json` (whole process)",
        kubectl_get,
    );
    let (kube_get_p50, kube_get_line) = summary("same GET through kube-rs", kube_get);
    let (kubectl_list_p50, kubectl_list_line) = summary(
        "`kubectl get deployments -l app=bench -o json` (whole process)",
        kubectl_list,
    );
    let (kube_list_p50, kube_list_line) = summary("same list through kube-rs", kube_list);

    let _ = child.kill();
    let _ = child.wait();

    println!(
        "## Sandbox ({} ConfigMaps + {} Deployments with their ReplicaSets stored)\n",
        CONFIGMAPS, DEPLOYMENTS
    );
    println!("| measurement | samples | p50 | p90 | p99 |\n|---|---|---|---|---|");
    for line in [
        &get_line,
        &list_line,
        &raw_list_line,
        &watch_line,
        &kubectl_get_line,
        &kube_get_line,
        &kubectl_list_line,
        &kube_list_line,
    ] {
        println!("{line}");
    }
    println!();
    println!("| target | measured | goal |\n|---|---|---|");
    println!("| GET p50 | {} | < 1 ms |", ms(get_p50));
    println!(
        "| list 1,000 Deployments by label, p50: typed kube-rs / raw bytes | {} / {} | < 50 ms |",
        ms(list_p50),
        ms(raw_list_p50)
    );
    println!(
        "| server-side applies/s while filling ({CONCURRENCY} clients) | {applies_per_sec:.0} | ≥ 1,000 |"
    );
    println!(
        "| server-side re-applies/s of unchanged objects | {reapplies_per_sec:.0} | ≥ 1,000 |"
    );
    println!("| write → watch event p50 | {} | < 10 ms |", ms(watch_p50));
    println!(
        "| resident memory idle / loaded | {idle_rss:.1} MB / {loaded_rss:.1} MB | < 200 MB |"
    );
    println!(
        "| kubectl ÷ kube-rs, GET | {:.1}× | (process start-up and discovery cache dominate kubectl) |",
        kubectl_get_p50.as_secs_f64() / kube_get_p50.as_secs_f64()
    );
    println!(
        "| kubectl ÷ kube-rs, list | {:.1}× | |",
        kubectl_list_p50.as_secs_f64() / kube_list_p50.as_secs_f64()
    );
}
