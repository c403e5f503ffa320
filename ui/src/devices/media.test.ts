import { describe, expect, it } from "vitest";

import { problemOf, toneWav } from "./media";

describe("toneWav", () => {
  it("makes a 16-bit mono WAV of the notes", async () => {
    const wav = toneWav([440, 880], 0.1);
    const bytes = new DataView(await wav.arrayBuffer());
    const text = (o: number) => String.fromCharCode(...new Uint8Array(bytes.buffer, o, 4));
    expect(text(0)).toBe("RIFF");
    expect(text(8)).toBe("WAVE");
    expect(bytes.getUint16(22, true)).toBe(1);
    expect(bytes.getUint32(40, true)).toBe(2 * 2 * Math.floor(22050 * 0.1));
    expect(wav.type).toBe("audio/wav");
  });
});

describe("problemOf", () => {
  it("tells blocked from missing from busy devices", () => {
    expect(problemOf(new DOMException("x", "NotAllowedError"))).toBe("denied");
    expect(problemOf(new DOMException("x", "NotFoundError"))).toBe("not-found");
    expect(problemOf(new DOMException("x", "NotReadableError"))).toBe("in-use");
    expect(problemOf(new Error("x"))).toBe("other");
  });
});
