import { InvalidOptionError } from '../core/errors.js';

export type ConnectionRole = 'producer' | 'subscriber';

export interface ConnectionLimits {
  /** Producer connections (/ingest) open at once. */
  readonly maxProducers: number;
  /** Subscriber connections (/subscribe) open at once. */
  readonly maxSubscribers: number;
  /** Connections of both kinds from one remote address. */
  readonly maxPerAddress: number;
  /**
   * Addresses the per-address cap does not apply to. Default: loopback, since a machine's own load generators,
   * proxies and test clients all arrive from 127.0.0.1 or ::1.
   */
  readonly exemptAddresses: readonly string[];
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxProducers: 2048,
  maxSubscribers: 1024,
  maxPerAddress: 256,
  exemptAddresses: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
};

export type AdmissionRefusal = 'producer_limit' | 'subscriber_limit' | 'address_limit';

export type Admission =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly reason: AdmissionRefusal; readonly message: string };

export function resolveConnectionLimits(limits: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const resolved = { ...DEFAULT_CONNECTION_LIMITS, ...limits };
  for (const name of ['maxProducers', 'maxSubscribers', 'maxPerAddress'] as const)
    if (!Number.isSafeInteger(resolved[name]) || resolved[name] < 1)
      throw new InvalidOptionError(name, `must be a whole number ≥ 1, got ${resolved[name]}`);
  return resolved;
}

/**
 * Connection slots by role and by remote address. Producers and subscribers have separate caps, so a flood of one
 * kind cannot lock out the other, and one address cannot take every slot. Each admitted connection gets a release
 * function, called once when it closes.
 */
export class ConnectionLimiter {
  readonly limits: ConnectionLimits;
  readonly #open: Record<ConnectionRole, number> = { producer: 0, subscriber: 0 };
  readonly #byAddress = new Map<string, number>();
  readonly #exempt: Set<string>;

  constructor(limits: Partial<ConnectionLimits> = {}) {
    this.limits = resolveConnectionLimits(limits);
    this.#exempt = new Set(this.limits.exemptAddresses);
  }

  open(role: ConnectionRole): number {
    return this.#open[role];
  }

  admit(role: ConnectionRole, address: string): Admission {
    const max = role === 'producer' ? this.limits.maxProducers : this.limits.maxSubscribers;
    if (this.#open[role] >= max)
      return {
        ok: false,
        reason: role === 'producer' ? 'producer_limit' : 'subscriber_limit',
        message: `${max} ${role}s are connected (the server's limit)`,
      };
    const fromAddress = this.#byAddress.get(address) ?? 0;
    const exempt = this.#exempt.has(address);
    if (!exempt && fromAddress >= this.limits.maxPerAddress)
      return {
        ok: false,
        reason: 'address_limit',
        message: `${fromAddress} connections are open from ${address} (limit ${this.limits.maxPerAddress} per address)`,
      };
    this.#open[role]++;
    if (!exempt) this.#byAddress.set(address, fromAddress + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#open[role]--;
        if (exempt) return;
        const left = (this.#byAddress.get(address) ?? 1) - 1;
        if (left <= 0) this.#byAddress.delete(address);
        else this.#byAddress.set(address, left);
      },
    };
  }
}
