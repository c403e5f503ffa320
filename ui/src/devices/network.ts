// The network test: round-trip time, a short download and upload against this server, and
// whether the media UDP port answers a STUN binding request. The grade is in plain words for
// the patient and goes to the clinician's queue.

import type { NetworkGrade, NetworkTestInfo } from "../generated/proto";

export type MediaPath = "udp" | "tcp" | "unknown" | "none";

export interface NetworkResult {
  grade: NetworkGrade;
  rttMs: number | null;
  downMbps: number | null;
  upMbps: number | null;
  /** `udp`: the media port answered; `tcp`: only the fallback on the web port; `none`: no way. */
  path: MediaPath;
}

/** What the STUN probe of the media UDP port found: `unknown` when this browser cannot tell. */
export type UdpProbe = "reachable" | "unreachable" | "unknown";

export interface NetworkTestDeps {
  fetch: typeof fetch;
  now: () => number;
  probeUdp: (address: string) => Promise<UdpProbe>;
}

const defaults: NetworkTestDeps = {
  fetch: (...args) => globalThis.fetch(...args),
  now: () => performance.now(),
  probeUdp,
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** Runs the test against `/api/v1/join/{code}/network-test`. Never throws. */
export async function runNetworkTest(code: string, info: NetworkTestInfo | null, deps: NetworkTestDeps = defaults): Promise<NetworkResult> {
  const base = `/api/v1/join/${encodeURIComponent(code)}/network-test`;
  const get = async (bytes: number) => {
    const start = deps.now();
    const r = await deps.fetch(`${base}/download?bytes=${bytes}`, { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const body = await r.arrayBuffer();
    return { ms: deps.now() - start, bytes: body.byteLength };
  };
  const udpProbe: Promise<UdpProbe> = info?.udp ? deps.probeUdp(info.udp).catch(() => "unknown" as const) : Promise.resolve("unreachable");

  let rttMs: number | null = null;
  let downMbps: number | null = null;
  let upMbps: number | null = null;
  try {
    const rtts: number[] = [];
    for (let i = 0; i < 5; i++) {
      rtts.push((await get(0)).ms);
    }
    rttMs = Math.round(median(rtts));

    const maxDown = info?.max_download_bytes ?? 1_000_000;
    let down = await get(Math.min(256 * 1024, maxDown));
    if (down.ms < 400) {
      down = await get(maxDown);
    }
    downMbps = round1((down.bytes * 8) / Math.max(1, down.ms - rttMs / 2) / 1000);

    const chunk = Math.max(1024, Math.min(info?.max_upload_bytes ?? 65536, 65536) - 2048);
    const body = new Uint8Array(chunk);
    crypto.getRandomValues(body.subarray(0, Math.min(chunk, 65536)));
    const start = deps.now();
    let sent = 0;
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(
        [0, 1, 2, 3].map(() =>
          deps.fetch(`${base}/upload`, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } }),
        ),
      );
      if (results.some((r) => !r.ok)) throw new Error("upload refused");
      sent += chunk * results.length;
      if (deps.now() - start > 3000) break;
    }
    upMbps = round1((sent * 8) / Math.max(1, deps.now() - start - rttMs) / 1000);
  } catch {
    // Whatever was measured stands; what was not is null.
  }
  const path = mediaPath(await udpProbe, info);
  return { grade: grade({ rttMs, downMbps, upMbps, path }), rttMs, downMbps, upMbps, path };
}

/** Which way media will go: UDP when its port answered, else the ICE-TCP fallback if the server offers it. */
export function mediaPath(udp: UdpProbe, info: NetworkTestInfo | null): MediaPath {
  if (udp === "reachable") return "udp";
  if (udp === "unknown" && info?.udp) return "unknown";
  return info?.ice_tcp ? "tcp" : "none";
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}

/** The grade: what a two-person 720p visit needs is about 1.5 Mbps each way. */
export function grade(r: Omit<NetworkResult, "grade">): NetworkGrade {
  if (r.rttMs === null || r.path === "none") {
    return "blocked";
  }
  const down = r.downMbps ?? 0;
  const up = r.upMbps ?? 0;
  if (r.rttMs > 500 || down < 0.5 || up < 0.3) {
    return "poor";
  }
  if (r.rttMs > 200 || down < 2 || up < 1.2) {
    return "fair";
  }
  return "good";
}

/** What an `RTCPeerConnection` reports while it gathers candidates against one STUN server. */
export type GatheringEvent =
  | { kind: "candidate"; type: string | null; protocol: string | null }
  | { kind: "error" }
  | { kind: "complete" };

/**
 * Reads candidate gathering as an answer to "does the STUN server at the media UDP port
 * answer?". A server-reflexive candidate says yes. But Chromium drops a server-reflexive
 * candidate equal to the host candidate it was asked from (no NAT in between, as on a
 * clinic's flat network or on loopback), so an answered probe may produce no candidate at
 * all: then gathering completing without an error, from at least one UDP host candidate,
 * says yes too, because Chromium keeps gathering until every STUN request is answered or
 * has timed out (about ten seconds, much longer than the probe waits). An ICE candidate
 * error, or no end before the probe's deadline, says no. Without any UDP host candidate the
 * browser had nothing to send from, and nothing can be said.
 */
export class UdpProbeReader {
  private hostUdp = false;
  private failed = false;

  /** The verdict once the events settle it, else `null`. */
  observe(event: GatheringEvent): UdpProbe | null {
    switch (event.kind) {
      case "candidate":
        if (event.type === "srflx") return "reachable";
        if (event.type === "host" && event.protocol === "udp") this.hostUdp = true;
        return null;
      case "error":
        this.failed = true;
        return null;
      case "complete":
        if (this.failed) return "unreachable";
        return this.hostUdp ? "reachable" : "unknown";
    }
  }

  /** The verdict when the deadline passes first. */
  timedOut(): UdpProbe {
    return "unreachable";
  }
}

/** How long the probe waits for the STUN answer: an answered probe settles within milliseconds. */
export const UDP_PROBE_TIMEOUT_MS = 4000;

/**
 * Sends a STUN binding request to the media UDP port from an `RTCPeerConnection`, the way
 * ICE will during the visit, and reads the result with {@link UdpProbeReader}.
 */
export async function probeUdp(address: string): Promise<UdpProbe> {
  if (typeof RTCPeerConnection !== "function") return "unknown";
  const pc = new RTCPeerConnection({ iceServers: [{ urls: `stun:${address}` }] });
  const reader = new UdpProbeReader();
  try {
    const verdict = new Promise<UdpProbe>((resolve) => {
      const settle = (v: UdpProbe | null) => {
        if (v !== null) resolve(v);
      };
      pc.onicecandidate = (e) => {
        settle(e.candidate ? reader.observe({ kind: "candidate", type: e.candidate.type, protocol: e.candidate.protocol }) : reader.observe({ kind: "complete" }));
      };
      pc.onicecandidateerror = () => settle(reader.observe({ kind: "error" }));
      window.setTimeout(() => resolve(reader.timedOut()), UDP_PROBE_TIMEOUT_MS);
    });
    pc.createDataChannel("probe");
    await pc.setLocalDescription(await pc.createOffer());
    return await verdict;
  } finally {
    pc.close();
  }
}
