//! What the Space and browser tests share: a TLS front like a Space's proxy (a
//! self-signed certificate for `localhost`, forwarding plain TCP to the app), and the
//! Space template's app started as its own process with only Space variables.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS listener on loopback whose connections go, decrypted, to a backend set later
/// (the app behind it may start after its public URL is known).
pub(crate) struct TlsFront {
    pub(crate) port: u16,
    listener: Option<TcpListener>,
    acceptor: TlsAcceptor,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl TlsFront {
    /// Binds `127.0.0.1:0` with a fresh self-signed certificate for `localhost`.
    pub(crate) async fn bind() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a self-signed certificate");
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("the certificate and key match");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            port: listener.local_addr().unwrap().port(),
            listener: Some(listener),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            task: None,
        }
    }

    /// `https://localhost:{port}`.
    pub(crate) fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Starts forwarding to `backend` (once; later calls change the backend by
    /// restarting the forwarder on the same port).
    pub(crate) fn forward_to(&mut self, backend: SocketAddr) {
        let listener = self.listener.take().expect("forward_to is called once");
        let acceptor = self.acceptor.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut app) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut app).await;
                    }
                });
            }
        }));
    }
}

/// The Space template's app, running as its own process.
pub(crate) struct SpaceProcess {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl SpaceProcess {
    /// Stops the process and waits for it.
    pub(crate) async fn stop(mut self) {
        self.child.kill().await.expect("the Space app stops");
    }
}

/// `target/debug/examples/space`, built by `cargo test --all-features`.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = dir.join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --all-features` (it builds the examples) first",
        bin.display()
    );
    bin
}

/// Starts the Space template's app with an empty environment plus `vars` (and `PATH`),
/// and waits (up to a minute) for it to say where it listens.
pub(crate) async fn start_space(vars: &[(&str, String)]) -> SpaceProcess {
    start_example("space", vars).await
}

/// Starts the example `name` with an empty environment plus `vars` (and `PATH`), and
/// waits (up to a minute) for it to say where it listens.
pub(crate) async fn start_example(name: &str, vars: &[(&str, String)]) -> SpaceProcess {
    let mut cmd = Command::new(example_binary(name));
    cmd.env_clear()
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("the Space app starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, addr)) = line.split_once("listening on http://") {
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("the Space app exited without listening");
    })
    .await
    .expect("the Space app listens within a minute");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    SpaceProcess { addr, child }
}

/// The variables a Space with `hf_oauth: true` gets, for the mock provider, with the
/// public host `localhost:{port}`; plus `HOST`/`PORT` to bind a free loopback port.
pub(crate) fn space_vars(
    mock: &tower_hf_auth::mock::MockHfProvider,
    port: u16,
) -> Vec<(&'static str, String)> {
    vec![
        ("OAUTH_CLIENT_ID", mock.client_id().to_owned()),
        (
            "OAUTH_CLIENT_SECRET",
            mock.client_secret()
                .expect("a confidential client")
                .to_owned(),
        ),
        ("OAUTH_SCOPES", "openid profile read-repos".to_owned()),
        ("OPENID_PROVIDER_URL", mock.issuer()),
        ("SPACE_ID", "alice/hello-space".to_owned()),
        ("SPACE_HOST", format!("localhost:{port}")),
        ("SPACE_AUTHOR_NAME", "alice".to_owned()),
        ("SPACE_REPO_NAME", "hello-space".to_owned()),
        (
            "SPACE_CREATOR_USER_ID",
            "5e67bd5b1009063689407478".to_owned(),
        ),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
    ]
}

/// A mock provider with a Space's redirect rule: `https://localhost/…` (any port) only.
pub(crate) async fn space_mock() -> tower_hf_auth::mock::MockHfProvider {
    tower_hf_auth::mock::MockHfProvider::builder()
        .with_space_host("localhost")
        .start()
        .await
        .expect("mock provider starts")
}
