//! Test harness: the real `switchyard` binary on an ephemeral port, the real local `llama-server`, and a
//! scriptable fake OpenAI-compatible server for fault injection.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prost_types::value::Kind;
use prost_types::{Struct, Value};
use switchyard_proto::v1::RouteRequest;
use switchyard_proto::v1::route_event::Event;
use switchyard_proto::v1::router_client::RouterClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free TCP port on loopback, never one this process handed out before (tests run in parallel, and a port
/// released by one `bind(0)` can come back from the next).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Separates the two files in a test config's text: the policy file, this line, the main config.
pub const POLICY_END: &str = "# ---- end of policy.toml; switchyard.toml follows ----\n";

/// A test config: the policy file (targets, rules, tenants), then [`POLICY_END`], then the main config (the
/// repository's models, `[backends.local]` at `llm_base_url`, short timeouts). One string, so tests edit either
/// file with `replace`; [`write_config`] writes them apart.
pub fn config(llm_base_url: &str, backend_timeout: &str) -> String {
    let models = repo().join("classical/models");
    format!(
        r#"schema_version = 1
default_target = "assistant"

[targets.churn]
kind = "classical"

[targets.assistant]
kind = "llm"
backend = "local"
max_tokens = 24
temperature = 0.0

[targets.retention]
kind = "hybrid"
backend = "local"
max_tokens = 24
temperature = 0.0

[targets.refuse]
kind = "reject"
message = "not here"

[[rules]]
name = "score-record"
labels = ["churn_score"]
min_confidence = 0.5
target = "churn"

[[rules]]
name = "explain-record"
groups = ["customer_record"]
target = "retention"

[tenants.ops]
allow_force_target = ["churn", "assistant", "refuse"]

# The check of hybrid explanations has its own tests (explanations.rs); elsewhere a fake's text passes through.
[explanations]
check = "off"
{POLICY_END}
[server]
listen = "127.0.0.1:1"
shutdown_grace = "5s"
request_timeout = "60s"
max_text_bytes = 32768

[models]
classifier = "{classifier}"
scorer = "{scorer}"
workers = 2
queue_capacity = 64

[policy]
file = "policy.toml"

[backends.local]
base_url = "{llm_base_url}"
model = "smollm2"
connect_timeout = "1s"
request_timeout = "{backend_timeout}"
"#,
        classifier = models.join("request-classifier/1.1.0/model.onnx").display(),
        scorer = models.join("churn-scorer/1.0.0/model.onnx").display(),
    )
}

/// `config_text` with its policy file replaced by `policy`.
pub fn with_policy(config_text: &str, policy: &str) -> String {
    let (_, main) = config_text
        .split_once(POLICY_END)
        .expect("a test config holds both files");
    let end = if policy.ends_with('\n') { "" } else { "\n" };
    format!("{policy}{end}{POLICY_END}{main}")
}

/// Writes a [`config`]-style text into `dir` as `policy.toml` and `switchyard.toml`; returns the main file.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let (policy, main) = text.split_once(POLICY_END).expect("a test config holds both files");
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, main).unwrap();
    path
}

/// A running gateway process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin HTTP address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Whether the admin port speaks TLS (`[server.tls]` without `admin = false`).
    admin_tls: bool,
    _dir: TempDir,
}

impl Gateway {
    /// Starts `switchyard serve` with `config_text` and waits until health says SERVING.
    pub async fn start(config_text: &str) -> Self {
        Self::spawn(config_text, "warn", false, &[]).await
    }

    /// Like `start`, at log level `info`, with stderr (the log) kept in a file for [`Gateway::logs`].
    pub async fn start_logging(config_text: &str) -> Self {
        Self::spawn(config_text, "info", true, &[]).await
    }

    /// Like `start_logging`, with extra environment variables.
    pub async fn start_with_env(config_text: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(config_text, "info", true, env).await
    }

    /// Like `start_logging`, exporting traces to `otlp_endpoint` (the lines of `[telemetry]` after it in
    /// `telemetry`), with the batch exporter flushing every 100 ms.
    pub async fn start_traced(config_text: &str, otlp_endpoint: &str, telemetry: &str) -> Self {
        let text = format!("{config_text}\n[telemetry]\notlp_endpoint = \"{otlp_endpoint}\"\n{telemetry}\n");
        Self::spawn(&text, "info", true, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await
    }

    /// The policy file the gateway reads.
    pub fn policy_path(&self) -> PathBuf {
        self._dir.0.join("policy.toml")
    }

    /// The main config file the gateway reads.
    pub fn config_path(&self) -> PathBuf {
        self._dir.0.join("switchyard.toml")
    }

    /// The log lines written so far (`start_logging` only).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("stderr.log")).unwrap_or_default()
    }

    /// Like `start`, with at most `descriptors` open files (util-linux `prlimit`), to drive it to `EMFILE`.
    pub async fn start_with_descriptors(config_text: &str, descriptors: u64) -> Self {
        Self::spawn_with(config_text, "warn", true, &[], Some(descriptors)).await
    }

    async fn spawn(config_text: &str, level: &str, keep_log: bool, env: &[(&str, &str)]) -> Self {
        Self::spawn_with(config_text, level, keep_log, env, None).await
    }

    async fn spawn_with(
        config_text: &str,
        level: &str,
        keep_log: bool,
        env: &[(&str, &str)],
        descriptors: Option<u64>,
    ) -> Self {
        let dir = TempDir::new();
        let path = write_config(&dir.0, config_text);
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // prlimit execs the gateway in its own process: the child's pid is the gateway's.
        let mut command = match descriptors {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg(env!("CARGO_BIN_EXE_switchyard"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_switchyard")),
        };
        let child = command
            .args([
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--listen",
                &addr.to_string(),
            ])
            .args(["--admin-listen", &admin.to_string()])
            .env("RUST_LOG", level)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(if keep_log {
                Stdio::from(std::fs::File::create(dir.0.join("stderr.log")).unwrap())
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("spawn switchyard");
        let admin_tls = config_text.contains("[server.tls]") && !config_text.contains("admin = false");
        let mut gateway = Self {
            child,
            addr,
            admin,
            admin_tls,
            _dir: dir,
        };
        gateway.wait_serving().await;
        gateway
    }

    /// GET `path` on the admin port: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.admin)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// POST `path` on the admin port (plain HTTP): (status, body).
    pub async fn admin_post(&self, path: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("http://{}{path}", self.admin))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The gRPC address, `host:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connected Router client.
    pub async fn client(&self) -> RouterClient<Channel> {
        RouterClient::connect(self.url()).await.unwrap()
    }

    /// A connected channel.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.unwrap()
    }

    /// The health status of `service`.
    pub async fn health(&self, service: &str) -> ServingStatus {
        let mut health = HealthClient::new(self.channel().await);
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap();
        ServingStatus::try_from(response.into_inner().status).unwrap()
    }

    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("switchyard exited before serving: {status}");
            }
            // The admin port's readiness: 200 once the models are loaded, the moment health turns SERVING. Over
            // TLS, the certificate is the TLS tests' to check; here only readiness is.
            let (scheme, client) = match self.admin_tls {
                true => (
                    "https",
                    reqwest::Client::builder()
                        .tls_danger_accept_invalid_certs(true)
                        .build()
                        .unwrap(),
                ),
                false => ("http", reqwest::Client::new()),
            };
            if let Ok(response) = client.get(format!("{scheme}://{}/readyz", self.admin)).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "gateway did not become SERVING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sockets the gateway process holds open (listener, client and upstream connections).
    pub fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// Descriptors of every kind the gateway process holds open.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    /// The gateway's resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kb * 1024
    }

    /// CPU time (user + system) the gateway has used so far, in seconds (at the kernel's 100 ticks a second).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces) in parentheses: utime and stime are the 12th and
        // 13th of those.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    /// Threads of the gateway process.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Sends SIGHUP (reloads the policy).
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real local `llama-server` (paths from `SWITCHYARD_LLAMA_SERVER` / `SWITCHYARD_LLAMA_MODEL`, which the
/// README's test command sets); killed on drop.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
}

impl LlamaServer {
    pub async fn start() -> Self {
        let server = std::env::var("SWITCHYARD_LLAMA_SERVER")
            .expect("SWITCHYARD_LLAMA_SERVER must name llama-server (deploy/test.sh sets it)");
        let model = std::env::var("SWITCHYARD_LLAMA_MODEL").expect("SWITCHYARD_LLAMA_MODEL must name the GGUF");
        let port = free_port();
        let child = Command::new(server)
            .args(["-m", &model, "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "2048", "-t", "2", "--alias", "smollm2", "--log-disable"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn llama-server");
        let mut llama = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://127.0.0.1:{port}/health");
        while !reqwest::get(&url)
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "llama-server did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Healthy must mean *this* server, not another process on a reused port.
        assert!(
            llama.child.try_wait().unwrap().is_none(),
            "llama-server on port {port} exited"
        );
        llama
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub mod fake_llm;
pub mod otlp;
pub use fake_llm::{FakeLlm, Fault};
pub use otlp::OtlpReceiver;

/// Sends `message` (encoded protobuf, or any bytes) as one gRPC call to `path` over a raw HTTP/2 connection,
/// with `grpc-timeout` when given, and returns the status the server answered: what a caller of any gRPC stack
/// (or none) gets, without a client library's own checks or timers in between.
pub async fn raw_call(gateway: &Gateway, path: &str, message: &[u8], timeout: Option<&str>) -> tonic::Status {
    let tcp = tokio::net::TcpStream::connect(gateway.addr()).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let mut request = http::Request::post(format!("http://{}{path}", gateway.addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    let (response, mut stream) = send.send_request(request.body(()).unwrap(), false).unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    stream.send_data(bytes::Bytes::from(frame), true).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .unwrap()
        .unwrap();
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        data.unwrap();
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    tonic::Status::from_header_map(&trailers).expect("grpc-status in the trailers")
}

/// A real Telco customer (from the test split) as a `Struct`.
pub fn telco_record() -> Struct {
    record(&[
        ("gender", s("Female")),
        ("seniorcitizen", n(0.0)),
        ("partner", s("No")),
        ("dependents", s("No")),
        ("tenure", n(2.0)),
        ("phoneservice", s("Yes")),
        ("multiplelines", s("No")),
        ("internetservice", s("Fiber optic")),
        ("onlinesecurity", s("No")),
        ("onlinebackup", s("No")),
        ("deviceprotection", s("No")),
        ("techsupport", s("No")),
        ("streamingtv", s("Yes")),
        ("streamingmovies", s("Yes")),
        ("contract", s("Month-to-month")),
        ("paperlessbilling", s("Yes")),
        ("paymentmethod", s("Electronic check")),
        ("monthlycharges", n(95.5)),
        ("totalcharges", n(190.1)),
    ])
}

/// Three real customers: `telco_record`'s, one long-staying on a two-year contract, and a new one whose
/// `totalcharges` is null (as the source data has it at tenure 0).
pub fn telco_records() -> Vec<Struct> {
    let mut long_stay = telco_record();
    long_stay.fields.insert("tenure".into(), n(70.0));
    long_stay.fields.insert("contract".into(), s("Two year"));
    long_stay.fields.insert("totalcharges".into(), n(6500.0));
    let mut new = telco_record();
    new.fields.insert("tenure".into(), n(0.0));
    new.fields.insert(
        "totalcharges".into(),
        Value {
            kind: Some(prost_types::value::Kind::NullValue(0)),
        },
    );
    vec![telco_record(), long_stay, new]
}

/// The scorer version that answers a bare `telco_record` now.
pub async fn scored_version(client: &mut RouterClient<Channel>) -> String {
    let answer = client
        .route(request("", Some(telco_record())))
        .await
        .unwrap()
        .into_inner();
    answer.prediction.unwrap().version
}

/// Starts `switchyard serve` on a [`config`]-style text that must not start; returns its stderr.
pub fn serve_fails(text: &str) -> String {
    let dir = TempDir::new();
    let path = write_config(&dir.0, text);
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the gateway started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn record(fields: &[(&str, Value)]) -> Struct {
    Struct {
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
    }
}

pub fn s(v: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(v.to_owned())),
    }
}

pub fn n(v: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(v)),
    }
}

/// Sends `RouteStream` and collects every event until the stream ends.
pub async fn stream_events(client: &mut RouterClient<Channel>, request: RouteRequest) -> Vec<Event> {
    let mut stream = client.route_stream(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        events.push(event.event.unwrap());
    }
    events
}

/// Every event of a `RouteStream` call that must fail, and the status it fails with (after the events it sent).
pub async fn stream_failure(client: &mut RouterClient<Channel>, request: RouteRequest) -> (Vec<Event>, tonic::Status) {
    let mut stream = client.route_stream(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(event)) => events.push(event.event.unwrap()),
            Ok(None) => panic!("the stream ended without an error after {events:?}"),
            Err(status) => return (events, status),
        }
    }
}

/// A request with text and an optional record.
pub fn request(text: &str, features: Option<Struct>) -> RouteRequest {
    RouteRequest {
        text: text.to_owned(),
        features,
        ..Default::default()
    }
}

/// Backend settings for quick retries, so fault tests stay fast.
pub const FAST_RETRIES: &str = "base_backoff = \"20ms\"\nmax_backoff = \"200ms\"";

/// A gateway whose backend `local` is at `llm_base_url`, with quick retries and extra backend `settings`.
pub async fn fast_gateway(llm_base_url: &str, backend_timeout: &str, settings: &str) -> Gateway {
    Gateway::start(&with_backend_settings(
        &config(llm_base_url, backend_timeout),
        &format!("{FAST_RETRIES}\n{settings}"),
    ))
    .await
}

/// `config` with extra lines for `[backends.local]` (e.g. `max_attempts = 1`).
pub fn with_backend_settings(config_text: &str, settings: &str) -> String {
    config_text.replacen("[backends.local]\n", &format!("[backends.local]\n{settings}\n"), 1)
}

/// `config` with a second backend `secondary` at `url`, as the fallback of both LLM targets.
pub fn with_secondary(config_text: &str, url: &str) -> String {
    let text = config_text.replace(
        "backend = \"local\"\n",
        "backend = \"local\"\nfallbacks = [\"secondary\"]\n",
    );
    format!(
        "{text}\n[backends.secondary]\nbase_url = \"{url}\"\nmodel = \"smollm2\"\nconnect_timeout = \"1s\"\nrequest_timeout = \"60s\"\n"
    )
}

/// The sum of every sample of `metric` in Prometheus text whose labels contain all of `labels` (`key="value"`).
pub fn sample(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let name = series.split('{').next()?;
            (name == metric && labels.iter().all(|l| series.contains(l))).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Asserts a status's code and that its message contains `needle`.
pub fn assert_status(status: &tonic::Status, code: tonic::Code, needle: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "want {needle:?} in {:?}",
        status.message()
    );
}

/// The python of a pinned test environment: `$var` when set (`deploy/test.sh` sets it), else the environment
/// made (or found in the cache) by `deploy/setup/python-env.sh` from `requirements` (a path in the repository).
pub fn python_env(var: &str, requirements: &str) -> String {
    if let Ok(python) = std::env::var(var) {
        return python;
    }
    let repo = repo();
    let out = Command::new(repo.join("deploy/setup/python-env.sh"))
        .arg(repo.join(requirements))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
