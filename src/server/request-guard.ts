import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Why a request was turned away: an HTTP status and a stable reason (the counter key). */
export interface Refusal {
  readonly status: number;
  readonly reason: 'bad_host' | 'bad_origin' | 'unauthorized';
  readonly message: string;
}

export interface RequestGuardOptions {
  /** Address the server is bound to. */
  readonly bindHost: string;
  /** Port it listens on (known once listening). */
  readonly port: () => number;
  readonly token?: string;
  /** Browser origins allowed besides the server's own, exactly as the browser sends them (scheme://host[:port]). */
  readonly allowedOrigins?: readonly string[];
  /** Host names (or host:port) accepted besides the loopback names, e.g. a reverse proxy's public name. */
  readonly allowedHosts?: readonly string[];
}

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export const isLoopbackHost = (host: string): boolean => LOOPBACK_NAMES.has(host);

/** Splits a Host header into name and port; IPv6 literals keep their brackets. */
function parseHostHeader(value: string): { name: string; port: string | undefined } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value.trim());
  if (!match) return undefined;
  return { name: match[1]!.toLowerCase(), port: match[2] };
}

const equalSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
};

/**
 * Who may talk to the server. Three checks, in order:
 * - Host: a server bound to loopback answers only requests addressed to a loopback name (127.0.0.1, localhost,
 *   [::1]) and its own port, so a page on another site cannot reach it through DNS rebinding (its requests carry the
 *   attacker's host name); names in `allowedHosts` are accepted too. A server bound elsewhere is protected by its
 *   token instead, and accepts any Host.
 * - Origin: a browser connection must come from the server's own origin — scheme, host and port, as in the Host it
 *   used — or one listed in `allowedOrigins`.
 * - Token: when set, required on the protected paths (Bearer header, or `?token=` for browsers' WebSockets).
 */
export class RequestGuard {
  readonly #options: RequestGuardOptions;
  readonly #loopback: boolean;
  readonly #allowedHosts: Set<string>;

  constructor(options: RequestGuardOptions) {
    this.#options = options;
    this.#loopback = isLoopbackHost(options.bindHost);
    this.#allowedHosts = new Set((options.allowedHosts ?? []).map((h) => h.toLowerCase()));
  }

  /** The first check the request fails, or undefined when it may go on. */
  check(req: IncomingMessage, url: URL, needsToken: boolean): Refusal | undefined {
    return this.#host(req) ?? this.#origin(req) ?? (needsToken ? this.#token(req, url) : undefined);
  }

  #host(req: IncomingMessage): Refusal | undefined {
    if (!this.#loopback) return undefined;
    const header = req.headers.host ?? '';
    const refuse = (why: string): Refusal => ({
      status: 421,
      reason: 'bad_host',
      message: `Host ${JSON.stringify(header)} refused: ${why}`,
    });
    const host = parseHostHeader(header);
    if (host === undefined) return refuse('not a host name');
    if (this.#allowedHosts.has(host.name) || this.#allowedHosts.has(`${host.name}:${host.port}`))
      return undefined;
    if (!isLoopbackHost(host.name))
      return refuse('this server is bound to loopback and answers only 127.0.0.1, localhost or [::1]');
    const port = String(this.#options.port());
    if ((host.port ?? '80') !== port) return refuse(`the server listens on port ${port}`);
    return undefined;
  }

  #origin(req: IncomingMessage): Refusal | undefined {
    const origin = req.headers.origin;
    if (origin === undefined) return undefined; // not a browser
    if (this.#options.allowedOrigins?.includes(origin)) return undefined;
    let own: string | undefined;
    try {
      const given = new URL(origin);
      const host = req.headers.host;
      // The server speaks plain HTTP; behind a TLS proxy its public origin is listed in allowedOrigins.
      if (host !== undefined && given.origin === new URL(`http://${host}`).origin) return undefined;
      own = host;
    } catch {
      // fall through: an unparseable Origin is refused
    }
    return {
      status: 403,
      reason: 'bad_origin',
      message: `Origin ${JSON.stringify(origin)} refused: not this server's own origin (http://${own ?? '?'}) nor an allowed one`,
    };
  }

  #token(req: IncomingMessage, url: URL): Refusal | undefined {
    const token = this.#options.token;
    if (token === undefined) return undefined;
    const header = req.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7) : (url.searchParams.get('token') ?? '');
    if (equalSecret(given, token)) return undefined;
    return { status: 401, reason: 'unauthorized', message: 'token required' };
  }
}
