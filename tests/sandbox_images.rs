//! The sandbox's images for real: `kip sandbox up` starts its docker-registry on loopback,
//! `kip sandbox image build` builds with buildah and pushes there, `kip sandbox down` stops the
//! registry with the sandbox and `up` finds the images again; `kip sandbox image prepare`
//! builds redis and postgres from Debian's packages and podman runs them as the official
//! images run.
//!
//! Needs root (as CI runs), buildah, podman, runc, docker-registry, busybox-static and
//! debootstrap (tests/provision.sh installs them). Prepared images live in a store shared by
//! every run on the machine (`crate::workloads::shared_containers`), so the Debian base (about a minute) and the
//! images (about a minute more) are built once per machine.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use sandbox::containers::Containers;

use crate::common::{free_port, kip_in, raw_request, stdout, text};

/// `kip ARGS` with the kip home `home` and the container store `store`.
fn kip(home: &Path, store: &Path, args: &[&str]) -> Output {
    kip_in(home)
        .env("KIP_CONTAINERS", store)
        .without("KUBECONFIG")
        .run(args)
}

fn kip_ok(home: &Path, store: &Path, args: &[&str]) -> String {
    let out = kip(home, store, args);
    assert!(out.status.success(), "kip {args:?}: {}", text(&out));
    text(&out)
}

fn kip_refused(home: &Path, store: &Path, args: &[&str]) -> String {
    let out = kip(home, store, args);
    assert!(
        !out.status.success(),
        "kip {args:?} should fail: {}",
        text(&out)
    );
    text(&out)
}

/// Stops the sandbox of a kip home when the test ends, passed or not.
struct Down<'a>(&'a Path, &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = kip(self.0, self.1, &["sandbox", "down"]);
    }
}

/// The docker-registry processes serving the sandbox of the kip home `home`.
fn registry_processes(home: &Path) -> Vec<u32> {
    let config = home.join("sandbox/registry/config.yml");
    let wanted = config.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a.ends_with("docker-registry")) && args.contains(&wanted) {
            pids.push(pid);
        }
    }
    pids
}

fn registry_address(home: &Path) -> String {
    std::fs::read_to_string(home.join("sandbox/registry.address"))
        .expect("sandbox/registry.address")
        .trim()
        .to_string()
}

fn get(address: &str, path: &str) -> String {
    let (code, body) = raw_request(address, "GET", path, None, &[]).expect("ask the registry");
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn podman(store: &Containers, args: &[&str]) -> Output {
    store
        .command("podman")
        .args(args)
        .output()
        .expect("run podman")
}

/// A folder with a Dockerfile for an image of nothing but a static busybox.
fn busybox_context(dir: &Path) -> PathBuf {
    let context = dir.join("tiny");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy("/bin/busybox", context.join("busybox"))
        .expect("/bin/busybox (busybox-static; tests/provision.sh installs it)");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\nCMD [\"echo\", \"hello from tiny\"]\n",
    )
    .unwrap();
    context
}

#[test]
fn the_sandbox_registry_runs_with_the_sandbox_and_keeps_built_images() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("kip");
    std::fs::create_dir_all(&home).unwrap();
    // A store of its own: FROM scratch needs no base.
    let store_dir = scratch.path().join("containers");
    let store = Containers::at(&store_dir).expect("the container store");
    let context = busybox_context(scratch.path());
    let _down = Down(&home, &store_dir);

    let up = kip_ok(&home, &store_dir, &["sandbox", "up"]);
    let registry = registry_address(&home);
    assert!(
        registry.starts_with("127.0.0.1:"),
        "loopback only: {registry}"
    );
    assert!(up.contains(&format!("registry: http://{registry}")), "{up}");
    assert_eq!(
        get(&registry, "/v2/_catalog").trim(),
        r#"{"repositories":[]}"#
    );
    let status = kip_ok(&home, &store_dir, &["sandbox", "status"]);
    assert!(
        status.contains(&format!("registry:   http://{registry}")),
        "{status}"
    );
    assert_eq!(registry_processes(&home).len(), 1, "one registry");
    let config = std::fs::read_to_string(home.join("sandbox/registry/config.yml")).unwrap();
    assert!(
        config.contains(&home.join("sandbox/registry/data").display().to_string()),
        "{config}"
    );

    // Built into the store, pushed to the registry.
    let started = Instant::now();
    let built = kip_ok(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "tiny:1",
            &context.to_string_lossy(),
        ],
    );
    eprintln!(
        "image build + push: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(built.contains("✔ Built localhost/tiny:1"), "{built}");
    assert!(
        built.contains(&format!("✔ Pushed {registry}/tiny:1")),
        "{built}"
    );
    assert!(get(&registry, "/v2/_catalog").contains("\"tiny\""));
    assert!(get(&registry, "/v2/tiny/tags/list").contains("\"1\""));
    let exists = podman(&store, &["image", "exists", "localhost/tiny:1"]);
    assert!(
        exists.status.success(),
        "not in the store: {}",
        text(&exists)
    );
    let ran = podman(
        &store,
        &["run", "--rm", "--network", "none", "localhost/tiny:1"],
    );
    assert_eq!(stdout(&ran).trim(), "hello from tiny", "{}", text(&ran));

    // What is refused, and why.
    let bad = kip_refused(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "Tiny",
            &context.to_string_lossy(),
        ],
    );
    assert!(
        bad.contains("invalid image name \"Tiny\": 'T' is not allowed"),
        "{bad}"
    );
    let bad = kip_refused(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "a//b:x",
            &context.to_string_lossy(),
        ],
    );
    assert!(bad.contains("empty path component"), "{bad}");
    let missing = scratch.path().join("missing");
    let bad = kip_refused(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "tiny",
            &missing.to_string_lossy(),
        ],
    );
    assert!(
        bad.contains(&format!("{} is not a folder", missing.display())),
        "{bad}"
    );
    let bad = kip_refused(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "tiny",
            &scratch.path().to_string_lossy(),
        ],
    );
    assert!(bad.contains("has no Dockerfile or Containerfile"), "{bad}");
    // A Dockerfile that fails: buildah's own words come back.
    let broken = scratch.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("Dockerfile"),
        "FROM scratch\nCOPY nothing-here /x\n",
    )
    .unwrap();
    let bad = kip_refused(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "broken",
            &broken.to_string_lossy(),
        ],
    );
    assert!(
        bad.contains("Building localhost/broken:latest failed") && bad.contains("nothing-here"),
        "{bad}"
    );

    // Down stops the registry with the sandbox.
    kip_ok(&home, &store_dir, &["sandbox", "down"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !registry_processes(&home).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the registry outlived the sandbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(raw_request(&registry, "GET", "/v2/", None, &[]).is_err());
    // Without a registry, build only and say how to push.
    let built = kip_ok(
        &home,
        &store_dir,
        &[
            "sandbox",
            "image",
            "build",
            "tiny:2",
            &context.to_string_lossy(),
        ],
    );
    assert!(built.contains("✔ Built localhost/tiny:2"), "{built}");
    assert!(
        built.contains("Start the sandbox (`kip sandbox up`)"),
        "{built}"
    );

    // Up again: the same port, the pushed image still there.
    let up = kip_ok(&home, &store_dir, &["sandbox", "up"]);
    assert_eq!(registry_address(&home), registry, "the port is reused");
    assert!(up.contains(&format!("registry: http://{registry}")), "{up}");
    assert!(get(&registry, "/v2/tiny/tags/list").contains("\"1\""));
    assert_eq!(registry_processes(&home).len(), 1, "one registry");
}

/// A container podman runs from the shared store; removed when dropped.
struct Running<'a> {
    store: &'a Containers,
    name: String,
}

impl<'a> Running<'a> {
    fn start(store: &'a Containers, what: &str, options: &[&str], image_and_args: &[&str]) -> Self {
        let name = format!("kip-images-test-{}-{what}", std::process::id());
        let _ = podman(store, &["rm", "--force", &name]);
        let mut args = vec!["run", "--detach", "--name", &name];
        args.extend(options);
        args.extend(image_and_args);
        let out = podman(store, &args);
        assert!(out.status.success(), "podman {args:?}: {}", text(&out));
        Running {
            store,
            name: name.clone(),
        }
    }

    fn logs(&self) -> String {
        text(&podman(self.store, &["logs", &self.name]))
    }

    /// Retries `check` until it returns true; fails with the container's logs after a minute.
    fn until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what} never happened: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = podman(self.store, &["rm", "--force", "--time", "2", &self.name]);
    }
}

fn psql(port: u16, password: &str, sql: &str) -> Output {
    std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "skipper",
            "-d",
            "app",
        ])
        .args(["-Atc", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "3")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("psql (postgresql-client)")
}

#[test]
fn prepared_redis_and_postgres_run_like_the_official_images() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("kip");
    std::fs::create_dir_all(&home).unwrap();
    let store_dir = crate::workloads::shared_containers();
    let store_dir = store_dir.as_path();
    let store = Containers::at(store_dir).expect("the shared container store");

    let started = Instant::now();
    let prepared = kip_ok(
        &home,
        store_dir,
        &["sandbox", "image", "prepare", "redis", "postgres"],
    );
    eprintln!(
        "prepare redis postgres: {:.1} s\n{prepared}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        prepared.contains("Not pushed: the sandbox's registry is not running"),
        "{prepared}"
    );
    // Prepared once: the second time nothing is built.
    let again = kip_ok(
        &home,
        store_dir,
        &["sandbox", "image", "prepare", "redis", "postgres"],
    );
    assert!(again.contains("✔ redis:7.4.1 already prepared"), "{again}");
    assert!(
        again.contains("✔ postgres:16.4 already prepared"),
        "{again}"
    );
    for tag in ["redis:7", "redis:latest", "postgres:16", "postgres:latest"] {
        let exists = podman(&store, &["image", "exists", &format!("localhost/{tag}")]);
        assert!(exists.status.success(), "no localhost/{tag}");
    }
    let refused = kip_refused(&home, store_dir, &["sandbox", "image", "prepare", "mysql"]);
    assert!(refused.contains("invalid value 'mysql'"), "{refused}");

    // With the sandbox running, --force builds again (the old image goes) and pushes.
    let old_id = podman(
        &store,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/redis:7.4.1",
        ],
    );
    let old_id = stdout(&old_id).trim().to_string();
    {
        let _down = Down(&home, store_dir);
        kip_ok(&home, store_dir, &["sandbox", "up"]);
        let registry = registry_address(&home);
        let started = Instant::now();
        let forced = kip_ok(
            &home,
            store_dir,
            &["sandbox", "image", "prepare", "redis", "--force"],
        );
        eprintln!(
            "prepare redis --force, with the push: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(
            forced.contains(
                "✔ Built localhost/redis:7.4.1, localhost/redis:7, localhost/redis:latest"
            ),
            "{forced}"
        );
        assert!(
            forced.contains(&format!(
                "✔ Pushed {registry}/redis:7.4.1, {registry}/redis:7, {registry}/redis:latest"
            )),
            "{forced}"
        );
        let tags = get(&registry, "/v2/redis/tags/list");
        for tag in ["7.4.1", "7", "latest"] {
            assert!(tags.contains(&format!("\"{tag}\"")), "{tags}");
        }
        let gone = podman(&store, &["image", "exists", &old_id]);
        assert!(
            !gone.status.success(),
            "the image --force replaced is removed"
        );
    }

    // postgres as kip's service template runs it: user, database, password, PGDATA below the
    // volume; reached through a published port, so the password is checked as for any client.
    let pg_port = free_port();
    let publish = format!("127.0.0.1:{pg_port}:5432");
    let postgres = Running::start(
        &store,
        "postgres",
        &[
            "-p",
            &publish,
            "-e",
            "POSTGRES_USER=skipper",
            "-e",
            "POSTGRES_DB=app",
            "-e",
            "POSTGRES_PASSWORD=s3cret",
            "-e",
            "PGDATA=/var/lib/postgresql/data/pgdata",
        ],
        &["localhost/postgres:16.4"],
    );
    postgres.until("a password login with psql", || {
        let out = psql(
            pg_port,
            "s3cret",
            "select current_user || ' ' || current_database()",
        );
        out.status.success() && stdout(&out).trim() == "skipper app"
    });
    let wrong = psql(pg_port, "wrong", "select 1");
    assert!(
        !wrong.status.success() && text(&wrong).contains("password authentication failed"),
        "a wrong password is refused: {}",
        text(&wrong)
    );
    let version = psql(pg_port, "s3cret", "show server_version");
    eprintln!("postgres:16.4 runs PostgreSQL {}", stdout(&version).trim());
    // The template's probe, inside the container.
    let ready = podman(
        &store,
        &[
            "exec",
            &postgres.name,
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            "skipper",
            "-d",
            "app",
        ],
    );
    assert!(ready.status.success(), "pg_isready: {}", text(&ready));
    let user = podman(&store, &["top", &postgres.name, "user"]);
    assert!(
        stdout(&user)
            .lines()
            .skip(1)
            .all(|l| l.trim() == "postgres"),
        "postgres runs as the postgres user: {}",
        text(&user)
    );
    // Without a password the official image's error.
    let refused = podman(
        &store,
        &["run", "--rm", "--network", "none", "localhost/postgres:16"],
    );
    assert!(
        !refused.status.success()
            && text(&refused).contains(
                "Error: Database is uninitialized and superuser password is not specified."
            ),
        "{}",
        text(&refused)
    );

    // redis with the template's arguments appended to redis-server.
    let redis_port = free_port();
    let publish = format!("127.0.0.1:{redis_port}:6379");
    let redis = Running::start(
        &store,
        "redis",
        &["-p", &publish],
        &[
            "localhost/redis:7.4.1",
            "--requirepass",
            "s3cret",
            "--appendonly",
            "yes",
        ],
    );
    let ping = |password: &str| {
        std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &redis_port.to_string()])
            .args(["-a", password, "--no-auth-warning", "ping"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("redis-cli (redis-tools)")
    };
    redis.until("PING answered with PONG", || {
        stdout(&ping("s3cret")).trim() == "PONG"
    });
    let wrong = ping("wrong");
    assert!(
        !stdout(&wrong).contains("PONG") && text(&wrong).contains("WRONGPASS"),
        "a wrong password is refused: {}",
        text(&wrong)
    );
    let inside = podman(
        &store,
        &[
            "exec",
            &redis.name,
            "redis-cli",
            "-a",
            "s3cret",
            "--no-auth-warning",
            "ping",
        ],
    );
    assert_eq!(stdout(&inside).trim(), "PONG", "{}", text(&inside));
}
