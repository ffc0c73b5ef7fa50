//! `ssh::…` builtins, exercised by Rhai scripts against a real OpenSSH server each test starts
//! on loopback (see `common/sshd.rs`), with real keys and a temporary kip home.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use builtins::{ClusterChoice, Host, NoTemplates, UiSettings};
use common::sshd::{self, Sshd};
use rhai::{Dynamic, Engine, EvalAltResult, Map};

/// A server, a kip home and an engine whose host has no terminal.
struct Fixture {
    sshd: Sshd,
    home: tempfile::TempDir,
    engine: Engine,
    host: Arc<Host>,
    _runtime: tokio::runtime::Runtime,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_ui(UiSettings::default())
    }

    fn with_ui(ui: UiSettings) -> Fixture {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let home = tempfile::tempdir().expect("home");
        let host = Host::new(
            runtime.handle().clone(),
            home.path().to_path_buf(),
            Arc::new(NoTemplates),
            ui,
            ClusterChoice::unreachable("sandbox", "no cluster in ssh tests"),
        );
        let host = Arc::new(host);
        let mut engine = Engine::new();
        builtins::register_all(&mut engine, host.clone());
        Fixture {
            sshd: Sshd::start(),
            home,
            engine,
            host,
            _runtime: runtime,
        }
    }

    fn known_hosts(&self) -> PathBuf {
        self.home.path().join("known_hosts")
    }

    /// `ssh::connect(…)` as `user` with the server's client key, trusting the host key.
    fn connect(&self, user: &str) -> String {
        self.connect_with(user, &self.sshd.client_key(), "accept_host_key: true")
    }

    fn connect_with(&self, user: &str, key: &Path, extra: &str) -> String {
        format!(
            r#"ssh::connect(#{{ host: "127.0.0.1", port: {}, user: "{user}", key: "{}", {extra} }})"#,
            self.sshd.port,
            key.display()
        )
    }

    fn run<T: Clone + Send + Sync + 'static>(&self, script: &str) -> T {
        match self.engine.eval::<T>(script) {
            Ok(v) => v,
            Err(e) => panic!(
                "script failed: {e}\n{script}\nsshd log:\n{}",
                self.sshd.log()
            ),
        }
    }

    /// The error map a script raised.
    fn fail(&self, script: &str) -> Map {
        match self.engine.eval::<Dynamic>(script) {
            Ok(v) => panic!("script should fail, gave {v:?}\n{script}"),
            Err(err) => error_map(*err),
        }
    }
}

fn error_map(err: EvalAltResult) -> Map {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => value
            .try_cast::<Map>()
            .unwrap_or_else(|| panic!("the error is not a map")),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => error_map(*inner),
        other => panic!("not a script error: {other}"),
    }
}

fn text(map: &Map, key: &str) -> String {
    map.get(key)
        .map(|v| v.to_string())
        .unwrap_or_else(|| panic!("no `{key}` in {map:?}"))
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "{needle:?} is not in:\n{haystack}"
        );
    }
}

#[test]
fn exec_gives_status_stdout_and_stderr() {
    let f = Fixture::new();
    let out: Map = f.run(&format!(
        r#"let s = {};
        let r = ssh::exec(s, "echo out; echo err >&2; exit 3");
        r.who = `${{s}} ${{s.user}} ${{s.host}} ${{s.port}}`;
        r.ok = ssh::exec(s, "printf 'a\nb'");
        r.piped = ssh::run(s, "tr a-z A-Z", #{{ stdin: "shout" }});
        r.streamed = ssh::exec_stream(s, "echo streamed line; echo to stderr >&2; exit 4");
        r
        "#,
        f.connect("root")
    ));
    assert_eq!(out["status"].as_int().unwrap(), 3);
    assert_eq!(text(&out, "stdout"), "out\n");
    assert_eq!(text(&out, "stderr"), "err\n");
    let port = f.sshd.port;
    assert_eq!(
        text(&out, "who"),
        format!("ssh://root@127.0.0.1:{port} root 127.0.0.1 {port}")
    );
    let ok = out["ok"].clone().cast::<Map>();
    assert_eq!(ok["status"].as_int().unwrap(), 0);
    assert_eq!(text(&ok, "stdout"), "a\nb");
    assert_eq!(text(&out, "piped"), "SHOUT");
    assert_eq!(out["streamed"].as_int().unwrap(), 4);
}

#[test]
fn a_failing_command_raises_with_status_and_stderr() {
    let f = Fixture::new();
    let err = f.fail(&format!(
        r#"let s = {};
        ssh::run(s, "echo first >&2; echo 'no such thing' >&2; exit 7")"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "failed");
    assert_eq!(err["status"].as_int().unwrap(), 7);
    assert_eq!(text(&err, "stderr"), "first\nno such thing");
    assert_contains(
        &text(&err, "message"),
        &["status 7", "no such thing", "root@127.0.0.1"],
    );
}

#[test]
fn upload_then_download_round_trips_bytes_and_mode() {
    let f = Fixture::new();
    let remote = tempfile::tempdir().unwrap();
    let remote = remote.path().display();
    let local = tempfile::tempdir().unwrap();
    // Every byte value, then 3 MiB more, so both directions cross many SSH windows.
    let mut all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut x: u32 = 1;
    all_bytes.extend((0..3 << 20).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (x >> 16) as u8
    }));
    let source = local.path().join("bytes.bin");
    std::fs::write(&source, &all_bytes).unwrap();
    let copy = local.path().join("copy.bin");
    let out: Map = f.run(&format!(
        r#"let s = {connect};
        let r = #{{}};
        ssh::upload(s, "line one\nünïcode 'quoted' $HOME\n", "{remote}/text file", 0o640);
        r.text = ssh::download(s, "{remote}/text file");
        r.text_mode = ssh::run(s, "stat -c %a '{remote}/text file'");
        ssh::upload_file(s, "{source}", "{remote}/bytes.bin", 0o755);
        r.bytes_mode = ssh::run(s, "stat -c %a {remote}/bytes.bin");
        ssh::download_file(s, "{remote}/bytes.bin", "{copy}");
        let b = blob(3, 0x41);
        ssh::upload(s, b, "{remote}/blob", 0o600);
        r.blob = ssh::download(s, "{remote}/blob");
        ssh::upload(s, "replaced", "{remote}/blob", 0o600);
        r.replaced = ssh::download(s, "{remote}/blob");
        r.leftovers = ssh::run(s, "ls -a {remote}");
        r
        "#,
        connect = f.connect("root"),
        source = source.display(),
        copy = copy.display(),
    ));
    assert_eq!(text(&out, "text"), "line one\nünïcode 'quoted' $HOME\n");
    assert_eq!(text(&out, "text_mode"), "640\n");
    assert_eq!(text(&out, "bytes_mode"), "755\n");
    assert_eq!(std::fs::read(&copy).unwrap(), all_bytes);
    assert_eq!(text(&out, "blob"), "AAA");
    assert_eq!(text(&out, "replaced"), "replaced");
    assert_eq!(
        text(&out, "leftovers"),
        ".\n..\nblob\nbytes.bin\ntext file\n"
    );

    let err = f.fail(&format!(
        r#"let s = {}; ssh::download(s, "{remote}/missing")"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "failed");
    assert_contains(
        &text(&err, "message"),
        &[
            &format!("cannot read {remote}/missing on root@"),
            "No such file",
        ],
    );
    let err = f.fail(&format!(
        r#"let s = {}; ssh::upload(s, "x", "{remote}/no/such/folder/file", 0o644)"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "failed");
    assert_contains(
        &text(&err, "message"),
        &[
            &format!("cannot write {remote}/no/such/folder/file on root@"),
            "No such file",
        ],
    );
}

#[test]
fn an_unknown_host_key_without_a_terminal_is_refused_and_nothing_recorded() {
    let f = Fixture::new();
    let err = f.fail(&f.connect_with("root", &f.sshd.client_key(), ""));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "host-key");
    let fingerprint = sshd::fingerprint(&f.sshd.host_public_key());
    assert_contains(
        &text(&err, "message"),
        &[
            &format!("[127.0.0.1]:{}", f.sshd.port),
            &fingerprint,
            "--accept-host-key",
            "without a terminal",
        ],
    );
    assert!(!f.known_hosts().exists(), "known_hosts was written");
}

#[test]
fn on_a_terminal_an_unknown_host_key_is_asked_about() {
    let f = Fixture::with_ui(UiSettings {
        interactive: true,
        // `--yes` answers confirmations, not whether to trust a host.
        yes: true,
        ..UiSettings::default()
    });
    let mut opts = Map::new();
    opts.insert("host".into(), "127.0.0.1".into());
    opts.insert("port".into(), Dynamic::from(i64::from(f.sshd.port)));
    opts.insert(
        "key".into(),
        f.sshd.client_key().display().to_string().into(),
    );
    let fingerprint = sshd::fingerprint(&f.sshd.host_public_key());

    let mut asked = Vec::new();
    let err = match builtins::ssh::connect_with_terminal(
        &f.host,
        &opts,
        &mut std::io::Cursor::new("n\n"),
        &mut asked,
    ) {
        Ok(session) => panic!("connected to {} though declined", session.target()),
        Err(err) => error_map(*err),
    };
    let question = String::from_utf8(asked).unwrap();
    assert_contains(
        &question,
        &[
            &format!("The authenticity of host [127.0.0.1]:{}", f.sshd.port),
            &fingerprint,
            "[y/N]",
        ],
    );
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "host-key");
    assert_contains(&text(&err, "message"), &["not trusted", "recorded nothing"]);
    assert!(!f.known_hosts().exists(), "known_hosts was written");

    let mut asked = Vec::new();
    let session = builtins::ssh::connect_with_terminal(
        &f.host,
        &opts,
        &mut std::io::Cursor::new("yes\n"),
        &mut asked,
    )
    .unwrap_or_else(|err| panic!("trusted, yet: {err}"));
    assert_eq!(session.target(), format!("root@127.0.0.1:{}", f.sshd.port));
    assert!(!asked.is_empty());
    assert_contains(
        &std::fs::read_to_string(f.known_hosts()).unwrap(),
        &[&format!("[127.0.0.1]:{} ssh-ed25519 ", f.sshd.port)],
    );
    // Known now: not asked again.
    let mut asked = Vec::new();
    builtins::ssh::connect_with_terminal(&f.host, &opts, &mut std::io::Cursor::new(""), &mut asked)
        .unwrap_or_else(|err| panic!("known, yet: {err}"));
    assert!(
        asked.is_empty(),
        "asked again: {}",
        String::from_utf8_lossy(&asked)
    );
}

#[test]
fn accept_host_key_records_the_key_which_is_then_known() {
    let f = Fixture::new();
    let _: String = f.run(&format!(
        r#"let s = {}; ssh::run(s, "true")"#,
        f.connect("root")
    ));
    let recorded = std::fs::read_to_string(f.known_hosts()).unwrap();
    let host_key = std::fs::read_to_string(f.sshd.host_public_key()).unwrap();
    let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert_eq!(
        recorded,
        format!("[127.0.0.1]:{} {}\n", f.sshd.port, key.join(" "))
    );
    // Known now: no `accept_host_key` needed, and nothing more recorded.
    let out: String = f.run(&format!(
        r#"let s = {}; ssh::run(s, "echo again")"#,
        f.connect_with("root", &f.sshd.client_key(), "")
    ));
    assert_eq!(out, "again\n");
    assert_eq!(std::fs::read_to_string(f.known_hosts()).unwrap(), recorded);
}

#[test]
fn a_changed_host_key_is_refused_with_an_alarm() {
    let mut f = Fixture::new();
    let _: String = f.run(&format!(
        r#"let s = {}; ssh::run(s, "true")"#,
        f.connect("root")
    ));
    let before = std::fs::read_to_string(f.known_hosts()).unwrap();
    f.sshd.restart_with_new_host_key();
    // Even `accept_host_key` does not trust a changed key.
    let err = f.fail(&format!(
        r#"let s = {}; ssh::run(s, "touch /tmp/kip-should-not-run")"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "host-key");
    let known_hosts = f.known_hosts().display().to_string();
    assert_contains(
        &text(&err, "message"),
        &[
            "@@@ WARNING: the host key of",
            &format!("[127.0.0.1]:{} has CHANGED", f.sshd.port),
            "man-in-the-middle",
            &sshd::fingerprint(&f.sshd.host_public_key()),
            &format!("remove line 1 of {known_hosts}"),
        ],
    );
    assert_eq!(std::fs::read_to_string(f.known_hosts()).unwrap(), before);
}

#[test]
fn a_wrong_client_key_is_an_auth_error_naming_the_fix() {
    let f = Fixture::new();
    let other = f.sshd.dir.path().join("other");
    sshd::keygen(&other, "");
    let err = f.fail(&f.connect_with("kiptest", &other, "accept_host_key: true"));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "auth");
    assert_contains(
        &text(&err, "message"),
        &[
            &other.display().to_string(),
            "user kiptest",
            "authorized_keys",
            "--ssh-key",
        ],
    );
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let f = Fixture::new();
    let key = f.sshd.dir.path().join("locked");
    sshd::keygen(&key, "open sesame");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let authorized = f.sshd.dir.path().join("authorized_keys");
    let mut keys = std::fs::read_to_string(&authorized).unwrap();
    keys.push_str(&public);
    std::fs::write(&authorized, keys).unwrap();

    let err = f.fail(&f.connect_with("root", &key, "accept_host_key: true"));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "auth");
    assert_contains(&text(&err, "message"), &["encrypted", "--ssh-passphrase"]);

    let err = f.fail(&f.connect_with(
        "root",
        &key,
        r#"accept_host_key: true, passphrase: "wrong""#,
    ));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "auth");
    assert_contains(&text(&err, "message"), &["passphrase"]);

    let out: String = f.run(&format!(
        r#"let s = {}; ssh::run(s, "echo unlocked")"#,
        f.connect_with(
            "root",
            &key,
            r#"accept_host_key: true, passphrase: "open sesame""#
        )
    ));
    assert_eq!(out, "unlocked\n");
}

#[test]
fn an_unreachable_port_is_unreachable() {
    let f = Fixture::new();
    let port = sshd::free_port();
    let err = f.fail(&format!(
        r#"ssh::connect(#{{ host: "127.0.0.1", port: {port}, key: "{}", accept_host_key: true }})"#,
        f.sshd.client_key().display()
    ));
    assert_eq!(text(&err, "kind"), "unreachable");
    assert_contains(
        &text(&err, "message"),
        &[&format!("127.0.0.1:{port}"), "refused"],
    );
}

#[test]
fn sudo_as_a_user_with_passwordless_sudo_runs_as_root() {
    let f = Fixture::new();
    let out: Map = f.run(&format!(
        r#"let s = {};
        let r = #{{}};
        r.plain = ssh::run(s, "id -un");
        r.sudo = ssh::sudo(s, "id -u");
        r.exec = ssh::exec(s, "id -u && echo 'it''s' >&2", #{{ sudo: true }});
        ssh::upload(s, "root only\n", "/root/kip-ssh-test-{port}", 0o600, #{{ sudo: true }});
        r.owner = ssh::sudo(s, "stat -c '%U %a' /root/kip-ssh-test-{port}");
        r.content = ssh::download(s, "/root/kip-ssh-test-{port}", #{{ sudo: true }});
        r.unprivileged = ssh::exec(s, "cat /root/kip-ssh-test-{port}");
        ssh::sudo(s, "rm /root/kip-ssh-test-{port}");
        r
        "#,
        f.connect("kiptest"),
        port = f.sshd.port,
    ));
    assert_eq!(text(&out, "plain"), "kiptest\n");
    assert_eq!(text(&out, "sudo"), "0\n");
    let exec = out["exec"].clone().cast::<Map>();
    assert_eq!(text(&exec, "stdout"), "0\n");
    assert_eq!(text(&exec, "stderr"), "its\n");
    assert_eq!(text(&out, "owner"), "root 600\n");
    assert_eq!(text(&out, "content"), "root only\n");
    let unprivileged = out["unprivileged"].clone().cast::<Map>();
    assert_ne!(unprivileged["status"].as_int().unwrap(), 0);
}

#[test]
fn sudo_as_a_user_without_rights_is_a_clear_error() {
    let f = Fixture::new();
    let err = f.fail(&format!(
        r#"let s = {}; ssh::sudo(s, "id -u")"#,
        f.connect("kipnosudo")
    ));
    assert_eq!(text(&err, "kind"), "denied");
    assert_eq!(text(&err, "reason"), "sudo");
    assert_contains(
        &text(&err, "message"),
        &[
            "user kipnosudo",
            "without a password",
            "NOPASSWD",
            "connect as root",
        ],
    );
}

#[test]
fn an_exec_timeout_raises_and_the_session_still_works() {
    let f = Fixture::new();
    let out: Map = f.run(&format!(
        r#"let s = {};
        let r = #{{}};
        try {{ ssh::exec(s, "sleep 30", #{{ timeout_secs: 1 }}); r.first = "finished"; }}
        catch (e) {{ r.first = e; }}
        r.after = ssh::run(s, "echo still here");
        r
        "#,
        f.connect("root")
    ));
    let first = out["first"].clone().cast::<Map>();
    assert_eq!(text(&first, "kind"), "timeout");
    assert_contains(&text(&first, "message"), &["sleep 30", "within 1s"]);
    assert_eq!(text(&out, "after"), "still here\n");

    // The session's own limit, on a new connection.
    let err = f.fail(&format!(
        r#"let s = {}; ssh::run(s, "sleep 30")"#,
        f.connect_with(
            "root",
            &f.sshd.client_key(),
            "accept_host_key: true, exec_timeout_secs: 1"
        )
    ));
    assert_eq!(text(&err, "kind"), "timeout");
    let again: String = f.run(&format!(
        r#"let s = {}; ssh::run(s, "echo new")"#,
        f.connect("root")
    ));
    assert_eq!(again, "new\n");
}

#[test]
fn a_closed_session_refuses_and_options_are_checked() {
    let f = Fixture::new();
    let err = f.fail(&format!(
        r#"let s = {}; ssh::close(s); ssh::close(s); ssh::run(s, "true")"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "invalid");
    assert_contains(&text(&err, "message"), &["closed"]);

    let err = f.fail(r#"ssh::connect(#{ host: "127.0.0.1", prot: 22 })"#);
    assert_eq!(text(&err, "kind"), "invalid");
    assert_contains(&text(&err, "message"), &["`prot`"]);

    let err = f.fail(&format!(
        r#"let s = {}; ssh::upload(s, "x", "/tmp/x", 99999)"#,
        f.connect("root")
    ));
    assert_eq!(text(&err, "kind"), "invalid");
}
