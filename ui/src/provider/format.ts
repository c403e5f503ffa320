// Words and numbers for the queue, kept free of the DOM so they are unit-tested.
import type { Visit, VisitState, NetworkGrade, DeviceCheck } from "../generated/proto";
import type { AppStatus } from "../generated/desktop";

export function clock(iso: string, timeZone: string): string {
  try {
    return new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", timeZone }).format(new Date(iso));
  } catch {
    return new Date(iso).toISOString().slice(11, 16);
  }
}

/** "just now", "4 min", "1 h 12 min". */
export function waited(sinceIso: string, now: Date): string {
  const minutes = Math.max(0, Math.floor((now.getTime() - new Date(sinceIso).getTime()) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

const STATE_WORDS: Record<VisitState, string> = {
  scheduled: "Not checked in",
  waiting: "Waiting",
  in_progress: "In visit",
  ended: "Ended",
  no_show: "No show",
};

export function stateWords(state: VisitState): string {
  return STATE_WORDS[state];
}

const GRADE_WORDS: Record<NetworkGrade, string> = {
  good: "Network good",
  fair: "Network fair",
  poor: "Network poor",
  blocked: "Media blocked",
};

/** The device check in a few words, or null when the patient has not run it. */
export function deviceWords(check: DeviceCheck | null): { text: string; ok: boolean } | null {
  if (!check) return null;
  const missing = [
    !check.camera_ok && "camera",
    !check.microphone_ok && "microphone",
    !check.speaker_ok && "speaker",
  ].filter(Boolean);
  const devices = missing.length ? `No ${missing.join(", ")}` : "Devices OK";
  return {
    text: `${devices} · ${GRADE_WORDS[check.network]}`,
    ok: missing.length === 0 && (check.network === "good" || check.network === "fair"),
  };
}

export function connectionWords(status: AppStatus): string {
  const c = status.connection;
  switch (c.state) {
    case "signed_out":
      return "Signed out";
    case "connecting":
      return "Connecting…";
    case "online":
      return "Online";
    case "reconnecting":
      return `Offline — retrying in ${c.retry_in_secs} s`;
  }
}

/** Waiting first (longest wait first), then upcoming, then the rest by time. */
export function queueOrder(visits: Visit[]): Visit[] {
  const rank = (v: Visit): number =>
    v.state === "waiting" ? 0 : v.state === "in_progress" ? 1 : v.state === "scheduled" ? 2 : 3;
  return [...visits].sort((a, b) => {
    const r = rank(a) - rank(b);
    if (r !== 0) return r;
    if (a.state === "waiting" && b.state === "waiting") {
      return (a.waiting_since ?? "").localeCompare(b.waiting_since ?? "");
    }
    return a.scheduled_at.localeCompare(b.scheduled_at);
  });
}
