// Reading the few facts the client needs from an SDP: which publisher and which of their
// tracks each receiving m-section carries (`a=msid:<participant> <participant>_<mid>`).

export interface MediaSection {
  mid: string;
  /** `audio`, `video` or `application`. */
  kind: string;
  direction: "sendrecv" | "sendonly" | "recvonly" | "inactive";
  /** The stream id: the publishing participant's id, in our SFU's offers. */
  streamId: string | null;
  trackId: string | null;
  port: number;
}

export function mediaSections(sdp: string): MediaSection[] {
  const out: MediaSection[] = [];
  let current: MediaSection | null = null;
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("m=")) {
      const [kind = "", port = "0"] = line.slice(2).split(" ");
      current = { mid: "", kind, direction: "sendrecv", streamId: null, trackId: null, port: Number(port) };
      out.push(current);
    } else if (current) {
      if (line.startsWith("a=mid:")) {
        current.mid = line.slice(6);
      } else if (line.startsWith("a=msid:")) {
        const [stream = null, track = null] = line.slice(7).split(" ");
        current.streamId = stream;
        current.trackId = track;
      } else if (/^a=(sendrecv|sendonly|recvonly|inactive)$/.test(line)) {
        current.direction = line.slice(2) as MediaSection["direction"];
      }
    }
  }
  return out;
}

/**
 * The DTLS certificate fingerprint (`a=fingerprint:`), session or media level. The server
 * offers a new subscriber connection (one whose handshake stalled is replaced) with a new
 * certificate; the same fingerprint means a renegotiation of the connection we have.
 */
export function dtlsFingerprint(sdp: string): string | null {
  for (const raw of sdp.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("a=fingerprint:")) return line.slice(14).trim().toLowerCase();
  }
  return null;
}

/** The publisher's own mid, from our SFU's track id `<participant>_<mid>`. */
export function publisherMid(trackId: string | null, participantId: string | null): string | null {
  if (!trackId || !participantId) return null;
  const prefix = `${participantId}_`;
  return trackId.startsWith(prefix) ? trackId.slice(prefix.length) : null;
}
