// The dashboard's stylesheet and its small script, kept in the code (no build
// step, nothing to copy next to the compiled package) and served under
// /ui/static/ with a content hash in the URL, so browsers may keep them for good.
// The script only adds comfort (confirmations, a copy button): every page reads
// and every form works without it.

import { createHash } from 'node:crypto';

const CSS = `
:root { --fg: #1d2329; --muted: #5d6975; --bg: #f6f7f9; --card: #fff; --line: #dde2e7; --accent: #2f6f4f;
  --accent-soft: #e3f0e8; --warn: #a4501b; --warn-soft: #fbeadf; --bad: #b3261e; --code: #eef1f4; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e3e7eb; --muted: #9aa5b0; --bg: #14181c; --card: #1c2126; --line: #2d343b; --accent: #7cc49a;
    --accent-soft: #1f3329; --warn: #f0a36b; --warn-soft: #3a2718; --bad: #ff8a80; --code: #232a31; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: var(--code); padding: 10px 12px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
header.top { display: flex; align-items: center; gap: 18px; padding: 10px 24px; background: var(--card); border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.brand { font-weight: 700; font-size: 18px; color: var(--fg); letter-spacing: .02em; }
nav.crumbs { flex: 1; color: var(--muted); }
nav.crumbs a { margin: 0 2px; }
.who { color: var(--muted); display: flex; gap: 10px; align-items: center; }
.who form { margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 6px 0 16px; }
h2 { font-size: 17px; margin: 26px 0 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; }
.card h2, .card h1 { margin-top: 0; }
form[role=search] { display: flex; gap: 10px; align-items: flex-end; flex-wrap: wrap; }
form[role=search] label { flex: 1; margin: 0; }
form[role=search] input[type=search] { width: 100%; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 16px; padding: 0; list-style: none; }
.stats li { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 130px; }
.stats b { display: block; font-size: 20px; }
.stats span { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: var(--card); margin-bottom: 16px; }
ul.sigs { padding-left: 18px; margin: 0; }
ul.sigs code { word-break: break-all; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 13px; }
td.num, th.num { text-align: right; white-space: nowrap; }
.name { word-break: break-all; }
.hash { color: var(--muted); }
.badge { display: inline-block; font-size: 12px; padding: 1px 7px; border-radius: 10px; background: var(--code); color: var(--muted); }
.badge.public, .badge.active, .badge.ok { background: var(--accent-soft); color: var(--accent); }
.badge.published, .badge.warn { background: var(--warn-soft); color: var(--warn); }
.badge.retired, .badge.revoked, .badge.bad { color: var(--bad); }
.muted { color: var(--muted); }
.flash { padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; background: var(--accent-soft); border: 1px solid var(--accent); }
.flash.error { background: var(--warn-soft); border-color: var(--warn); }
.secret { font-size: 15px; padding: 10px; background: var(--code); border-radius: 6px; word-break: break-all; user-select: all; }
form.inline { display: inline; margin: 0; }
input[type=text], input[type=password], input[type=search], select { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
button { font: inherit; padding: 6px 12px; border: 1px solid var(--accent); border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button.quiet { background: transparent; color: var(--accent); }
button.danger { background: transparent; border-color: var(--bad); color: var(--bad); }
label { display: inline-flex; flex-direction: column; gap: 3px; margin: 0 12px 10px 0; font-size: 13px; color: var(--muted); }
.signin { max-width: 460px; margin: 40px auto; }
.signin label { display: flex; margin-right: 0; }
.signin input { width: 100%; }
.tabs { display: flex; gap: 16px; margin: -6px 0 18px; border-bottom: 1px solid var(--line); }
.tabs a { padding: 6px 2px; }
.tabs a.here { border-bottom: 2px solid var(--accent); color: var(--fg); }
.pager { margin-top: 10px; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; word-break: break-all; }
figure.chart { margin: 0; }
figure.chart svg { display: block; max-height: 220px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.chart-line { fill: none; stroke: var(--accent); stroke-width: 2; }
.chart-area { fill: var(--accent-soft); stroke: none; }
.chart-point { fill: var(--accent); }
.chart-axis { stroke: var(--line); }
.chart-grid { stroke: var(--line); stroke-dasharray: 3 3; }
.chart-label { fill: var(--muted); font-size: 11px; }
.bar-hit { fill: var(--accent); }
.bar-miss { fill: var(--warn); }
.legend { margin-left: 10px; }
.legend::before { content: ""; display: inline-block; width: 9px; height: 9px; margin-right: 4px; border-radius: 2px; }
.legend.bar-hit::before { background: var(--accent); }
.legend.bar-miss::before { background: var(--warn); }
.chart-empty { color: var(--muted); }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 20px; }
`;

const JS = `
'use strict';
document.addEventListener('submit', (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});
for (const button of document.querySelectorAll('[data-copy]')) {
  button.hidden = false;
  button.addEventListener('click', () => {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(() => { button.textContent = 'Copied'; });
  });
}
`;

export interface Asset {
  readonly body: string;
  readonly contentType: string;
  /** The URL, with a hash of the content so that a new version is a new URL. */
  readonly url: string;
}

function asset(name: string, body: string, contentType: string): Asset {
  const version = createHash('sha256').update(body).digest('hex').slice(0, 12);
  return { body, contentType, url: `/ui/static/${name}?v=${version}` };
}

export const ASSETS: Readonly<Record<string, Asset>> = {
  'dashboard.css': asset('dashboard.css', CSS, 'text/css; charset=utf-8'),
  'dashboard.js': asset('dashboard.js', JS, 'text/javascript; charset=utf-8'),
};
