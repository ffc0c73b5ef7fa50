//! `kip sandbox image …`: images for the sandbox's pods, built with buildah into the store the
//! sandbox's podman uses ([`Containers`]) and pushed to the sandbox's registry.
//!
//! `prepare` makes nginx, postgres and redis from Debian's packages (a bookworm root made once
//! with debootstrap), so the README's tour runs without reaching a public registry: only a
//! Debian mirror.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use sandbox::containers::Containers;
use sandbox::home::SandboxHome;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build an image from a folder and push it to the sandbox's registry.
    ///
    /// DIR (with its Dockerfile or Containerfile) is built with buildah into the store the
    /// sandbox's podman uses, as localhost/NAME, then pushed to the sandbox's registry as
    /// REGISTRY/NAME, where pods pull it. Without a running sandbox it is only built.
    Build {
        /// The image's name, with an optional tag (`web`, `team/api:v2`; `latest` when none).
        name: String,
        /// The build context: the folder the Dockerfile's COPY and ADD read from.
        dir: PathBuf,
        /// The Dockerfile, when not DIR/Dockerfile or DIR/Containerfile.
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
    },
    /// Build nginx, postgres and redis from Debian's packages, for pods without a public registry.
    ///
    /// A Debian bookworm root is made once with debootstrap (needs root and the Debian mirror
    /// apt uses here), then each image installs Debian's package behind the official image's
    /// entry point and is tagged as kip's templates ask for (postgres:16.4, redis:7.4.1,
    /// nginx:1.27, and their major and latest tags). They are pushed to the sandbox's registry
    /// when it runs. Images already built are kept (--force builds them again).
    Prepare {
        /// Which images (all when none are named).
        #[arg(value_enum)]
        images: Vec<Prepared>,
        /// Build the images again even if they exist (the Debian base is kept).
        #[arg(long)]
        force: bool,
    },
}

/// The images `prepare` makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Prepared {
    Nginx,
    Postgres,
    Redis,
    /// The X-Instance-ID sidecar every app with a route gets, from the `kip-instance-id`
    /// binary beside kip.
    InstanceId,
}

impl Prepared {
    const ALL: [Prepared; 4] = [
        Prepared::Nginx,
        Prepared::Postgres,
        Prepared::Redis,
        Prepared::InstanceId,
    ];

    fn name(self) -> &'static str {
        match self {
            Prepared::Nginx => "nginx",
            Prepared::Postgres => "postgres",
            Prepared::Redis => "redis",
            Prepared::InstanceId => "instance-id",
        }
    }

    /// The tags it gets: first the one kip's templates ask for (stdlib/lib/services.rhai, the
    /// README's tour), which also tells whether it was prepared.
    fn tags(self) -> &'static [&'static str] {
        match self {
            Prepared::Nginx => &["1.27", "1", "latest"],
            Prepared::Postgres => &["16.4", "16", "latest"],
            Prepared::Redis => &["7.4.1", "7", "latest"],
            Prepared::InstanceId => &[],
        }
    }

    /// The build context's files: name, text, executable.
    fn files(self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            Prepared::Nginx => &[
                (
                    "Dockerfile",
                    include_str!("../sandbox/images/nginx/Dockerfile"),
                    false,
                ),
                (
                    "default.conf",
                    include_str!("../sandbox/images/nginx/default.conf"),
                    false,
                ),
                (
                    "index.html",
                    include_str!("../sandbox/images/nginx/index.html"),
                    false,
                ),
            ],
            Prepared::Postgres => &[
                (
                    "Dockerfile",
                    include_str!("../sandbox/images/postgres/Dockerfile"),
                    false,
                ),
                (
                    "docker-entrypoint.sh",
                    include_str!("../sandbox/images/postgres/docker-entrypoint.sh"),
                    true,
                ),
            ],
            Prepared::Redis => &[
                (
                    "Dockerfile",
                    include_str!("../sandbox/images/redis/Dockerfile"),
                    false,
                ),
                (
                    "docker-entrypoint.sh",
                    include_str!("../sandbox/images/redis/docker-entrypoint.sh"),
                    true,
                ),
            ],
            Prepared::InstanceId => &[],
        }
    }
}

/// The base every prepared image starts from.
const BASE: &str = "localhost/kip-debian:bookworm";
const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

pub fn run(home: &SandboxHome, cmd: ImageCommand) -> Result<(), String> {
    let kip_home = home.dir.parent().unwrap_or(Path::new("."));
    let containers = Containers::for_kip_home(kip_home)
        .map_err(|e| format!("cannot set up the container store: {e}"))?;
    match cmd {
        ImageCommand::Build { name, dir, file } => {
            build(home, &containers, &name, &dir, file.as_deref())
        }
        ImageCommand::Prepare { images, force } => {
            let images = if images.is_empty() {
                Prepared::ALL.to_vec()
            } else {
                images
            };
            prepare(home, &containers, &images, force)
        }
    }
}

fn build(
    home: &SandboxHome,
    containers: &Containers,
    name: &str,
    dir: &Path,
    file: Option<&Path>,
) -> Result<(), String> {
    let (path, tag) = parse_name(name)?;
    if !dir.is_dir() {
        return Err(format!(
            "cannot build {name}: {} is not a folder (the build context: give the folder with \
             the Dockerfile)",
            dir.display()
        ));
    }
    match file {
        Some(file) if !file.is_file() => {
            return Err(format!("cannot build {name}: no file {}", file.display()));
        }
        None if !dir.join("Dockerfile").is_file() && !dir.join("Containerfile").is_file() => {
            return Err(format!(
                "cannot build {name}: {} has no Dockerfile or Containerfile (name another with \
                 --file)",
                dir.display()
            ));
        }
        _ => {}
    }
    tool_exists("buildah")?;
    let local = format!("localhost/{path}:{tag}");
    let mut bud = containers.command("buildah");
    bud.args(["--storage-driver", "vfs", "bud", "--tag", &local]);
    if let Some(file) = file {
        bud.arg("--file").arg(file);
    }
    bud.arg(dir);
    Step::start(format!("Building {local}")).run(bud, "buildah bud")?;
    println!("✔ Built {local}");
    match crate::sandbox_registry::running_address(home) {
        Some(registry) => {
            let pushed = push(containers, &registry, &local, &format!("{path}:{tag}"))?;
            println!("✔ Pushed {pushed}");
        }
        None => println!(
            "  Not pushed: the sandbox's registry is not running. Start the sandbox (`kip \
             sandbox up`) and build again to push it there."
        ),
    }
    Ok(())
}

/// Pushes `local` to the registry at `registry` (loopback, plain HTTP) as `registry/remote`.
fn push(
    containers: &Containers,
    registry: &str,
    local: &str,
    remote: &str,
) -> Result<String, String> {
    // Only a registry on this machine may be reached without TLS.
    let loopback = registry
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback {
        return Err(format!(
            "the sandbox's registry address {registry} is not a loopback address"
        ));
    }
    let target = format!("{registry}/{remote}");
    let mut cmd = containers.command("buildah");
    cmd.args([
        "--storage-driver",
        "vfs",
        "push",
        "--quiet",
        "--tls-verify=false",
    ])
    .arg(local)
    .arg(format!("docker://{target}"));
    Step::start(format!("Pushing {target}")).run(cmd, "buildah push")?;
    Ok(target)
}

/// Splits `name` into its path and tag (`latest` when none), or says what is wrong with it. A
/// leading `localhost/` is dropped: it is where the image goes anyway.
fn parse_name(name: &str) -> Result<(String, String), String> {
    let invalid = |why: String| {
        Err(format!(
            "invalid image name {name:?}: {why} (like `web`, `team/api:v2`)"
        ))
    };
    if name.contains('@') {
        return invalid("a digest names an image that exists; give a tag instead".into());
    }
    let name = name.strip_prefix("localhost/").unwrap_or(name);
    // A colon after the last slash starts the tag.
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, tag),
        _ => (name, "latest"),
    };
    if path.is_empty() {
        return invalid("the name is empty".into());
    }
    if path.len() > 255 {
        return invalid("the name is longer than 255 characters".into());
    }
    for component in path.split('/') {
        if let Err(why) = check_component(component) {
            return invalid(why);
        }
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !tag_ok {
        return invalid(format!(
            "the tag {tag:?} must be 1 to 128 letters, digits, `_`, `.` or `-`, not starting \
             with `.` or `-`"
        ));
    }
    Ok((path.to_string(), tag.to_string()))
}

/// One path component of an OCI reference: lowercase letters and digits, separated by one `.`,
/// one or two `_`, or any number of `-`.
fn check_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("it has an empty path component (`//`, or a `/` at an end)".into());
    }
    if let Some(c) = component
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed: a name has lowercase letters, digits and the separators \
             `.`, `_`, `-`"
        ));
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(alnum) || !component.ends_with(alnum) {
        return Err(format!(
            "{component:?} must start and end with a letter or digit"
        ));
    }
    for run in component.split(alnum).filter(|s| !s.is_empty()) {
        if !(run == "." || run == "_" || run == "__" || run.chars().all(|c| c == '-')) {
            return Err(format!(
                "{component:?} has the separator {run:?}: use one `.`, one or two `_`, or dashes"
            ));
        }
    }
    Ok(())
}

fn prepare(
    home: &SandboxHome,
    containers: &Containers,
    images: &[Prepared],
    force: bool,
) -> Result<(), String> {
    tool_exists("buildah")?;
    tool_exists("podman")?;
    let _lock = lock(containers)?;
    let registry = crate::sandbox_registry::running_address(home);
    let started = Instant::now();
    let mut base_ready = false;
    for &image in images {
        if image == Prepared::InstanceId {
            prepare_sidecar(containers, force)?;
            continue;
        }
        let tags = image.tags();
        let first = format!("{}:{}", image.name(), tags[0]);
        let local = |tag: &str| format!("localhost/{}:{tag}", image.name());
        if !force && exists(containers, &local(tags[0])) {
            println!("✔ {first} already prepared");
        } else {
            if !base_ready {
                base(containers)?;
                base_ready = true;
            }
            // A forced build moves the tags; the image they left is removed after.
            let old = image_id(containers, &local(tags[0]));
            let context = tempdir(containers)?;
            let written = write_context(&context, image);
            let built = written.and_then(|()| {
                let mut bud = containers.command("buildah");
                bud.args([
                    "--storage-driver",
                    "vfs",
                    "bud",
                    // apt in the RUN steps reaches the mirror as this machine does.
                    "--network",
                    "host",
                    "--pull-never",
                ]);
                for tag in tags {
                    bud.args(["--tag", &local(tag)]);
                }
                bud.arg(&context);
                Step::start(format!("Building {first} from Debian's packages"))
                    .run(bud, "buildah bud")
            });
            let _ = std::fs::remove_dir_all(&context);
            let took = built?;
            if let Some(old) = old
                && image_id(containers, &local(tags[0])).is_some_and(|new| new != old)
            {
                // Fails, and keeps it, while a container still uses it.
                let _ = containers.command("podman").args(["rmi", &old]).output();
            }
            let size = image_size(containers, &local(tags[0]))
                .map(|s| format!(", {}", megabytes(s)))
                .unwrap_or_default();
            println!(
                "✔ Built {} ({}{size})",
                tags.iter().map(|t| local(t)).collect::<Vec<_>>().join(", "),
                seconds(took)
            );
        }
        if let Some(registry) = &registry {
            let mut pushed = Vec::new();
            for tag in tags {
                pushed.push(push(
                    containers,
                    registry,
                    &local(tag),
                    &format!("{}:{tag}", image.name()),
                )?);
            }
            println!("✔ Pushed {}", pushed.join(", "));
        }
    }
    if registry.is_none() {
        println!(
            "  Not pushed: the sandbox's registry is not running (`kip sandbox up` starts it, \
             then prepare again to push)."
        );
    }
    if base_ready {
        println!("  Prepared in {}", seconds(started.elapsed()));
    }
    Ok(())
}

/// The instance-ID sidecar's image under the name kip gives pods by default
/// (`kipper::instance_id_image`), built like `instance-id/image/build` does: the
/// `kip-instance-id` beside this kip and the libraries it loads, on no base image. Without that
/// binary it says so and goes on: apps with a route then stay simulated.
fn prepare_sidecar(containers: &Containers, force: bool) -> Result<(), String> {
    let tag = format!(
        "ghcr.io/kipper-run/kip-instance-id:{}",
        env!("CARGO_PKG_VERSION")
    );
    if !force && exists(containers, &tag) {
        println!("✔ instance-id sidecar already prepared");
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the kip binary: {e}"))?;
    let bin = exe.with_file_name("kip-instance-id");
    if !bin.is_file() {
        println!(
            "  instance-id sidecar not prepared: no {} (build it with `cargo build -p \
             kip-instance-id`); apps with a route stay simulated until then, or deploy them \
             with --no-instance-header",
            bin.display()
        );
        return Ok(());
    }
    let context = tempdir(containers)?;
    let built = sidecar_context(&context, &bin).and_then(|()| {
        let mut bud = containers.command("buildah");
        bud.args(["--storage-driver", "vfs", "bud", "--tag", &tag])
            .arg(&context);
        Step::start("Building the instance-id sidecar".to_string()).run(bud, "buildah bud")
    });
    let _ = std::fs::remove_dir_all(&context);
    let took = built?;
    // Kept in the store only: the sandbox runs an image named for another registry from its
    // store, and would not pull it from its own.
    println!("✔ Built {tag} ({})", seconds(took));
    Ok(())
}

/// `rootfs/` (the binary, the libraries ldd resolves and the loader) and the Dockerfile.
fn sidecar_context(context: &Path, bin: &Path) -> Result<(), String> {
    let root = context.join("rootfs");
    let mut files = vec![(
        bin.to_path_buf(),
        root.join("usr/local/bin/kip-instance-id"),
    )];
    let ldd = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if line.contains("not found") {
            return Err(format!(
                "{} needs a library this machine lacks: {line}",
                bin.display()
            ));
        }
        let path = line.split("=>").last().unwrap_or(line).trim();
        let path = path.split(" (").next().unwrap_or("").trim();
        if let Some(relative) = path.strip_prefix('/') {
            let real = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
            files.push((real, root.join(relative)));
        }
    }
    for (from, to) in files {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    std::fs::write(
        context.join("Dockerfile"),
        include_str!("../instance-id/Dockerfile"),
    )
    .map_err(|e| format!("cannot write the Dockerfile: {e}"))
}

/// Makes sure `localhost/kip-debian:bookworm` exists: imports the cached root file system,
/// making it first with debootstrap when there is none.
fn base(containers: &Containers) -> Result<(), String> {
    if exists(containers, BASE) {
        return Ok(());
    }
    let folder = containers.dir().join("base");
    let tar = folder.join(format!("{SUITE}.tar"));
    if !tar.is_file() {
        debootstrap(&folder, &tar)?;
    }
    let mut import = containers.command("podman");
    import
        .args(["import", "--quiet", "--change", "CMD [\"bash\"]"])
        .arg(&tar)
        .arg(BASE);
    let took = Step::start(format!("Importing {BASE}")).run(import, "podman import")?;
    println!("✔ Imported {BASE} ({})", seconds(took));
    Ok(())
}

/// A minimal Debian root made with debootstrap, packed as `tar` (written aside and renamed, so
/// an interrupted run leaves no half archive that later runs would take).
fn debootstrap(folder: &Path, tar: &Path) -> Result<(), String> {
    tool_exists("debootstrap")?;
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "making the Debian base needs root (debootstrap creates device files and chroots): \
             run `kip sandbox image prepare` as root"
                .into(),
        );
    }
    std::fs::create_dir_all(folder)
        .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let root = folder.join(format!("{SUITE}.root"));
    let _ = std::fs::remove_dir_all(&root);
    let mirror = mirror();
    let mut cmd = std::process::Command::new("debootstrap");
    cmd.args(["--variant=minbase", SUITE])
        .arg(&root)
        .arg(&mirror)
        .stdin(std::process::Stdio::null());
    let made = Step::start(format!(
        "Making a Debian {SUITE} root with debootstrap ({mirror})"
    ))
    .run(cmd, "debootstrap");
    let packed = made.and_then(|took| {
        // The downloaded packages are installed already: they would only make the image bigger.
        let archives = root.join("var/cache/apt/archives");
        if let Ok(entries) = std::fs::read_dir(&archives) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "deb") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(root.join("var/lib/apt/lists"));
        let aside = tar.with_extension("tar.new");
        let mut pack = std::process::Command::new("tar");
        pack.arg("-C")
            .arg(&root)
            .arg("--numeric-owner")
            .arg("-cf")
            .arg(&aside)
            .arg(".")
            .stdin(std::process::Stdio::null());
        let packed = Step::start("Packing the root file system".to_string()).run(pack, "tar")?;
        std::fs::rename(&aside, tar)
            .map_err(|e| format!("cannot rename {}: {e}", aside.display()))?;
        Ok(took + packed)
    });
    let _ = std::fs::remove_dir_all(&root);
    let took = packed?;
    let size = std::fs::metadata(tar).map(|m| m.len()).unwrap_or(0);
    println!(
        "✔ Made the Debian {SUITE} base ({}, {}), kept in {}",
        seconds(took),
        megabytes(size),
        tar.display()
    );
    Ok(())
}

/// The Debian mirror this machine's apt uses, so the base and the images' packages come from
/// where this machine already gets its own.
fn mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sources"))
            .collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    let deb822 = texts.iter().find_map(|t| mirror_in_deb822(t));
    deb822
        .or_else(|| {
            std::fs::read_to_string("/etc/apt/sources.list")
                .ok()
                .and_then(|t| mirror_in_list(&t))
        })
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// The URI of the first stanza of a `.sources` file that serves Debian's main archive (not the
/// security one).
fn mirror_in_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().to_string())
            })
        };
        let types = field("Types")?;
        let uri = field("URIs")?.split_whitespace().next()?.to_string();
        let main_archive = types.split_whitespace().any(|t| t == "deb")
            && !uri.contains("security")
            && field("Suites").is_some_and(|s| {
                s.split_whitespace()
                    .any(|s| !s.contains('-') && !s.contains('/'))
            });
        main_archive.then_some(uri)
    })
}

/// The URI of the first `deb` line of a `sources.list` that is not the security archive.
fn mirror_in_list(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let uri = words.find(|w| !w.starts_with('['))?;
        let suite = words.next()?;
        (!uri.contains("security") && !suite.contains('-') && !suite.contains('/'))
            .then(|| uri.to_string())
    })
}

fn write_context(dir: &Path, image: Prepared) -> Result<(), String> {
    for (name, text, executable) in image.files() {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// A fresh folder in the store's folder for a build context.
fn tempdir(containers: &Containers) -> Result<PathBuf, String> {
    let dir = containers
        .dir()
        .join("tmp")
        .join(format!("context-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn exists(containers: &Containers, image: &str) -> bool {
    containers
        .command("podman")
        .args(["image", "exists", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn image_id(containers: &Containers, image: &str) -> Option<String> {
    let out = containers
        .command("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// An exclusive lock (`flock`) on the store's `prepare.lock` while a prepare runs, so two at once
/// do not both make the base in the same folder; the kernel releases it when its holder exits.
fn lock(containers: &Containers) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = containers.dir().join("prepare.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        println!("Waiting for another `kip sandbox image prepare` on this store…");
        // SAFETY: as above.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
    }
    Ok(file)
}

fn image_size(containers: &Containers, image: &str) -> Option<u64> {
    let out = containers
        .command("podman")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn tool_exists(program: &str) -> Result<(), String> {
    if sandbox::containers::on_path(program) {
        Ok(())
    } else {
        Err(format!(
            "{program} is not installed (on Debian: apt-get install {program})"
        ))
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn megabytes(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1_000_000.0)
}

/// A long step: a spinner with its elapsed time on a terminal, a plain line otherwise.
struct Step {
    message: String,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
}

impl Step {
    fn start(message: String) -> Step {
        let bar = if std::io::stdout().is_terminal() {
            let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let bar = indicatif::ProgressBar::new_spinner()
                .with_style(style)
                .with_message(message.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            println!("{message}…");
            None
        };
        Step {
            message,
            bar,
            started: Instant::now(),
        }
    }

    /// Runs `cmd` to its end; how long it took, or an error with the end of what it printed.
    fn run(self, mut cmd: std::process::Command, what: &str) -> Result<Duration, String> {
        let out = cmd.output();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let out = out.map_err(|e| format!("{}: cannot run {what}: {e}", self.message))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {what} {}:\n{}",
                self.message,
                out.status,
                tail(&out, 20)
            ));
        }
        Ok(self.started.elapsed())
    }
}

/// The last `n` lines a process printed (stdout, then stderr).
fn tail(out: &Output, n: usize) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_oci_reference_paths_with_a_tag() {
        let ok = |n: &str| parse_name(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(ok("web"), ("web".into(), "latest".into()));
        assert_eq!(ok("team/api:v2.1"), ("team/api".into(), "v2.1".into()));
        assert_eq!(ok("localhost/web:1"), ("web".into(), "1".into()));
        assert_eq!(
            ok("a__b.c--d/e_f"),
            ("a__b.c--d/e_f".into(), "latest".into())
        );
        for bad in [
            "",
            "Web",
            "web/",
            "/web",
            "a//b",
            "web:",
            "web:-x",
            "-web",
            "web_",
            "a._b",
            "a___b",
            "web@sha256:00",
            "w eb",
            "web:a/b",
        ] {
            let err = parse_name(bad).expect_err(bad);
            assert!(err.starts_with("invalid image name"), "{bad}: {err}");
        }
        assert!(
            parse_name("Web")
                .unwrap_err()
                .contains("'W' is not allowed")
        );
    }

    #[test]
    fn the_mirror_is_read_from_apt_sources() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm \
                      bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: \
                      http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in_deb822(deb822).as_deref(),
            Some("http://mirror.example/debian")
        );
        let security_first = "Types: deb\nURIs: http://security.debian.org/debian-security\n\
                              Suites: bookworm-security\n\nTypes: deb\nURIs: http://m/debian\n\
                              Suites: bookworm\n";
        assert_eq!(
            mirror_in_deb822(security_first).as_deref(),
            Some("http://m/debian")
        );
        let list = "# comment\ndeb http://security.debian.org/debian-security bookworm-security \
                    main\ndeb [arch=amd64] http://ftp.nl.debian.org/debian bookworm main\n";
        assert_eq!(
            mirror_in_list(list).as_deref(),
            Some("http://ftp.nl.debian.org/debian")
        );
        assert_eq!(mirror_in_list("deb-src http://x bookworm main\n"), None);
    }
}
