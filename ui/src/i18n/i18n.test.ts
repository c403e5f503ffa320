import { describe, expect, it } from "vitest";

import { en } from "./en";
import { es } from "./es";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("translations", () => {
  it("Spanish has every English text, with the same placeholders", () => {
    for (const [key, english] of Object.entries(en)) {
      const spanish = es[key as keyof typeof en];
      expect(spanish, key).toBeTruthy();
      expect(placeholders(spanish), key).toEqual(placeholders(english));
    }
  });

  it("plural texts come in pairs", () => {
    for (const key of Object.keys(en)) {
      if (key.endsWith(".one")) expect(Object.keys(en)).toContain(key.replace(/\.one$/, ".other"));
    }
  });
});
