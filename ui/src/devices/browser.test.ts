import { afterEach, describe, expect, it, vi } from "vitest";

import { detectBrowser } from "./browser";

const ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/** A browser's navigator: cores, memory, and whether it can capture the screen. */
function navigatorWith({ cores = 8, memory = 8, screen = true } = {}) {
  vi.stubGlobal("navigator", {
    hardwareConcurrency: cores,
    deviceMemory: memory,
    maxTouchPoints: 0,
    mediaDevices: screen ? { getDisplayMedia: () => undefined } : {},
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("detectBrowser", () => {
  it("offers screen sharing and full-size video on a capable computer", () => {
    navigatorWith();
    const b = detectBrowser(DESKTOP);
    expect(b).toMatchObject({ kind: "chrome", mobile: false, lowEnd: false, canShareScreen: true });
  });

  it("treats phones as low-end (640x480) and offers them no screen sharing", () => {
    navigatorWith();
    expect(detectBrowser(ANDROID)).toMatchObject({ kind: "android-chrome", mobile: true, lowEnd: true, canShareScreen: false });
    expect(detectBrowser(IPHONE)).toMatchObject({ kind: "ios-safari", mobile: true, lowEnd: true, canShareScreen: false });
  });

  it("treats a computer with two cores or 2 GB as low-end", () => {
    navigatorWith({ cores: 2 });
    expect(detectBrowser(DESKTOP).lowEnd).toBe(true);
    navigatorWith({ memory: 2 });
    expect(detectBrowser(DESKTOP).lowEnd).toBe(true);
  });
});
