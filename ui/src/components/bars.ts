// Network-quality bars: a score from 0 (not known yet) to 5 (excellent), drawn and named.

import { h } from "./dom";
import { t, type Key } from "../i18n";

const WORDS: Key[] = ["net.unknown", "net.bad", "net.poor", "net.fair", "net.good", "net.excellent"];

export function qualityWord(score: number): string {
  return t(WORDS[Math.max(0, Math.min(5, Math.round(score)))] ?? "net.unknown");
}

export function bars(score: number, who: string): HTMLElement {
  const s = Math.max(0, Math.min(5, Math.round(score)));
  const level = s === 0 ? "unknown" : s <= 2 ? "low" : s === 3 ? "mid" : "high";
  return h(
    "span",
    { class: `bars bars-${level}`, role: "img", "aria-label": t("net.label", { who, quality: qualityWord(s) }), title: qualityWord(s) },
    [1, 2, 3, 4, 5].map((i) => h("span", { class: i <= s ? "bar on" : "bar", style: `height:${20 + i * 16}%` })),
  );
}
