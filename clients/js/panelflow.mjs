// panelflow API v2 client for Node 20+ (global fetch, node:crypto; no dependencies). Same behaviour as
// clients/python: add sends a request_id made per order and the same one on every retry; connection errors,
// 429 and 503 are retried with backoff honouring Retry-After; errors are typed and carry the API's message;
// the batch helpers split lists over 100 ids; verifyWebhook checks Standard Webhooks signatures.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

export const BATCH_MAX = 100;
const USER_AGENT = 'panelflow-client-js/0.1.0';

export class PanelflowError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = new.target.name;
    this.status = status;
  }
}
export class InvalidRequest extends PanelflowError {}
export class AuthenticationError extends PanelflowError {}
export class PermissionDenied extends PanelflowError {}
export class Conflict extends PanelflowError {}
export class RateLimited extends PanelflowError {
  constructor(message, status = 429, retryAfter = null) {
    super(message, status);
    this.retryAfter = retryAfter;
  }
}
export class ServiceUnavailable extends PanelflowError {}
export class ServerError extends PanelflowError {}
export class TransportError extends PanelflowError {}
export class WebhookVerificationError extends PanelflowError {}

const BY_STATUS = {
  400: InvalidRequest, 401: AuthenticationError, 403: PermissionDenied, 409: Conflict,
  429: RateLimited, 503: ServiceUnavailable,
};

function errorFor(status, message) {
  const Cls = BY_STATUS[status] ?? (status >= 500 ? ServerError : PanelflowError);
  return new Cls(message, status);
}

/** Retries: `attempts` tries in all; before try n+1 the server's Retry-After, else base * 2^(n-1) s with full
 * jitter, at most `cap`; a Retry-After over `maxWait` is not waited for. */
export const DEFAULT_RETRY = Object.freeze({ attempts: 5, base: 0.5, cap: 30, maxWait: 120 });

export function retryDelay(policy, attempt, error) {
  const retryable = error instanceof RateLimited || error instanceof ServiceUnavailable
    || error instanceof TransportError;
  if (attempt >= policy.attempts || !retryable) return null;
  if (error instanceof RateLimited && error.retryAfter != null) {
    return error.retryAfter <= policy.maxWait ? error.retryAfter : null;
  }
  return Math.random() * Math.min(policy.cap, policy.base * 2 ** (attempt - 1));
}

export function newRequestId() {
  return `js-${randomUUID().replaceAll('-', '')}`;
}

export function* chunks(ids, size = BATCH_MAX) {
  let batch = [];
  for (const id of ids) {
    batch.push(String(id));
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

function itemError(value) {
  return value !== null && typeof value === 'object' && 'error' in value
    ? new PanelflowError(String(value.error), 200) : null;
}

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

export class Client {
  /** new Client('https://panel.example/api/v2', 'pf_...', { retry, timeoutMs }) */
  constructor(url, key, { retry = DEFAULT_RETRY, timeoutMs = 30_000 } = {}) {
    this.url = url;
    this.retry = { ...DEFAULT_RETRY, ...retry };
    this.timeoutMs = timeoutMs;
    this.headers = { 'X-API-Key': key, 'User-Agent': USER_AGENT, Accept: 'application/json' };
  }

  /** Any action with retries: the decoded JSON answer. */
  async call(action, params = {}) {
    const form = { action };
    for (const [name, value] of Object.entries(params)) {
      if (value !== undefined && value !== null) form[name] = Array.isArray(value) ? value.join('\n') : String(value);
    }
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#once(form);
      } catch (error) {
        const wait = error instanceof PanelflowError ? retryDelay(this.retry, attempt, error) : null;
        if (wait === null) throw error;
        await sleep(wait);
      }
    }
  }

  async #once(form) {
    let response;
    let text;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: this.headers,
        body: new URLSearchParams(form),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new TransportError(`${error.name}: ${error.cause?.message ?? error.message}`);
    }
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ServerError(`HTTP ${response.status}: the answer is not JSON`, response.status);
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)
        && Object.keys(value).length === 1 && 'error' in value) {
      // A classic key's errors come with 200 and the status they stand for in X-Error-Status.
      const stands = response.status === 200 && /^\d+$/.test(response.headers.get('X-Error-Status') ?? '')
        ? Number(response.headers.get('X-Error-Status')) : response.status;
      const error = errorFor(stands, String(value.error));
      if (error instanceof RateLimited) {
        const seconds = Number(response.headers.get('Retry-After'));
        error.retryAfter = response.headers.has('Retry-After') && Number.isFinite(seconds) ? Math.max(0, seconds) : null;
      }
      throw error;
    }
    if (response.status !== 200) throw errorFor(response.status, `HTTP ${response.status}`);
    return value;
  }

  services() { return this.call('services'); }

  balance() { return this.call('balance'); }

  /** Place an order; its id. `params`: the type's parameters (link, quantity, runs, comments as an array or a
   * string, ...); `requestId` ties it to your own record (one is made otherwise) and is resent on retries. */
  async add(service, params = {}, { requestId = newRequestId() } = {}) {
    const answer = await this.call('add', { ...params, service, request_id: requestId });
    return answer.order;
  }

  status(order) { return this.call('status', { order }); }

  /** Map of order id -> status object or PanelflowError, any number of ids. */
  async statuses(orders) {
    const found = new Map();
    for (const batch of chunks(orders)) {
      const answer = await this.call('status', { orders: batch.join(',') });
      for (const [id, value] of Object.entries(answer)) found.set(Number(id), itemError(value) ?? value);
    }
    return found;
  }

  async refill(order) { return (await this.call('refill', { order })).refill; }

  refills(orders) { return this.#batch('refill', 'orders', orders, 'order', 'refill'); }

  async refillStatus(refill) { return (await this.call('refill_status', { refill })).status; }

  refillStatuses(refills) { return this.#batch('refill_status', 'refills', refills, 'refill', 'status'); }

  /** Map of order id -> 1 (accepted) or PanelflowError. */
  cancel(orders) { return this.#batch('cancel', 'orders', orders, 'order', 'cancel'); }

  async #batch(action, param, ids, idField, valueField) {
    const found = new Map();
    for (const batch of chunks(ids)) {
      for (const entry of await this.call(action, { [param]: batch.join(',') })) {
        found.set(Number(entry[idField]), itemError(entry[valueField]) ?? entry[valueField]);
      }
    }
    return found;
  }
}

function signatureOf(secret, msgId, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return createHmac('sha256', key).update(`${msgId}.${timestamp}.`).update(body).digest();
}

/** The event ({type, timestamp, data}) of a webhook delivery signed with `secret` (a "whsec_..." string, or an
 * array of them while you rotate); throws WebhookVerificationError otherwise. `headers`: a Headers object or a
 * plain object; `body`: the raw body (string or Buffer). Dedupe on the webhook-id header. */
export function verifyWebhook(secret, headers, body, { toleranceS = 300 } = {}) {
  const get = (name) => (typeof headers.get === 'function' ? headers.get(name)
    : Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1]) ?? '';
  const msgId = get('webhook-id');
  const timestamp = get('webhook-timestamp');
  const signatures = get('webhook-signature');
  if (!msgId || !/^\d+$/.test(timestamp) || !signatures) throw new WebhookVerificationError('missing webhook headers');
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceS) {
    throw new WebhookVerificationError('timestamp outside the tolerance');
  }
  const raw = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  for (const candidate of Array.isArray(secret) ? secret : [secret]) {
    const expected = signatureOf(candidate, msgId, timestamp, raw);
    for (const sent of signatures.split(' ')) {
      const [version, value] = sent.split(',');
      if (version !== 'v1' || !value) continue;
      const given = Buffer.from(value, 'base64');
      if (given.length === expected.length && timingSafeEqual(given, expected)) return JSON.parse(raw.toString('utf8'));
    }
  }
  throw new WebhookVerificationError('no matching signature');
}
