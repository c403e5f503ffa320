/**
 * A deadline for a peer connection to connect once its answer is applied. A DTLS handshake
 * whose flight was lost can stall for good, and Chromium alone takes a minute or more to call
 * such a connection failed; the call starts a new one when the deadline passes instead.
 *
 * One connection is watched at a time. Watching a new one (a connection that replaces
 * another) forgets the old one's deadline, so the new one gets its full time.
 */
export class ConnectDeadline<T> {
  private watched: T | null = null;
  private connected = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly deadlineMs: number,
    private readonly onMissed: (connection: T) => void,
  ) {}

  /** A new connection: the one before it, its deadline and whether it connected are forgotten. */
  watch(connection: T) {
    this.stop();
    this.watched = connection;
    this.connected = false;
  }

  /**
   * Its answer was applied: the deadline starts, unless it has connected already or a
   * deadline already runs (a renegotiation does not extend the first one).
   */
  answered(connection: T) {
    if (connection !== this.watched || this.connected || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.watched === connection && !this.connected) this.onMissed(connection);
    }, this.deadlineMs);
  }

  /** It connected: no deadline for it from now on, renegotiations included. */
  reached(connection: T) {
    if (connection !== this.watched) return;
    this.connected = true;
    this.clearTimer();
  }

  /** Nothing is watched any more (the call ended). */
  stop() {
    this.clearTimer();
    this.watched = null;
  }

  private clearTimer() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
