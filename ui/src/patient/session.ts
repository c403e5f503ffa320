// What this tab remembers about a link, so a reload or a dropped connection goes straight
// back (to the waiting room or into the visit) without asking again. Kept in sessionStorage:
// it lasts as long as the tab and never leaves the device.

import type { DeviceCheck, Role } from "../generated/proto";

export interface SavedVisit {
  name: string;
  role: Role;
  room: string;
  participantId: string;
  /** Camera and microphone choices from the device check. */
  cameraId?: string;
  microphoneId?: string;
  speakerId?: string;
  audioOnly: boolean;
  check?: DeviceCheck;
  /** The patient pressed "Join" once admitted: a reload goes straight back in. */
  joined?: boolean;
  surveyDone?: boolean;
  /** The last room token; refreshed by checking in again. */
  token?: string;
}

function key(code: string): string {
  return `rounds.visit.${code}`;
}

export function loadVisit(code: string): SavedVisit | null {
  try {
    const raw = sessionStorage.getItem(key(code));
    return raw ? (JSON.parse(raw) as SavedVisit) : null;
  } catch {
    return null;
  }
}

export function saveVisit(code: string, visit: SavedVisit): void {
  try {
    sessionStorage.setItem(key(code), JSON.stringify(visit));
  } catch {
    // Without storage a reload starts over; the link still works.
  }
}

export function forgetVisit(code: string): void {
  try {
    sessionStorage.removeItem(key(code));
  } catch {
    // Nothing to forget.
  }
}
