// node --test against a running panelflow api; tests/clients/test_js_client.py starts it with keys and a
// service in PANELFLOW_TEST_* (the same run outside pytest needs the same variables). The lost answers and
// refusals come from `front`, a real HTTP server in front of the api.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import {
  AuthenticationError, Client, Conflict, InvalidRequest, PanelflowError, RateLimited, ServiceUnavailable,
  TransportError, WebhookVerificationError, verifyWebhook,
} from '../panelflow.mjs';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const API = env('PANELFLOW_API_URL');
const SERVICE = Number(env('PANELFLOW_TEST_SERVICE'));
const KEYS = JSON.parse(env('PANELFLOW_TEST_KEYS')); // {strict, classic, poor, retry, batch}
const LINK = 'https://instagram.com/p/js';
const FAST = { attempts: 4, base: 0.05, cap: 0.2 };

// The front: forwards to the api unless the plan says "lose" (forward, then cut the connection without
// answering), "429:<s>" or "503" (answer so, without forwarding) for the next request.
const front = { plan: [], forwarded: [], received: 0, url: '' };
const server = createServer(async (req, res) => {
  front.received += 1;
  const step = front.plan.shift() ?? 'forward';
  if (step.startsWith('429:')) {
    res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': step.slice(4) });
    res.end(JSON.stringify({ error: 'Rate limit exceeded' }));
    return;
  }
  if (step === '503') {
    res.writeHead(503, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'Service temporarily unavailable' }));
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString();
  front.forwarded.push(Object.fromEntries(new URLSearchParams(body)));
  const upstream = await fetch(API, {
    method: 'POST', body, headers: { 'Content-Type': req.headers['content-type'], 'X-API-Key': req.headers['x-api-key'] },
  });
  const answer = await upstream.text();
  if (step === 'lose') {
    req.socket.destroy();
    return;
  }
  res.writeHead(upstream.status, { 'Content-Type': 'application/json' });
  res.end(answer);
});

before(async () => {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  front.url = `http://127.0.0.1:${server.address().port}/api/v2`;
});
after(() => server.close());

test('every action against a strict key', async () => {
  const api = new Client(API, KEYS.strict, { retry: FAST });
  const services = await api.services();
  assert.ok(services.some((s) => s.service === SERVICE && s.rate === '1.00'));
  const order = await api.add(SERVICE, { link: LINK, quantity: 100 });
  assert.equal(typeof order, 'number');
  const status = await api.status(order);
  assert.equal(status.status, 'Pending');
  assert.equal(status.charge, '0.10');
  const statuses = await api.statuses([order, 999999999]);
  assert.equal(statuses.get(order).status, 'Pending');
  assert.ok(statuses.get(999999999) instanceof PanelflowError);
  assert.equal(statuses.get(999999999).message, 'Incorrect order ID');
  await assert.rejects(api.refill(order), (e) => e instanceof InvalidRequest && e.status === 400
    && e.message === 'Order not eligible for refill');
  assert.equal((await api.refills([order])).get(order).message, 'Order not eligible for refill');
  await assert.rejects(api.refillStatus(999999999), { message: 'Refill not found' });
  assert.equal((await api.refillStatuses([999999999])).get(999999999).message, 'Refill not found');
  assert.deepEqual([...(await api.cancel([order])).entries()], [[order, 1]]);
  assert.deepEqual(await api.balance(), { balance: '10.00', currency: 'USD' }); // the order canceled while pending: refunded
});

test('typed errors carry the message, under either profile', async () => {
  const poor = new Client(API, KEYS.poor, { retry: FAST });
  await assert.rejects(poor.add(SERVICE, { link: LINK, quantity: 100 }),
    (e) => e instanceof InvalidRequest && e.status === 400 && e.message === 'Insufficient balance');
  await assert.rejects(poor.call('add', { service: SERVICE, link: LINK, quantity: 100 }),
    (e) => e instanceof InvalidRequest && e.message.startsWith('Missing required parameter: request_id ('));
  const order = await poor.add(SERVICE, { link: LINK, quantity: 10 }, { requestId: 'js-mine-1' });
  assert.equal(await poor.add(SERVICE, { link: LINK, quantity: 10 }, { requestId: 'js-mine-1' }), order);
  await assert.rejects(poor.add(SERVICE, { link: LINK, quantity: 11 }, { requestId: 'js-mine-1' }), Conflict);
  await assert.rejects(new Client(API, 'pf_unknown', { retry: FAST }).balance(),
    (e) => e instanceof AuthenticationError && e.status === 401 && e.message === 'Invalid API key');
  const classic = new Client(API, KEYS.classic, { retry: FAST });
  await assert.rejects(classic.add(SERVICE, { link: LINK, quantity: 100000 }),
    (e) => e instanceof InvalidRequest && e.status === 400 && e.message === 'Quantity must be between 10 and 10000');
  // A classic key takes an order without request_id (one per call).
  const placed = await classic.call('add', { service: SERVICE, link: LINK, quantity: 10 });
  assert.equal(typeof placed.order, 'number');
});

test('a lost answer is retried with the same request_id: one order, one charge', async () => {
  const api = new Client(front.url, KEYS.retry, { retry: FAST });
  front.plan = ['lose', 'lose'];
  front.forwarded = [];
  const order = await api.add(SERVICE, { link: LINK, quantity: 100 });
  assert.equal(front.forwarded.length, 3);
  assert.equal(new Set(front.forwarded.map((f) => f.request_id)).size, 1);
  assert.equal((await api.status(order)).status, 'Pending');
  assert.deepEqual(await api.balance(), { balance: '9.90', currency: 'USD' });
});

test('429 and 503 are retried, honouring Retry-After', async () => {
  const api = new Client(front.url, KEYS.retry, { retry: FAST });
  front.plan = ['429:1', '503'];
  front.received = 0;
  const started = Date.now();
  assert.deepEqual(await api.balance(), { balance: '9.90', currency: 'USD' });
  assert.ok(Date.now() - started >= 1000, 'Retry-After: 1 was waited for');
  assert.equal(front.received, 3);
  front.plan = ['503', '503', '503', '503'];
  await assert.rejects(api.balance(), ServiceUnavailable);
  front.plan = ['429:3600'];
  await assert.rejects(api.balance(), (e) => e instanceof RateLimited && e.retryAfter === 3600);
  await assert.rejects(new Client('http://127.0.0.1:9/api/v2', 'pf_x', { retry: FAST }).balance(), TransportError);
});

test('batch helpers split lists over 100 ids', async () => {
  const api = new Client(front.url, KEYS.batch, { retry: FAST });
  const orders = [];
  for (let i = 0; i < 3; i += 1) orders.push(await api.add(SERVICE, { link: LINK, quantity: 10 }));
  const unknown = Array.from({ length: 247 }, (_, i) => 999000000 + i);
  front.forwarded = [];
  const found = await api.statuses([...orders, ...unknown]);
  assert.deepEqual(front.forwarded.map((f) => f.orders.split(',').length), [100, 100, 50]);
  assert.equal(found.size, 250);
  assert.ok(orders.every((o) => found.get(o).status === 'Pending'));
  assert.ok(unknown.every((u) => found.get(u) instanceof PanelflowError));
  front.forwarded = [];
  const canceled = await api.cancel([...orders, ...unknown.slice(0, 140)]);
  assert.deepEqual(front.forwarded.map((f) => f.orders.split(',').length), [100, 43]);
  assert.deepEqual(orders.map((o) => canceled.get(o)), [1, 1, 1]);
});

test('webhook verification of a delivery signed by panelflow', () => {
  const { secret, other, headers, body } = JSON.parse(env('PANELFLOW_TEST_WEBHOOK'));
  assert.deepEqual(verifyWebhook(secret, headers, body).data, { order: 7 });
  assert.deepEqual(verifyWebhook([other, secret], new Headers(headers), Buffer.from(body)).data, { order: 7 });
  assert.throws(() => verifyWebhook(secret, headers, body.replace('7', '8')), WebhookVerificationError);
  assert.throws(() => verifyWebhook(other, headers, body), WebhookVerificationError);
  assert.throws(() => verifyWebhook(secret, { ...headers, 'webhook-timestamp': '1000' }, body), WebhookVerificationError);
  assert.throws(() => verifyWebhook(secret, {}, body), WebhookVerificationError);
});
