// The network test: round-trip time, a short download and upload against this server, and
// whether the media UDP port answers. The grade is in plain words for the patient and goes
// to the clinician's queue.

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

export interface NetworkTestDeps {
  fetch: typeof fetch;
  now: () => number;
  /** Resolves true when the media UDP port answers a STUN probe. */
  probeUdp: (address: string) => Promise<boolean>;
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
  const udpProbe = info?.udp ? deps.probeUdp(info.udp).catch(() => false) : Promise.resolve(false);

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
  const udp = await udpProbe;
  const path: MediaPath = udp ? "udp" : info?.ice_tcp ? (info.udp ? "unknown" : "tcp") : info?.udp ? "unknown" : "none";
  return { grade: grade({ rttMs, downMbps, upMbps, path }), rttMs, downMbps, upMbps, path };
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

/**
 * Asks the media UDP port for our address with a STUN binding request, the way ICE will:
 * a server-reflexive candidate means UDP reaches the server. Times out after 2.5 s.
 */
export async function probeUdp(address: string): Promise<boolean> {
  if (typeof RTCPeerConnection !== "function") return false;
  const pc = new RTCPeerConnection({ iceServers: [{ urls: `stun:${address}` }] });
  try {
    pc.createDataChannel("probe");
    const found = new Promise<boolean>((resolve) => {
      pc.onicecandidate = (e) => {
        if (e.candidate?.type === "srflx") resolve(true);
        if (!e.candidate) resolve(false);
      };
      window.setTimeout(() => resolve(false), 2500);
    });
    await pc.setLocalDescription(await pc.createOffer());
    return await found;
  } finally {
    pc.close();
  }
}
