// A tiny DOM builder: enough for the patient pages without a framework.
//
// `h("button", { class: "primary", onclick: go }, t("next"))` builds an element. Attributes
// whose value is `false`, `null` or `undefined` are left out; `true` sets an empty attribute.
// Text is always set as text, never parsed as HTML, so nothing a server or a person typed
// can inject markup.

type Child = Node | string | number | null | undefined | false | Child[];
/** Event handlers may be async; a rejection is logged, never left unhandled. */
type Handler = (event: Event) => unknown;
export type Attrs = Record<string, string | number | boolean | null | undefined | Handler>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (typeof value === "function") {
      const handler = value;
      el.addEventListener(name.replace(/^on/, ""), (event) => {
        const result = handler(event);
        if (result instanceof Promise) result.catch((e: unknown) => console.error(e));
      });
    } else if (name === "class") {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (name === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(value);
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(parent, child);
    } else if (child instanceof Node) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
}

/** Replaces every child of `parent`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild) {
    parent.removeChild(parent.firstChild);
  }
  append(parent, children);
}

/** An inline SVG icon from a path list (24x24 viewBox), hidden from screen readers. */
export function icon(paths: string[], className = "icon"): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", className);
  for (const d of paths) {
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", d);
    svg.appendChild(p);
  }
  return svg;
}

let uid = 0;
/** A document-unique id for label/field pairs. */
export function uniqueId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}`;
}
