import { describe, expect, it } from "vitest";

import { mediaSections, publisherMid } from "./sdp";

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
