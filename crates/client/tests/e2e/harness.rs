//! A real rounds-server in this process: the same state, SFU and listener `serve()` builds,
//! on loopback ports, with a temporary data folder and one clinician.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rounds_client::{Api, Client, ClientConfig, VideoSource, link_code};
use rounds_proto::{CreatedVisit, RoomToken};
use rounds_server::AppState;
use rounds_server::config::{Config, Synchronous};
use rounds_server::sfu::Sfu;
use url::Url;

pub const EMAIL: &str = "amara.okafor@stmarys.example";
pub const PASSWORD: &str = "correct horse battery staple";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub struct TestServer {
    pub url: Url,
    pub api: Api,
    pub state: AppState,
    pub sfu: Sfu,
    pub http_port: u16,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Runs `rounds_server::serve` (HTTP, `/rtc`, the SFU on a loopback UDP port, ICE-TCP on
    /// the HTTP port) exactly as the binary does.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// The same, with the test's changes to the configuration (e.g. an `[oidc]` section).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind((LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::new(LOCALHOST, port);
        let mut config = Config::default();
        config.server.listen = addr;
        config.server.public_url = format!("http://{addr}");
        config.storage.data_dir = dir.path().join("data");
        config.storage.synchronous = Synchronous::Normal;
        config.limits.login_per_minute = 1000;
        config.limits.join_per_minute = 1000;
        config.limits.token_per_minute = 1000;
        config.media.udp_listen = SocketAddr::new(LOCALHOST, 0);
        configure(&mut config);
        let state = AppState::open(config).await.expect("state");
        rounds_server::visits::add_clinician(
            &state,
            "St. Mary's Clinic",
            "America/Chicago",
            EMAIL,
            "Dr. Amara Okafor",
            PASSWORD,
        )
        .await
        .expect("clinician");
        let serving = state.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = rounds_server::serve(serving).await {
                panic!("the server stopped: {e:#}");
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let sfu = loop {
            let listening = tokio::net::TcpStream::connect(addr).await.is_ok();
            if let (true, Some(sfu)) = (listening, state.rooms.sfu()) {
                break sfu.clone();
            }
            assert!(!task.is_finished(), "the server did not start");
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let url = Url::parse(&format!("http://{addr}")).expect("url");
        TestServer {
            api: Api::new(url.clone()).expect("api"),
            url,
            state,
            sfu,
            http_port: port,
            _dir: dir,
            task,
        }
    }

    pub async fn access_token(&self) -> String {
        self.api
            .login(EMAIL, PASSWORD)
            .await
            .expect("login")
            .access_token
    }

    /// A visit starting now: (the visit, the provider's token, the patient's lobby token).
    pub async fn visit(&self) -> (CreatedVisit, RoomToken, RoomToken) {
        let access = self.access_token().await;
        let visit = self
            .api
            .create_visit_now(&access, 30, "Pat Example")
            .await
            .expect("visit");
        let code = link_code(&visit.patient_link.url)
            .expect("link code")
            .to_owned();
        let patient = self
            .api
            .join_link(&code, Some("Pat Example"))
            .await
            .expect("patient token");
        let provider = self
            .api
            .provider_token(&access, &visit.visit.id)
            .await
            .expect("provider token");
        (visit, provider, patient)
    }

    /// A client config for this server: small video, distinct pattern per seed.
    pub fn config(&self, token: &RoomToken, seed: u64) -> ClientConfig {
        let mut cfg = ClientConfig::new(self.url.clone(), token.token.clone());
        cfg.video = VideoSource::TestPattern {
            width: 320,
            height: 240,
            fps: 15,
            bitrate_kbps: 250,
        };
        cfg.pattern_seed = seed;
        cfg
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The provider joins, the patient joins the lobby, the provider admits them.
pub async fn admitted_pair(
    server: &TestServer,
    provider: ClientConfig,
    patient: ClientConfig,
) -> (Client, Client) {
    let provider = Client::join(provider).await.expect("provider joins");
    let patient = Client::join(patient).await.expect("patient joins");
    admit_when_waiting(&provider, patient.participant_id()).await;
    patient
        .wait_admitted(Duration::from_secs(10))
        .await
        .expect("admitted");
    let _ = server;
    (provider, patient)
}

/// Waits until `host` sees participant `id` in the lobby, then lets them in.
pub async fn admit_when_waiting(host: &Client, id: &str) {
    host.wait_until(Duration::from_secs(10), |c| {
        c.waiting().iter().any(|p| p.id == id)
    })
    .await
    .unwrap_or_else(|e| panic!("{id} never showed as waiting: {e}"));
    host.host(id, rounds_proto::HostAction::Admit)
        .await
        .expect("admit");
}

/// A guest token for an interpreter in the room of `provider`.
pub async fn interpreter_token(server: &TestServer, provider: &RoomToken) -> RoomToken {
    server
        .api
        .guest_token(
            &provider.token,
            &provider.room,
            "Ana Interpreter",
            rounds_proto::Role::Interpreter,
        )
        .await
        .expect("guest token")
}

/// The patient of `code` checks in the way the patient pages do.
pub async fn patient_checks_in(server: &TestServer, code: &str) {
    let http = reqwest::Client::new();
    let content: rounds_proto::PatientContent = http
        .get(
            server
                .url
                .join(&format!("api/v1/join/{code}/content"))
                .expect("check-in"),
        )
        .send()
        .await
        .expect("check-in")
        .json()
        .await
        .expect("check-in");
    let token = server
        .api
        .join_link(code, Some("Pat Example"))
        .await
        .expect("check-in");
    let answers = content
        .intake
        .iter()
        .filter(|q| q.required)
        .map(|q| rounds_proto::IntakeAnswer {
            question_id: q.id.clone(),
            answer: rounds_proto::Phi::new(match q.kind {
                rounds_proto::IntakeKind::YesNo => "yes".to_owned(),
                rounds_proto::IntakeKind::Choice => q.choices[0].clone(),
                _ => "A cough".to_owned(),
            }),
        })
        .collect();
    let res = http
        .post(
            server
                .url
                .join(&format!("api/v1/rooms/{}/check-in", token.room))
                .expect("check-in"),
        )
        .bearer_auth(&token.token)
        .json(&rounds_proto::CheckInRequest {
            answers,
            consent_version: content.consent.version.clone(),
            consent_accepted: true,
            lang: "en".into(),
        })
        .send()
        .await
        .expect("check-in");
    assert_eq!(res.status(), 204, "{}", res.text().await.expect("check-in"));
}

/// The frequency of a tone in 48 kHz samples: the median of the zero-crossing frequency of
/// each 50 ms block that carries sound. A block where the receiver concealed a late or lost
/// packet (a loaded machine makes some) bends the crossings in that block only, so one bad
/// block cannot pass for a different tone, and a wrong tone still reads wrong in every block.
pub fn zero_crossing_hz(samples: &[i16]) -> f64 {
    const BLOCK: usize = 2400;
    let mut per_block: Vec<f64> = samples
        .chunks_exact(BLOCK)
        .filter(|b| b.iter().any(|&x| x.unsigned_abs() > 300))
        .filter_map(|block| {
            let ups: Vec<usize> = block
                .windows(2)
                .enumerate()
                .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
                .map(|(i, _)| i)
                .collect();
            match (ups.first(), ups.last()) {
                (Some(first), Some(last)) if ups.len() > 1 => {
                    Some((ups.len() - 1) as f64 * 48_000.0 / (last - first) as f64)
                }
                _ => None,
            }
        })
        .collect();
    if per_block.is_empty() {
        return 0.0;
    }
    per_block.sort_by(f64::total_cmp);
    per_block[per_block.len() / 2]
}
