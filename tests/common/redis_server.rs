//! A real `redis-server` for a test: started on a free loopback port with a data
//! directory of its own, stopped when dropped. Its data survives a kill (append-only
//! file, fsync on every write), so a restart finds every session again.
//!
//! Missing `redis-server` fails the test at once, naming the package to install
//! (`tests/run.sh` installs it).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// A server on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra arguments (e.g. `["--maxmemory", "2mb"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("hf-auth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            dir,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the Redis tests need it; install the \
                     Debian package `redis-server` (tests/run.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn ping(&self) -> redis::RedisResult<String> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        redis::cmd("PING").query(&mut conn)
    }

    /// A plain connection, for reading what the store wrote.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        assert!(send(signal, pid), "kill {signal} {pid}");
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills the server (SIGKILL); its data stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Every key and its value (strings, hashes and sorted sets as raw bytes).
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        keys.into_iter()
            .map(|key| {
                let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
                let value: Vec<Vec<u8>> = match kind.as_str() {
                    "string" => vec![redis::cmd("GET").arg(&key).query(&mut conn).unwrap()],
                    "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn).unwrap(),
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(&mut conn)
                        .unwrap(),
                    other => panic!("unexpected key type {other} for {key}"),
                };
                (key, value.concat())
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server does not die of SIGKILL until continued on some kernels.
            send("-CONT", child.id());
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` to `pid` with the shell's `kill` builtin (`sh` is on every Debian;
/// `/bin/kill` comes with procps, which minimal images lack); whether it was delivered.
fn send(signal: &str, pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", "kill \"$0\" \"$1\"", signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
