import { afterEach, describe, expect, it, vi } from "vitest";

import { AnswerWaiter } from "./answers";

describe("AnswerWaiter", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hands the answer naming the offer to that offer", async () => {
    const waiter = new AnswerWaiter(15000);
    const { offerId, answer } = waiter.expect();
    expect(waiter.answer("v=0 answer", offerId)).toBe(true);
    await expect(answer).resolves.toBe("v=0 answer");
  });

  it("leaves a late answer to an offer that timed out alone, and the next offer gets its own", async () => {
    vi.useFakeTimers();
    const waiter = new AnswerWaiter(15000);
    const first = waiter.expect();
    const failed = expect(first.answer).rejects.toThrow("no answer from the server");
    vi.advanceTimersByTime(15000);
    await failed;

    const second = waiter.expect();
    expect(second.offerId).not.toBe(first.offerId);
    // The server's answer to the first offer arrives only now.
    expect(waiter.answer("answer to the first", first.offerId)).toBe(false);
    expect(waiter.answer("answer to the second", second.offerId)).toBe(true);
    await expect(second.answer).resolves.toBe("answer to the second");
  });

  it("an answer without a number goes to the offer waiting (a server older than offer_id)", async () => {
    const waiter = new AnswerWaiter(15000);
    const { answer } = waiter.expect();
    expect(waiter.answer("v=0 answer", undefined)).toBe(true);
    await expect(answer).resolves.toBe("v=0 answer");
  });

  it("ignores an answer when no offer waits, and a second answer to the same offer", async () => {
    const waiter = new AnswerWaiter(15000);
    expect(waiter.answer("unasked", 1)).toBe(false);
    const { offerId, answer } = waiter.expect();
    expect(waiter.answer("first", offerId)).toBe(true);
    expect(waiter.answer("again", offerId)).toBe(false);
    await expect(answer).resolves.toBe("first");
  });

  it("a cancelled wait fails with the reason, and its answer is then left alone", async () => {
    const waiter = new AnswerWaiter(15000);
    const { offerId, answer } = waiter.expect();
    waiter.cancel(new Error("closed"));
    await expect(answer).rejects.toThrow("closed");
    expect(waiter.answer("too late", offerId)).toBe(false);
  });

  it("a new offer gives up the one still waiting", async () => {
    const waiter = new AnswerWaiter(15000);
    const first = waiter.expect();
    const second = waiter.expect();
    await expect(first.answer).rejects.toThrow("a newer offer was made");
    expect(waiter.answer("for the first", first.offerId)).toBe(false);
    expect(waiter.answer("for the second", second.offerId)).toBe(true);
    await expect(second.answer).resolves.toBe("for the second");
  });
});
