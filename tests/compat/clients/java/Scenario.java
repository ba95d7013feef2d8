// The compat scenario for the RabbitMQ Java client. See tests/compat/README.md
// for the steps and the output contract; the values come from scenario.json
// (path in COMPAT_SPEC).

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.LongString;
import com.rabbitmq.client.RpcClient;
import com.rabbitmq.client.RpcClientParams;
import com.rabbitmq.client.ShutdownSignalException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

public class Scenario {
    static final String CLIENT = System.getenv("COMPAT_CLIENT");
    static final String RUN = System.getenv("COMPAT_RUN");
    static long timeoutMs = 30000;

    static void step(String name, boolean ok, String detail) {
        System.out.println("STEP " + name + " " + (ok ? "ok" : "FAIL") + " " + detail);
        System.out.flush();
    }

    /** Confirms of one channel: outstanding tags, acks and nacks. */
    static final class Tracked {
        final Channel ch;
        final ConcurrentSkipListSet<Long> outstanding = new ConcurrentSkipListSet<>();
        final AtomicInteger acks = new AtomicInteger(), nacks = new AtomicInteger();
        final List<Integer> returns = new CopyOnWriteArrayList<>();
        final List<String> returnTexts = new CopyOnWriteArrayList<>();
        volatile int maxInFlight;

        Tracked(Channel ch) throws Exception {
            this.ch = ch;
            ch.confirmSelect();
            ch.addConfirmListener(
                    (tag, multiple) -> settle(tag, multiple, acks), (tag, multiple) -> settle(tag, multiple, nacks));
            ch.addReturnListener(r -> {
                returnTexts.add(r.getReplyText());
                returns.add(r.getReplyCode());
            });
        }

        synchronized void settle(long tag, boolean multiple, AtomicInteger counter) {
            if (multiple) {
                var head = outstanding.headSet(tag, true);
                counter.addAndGet(head.size());
                head.clear();
            } else if (outstanding.remove(tag)) {
                counter.incrementAndGet();
            }
            notifyAll();
        }

        void publish(String exchange, String key, boolean mandatory, AMQP.BasicProperties props, byte[] body)
                throws Exception {
            synchronized (this) {
                outstanding.add(ch.getNextPublishSeqNo());
                maxInFlight = Math.max(maxInFlight, outstanding.size());
            }
            ch.basicPublish(exchange, key, mandatory, props, body);
        }

        synchronized boolean await(long deadline) throws InterruptedException {
            while (!outstanding.isEmpty() && ch.isOpen()) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) return false;
                wait(Math.min(left, 100));
            }
            return outstanding.isEmpty();
        }
    }

    public static void main(String[] args) throws Exception {
        System.exit(run());
    }

    @SuppressWarnings("unchecked")
    static int run() throws Exception {
        String t = System.getenv("COMPAT_TIMEOUT");
        if (t != null) timeoutMs = (long) (Double.parseDouble(t) * 1000);
        Map<String, Object> spec = (Map<String, Object>) Json.parse(
                new String(Files.readAllBytes(Paths.get(System.getenv("COMPAT_SPEC"))), StandardCharsets.UTF_8));
        String exchange = "compat." + CLIENT + "." + RUN;
        String queue = exchange + ".q";
        int count = ((Number) spec.get("count")).intValue();

        // ---- connect (default mechanism: PLAIN)
        ConnectionFactory f = new ConnectionFactory();
        Connection conn;
        try {
            f.setUri(System.getenv("COMPAT_URL"));
            f.setConnectionTimeout((int) timeoutMs);
            f.setChannelRpcTimeout((int) timeoutMs);
            conn = f.newConnection("compat-" + CLIENT);
        } catch (Exception e) {
            step("connect", false, "error=" + q(e.toString()));
            return 1;
        }
        String version = String.valueOf(conn.getClientProperties().get("version"));
        step("connect", true, "mechanism=" + f.getSaslConfig().getSaslMechanism(new String[] {"PLAIN", "AMQPLAIN"}).getName()
                + " _version=" + version);

        // ---- declare
        Tracked c1, c2;
        try {
            c1 = new Tracked(conn.createChannel());
            c2 = new Tracked(conn.createChannel());
            c1.ch.exchangeDeclare(exchange, "topic", false);
            AMQP.Queue.DeclareOk ok = c1.ch.queueDeclare(queue, true, false, false, null);
            c1.ch.queueBind(queue, exchange, (String) spec.get("binding"));
            c1.ch.exchangeDeclare((String) spec.get("noroute_exchange"), "topic", true);
            step("declare", true, "queue_messages=" + ok.getMessageCount());
        } catch (Exception e) {
            step("declare", false, "error=" + q(e.toString()));
            return 1;
        }

        // ---- publish: asynchronous confirms, all in flight
        long t0 = System.currentTimeMillis();
        try {
            for (int i = 0; i < count; i++) {
                Tracked c = i % 2 == 0 ? c1 : c2;
                c.publish(exchange, String.format((String) spec.get("routing_key"), i % 10), false, null,
                        String.format((String) spec.get("body"), RUN, i).getBytes(StandardCharsets.UTF_8));
            }
            long deadline = System.currentTimeMillis() + timeoutMs;
            boolean done = c1.await(deadline) & c2.await(deadline);
            int acks = c1.acks.get() + c2.acks.get(), nacks = c1.nacks.get() + c2.nacks.get();
            step("publish", done && acks == count && nacks == 0,
                    "acks=" + acks + " nacks=" + nacks + " returns=" + (c1.returns.size() + c2.returns.size())
                            + " _max_in_flight=" + (c1.maxInFlight + c2.maxInFlight) + " _ms="
                            + (System.currentTimeMillis() - t0));
            if (!done) return 1;
        } catch (Exception e) {
            step("publish", false, "error=" + q(e.toString()));
            return 1;
        }

        // ---- mandatory, unroutable
        try {
            int acksBefore = c1.acks.get();
            c1.publish((String) spec.get("noroute_exchange"), (String) spec.get("noroute_key"), true, null,
                    "unroutable".getBytes(StandardCharsets.UTF_8));
            boolean done = c1.await(System.currentTimeMillis() + timeoutMs);
            boolean acked = done && c1.acks.get() == acksBefore + 1;
            // The return listener runs on the same dispatcher before the ack.
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (c1.returns.isEmpty() && System.currentTimeMillis() < deadline) Thread.sleep(10);
            if (c1.returns.isEmpty()) {
                step("mandatory", false, "acked=" + acked + " returned=0 reply_code=- reply_text=-");
            } else {
                step("mandatory", acked && c1.returns.get(0) == 312, "acked=" + acked + " returned=" + c1.returns.size()
                        + " reply_code=" + c1.returns.get(0) + " reply_text=" + c1.returnTexts.get(0));
            }
        } catch (Exception e) {
            step("mandatory", false, "error=" + q(e.toString()));
            return 1;
        }

        // ---- 1 MiB
        try {
            int size = ((Number) spec.get("big_size")).intValue();
            byte[] big = new byte[size];
            for (int i = 0; i < size; i++) big[i] = (byte) (i % 251);
            int acksBefore = c1.acks.get();
            c1.publish(exchange, (String) spec.get("big_key"), false, null, big);
            boolean acked = c1.await(System.currentTimeMillis() + timeoutMs) && c1.acks.get() == acksBefore + 1;
            step("big", acked, "acked=" + acked + " size=" + size);
        } catch (Exception e) {
            step("big", false, "error=" + q(e.toString()));
            return 1;
        }

        // ---- every property, nested headers
        try {
            Map<String, Object> p = (Map<String, Object>) spec.get("props");
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                    .contentType((String) p.get("content_type"))
                    .contentEncoding((String) p.get("content_encoding"))
                    .headers((Map<String, Object>) toAmqp(spec.get("headers")))
                    .deliveryMode(((Number) p.get("delivery_mode")).intValue())
                    .priority(((Number) p.get("priority")).intValue())
                    .correlationId(String.format((String) p.get("correlation_id"), RUN))
                    .replyTo(String.format((String) p.get("reply_to"), RUN))
                    .expiration((String) p.get("expiration"))
                    .messageId(String.format((String) p.get("message_id"), RUN))
                    .timestamp(new Date(((Number) p.get("timestamp")).longValue() * 1000))
                    .type((String) p.get("type"))
                    .userId((String) p.get("user_id"))
                    .appId(String.format((String) p.get("app_id"), CLIENT))
                    .build();
            int acksBefore = c1.acks.get();
            c1.publish(exchange, (String) spec.get("props_key"), false, props,
                    ((String) spec.get("props_body")).getBytes(StandardCharsets.UTF_8));
            boolean acked = c1.await(System.currentTimeMillis() + timeoutMs) && c1.acks.get() == acksBefore + 1;
            step("props", acked, "acked=" + acked);
        } catch (Exception e) {
            step("props", false, "error=" + q(e.toString()));
            return 1;
        }

        // ---- close
        try {
            c2.ch.close();
            c1.ch.close();
            conn.close((int) timeoutMs);
            ShutdownSignalException why = conn.getCloseReason();
            boolean clean = why != null && why.isInitiatedByApplication();
            step("close", clean, "reply_code=" + (clean ? 200 : String.valueOf(why)));
            if (!clean) return 1;
        } catch (Exception e) {
            step("close", false, "error=" + q(e.toString()));
            return 1;
        }
        int rc = consume(f, queue, spec);
        return rpc(f, exchange + ".rpc") | rc;
    }

    /** The consume step's bookkeeping: which of the 1002 messages came, how often, redelivered or not. */
    static final class Tally {
        final Map<String, Object> spec;
        final int count;
        final String first;
        int deliveries, settled, redelivered, bad;
        final Set<Integer> small = new HashSet<>();
        byte[] big;
        Map<String, Object> props;
        boolean nacked, back;

        Tally(Map<String, Object> spec) {
            this.spec = spec;
            this.count = ((Number) spec.get("count")).intValue();
            this.first = String.format((String) spec.get("body"), RUN, 0);
        }

        /** One delivery; true if it is to be nacked with requeue (the first delivery of body run:0). */
        synchronized boolean saw(String key, byte[] body, boolean redeliver, AMQP.BasicProperties p) {
            deliveries++;
            if (redeliver) redelivered++;
            boolean nack = false;
            if (key.equals(spec.get("big_key"))) {
                big = body;
            } else if (key.equals(spec.get("props_key"))) {
                props = delivered(p);
            } else {
                String text = new String(body, StandardCharsets.UTF_8);
                int colon = text.lastIndexOf(':');
                try {
                    int i = Integer.parseInt(text.substring(colon + 1));
                    if (colon < 0 || !text.substring(0, colon).equals(RUN) || i < 0 || i >= count) throw new NumberFormatException(text);
                    small.add(i);
                } catch (NumberFormatException e) {
                    bad++;
                }
                if (text.equals(first)) {
                    if (!nacked) nack = nacked = true;
                    else if (redeliver) back = true;
                }
            }
            return nack;
        }

        /** The delivery's ack or nack was sent: only then may the step close the connection. */
        synchronized void settled() {
            settled++;
            notifyAll();
        }

        synchronized int got() {
            return small.size() + (big != null ? 1 : 0) + (props != null ? 1 : 0);
        }

        synchronized boolean done() {
            return got() == count + 2 && back && settled == deliveries;
        }

        synchronized boolean await(long deadline) throws InterruptedException {
            while (!done()) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) return false;
                wait(Math.min(left, 100));
            }
            return true;
        }
    }

    /** Consume with manual acks and prefetch 100 until all 1002 came, the nacked one again; then, on a new
     *  connection, basic.get. */
    static int consume(ConnectionFactory f, String queue, Map<String, Object> spec) {
        Tally t = new Tally(spec);
        long t0 = System.currentTimeMillis(), ms = 0;
        Boolean getEmpty = null;
        String error = null;
        try {
            Connection conn = f.newConnection("compat-" + CLIENT + "-consume");
            Channel ch = conn.createChannel();
            ch.basicQos(100);
            ch.basicConsume(queue, false, (tag, d) -> {
                long dt = d.getEnvelope().getDeliveryTag();
                if (t.saw(d.getEnvelope().getRoutingKey(), d.getBody(), d.getEnvelope().isRedeliver(), d.getProperties())) {
                    ch.basicNack(dt, false, true);
                } else {
                    ch.basicAck(dt, false);
                }
                t.settled();
            }, tag -> {});
            boolean done = t.await(t0 + timeoutMs);
            ms = System.currentTimeMillis() - t0;
            conn.close((int) timeoutMs);
            if (done) {
                if ("hopper".equals(System.getenv("COMPAT_TARGET"))) Thread.sleep(1000); // a commit interval is 200 ms
                Connection again = f.newConnection("compat-" + CLIENT + "-get");
                GetResponse r = again.createChannel().basicGet(queue, false);
                getEmpty = r == null;
                again.close((int) timeoutMs);
            }
        } catch (Exception e) {
            error = e.toString();
            ms = System.currentTimeMillis() - t0;
        }
        synchronized (t) {
            if (t.props != null) System.out.println("DELIVERED " + json(t.props));
            int size = ((Number) spec.get("big_size")).intValue();
            byte[] want = new byte[size];
            for (int i = 0; i < size; i++) want[i] = (byte) (i % 251);
            String bodies = t.small.size() == t.count && t.bad == 0 ? "ok" : "WRONG";
            String big = t.big == null ? "missing" : Arrays.equals(t.big, want) ? "ok" : "WRONG";
            boolean ok = t.done() && t.redelivered == 1 && t.deliveries == t.count + 3 && bodies.equals("ok")
                    && big.equals("ok") && Boolean.TRUE.equals(getEmpty) && error == null;
            step("consume", ok, "count=" + t.got() + " redelivered=" + t.redelivered + " deliveries=" + t.deliveries
                    + " back=" + t.back + " bodies=" + bodies + " big=" + big + " props=" + (t.props != null ? "yes" : "missing")
                    + " get=" + (getEmpty == null ? "not-run" : getEmpty ? "empty" : "message") + " _ms=" + ms
                    + (error != null ? " error=" + q(error) : ""));
            return ok ? 0 : 1;
        }
    }

    /** RPC with the client's RpcClient, which uses direct reply-to (amq.rabbitmq.reply-to) by default: the
     *  requests through a durable queue (on hopper, Kafka), the replies straight back. */
    static int rpc(ConnectionFactory f, String queue) {
        final String rt = "amq.rabbitmq.reply-to";
        int calls = 3, answered = 0;
        Set<String> seen = new ConcurrentSkipListSet<>();
        long t0 = System.currentTimeMillis();
        String error = null;
        try {
            Connection server = f.newConnection("compat-" + CLIENT + "-rpc-server");
            Channel sch = server.createChannel();
            sch.queueDeclare(queue, true, false, false, null);
            sch.basicConsume(queue, false, (tag, d) -> {
                AMQP.BasicProperties p = d.getProperties();
                seen.add(String.valueOf(p.getReplyTo()));
                AMQP.BasicProperties reply = new AMQP.BasicProperties.Builder().correlationId(p.getCorrelationId()).build();
                String body = new String(d.getBody(), StandardCharsets.UTF_8).toUpperCase();
                sch.basicPublish("", p.getReplyTo(), reply, body.getBytes(StandardCharsets.UTF_8));
                sch.basicAck(d.getEnvelope().getDeliveryTag(), false);
            }, tag -> {});
            Connection client = f.newConnection("compat-" + CLIENT + "-rpc-client");
            RpcClient rpc = new RpcClient(new RpcClientParams().channel(client.createChannel()).exchange("")
                    .routingKey(queue).timeout((int) timeoutMs));
            for (int i = 0; i < calls; i++) {
                if (("CALL " + i).equals(rpc.stringCall("call " + i))) answered++;
            }
            rpc.close();
            sch.queueDelete(queue);
            client.close((int) timeoutMs);
            server.close((int) timeoutMs);
        } catch (Exception e) {
            error = e.toString();
        }
        boolean rewritten = seen.size() == 1 && seen.iterator().next().startsWith(rt + ".");
        boolean ok = error == null && answered == calls && rewritten;
        step("rpc", ok, "calls=" + calls + " answered=" + answered + " reply_to="
                + (rewritten ? "rewritten" : seen.isEmpty() ? "-" : String.join(",", seen))
                + " _ms=" + (System.currentTimeMillis() - t0) + (error != null ? " error=" + q(error) : ""));
        return ok ? 0 : 1;
    }

    /** The delivered properties by their AMQP names, those that are set. */
    static Map<String, Object> delivered(AMQP.BasicProperties p) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("content_type", p.getContentType());
        m.put("content_encoding", p.getContentEncoding());
        m.put("headers", p.getHeaders());
        m.put("delivery_mode", p.getDeliveryMode());
        m.put("priority", p.getPriority());
        m.put("correlation_id", p.getCorrelationId());
        m.put("reply_to", p.getReplyTo());
        m.put("expiration", p.getExpiration());
        m.put("message_id", p.getMessageId());
        m.put("timestamp", p.getTimestamp() == null ? null : p.getTimestamp().getTime() / 1000);
        m.put("type", p.getType());
        m.put("user_id", p.getUserId());
        m.put("app_id", p.getAppId());
        m.put("cluster_id", p.getClusterId());
        m.values().removeIf(v -> v == null);
        return m;
    }

    /** A decoded AMQP value as JSON: long strings as text, dates as seconds. */
    @SuppressWarnings("unchecked")
    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof Boolean || v instanceof Number) return v.toString();
        if (v instanceof Date) return Long.toString(((Date) v).getTime() / 1000);
        if (v instanceof byte[]) return json(new String((byte[]) v, StandardCharsets.UTF_8));
        if (v instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                if (b.length() > 1) b.append(", ");
                b.append(json(e.getKey())).append(": ").append(json(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (v instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object e : (List<Object>) v) {
                if (b.length() > 1) b.append(", ");
                b.append(json(e));
            }
            return b.append(']').toString();
        }
        String s = v instanceof LongString ? v.toString() : String.valueOf(v);
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static String q(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    /** JSON values to what an application would put in AMQP headers: integral numbers as Integer. */
    @SuppressWarnings("unchecked")
    static Object toAmqp(Object v) {
        if (v instanceof Double) {
            double d = (Double) v;
            return d == Math.rint(d) ? (Object) (int) d : v;
        }
        if (v instanceof Map) {
            Map<String, Object> out = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) out.put(e.getKey(), toAmqp(e.getValue()));
            return out;
        }
        if (v instanceof List) {
            List<Object> out = new ArrayList<>();
            for (Object e : (List<Object>) v) out.add(toAmqp(e));
            return out;
        }
        return v;
    }

    /** A minimal JSON reader for scenario.json: objects keep their order. */
    static final class Json {
        final String s;
        int i;

        Json(String s) {
            this.s = s;
        }

        static Object parse(String s) {
            Json j = new Json(s);
            Object v = j.value();
            j.ws();
            if (j.i != s.length()) throw new IllegalArgumentException("trailing data at " + j.i);
            return v;
        }

        void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        }

        Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (s.charAt(i) == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    ws();
                    String k = (String) value();
                    ws();
                    expect(':');
                    m.put(k, value());
                    ws();
                    if (s.charAt(i) == ',') {
                        i++;
                        continue;
                    }
                    expect('}');
                    return m;
                }
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (s.charAt(i) == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    l.add(value());
                    ws();
                    if (s.charAt(i) == ',') {
                        i++;
                        continue;
                    }
                    expect(']');
                    return l;
                }
            }
            if (c == '"') {
                StringBuilder b = new StringBuilder();
                i++;
                while (s.charAt(i) != '"') {
                    char d = s.charAt(i++);
                    if (d == '\\') {
                        char e = s.charAt(i++);
                        switch (e) {
                            case 'n': b.append('\n'); break;
                            case 't': b.append('\t'); break;
                            case 'r': b.append('\r'); break;
                            case 'b': b.append('\b'); break;
                            case 'f': b.append('\f'); break;
                            case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                            default: b.append(e);
                        }
                    } else {
                        b.append(d);
                    }
                }
                i++;
                return b.toString();
            }
            if (s.startsWith("true", i)) {
                i += 4;
                return Boolean.TRUE;
            }
            if (s.startsWith("false", i)) {
                i += 5;
                return Boolean.FALSE;
            }
            if (s.startsWith("null", i)) {
                i += 4;
                return null;
            }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            return Double.parseDouble(s.substring(start, i));
        }

        void expect(char c) {
            if (s.charAt(i) != c) throw new IllegalArgumentException("expected " + c + " at " + i);
            i++;
        }
    }
}
