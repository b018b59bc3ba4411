// HTML built by tagged templates: every interpolated value is escaped unless it
// is already Html (made by `html` itself), so a store path name, a label or a
// narinfo line can never become markup. There is deliberately no way to mark an
// arbitrary string as safe from outside this file except `trustedHtml`, used for
// constant markup only.

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for element content and for quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Markup known to be safe: made by `html`, or a constant. */
export class Html {
  readonly #text: string;
  constructor(text: string) {
    this.#text = text;
  }
  toString(): string {
    return this.#text;
  }
}

/** What a template may interpolate: text (escaped), numbers, Html, lists of those; nothing for null, undefined, false. */
export type Interpolated = string | number | Html | null | undefined | false | readonly Interpolated[];

function render(value: Interpolated): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  if (typeof value === 'number') return escapeHtml(String(value));
  return escapeHtml(value as string);
}

export function html(strings: TemplateStringsArray, ...values: Interpolated[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Constant markup written in this codebase (never data). */
export function trustedHtml(constant: string): Html {
  return new Html(constant);
}

/** A URL path under the server: each segment percent-encoded, the query built with URLSearchParams. */
export function urlPath(segments: readonly string[], query: Record<string, string | undefined> = {}): string {
  const path = '/' + segments.map((s) => encodeURIComponent(s)).join('/');
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, value);
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}
