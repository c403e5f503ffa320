// Camera, microphone and speaker: asking for them, measuring the microphone level, and
// making the test sounds (generated here, so no audio file has to be fetched).

export type MediaProblem = "denied" | "not-found" | "in-use" | "other";

export interface CaptureResult {
  stream: MediaStream | null;
  /** Why video could not be had, if it could not. */
  videoProblem: MediaProblem | null;
  /** Why audio could not be had, if it could not. */
  audioProblem: MediaProblem | null;
}

export interface CaptureOptions {
  cameraId?: string;
  microphoneId?: string;
  lowEnd: boolean;
  /** Do not ask for the camera at all (audio-only chosen). */
  audioOnly?: boolean;
}

export function problemOf(error: unknown): MediaProblem {
  const name = error instanceof DOMException ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "denied";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
    return "not-found";
  }
  if (name === "NotReadableError" || name === "AbortError" || name === "TrackStartError") {
    return "in-use";
  }
  return "other";
}

export function videoConstraints(opts: { cameraId?: string; lowEnd: boolean }): MediaTrackConstraints {
  const [width, height] = opts.lowEnd ? [640, 480] : [1280, 720];
  return {
    deviceId: opts.cameraId ? { exact: opts.cameraId } : undefined,
    width: { ideal: width },
    height: { ideal: height },
    frameRate: { ideal: 24, max: 30 },
  };
}

export function audioConstraints(microphoneId?: string): MediaTrackConstraints {
  return {
    deviceId: microphoneId ? { exact: microphoneId } : undefined,
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
  };
}

/**
 * Asks for camera and microphone together (one prompt), then falls back to each alone, so a
 * blocked camera still leaves a working microphone (audio-only), and the other way round.
 */
export async function capture(opts: CaptureOptions): Promise<CaptureResult> {
  const md = navigator.mediaDevices;
  if (opts.audioOnly) {
    try {
      const stream = await md.getUserMedia({ audio: audioConstraints(opts.microphoneId) });
      return { stream, videoProblem: null, audioProblem: null };
    } catch (e) {
      return { stream: null, videoProblem: null, audioProblem: problemOf(e) };
    }
  }
  try {
    const stream = await md.getUserMedia({
      audio: audioConstraints(opts.microphoneId),
      video: videoConstraints(opts),
    });
    return { stream, videoProblem: null, audioProblem: null };
  } catch (both) {
    let audio: MediaStream | null = null;
    let audioProblem: MediaProblem | null = null;
    let videoProblem: MediaProblem | null = null;
    try {
      audio = await md.getUserMedia({ audio: audioConstraints(opts.microphoneId) });
    } catch (e) {
      audioProblem = problemOf(e);
    }
    let video: MediaStream | null = null;
    try {
      video = await md.getUserMedia({ video: videoConstraints(opts) });
    } catch (e) {
      videoProblem = problemOf(e);
    }
    if (!audioProblem && !videoProblem) {
      // Together failed but each alone worked (rare): report the first error on video.
      videoProblem = problemOf(both);
      video?.getTracks().forEach((t) => t.stop());
      video = null;
    }
    const tracks = [...(audio?.getTracks() ?? []), ...(video?.getTracks() ?? [])];
    return { stream: tracks.length ? new MediaStream(tracks) : null, videoProblem, audioProblem };
  }
}

export async function listDevices(): Promise<{ cameras: MediaDeviceInfo[]; microphones: MediaDeviceInfo[]; speakers: MediaDeviceInfo[] }> {
  const all = await navigator.mediaDevices.enumerateDevices().catch(() => [] as MediaDeviceInfo[]);
  return {
    cameras: all.filter((d) => d.kind === "videoinput" && d.deviceId),
    microphones: all.filter((d) => d.kind === "audioinput" && d.deviceId),
    speakers: all.filter((d) => d.kind === "audiooutput" && d.deviceId),
  };
}

export function stopStream(stream: MediaStream | null | undefined): void {
  stream?.getTracks().forEach((t) => t.stop());
}

let sharedContext: AudioContext | null = null;
function audioContext(): AudioContext {
  if (!sharedContext) {
    sharedContext = new AudioContext();
  }
  if (sharedContext.state === "suspended") {
    void sharedContext.resume();
  }
  return sharedContext;
}

/** Measures how loud a microphone track is, 0 to 1, several times a second. */
export class LevelMeter {
  private readonly source: MediaStreamAudioSourceNode;
  private readonly analyser: AnalyserNode;
  private readonly data: Float32Array<ArrayBuffer>;
  private readonly clone: MediaStreamTrack;
  private timer = 0;

  /** Measures a clone of `track`, so muting the original (track.enabled) does not silence it. */
  constructor(track: MediaStreamTrack, onLevel: (level: number) => void) {
    const ctx = audioContext();
    this.clone = track.clone();
    this.clone.enabled = true;
    this.source = ctx.createMediaStreamSource(new MediaStream([this.clone]));
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.data = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
    this.timer = window.setInterval(() => onLevel(this.level()), 100);
  }

  level(): number {
    this.analyser.getFloatTimeDomainData(this.data);
    let sum = 0;
    for (const v of this.data) {
      sum += v * v;
    }
    const rms = Math.sqrt(sum / this.data.length);
    // Speech sits around -40..-10 dBFS; map that range onto 0..1.
    const db = 20 * Math.log10(rms + 1e-9);
    return Math.min(1, Math.max(0, (db + 60) / 50));
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.source.disconnect();
    this.clone.stop();
  }
}

/** A WAV file of the given notes (Hz), each `noteSeconds` long with a soft fade. */
export function toneWav(notes: number[], noteSeconds = 0.28, volume = 0.35): Blob {
  const rate = 22050;
  const perNote = Math.floor(rate * noteSeconds);
  const samples = perNote * notes.length;
  const buffer = new ArrayBuffer(44 + samples * 2);
  const view = new DataView(buffer);
  const text = (offset: number, s: string) => {
    for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples * 2, true);
  notes.forEach((freq, n) => {
    for (let i = 0; i < perNote; i++) {
      const t = i / rate;
      const envelope = Math.min(1, i / (rate * 0.02)) * Math.min(1, (perNote - i) / (rate * 0.08));
      const v = Math.sin(2 * Math.PI * freq * t) * envelope * volume;
      view.setInt16(44 + (n * perNote + i) * 2, Math.round(v * 32767), true);
    }
  });
  return new Blob([buffer], { type: "audio/wav" });
}

/** The speaker test: three rising tones. */
export const TEST_SOUND = [523.25, 659.25, 783.99];
/** "Your clinician is ready": two bright tones. */
export const READY_CHIME = [659.25, 987.77];

/** Plays notes through an audio element, on `speakerId` where the browser allows choosing. */
export async function playTones(notes: number[], speakerId?: string): Promise<void> {
  const url = URL.createObjectURL(toneWav(notes));
  const audio = new Audio(url);
  try {
    if (speakerId && "setSinkId" in audio) {
      await (audio as HTMLAudioElement & { setSinkId(id: string): Promise<void> }).setSinkId(speakerId).catch(() => undefined);
    }
    await audio.play();
    await new Promise<void>((resolve) => {
      audio.onended = () => resolve();
      window.setTimeout(resolve, notes.length * 400 + 500);
    });
  } finally {
    URL.revokeObjectURL(url);
  }
}
