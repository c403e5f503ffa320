// English and Spanish. The language comes from the browser unless the person chose one
// (kept in localStorage); `<html lang>` follows it so screen readers pronounce it right.

import { en } from "./en";
import { es } from "./es";

export type Key = keyof typeof en;
export type Lang = "en" | "es";
export const LANGS: readonly Lang[] = ["en", "es"];
/** Each language's name in itself, for the switch. */
export const LANG_NAMES: Record<Lang, string> = { en: "English", es: "Español" };

const dictionaries: Record<Lang, Record<Key, string>> = { en, es };
const STORAGE_KEY = "rounds.lang";
const listeners = new Set<() => void>();

function detect(): Lang {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === "en" || saved === "es") return saved;
  } catch {
    // Storage can be off (private mode); fall through to the browser's languages.
  }
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base === "es" || base === "en") return base;
  }
  return "en";
}

let current: Lang = "en";

export function initLang(): Lang {
  current = detect();
  document.documentElement.lang = current;
  return current;
}

export function lang(): Lang {
  return current;
}

export function setLang(next: Lang): void {
  if (next === current) return;
  current = next;
  document.documentElement.lang = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // Not remembered; still switched for this page.
  }
  for (const l of listeners) l();
}

export function onLangChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The text for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key: Key, vars: Record<string, string | number> = {}): string {
  const text = dictionaries[current][key] ?? en[key];
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? `{${name}}`));
}

/** Plural-aware: `key` is the base of `<key>.one` and `<key>.other`; `{n}` is the count. */
export function tn(base: PluralBase, n: number, vars: Record<string, string | number> = {}): string {
  const form = new Intl.PluralRules(current).select(n) === "one" ? "one" : "other";
  return t(`${base}.${form}` as Key, { n, ...vars });
}

type PluralBase = Key extends infer K ? (K extends `${infer B}.one` ? B : never) : never;

/** A visit time in the clinic's time zone, in words, e.g. "Tuesday, November 24 at 2:30 PM CST". */
export function formatVisitTime(iso: string, timeZone: string): string {
  const date = new Date(iso);
  const opts: Intl.DateTimeFormatOptions = { timeZone, weekday: "long", month: "long", day: "numeric" };
  const time: Intl.DateTimeFormatOptions = { timeZone, hour: "numeric", minute: "2-digit", timeZoneName: "short" };
  try {
    return t("time.at", {
      day: new Intl.DateTimeFormat(current, opts).format(date),
      time: new Intl.DateTimeFormat(current, time).format(date),
    });
  } catch {
    return date.toLocaleString(current);
  }
}

/** A clock time like "2:30 PM", in the browser's zone. */
export function formatClock(iso: string): string {
  return new Intl.DateTimeFormat(current, { hour: "numeric", minute: "2-digit" }).format(new Date(iso));
}
