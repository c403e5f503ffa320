import { describe, expect, it } from "vitest";

import { dtlsFingerprint, mediaSections, publisherMid } from "./sdp";

const OFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "a=group:BUNDLE 0 1 2",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=mid:0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=mid:1",
  "a=sendonly",
  "a=msid:abc123 abc123_0",
  "m=video 0 UDP/TLS/RTP/SAVPF 96",
  "a=mid:2",
  "a=inactive",
  "",
].join("\r\n");

describe("mediaSections", () => {
  it("reads mid, kind, direction and msid of each m-section", () => {
    const sections = mediaSections(OFFER);
    expect(sections.map((s) => [s.mid, s.kind, s.direction, s.streamId, s.port])).toEqual([
      ["0", "application", "sendrecv", null, 9],
      ["1", "audio", "sendonly", "abc123", 9],
      ["2", "video", "inactive", null, 0],
    ]);
  });

  it("maps our SFU's track ids back to the publisher's mid", () => {
    expect(publisherMid("abc123_0", "abc123")).toBe("0");
    expect(publisherMid("other_0", "abc123")).toBeNull();
    expect(publisherMid(null, "abc123")).toBeNull();
  });
});

describe("dtlsFingerprint", () => {
  it("reads the certificate fingerprint, whatever the case of its hex digits", () => {
    const sdp = ["v=0", "s=-", "a=fingerprint:sha-256 AB:CD:EF", "m=audio 9 UDP/TLS/RTP/SAVPF 111", ""].join("\r\n");
    expect(dtlsFingerprint(sdp)).toBe("sha-256 ab:cd:ef");
  });

  it("tells a new connection's offer from a renegotiation of the same one", () => {
    const first = `${OFFER}a=fingerprint:sha-256 AA:BB\r\n`;
    const again = `${OFFER}a=fingerprint:sha-256 aa:bb\r\n`;
    const fresh = `${OFFER}a=fingerprint:sha-256 CC:DD\r\n`;
    expect(dtlsFingerprint(again)).toBe(dtlsFingerprint(first));
    expect(dtlsFingerprint(fresh)).not.toBe(dtlsFingerprint(first));
  });

  it("is null for an offer without one", () => {
    expect(dtlsFingerprint(OFFER)).toBeNull();
  });
});
