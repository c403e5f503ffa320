import { describe, expect, it } from "vitest";
import { deviceWords, queueOrder, waited } from "./format";
import type { Visit } from "../generated/proto";

function visit(id: string, state: Visit["state"], at: string, since: string | null = null): Visit {
  return {
    id, room: id, clinic_id: "c", clinician_id: "d", scheduled_at: at, duration_minutes: 30, state,
    waiting_since: since, started_at: null, ended_at: null, running_late_minutes: null,
    device_check: null, link_expires_at: at,
  };
}

describe("queue words", () => {
  it("says how long someone waited", () => {
    const now = new Date("2026-11-23T10:00:00Z");
    expect(waited("2026-11-23T09:59:40Z", now)).toBe("just now");
    expect(waited("2026-11-23T09:56:00Z", now)).toBe("4 min");
    expect(waited("2026-11-23T08:48:00Z", now)).toBe("1 h 12 min");
  });

  it("summarises the device check", () => {
    expect(deviceWords(null)).toBeNull();
    expect(deviceWords({ camera_ok: true, microphone_ok: true, speaker_ok: true, network: "good" }))
      .toEqual({ text: "Devices OK · Network good", ok: true });
    expect(deviceWords({ camera_ok: false, microphone_ok: true, speaker_ok: true, network: "blocked" }))
      .toEqual({ text: "No camera · Media blocked", ok: false });
  });

  it("puts the longest wait first", () => {
    const order = queueOrder([
      visit("later", "scheduled", "2026-11-23T11:00:00Z"),
      visit("new", "waiting", "2026-11-23T10:30:00Z", "2026-11-23T10:20:00Z"),
      visit("old", "waiting", "2026-11-23T10:00:00Z", "2026-11-23T09:55:00Z"),
      visit("done", "ended", "2026-11-23T08:00:00Z"),
    ]).map((v) => v.id);
    expect(order).toEqual(["old", "new", "later", "done"]);
  });
});
