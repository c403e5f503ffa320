//! The native pipeline against real parts: a PulseAudio daemon of our own (user mode, in a
//! temporary folder, with a null sink and a 440 Hz sine source) behind cpal's ALSA host, and
//! the WebRTC audio processing module.
//!
//! ALSA reads its configuration once per process, and only the environment tells it (through
//! the pulse plugin) where our daemon is. So each device test starts the daemon, then runs
//! its body in a fresh copy of this test binary with `PULSE_SERVER` set. Nothing is skipped:
//! without pulseaudio or the ALSA pulse plugin the tests fail and say what to install.
//!
//! Run: `cargo nextest run -p rounds-media --features native --test native`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rounds_media::native::{
    AudioProcessor, AudioProcessorConfig, CaptureBackend, DeviceChange, DeviceKind, DeviceWatcher,
    MicCapture, SpeakerOutput, list_devices,
};
use rounds_media::{FRAME_SAMPLES_20MS, Tone};

/// Set in the child process that runs a test body against the daemon.
const CHILD_ENV: &str = "ROUNDS_MEDIA_PULSE_CHILD";

/// Set in a child whose `PULSE_SERVER` socket it opens and closes itself: the daemon's own
/// socket, for `pactl`.
const CONTROL_ENV: &str = "ROUNDS_MEDIA_PULSE_CONTROL";

const INSTALL_HINT: &str = "install them with: apt-get install pulseaudio pulseaudio-utils libasound2-plugins \
     (scripts/install-deps.sh lists them)";

/// A PulseAudio daemon in user mode, private to one test.
struct Pulse {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Pulse {
    fn start() -> Pulse {
        for tool in ["pulseaudio", "pactl"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(found, "`{tool}` is not installed; {INSTALL_HINT}");
        }
        let plugin_dirs = [
            "/usr/lib/x86_64-linux-gnu/alsa-lib",
            "/usr/lib/aarch64-linux-gnu/alsa-lib",
            "/usr/lib/alsa-lib",
            "/usr/lib64/alsa-lib",
        ];
        assert!(
            plugin_dirs
                .iter()
                .any(|d| Path::new(d).join("libasound_module_pcm_pulse.so").exists()),
            "the ALSA pulse plugin (libasound_module_pcm_pulse.so) is missing; {INSTALL_HINT}"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        let socket = dir.path().join("native");
        let log = std::fs::File::create(dir.path().join("pulse.log")).expect("log file");
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--system=no",
                "--log-target=stderr",
                "-L",
                &format!(
                    "module-native-protocol-unix auth-anonymous=1 socket={}",
                    socket.display()
                ),
                "-L",
                "module-null-sink sink_name=rounds_null",
                "-L",
                "module-sine-source source_name=rounds_sine frequency=440",
                "-L",
                "module-always-sink",
            ])
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            // Where a desktop session has it: the daemon writes its cookie there, and
            // clients of its own protocol (cpal's PulseAudio host) read it from there.
            .env("XDG_CONFIG_HOME", dir.path().join(".config"))
            .env_remove("PULSE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("pulseaudio does not start ({e}); {INSTALL_HINT}"));
        let mut pulse = Pulse { child, dir, socket };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if pulse.socket.exists() && pulse.pactl(&["info"]).is_ok() {
                break;
            }
            if let Ok(Some(status)) = pulse.child.try_wait() {
                panic!("pulseaudio exited with {status}:\n{}", pulse.log());
            }
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not come up in 15 s:\n{}",
                pulse.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    fn server(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pulse.log")).unwrap_or_default()
    }

    fn pactl(&self, args: &[&str]) -> Result<String, String> {
        pactl_at(&self.server(), args)
    }

    /// Runs test `name` of this binary in a child process pointed at this daemon.
    fn run_child(&self, name: &str) {
        self.run_child_with(name, &[]);
    }

    /// Like [`Pulse::run_child`], with more (or other) environment variables.
    fn run_child_with(&self, name: &str, env: &[(&str, String)]) {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env("PULSE_SERVER", self.server())
            .env("HOME", self.dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run the child test");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the device test failed:\n{stdout}\n{stderr}\n--- pulseaudio log ---\n{}",
            self.log()
        );
        print!("{stdout}");
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pactl` against the daemon at `server` ("unix:/path"): its output, or its error message.
fn pactl_at(server: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", server)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Goertzel power at `freq`, as a share of the signal's total power (1.0 = a pure tone).
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / 48_000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * power / (samples.len() as f64 * energy)
}

/// Frequency from upward zero crossings.
fn zero_crossing_hz(samples: &[i16]) -> f64 {
    let ups: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, _)| i)
        .collect();
    let (Some(first), Some(last)) = (ups.first(), ups.last()) else {
        return 0.0;
    };
    if ups.len() < 2 {
        return 0.0;
    }
    (ups.len() - 1) as f64 * 48_000.0 / (last - first) as f64
}

fn rms_dbfs(samples: &[i16]) -> f64 {
    let mean = samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
    10.0 * (mean.sqrt() / 32768.0).powi(2).log10()
}

/// `frames` consecutive 20 ms frames with nothing dropped in between.
///
/// The capture queue drops the oldest frames when more arrive than it holds, on purpose
/// (live audio wants the newest). A sound server may deliver in bursts: PulseAudio holds a
/// new stream for a moment, and `module-sine-source` always hands over 2 s at once. So read
/// until a run of `frames` frames arrived with no drop between them.
fn contiguous_capture(mic: &MicCapture, frames: usize) -> Vec<i16> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut run: Vec<i16> = Vec::new();
    let mut dropped = mic.frames().dropped();
    while run.len() < frames * FRAME_SAMPLES_20MS {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {frames} consecutive frames in 20 s");
        let frame = mic.frames().recv_timeout(left).expect("a microphone frame");
        assert_eq!(frame.len(), FRAME_SAMPLES_20MS, "20 ms frames");
        let now_dropped = mic.frames().dropped();
        if now_dropped != dropped {
            // Frames before this one were dropped: start a new run here.
            run.clear();
            dropped = now_dropped;
        }
        run.extend(frame);
    }
    run
}

/// Reads `mic` until a frame louder than -30 dBFS arrives (what is played has reached it),
/// for at most 10 s.
fn wait_for_sound(mic: &MicCapture, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frame = mic
            .frames()
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no frame from {what}: {e:?}"));
        if rms_dbfs(&frame) > -30.0 {
            return;
        }
        assert!(Instant::now() < deadline, "the tone never reached {what}");
    }
}

#[test]
fn microphone_captures_the_sine_source() {
    if !in_child() {
        let pulse = Pulse::start();
        pulse
            .pactl(&["set-default-source", "rounds_sine"])
            .expect("default source");
        pulse.run_child("microphone_captures_the_sine_source");
        return;
    }
    let mics = list_devices(DeviceKind::Microphone).expect("microphones");
    assert!(
        mics.iter().any(|d| d.id == "alsa:default"),
        "the sound server's default PCM is listed: {mics:?}"
    );
    assert!(mics.iter().all(|d| !d.synthetic));
    let mic = MicCapture::open(None).expect("open the default microphone");
    let (rate, channels) = mic.device_format();
    println!(
        "microphone {} at {rate} Hz x {channels}, {:?}",
        mic.device().id,
        mic.backend()
    );
    assert_eq!(
        mic.backend(),
        CaptureBackend::AlsaDirect,
        "an ALSA microphone is read straight from ALSA, not through cpal's stream"
    );
    let samples = contiguous_capture(&mic, 25);
    let hz = zero_crossing_hz(&samples);
    let share = tone_share(&samples, 440.0);
    let level = rms_dbfs(&samples);
    println!("captured {hz:.1} Hz, {share:.3} of the power at 440 Hz, {level:.1} dBFS");
    assert!((hz - 440.0).abs() < 3.0, "frequency {hz}");
    assert!(share > 0.95, "440 Hz share {share}");
    // module-sine-source plays at half of full scale: -9 dBFS RMS.
    assert!((-12.0..=-6.0).contains(&level), "level {level} dBFS");
}

#[test]
fn speaker_output_is_captured_back_from_the_null_sink_monitor() {
    if !in_child() {
        let pulse = Pulse::start();
        pulse
            .pactl(&["set-default-sink", "rounds_null"])
            .expect("default sink");
        pulse
            .pactl(&["set-default-source", "rounds_null.monitor"])
            .expect("default source");
        pulse.run_child("speaker_output_is_captured_back_from_the_null_sink_monitor");
        return;
    }
    let speaker = SpeakerOutput::open(None).expect("open the default speaker");
    let mic = MicCapture::open(None).expect("open the monitor");
    assert_eq!(
        mic.backend(),
        CaptureBackend::AlsaDirect,
        "an ALSA microphone is read straight from ALSA, not through cpal's stream"
    );
    // Two remote people: a 1 kHz tone at -12 dBFS and silence, pushed in real time.
    let feeder = std::thread::spawn(move || {
        let mut tone = Tone::with_dbfs(1000.0, -12.0);
        let start = Instant::now();
        for i in 0..300u32 {
            speaker.push("alice", &tone.next_20ms());
            speaker.push("bob", &[0; FRAME_SAMPLES_20MS]);
            let next = start + Duration::from_millis(20) * (i + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        speaker.stats()
    });
    // Find where the tone starts, then analyse 0.8 s of it.
    wait_for_sound(&mic, "the monitor");
    let samples = contiguous_capture(&mic, 40);
    let stats = feeder.join().expect("feeder");
    let hz = zero_crossing_hz(&samples);
    let share = tone_share(&samples, 1000.0);
    let level = rms_dbfs(&samples);
    println!("monitor {hz:.1} Hz, share {share:.3}, {level:.1} dBFS; speaker {stats:?}");
    // Under a loaded machine PulseAudio delivers in bursts and a block can go missing inside
    // the stretch; each such phase jump smears a little energy off 1 kHz. A wrong or absent
    // tone would still be far outside these bounds (share near 0).
    assert!((hz - 1000.0).abs() < 30.0, "frequency {hz}");
    assert!(share > 0.8, "1 kHz share {share}");
    // A -12 dBFS sine has an RMS of -15 dBFS relative to full-scale square.
    assert!((-18.0..=-12.0).contains(&level), "level {level} dBFS");
    assert_eq!(stats.sources, 2, "two people mixed");
}

/// The sound server's own devices, chosen by id rather than by being its default: a second
/// source (a 300 Hz "headset microphone") and a second sink (a "headset"), while the defaults
/// stay the 440 Hz sine and the first null sink. ALSA's list never has them (its `default`
/// PCM is whatever the server's default is); the server's own protocol lists them, the
/// microphone is read through the server's ALSA plugin by name, the speaker plays through
/// the server's protocol.
#[test]
fn sound_server_devices_are_listed_and_open_by_id() {
    if !in_child() {
        let pulse = Pulse::start();
        for args in [
            vec!["set-default-source", "rounds_sine"],
            vec!["set-default-sink", "rounds_null"],
            vec![
                "load-module",
                "module-sine-source",
                "source_name=rounds_headset_mic",
                "frequency=300",
            ],
            vec![
                "load-module",
                "module-null-sink",
                "sink_name=rounds_headset",
            ],
        ] {
            pulse.pactl(&args).expect("pactl");
        }
        pulse.run_child("sound_server_devices_are_listed_and_open_by_id");
        return;
    }
    let mics = list_devices(DeviceKind::Microphone).expect("microphones");
    let speakers = list_devices(DeviceKind::Speaker).expect("speakers");
    println!("microphones {mics:?}\nspeakers {speakers:?}");
    let headset_mic = mics
        .iter()
        .find(|d| d.id == "pulseaudio:rounds_headset_mic")
        .unwrap_or_else(|| panic!("the server's second source is a microphone: {mics:?}"));
    assert_eq!(
        headset_mic.name, "Sine source at 300 Hz",
        "its description names it"
    );
    assert!(
        mics.iter().any(|d| d.id == "alsa:default"),
        "the system default stays listed: {mics:?}"
    );
    assert!(
        speakers.iter().any(|d| d.id == "pulseaudio:rounds_headset"),
        "the server's second sink is a speaker: {speakers:?}"
    );
    assert!(
        !speakers
            .iter()
            .any(|d| d.id.ends_with("rounds_headset_mic")),
        "a source is not a speaker: {speakers:?}"
    );

    // The chosen microphone, not the default one (440 Hz).
    let mic = MicCapture::open(Some("pulseaudio:rounds_headset_mic")).expect("open the headset");
    assert_eq!(mic.device().id, "pulseaudio:rounds_headset_mic");
    assert_eq!(
        mic.backend(),
        CaptureBackend::AlsaDirect,
        "a sound server's source is read through its ALSA plugin by this crate's reader"
    );
    let samples = contiguous_capture(&mic, 25);
    let hz = zero_crossing_hz(&samples);
    let share = tone_share(&samples, 300.0);
    println!("headset microphone: {hz:.1} Hz, {share:.3} of the power at 300 Hz");
    assert!((hz - 300.0).abs() < 3.0, "frequency {hz}");
    assert!(share > 0.95, "300 Hz share {share}");
    drop(mic);

    // The chosen speaker: what it plays comes out of that sink's monitor, not the default's.
    let speaker = SpeakerOutput::open(Some("pulseaudio:rounds_headset")).expect("open the headset");
    assert_eq!(speaker.device().id, "pulseaudio:rounds_headset");
    let headset = MicCapture::open(Some("pulseaudio:rounds_headset.monitor")).expect("its monitor");
    let default_sink =
        MicCapture::open(Some("pulseaudio:rounds_null.monitor")).expect("the default's");
    let feeder = std::thread::spawn(move || {
        let mut tone = Tone::with_dbfs(1000.0, -12.0);
        let start = Instant::now();
        for i in 0..250u32 {
            speaker.push("alice", &tone.next_20ms());
            let next = start + Duration::from_millis(20) * (i + 1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    wait_for_sound(&headset, "the chosen sink's monitor");
    let samples = contiguous_capture(&headset, 25);
    let share = tone_share(&samples, 1000.0);
    let level = rms_dbfs(&samples);
    println!("headset sink: {share:.3} of the power at 1 kHz, {level:.1} dBFS");
    assert!(share > 0.8, "1 kHz share {share}");
    let elsewhere: Vec<i16> = std::iter::from_fn(|| default_sink.frames().try_recv())
        .flatten()
        .collect();
    assert!(
        !elsewhere.is_empty(),
        "the default sink's monitor delivered"
    );
    let level = rms_dbfs(&elsewhere);
    println!("default sink meanwhile: {level:.1} dBFS");
    assert!(
        level < -60.0,
        "the default sink stayed silent: {level} dBFS"
    );
    feeder.join().expect("feeder");
}

/// The device watcher lists the sound server's devices every two seconds for as long as the
/// app runs. The server's client library keeps an I/O thread per connection that only ends
/// when the server hangs up, so listing must reuse one connection: a hundred looks leave the
/// process with the threads and descriptors it had after the first.
#[test]
fn listing_again_and_again_keeps_one_sound_server_connection() {
    if !in_child() {
        let pulse = Pulse::start();
        pulse.run_child("listing_again_and_again_keeps_one_sound_server_connection");
        return;
    }
    let count = |dir: &str| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let look = || {
        let mics = list_devices(DeviceKind::Microphone).expect("microphones");
        assert!(
            mics.iter().any(|d| d.id == "pulseaudio:rounds_sine"),
            "the server's source is listed: {mics:?}"
        );
        list_devices(DeviceKind::Speaker).expect("speakers");
    };
    look();
    let (threads, fds) = (count("/proc/self/task"), count("/proc/self/fd"));
    for _ in 0..100 {
        look();
    }
    // Let anything that was going to end, end.
    std::thread::sleep(Duration::from_millis(300));
    let (threads_after, fds_after) = (count("/proc/self/task"), count("/proc/self/fd"));
    println!("threads {threads} -> {threads_after}, descriptors {fds} -> {fds_after}");
    assert!(
        threads_after <= threads,
        "threads grew: {threads} -> {threads_after}"
    );
    assert!(fds_after <= fds, "descriptors grew: {fds} -> {fds_after}");
}

/// The microphone and speaker ids the watcher has reported so far, from a baseline.
type Present = HashMap<DeviceKind, BTreeSet<String>>;

fn present_now() -> Present {
    [DeviceKind::Microphone, DeviceKind::Speaker]
        .into_iter()
        .map(|kind| {
            let ids = list_devices(kind)
                .unwrap_or_else(|e| panic!("{kind:?} list: {e}"))
                .into_iter()
                .map(|d| d.id)
                .collect();
            (kind, ids)
        })
        .collect()
}

/// Applies what the watcher reports until `done` holds for the devices it has reported, for
/// at most 15 s.
fn watch_until(
    changes: &mut tokio::sync::mpsc::UnboundedReceiver<DeviceChange>,
    present: &mut Present,
    what: &str,
    done: impl Fn(&Present) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(present) {
        match changes.try_recv() {
            Ok(change) => {
                println!("{change:?}");
                let ids = present.entry(change.kind).or_default();
                for d in &change.removed {
                    ids.remove(&d.id);
                }
                ids.extend(change.added.iter().map(|d| d.id.clone()));
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "the watcher did not report {what} in 15 s; it reported {present:?}, \
                     the lists are now {:?}",
                    present_now()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the watcher's channel closed: {e}"),
        }
    }
}

fn wait_for_looks(watcher: &DeviceWatcher, looks: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while watcher.looks() < looks {
        assert!(
            Instant::now() < deadline,
            "the watcher did not look at the devices {looks} times in 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Hot-plug under a sound server. ALSA's list (cpal lists its configured PCMs and the
/// kernel's sound cards without opening them) does not change when PulseAudio gains a sink or
/// a source: ALSA reaches them all through the `default` and `pulse` PCMs (`arecord -L`
/// agrees). The server's own list does, and it is part of [`list_devices`]: a headset's sink
/// and source loaded and unloaded must be reported added and removed. Then ALSA's
/// configuration defines `default` as the sound server only while the server answers, and
/// is read again at each look; so the daemon here takes clients on a socket of its own that
/// the test closes and opens again (`pactl unload-module`, `load-module`), as when PulseAudio
/// exits and comes back, and `alsa:default` must be reported gone and back. (`pulse` is
/// configured unconditionally and stays.)
#[test]
fn device_watcher_sees_the_sound_server_leave_and_come_back() {
    if !in_child() {
        let pulse = Pulse::start();
        let clients = pulse.dir.path().join("clients");
        pulse.run_child_with(
            "device_watcher_sees_the_sound_server_leave_and_come_back",
            &[
                ("PULSE_SERVER", format!("unix:{}", clients.display())),
                (CONTROL_ENV, pulse.server()),
            ],
        );
        return;
    }
    let control = std::env::var(CONTROL_ENV).expect("the daemon's control socket");
    let pactl = |args: &[&str]| -> String {
        pactl_at(&control, args)
            .unwrap_or_else(|e| panic!("pactl {args:?}: {e}"))
            .trim()
            .to_owned()
    };
    let clients = std::env::var("PULSE_SERVER").expect("the clients' socket");
    let socket = format!(
        "socket={}",
        clients.strip_prefix("unix:").expect("a unix socket")
    );
    let open_clients = || {
        pactl(&[
            "load-module",
            "module-native-protocol-unix",
            "auth-anonymous=1",
            &socket,
        ])
    };
    // ALSA reads its configuration, and whether PulseAudio runs, on first use: after this.
    let clients_module = open_clients();

    // The sound server's PCM, where cpal's default microphone and speaker are.
    let server_pcm = "alsa:default";
    let audio = [DeviceKind::Microphone, DeviceKind::Speaker];
    let listed = |present: &Present| {
        audio.iter().all(|kind| {
            present
                .get(kind)
                .is_some_and(|ids| ids.contains(server_pcm))
        })
    };
    let gone = |present: &Present| {
        audio.iter().all(|kind| {
            present
                .get(kind)
                .is_none_or(|ids| !ids.contains(server_pcm))
        })
    };
    let mut present = present_now();
    println!("listed: {present:?}");
    assert!(
        listed(&present),
        "the server's PCM is a microphone and a speaker: {present:?}"
    );
    let (watcher, mut changes) =
        DeviceWatcher::spawn(Duration::from_millis(200)).expect("the device watcher");
    wait_for_looks(&watcher, 1);

    // A headset's sink and source, of PulseAudio's own: listed by the server, not by ALSA.
    let (headset, headset_mic) = ("pulseaudio:rounds_headset", "pulseaudio:rounds_headset_mic");
    let has = |kind: DeviceKind, id: &'static str| {
        move |present: &Present| present.get(&kind).is_some_and(|ids| ids.contains(id))
    };
    assert!(!has(DeviceKind::Speaker, headset)(&present), "{present:?}");
    let sink = pactl(&[
        "load-module",
        "module-null-sink",
        "sink_name=rounds_headset",
    ]);
    let source = pactl(&[
        "load-module",
        "module-sine-source",
        "source_name=rounds_headset_mic",
        "frequency=300",
    ]);
    watch_until(&mut changes, &mut present, "the headset plugged in", |p| {
        has(DeviceKind::Speaker, headset)(p) && has(DeviceKind::Microphone, headset_mic)(p)
    });
    pactl(&["unload-module", &sink]);
    pactl(&["unload-module", &source]);
    watch_until(&mut changes, &mut present, "the headset unplugged", |p| {
        !has(DeviceKind::Speaker, headset)(p) && !has(DeviceKind::Microphone, headset_mic)(p)
    });

    pactl(&["unload-module", &clients_module]);
    watch_until(
        &mut changes,
        &mut present,
        "alsa:default gone once the server stopped answering",
        gone,
    );
    open_clients();
    watch_until(
        &mut changes,
        &mut present,
        "alsa:default back once the server answered again",
        listed,
    );
    drop(watcher);
}

/// Speech-like near-end noise: white noise through a simple band-pass, switched on and off
/// every half second with a syllable-rate (4 Hz) envelope.
struct Talker {
    seed: u64,
    lp: f64,
    hp: f64,
    n: u64,
}

impl Talker {
    fn next(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let white = (self.seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        self.lp += 0.25 * (white - self.lp);
        self.hp = 0.97 * self.hp + self.lp;
        let band = self.lp - self.hp * 0.03;
        let t = self.n as f64 / 48_000.0;
        self.n += 1;
        let envelope = (std::f64::consts::TAU * 4.0 * t).sin().abs();
        band * envelope
    }

    fn talking(sample: u64) -> bool {
        (sample / 24_000) % 2 == 1
    }
}

#[test]
fn echo_canceller_removes_the_far_end_tone() {
    let mut near_proc = AudioProcessor::new(AudioProcessorConfig {
        echo_cancellation: true,
        noise_suppression: false,
        gain_control: false,
        high_pass_filter: true,
    })
    .expect("audio processing module");
    // The speaker side gets a clone: both share one echo model.
    let mut far_proc = near_proc.clone();
    let mut far = Tone::with_dbfs(700.0, -10.0);
    let mut talker = Talker {
        seed: 0x9e37_79b9_7f4a_7c15,
        lp: 0.0,
        hp: 0.0,
        n: 0,
    };
    // The echo comes back 30 ms later at half the amplitude.
    let delay = 48 * 30;
    let mut played: Vec<i16> = vec![0; delay];
    let (mut echo_in, mut echo_out, mut talk_in, mut talk_out) = (0.0, 0.0, 0.0, 0.0);
    let seconds = 12;
    for frame in 0..seconds * 50 {
        let far_frame = far.next_20ms();
        far_proc.process_render(&far_frame).expect("render");
        played.extend(&far_frame);
        let start = frame * FRAME_SAMPLES_20MS;
        let mut near: Vec<i16> = (0..FRAME_SAMPLES_20MS)
            .map(|i| {
                let echo = f64::from(played[start + i]) * 0.5;
                let speech = if Talker::talking((start + i) as u64) {
                    talker.next() * 6000.0
                } else {
                    talker.next() * 0.0
                };
                (echo + speech).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        let before = near.clone();
        near_proc.process_capture(&mut near).expect("capture");
        // Judge after 4 s of convergence.
        if frame >= 4 * 50 {
            let energy = |s: &[i16]| s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
            if Talker::talking(start as u64) {
                talk_in += energy(&before);
                talk_out += energy(&near);
            } else {
                echo_in += energy(&before);
                echo_out += energy(&near);
            }
        }
    }
    let echo_reduction = 10.0 * (echo_in / echo_out.max(1.0)).log10();
    let talk_kept = 10.0 * (talk_out.max(1.0) / talk_in).log10();
    println!(
        "echo reduced by {echo_reduction:.1} dB; near-end speech kept at {talk_kept:.1} dB; {:?}",
        near_proc.stats()
    );
    assert!(
        echo_reduction > 20.0,
        "the echo is only {echo_reduction:.1} dB quieter"
    );
    assert!(
        talk_kept > -20.0,
        "near-end speech lost {talk_kept:.1} dB: the canceller removes the talker too"
    );
}

/// An Xvfb server on a free display number, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let n = (100..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
                "-br",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Xvfb does not start ({e}); install it with apt-get install xvfb")
            });
        let mut x = Xvfb { child, display };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            if let Ok(Some(status)) = x.child.try_wait() {
                panic!("Xvfb exited with {status}");
            }
            assert!(Instant::now() < deadline, "Xvfb did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        x
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn screen_capture_grabs_the_x_screen() {
    let x = Xvfb::start();
    // Paint the root window: white left half, black right half (ImageMagick).
    let halves = tempfile::Builder::new()
        .suffix(".png")
        .tempfile()
        .expect("temp file");
    let painted = Command::new("convert")
        .args([
            "-size", "640x800", "xc:white", "-size", "640x800", "xc:black", "+append",
        ])
        .arg(halves.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        painted,
        "ImageMagick's convert is missing; install it with apt-get install imagemagick"
    );
    // `display -window root` paints the background and exits (with status 1, by design).
    Command::new("display")
        .args(["-display", &x.display, "-window", "root"])
        .arg(halves.path())
        .status()
        .expect("ImageMagick's display is missing; install it with apt-get install imagemagick");
    let want = rounds_media::native::CaptureFormat {
        width: 640,
        height: 480,
        fps: 10,
    };
    let screen =
        rounds_media::native::ScreenCapture::open(Some(&x.display), want).expect("grab the screen");
    assert_eq!(screen.screen_size(), (1280, 800));
    assert_eq!(
        screen.frame_size(),
        (640, 400),
        "scaled to fit, aspect kept"
    );
    let start = Instant::now();
    for _ in 0..5 {
        let frame = screen
            .frames()
            .recv_timeout(Duration::from_secs(5))
            .expect("a screen frame");
        assert_eq!((frame.width, frame.height), (640, 400));
        assert!(frame.is_well_formed());
        let y = frame.y_plane();
        let (left, right) = (y[200 * 640 + 100], y[200 * 640 + 540]);
        assert!(left > 220 && right < 30, "white {left}, black {right}");
    }
    println!("5 screen frames in {:?}", start.elapsed());
}
