// One participant's side of a visit: the signaling connection, the two peer connections
// (publisher: we offer; subscriber: the server offers), and everything the screens show
// (who is here, who speaks, network scores, chat). No DOM here: the patient pages and the
// clinician window render from this state and its events.

import type {
  ChatMessage,
  ErrorCode,
  HostAction,
  MediaKind,
  ParticipantState,
  RenderSize,
  RoomParticipant,
  ServerMessage,
  TrackKind,
  VideoConstraints,
} from "../generated/proto";
import { AnswerWaiter } from "./answers";
import { ConnectDeadline } from "./deadline";
import { dtlsFingerprint, mediaSections, publisherMid } from "./sdp";
import { Signal, type SignalStatus } from "./signal";

export interface RemoteMedia {
  audio?: MediaStream;
  video?: MediaStream;
  screen?: MediaStream;
}

export type CallState = "connecting" | ParticipantState | "ended" | "replaced" | "failed";

export type CallEvent =
  | { type: "state"; state: CallState; message?: string }
  | { type: "connection"; status: SignalStatus }
  | { type: "participants" }
  | { type: "lobby" }
  | { type: "media" }
  | { type: "dominant" }
  | { type: "quality" }
  | { type: "chat"; message: ChatMessage }
  | { type: "mute_requested"; kind: MediaKind; message: string }
  | { type: "running_late"; minutes: number }
  | { type: "local" }
  | { type: "error"; code: ErrorCode | "media"; message: string };

export interface CallOptions {
  token: string;
  /** Phones and slow devices send 640x480 whatever the room asks. */
  lowEnd: boolean;
  /** A fresh token after the old one was refused (the patient pages re-check in). */
  refreshToken?: () => Promise<string | null>;
  url?: string;
}

export interface CallStats {
  inbound: { kind: string; packetsReceived: number; framesDecoded: number; bytesReceived: number }[];
  outbound: { kind: string; packetsSent: number; framesEncoded: number; bytesSent: number }[];
  /** `udp` or `tcp` once media flows. */
  transport: string | null;
  rttMs: number | null;
}

const ANSWER_TIMEOUT_MS = 15000;
/**
 * A sending connection that has its answer but has not connected this long after is built
 * again. A DTLS handshake can stall for good when a packet of it is lost (the server's DTLS
 * forgets to retransmit in one case), and the browser would take a minute or more to give up.
 */
const PUBLISHER_CONNECT_DEADLINE_MS = 15000;

export class Call {
  state: CallState = "connecting";
  connection: SignalStatus = "connecting";
  me: RoomParticipant | null = null;
  readonly participants = new Map<string, RoomParticipant>();
  /** Staff only: who is in the lobby. */
  waiting: RoomParticipant[] = [];
  readonly remote = new Map<string, RemoteMedia>();
  dominant: string | null = null;
  readonly quality = new Map<string, number>();
  video: VideoConstraints | null = null;
  runningLate: number | null = null;
  readonly chat: ChatMessage[] = [];
  audioMuted = false;
  videoMuted = false;
  /** The camera and microphone being sent (tracks may be swapped as the camera turns on and off). */
  local: MediaStream | null = null;
  screen: MediaStream | null = null;

  private readonly signal: Signal;
  private readonly listeners = new Set<(e: CallEvent) => void>();
  private pub: RTCPeerConnection | null = null;
  private sub: RTCPeerConnection | null = null;
  private mediaWanted = false;
  private negotiating = false;
  /** The publisher connection has connected at least once. */
  /** Rebuilds the publisher connection if it has not connected in time after its answer. */
  private pubDeadline = new ConnectDeadline<RTCPeerConnection>(PUBLISHER_CONNECT_DEADLINE_MS, (pc) => {
    if (this.pub === pc && this.state === "admitted" && this.connection === "connected") {
      console.warn("media: the sending connection did not connect in time; starting it again");
      void this.restartMedia();
    }
  });
  private negotiateAgain = false;
  /** The publisher offer waiting for its answer; the answer names it by `offer_id`. */
  private answers = new AnswerWaiter(ANSWER_TIMEOUT_MS);
  private subQueue: Promise<void> = Promise.resolve();
  private readonly streams = new Map<MediaStreamTrack, MediaStream>();
  /** Which kind each of our sending transceivers carries, and the id we published it under. */
  private readonly sending = new Map<RTCRtpTransceiver, { kind: TrackKind; id: string; published: boolean }>();
  private cameraId: string | undefined;
  /** The last render size sent per participant, sent again after a reconnect. */
  private readonly renderSizes = new Map<string, RenderSize>();

  constructor(private readonly options: CallOptions) {
    this.signal = new Signal(
      options.token,
      {
        message: (m) => this.onMessage(m),
        status: (s) => {
          this.connection = s;
          this.emit({ type: "connection", status: s });
        },
        refreshToken: options.refreshToken,
      },
      options.url,
      // Where WebRTC exists, the subscriber connection is set up while waiting, so being let
      // in shows the others at once rather than after a handshake.
      typeof RTCPeerConnection !== "undefined",
    );
  }

  on(listener: (e: CallEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Connects: in the lobby this is the knock; once admitted, the room. */
  connect(): void {
    this.signal.connect();
  }

  /** Starts sending `stream` (or nothing, for listen-only) once admitted. */
  startMedia(stream: MediaStream | null, cameraId?: string): void {
    this.local = stream;
    this.cameraId = cameraId;
    this.mediaWanted = true;
    this.emit({ type: "local" });
    if (this.state === "admitted") {
      void this.restartMedia();
    }
  }

  sendChat(text: string, to?: string): boolean {
    return this.signal.send({ type: "chat", text, to });
  }

  setAudioMuted(muted: boolean): void {
    this.audioMuted = muted;
    this.local?.getAudioTracks().forEach((t) => (t.enabled = !muted));
    this.signal.send({ type: "set_muted", kind: "audio", muted });
    this.emit({ type: "local" });
  }

  /** Turns the camera off (its light too) or back on. */
  async setVideoMuted(muted: boolean): Promise<void> {
    const sender = this.senderOf("video");
    if (muted) {
      this.videoMuted = true;
      const old = this.local?.getVideoTracks() ?? [];
      await sender?.replaceTrack(null).catch(() => undefined);
      old.forEach((t) => {
        t.stop();
        this.local?.removeTrack(t);
      });
    } else {
      const fresh = await navigator.mediaDevices.getUserMedia({
        video: {
          deviceId: this.cameraId ? { exact: this.cameraId } : undefined,
          width: { ideal: this.sendSize().width },
          height: { ideal: this.sendSize().height },
          frameRate: { ideal: this.video?.fps ?? 24 },
        },
      });
      const track = fresh.getVideoTracks()[0];
      if (!track) return;
      if (!this.local) this.local = new MediaStream();
      this.local.addTrack(track);
      this.videoMuted = false;
      if (sender) {
        await sender.replaceTrack(track);
      } else if (this.pub) {
        this.addSender(track, "video");
        void this.negotiatePublisher();
      }
    }
    this.signal.send({ type: "set_muted", kind: "video", muted });
    this.emit({ type: "local" });
  }

  async startScreenShare(): Promise<void> {
    if (!this.pub || this.screen) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.contentHint = "detail";
    track.addEventListener("ended", () => void this.stopScreenShare());
    this.screen = stream;
    this.addSender(track, "screen");
    this.emit({ type: "local" });
    await this.negotiatePublisher();
  }

  async stopScreenShare(): Promise<void> {
    const entry = [...this.sending.entries()].find(([, s]) => s.kind === "screen");
    this.screen?.getTracks().forEach((t) => t.stop());
    this.screen = null;
    if (entry && this.pub) {
      const [transceiver, info] = entry;
      this.signal.send({ type: "unpublish", track_id: info.id });
      this.pub.removeTrack(transceiver.sender);
      this.sending.delete(transceiver);
      await this.negotiatePublisher();
    }
    this.emit({ type: "local" });
  }

  /** A host action on someone else (needs the admit or moderate grant). */
  host(participant: string, action: HostAction): boolean {
    return this.signal.send({ type: "host", participant, action });
  }

  /** Leaves on purpose: the server forgets our place (the link can bring us back). */
  leave(): void {
    this.signal.leave();
    this.teardown();
    this.setState("left");
  }

  /** Closes everything without telling anyone (page unload; the server keeps our place). */
  close(): void {
    this.signal.close();
    this.teardown();
  }

  /** Simulates a network drop of the signaling socket. */
  dropConnection(): void {
    this.signal.drop();
  }

  async stats(): Promise<CallStats> {
    const out: CallStats = { inbound: [], outbound: [], transport: null, rttMs: null };
    for (const pc of [this.pub, this.sub]) {
      if (!pc) continue;
      const report = await pc.getStats();
      const byId = new Map<string, Record<string, unknown>>();
      report.forEach((s: Record<string, unknown>) => byId.set(String(s.id), s));
      report.forEach((s: Record<string, unknown>) => {
        if (s.type === "inbound-rtp") {
          out.inbound.push({
            kind: String(s.kind),
            packetsReceived: Number(s.packetsReceived ?? 0),
            framesDecoded: Number(s.framesDecoded ?? 0),
            bytesReceived: Number(s.bytesReceived ?? 0),
          });
        } else if (s.type === "outbound-rtp") {
          out.outbound.push({
            kind: String(s.kind),
            packetsSent: Number(s.packetsSent ?? 0),
            framesEncoded: Number(s.framesEncoded ?? 0),
            bytesSent: Number(s.bytesSent ?? 0),
          });
        } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          const local = byId.get(String(s.localCandidateId));
          if (typeof local?.protocol === "string") out.transport = local.protocol;
          if (typeof s.currentRoundTripTime === "number") out.rttMs = Math.round(s.currentRoundTripTime * 1000);
        }
      });
    }
    return out;
  }

  // ---- signaling ----------------------------------------------------------------------

  private emit(e: CallEvent) {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (error) {
        console.error(error);
      }
    }
  }

  private setState(state: CallState, message?: string) {
    this.state = state;
    this.emit({ type: "state", state, message });
  }

  private onMessage(m: ServerMessage) {
    switch (m.type) {
      case "joined": {
        this.me = m.me;
        this.participants.clear();
        for (const p of m.participants) this.participants.set(p.id, p);
        this.waiting = m.waiting;
        this.video = m.video;
        this.runningLate = m.running_late_minutes;
        const wasAdmitted = this.state === "admitted";
        this.setState(m.me.state);
        if (m.me.state === "admitted" && this.mediaWanted) {
          // After a drop, keep connections that survived; rebuild the ones that did not.
          if (!wasAdmitted || !this.pub || ["failed", "closed", "disconnected"].includes(this.pub.connectionState)) {
            void this.restartMedia();
          }
          this.signal.send({ type: "set_muted", kind: "audio", muted: this.audioMuted });
          if (this.videoMuted) this.signal.send({ type: "set_muted", kind: "video", muted: true });
          this.sendRenderSizes([...this.renderSizes.values()]);
        }
        this.emit({ type: "participants" });
        break;
      }
      case "admitted":
        for (const p of m.participants) this.participants.set(p.id, p);
        if (this.me) this.me = { ...this.me, state: "admitted" };
        this.setState("admitted");
        this.emit({ type: "participants" });
        if (this.mediaWanted) void this.restartMedia();
        this.sendRenderSizes([...this.renderSizes.values()]);
        break;
      case "denied":
      case "removed":
        this.teardown();
        this.setState(m.type, m.message);
        break;
      case "visit_ended":
        this.teardown();
        this.setState("ended", m.message);
        break;
      case "participant_joined":
      case "participant_updated":
        this.participants.set(m.participant.id, m.participant);
        if (m.participant.id === this.me?.id) this.me = m.participant;
        this.refreshRemote();
        this.emit({ type: "participants" });
        break;
      case "participant_left":
        this.participants.delete(m.participant_id);
        this.remote.delete(m.participant_id);
        this.quality.delete(m.participant_id);
        if (this.dominant === m.participant_id) this.dominant = null;
        this.emit({ type: "participants" });
        this.emit({ type: "media" });
        break;
      case "lobby_updated":
        this.waiting = m.waiting;
        this.emit({ type: "lobby" });
        break;
      case "offer":
        if (m.pc === "subscriber") {
          this.subQueue = this.subQueue.then(() => this.onSubscriberOffer(m.sdp)).catch((e: unknown) => this.mediaError(e));
        }
        break;
      case "answer":
        // A late answer to an offer given up on names another offer and is left alone.
        if (m.pc === "publisher") this.answers.answer(m.sdp, m.offer_id);
        break;
      case "ice": {
        const pc = m.pc === "publisher" ? this.pub : this.sub;
        if (pc && m.candidate.candidate) {
          pc.addIceCandidate({
            candidate: m.candidate.candidate,
            sdpMid: m.candidate.sdpMid ?? null,
            sdpMLineIndex: m.candidate.sdpMLineIndex ?? null,
          }).catch(() => undefined);
        }
        break;
      }
      case "track_published": {
        const p = this.participants.get(m.participant_id);
        if (p) {
          p.tracks = [...p.tracks.filter((t) => t.id !== m.track.id), m.track];
          this.refreshRemote();
        }
        break;
      }
      case "track_unpublished": {
        const p = this.participants.get(m.participant_id);
        if (p) {
          p.tracks = p.tracks.filter((t) => t.id !== m.track_id);
          this.refreshRemote();
        }
        break;
      }
      case "dominant_speaker":
        this.dominant = m.participant_id;
        this.emit({ type: "dominant" });
        break;
      case "network_quality":
        for (const s of m.scores) this.quality.set(s.participant_id, s.score);
        this.emit({ type: "quality" });
        break;
      case "chat":
        if (!this.chat.some((c) => c.id === m.message.id)) {
          this.chat.push(m.message);
          this.emit({ type: "chat", message: m.message });
        }
        break;
      case "mute_requested":
        if (m.kind === "audio") {
          this.audioMuted = true;
          this.local?.getAudioTracks().forEach((t) => (t.enabled = false));
          this.emit({ type: "local" });
        } else {
          void this.setVideoMuted(true);
        }
        this.emit({ type: "mute_requested", kind: m.kind, message: m.message });
        break;
      case "running_late":
        this.runningLate = m.minutes > 0 ? m.minutes : null;
        this.emit({ type: "running_late", minutes: m.minutes });
        break;
      case "video_constraints":
        this.video = m.video;
        void this.applyVideoConstraints();
        break;
      case "error":
        if (m.code === "replaced") {
          this.teardown();
          this.setState("replaced", m.message);
        } else if (m.code === "room_closed") {
          this.teardown();
          this.setState("ended", m.message);
        } else if (m.code === "unauthorized") {
          // The signaling layer already tried a fresh token: this access is over.
          this.teardown();
          this.setState("failed", m.message);
        } else if (m.code === "forbidden" && this.state === "connecting") {
          this.setState("failed", m.message);
        } else {
          this.emit({ type: "error", code: m.code, message: m.message });
        }
        break;
      case "ping":
      case "pong":
        break;
    }
  }

  // ---- media --------------------------------------------------------------------------

  /**
   * How large this page draws each participant's camera, in device pixels: the server sends
   * the simulcast layer that fills the tile and no more. Only changes go out.
   */
  setRenderSizes(sizes: RenderSize[]): void {
    const changed = sizes.filter((s) => {
      const old = this.renderSizes.get(s.participant_id);
      return !old || old.width !== s.width || old.height !== s.height;
    });
    for (const s of changed) this.renderSizes.set(s.participant_id, s);
    if (this.state === "admitted") this.sendRenderSizes(changed);
  }

  private sendRenderSizes(sizes: RenderSize[]) {
    // The server takes at most 16 per message.
    for (let i = 0; i < sizes.length; i += 16) {
      this.signal.send({ type: "render_sizes", sizes: sizes.slice(i, i + 16) });
    }
  }

  private sendSize(): { width: number; height: number } {
    if (this.options.lowEnd) return { width: 640, height: 480 };
    return { width: this.video?.width ?? 1280, height: this.video?.height ?? 720 };
  }

  private senderOf(kind: TrackKind): RTCRtpSender | null {
    for (const [t, info] of this.sending) {
      if (info.kind === kind) return t.sender;
    }
    return null;
  }

  private teardown() {
    this.answers.cancel(new Error("closed"));
    this.pubDeadline.stop();
    this.pub?.close();
    this.sub?.close();
    this.pub = null;
    this.sub = null;
    this.sending.clear();
    this.screen?.getTracks().forEach((t) => t.stop());
    this.screen = null;
    this.remote.clear();
    this.streams.clear();
    this.emit({ type: "media" });
  }

  private mediaError(e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    console.warn("media:", message);
    this.emit({ type: "error", code: "media", message });
  }

  /**
   * A fresh publisher connection (first admission, or after a drop the old one did not
   * survive). The subscriber connection is the server's to offer: it is kept unless it
   * failed, and a new one is made when the server next offers.
   */
  private async restartMedia() {
    this.pub?.close();
    this.sending.clear();
    if (this.sub && ["failed", "closed"].includes(this.sub.connectionState)) {
      this.sub.close();
      this.sub = null;
      this.remote.clear();
      this.streams.clear();
    }
    const pub = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
    this.pub = pub;
    pub.onicecandidate = (e) => {
      if (this.pub !== pub) return;
      const c = e.candidate;
      this.signal.send({
        type: "ice",
        pc: "publisher",
        candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid ?? undefined, sdpMLineIndex: c.sdpMLineIndex ?? undefined } : { candidate: "" },
      });
    };
    this.pubDeadline.watch(pub);
    pub.onconnectionstatechange = () => {
      if (pub.connectionState === "connected") this.pubDeadline.reached(pub);
      if (this.pub === pub && pub.connectionState === "failed" && this.state === "admitted" && this.connection === "connected") {
        // ICE gave up (network change): start over on the same signaling connection.
        void this.restartMedia();
      }
    };
    const audio = this.local?.getAudioTracks()[0];
    const video = this.videoMuted ? undefined : this.local?.getVideoTracks()[0];
    if (audio) this.addSender(audio, "audio");
    if (video) this.addSender(video, "video");
    if (this.screen?.getVideoTracks()[0]) this.addSender(this.screen.getVideoTracks()[0] as MediaStreamTrack, "screen");
    this.emit({ type: "media" });
    if (this.sending.size === 0) {
      // Listen-only: nothing to offer; the server still offers what others send.
      return;
    }
    await this.negotiatePublisher();
    await this.applyVideoConstraints();
  }

  private addSender(track: MediaStreamTrack, kind: TrackKind): RTCRtpTransceiver | null {
    if (!this.pub) return null;
    const simulcast = kind === "video" && !!this.video?.simulcast && !this.options.lowEnd;
    const init: RTCRtpTransceiverInit = { direction: "sendonly", streams: this.local ? [this.local] : [] };
    if (simulcast) {
      init.sendEncodings = [
        { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
        { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
        { rid: "f", maxBitrate: (this.video?.max_bitrate_kbps ?? 1500) * 1000 },
      ];
    } else if (kind !== "audio") {
      init.sendEncodings = [{ maxBitrate: this.maxBitrate(kind) }];
    }
    const transceiver = this.pub.addTransceiver(track, init);
    if (kind !== "audio") this.preferCodec(transceiver);
    this.sending.set(transceiver, { kind, id: track.id, published: false });
    return transceiver;
  }

  private maxBitrate(kind: TrackKind): number {
    if (kind === "screen") return 1_200_000;
    const kbps = this.video?.max_bitrate_kbps ?? 1500;
    // Phones and slow devices: 500-1000 kbps.
    return (this.options.lowEnd ? Math.min(kbps, 800) : kbps) * 1000;
  }

  private preferCodec(transceiver: RTCRtpTransceiver) {
    const wanted = `VIDEO/${(this.video?.codec ?? "VP8").toUpperCase()}`;
    const caps = RTCRtpReceiver.getCapabilities?.("video");
    if (!caps || typeof transceiver.setCodecPreferences !== "function") return;
    const codecs = [...caps.codecs].sort(
      (a, b) => Number(b.mimeType.toUpperCase() === wanted) - Number(a.mimeType.toUpperCase() === wanted),
    );
    try {
      transceiver.setCodecPreferences(codecs);
    } catch {
      // The browser keeps its own order.
    }
  }

  private async negotiatePublisher(): Promise<void> {
    if (this.negotiating) {
      this.negotiateAgain = true;
      return;
    }
    this.negotiating = true;
    try {
      do {
        this.negotiateAgain = false;
        const pc = this.pub;
        if (!pc) return;
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const { offerId, answer } = this.answers.expect();
        this.signal.send({ type: "offer", pc: "publisher", sdp: pc.localDescription?.sdp ?? offer.sdp ?? "", offer_id: offerId });
        const sdp = await answer;
        if (this.pub !== pc) return;
        await pc.setRemoteDescription({ type: "answer", sdp });
        this.pubDeadline.answered(pc);
        this.publishTracks();
      } while (this.negotiateAgain);
    } catch (e) {
      this.mediaError(e);
    } finally {
      this.negotiating = false;
    }
  }

  private publishTracks() {
    for (const [transceiver, info] of this.sending) {
      if (info.published || !transceiver.mid) continue;
      info.published = true;
      this.signal.send({
        type: "publish",
        track: {
          id: info.id,
          kind: info.kind,
          mid: transceiver.mid,
          simulcast: (transceiver.sender.getParameters().encodings?.length ?? 1) > 1,
          muted: info.kind === "audio" ? this.audioMuted : info.kind === "video" ? this.videoMuted : false,
        },
      });
    }
  }

  /** Follows what the room asks for: size, frame rate, bitrate, and simulcast from 3 people. */
  private async applyVideoConstraints() {
    const vc = this.video;
    const pc = this.pub;
    if (!vc || !pc) return;
    const size = this.sendSize();
    const camera = this.local?.getVideoTracks()[0];
    await camera
      ?.applyConstraints({ width: { ideal: size.width }, height: { ideal: size.height }, frameRate: { ideal: vc.fps } })
      .catch(() => undefined);
    const entry = [...this.sending.entries()].find(([, s]) => s.kind === "video");
    if (!entry) return;
    const [transceiver, info] = entry;
    const params = transceiver.sender.getParameters();
    const isSimulcast = (params.encodings?.length ?? 1) > 1;
    const wantSimulcast = vc.simulcast && !this.options.lowEnd;
    if (isSimulcast !== wantSimulcast && camera) {
      // Simulcast is fixed when a sender is made: replace the camera's sender.
      this.signal.send({ type: "unpublish", track_id: info.id });
      pc.removeTrack(transceiver.sender);
      this.sending.delete(transceiver);
      this.addSender(camera, "video");
      await this.negotiatePublisher();
      return;
    }
    if (!isSimulcast && params.encodings?.[0]) {
      params.encodings[0].maxBitrate = this.maxBitrate("video");
      await transceiver.sender.setParameters(params).catch(() => undefined);
    }
    const wanted = `VIDEO/${vc.codec.toUpperCase()}`;
    const sending = params.codecs?.[0]?.mimeType?.toUpperCase();
    const canSend = RTCRtpSender.getCapabilities?.("video")?.codecs.some((c) => c.mimeType.toUpperCase() === wanted) ?? false;
    if (sending && sending !== wanted && canSend) {
      // The room's codec changed (or was not known when the sender was made): offer again
      // with it first. A browser that cannot send it keeps sending what it can.
      for (const [t, s] of this.sending) if (s.kind !== "audio") this.preferCodec(t);
      await this.negotiatePublisher();
    }
  }

  private async onSubscriberOffer(sdp: string) {
    // In the lobby the server's offer carries no track: it only sets up the connection.
    if (this.state !== "admitted" && this.state !== "lobby") return;
    const current = this.sub?.remoteDescription?.sdp;
    if (this.sub && current && dtlsFingerprint(current) !== dtlsFingerprint(sdp)) {
      // A new connection from the server (the old one never connected, or the server
      // restarted): start it on a fresh peer connection rather than renegotiate the old one.
      this.sub.close();
      this.sub = null;
      this.remote.clear();
      this.streams.clear();
    }
    if (!this.sub) {
      const sub = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: [] });
      this.sub = sub;
      sub.onicecandidate = (e) => {
        if (this.sub !== sub) return;
        const c = e.candidate;
        this.signal.send({
          type: "ice",
          pc: "subscriber",
          candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid ?? undefined, sdpMLineIndex: c.sdpMLineIndex ?? undefined } : { candidate: "" },
        });
      };
      sub.ontrack = () => this.refreshRemote();
    }
    const sub = this.sub;
    await sub.setRemoteDescription({ type: "offer", sdp });
    const answer = await sub.createAnswer();
    await sub.setLocalDescription(answer);
    this.signal.send({ type: "answer", pc: "subscriber", sdp: sub.localDescription?.sdp ?? answer.sdp ?? "" });
    this.refreshRemote();
  }

  /** Rebuilds who-sends-what from the subscriber connection's current description. */
  private refreshRemote() {
    const sub = this.sub;
    const next = new Map<string, RemoteMedia>();
    if (sub?.remoteDescription) {
      const sections = new Map(mediaSections(sub.remoteDescription.sdp).map((s) => [s.mid, s]));
      for (const t of sub.getTransceivers()) {
        const section = t.mid ? sections.get(t.mid) : undefined;
        const track = t.receiver.track;
        if (!section || !section.streamId || section.port === 0) continue;
        if (section.direction !== "sendonly" && section.direction !== "sendrecv") continue;
        const who = section.streamId;
        const pubMid = publisherMid(section.trackId, who);
        const published = this.participants.get(who)?.tracks.find((x) => x.mid === pubMid);
        const kind: keyof RemoteMedia = track.kind === "audio" ? "audio" : published?.kind === "screen" ? "screen" : "video";
        let stream = this.streams.get(track);
        if (!stream) {
          stream = new MediaStream([track]);
          this.streams.set(track, stream);
        }
        const media = next.get(who) ?? {};
        media[kind] = stream;
        next.set(who, media);
      }
    }
    const changed =
      next.size !== this.remote.size ||
      [...next].some(([id, m]) => {
        const old = this.remote.get(id);
        return old?.audio !== m.audio || old?.video !== m.video || old?.screen !== m.screen;
      });
    if (changed) {
      this.remote.clear();
      for (const [id, m] of next) this.remote.set(id, m);
      this.emit({ type: "media" });
    }
  }
}
