// Escaping: whatever text reaches a page through `html` comes out as text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { escapeHtml, html, trustedHtml, urlPath } from '../../src/dashboard/html.ts';

/** What a browser would show for escaped text: the entities this module writes, undone. */
function unescape(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
}

test('the five characters that can break out of text or a quoted attribute are escaped', () => {
  assert.equal(escapeHtml(`<a href="x" onclick='y'>&amp;</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;');
});

test('interpolated strings are escaped; Html, numbers and lists pass as they should; nothing for null, undefined, false', () => {
  const label = '<script>alert(1)</script>';
  const inner = html`<b>${label}</b>`;
  assert.equal(
    html`<p title="${'" onmouseover="x'}">${inner} ${42} ${[label, html`<i>ok</i>`]}${null}${undefined}${false}</p>`.toString(),
    '<p title="&quot; onmouseover=&quot;x"><b>&lt;script&gt;alert(1)&lt;/script&gt;</b> 42 &lt;script&gt;alert(1)&lt;/script&gt;<i>ok</i></p>',
  );
  assert.equal(trustedHtml('<hr>').toString(), '<hr>');
});

test('any string survives a round trip through a text node and an attribute, and adds no markup', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => {
      const out = html`<p data-x="${text}">${text}</p>`.toString();
      const match = /^<p data-x="([^"<>]*)">([^<>]*)<\/p>$/.exec(out);
      assert.ok(match, out);
      assert.equal(unescape(match[1]!), text);
      assert.equal(unescape(match[2]!), text);
    }),
  );
});

test('urlPath percent-encodes each segment and builds the query', () => {
  assert.equal(urlPath(['ui', 'caches', 'a/b?c', 'x y']), '/ui/caches/a%2Fb%3Fc/x%20y');
  assert.equal(urlPath(['ui', 'login'], { next: '/ui/caches/main?x=1&y=2', empty: '', none: undefined }), '/ui/login?next=%2Fui%2Fcaches%2Fmain%3Fx%3D1%26y%3D2');
});
