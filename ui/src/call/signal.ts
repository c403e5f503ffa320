// The signaling WebSocket (`/rtc`): joining with a token, heartbeats, and reconnecting with
// `resume` after a drop, so a weak network costs a moment, not the patient's place.

import type { ClientMessage, ErrorCode, ServerMessage } from "../generated/proto";

export type SignalStatus = "connecting" | "connected" | "reconnecting" | "closed";

export interface SignalHandlers {
  message(m: ServerMessage): void;
  status(s: SignalStatus): void;
  /** The server refused the token; return a fresh one to try again, or null to give up. */
  refreshToken?(): Promise<string | null>;
}

/** Server messages after which the server closes the socket on purpose. */
const FINAL: ReadonlySet<ServerMessage["type"]> = new Set(["denied", "removed", "visit_ended"]);
/** Errors after which the server closes the socket and trying again cannot help. */
const FINAL_ERRORS: ReadonlySet<ErrorCode> = new Set(["replaced", "room_closed", "unsupported_version"]);
/** Refusals of `join` worth trying again after a pause. */
const RETRY_JOIN: ReadonlySet<ErrorCode> = new Set(["internal", "rate_limited"]);

export function signalingUrl(origin = window.location.origin): string {
  return `${origin.replace(/^http/, "ws")}/rtc`;
}

export class Signal {
  private ws: WebSocket | null = null;
  private session: string | undefined;
  private closedByUs = false;
  private final = false;
  private attempt = 0;
  private lastHeard = 0;
  private heartbeat = 0;
  private retryTimer = 0;
  private status: SignalStatus = "connecting";
  private lastRefresh = 0;
  private refreshing = false;
  private readonly onOnline = () => {
    if (this.status === "reconnecting") this.reconnectNow();
  };
  /** The device lost its network (Wi-Fi to mobile data, a tunnel): the socket is gone too. */
  private readonly onOffline = () => {
    if (this.ws && this.status === "connected") this.abandon();
  };

  /**
   * `prepareMedia` asks the server for the subscriber connection while waiting in the lobby
   * (it carries nothing until admission), so admission does not wait for its handshake.
   */
  constructor(
    private token: string,
    private readonly handlers: SignalHandlers,
    private readonly url = signalingUrl(),
    private readonly prepareMedia = false,
  ) {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
  }

  connect(): void {
    this.closedByUs = false;
    this.open();
  }

  send(message: ClientMessage): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Says goodbye (`leave`) and closes for good. */
  leave(): void {
    this.send({ type: "leave" });
    this.close();
  }

  close(): void {
    this.closedByUs = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    window.clearInterval(this.heartbeat);
    window.clearTimeout(this.retryTimer);
    this.ws?.close(1000);
    this.ws = null;
    this.setStatus("closed");
  }

  /** Drops the connection as a network failure would (tests, and a stuck socket). */
  drop(): void {
    this.ws?.close(4999);
  }

  private setStatus(s: SignalStatus) {
    if (this.status !== s) {
      this.status = s;
      this.handlers.status(s);
    }
  }

  private open() {
    const ws = new WebSocket(this.url);
    let joinedHere = false;
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      // (`undefined` fields are left out of the JSON.)
      const prepare_media = this.prepareMedia || undefined;
      ws.send(JSON.stringify({ type: "join", v: 1, token: this.token, resume: this.session, prepare_media } satisfies ClientMessage));
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let message: ServerMessage;
      try {
        message = JSON.parse(String(event.data)) as ServerMessage;
      } catch {
        return;
      }
      if (message.type === "joined") {
        joinedHere = true;
        this.session = message.session;
        this.attempt = 0;
        this.setStatus("connected");
        this.startHeartbeat(message.heartbeat_secs);
      } else if (message.type === "ping") {
        this.send({ type: "pong", t: message.t });
        return;
      } else if (message.type === "pong") {
        return;
      } else if (FINAL.has(message.type)) {
        this.final = true;
      } else if (message.type === "error") {
        if (!joinedHere && message.code === "unauthorized") {
          this.refreshing = true;
          void this.retryWithFreshToken();
          return;
        }
        if (FINAL_ERRORS.has(message.code) || (!joinedHere && !RETRY_JOIN.has(message.code))) {
          this.final = true;
        }
      }
      this.handlers.message(message);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      window.clearInterval(this.heartbeat);
      this.ws = null;
      if (this.refreshing) return; // retryWithFreshToken opens the next socket.
      if (this.closedByUs || this.final) {
        this.setStatus("closed");
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  private startHeartbeat(secs: number) {
    window.clearInterval(this.heartbeat);
    const every = Math.max(1, secs) * 1000;
    this.heartbeat = window.setInterval(() => {
      if (Date.now() - this.lastHeard > every * 2.5) {
        // Nothing heard for too long: the socket is dead even if the browser has not noticed.
        this.abandon();
        return;
      }
      this.send({ type: "ping", t: Date.now() });
    }, every);
  }

  /** Gives up on the current socket at once (a dead socket can take minutes to report it). */
  private abandon() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onclose = null;
    ws.onmessage = null;
    ws.close();
    window.clearInterval(this.heartbeat);
    this.scheduleReconnect();
  }

  private scheduleReconnect() {
    this.setStatus("reconnecting");
    const delay = Math.min(5000, 300 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }

  private reconnectNow() {
    window.clearTimeout(this.retryTimer);
    if (!this.ws) this.open();
  }

  private async retryWithFreshToken() {
    // A token refused twice in a row is not a matter of age: stop rather than loop.
    const again = Date.now() - this.lastRefresh < 15000;
    this.lastRefresh = Date.now();
    const fresh = !again && this.handlers.refreshToken ? await this.handlers.refreshToken().catch(() => null) : null;
    this.refreshing = false;
    if (!fresh) {
      this.final = true;
      this.close();
      this.handlers.message({ type: "error", code: "unauthorized", message: "Your access has expired. Open your visit link again." });
      return;
    }
    this.token = fresh;
    this.session = undefined;
    if (!this.closedByUs) this.open();
  }
}
