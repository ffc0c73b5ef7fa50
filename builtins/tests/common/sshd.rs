//! A real OpenSSH server for tests: `/usr/sbin/sshd` on a free loopback port with a throwaway
//! host key and a throwaway client key, all in a temporary folder, killed on drop.
//!
//! Needs root (sshd switches to the user it logs in) and `openssh-server`, which `test.sh`
//! installs, along with the users `kiptest` (passwordless sudo) and `kipnosudo` (no sudo).

use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

/// Makes an ed25519 key pair at `path` (and `path.pub`), encrypted when `passphrase` is not "".
pub fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-N", passphrase, "-C", "kip-test", "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client; test.sh installs it)");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// `SHA256:…` of a public key file, as ssh-keygen prints it.
pub fn fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .expect("ssh-keygen -lf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

/// A port nothing listens on (now).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Sshd {
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run ./test.sh, which installs openssh-server"
        );
        let uid = Command::new("id").arg("-u").output().expect("id -u").stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "the ssh tests start sshd, which must run as root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // sshd reads authorized_keys as the user logging in: the folder must be readable.
        set_mode(dir.path(), 0o755);
        keygen(&dir.path().join("client"), "");
        std::fs::copy(
            dir.path().join("client.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        set_mode(&dir.path().join("authorized_keys"), 0o644);
        keygen(&dir.path().join("host_key"), "");
        let mut sshd = Sshd {
            port: free_port(),
            dir,
            child: None,
        };
        sshd.write_config();
        sshd.spawn();
        sshd
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    pub fn host_public_key(&self) -> PathBuf {
        self.dir.path().join("host_key.pub")
    }

    /// Stops the server, gives it a new host key and starts it again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        for name in ["host_key", "host_key.pub"] {
            std::fs::remove_file(self.dir.path().join(name)).expect("remove host key");
        }
        keygen(&self.dir.path().join("host_key"), "");
        self.spawn();
    }

    fn write_config(&self) {
        let dir = self.dir.path().display();
        let config = format!(
            "ListenAddress 127.0.0.1\n\
             HostKey {dir}/host_key\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile {dir}/sshd.pid\n\
             StrictModes no\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             LogLevel VERBOSE\n"
        );
        std::fs::write(self.dir.path().join("sshd_config"), config).expect("sshd_config");
    }

    fn spawn(&mut self) {
        // Debian's sshd wants its privilege separation folder, which only its service makes.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .expect("sshd.log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .arg("-p")
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Until the server answers with its SSH banner (or has died, or 20 s passed).
    fn wait_ready(&mut self) {
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sshd did not answer on port {}:\n{}", self.port, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
