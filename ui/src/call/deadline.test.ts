import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { ConnectDeadline } from "./deadline";

describe("ConnectDeadline", () => {
  let missed: string[];
  let deadline: ConnectDeadline<string>;

  beforeEach(() => {
    vi.useFakeTimers();
    missed = [];
    deadline = new ConnectDeadline<string>(15000, (c) => missed.push(c));
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("reports a connection that has not connected 15 s after its answer, once", () => {
    deadline.watch("first");
    deadline.answered("first");
    vi.advanceTimersByTime(14999);
    expect(missed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(missed).toEqual(["first"]);
    vi.advanceTimersByTime(60000);
    expect(missed).toEqual(["first"]);
  });

  it("leaves a connection that connected in time alone, renegotiations included", () => {
    deadline.watch("first");
    deadline.answered("first");
    vi.advanceTimersByTime(5000);
    deadline.reached("first");
    deadline.answered("first");
    vi.advanceTimersByTime(60000);
    expect(missed).toEqual([]);
  });

  it("gives a connection that replaces another its full time, and forgets the old one", () => {
    deadline.watch("first");
    deadline.answered("first");
    vi.advanceTimersByTime(10000);
    deadline.watch("second");
    deadline.answered("second");
    // The first connection's deadline would have passed here.
    vi.advanceTimersByTime(10000);
    expect(missed).toEqual([]);
    vi.advanceTimersByTime(5000);
    expect(missed).toEqual(["second"]);
  });

  it("does not extend the deadline when a second answer arrives before it passes", () => {
    deadline.watch("first");
    deadline.answered("first");
    vi.advanceTimersByTime(10000);
    deadline.answered("first");
    vi.advanceTimersByTime(5000);
    expect(missed).toEqual(["first"]);
  });

  it("ignores events about a connection it no longer watches, and nothing after stop", () => {
    deadline.watch("first");
    deadline.watch("second");
    deadline.answered("first");
    deadline.reached("first");
    deadline.answered("second");
    vi.advanceTimersByTime(15000);
    expect(missed).toEqual(["second"]);

    deadline.watch("third");
    deadline.answered("third");
    deadline.stop();
    vi.advanceTimersByTime(15000);
    expect(missed).toEqual(["second"]);
  });
});
