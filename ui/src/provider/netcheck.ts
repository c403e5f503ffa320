// The network check screen: each path a visit takes to the server (web, signaling, media
// over UDP and over TCP) with pass or fail, the round trip, and on failure the sentence to
// give IT. The check itself runs in the app's controller; this file only draws it.
import { h } from "../components/dom";
import type { NetworkCheck, PathCheck, PathState, NetVerdict } from "../generated/desktop";

const STATE_WORDS: Record<PathState, string> = {
  waiting: "Waiting",
  checking: "Checking…",
  pass: "Pass",
  fail: "Fail",
  not_checked: "Not checked",
};

export function pathStateWords(state: PathState): string {
  return STATE_WORDS[state];
}

/** "12.3 ms", or "" when there was no answer. */
export function rttWords(ms: number | null): string {
  if (ms === null) return "";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** The verdict's tone on screen. */
export function verdictClass(verdict: NetVerdict | null): "ok" | "warn" | "bad" | "" {
  switch (verdict) {
    case "ready":
      return "ok";
    case "tcp_fallback_only":
      return "warn";
    case "blocked":
      return "bad";
    default:
      return "";
  }
}

function pathRow(p: PathCheck): HTMLElement {
  const failed = p.state === "fail" || p.state === "not_checked";
  return h(
    "li",
    { class: `netpath ${p.state}`, "data-path": p.path, "data-state": p.state },
    h("span", { class: `pill ${p.state === "pass" ? "ok" : p.state === "fail" ? "bad" : ""}` }, pathStateWords(p.state)),
    h("span", { class: "label" }, p.label),
    h("span", { class: "rtt" }, rttWords(p.rtt_ms)),
    p.target ? h("span", { class: "target muted small" }, p.target) : null,
    failed && p.detail ? h("p", { class: "detail" }, p.detail) : null,
    p.advice ? h("p", { class: "advice" }, h("strong", {}, "For IT: "), p.advice) : null,
  );
}

export interface NetworkCheckActions {
  busy: boolean;
  /** The text could not go to the clipboard: show it to be copied by hand. */
  showText: boolean;
  run: () => unknown;
  copy: () => unknown;
  back: () => unknown;
}

export function networkCheckScreen(check: NetworkCheck | null, actions: NetworkCheckActions): HTMLElement {
  const running = check?.running ?? actions.busy;
  const verdict = check?.verdict ?? null;
  return h(
    "section",
    { class: "netcheck card", id: "network-check" },
    h("h2", {}, "Network check"),
    h(
      "p",
      { class: "muted" },
      check
        ? `From this computer to ${check.server} (proxy: ${check.proxy}).`
        : "Checks from this computer that video visits can reach your Rounds server.",
    ),
    check ? h("ul", { class: "netpaths" }, check.paths.map(pathRow)) : null,
    check?.summary ? h("p", { class: `verdict ${verdictClass(verdict)}`, id: "network-verdict" }, check.summary) : null,
    actions.showText && check
      ? [
          h("p", { class: "muted small" }, "Select the text below and copy it into your message to IT:"),
          h("textarea", { class: "netcheck-text", readonly: true, rows: 12, value: check.text }),
        ]
      : null,
    h(
      "div",
      { class: "row-buttons" },
      h("button", { class: "primary", id: "run-network-check", type: "button", disabled: running, onclick: actions.run },
        running ? "Checking…" : check ? "Check again" : "Check the network"),
      h("button", { type: "button", id: "copy-network-check", disabled: !check || running, onclick: actions.copy }, "Copy the results"),
      h("button", { class: "quiet", type: "button", onclick: actions.back }, "Back"),
    ),
  );
}
