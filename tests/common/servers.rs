//! Object-storage servers for tests, each on 127.0.0.1 at a free port with one empty bucket ([`BUCKET`]): an S3
//! endpoint from moto (`python3 -m moto.server`, PyPI `moto[server]`) and Azure Blob from Azurite (`azurite-blob`,
//! npm `azurite`). `scripts/install-deps.sh` installs both; a missing one fails the test with what to install.
//!
//! A server lives as long as its [`Endpoint`]: dropping it kills the server's process group, also when the test
//! panics, and the server also dies with the test process (`PR_SET_PDEATHSIG`, bound to the thread that started it,
//! which is the test's own). Startup polls the port, so a test waits only as long as the server needs (about a
//! second).
//!
//! Shared by the integration tests (`common::servers`) and the object store's unit tests
//! (`src/store/object/tests.rs` includes this file by path): it uses only std, libc, jiff and dev-dependencies.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket (S3) or container (Azure) every endpoint starts with.
pub const BUCKET: &str = "coffer-test";

/// Azurite's one account and its published key (the same in every Azurite: not a secret).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long a server may take to answer on its port.
const STARTUP: Duration = Duration::from_secs(60);

/// A running server with one empty bucket, and the variables that point coffer at it.
pub struct Endpoint {
    server: Server,
    /// `s3` or `azure`.
    pub scheme: &'static str,
    /// Credentials and endpoint, named as coffer reads them from the environment.
    pub vars: Vec<(String, String)>,
}

impl Endpoint {
    /// The vault URL for `prefix` in the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("{}://{BUCKET}/{prefix}", self.scheme)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }
}

/// moto's S3 server with the bucket [`BUCKET`]. moto accepts any credentials.
pub fn moto() -> Endpoint {
    let server = Server::start("moto", "pip install 'moto[server]'", |port| {
        let mut c = Command::new("python3");
        c.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
        c
    });
    let answer = http_put(server.port, &format!("/{BUCKET}"), &[]);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "moto did not create the bucket: {answer}"
    );
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let vars = [
        ("AWS_ACCESS_KEY_ID", "coffer-test"),
        ("AWS_SECRET_ACCESS_KEY", "coffer-test-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    Endpoint {
        server,
        scheme: "s3",
        vars: owned(&vars),
    }
}

/// Azurite's Blob service with the container [`BUCKET`], addressed with an explicit account, key and endpoint.
pub fn azurite() -> Endpoint {
    let server = Server::start("azurite-blob", "npm install -g azurite", |port| {
        let mut c = Command::new("azurite-blob");
        c.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()]);
        c.args([
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]);
        c
    });
    create_container(server.port);
    let endpoint = format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", server.port);
    let vars = [
        ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT),
        ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
        ("AZURE_STORAGE_ENDPOINT", endpoint.as_str()),
        ("AZURE_ALLOW_HTTP", "true"),
    ];
    Endpoint {
        server,
        scheme: "azure",
        vars: owned(&vars),
    }
}

impl Endpoint {
    /// The variables of Azurite's emulator mode instead of an explicit account (Azurite endpoints only).
    pub fn emulator_vars(&self) -> Vec<(String, String)> {
        let url = format!("http://127.0.0.1:{}", self.server.port);
        owned(&[
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
            ("AZURITE_BLOB_STORAGE_URL", url.as_str()),
        ])
    }
}

fn owned(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A server process in its own process group, with its output in a log file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `command(port)` on a free port and waits until the port accepts connections; retries on another
    /// port if the server exits because its port was taken meanwhile.
    fn start(name: &str, install: &str, command: impl Fn(u16) -> Command) -> Server {
        for _attempt in 0..3 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let log = dir.path().join("server.log");
            let out = File::create(&log).expect("log file");
            let mut cmd = command(port);
            cmd.current_dir(dir.path()).stdin(Stdio::null());
            cmd.stdout(out.try_clone().expect("log fd")).stderr(out);
            cmd.process_group(0);
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!("cannot start the {name} server ({e}): install it with {install} (scripts/install-deps.sh)")
            });
            let mut server = Server {
                child,
                port,
                log,
                _dir: dir,
            };
            if server.wait_ready() {
                return server;
            }
            let said = server.said();
            if !said.contains("in use") {
                panic!("the {name} server did not start (install it with {install}):\n{said}");
            }
        }
        panic!("the {name} server found no free port in 3 attempts");
    }

    /// True once the port accepts connections; false if the process exited first. Panics after [`STARTUP`].
    fn wait_ready(&mut self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("no server on port {} after {STARTUP:?}:\n{}", self.port, self.said());
    }

    /// The end of what the server printed.
    fn said(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(4000)..]).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signals the process group this guard started (its leader's pid is the group id).
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (the kernel's pick for an ephemeral bind).
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    l.local_addr().expect("bound address").port()
}

/// An HTTP/1.1 PUT without a body; returns the whole answer (status line first).
fn http_put(port: u16, path: &str, headers: &[(&str, String)]) -> String {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the server");
    let mut request =
        format!("PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer
}

/// Creates the container [`BUCKET`] in Azurite with a Shared Key signed request (object_store cannot create one).
fn create_container(port: u16) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let version = "2021-08-06";
    // Verb, eleven standard headers (all empty here: Content-Length 0 signs as empty), x-ms-* headers, resource.
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
         /{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{BUCKET}\nrestype:container"
    );
    let key = b64.decode(AZURITE_KEY).expect("base64 key");
    let signature = b64.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let headers = [
        ("x-ms-date", date),
        ("x-ms-version", version.to_string()),
        ("Authorization", format!("SharedKey {AZURITE_ACCOUNT}:{signature}")),
    ];
    let answer = http_put(
        port,
        &format!("/{AZURITE_ACCOUNT}/{BUCKET}?restype=container"),
        &headers,
    );
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "Azurite did not create the container: {answer}"
    );
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let padded = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(padded(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(padded(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}
