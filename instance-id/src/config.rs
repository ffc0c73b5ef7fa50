//! Flags and environment: where to listen, where the app is, which pod this is.
//!
//! Hand-parsed: five settings do not justify an argument parser in a binary that sits in
//! every pod, and every mistake must end in one line that names the setting to fix.

use std::net::IpAddr;

/// What the listen port is offset by from the app's port, so the Service's `targetPort` can
/// be derived from the app's port without asking the app.
pub const PORT_OFFSET: u16 = 10_000;

/// The usage text for `--help`.
pub const USAGE: &str = "\
kip-instance-id: forwards HTTP to the app on loopback and adds X-Instance-ID to every response

usage: kip-instance-id [--upstream-port PORT] [--listen-port PORT] [--listen-addr IP]
                       [--pod-name NAME] [--log-errors]

  --upstream-port PORT  the app's port (127.0.0.1, else ::1)  env KIP_UPSTREAM_PORT (required)
  --listen-port PORT    where clients connect; 0 = any free   env KIP_LISTEN_PORT
                        (default: the upstream port + 10000)
  --listen-addr IP      address to listen on                  env KIP_LISTEN_ADDR
                        (default: [::], or 0.0.0.0 where IPv6 is off)
  --pod-name NAME       what X-Instance-ID is a hash of       env POD_NAME, then HOSTNAME
  --log-errors          the app's failures to stderr (why a   env KIP_LOG_ERRORS=1
                        502, a cut response); never client cancels

Flags win over the environment.";

/// Everything the sidecar needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None` means all interfaces, IPv6 and IPv4 where the pod has IPv6.
    pub listen_addr: Option<IpAddr>,
    /// 0 asks the kernel for a free port (tests use it; the start line says which).
    pub listen_port: u16,
    pub upstream_port: u16,
    pub pod_name: String,
    pub log_errors: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
    Version,
}

/// Reads the flags in `args` (without the program name) and the environment through `env`.
///
/// The environment comes in as a function so tests need not mutate the process's own.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let slot = match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--log-errors" if inline.is_none() => {
                flags.log_errors = true;
                continue;
            }
            "--upstream-port" => &mut flags.upstream_port,
            "--listen-port" => &mut flags.listen_port,
            "--listen-addr" => &mut flags.listen_addr,
            "--pod-name" => &mut flags.pod_name,
            _ => return Err(format!("unknown argument {arg:?} (see --help)")),
        };
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        *slot = Some((name, value));
    }

    let pick = |flag: Option<(String, String)>, var: &str| {
        flag.or_else(|| env(var).map(|value| (var.to_string(), value)))
    };

    let upstream_port = match pick(flags.upstream_port, "KIP_UPSTREAM_PORT") {
        Some((source, value)) => port(&source, &value, false)?,
        None => {
            return Err(
                "no upstream port: set KIP_UPSTREAM_PORT or --upstream-port to the app's port"
                    .into(),
            );
        }
    };
    let listen_port = match pick(flags.listen_port, "KIP_LISTEN_PORT") {
        Some((source, value)) => port(&source, &value, true)?,
        None => upstream_port.checked_add(PORT_OFFSET).ok_or_else(|| {
            format!(
                "the app's port {upstream_port} is above {}, so it has no port + {PORT_OFFSET} to listen on: \
                 use an app port up to {} or set KIP_LISTEN_PORT",
                u16::MAX - PORT_OFFSET,
                u16::MAX - PORT_OFFSET
            )
        })?,
    };
    if listen_port == upstream_port {
        return Err(format!(
            "the listen port and the app's port are both {listen_port}: the sidecar would forward to itself"
        ));
    }
    let listen_addr = match pick(flags.listen_addr, "KIP_LISTEN_ADDR") {
        Some((source, value)) => Some(
            value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| format!("{source} is {value:?}: not an IP address"))?,
        ),
        None => None,
    };
    let pod_name = match flags.pod_name {
        Some((_, value)) => value,
        None => env("POD_NAME")
            .filter(|name| !name.is_empty())
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_default(),
    };
    if pod_name.is_empty() {
        return Err("no pod name: set POD_NAME (the Downward API's metadata.name) or HOSTNAME, or pass --pod-name".into());
    }
    let log_errors = flags.log_errors
        || env("KIP_LOG_ERRORS")
            .is_some_and(|value| matches!(value.as_str(), "1" | "true" | "yes"));

    Ok(Command::Run(Config {
        listen_addr,
        listen_port,
        upstream_port,
        pod_name,
        log_errors,
    }))
}

/// Each value with the flag or variable it came from, for error messages.
#[derive(Default)]
struct Flags {
    upstream_port: Option<(String, String)>,
    listen_port: Option<(String, String)>,
    listen_addr: Option<(String, String)>,
    pod_name: Option<(String, String)>,
    log_errors: bool,
}

fn port(source: &str, value: &str, zero_ok: bool) -> Result<u16, String> {
    match value.trim().parse::<u16>() {
        Ok(0) if !zero_ok => Err(format!("{source} is 0: the app's port must be 1-65535")),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("{source} is {value:?}: not a port (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(args.iter().map(|a| a.to_string()), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })? {
            Command::Run(config) => Ok(config),
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_from_the_environment() {
        let config = run(
            &[],
            &[
                ("KIP_UPSTREAM_PORT", "8080"),
                ("POD_NAME", "web-1"),
                ("HOSTNAME", "h"),
            ],
        )
        .unwrap();
        assert_eq!(
            config,
            Config {
                listen_addr: None,
                listen_port: 18080,
                upstream_port: 8080,
                pod_name: "web-1".into(),
                log_errors: false
            }
        );
    }

    #[test]
    fn flags_win_and_hostname_is_the_fallback() {
        let config = run(
            &[
                "--upstream-port=3000",
                "--listen-port",
                "0",
                "--listen-addr",
                "127.0.0.1",
                "--log-errors",
            ],
            &[
                ("KIP_UPSTREAM_PORT", "8080"),
                ("HOSTNAME", "web-2"),
                ("POD_NAME", ""),
            ],
        )
        .unwrap();
        assert_eq!(config.upstream_port, 3000);
        assert_eq!(config.listen_port, 0);
        assert_eq!(config.listen_addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(config.pod_name, "web-2");
        assert!(config.log_errors);
        assert_eq!(
            run(
                &["--listen-addr", "[::1]"],
                &[("KIP_UPSTREAM_PORT", "1"), ("HOSTNAME", "h")]
            )
            .unwrap()
            .listen_addr,
            Some("::1".parse().unwrap())
        );
    }

    #[test]
    fn port_rule_edges() {
        let env = [("KIP_UPSTREAM_PORT", "55535"), ("POD_NAME", "p")];
        assert_eq!(run(&[], &env).unwrap().listen_port, 65535);
        let err = run(&[], &[("KIP_UPSTREAM_PORT", "55536"), ("POD_NAME", "p")]).unwrap_err();
        assert!(
            err.contains("55536") && err.contains("55535") && err.contains("KIP_LISTEN_PORT"),
            "{err}"
        );
        assert_eq!(
            run(
                &["--listen-port", "9000"],
                &[("KIP_UPSTREAM_PORT", "60000"), ("POD_NAME", "p")]
            )
            .unwrap()
            .listen_port,
            9000
        );
    }

    #[test]
    fn mistakes_name_the_setting() {
        // (flags, environment, what the error must say)
        type Case = (
            &'static [&'static str],
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], &[("POD_NAME", "p")], "KIP_UPSTREAM_PORT"),
            (
                &[],
                &[("KIP_UPSTREAM_PORT", "http"), ("POD_NAME", "p")],
                "KIP_UPSTREAM_PORT is \"http\"",
            ),
            (
                &[],
                &[("KIP_UPSTREAM_PORT", "0"), ("POD_NAME", "p")],
                "KIP_UPSTREAM_PORT is 0",
            ),
            (
                &["--upstream-port", "70000"],
                &[("POD_NAME", "p")],
                "--upstream-port is \"70000\"",
            ),
            (&[], &[("KIP_UPSTREAM_PORT", "8080")], "no pod name"),
            (
                &["--listen-port", "8080"],
                &[("KIP_UPSTREAM_PORT", "8080"), ("POD_NAME", "p")],
                "forward to itself",
            ),
            (
                &["--listen-addr", "localhost"],
                &[("KIP_UPSTREAM_PORT", "8080"), ("POD_NAME", "p")],
                "not an IP address",
            ),
            (
                &["--upstream-port"],
                &[("POD_NAME", "p")],
                "--upstream-port needs a value",
            ),
            (&["--bogus"], &[], "unknown argument \"--bogus\""),
        ];
        for (args, env, expected) in cases {
            let err = run(args, env).unwrap_err();
            assert!(err.contains(expected), "{args:?} {env:?}: {err}");
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(["--help".to_string()], |_| None), Ok(Command::Help));
        assert_eq!(parse(["-V".to_string()], |_| None), Ok(Command::Version));
    }
}
