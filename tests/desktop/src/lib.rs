//! A desktop session for tests, made of the real parts a Linux clinician's workstation has:
//! an X server (Xvfb), a D-Bus session bus, a notification daemon (dunst), the Secret
//! Service (gnome-keyring, unlocked) and a sound server (PulseAudio with a null sink and a
//! 440 Hz sine source as the microphone). Every process is stopped when the [`Desktop`]
//! is dropped.
//!
//! A missing program is a failure that names the Debian package, never a skipped test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tone PulseAudio's sine source plays as the microphone.
pub const MIC_TONE_HZ: u32 = 440;

fn need(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is missing: install the Debian package {package} (scripts/install-deps.sh does)"
    );
}

/// A running desktop session.
pub struct Desktop {
    pub dir: tempfile::TempDir,
    pub display: String,
    pub bus: String,
    pub pulse: String,
    children: Vec<(String, Child)>,
    monitor_log: PathBuf,
}

impl Desktop {
    /// Starts every part and waits until each answers.
    pub fn start() -> Desktop {
        for (program, package) in [
            ("Xvfb", "xvfb"),
            ("dbus-daemon", "dbus"),
            ("dbus-monitor", "dbus"),
            ("dunst", "dunst"),
            ("gnome-keyring-daemon", "gnome-keyring"),
            ("secret-tool", "libsecret-tools"),
            ("pulseaudio", "pulseaudio"),
            ("pactl", "pulseaudio-utils"),
            ("import", "imagemagick"),
        ] {
            need(program, package);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "runtime", "config", "data", "cache", "artifacts"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                dir.path().join("runtime"),
                std::fs::Permissions::from_mode(0o700),
            );
        }
        let mut desktop = Desktop {
            display: String::new(),
            bus: String::new(),
            pulse: String::new(),
            children: Vec::new(),
            monitor_log: dir.path().join("notify-monitor.log"),
            dir,
        };
        desktop.start_x();
        desktop.start_bus();
        desktop.start_notifications();
        desktop.start_keyring();
        desktop.start_pulse();
        desktop
    }

    /// The process id of one of the session's programs ("Xvfb", "pulseaudio" …).
    pub fn pid_of(&self, program: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(name, _)| name == program)
            .map(|(_, child)| child.id())
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// The environment every process of the session gets.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |s: &str| self.path(s).display().to_string();
        vec![
            ("DISPLAY".into(), self.display.clone()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus.clone()),
            ("HOME".into(), p("home")),
            ("XDG_RUNTIME_DIR".into(), p("runtime")),
            ("XDG_CONFIG_HOME".into(), p("config")),
            ("XDG_DATA_HOME".into(), p("data")),
            ("XDG_CACHE_HOME".into(), p("cache")),
            ("PULSE_SERVER".into(), self.pulse.clone()),
            ("NO_AT_BRIDGE".into(), "1".into()),
            // WebKitGTK under Xvfb without a GPU.
            ("WEBKIT_DISABLE_COMPOSITING_MODE".into(), "1".into()),
            ("LIBGL_ALWAYS_SOFTWARE".into(), "1".into()),
        ]
    }

    /// A command with the session's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            c.env("PATH", path);
        }
        c.envs(self.env());
        c
    }

    fn keep(&mut self, name: &str, child: Child) {
        self.children.push((name.to_owned(), child));
    }

    fn start_x(&mut self) {
        // -displayfd picks a free display and tells us which.
        let mut x = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(x.stdout.take().expect("Xvfb stdout"))
            .read_line(&mut line)
            .expect("Xvfb display number");
        self.display = format!(":{}", line.trim());
        self.keep("Xvfb", x);
    }

    fn start_bus(&mut self) {
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().expect("dbus stdout"))
            .read_line(&mut line)
            .expect("dbus address");
        self.bus = line.trim().to_owned();
        self.keep("dbus-daemon", bus);
    }

    fn start_notifications(&mut self) {
        let log = std::fs::File::create(&self.monitor_log).expect("monitor log");
        let monitor = self
            .command("dbus-monitor")
            .arg("interface='org.freedesktop.Notifications',member='Notify'")
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-monitor");
        self.keep("dbus-monitor", monitor);
        let dunst = self
            .command("dunst")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dunst");
        self.keep("dunst", dunst);
        self.wait_for_name("org.freedesktop.Notifications");
    }

    fn start_keyring(&mut self) {
        let mut keyring = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = keyring.stdin.take().expect("keyring stdin");
            stdin
                .write_all(b"rounds-test-keyring")
                .expect("unlock the keyring");
        }
        self.keep("gnome-keyring-daemon", keyring);
        self.wait_for_name("org.freedesktop.secrets");
    }

    fn start_pulse(&mut self) {
        let socket = self.path("runtime").join("pulse.sock");
        let pulse = self
            .command("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--system=no",
                "-L",
                &format!(
                    "module-native-protocol-unix auth-anonymous=1 socket={}",
                    socket.display()
                ),
                "-L",
                "module-null-sink sink_name=rounds_speaker",
                "-L",
                &format!("module-sine-source source_name=rounds_mic frequency={MIC_TONE_HZ}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pulseaudio");
        self.pulse = format!("unix:{}", socket.display());
        self.keep("pulseaudio", pulse);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = self
                .command("pactl")
                .args(["set-default-source", "rounds_mic"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "PulseAudio did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self
            .command("pactl")
            .args(["set-default-sink", "rounds_speaker"])
            .status();
    }

    fn wait_for_name(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    &format!("string:{name}"),
                ])
                .output();
            if let Ok(out) = out
                && String::from_utf8_lossy(&out.stdout).contains("boolean true")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not appear on the session bus"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every `Notify` call seen on the bus so far, as dbus-monitor printed them.
    pub fn notifications(&self) -> String {
        std::fs::read_to_string(&self.monitor_log).unwrap_or_default()
    }

    /// Waits until a `Notify` call contains every one of `needles`.
    pub fn wait_notification(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.notifications();
            for call in log.split("method call") {
                if needles.iter().all(|n| call.contains(n)) {
                    return call.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no notification with {needles:?}; the bus saw:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The secret-tool lookup of a keychain entry, if it exists.
    pub fn secret(&self, attributes: &[(&str, &str)]) -> Option<String> {
        let mut c = self.command("secret-tool");
        c.arg("lookup");
        for (k, v) in attributes {
            c.args([k, v]);
        }
        let out = c.output().expect("secret-tool");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// A screenshot of the whole screen, saved under `dir` as `name`.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("artifacts dir");
        let path = dir.join(name);
        let ok = self
            .command("import")
            .args(["-window", "root"])
            .arg(&path)
            .status()
            .expect("import")
            .success();
        assert!(ok, "screenshot failed");
        path
    }

    /// How many distinct colours a picture has: a blank or black window has one or two.
    pub fn colours(&self, picture: &Path) -> usize {
        let out = self
            .command("identify")
            .args(["-format", "%k"])
            .arg(picture)
            .output()
            .expect("identify");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The process `root` and every process under it (WebKit's web and network processes).
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    && let Some(rest) = stat.rsplit(") ").next()
                    && rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.parse::<u32>().ok())
                        == Some(parent)
                    && !all.contains(&pid)
                {
                    all.push(pid);
                }
            }
        }
        i += 1;
    }
    all
}

/// The program names (`comm`, at most 15 characters) of the tree under `root`.
pub fn process_names(root: u32) -> Vec<String> {
    process_tree(root)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// (RSS in KiB, CPU ticks) summed over the tree under `root`.
pub fn tree_usage(root: u32) -> (u64, u64) {
    usage(&process_tree(root))
}

/// (RSS in KiB, CPU ticks) summed over `pids` (those still running).
pub fn usage(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut ticks = 0;
    for &pid in pids {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(rest) = stat.rsplit(") ").next()
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
            ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    (rss, ticks)
}

impl Desktop {
    /// Asks every window titled `title` to close, as a window manager's close button does
    /// (a `WM_DELETE_WINDOW` message; Xvfb has no window manager to send it). Returns how
    /// many windows were asked.
    pub fn close_window(&self, title: &str) -> usize {
        use xcb::{Xid, x};
        let (conn, screen) =
            xcb::Connection::connect(Some(&self.display)).expect("connect to the X server");
        let root = conn
            .get_setup()
            .roots()
            .nth(screen as usize)
            .expect("an X screen")
            .root();
        let atom = |name: &[u8]| {
            conn.wait_for_reply(conn.send_request(&x::InternAtom {
                only_if_exists: false,
                name,
            }))
            .expect("intern an atom")
            .atom()
        };
        let (protocols, delete, utf8, net_name) = (
            atom(b"WM_PROTOCOLS"),
            atom(b"WM_DELETE_WINDOW"),
            atom(b"UTF8_STRING"),
            atom(b"_NET_WM_NAME"),
        );
        let name_of = |w: x::Window| -> String {
            for (property, r#type) in [(net_name, utf8), (x::ATOM_WM_NAME, x::ATOM_STRING)] {
                if let Ok(reply) = conn.wait_for_reply(conn.send_request(&x::GetProperty {
                    delete: false,
                    window: w,
                    property,
                    r#type,
                    long_offset: 0,
                    long_length: 256,
                })) && !reply.value::<u8>().is_empty()
                {
                    return String::from_utf8_lossy(reply.value::<u8>()).into_owned();
                }
            }
            String::new()
        };
        let mut windows = vec![root];
        let mut asked = 0;
        while let Some(w) = windows.pop() {
            if let Ok(tree) = conn.wait_for_reply(conn.send_request(&x::QueryTree { window: w })) {
                windows.extend(tree.children().iter().copied());
            }
            if w.resource_id() == root.resource_id() || name_of(w) != title {
                continue;
            }
            let event = x::ClientMessageEvent::new(
                w,
                protocols,
                x::ClientMessageData::Data32([delete.resource_id(), x::CURRENT_TIME, 0, 0, 0]),
            );
            conn.send_request(&x::SendEvent {
                propagate: false,
                destination: x::SendEventDest::Window(w),
                event_mask: x::EventMask::NO_EVENT,
                event: &event,
            });
            asked += 1;
        }
        conn.flush().expect("flush the X connection");
        asked
    }

    /// Clicks the newest notification, as a person clicking it would: dunst invokes its
    /// default action, which reaches the app as the D-Bus `ActionInvoked` signal.
    pub fn click_notification(&self) {
        need("dunstctl", "dunst");
        let ok = self
            .command("dunstctl")
            .args(["action", "0"])
            .status()
            .expect("dunstctl")
            .success();
        assert!(ok, "dunstctl could not invoke the notification's action");
    }
}

/// Starts the release app in `desktop` with `args`, IT's policy file `desktop.path("policy.toml")`
/// (empty unless the caller wrote one) and its log (stderr) in `log`, or nowhere.
pub fn launch_app(desktop: &Desktop, args: &[&str], log: Option<&Path>) -> Child {
    let policy = desktop.path("policy.toml");
    if !policy.exists() {
        std::fs::write(&policy, "").expect("policy");
    }
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("app log")),
        None => Stdio::null(),
    };
    desktop
        .command(app_binary())
        .args(args)
        .env("ROUNDS_POLICY", &policy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start rounds-desktop")
}

/// A real rounds-server with one clinician, in this process, for the benchmarks.
pub struct BenchServer {
    pub url: url::Url,
    pub api: rounds_client::Api,
    pub email: &'static str,
    pub password: &'static str,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    pub async fn start() -> BenchServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut config = rounds_server::config::Config::default();
        config.server.listen = ([127, 0, 0, 1], port).into();
        config.server.public_url = format!("http://127.0.0.1:{port}");
        config.storage.data_dir = dir.path().join("data");
        config.media.udp_listen = ([127, 0, 0, 1], 0).into();
        let state = rounds_server::AppState::open(config)
            .await
            .expect("server state");
        let (email, password) = ("bench@bench.example", "desktop benchmark password");
        rounds_server::visits::add_clinician(
            &state,
            "Bench Clinic",
            "UTC",
            email,
            "Dr. Bench",
            password,
        )
        .await
        .expect("clinician");
        tokio::spawn(async move { rounds_server::serve(state).await });
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url");
        let api = rounds_client::Api::new(url.clone()).expect("api");
        let server = BenchServer {
            url,
            api,
            email,
            password,
            _dir: dir,
        };
        // Ready once it answers.
        let _ = server.access_token().await;
        server
    }

    pub async fn access_token(&self) -> String {
        loop {
            match self.api.login(self.email, self.password).await {
                Ok(s) => return s.access_token,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A one-time `rounds://signin` link for the clinician.
    pub async fn sign_in_link(&self) -> String {
        let access = self.access_token().await;
        let ticket: rounds_proto::SignInTicket = reqwest::Client::new()
            .post(self.url.join("api/v1/auth/tickets").expect("url"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("ticket")
            .json()
            .await
            .expect("ticket body");
        let mut link = url::Url::parse("rounds://signin").expect("link");
        link.query_pairs_mut()
            .append_pair("server", self.url.as_str())
            .append_pair("ticket", &ticket.ticket);
        link.to_string()
    }

    /// Signs the app in once from a link, waits until the keychain holds the session, and
    /// quits it: the next start signs back in from the keychain, as a workstation's does.
    pub async fn sign_in_app(&self, desktop: &Desktop) {
        let link = self.sign_in_link().await;
        let mut first = launch_app(desktop, &[&link], None);
        let account = format!("refresh-token@{}", self.url.as_str().trim_end_matches('/'));
        let deadline = Instant::now() + Duration::from_secs(90);
        while desktop
            .secret(&[("service", "rounds-desktop"), ("username", &account)])
            .is_none()
        {
            assert!(Instant::now() < deadline, "the app did not sign in");
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = first.kill();
        let _ = first.wait();
    }
}

/// Where the desktop app's release binary is (`ROUNDS_DESKTOP_BIN` overrides it, to try a
/// debug build while working on the app).
pub fn app_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ROUNDS_DESKTOP_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let bin = target.join("release").join("rounds-desktop");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --release -p rounds-desktop` (scripts/test.sh does)",
        bin.display()
    );
    bin
}
