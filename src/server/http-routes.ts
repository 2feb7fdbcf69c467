import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import type { RequestGuard } from './request-guard.js';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

/**
 * uPlot's dist folder, wherever npm put the package (nested in braid's node_modules, or hoisted beside braid when
 * braid is itself a dependency).
 */
export function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

/**
 * The browser build of braid/client under /lib/: dist/client and the two core modules it imports, nothing else of
 * dist (the rest needs Node). Compiled by `npm run build`; missing until then.
 */
const LIB_DIR = fileURLToPath(new URL('../../dist/', import.meta.url));
const isLibFile = (rel: string): boolean =>
  /^client\/[\w-]+\.js$/.test(rel) || rel === 'core/frame.js' || rel === 'core/time.js';

export interface HttpRoutesOptions {
  readonly guard: RequestGuard;
  /** Folder served at / (the demo page). */
  readonly staticDir: string;
  /** The compiled package (dist/), whose browser client is served at /lib/. */
  readonly libDir?: string;
  readonly registry: Registry;
  readonly health: () => Record<string, unknown>;
  readonly streams: () => Record<string, unknown>;
  /** A request refused by the guard, by reason. */
  readonly refused: (reason: string) => void;
}

/** Paths that need the token when one is set; the page itself and /healthz stay public. */
const PROTECTED = new Set(['/metrics', '/api/streams']);

/** The plain HTTP side of the server: the demo page and its vendored chart library, health, metrics, stream list. */
export function createHttpHandler(
  options: HttpRoutesOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const staticDir = resolve(options.staticDir);
  const vendorDir = resolve(uplotDir());
  const libDir = resolve(options.libDir ?? LIB_DIR);
  const json = (res: ServerResponse, body: unknown): void => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refusal = options.guard.check(req, url, PROTECTED.has(url.pathname));
    if (refusal) {
      options.refused(refusal.reason);
      res
        .writeHead(refusal.status, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`${refusal.message}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/healthz') return json(res, options.health());
    if (url.pathname === '/api/streams') return json(res, options.streams());
    if (url.pathname === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
      return;
    }
    if (url.pathname.startsWith('/lib/') && !isLibFile(url.pathname.slice('/lib/'.length))) {
      res.writeHead(404).end('not found\n');
      return;
    }
    const [base, rel] = url.pathname.startsWith('/vendor/uplot/')
      ? [vendorDir, url.pathname.slice('/vendor/uplot/'.length)]
      : url.pathname.startsWith('/lib/')
        ? [libDir, url.pathname.slice('/lib/'.length)]
        : [staticDir, url.pathname === '/' ? 'index.html' : url.pathname.slice(1)];
    const file = normalize(join(base, rel));
    if (!file.startsWith(base) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
    });
    createReadStream(file).pipe(res);
  };

  return (req, res) => {
    try {
      handle(req, res);
    } catch (error) {
      if (!res.headersSent)
        res.writeHead(500).end(`internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
}
