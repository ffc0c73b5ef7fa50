//! Git repositories served for real on loopback: `git daemon` (git://, no auth) and
//! `git http-backend` behind a small HTTP/1.1 CGI bridge of this file, which can require
//! `Authorization: Basic` with a user and token. Both serve the bare repositories under one
//! folder; dropping the server kills them.
//!
//! Fetching a commit by sha that is not a branch head needs no `uploadpack.allow*SHA1InWant`:
//! git ≥ 2.26 speaks protocol v2 over both transports, whose `want` may name any object (the
//! test fetching an older commit proves it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// One request the HTTP bridge answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The Authorization header, if the request had one.
    pub authorization: Option<String>,
    pub status: u16,
}

pub struct GitServer {
    root: tempfile::TempDir,
    daemon: Child,
    pub daemon_port: u16,
    pub http_port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// `git ARGS` in `dir` with a fixed identity; panics with git's output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Kip Test",
            "-c",
            "user.email=kip@example.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        crate::common::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitServer {
    /// Serves the repositories made with [`GitServer::repo`]; with `credentials` (user, token)
    /// the HTTP bridge answers 401 to any request without them.
    pub fn start(credentials: Option<(&str, &str)>) -> GitServer {
        let root = tempfile::tempdir().expect("git root");
        let daemon_port = crate::common::free_port();
        let daemon = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={daemon_port}"),
                &format!("--base-path={}", root.path().display()),
                &root.path().display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the git HTTP bridge");
        let http_port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let expected = credentials.map(|(user, token)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
            )
        });
        let user = credentials.map(|(u, _)| u.to_string());
        {
            let (requests, stop, root) = (requests.clone(), stop.clone(), root.path().to_owned());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (requests, root) = (requests.clone(), root.clone());
                            let (expected, user) = (expected.clone(), user.clone());
                            std::thread::spawn(move || {
                                let _ = serve(stream, &root, expected, user, &requests);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        let mut server = GitServer {
            root,
            daemon,
            daemon_port,
            http_port,
            requests,
            stop,
        };
        server.wait_for_daemon();
        server
    }

    fn wait_for_daemon(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let address = format!("127.0.0.1:{}", self.daemon_port);
        loop {
            if TcpStream::connect(&address).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.daemon.try_wait() {
                panic!("git daemon on {address} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "git daemon did not listen on {address} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A new repository `name` (served as `name.git`) whose first commit on `main` has `files`.
    pub fn repo(&self, name: &str, files: &[(&str, &str)]) -> GitRepo {
        GitRepo::new_in(self.root.path(), name, files)
    }

    pub fn git_url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.daemon_port)
    }

    pub fn http_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.http_port)
    }

    /// What the HTTP bridge was asked so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A bare repository and a working clone that commits and pushes to it.
pub struct GitRepo {
    pub bare: PathBuf,
    pub work: PathBuf,
    _scratch: Option<tempfile::TempDir>,
}

impl GitRepo {
    /// A repository of its own (not served), its first commit with `files`.
    pub fn new(files: &[(&str, &str)]) -> GitRepo {
        let scratch = tempfile::tempdir().expect("repo dir");
        let mut repo = GitRepo::new_in(scratch.path(), "repo", files);
        repo._scratch = Some(scratch);
        repo
    }

    fn new_in(root: &Path, name: &str, files: &[(&str, &str)]) -> GitRepo {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!(".{name}-work"));
        std::fs::create_dir_all(&bare).expect("bare dir");
        std::fs::create_dir_all(&work).expect("work dir");
        git(&bare, &["init", "--bare", "-b", "main"]);
        git(&work, &["init", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        let repo = GitRepo {
            bare,
            work,
            _scratch: None,
        };
        repo.commit(files, "first");
        repo
    }

    /// Writes `files`, commits them on `main` and pushes; the new commit's sha.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let target = self.work.join(path);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("folder");
            std::fs::write(&target, content).expect("write a file");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// One request over `stream` to `git http-backend`, as a CGI.
fn serve(
    mut stream: TcpStream,
    root: &Path,
    expected: Option<String>,
    user: Option<String>,
    requests: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(length) = header("content-length").and_then(|l| l.parse().ok()) {
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        body
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        body
    } else {
        Vec::new()
    };
    let authorization = header("authorization");
    let record = |status: u16| {
        requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Request {
                method: method.clone(),
                path: target.clone(),
                authorization: authorization.clone(),
                status,
            });
    };
    if let Some(expected) = &expected
        && authorization.as_deref() != Some(expected.as_str())
    {
        record(401);
        let text = "authentication required\n";
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )?;
        return stream.flush();
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(user) = &user {
        cgi.env("REMOTE_USER", user);
    }
    if let Some(encoding) = header("content-encoding") {
        cgi.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(protocol) = header("git-protocol") {
        cgi.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let mut out = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut out)?;
    let _ = writer.join();
    let _ = child.wait();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((out.len(), out.len()));
    let head = String::from_utf8_lossy(&out[..split.0]).to_string();
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => response.push_str(&format!("{}\r\n", h.trim_end())),
            None => {}
        }
    }
    record(
        status
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    let payload = &out[split.1..];
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    stream.write_all(payload)?;
    stream.flush()
}
