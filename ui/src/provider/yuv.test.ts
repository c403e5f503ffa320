import { describe, expect, it } from "vitest";
import { parseFrame } from "./yuv";

function message(id: string, width: number, height: number, planes: number): ArrayBuffer {
  const idBytes = new TextEncoder().encode(id);
  const buf = new ArrayBuffer(2 + idBytes.length + 8 + planes);
  const view = new DataView(buf);
  view.setUint16(0, idBytes.length, true);
  new Uint8Array(buf, 2, idBytes.length).set(idBytes);
  view.setUint32(2 + idBytes.length, width, true);
  view.setUint32(6 + idBytes.length, height, true);
  return buf;
}

describe("frame messages", () => {
  it("parse the app's layout", () => {
    const f = parseFrame(message("p-1", 4, 2, 8 + 2 * 2));
    expect(f).not.toBeNull();
    expect(f?.participant).toBe("p-1");
    expect([f?.width, f?.height, f?.data.byteLength]).toEqual([4, 2, 12]);
  });

  it("refuse truncated frames", () => {
    expect(parseFrame(message("p-1", 640, 360, 100))).toBeNull();
    expect(parseFrame(new ArrayBuffer(3))).toBeNull();
  });
});
