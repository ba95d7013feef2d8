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
    const q = await ch1.assertQueue(QUEUE, { durable: true });
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
  return consumeStep();
}

// amqplib's property names -> the AMQP ones the runner compares.
const PROPERTY_NAMES = {
  contentType: 'content_type', contentEncoding: 'content_encoding', headers: 'headers', deliveryMode: 'delivery_mode',
  priority: 'priority', correlationId: 'correlation_id', replyTo: 'reply_to', expiration: 'expiration',
  messageId: 'message_id', timestamp: 'timestamp', type: 'type', userId: 'user_id', appId: 'app_id',
  clusterId: 'cluster_id',
};

function plain(v) {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v)) out[k] = plain(v[k]);
    return out;
  }
  return v;
}

function delivered(properties) {
  const out = {};
  for (const [k, name] of Object.entries(PROPERTY_NAMES)) {
    if (properties[k] !== undefined && properties[k] !== null) out[name] = plain(properties[k]);
  }
  return out;
}

function bigBody() {
  const big = Buffer.alloc(SPEC.big_size);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  return big;
}

// Consume with manual acks and prefetch 100 until all 1002 came, the nacked
// one (body <run>:0) again; then, on a new connection, basic.get.
async function consumeStep() {
  const t0 = Date.now();
  const t = {
    deliveries: 0, redelivered: 0, small: new Set(), bad: 0, big: null, props: null, nacked: false, back: false,
  };
  const first = util.format(SPEC.body, RUN, 0);
  const count = () => t.small.size + (t.big !== null) + (t.props !== null);
  const done = () => count() === SPEC.count + 2 && t.back;
  let getEmpty = null;
  let error = null;
  let ms = 0;
  try {
    const conn = await withTimeout(amqp.connect(process.env.COMPAT_URL), 'connect');
    const ch = await conn.createChannel();
    await ch.prefetch(100);
    let finished;
    const all = new Promise((resolve) => { finished = resolve; });
    ch.on('close', () => finished());
    await ch.consume(QUEUE, (msg) => {
      if (msg === null) return finished(); // cancelled by the server
      const { routingKey, redelivered } = msg.fields;
      t.deliveries++;
      if (redelivered) t.redelivered++;
      let nack = false;
      if (routingKey === SPEC.big_key) {
        t.big = msg.content;
      } else if (routingKey === SPEC.props_key) {
        t.props = delivered(msg.properties);
      } else {
        const body = msg.content.toString('utf8');
        const m = /^(.*):(\d+)$/.exec(body);
        if (m && m[1] === RUN && Number(m[2]) < SPEC.count) t.small.add(Number(m[2]));
        else t.bad++;
        if (body === first) {
          if (!t.nacked) nack = t.nacked = true;
          else if (redelivered) t.back = true;
        }
      }
      if (nack) ch.nack(msg, false, true);
      else ch.ack(msg);
      if (done()) finished();
    }, { noAck: false });
    await withTimeout(all, 'consume').catch((e) => { error = e; });
    ms = Date.now() - t0;
    // amqplib interleaves the channels' output: a connection.close right
    // away may overtake the last ack, which channel.close may not.
    await withTimeout(ch.close(), 'channel close');
    await withTimeout(conn.close(), 'connection close');
    if (done()) {
      await new Promise((r) => setTimeout(r, process.env.COMPAT_TARGET === 'hopper' ? 1000 : 0));
      const conn2 = await withTimeout(amqp.connect(process.env.COMPAT_URL), 'connect');
      const ch2 = await conn2.createChannel();
      getEmpty = (await withTimeout(ch2.get(QUEUE, { noAck: false }), 'basic.get')) === false;
      await withTimeout(conn2.close(), 'connection close');
    }
  } catch (e) {
    error = e;
    ms = Date.now() - t0;
  }
  if (t.props !== null) process.stdout.write(`DELIVERED ${JSON.stringify(t.props)}\n`);
  const bodies = t.small.size === SPEC.count && t.bad === 0 ? 'ok' : 'WRONG';
  const big = t.big === null ? 'missing' : (t.big.equals(bigBody()) ? 'ok' : 'WRONG');
  const ok = done() && t.redelivered === 1 && t.deliveries === SPEC.count + 3 && bodies === 'ok' && big === 'ok'
    && getEmpty === true && error === null;
  const get = getEmpty === null ? 'not-run' : (getEmpty ? 'empty' : 'message');
  step('consume', ok, `count=${count()} redelivered=${t.redelivered} deliveries=${t.deliveries} back=${t.back} `
    + `bodies=${bodies} big=${big} props=${t.props !== null ? 'yes' : 'missing'} get=${get} _ms=${ms}`
    + (error ? ` error=${JSON.stringify(String(error))}` : ''));
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => { console.error(e); process.exit(2); });
