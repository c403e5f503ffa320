// What this browser is and can do: support for video visits, the phone-or-computer
// question, and which permission instructions to show.

export type BrowserKind =
  | "ios-safari"
  | "ios-other"
  | "android-chrome"
  | "samsung"
  | "chrome"
  | "edge"
  | "firefox"
  | "safari"
  | "other";

export interface BrowserInfo {
  kind: BrowserKind;
  mobile: boolean;
  /** Phones and small or slow devices send 640x480. */
  lowEnd: boolean;
  /** Screen sharing is offered on desktop browsers only. */
  canShareScreen: boolean;
  /** Output device choice (`setSinkId`). */
  canChooseSpeaker: boolean;
}

export function detectBrowser(ua = navigator.userAgent): BrowserInfo {
  const ios = /iPhone|iPad|iPod/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1);
  const android = /Android/.test(ua);
  const mobile = ios || android || /Mobi/.test(ua);
  let kind: BrowserKind = "other";
  if (ios) {
    kind = /CriOS|FxiOS|EdgiOS/.test(ua) ? "ios-other" : "ios-safari";
  } else if (/SamsungBrowser/.test(ua)) {
    kind = "samsung";
  } else if (/Edg\//.test(ua)) {
    kind = "edge";
  } else if (/Firefox\//.test(ua)) {
    kind = "firefox";
  } else if (/Chrome\/|Chromium\//.test(ua)) {
    kind = android ? "android-chrome" : "chrome";
  } else if (/Safari\//.test(ua)) {
    kind = "safari";
  }
  const nav = navigator as Navigator & { deviceMemory?: number };
  const fewCores = (navigator.hardwareConcurrency || 8) <= 2;
  const littleMemory = nav.deviceMemory !== undefined && nav.deviceMemory <= 2;
  return {
    kind,
    mobile,
    lowEnd: mobile || fewCores || littleMemory,
    canShareScreen: !mobile && typeof navigator.mediaDevices?.getDisplayMedia === "function",
    canChooseSpeaker: typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype,
  };
}

/** Why this browser cannot hold a video visit, or `null` when it can. */
export function unsupportedReason(): string | null {
  if (typeof RTCPeerConnection !== "function") {
    return "no-webrtc";
  }
  if (typeof navigator.mediaDevices?.getUserMedia !== "function") {
    return "no-getusermedia";
  }
  if (typeof WebSocket !== "function") {
    return "no-websocket";
  }
  if (!window.isSecureContext) {
    return "insecure";
  }
  return null;
}
