import { describe, expect, it } from "vitest";

import { grade, mediaPath, runNetworkTest, UdpProbeReader, type GatheringEvent, type NetworkTestDeps, type UdpProbe } from "./network";

describe("grade", () => {
  it("says good, fair, poor or blocked from the measurements", () => {
    expect(grade({ rttMs: 30, downMbps: 20, upMbps: 10, path: "udp" })).toBe("good");
    expect(grade({ rttMs: 250, downMbps: 20, upMbps: 10, path: "udp" })).toBe("fair");
    expect(grade({ rttMs: 30, downMbps: 1.5, upMbps: 10, path: "tcp" })).toBe("fair");
    expect(grade({ rttMs: 30, downMbps: 20, upMbps: 0.2, path: "unknown" })).toBe("poor");
    expect(grade({ rttMs: 800, downMbps: 20, upMbps: 10, path: "udp" })).toBe("poor");
    expect(grade({ rttMs: null, downMbps: null, upMbps: null, path: "udp" })).toBe("blocked");
    expect(grade({ rttMs: 20, downMbps: 20, upMbps: 20, path: "none" })).toBe("blocked");
  });
});

/** A pretend network: every request takes `latency` ms plus its bytes at `mbps`. */
function fakeNetwork(latency: number, mbps: number, udp: UdpProbe): NetworkTestDeps & { calls: string[] } {
  let clock = 0;
  const calls: string[] = [];
  return {
    calls,
    now: () => clock,
    probeUdp: () => Promise.resolve(udp),
    fetch: (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      calls.push(`${init?.method ?? "GET"} ${url}`);
      const down = Number(/bytes=(\d+)/.exec(url)?.[1] ?? 0);
      const up = init?.body instanceof Uint8Array ? init.body.byteLength : 0;
      clock += latency + ((down + up) * 8) / (mbps * 1000);
      const body = url.includes("upload") ? JSON.stringify({ bytes: up }) : new Uint8Array(down);
      return Promise.resolve(new Response(body, { status: 200 }));
    },
  };
}

describe("runNetworkTest", () => {
  const info = { udp: "127.0.0.1:3478", ice_tcp: true, max_download_bytes: 2_097_152, max_upload_bytes: 65_536 };

  it("measures a fast network as good, with UDP", async () => {
    const net = fakeNetwork(10, 50, "reachable");
    const r = await runNetworkTest("abc", info, net);
    expect(r.grade).toBe("good");
    expect(r.path).toBe("udp");
    expect(r.rttMs).toBe(10);
    expect(r.downMbps).toBeGreaterThan(30);
    expect(net.calls.every((c) => c.includes("/api/v1/join/abc/network-test/"))).toBe(true);
  });

  it("measures a slow network as poor, and an unanswered UDP probe as the TCP fallback", async () => {
    const r = await runNetworkTest("abc", info, fakeNetwork(300, 0.4, "unreachable"));
    expect(r.grade).toBe("poor");
    expect(r.path).toBe("tcp");
  });

  it("says unknown only when the browser could not probe", async () => {
    const r = await runNetworkTest("abc", info, fakeNetwork(10, 50, "unknown"));
    expect(r.path).toBe("unknown");
    expect(r.grade).toBe("good");
  });

  it("reports blocked when the server cannot be reached", async () => {
    const deps: NetworkTestDeps = { now: () => 0, probeUdp: () => Promise.resolve("unreachable"), fetch: () => Promise.reject(new TypeError("offline")) };
    const r = await runNetworkTest("abc", null, deps);
    expect(r).toMatchObject({ grade: "blocked", rttMs: null });
  });
});

describe("mediaPath", () => {
  const both = { udp: "192.0.2.1:3478", ice_tcp: true, max_download_bytes: 1, max_upload_bytes: 1 };
  it("prefers UDP, then the TCP fallback, then nothing", () => {
    expect(mediaPath("reachable", both)).toBe("udp");
    expect(mediaPath("unreachable", both)).toBe("tcp");
    expect(mediaPath("unreachable", { ...both, ice_tcp: false })).toBe("none");
    // A server with UDP media off: the fallback is the way, and nothing was probed.
    expect(mediaPath("unreachable", { ...both, udp: null })).toBe("tcp");
    expect(mediaPath("unknown", both)).toBe("unknown");
  });
});

describe("UdpProbeReader", () => {
  const run = (events: GatheringEvent[]) => {
    const reader = new UdpProbeReader();
    for (const e of events) {
      const v = reader.observe(e);
      if (v) return v;
    }
    return reader.timedOut();
  };
  const hostUdp: GatheringEvent = { kind: "candidate", type: "host", protocol: "udp" };
  const hostTcp: GatheringEvent = { kind: "candidate", type: "host", protocol: "tcp" };

  it("takes a server-reflexive candidate as an answer", () => {
    expect(run([hostUdp, { kind: "candidate", type: "srflx", protocol: "udp" }])).toBe("reachable");
  });

  it("takes gathering that completes cleanly as an answer (Chromium drops a srflx equal to its host)", () => {
    expect(run([hostUdp, hostTcp, { kind: "complete" }])).toBe("reachable");
  });

  it("takes an error or no end before the deadline as no answer", () => {
    expect(run([hostUdp, { kind: "error" }, { kind: "complete" }])).toBe("unreachable");
    expect(run([hostUdp, hostTcp])).toBe("unreachable");
  });

  it("cannot tell without a UDP host candidate to send from", () => {
    expect(run([hostTcp, { kind: "complete" }])).toBe("unknown");
  });
});
