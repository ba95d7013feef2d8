// The compat scenario for amqplib (promise API, ConfirmChannel: every publish
// of a step is in flight at once). Output contract: tests/compat/README.md.
'use strict';

const fs = require('fs');
const util = require('util');
const amqp = require('amqplib');

const SPEC = JSON.parse(fs.readFileSync(process.env.COMPAT_SPEC, 'utf8'));
const CLIENT = process.env.COMPAT_CLIENT;
const RUN = process.env.COMPAT_RUN;
const TIMEOUT = Number(process.env.COMPAT_TIMEOUT || 30) * 1000;
const EXCHANGE = `compat.${CLIENT}.${RUN}`;
const QUEUE = `${EXCHANGE}.q`;

function step(name, ok, detail) {
  process.stdout.write(`STEP ${name} ${ok ? 'ok' : 'FAIL'} ${detail || ''}\n`);
}

function withTimeout(p, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${TIMEOUT} ms`)), TIMEOUT); }),
  ]).finally(() => clearTimeout(t));
}

// ConfirmChannel.publish's callback runs on ack (err null) or nack (err set).
function publish(ch, ex, key, body, opts) {
  return new Promise((resolve) => {
    ch.publish(ex, key, body, opts || {}, (err) => resolve(!err));
  });
}

async function main() {
  const version = require('amqplib/package.json').version;
  let conn;
  try {
    conn = await withTimeout(amqp.connect(process.env.COMPAT_URL), 'connect');
  } catch (e) {
    step('connect', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }
  step('connect', true, `mechanism=PLAIN _version=${version}`);
  const errors = [];
  conn.on('error', (e) => errors.push(e));

  let ch1, ch2;
  const returns = [];
  try {
    ch1 = await conn.createConfirmChannel();
    ch2 = await conn.createConfirmChannel();
    for (const ch of [ch1, ch2]) {
      ch.on('return', (msg) => returns.push(msg.fields));
      ch.on('error', (e) => errors.push(e));
    }
    await ch1.assertExchange(EXCHANGE, 'topic', { durable: false });
    const q = await ch1.assertQueue(QUEUE, { durable: false });
    await ch1.bindQueue(QUEUE, EXCHANGE, SPEC.binding);
    await ch1.assertExchange(SPEC.noroute_exchange, 'topic', { durable: true });
    step('declare', true, `queue_messages=${q.messageCount}`);
  } catch (e) {
    step('declare', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }

  const t0 = Date.now();
  try {
    const ps = [];
    for (let i = 0; i < SPEC.count; i++) {
      const ch = i % 2 === 0 ? ch1 : ch2;
      ps.push(publish(ch, EXCHANGE, util.format(SPEC.routing_key, i % 10), Buffer.from(util.format(SPEC.body, RUN, i))));
    }
    const res = await withTimeout(Promise.all(ps), 'confirms');
    const acks = res.filter((x) => x).length;
    const nacks = res.length - acks;
    step('publish', acks === SPEC.count && nacks === 0,
      `acks=${acks} nacks=${nacks} returns=${returns.length} _max_in_flight=${SPEC.count} _ms=${Date.now() - t0}`);
  } catch (e) {
    step('publish', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }

  try {
    const acked = await withTimeout(publish(ch1, SPEC.noroute_exchange, SPEC.noroute_key, Buffer.from('unroutable'), { mandatory: true }), 'mandatory');
    // The return is emitted before the ack's callback runs.
    const r = returns[0];
    step('mandatory', acked && r && r.replyCode === 312,
      `acked=${acked} returned=${returns.length} reply_code=${r ? r.replyCode : '-'} reply_text=${r ? r.replyText : '-'}`);
  } catch (e) {
    step('mandatory', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }

  try {
    const big = Buffer.alloc(SPEC.big_size);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const acked = await withTimeout(publish(ch1, EXCHANGE, SPEC.big_key, big), 'big');
    step('big', acked, `acked=${acked} size=${SPEC.big_size}`);
  } catch (e) {
    step('big', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }

  try {
    const p = SPEC.props;
    const acked = await withTimeout(publish(ch1, EXCHANGE, SPEC.props_key, Buffer.from(SPEC.props_body), {
      contentType: p.content_type,
      contentEncoding: p.content_encoding,
      headers: SPEC.headers,
      deliveryMode: p.delivery_mode,
      priority: p.priority,
      correlationId: util.format(p.correlation_id, RUN),
      replyTo: util.format(p.reply_to, RUN),
      expiration: p.expiration,
      messageId: util.format(p.message_id, RUN),
      timestamp: p.timestamp,
      type: p.type,
      userId: p.user_id,
      appId: util.format(p.app_id, CLIENT),
    }), 'props');
    step('props', acked, `acked=${acked}`);
  } catch (e) {
    step('props', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }

  try {
    await withTimeout(ch2.close(), 'channel close');
    await withTimeout(ch1.close(), 'channel close');
    await withTimeout(conn.close(), 'connection close');
    step('close', errors.length === 0, errors.length ? `error=${JSON.stringify(String(errors[0]))}` : 'reply_code=200');
  } catch (e) {
    step('close', false, `error=${JSON.stringify(String(e))}`);
    return 1;
  }
  return 0;
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(2); });
