import { describe, expect, it } from "vitest";
import { pathStateWords, rttWords, verdictClass } from "./netcheck";

describe("network check words", () => {
  it("says where each path stands", () => {
    expect(pathStateWords("pass")).toBe("Pass");
    expect(pathStateWords("fail")).toBe("Fail");
    expect(pathStateWords("checking")).toBe("Checking…");
    expect(pathStateWords("not_checked")).toBe("Not checked");
  });

  it("gives round trips to a useful precision, and nothing without an answer", () => {
    expect(rttWords(0.42)).toBe("0.4 ms");
    expect(rttWords(12.34)).toBe("12 ms");
    expect(rttWords(null)).toBe("");
  });

  it("colours the verdict by what it means for a visit", () => {
    expect(verdictClass("ready")).toBe("ok");
    expect(verdictClass("tcp_fallback_only")).toBe("warn");
    expect(verdictClass("blocked")).toBe("bad");
    expect(verdictClass(null)).toBe("");
  });
});
