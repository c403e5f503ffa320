// A chat panel: the conversation (a live log screen readers announce) and a box to write.
// Sending goes over REST so a failure can be shown; messages arrive over signaling.

import type { ChatMessage, Role } from "../generated/proto";
import { h, replace, uniqueId } from "./dom";
import { formatClock, t } from "../i18n";

export interface ChatOptions {
  title: string;
  /** Shown above the box, e.g. "Your messages go to the clinic". */
  hint?: string;
  myId: () => string | undefined;
  nameOf: (participantId: string, role: Role) => string;
  send: (text: string) => Promise<void>;
}

export class ChatPanel {
  readonly el: HTMLElement;
  private readonly log: HTMLElement;
  private readonly list = h("ol", { class: "chat-list" });
  private readonly input: HTMLTextAreaElement;
  private readonly error: HTMLElement;
  private readonly seen = new Set<string>();

  constructor(private readonly opts: ChatOptions) {
    const inputId = uniqueId("chat-input");
    const titleId = uniqueId("chat-title");
    // The log role goes on a wrapper: on the list itself it would hide the list semantics.
    this.log = h("div", { class: "chat-log", role: "log", "aria-live": "polite", "aria-labelledby": titleId, tabindex: 0, hidden: true }, this.list);
    this.input = h("textarea", { id: inputId, rows: 2, maxlength: 2000, autocomplete: "off" });
    this.error = h("p", { class: "field-error", role: "alert" });
    const form = h(
      "form",
      { class: "chat-form", onsubmit: (e: Event) => void this.submit(e) },
      h("label", { for: inputId }, t("chat.write")),
      opts.hint ? h("p", { class: "hint" }, opts.hint) : null,
      h("div", { class: "chat-row" }, this.input, h("button", { type: "submit", class: "button primary" }, t("chat.send"))),
      this.error,
    );
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    this.el = h(
      "section",
      { class: "chat", "aria-labelledby": titleId },
      h("h2", { id: titleId }, opts.title),
      h("p", { class: "chat-empty" }, t("chat.empty")),
      this.log,
      form,
    );
  }

  focus(): void {
    this.input.focus();
  }

  /** Adds messages not shown yet, in order. */
  add(messages: ChatMessage[]): void {
    for (const m of messages) {
      if (this.seen.has(m.id)) continue;
      this.seen.add(m.id);
      const mine = m.from === this.opts.myId();
      const who = mine ? t("chat.you") : this.opts.nameOf(m.from, m.from_role);
      this.list.appendChild(
        h(
          "li",
          { class: mine ? "msg mine" : "msg" },
          h("span", { class: "msg-meta" }, `${who} · ${formatClock(m.sent_at)}`),
          h("span", { class: "msg-text" }, m.text),
        ),
      );
    }
    this.el.classList.toggle("has-messages", this.seen.size > 0);
    this.log.hidden = this.seen.size === 0;
    this.log.scrollTop = this.log.scrollHeight;
  }

  clear(): void {
    this.seen.clear();
    replace(this.list);
  }

  private async submit(e: Event) {
    e.preventDefault();
    const text = this.input.value.trim();
    if (!text) return;
    this.error.textContent = "";
    try {
      await this.opts.send(text);
      this.input.value = "";
    } catch (err) {
      this.error.textContent = err instanceof Error ? err.message : t("chat.failed");
    }
  }
}
