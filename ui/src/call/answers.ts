/**
 * Pairs the publisher's offers with the server's answers. Each offer gets a number the server
 * echoes in its answer, so a late answer to an offer given up on (timed out, or sent on a
 * connection since replaced) is recognised and left alone instead of being applied to the
 * offer made after it.
 */
export class AnswerWaiter {
  private pending: { offerId: number; resolve(sdp: string): void; reject(e: Error): void } | null = null;
  private nextOfferId = 1;

  constructor(private readonly timeoutMs: number) {}

  /**
   * Starts waiting for the answer to a new offer: returns the number to send with the offer,
   * and the answer's SDP, which fails after the timeout. A wait still open is given up.
   */
  expect(): { offerId: number; answer: Promise<string> } {
    this.cancel(new Error("a newer offer was made"));
    const offerId = this.nextOfferId++;
    const answer = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending?.offerId === offerId) this.pending = null;
        reject(new Error("no answer from the server"));
      }, this.timeoutMs);
      this.pending = {
        offerId,
        resolve: (sdp) => {
          clearTimeout(timer);
          resolve(sdp);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
    return { offerId, answer };
  }

  /**
   * Hands an answer to the offer waiting for it. Returns false, and changes nothing, when no
   * offer waits or the answer names another one. An answer without a number (a server older
   * than `offer_id`) goes to the offer waiting.
   */
  answer(sdp: string, offerId?: number | null): boolean {
    const pending = this.pending;
    if (!pending || (offerId ?? pending.offerId) !== pending.offerId) return false;
    this.pending = null;
    pending.resolve(sdp);
    return true;
  }

  /** Gives up the offer waiting, if any: its answer fails with `reason`. */
  cancel(reason: Error) {
    const pending = this.pending;
    this.pending = null;
    pending?.reject(reason);
  }
}
