//! What the evals' integration tests share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The default config, pointed at the LLM `backend` and at free ports (gRPC on `grpc`), written with the default
/// policy into a temporary directory named after `test`.
pub fn gateway_config(test: &str, backend: &str, grpc: u16) -> switchyard::config::Config {
    let dir = std::env::temp_dir().join(format!("switchyard-evals-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = root();
    let text = std::fs::read_to_string(root.join("deploy/config/switchyard.toml"))
        .unwrap()
        .replace("127.0.0.1:50051", &format!("127.0.0.1:{grpc}"))
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{}", free_port()))
        .replace("http://127.0.0.1:8081/v1", backend)
        .replace("\"../../classical/", &format!("\"{}/classical/", root.display()));
    std::fs::copy(root.join("deploy/config/policy.toml"), dir.join("policy.toml")).unwrap();
    std::fs::write(dir.join("switchyard.toml"), text).unwrap();
    switchyard::config::Config::load(&dir.join("switchyard.toml")).unwrap()
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real local `llama-server` (paths from `SWITCHYARD_LLAMA_SERVER` / `SWITCHYARD_LLAMA_MODEL`, which the
/// README's test command sets), healthy on a free port; killed on drop.
pub struct LlamaServer {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
}

impl LlamaServer {
    /// Starts it with `slots` parallel slots and waits until `/health` answers 200.
    pub fn start(slots: u32) -> Self {
        use std::io::{Read, Write};
        let server = std::env::var("SWITCHYARD_LLAMA_SERVER")
            .unwrap_or_else(|_| panic!("SWITCHYARD_LLAMA_SERVER must name llama-server (deploy/test.sh sets it)"));
        let model = std::env::var("SWITCHYARD_LLAMA_MODEL")
            .unwrap_or_else(|_| panic!("SWITCHYARD_LLAMA_MODEL must name the GGUF"));
        let port = free_port();
        let child = std::process::Command::new(server)
            .args(["-m", &model, "--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "-c",
                "4096",
                "-t",
                "2",
                "-np",
                &slots.to_string(),
                "--alias",
                "smollm2",
                "--log-disable",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut llama = Self { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let healthy = std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
                    let mut reply = String::new();
                    s.read_to_string(&mut reply)?;
                    Ok(reply.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if healthy {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "llama-server did not become healthy"
            );
            assert!(llama.child.try_wait().unwrap().is_none(), "llama-server exited");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        llama
    }

    /// Its OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
