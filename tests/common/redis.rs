//! A throwaway Redis (the Debian package's `redis-server`) on a free loopback port with a
//! password and no persistence, in a temp dir, killed on drop.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub const PASSWORD: &str = "kip-test-redis-Pa55";

pub struct Redis {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("kip-redis-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--requirepass", PASSWORD])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (./test.sh installs redis-server)");
        let mut redis = Redis {
            port,
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = redis.child.try_wait().expect("try_wait") {
                panic!("redis-server exited: {status}");
            }
            let out = redis_cli(port, &["PING"]);
            if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }
}

/// `redis-cli -h 127.0.0.1 -p PORT -a PASSWORD ARGS…`.
pub fn redis_cli(port: u16, args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-a", PASSWORD, "--no-auth-warning"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli on the PATH (./test.sh installs redis-tools)")
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
