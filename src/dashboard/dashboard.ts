// The web dashboard: `/` and everything under `/ui/`. Server-rendered HTML,
// readable without JavaScript; a session is a token in an HttpOnly cookie (see
// session.ts). Access follows the API's rules: public caches are readable by
// anyone, a private cache is shown only to tokens that may read it (to others
// it is as absent as a cache that does not exist), and keys, tokens and the GC
// preview need admin permission on the cache.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { IndexUnavailableError, type CacheRecord, type KeyRecord, type PathSummary, type TokenRecord } from '../index/cache-index.ts';
import { parseNarInfo, type NarInfo } from '../nix/narinfo.ts';
import { isHashPart } from '../nix/store-path.ts';
import { retireKey, rotateKey, trustedPublicKeys } from '../services/cache-admin.ts';
import { runGc, type GcReport } from '../services/gc.ts';
import type { Larder } from '../services/larder.ts';
import { Rejection } from '../services/rejection.ts';
import { grants, isPermission, isServerAdmin } from '../services/tokens.ts';
import { parseDurationValue } from '../services/units.ts';
import { HttpError, REJECTION_STATUS } from '../server/http-error.ts';
import { StorageUnavailableError } from '../storage/blob-store.ts';
import { ASSETS, type Asset } from './assets.ts';
import { CacheStats } from './cache-stats.ts';
import { readForm } from './form-body.ts';
import { lookupBars, sizeSeries } from './growth.ts';
import type { Flash, Viewer } from './layout.ts';
import { renderCache } from './pages/cache.ts';
import { renderError } from './pages/error.ts';
import { renderGcPreview } from './pages/gc.ts';
import { renderKeys } from './pages/keys.ts';
import { renderOverview } from './pages/overview.ts';
import { narinfoFields, signatureViews } from './narinfo-view.ts';
import { renderPath, type ReferenceView } from './pages/path.ts';
import { renderSearch } from './pages/search.ts';
import { renderSignIn } from './pages/sign-in.ts';
import { renderTokens } from './pages/tokens.ts';
import { keysUrl, loginUrl, pathUrl, safeNext, tokensUrl } from './routes.ts';
import { parseSearchQuery } from './search-query.ts';
import {
  clearedSessionCookie,
  crossSiteProblem,
  csrfTokenFor,
  csrfTokenMatches,
  isHttps,
  parseCookies,
  SESSION_COOKIE,
  sessionCookie,
} from './session.ts';

/** Caches the overview shows in detail; the rest are counted. */
const OVERVIEW_CACHES = 50;
const LIST_ROWS = 10;
const SEARCH_PAGE = 50;
const REFERRERS_PAGE = 100;
const TOKENS_PAGE = 50;
/** Paths a closure's size is summed over at most (a big system closure has a few thousand). */
const CLOSURE_WALK_LIMIT = 20_000;
/** Days of the lookups chart. */
const LOOKUP_DAYS = 30;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
};

/** One request as the dashboard sees it. */
interface Visit {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly viewer: Viewer | undefined;
  /** The token behind the session: for the CSRF check only. */
  readonly sessionToken: string | undefined;
  /** Set-Cookie headers every answer carries (ending a session whose token stopped working). */
  readonly cookies: string[];
  readonly started: number;
}

/** How long a GC dry run serves later visits of the preview page. */
const GC_PREVIEW_REUSE_MS = 60_000;

export class Dashboard {
  readonly #larder: Larder;
  readonly #stats: CacheStats;
  readonly #now: () => number;
  /**
   * Each cache's last GC dry run: planning reads the whole graph (seconds at 100,000 paths), so
   * visits within a minute share one plan (the page says when it was made), and a plan under way
   * is waited for rather than started again.
   */
  readonly #gcPreviews = new Map<string, { readonly at: number; readonly report: Promise<GcReport> }>();

  constructor(larder: Larder) {
    this.#larder = larder;
    this.#now = larder.now;
    this.#stats = new CacheStats(larder.index, larder.now);
  }

  async handle(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const asset = segments[0] === 'ui' && segments[1] === 'static' && segments.length === 3 ? ASSETS[segments[2]!] : undefined;
    if (asset) return sendAsset(req, res, asset, url);
    let visit: Visit | undefined;
    try {
      visit = await this.#visit(req, res, url, started);
      await this.#route(visit, segments);
    } catch (error) {
      this.#fail(req, res, visit, error);
    }
  }

  async #visit(req: IncomingMessage, res: ServerResponse, url: URL, started: number): Promise<Visit> {
    const sessionToken = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const cookies: string[] = [];
    let viewer: Viewer | undefined;
    if (sessionToken) {
      const record = await this.#larder.tokens.authenticate(sessionToken);
      if (record) viewer = { token: record, csrf: csrfTokenFor(sessionToken) };
      else cookies.push(clearedSessionCookie(isHttps(req)));
    }
    return { req, res, url, viewer, sessionToken: viewer ? sessionToken : undefined, cookies, started };
  }

  async #route(visit: Visit, segments: readonly string[]): Promise<void> {
    const method = visit.req.method ?? 'GET';
    const reading = method === 'GET' || method === 'HEAD';
    const allow = (...methods: string[]) => {
      const allowed = methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
      if (!allowed.includes(method)) throw new HttpError(405, `${method} is not supported here`, { Allow: allowed.join(', ') });
    };
    if (segments.length === 1 && segments[0] === '') {
      allow('GET');
      return this.#overview(visit);
    }
    const [, area, name, section, item, action] = segments;
    if (segments.length === 1 || (segments.length === 2 && area === '')) return redirect(visit, '/');
    if (area === 'login' && segments.length === 2) {
      allow('GET', 'POST');
      return reading ? this.#signInPage(visit) : this.#signIn(visit);
    }
    if (area === 'logout' && segments.length === 2) {
      allow('POST');
      return this.#signOut(visit);
    }
    if (area === 'tokens') {
      if (segments.length === 2) {
        allow('GET', 'POST');
        return reading ? this.#tokensPage(visit, null) : this.#createToken(visit, null);
      }
      if (segments.length === 4 && section === 'revoke') {
        allow('POST');
        return this.#revokeToken(visit, null, name!);
      }
    }
    if (area === 'caches' && name !== undefined) {
      if (segments.length === 3) {
        allow('GET');
        return this.#cachePage(visit, name);
      }
      if (segments.length === 4 && section === 'search') {
        allow('GET');
        return this.#searchPage(visit, name);
      }
      if (segments.length === 5 && section === 'paths') {
        allow('GET');
        return this.#pathPage(visit, name, item!);
      }
      if (segments.length === 4 && section === 'gc') {
        allow('GET');
        return this.#gcPage(visit, name);
      }
      if (section === 'tokens') {
        if (segments.length === 4) {
          allow('GET', 'POST');
          const cache = await this.#adminCache(visit, name);
          return reading ? this.#tokensPage(visit, cache) : this.#createToken(visit, cache);
        }
        if (segments.length === 6 && action === 'revoke') {
          allow('POST');
          return this.#revokeToken(visit, await this.#adminCache(visit, name), item!);
        }
      }
      if (section === 'keys') {
        if (segments.length === 4) {
          allow('GET');
          return this.#keysPage(visit, await this.#adminCache(visit, name));
        }
        if (segments.length === 5 && item === 'rotate') {
          allow('POST');
          return this.#rotateKey(visit, await this.#adminCache(visit, name));
        }
        if (segments.length === 6 && action === 'retire') {
          allow('POST');
          return this.#retireKey(visit, await this.#adminCache(visit, name), item!);
        }
      }
    }
    throw new HttpError(404, 'There is no such page.');
  }

  // Access.

  #canRead(viewer: Viewer | undefined, cache: CacheRecord): boolean {
    return cache.public || (viewer !== undefined && grants(viewer.token, cache.name, 'read'));
  }

  #canAdmin(viewer: Viewer | undefined, cache: CacheRecord): boolean {
    return viewer !== undefined && grants(viewer.token, cache.name, 'admin');
  }

  /** The cache, if the visitor may read it; otherwise the same 404 as for a cache that does not exist. */
  async #readableCache(visit: Visit, name: string): Promise<CacheRecord> {
    const cache = await this.#larder.index.getCache(name);
    if (!cache || !this.#canRead(visit.viewer, cache)) {
      throw new HttpError(404, `There is no cache '${name}' that ${visit.viewer ? 'this token' : 'you'} can see.`);
    }
    return cache;
  }

  /** The cache, if the visitor is its admin: 404 as above, else 401 without a session, 403 with a lesser token. */
  async #adminCache(visit: Visit, name: string): Promise<CacheRecord> {
    const cache = await this.#readableCache(visit, name);
    if (!visit.viewer) throw new HttpError(401, `Managing cache '${name}' needs a token with admin permission on it.`);
    if (!this.#canAdmin(visit.viewer, cache)) throw new HttpError(403, `This token lacks admin permission on cache '${name}'.`);
    return cache;
  }

  #serverAdmin(visit: Visit): Viewer {
    if (!visit.viewer) throw new HttpError(401, 'This page needs a server-admin token.');
    if (!isServerAdmin(visit.viewer.token)) throw new HttpError(403, 'This page needs a server-admin token.');
    return visit.viewer;
  }

  /** A state-changing request: signed in, sent from this site, carrying the session's CSRF token. */
  async #checkedForm(visit: Visit): Promise<{ viewer: Viewer; form: URLSearchParams }> {
    const crossSite = crossSiteProblem(visit.req);
    if (crossSite) throw new HttpError(403, `Refused: ${crossSite}.`);
    if (!visit.viewer || !visit.sessionToken) throw new HttpError(401, 'Your session has ended; sign in again.');
    const form = await readForm(visit.req);
    if (!csrfTokenMatches(visit.sessionToken, form.get('csrf'))) {
      throw new HttpError(403, 'Refused: the form did not carry this session’s CSRF token (reload the page and try again).');
    }
    return { viewer: visit.viewer, form };
  }

  // Pages.

  async #overview(visit: Visit): Promise<void> {
    const { index } = this.#larder;
    const visible = (await index.listCaches()).filter((c) => this.#canRead(visit.viewer, c));
    const shown = visible.slice(0, OVERVIEW_CACHES);
    const [summaries, recents, tops] = await Promise.all([
      Promise.all(shown.map((c) => this.#stats.summary(c))),
      Promise.all(shown.map((c) => this.#stats.recentPaths(c.name, LIST_ROWS))),
      Promise.all(shown.map((c) => this.#stats.topPaths(c.name, LIST_ROWS))),
    ]);
    const tagged = (lists: PathSummary[][]) => lists.flatMap((list, i) => list.map((path) => ({ cache: shown[i]!.name, path })));
    const today = this.#stats.today();
    sendPage(
      visit,
      200,
      renderOverview({
        viewer: visit.viewer,
        flash: signedOutFlash(visit),
        now: this.#now(),
        caches: summaries,
        more: visible.length - shown.length,
        growth: sizeSeries(summaries.map((s) => ({ history: s.history, live: s.totals })), today),
        lookups: lookupBars(summaries, today, LOOKUP_DAYS),
        recent: tagged(recents).sort((a, b) => b.path.createdAt - a.path.createdAt).slice(0, LIST_ROWS),
        top: tagged(tops).sort((a, b) => b.path.downloads - a.path.downloads).slice(0, LIST_ROWS),
      }),
    );
  }

  async #cachePage(visit: Visit, name: string): Promise<void> {
    const cache = await this.#readableCache(visit, name);
    const [summary, recent, top, publicKeys] = await Promise.all([
      this.#stats.summary(cache),
      this.#stats.recentPaths(name, LIST_ROWS),
      this.#stats.topPaths(name, LIST_ROWS),
      trustedPublicKeys(this.#larder, name),
    ]);
    const today = this.#stats.today();
    const host = visit.req.headers['x-forwarded-host'] ?? visit.req.headers.host ?? 'localhost';
    sendPage(
      visit,
      200,
      renderCache({
        viewer: visit.viewer,
        now: this.#now(),
        summary,
        canAdmin: this.#canAdmin(visit.viewer, cache),
        substituterUrl: `${isHttps(visit.req) ? 'https' : 'http'}://${Array.isArray(host) ? host[0] : host}/${name}`,
        publicKeys,
        growth: sizeSeries([{ history: summary.history, live: summary.totals }], today),
        lookups: lookupBars([summary], today, LOOKUP_DAYS),
        recent,
        top,
      }),
    );
  }

  async #searchPage(visit: Visit, name: string): Promise<void> {
    const cache = await this.#readableCache(visit, name);
    const text = visit.url.searchParams.get('q') ?? '';
    const after = hashCursor(visit.url);
    const query = parseSearchQuery(text, this.#larder.storeDir);
    const base = { viewer: visit.viewer, now: this.#now(), cache, canAdmin: this.#canAdmin(visit.viewer, cache), query: text.trim(), paged: after !== '' };
    if (query.kind === 'empty') return sendPage(visit, 200, renderSearch({ ...base, results: [] }));
    if (query.kind === 'invalid') return sendPage(visit, 400, renderSearch({ ...base, problem: query.problem, results: [] }));
    if (query.kind === 'exact') {
      const found = await this.#larder.index.pathSummary(name, query.hashPart);
      if (found) return redirect(visit, pathUrl(name, found.hashPart));
      return sendPage(visit, 200, renderSearch({ ...base, results: [] }));
    }
    const rows = await this.#larder.index.searchPaths(
      name,
      { ...(query.hashPrefix !== undefined && { hashPrefix: query.hashPrefix }), nameNeedle: query.nameNeedle },
      after,
      SEARCH_PAGE + 1,
    );
    const results = rows.slice(0, SEARCH_PAGE);
    sendPage(visit, 200, renderSearch({ ...base, results, ...(rows.length > SEARCH_PAGE && { nextAfter: results.at(-1)!.hashPart }) }));
  }

  async #pathPage(visit: Visit, name: string, item: string): Promise<void> {
    const cache = await this.#readableCache(visit, name);
    // A hash part, or a store path basename.
    const hashPart = item.slice(0, 32);
    if (!isHashPart(hashPart) || (item.length > 32 && item[32] !== '-')) throw new HttpError(404, `'${item}' is not a store path hash.`);
    const after = hashCursor(visit.url);
    const { index, storeDir } = this.#larder;
    const [record, summary] = await Promise.all([index.getPath(name, hashPart), index.pathSummary(name, hashPart)]);
    if (!record || !summary) throw new HttpError(404, `Cache '${name}' has no path with hash ${hashPart}.`);
    let info: NarInfo | undefined;
    try {
      info = parseNarInfo(record.narinfo, storeDir);
    } catch {
      info = undefined;
    }
    const referenceBases = info
      ? info.references.map((r) => ({ hashPart: r.hashPart, base: `${r.hashPart}-${r.name}` }))
      : record.references.map((h) => ({ hashPart: h, base: h }));
    const [present, referrers, closure, keys, pins] = await Promise.all([
      index.presentPaths(name, referenceBases.map((r) => r.hashPart)),
      index.referringPaths(name, hashPart, after, REFERRERS_PAGE + 1),
      index.closureSize(name, hashPart, CLOSURE_WALK_LIMIT),
      index.listKeys(name),
      index.listPins(name),
    ]);
    const references: ReferenceView[] = referenceBases.map((r) => ({ ...r, present: present.has(r.hashPart), self: r.hashPart === hashPart }));
    const page = referrers.slice(0, REFERRERS_PAGE);
    sendPage(
      visit,
      200,
      renderPath({
        viewer: visit.viewer,
        now: this.#now(),
        cache,
        canAdmin: this.#canAdmin(visit.viewer, cache),
        storeDir,
        summary,
        narinfo: record.narinfo,
        fields: narinfoFields(record.narinfo),
        signatures: info ? signatureViews(info, keys, storeDir) : [],
        references,
        referrers: page,
        referrersAfter: after,
        ...(referrers.length > REFERRERS_PAGE && { nextReferrersAfter: page.at(-1)!.hashPart }),
        closure,
        pins: pins.filter((p) => p.hashPart === hashPart).map((p) => p.name),
      }),
    );
  }

  async #gcPage(visit: Visit, name: string): Promise<void> {
    const cache = await this.#adminCache(visit, name);
    const report = await this.#gcPreview(name, visit.url.searchParams.has('fresh'));
    sendPage(visit, 200, renderGcPreview({ viewer: visit.viewer, now: this.#now(), cache, report }));
  }

  /** The cache's GC dry run: the last one while under a minute old, unless `fresh` asks for a new one. */
  #gcPreview(name: string, fresh: boolean): Promise<GcReport> {
    const now = this.#now();
    const known = this.#gcPreviews.get(name);
    if (known && now - known.at < GC_PREVIEW_REUSE_MS && !fresh) return known.report;
    const report = runGc(this.#larder, name, { dryRun: true });
    this.#gcPreviews.set(name, { at: now, report });
    report.catch(() => this.#gcPreviews.delete(name));
    return report;
  }

  async #tokensPage(
    visit: Visit,
    scope: CacheRecord | null,
    extra: { status?: number; created?: { token: string; record: TokenRecord }; flash?: Flash } = {},
  ): Promise<void> {
    const viewer = scope === null ? this.#serverAdmin(visit) : visit.viewer!;
    const beforeParam = visit.req.method === 'POST' ? null : visit.url.searchParams.get('before');
    const before = parseTokenCursor(beforeParam);
    const rows = await this.#larder.index.tokensPage(scope?.name, before, TOKENS_PAGE + 1);
    const tokens = rows.slice(0, TOKENS_PAGE);
    const last = tokens.at(-1);
    const cacheChoices = scope === null ? (await this.#larder.index.listCaches()).map((c) => c.name) : undefined;
    sendPage(
      visit,
      extra.status ?? 200,
      renderTokens({
        viewer,
        now: this.#now(),
        scope,
        tokens,
        paged: before !== undefined,
        ...(rows.length > TOKENS_PAGE && last && { nextBefore: `${last.createdAt}.${last.id}` }),
        ...(cacheChoices && { cacheChoices }),
        ...(extra.created && { created: extra.created }),
        flash: extra.flash ?? noticeFlash(visit.url, tokens),
      }),
    );
  }

  async #createToken(visit: Visit, scope: CacheRecord | null): Promise<void> {
    const { form } = await this.#checkedForm(visit);
    if (scope === null) this.#serverAdmin(visit);
    const refuse = (text: string) => this.#tokensPage(visit, scope, { status: 400, flash: { kind: 'error', text } });
    const permission = form.get('permission') ?? '';
    if (!isPermission(permission)) return refuse(`Permission: expected read, write or admin, got '${permission}'.`);
    const label = (form.get('label') ?? '').trim();
    if (label.length > 200) return refuse('Label: at most 200 characters.');
    const expires = (form.get('expires') ?? '').trim();
    let expiresAt: number | null = null;
    if (expires !== '' && expires !== 'never') {
      const ms = parseDurationValue(expires);
      if (ms === undefined) return refuse(`Expires after: expected a duration such as 30d or 12h, or nothing for never, got '${expires}'.`);
      expiresAt = Date.now() + ms;
    }
    let cache: string | null;
    if (scope !== null) cache = scope.name;
    else {
      cache = (form.get('cache') ?? '') || null;
      if (cache !== null && !(await this.#larder.index.getCache(cache))) return refuse(`Cache: there is no cache '${cache}'.`);
    }
    if (cache === null && permission !== 'admin') return refuse('A token without a cache must have admin permission (a server-admin token).');
    const created = await this.#larder.tokens.issue({ cache, permission, label, expiresAt });
    return this.#tokensPage(visit, scope, { status: 201, created });
  }

  async #revokeToken(visit: Visit, scope: CacheRecord | null, id: string): Promise<void> {
    await this.#checkedForm(visit);
    if (scope === null) this.#serverAdmin(visit);
    const token = await this.#larder.index.tokenById(id);
    if (!token || (scope !== null && token.cache !== scope.name)) {
      throw new HttpError(404, `There is no token '${id}'${scope ? ` of cache '${scope.name}'` : ''}.`);
    }
    const revoked = await this.#larder.tokens.revoke(id);
    return redirect(visit, `${tokensUrl(scope?.name ?? null)}?${revoked ? 'revoked' : 'already-revoked'}=${encodeURIComponent(id)}`);
  }

  async #keysPage(visit: Visit, cache: CacheRecord, extra: { status?: number; flash?: Flash } = {}): Promise<void> {
    const keys = await this.#larder.index.listKeys(cache.name);
    const flash = extra.flash ?? keyNotice(visit.url, keys);
    sendPage(visit, extra.status ?? 200, renderKeys({ viewer: visit.viewer!, now: this.#now(), cache, keys, flash }));
  }

  async #rotateKey(visit: Visit, cache: CacheRecord): Promise<void> {
    await this.#checkedForm(visit);
    const key = await rotateKey(this.#larder, cache.name);
    return redirect(visit, `${keysUrl(cache.name)}?rotated=${encodeURIComponent(key.name)}`);
  }

  async #retireKey(visit: Visit, cache: CacheRecord, name: string): Promise<void> {
    await this.#checkedForm(visit);
    try {
      await retireKey(this.#larder, cache.name, name);
    } catch (error) {
      if (error instanceof Rejection) return this.#keysPage(visit, cache, { status: REJECTION_STATUS[error.kind], flash: { kind: 'error', text: error.message } });
      throw error;
    }
    return redirect(visit, `${keysUrl(cache.name)}?retired=${encodeURIComponent(name)}`);
  }

  #signInPage(visit: Visit): void {
    sendPage(visit, 200, renderSignIn({ viewer: visit.viewer, next: safeNext(visit.url.searchParams.get('next')) }));
  }

  async #signIn(visit: Visit): Promise<void> {
    const crossSite = crossSiteProblem(visit.req);
    if (crossSite) throw new HttpError(403, `Refused: ${crossSite}.`);
    const form = await readForm(visit.req);
    const next = safeNext(form.get('next'));
    const token = (form.get('token') ?? '').trim();
    const record = token === '' ? undefined : await this.#larder.tokens.authenticate(token);
    if (!record) {
      return sendPage(visit, 401, renderSignIn({ viewer: undefined, next, problem: 'That token is unknown, revoked or expired.' }));
    }
    visit.cookies.length = 0;
    visit.cookies.push(sessionCookie(token, isHttps(visit.req)));
    return redirect(visit, next);
  }

  async #signOut(visit: Visit): Promise<void> {
    if (visit.viewer) await this.#checkedForm(visit);
    visit.cookies.length = 0;
    visit.cookies.push(clearedSessionCookie(isHttps(visit.req)));
    return redirect(visit, '/?signed-out=1');
  }

  // Failures.

  #fail(req: IncomingMessage, res: ServerResponse, visit: Visit | undefined, error: unknown): void {
    // req.socket: a response queued behind another on a keep-alive connection has no socket yet.
    if (res.headersSent || req.socket.destroyed) {
      res.destroy();
      return;
    }
    let status = 500;
    let message = 'Something went wrong inside larder; the server log says what.';
    const headers: Record<string, string> = {};
    if (error instanceof HttpError) {
      status = error.status;
      message = error.message;
      Object.assign(headers, error.headers);
    } else if (error instanceof Rejection) {
      status = REJECTION_STATUS[error.kind];
      message = error.message;
    } else if (error instanceof IndexUnavailableError || error instanceof StorageUnavailableError) {
      status = 503;
      message = `larder cannot answer now: ${error.message}. Try again in a moment.`;
      headers['Retry-After'] = '5';
    } else {
      process.stderr.write(`larder: internal error on ${req.method} ${req.url}: ${(error as Error)?.stack ?? String(error)}\n`);
    }
    if (!req.complete) headers.Connection = 'close';
    const here = req.method === 'GET' ? (req.url ?? '/') : undefined;
    // Without a session, a page that needs one sends the visitor to sign in and back.
    if (status === 401 && visit && req.method === 'GET') return redirect(visit, loginUrl(here));
    const page = renderError({ viewer: visit?.viewer, status, message, ...(here !== undefined && { here }) });
    if (visit) sendPage(visit, status, page, headers);
    else {
      res.writeHead(status, { ...SECURITY_HEADERS, ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(page) });
      res.end(page);
    }
  }
}

/** `after`, where a page of paths in hash order starts ('' for the first). */
function hashCursor(url: URL): string {
  const after = url.searchParams.get('after') ?? '';
  if (after !== '' && !/^[0-9a-z]{1,32}$/.test(after)) throw new HttpError(400, `'after' must be a hash part, got '${after}'.`);
  return after;
}

/** `<createdAt>.<id>`, the tokens list's page cursor. */
function parseTokenCursor(text: string | null): { createdAt: number; id: string } | undefined {
  if (text === null || text === '') return undefined;
  const match = /^(\d{1,16})\.([0-9a-f]{1,64})$/.exec(text);
  if (!match) throw new HttpError(400, `'before' must be <time>.<token id>, got '${text}'.`);
  return { createdAt: Number(match[1]), id: match[2]! };
}

/** The message a redirect after revoking asks for, naming only a token on this page. */
function noticeFlash(url: URL, tokens: readonly TokenRecord[]): Flash | undefined {
  for (const [param, text] of [
    ['revoked', 'Token %s is revoked: it is refused from now on (within a second on every replica).'],
    ['already-revoked', 'Token %s was revoked already.'],
  ] as const) {
    const id = url.searchParams.get(param);
    if (id !== null && tokens.some((t) => t.id === id)) return { kind: 'ok', text: text.replace('%s', id) };
  }
  return undefined;
}

function keyNotice(url: URL, keys: readonly KeyRecord[]): Flash | undefined {
  const rotated = url.searchParams.get('rotated');
  if (rotated !== null && keys.some((k) => k.name === rotated)) {
    return { kind: 'ok', text: `New signing key ${rotated} is active. Give clients its public key, then retire the old one.` };
  }
  const retired = url.searchParams.get('retired');
  if (retired !== null && keys.some((k) => k.name === retired && k.state === 'retired')) return { kind: 'ok', text: `Key ${retired} is retired.` };
  return undefined;
}

function signedOutFlash(visit: Visit): Flash | undefined {
  return visit.url.searchParams.has('signed-out') && !visit.viewer ? { kind: 'ok', text: 'Signed out.' } : undefined;
}

function sendPage(visit: Visit, status: number, page: string, headers: Record<string, string> = {}): void {
  const { res } = visit;
  if (visit.cookies.length > 0) res.setHeader('Set-Cookie', visit.cookies);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...headers,
    'Content-Type': 'text/html; charset=utf-8',
    // Pages show what one token may see: never kept by a browser or a proxy.
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(page),
    'Server-Timing': `page;dur=${(performance.now() - visit.started).toFixed(1)}`,
  });
  res.end(page);
}

/** 303: after a form, the browser GETs the next page (and a reload does not repeat the form). */
function redirect(visit: Visit, location: string): void {
  const { res } = visit;
  if (visit.cookies.length > 0) res.setHeader('Set-Cookie', visit.cookies);
  res.writeHead(303, { ...SECURITY_HEADERS, Location: location, 'Cache-Control': 'no-store', 'Content-Length': 0 });
  res.end();
}

function sendAsset(req: IncomingMessage, res: ServerResponse, asset: Asset, url: URL): void {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': 0 }).end();
    return;
  }
  // The URL carries the content's hash: that version never changes.
  const current = url.searchParams.get('v') === new URL(asset.url, 'http://x').searchParams.get('v');
  res.writeHead(200, {
    'Content-Type': asset.contentType,
    'Content-Length': Buffer.byteLength(asset.body),
    'Cache-Control': current ? 'public, max-age=31536000, immutable' : 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(asset.body);
}
