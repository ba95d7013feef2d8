"""report.py - renders bench.py's raw results as RESULTS.md (Markdown).

Only formatting and arithmetic on the recorded numbers; nothing here
measures. tests/bench/NOTES.md, when present, is included as the
hand-written reading of the numbers."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = {
    "hopper": "hopper",
    "direct": "direct producer",
    "rabbit-classic": "RabbitMQ classic",
    "rabbit-quorum": "RabbitMQ quorum",
    "hopper-transient": "hopper in-memory (transient queue)",
    "rabbit-transient": "RabbitMQ transient classic",
}
SIZE_NAMES = {256: "256 B", 1024: "1 KiB", 16384: "16 KiB"}


def ms(v):
    if v is None or v < 0:
        return "-"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def num(v):
    return "-" if v is None else "{:,.0f}".format(v)


def ratio(a, b):
    if not a or not b:
        return "-"
    return "%.2f" % (a / b)


def kib(v):
    return "-" if v is None else "{:,} KiB ({:.1f} MiB)".format(v, v / 1024)


def find(runs, target, size, rate):
    for r in runs:
        if (r["target"] == target and r["size"] == size and r["rate"] == rate
                and not r.get("purpose")):
            return r
    return None


def max_runs(runs, target, size):
    return [r for r in runs if r["target"] == target and r["size"] == size and r["rate"] == 0
            and not r.get("purpose")]


def median_run(runs, target, size):
    """The max-rate run with the median throughput over the rounds."""
    rs = sorted(max_runs(runs, target, size), key=lambda r: r["pub"]["msgs_per_s"])
    return rs[len(rs) // 2] if rs else None


def round_ratio(runs, a, b, size):
    """Median over rounds of a's msg/s / b's msg/s in the same round."""
    by_round = {}
    for t in (a, b):
        for r in max_runs(runs, t, size):
            by_round.setdefault(r.get("round", 0), {})[t] = r["pub"]["msgs_per_s"]
    v = sorted(x[a] / x[b] for x in by_round.values() if x.get(a) and x.get(b))
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def cpu_per_10k(r):
    """Percent of one core hopper used per 10,000 msg/s in run r."""
    acked = r["pub"]["acked"]
    if not acked or r.get("hopper_cpu_s") is None:
        return None
    return 100.0 * r["hopper_cpu_s"] * 10000 / acked


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def machine_rows(f, la):
    """The first rows of every report's machine table: facts f as bench.py
    and bridge.py record them, la the runs' 1-min load averages."""
    return [
        ["cores", f.get("cores")],
        ["memory", "%.1f GiB" % (f.get("mem_total_kib", 0) / 1048576)],
        ["CPU", f.get("cpu_model")],
        ["kernel", f.get("kernel")],
        ["load average at start (1/5/15 min)", " / ".join(f.get("load_avg_start", []))],
        ["1-min load average before the runs", "%.1f .. %.1f" % (min(la), max(la)) if la else "-"],
    ]


def render(res, rawpath):
    f = res.get("facts", {})
    runs = res.get("runs", [])
    L = []
    w = L.append
    w("# hopper benchmark results\n")
    w("Written by `make bench` (tests/bench/bench.py %s) on %s; raw numbers in `%s`. "
      "Every number below comes from this one run, so ratios compare systems under the same "
      "conditions. Regenerate with `make bench`; do not edit by hand (the reading of the "
      "numbers is in tests/bench/NOTES.md, included at the end).\n"
      % (res.get("mode"), res.get("started"), rawpath))

    w("## Machine and versions\n")
    la = [r["load_avg"] for r in runs]
    w(table(["what", "value"], machine_rows(f, la) + [
        ["hopper", f.get("hopper")],
        ["hopper source (git)", f.get("git", "-")],
        ["Kafka (3 KRaft nodes, one JVM each, 512 MiB heap)", f.get("kafka")],
        ["librdkafka (hopper, direct producer, end-to-end timer)", f.get("librdkafka")],
        ["RabbitMQ (Debian package)", f.get("rabbitmq")],
        ["Erlang (Debian package)", f.get("erlang")],
        ["rabbitmq-c (load generator)", f.get("rabbitmq_c")],
        ["PerfTest (Maven Central)", f.get("perftest") or "not available"],
        ["Java", f.get("java")],
        ["total benchmark time", "%s s" % res.get("elapsed_s")],
    ]))
    w("The machine is shared: other work (other Kafka clusters, fuzzers) ran at the same time, "
      "which the load averages above show. Absolute numbers move with that load; the ratios "
      "between systems measured minutes apart in this run are the meaningful part.\n")

    w("## Method\n")
    w("- **Durability, the same everywhere.** Kafka topics: 3 partitions, replication factor 3, "
      "`min.insync.replicas=2`; producers idempotent with `acks=all`, "
      "`socket.nagle.disable=true`, partitioner `murmur2_random`, no record key. hopper runs "
      "its shipped settings: a partition's message sent while nothing of it is in flight, or "
      "a release of up to five, goes at once (`linger.ms` 0), a larger release waits "
      "`linger.ms` @LINGER@; the direct producer runs librdkafka's default `linger.ms` "
      "@DIRECT_LINGER@ (0 in the synchronous runs). hopper acks only PERSISTED delivery reports; the direct producer counts "
      "the same. RabbitMQ: persistent messages (delivery mode 2) into a durable classic queue, "
      "or a quorum queue, publisher confirms. RabbitMQ confirms a persistent message once it is "
      "fsynced or consumed; Kafka does not fsync (acked = in the page cache of two brokers). "
      "hopper's records carry its four headers (`amqp.exchange`, `amqp.routing_key`, "
      "`amqp.delivery_mode`, `amqp.properties`); the direct producer's carry none.\n"
      "- **Load.** `bench_amqp` (C, rabbitmq-c): 2 connections x 4 channels, confirms on, a "
      "window of unconfirmed messages per channel (2,048 for 256 B and 1 KiB, 256 for 16 KiB); "
      "the direct producer gets the same total window (16,384 / 2,048). Max runs send as fast "
      "as the window allows; fixed-rate runs pace each connection and stamp each message with "
      "its *scheduled* send time, so a stalled sender shows up as latency.\n"
      "- **Measured window.** Each run warms up first (%s s), then throughput counts the confirms "
      "that arrive inside the measured window (%s s max, %s s fixed); latencies cover the "
      "messages sent inside it.\n"
      "- **Latencies.** confirm = confirm (or delivery report) time - send time; end-to-end "
      "(e2e) = time a consumer on this machine received the message - send time: a librdkafka "
      "consumer (`bench_kafka consume`, assigned to every partition at its end) for hopper and "
      "the direct producer, an AMQP no-ack consumer (`bench_amqp consume`) for RabbitMQ. Clock: "
      "CLOCK_MONOTONIC, shared by all processes. Percentiles are nearest-rank over every "
      "measured message.\n"
      "- **hopper CPU** is utime+stime of the hopper process (all threads, librdkafka's "
      "included) from /proc/PID/stat over the load generator's lifetime, per confirmed "
      "message. **RSS** is VmRSS from /proc/PID/status.\n"
      % (_first(runs, "warmup", 0), _first(runs, "duration", 0), _first(runs, "duration", 1)))

    # ---- targets ----
    w("## Targets\n")
    w(targets_table(res))

    # ---- max throughput ----
    w("## Maximum confirmed throughput\n")
    rows = []
    for size in sorted({r["size"] for r in runs if r["rate"] == 0}):
        for t in ("hopper", "direct", "rabbit-classic", "rabbit-quorum"):
            r = median_run(runs, t, size)
            if not r:
                continue
            p, e = r["pub"], r["e2e"]
            all_rates = [x["pub"]["msgs_per_s"] for x in max_runs(runs, t, size)]
            spread = "%s-%s" % (num(min(all_rates)), num(max(all_rates))) if len(all_rates) > 1 \
                else "-"
            rr = [round_ratio(runs, t, b, size) for b in ("direct", "rabbit-classic",
                                                         "rabbit-quorum")]
            rows.append([SIZE_NAMES.get(size, size), NAMES[t], num(p["msgs_per_s"]), spread,
                         "%.1f" % p["mb_per_s"], ms(p["confirm"]["p50"]), ms(p["confirm"]["p99"]),
                         ms(e["e2e"]["p50"]), ms(e["e2e"]["p99"])]
                        + ["%.2f" % x if x else "-" for x in rr])
    w(table(["size", "system", "msg/s (median)", "range over rounds", "MB/s", "confirm p50 ms",
             "confirm p99 ms", "e2e p50 ms", "e2e p99 ms", "x direct", "x RabbitMQ classic",
             "x RabbitMQ quorum"], rows))
    nround = max([r.get("round", 0) for r in runs] or [0]) + 1
    w("%d round(s) per size; in each round every system ran once, back to back, in rotating "
      "order. msg/s is the median over the rounds, latencies are from the median run. "
      "`x direct` etc.: the median over the rounds of this system's msg/s divided by that "
      "system's msg/s in the same round. MB/s counts message bodies (10^6 bytes).\n" % nround)

    # ---- fixed rates ----
    w("## Latency at fixed rates\n")
    rows = []
    fixed = [r for r in runs if r["rate"] and r not in _profile_runs(res)]
    for r in sorted(fixed, key=lambda r: (r["size"] != 1024, r["size"], r["rate"],
                                          list(NAMES).index(r["target"]))):
        p, e = r["pub"], r["e2e"]
        c, x = p["confirm"], e["e2e"]
        over = r.get("hopper_max") and r["rate"] > 0.8 * r["hopper_max"] + 1
        rows.append([SIZE_NAMES.get(r["size"]), num(r["rate"]) + (" *" if over else "")
                     + (" (80 %)" if r.get("p80") else ""), NAMES[r["target"]],
                     num(p["msgs_per_s"]), ms(c["p50"]), ms(c["p95"]), ms(c["p99"]),
                     ms(c["p999"]), ms(x["p50"]), ms(x["p95"]), ms(x["p99"]), ms(x["p999"]),
                     "%d/%d" % (e["measured"], p["measured_sent"]), "%.1f" % r["load_avg"]])
    w(table(["size", "rate", "system", "confirmed msg/s", "confirm p50", "p95", "p99", "p99.9",
             "e2e p50", "p95", "p99", "p99.9", "e2e seen/sent", "load"], rows))
    w("Milliseconds. `(80 %)`: 80 % of hopper's median maximum for that size, rounded down to "
      "100 msg/s. `*`: above 80 % of hopper's maximum (10,000 msg/s of 1 KiB always runs, for "
      "the goal). Baselines run at hopper's rates; a rate above a baseline's own maximum shows "
      "as queueing in its latencies.\n")
    skipped = ["- not run: %s at %s msg/s (%s)" % (SIZE_NAMES.get(s["size"]), num(s["rate"]),
                                                   s["why"]) for s in res.get("skipped", [])]
    if skipped:
        w("\n".join(skipped))

    # ---- synchronous publisher ----
    w("## One confirm at a time (1 KiB)\n")
    sr = sync_runs(runs)
    if not sr:
        w("Not measured in this run.\n\n")
    else:
        rows = []
        for t in ("hopper", "direct", "rabbit-classic", "rabbit-quorum"):
            r = sync_median(runs, t)
            if not r:
                continue
            c = r["pub"]["confirm"]
            x = sync_ratio(runs, t, "direct")
            rows.append([NAMES[t], num(r["pub"]["msgs_per_s"]), ms(c["p50"]), ms(c["p95"]),
                         ms(c["p99"]), ms(r["e2e"]["e2e"]["p50"]),
                         "%.2f" % x if x and t != "direct" else "-", "%.1f" % r["load_avg"]])
        w(table(["system", "msg/s", "confirm p50 ms", "p95", "p99", "e2e p50 ms",
                 "p50 x direct", "load"], rows))
        w("One connection, one channel, one message in flight: each publish waits for its "
          "confirm, as pika's BlockingConnection with `confirm_delivery()` or kombu with "
          "`confirm_publish` do. The direct producer produces one message and waits for its "
          "delivery report (what produce + flush does) with `linger.ms` 0: one Kafka round trip, "
          "hopper's floor. %d round(s), systems back to back in rotating order; the row is the "
          "median round by msg/s, `p50 x direct` the median over rounds of the p50 ratio.\n\n"
          % (max([r.get("round", 0) for r in sr] or [0]) + 1))

    # ---- consuming ----
    w(consume_sections(res))

    # ---- message contracts ----
    w(contracts_section(res))

    # ---- resources ----
    w("## hopper resources\n")
    rows = []
    for r in runs:
        if r["target"] == "hopper" and r.get("hopper_cpu_s") is not None and r not in _profile_runs(res):
            rows.append([SIZE_NAMES.get(r["size"]), "max" if r["rate"] == 0 else num(r["rate"]),
                         num(r["pub"]["msgs_per_s"]), "%.2f" % r["hopper_cpu_s"],
                         "%.0f %%" % cpu_per_10k(r) if cpu_per_10k(r) is not None else "-",
                         kib(r.get("hopper_rss_peak_kib") or r.get("hopper_rss_kib"))])
    w(table(["size", "rate", "confirmed msg/s", "CPU s (run)", "CPU per 10,000 msg/s (of one core)",
             "RSS (peak during max runs, else at end)"], rows))
    idle = res.get("idle", {})
    rows = [["idle, no connections (fresh process, producer connected)", kib(idle.get("idle_rss_kib")), "-"]]
    for k in sorted(idle):
        if k.startswith("rss_kib_"):
            n = int(k.rsplit("_", 1)[1])
            rows.append(["%s idle connections (one channel each; opened in %.1f s)"
                         % (num(n), idle.get("open_s_%d" % n, 0)), kib(idle[k]),
                         "%.2f KiB" % idle["per_conn_kib_%d" % n]])
    if res.get("hopper_rss_start_kib"):
        rows.append(["load process after start", kib(res["hopper_rss_start_kib"]), "-"])
    w(table(["state", "RSS", "per connection"], rows))
    w("\n")

    # ---- linger.ms ----
    w("## linger.ms (hopper and the direct producer, 1 KiB, fixed rates)\n")
    lr = [r for r in runs if r.get("purpose") == "linger"]
    if not lr:
        w("Not measured in this run.\n\n")
    else:
        w(linger_table(lr))
        w("Each linger.ms value with a hopper of its own, back to back, after everything "
          "above; for hopper it is the batch producer's (releases of more than five messages), "
          "for the direct producer every message's. hopper's default is %s; tests/bench/NOTES.md "
          "reads these numbers.\n\n" % res.get("linger_ms", "?"))

    # ---- PerfTest ----
    w("## PerfTest (independent load generator)\n")
    pt = res.get("perftest")
    if not pt:
        w("PerfTest was not available.\n\n")
    else:
        rows = []
        for k, v in pt.items():
            c = v.get("confirm_ms") or [None] * 5
            rows.append([NAMES.get(k, k), num(v.get("send_rate")), ms(c[1]), ms(c[3]), ms(c[4]),
                         "%.1f" % v["load_avg"]])
        w(table(["system", "send rate avg msg/s", "confirm median ms", "p95", "p99", "load"], rows))
        w("One producer, up to 1,000 unconfirmed, 1 KiB persistent messages; against RabbitMQ "
          "with one consumer on a durable classic queue, against hopper without consumers (the "
          "load hopper runs without `--enable-rabbit`; consuming has its own section). "
          "PerfTest's send rate is capped by its confirm window.\n\n")

    # ---- profile ----
    w("## Profile of hopper's hot path (1 KiB, max rate)\n")
    perf = res.get("perf")
    if perf:
        w("`perf record -e cpu-clock -g` on the running hopper during a max-rate run (%s msg/s; "
          "hardware counters are not available in this VM, so samples are timer-based). "
          "Share of hopper's samples:\n" % num(perf.get("run_msgs_per_s")))
        for key, title in (("by_thread", "by thread"), ("by_dso", "by thread and library"),
                           ("by_symbol", "by function (library, function)")):
            w("\n%s:\n\n```\n%s\n```\n" % (title, "\n".join(perf.get(key, [])[:25])))
    cg = res.get("callgrind")
    if cg:
        total = cg.get("total_ir") or 1
        acked = cg.get("acked") or 1
        w("\n`valgrind --tool=callgrind` on hopper during a shorter max-rate run (%s msg/s "
          "under valgrind, %s messages confirmed): %s instructions in all, about %s "
          "instructions per message (start-up and idle threads included).\n"
          % (num(cg.get("run_msgs_per_s")), num(acked), num(total), num(total / acked)))
        rows = [["%.1f %%" % (100.0 * n / total), num(n), "`%s`" % obj]
                for obj, n in cg.get("by_object", [])]
        w("\nSelf cost by object:\n\n")
        w(table(["share", "instructions", "object"], rows))
        for key, title in (("self", "Self cost (instructions in the function itself)"),
                           ("self_hopper", "hopper's own functions, self cost"),
                           ("inclusive", "Inclusive cost (with callees)"),
                           ("inclusive_hopper", "hopper's functions and the library calls on "
                            "its thread, inclusive cost (with callees)")):
            rows = [["%.1f %%" % (100.0 * n / total), num(n), num(n / acked),
                     "`%s`" % _short(name)] for n, name in cg.get(key, [])[:25]]
            w("\n%s:\n\n" % title)
            w(table(["share", "instructions", "per message", "function"], rows))
    w("\n")

    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as fh:
            w(fh.read().rstrip() + "\n\n")

    w("## Exact commands\n")
    w("`make bench` runs `tests/bench/bench.py full`, which ran these, in this order "
      "(paths relative to the repository root; `build/bench/work/hopper` is a copy of "
      "`build/hopper`, `build/bench/work/hopper-*.yaml` the configs bench.py writes):\n\n")
    w("```\n" + "\n".join(res.get("commands", [])) + "\n```\n")
    # Every chunk is a block of its own: Markdown wants blank lines between
    # headings, paragraphs and tables.
    text = "".join(x.strip("\n") + "\n\n" for x in L if x.strip()).rstrip("\n") + "\n"
    # Runs before linger.ms was recorded used 1.
    return text.replace("@LINGER@", str(res.get("linger_ms", "1"))).replace(
        "@DIRECT_LINGER@", str(res.get("direct_linger_ms", res.get("linger_ms", "5"))))


def sync_runs(runs):
    return [r for r in runs if r.get("purpose") == "sync"]


def sync_median(runs, target):
    rs = sorted((r for r in sync_runs(runs) if r["target"] == target),
                key=lambda r: r["pub"]["msgs_per_s"])
    return rs[len(rs) // 2] if rs else None


def sync_ratio(runs, a, b):
    """Median over rounds of a's confirm p50 / b's in the same round."""
    by_round = {}
    for r in sync_runs(runs):
        if r["target"] in (a, b):
            by_round.setdefault(r.get("round", 0), {})[r["target"]] = r["pub"]["confirm"]["p50"]
    v = sorted(x[a] / x[b] for x in by_round.values() if x.get(a) and x.get(b))
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def linger_table(lr):
    rows = []
    for r in lr:
        c, x = r["pub"]["confirm"], r["e2e"]["e2e"]
        rows.append([str(r["linger_ms"]), num(r["rate"]), NAMES[r["target"]],
                     num(r["pub"]["msgs_per_s"]), ms(c["p50"]), ms(c["p99"]), ms(x["p50"]),
                     ms(x["p95"]), ms(x["p99"]),
                     "%.2f" % r["hopper_cpu_s"] if r.get("hopper_cpu_s") is not None else "-",
                     "%.1f" % r["load_avg"]])
    return table(["linger.ms", "rate", "system", "confirmed msg/s", "confirm p50", "p99",
                  "e2e p50", "p95", "p99", "hopper CPU s", "load"], rows)


def _short(name):
    """'src/chan.c:complete_publish [/path/hopper]' -> 'src/chan.c:complete_publish (hopper)'."""
    if name.endswith("]") and " [" in name:
        fn, obj = name[:-1].rsplit(" [", 1)
        fn = fn.replace("???:", "")
        if "/" in fn.split(":", 1)[0] and not fn.startswith("src/"):
            fn = fn.split(":", 1)[-1]
        return "%s (%s)" % (fn, os.path.basename(obj))
    return name


def _first(runs, key, fixed):
    for r in runs:
        if bool(r["rate"]) == bool(fixed):
            return r["pub"].get(key)
    return "-"


def _profile_runs(res):
    """The runs made for the profiles (not part of the tables)."""
    return [r for r in res.get("runs", []) if r.get("purpose")]


def targets_table(res):
    runs = [r for r in res.get("runs", []) if r not in _profile_runs(res)]
    rows = []
    # e2e p95 < 100 ms at every fixed rate up to 80 % of max.
    fixed = [r for r in runs if r["target"] == "hopper" and r["rate"]
             and r["rate"] <= 0.8 * r.get("hopper_max", 0) + 1]
    if fixed:
        worst = max(fixed, key=lambda r: r["e2e"]["e2e"]["p95"])
        v = worst["e2e"]["e2e"]["p95"]
        rows.append(["e2e p95 < 100 ms at every fixed rate up to 80 % of max (hopper)",
                     "worst: %s ms (%s, %s msg/s)" % (ms(v), SIZE_NAMES[worst["size"]],
                                                     num(worst["rate"])),
                     verdict(v < 100, v, 100, "ms")])
    r10 = find(runs, "hopper", 1024, 10000)
    if r10:
        v = r10["e2e"]["e2e"]["p99"]
        c = r10["pub"]["confirm"]["p99"]
        rows.append(["goal: p99 < 10 ms at 10,000 msg/s of 1 KiB (hopper)",
                     "e2e p99 %s ms, confirm p99 %s ms" % (ms(v), ms(c)),
                     verdict(v < 10, v, 10, "ms")])
    h = median_run(runs, "hopper", 1024)
    d = median_run(runs, "direct", 1024)
    rd = round_ratio(runs, "hopper", "direct", 1024)
    if h and d and rd:
        rows.append(["max confirmed throughput >= 80 % of the direct producer (1 KiB)",
                     "%s vs %s msg/s (medians); per-round ratio %.0f %%"
                     % (num(h["pub"]["msgs_per_s"]), num(d["pub"]["msgs_per_s"]), 100 * rd),
                     verdict(rd >= 0.8, 100.0 * rd, 80, "%", higher=True)])
    for size in sorted({r["size"] for r in runs if r["rate"] == 0}):
        for t in ("rabbit-classic", "rabbit-quorum"):
            rr = round_ratio(runs, "hopper", t, size)
            if rr:
                rows.append(["throughput above %s (%s)" % (NAMES[t], SIZE_NAMES[size]),
                             "x%.2f (median per-round ratio)" % rr,
                             verdict(rr > 1, rr, 1, "x", higher=True)])
    hs, ds = sync_median(res.get("runs", []), "hopper"), sync_median(res.get("runs", []), "direct")
    sr = sync_ratio(res.get("runs", []), "hopper", "direct")
    if hs and ds and sr:
        rows.append(["one confirm at a time: p50 within 1.3x of the direct round trip (1 KiB)",
                     "p50 %s ms vs %s ms; per-round ratio x%.2f"
                     % (ms(hs["pub"]["confirm"]["p50"]), ms(ds["pub"]["confirm"]["p50"]), sr),
                     verdict(sr <= 1.3, sr, 1.3, "x")])
        v = hs["pub"]["msgs_per_s"]
        rows.append(["one confirm at a time: at least 5x the 55 msg/s of issue 15 (275 msg/s)",
                     "%s msg/s" % num(v), verdict(v >= 275, v, 275, "msg/s", higher=True)])
    idle = res.get("idle", {})
    if idle.get("idle_rss_kib"):
        v = idle["idle_rss_kib"] / 1024
        rows.append(["RSS < 16 MiB idle", "%.1f MiB" % v, verdict(v < 16, v, 16, "MiB")])
    per = [(int(k.rsplit("_", 1)[1]), v) for k, v in idle.items() if k.startswith("per_conn_kib_")]
    if per:
        n, v = max(per)
        rows.append(["< 32 KiB per idle connection", "%.2f KiB (with %s connections)" % (v, num(n)),
                     verdict(v < 32, v, 32, "KiB")])
    rows += consume_targets(res)
    return table(["target", "measured", "verdict"], rows) + "\n"


CONSUMERS = ("hopper", "rabbit-classic", "rabbit-quorum")
TRANSIENT = ("hopper-transient", "rabbit-transient")


def median(v):
    v = sorted(v)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def drain_of(res, target, prefetch):
    return [r for r in res.get("drain", []) if r["target"] == target and r["prefetch"] == prefetch]


def drained(r):
    """Whether the consumer got every message of the fill."""
    c = r["consume"]
    return c["of_run"] == r["n"] and not c.get("error")


def drain_rate(r):
    """msg/s of a drain run; None when it did not drain the queue (a stall)."""
    return r["consume"]["msgs_per_s"] if drained(r) else None


def drain_median(res, target, prefetch):
    """The drain run with the median msg/s over the rounds; runs that did not
    drain the queue sort first (as the slowest)."""
    rs = sorted(drain_of(res, target, prefetch), key=lambda r: (drained(r),
                                                               r["consume"]["msgs_per_s"]))
    return rs[len(rs) // 2] if rs else None


def drain_spread(res, target, prefetch):
    """The range of a system's drain msg/s over the rounds, and how many stalled."""
    allr = [drain_rate(x) for x in drain_of(res, target, prefetch)]
    done = [x for x in allr if x is not None]
    spread = "%s-%s" % (num(min(done)), num(max(done))) if len(done) > 1 else "-"
    if len(done) < len(allr):
        spread += " (%d of %d stalled)" % (len(allr) - len(done), len(allr))
    return spread


def drain_cpu(r):
    """hopper's CPU per delivered message in a drain run, in us ("-" for others)."""
    if r.get("hopper_cpu_s") is None or not drained(r):
        return "-"
    return "%.1f" % (1e6 * r["hopper_cpu_s"] / r["consume"]["of_run"])


def drain_ratio(res, a, b, prefetch):
    """Median over rounds of a's drain msg/s / b's in the same round (rounds
    where either did not drain the queue left out)."""
    by_round = {}
    for t in (a, b):
        for r in drain_of(res, t, prefetch):
            by_round.setdefault(r.get("round", 0), {})[t] = drain_rate(r)
    return median([x[a] / x[b] for x in by_round.values() if x.get(a) and x.get(b)])


def consume_sections(res):
    """Drain throughput, publish -> deliver latency and idle consumers."""
    if not (res.get("drain") or res.get("deliver") or res.get("idle_consumers")
            or res.get("celery")):
        return ""
    L = []
    w = L.append
    w("## Consuming: task queues (hopper `--enable-rabbit`)\n")
    w("hopper serves a durable queue from a Kafka consumer group (README, \"Task queues\"): "
      "it runs here as its own process with `--enable-rabbit` and the default route on (a "
      "message to the default exchange with routing key Q goes to topic Q with record key Q, "
      "so a queue's messages share one of its 3 partitions; rf 3, min ISR 2, created "
      "before the queue is declared); RabbitMQ uses durable "
      "classic and quorum queues. Every run uses a fresh queue, deleted afterwards. Messages "
      "are 1 KiB, persistent, published with confirms; the consumer is `bench_amqp consume "
      "--prefetch N` (rabbitmq-c): `basic.qos` N, then an ack per delivery (multiple=false) "
      "right after it arrives.\n")
    drain = [r for r in res.get("drain", []) if r["target"] in CONSUMERS]
    if drain:
        w("### Drain throughput (1 KiB, one consumer, manual acks)\n")
        rows = []
        for pf in sorted({r["prefetch"] for r in drain}):
            for t in CONSUMERS:
                r = drain_median(res, t, pf)
                if not r:
                    continue
                c = r["consume"]
                spread = drain_spread(res, t, pf)
                ratios = ["%.2f" % x if x and t != b else "-" for x, b in
                          ((drain_ratio(res, t, b, pf), b) for b in ("rabbit-classic",
                                                                      "rabbit-quorum"))]
                cpu = drain_cpu(r)
                rate = num(c["msgs_per_s"]) if drained(r) else \
                    "stalled after %s of %s (%s msg/s until then)" % (
                        num(c["of_run"]), num(r["n"]), num(c["msgs_per_s"]))
                rows.append([num(pf), NAMES[t], rate, spread,
                             "%.2f" % c["first_s"], "%d/%d" % (c["of_run"], r["n"]),
                             num(c["redelivered"]), num(r["fill"]["msgs_per_s"]), cpu] + ratios
                            + ["%.1f" % r["load_avg"]])
        w(table(["prefetch", "system", "drain msg/s (median)", "range over rounds",
                 "first delivery s", "delivered/filled", "redelivered", "fill msg/s",
                 "hopper CPU us/msg", "x RabbitMQ classic", "x RabbitMQ quorum", "load"], rows))
        nround = max([r.get("round", 0) for r in drain] or [0]) + 1
        w("Per run: a fresh durable queue is filled with %s messages of 1 KiB (one publisher, "
          "two channels, up to 500 unconfirmed each; `fill msg/s` is the messages over the "
          "filler's whole life, connecting and declaring included), then one consumer with prefetch N drains it, "
          "acking each delivery. msg/s = (messages - 1) / (last delivery - first delivery); "
          "`first delivery s` is the wait from `consume-ok` to the first delivery (for hopper the "
          "consumer group's join and first fetch). %d round(s), every system once per round, in "
          "rotating order; the row is the median round, `x ...` the median per-round ratio "
          "(rounds where a consumer stopped receiving before the queue was empty, `stalled`: "
          "nothing for %s s, left out; a stalled row gives the rate up to the stall). "
          "hopper CPU is utime+stime of the process over the drain (its fetcher threads "
          "included), per delivered message.\n"
          % (num(drain[0]["n"]), nround, "10" if res.get("mode") == "full" else "5"))
    deliver = [r for r in res.get("deliver", []) if r["target"] in CONSUMERS]
    if deliver:
        w("### Publish -> deliver latency (1 KiB, fixed rates)\n")
        rows = []
        for r in sorted(deliver, key=lambda r: (r["rate"], CONSUMERS.index(r["target"]))):
            p, e = r["pub"], r["e2e"]
            c, x = p["confirm"], e["e2e"]
            rows.append([num(r["rate"]), NAMES[r["target"]], num(p["msgs_per_s"]), ms(c["p50"]),
                         ms(c["p99"]), ms(x["p50"]), ms(x["p95"]), ms(x["p99"]), ms(x["p999"]),
                         ms(x["max"]), "%d/%d" % (e["measured"], p["measured_sent"]),
                         num(e["redelivered"]),
                         "%.2f" % r["hopper_cpu_s"] if r.get("hopper_cpu_s") is not None else "-",
                         "%.1f" % r["load_avg"]])
        w(table(["rate", "system", "confirmed msg/s", "confirm p50", "p99", "deliver p50", "p95",
                 "p99", "p99.9", "max", "delivered/sent", "redelivered", "hopper CPU s", "load"],
                rows))
        d0 = deliver[0]["pub"]
        w("Milliseconds. One publisher (one connection, one channel, up to 2,048 unconfirmed) "
          "at the rate, %s s warm-up then %s s measured; one consumer, prefetch %d, an ack per "
          "delivery. deliver = the consumer's receive time - the message's *scheduled* send "
          "time (stamped in the body; CLOCK_MONOTONIC, one machine), over every message sent in "
          "the measured window. Before each run the consumer got a few unmeasured messages, so "
          "hopper's consumer group had joined.\n"
          % (d0.get("warmup"), d0.get("duration"), deliver[0]["prefetch"]))
    for part in (transient_section(res), celery_section(res)):
        if part:
            w(part)
    ic = res.get("idle_consumers")
    if ic:
        w("### Idle consumers (hopper memory)\n")
        counts = ic.get("counts", [])
        rows = [["hopper with `--enable-rabbit`, no queue in use", kib(ic.get("rss_kib_none")),
                 ic.get("threads_none"), "%.1f %%" % ic.get("cpu_pct_none", 0), "-"],
                ["1 consumer on queue A (its consumer group: a librdkafka consumer)",
                 kib(ic.get("rss_kib_first")), ic.get("threads_first"),
                 "%.1f %%" % ic.get("cpu_pct_first", 0), "-"]]
        for n in counts:
            rows.append(["%s consumers on queue A (opened in %.1f s)"
                         % (num(n), ic.get("open_s_%d" % n, 0)),
                         kib(ic.get("rss_kib_shared_%d" % n)), ic.get("threads_shared_%d" % n),
                         "%.1f %%" % ic.get("cpu_pct_shared_%d" % n, 0),
                         "%.2f KiB per consumer" % ic["per_consumer_kib_%d" % n]])
        q = ic.get("queues")
        rows.append(["+ %s, one consumer each" % ("queue B1" if q == 1 else "queues B1..B%d" % q),
                     kib(ic.get("rss_kib_own_%d" % q)), ic.get("threads_own_%d" % q),
                     "%.1f %%" % ic.get("cpu_pct_own_%d" % q, 0),
                     "%s KiB, %s threads, %s %% CPU per queue" % (ic.get("per_queue_kib"),
                                                                 ic.get("per_queue_threads"),
                                                                 ic.get("per_queue_cpu_pct"))])
        w(table(["state", "RSS", "threads", "CPU (of one core)", "per item"], rows))
        w("A fresh hopper; each consumer has a connection of its own with one channel, "
          "`basic.qos` 100, `basic.consume` with acks, and nothing to deliver. Per consumer = RSS "
          "growth from the first consumer on queue A to N consumers on it, / (N - 1): the "
          "consumer's connection and channel included (the idle-connection table above gives "
          "their share). Per queue = RSS growth for the queues B, / their number, minus one "
          "consumer's cost: the queue's feed, its librdkafka consumer (threads, buffers, broker "
          "connections) and its group membership. CPU is hopper's over a window of seconds "
          "once the groups had their partitions (idle fetch requests).\n")
    return "".join(x.strip("\n") + "\n\n" for x in L)


def transient_p95(res):
    """[(rate, hopper's deliver run, RabbitMQ's)] for the transient targets,
    where both ran at the rate."""
    out = []
    deliver = res.get("deliver", [])
    for rate in sorted({r["rate"] for r in deliver if r["target"] in TRANSIENT}):
        h = [r for r in deliver if r["target"] == "hopper-transient" and r["rate"] == rate]
        b = [r for r in deliver if r["target"] == "rabbit-transient" and r["rate"] == rate]
        if h and b:
            out.append((rate, h[0], b[0]))
    return out


def complete(r):
    """Whether a deliver run's consumer got every message sent in the window."""
    return (r["e2e"]["measured"] == r["pub"]["measured_sent"] and not r["pub"].get("error")
            and not r["e2e"].get("error"))


def transient_comparison(res):
    """One sentence per rate: hopper's in-memory deliver p95 against RabbitMQ
    transient's, as a ratio, from the recorded runs."""
    parts = []
    for rate, h, b in transient_p95(res):
        hp, bp = h["e2e"]["e2e"]["p95"], b["e2e"]["e2e"]["p95"]
        if not (complete(h) and complete(b)) or not hp or not bp:
            parts.append("at %s msg/s no comparison: %s" % (
                num(rate), "hopper delivered %s of %s" % (num(h["e2e"]["measured"]),
                                                         num(h["pub"]["measured_sent"]))
                if not complete(h) else "RabbitMQ delivered %s of %s" % (
                    num(b["e2e"]["measured"]), num(b["pub"]["measured_sent"]))))
        elif hp <= bp:
            parts.append("at %s msg/s hopper's p95 is %s ms against RabbitMQ's %s ms (x%.2f: "
                         "at least as fast)" % (num(rate), ms(hp), ms(bp), hp / bp))
        else:
            parts.append("at %s msg/s hopper's p95 is %s ms against RabbitMQ's %s ms (x%.2f: "
                         "slower by %s ms)" % (num(rate), ms(hp), ms(bp), hp / bp, ms(hp - bp)))
    if not parts:
        return ""
    s = "; ".join(parts)
    return "Publish -> deliver through a transient queue: " + s[0].lower() + s[1:] + "."


def transient_section(res):
    """hopper's in-memory path against RabbitMQ's transient classic queues."""
    drain = [r for r in res.get("drain", []) if r["target"] in TRANSIENT]
    deliver = [r for r in res.get("deliver", []) if r["target"] in TRANSIENT]
    if not (drain or deliver):
        return ""
    L = []
    w = L.append
    w("### In-memory path: transient queues\n")
    w("The same runs on a transient queue: declared not durable, without arguments (neither "
      "exclusive nor auto-delete, so the filler's and the consumer's connections share it): on "
      "hopper a queue held in the process's memory, never in Kafka (README, \"Transient queues "
      "live in memory\"; its confirm comes at once), on RabbitMQ a transient classic queue. "
      "Messages are published with delivery mode 1, as a persistent message to a transient "
      "queue is not persisted on RabbitMQ either. Same hopper process as above.\n")
    if drain:
        rows = []
        for pf in sorted({r["prefetch"] for r in drain}):
            for t in TRANSIENT:
                r = drain_median(res, t, pf)
                if not r:
                    continue
                c = r["consume"]
                spread = drain_spread(res, t, pf)
                rr = drain_ratio(res, "hopper-transient", "rabbit-transient", pf)
                cpu = drain_cpu(r)
                rate = num(c["msgs_per_s"]) if drained(r) else \
                    "stalled after %s of %s" % (num(c["of_run"]), num(r["n"]))
                rows.append([num(pf), NAMES[t], rate, spread, "%.2f" % c["first_s"],
                             "%d/%d" % (c["of_run"], r["n"]), num(r["fill"]["msgs_per_s"]), cpu,
                             "%.2f" % rr if rr and t == "hopper-transient" else "-",
                             "%.1f" % r["load_avg"]])
        w(table(["prefetch", "system", "drain msg/s (median)", "range over rounds",
                 "first delivery s", "delivered/filled", "fill msg/s", "hopper CPU us/msg",
                 "x RabbitMQ transient", "load"], rows))
        w("As the durable drain table: a fresh queue filled with %s messages, then one consumer "
          "with prefetch N acking each delivery; median round, `x RabbitMQ transient` the "
          "median per-round ratio.\n" % num(drain[0]["n"]))
    if deliver:
        rows = []
        for r in sorted(deliver, key=lambda r: (r["rate"], TRANSIENT.index(r["target"]))):
            p, e = r["pub"], r["e2e"]
            c, x = p["confirm"], e["e2e"]
            rows.append([num(r["rate"]), NAMES[r["target"]], num(p["msgs_per_s"]), ms(c["p50"]),
                         ms(c["p99"]), ms(x["p50"]), ms(x["p95"]), ms(x["p99"]), ms(x["p999"]),
                         ms(x["max"]), "%d/%d" % (e["measured"], p["measured_sent"]),
                         "%.2f" % r["hopper_cpu_s"] if r.get("hopper_cpu_s") is not None else "-",
                         "%.1f" % r["load_avg"]])
        w(table(["rate", "system", "confirmed msg/s", "confirm p50", "p99", "deliver p50", "p95",
                 "p99", "p99.9", "max", "delivered/sent", "hopper CPU s", "load"], rows))
        w("Milliseconds; as the durable deliver table (one publisher with confirms at the "
          "rate, one consumer with prefetch %d and an ack per delivery, deliver = receive "
          "time - scheduled send time).\n" % deliver[0]["prefetch"])
    cmp_ = transient_comparison(res)
    if cmp_:
        w(cmp_ + "\n")
    return "".join(x.strip("\n") + "\n\n" for x in L)


def celery_section(res):
    """The Celery round trip: apply_async -> result through rpc://."""
    cel = res.get("celery")
    if not cel:
        return ""
    L = []
    w = L.append
    w("### Celery round trip (apply_async -> result.get() through rpc://)\n")
    rows = []
    for r in cel:
        c = r["client"]
        rt = c.get("rtt_ms") or {}
        rows.append([{"hopper": "hopper", "rabbit": "RabbitMQ"}[r["target"]],
                     "%s" % (r.get("ready_s") if r.get("ready_s") is not None else "-"),
                     num(rt.get("n")), ms(rt.get("p50")), ms(rt.get("p95")), ms(rt.get("p99")),
                     ms(rt.get("max")), "%s/%s" % (num(c.get("conc_done")), num(c.get("total"))),
                     num(c.get("tasks_per_s")),
                     "%.2f" % r["hopper_cpu_s"] if r.get("hopper_cpu_s") is not None else "-",
                     "%.1f" % r["load_avg"], c.get("error") or "-"])
    w(table(["broker", "first task s", "round trips", "p50 ms", "p95 ms", "p99 ms", "max ms",
             "concurrent done", "tasks/s", "hopper CPU s", "load", "error"], rows))
    c0 = cel[0]["client"]
    w("Celery with py-amqp (`tests/bench/celery_rt.py`, versions pinned in bench.py's "
      "CELERY_PINS), a %d-process prefork worker (`-c %d`, `--without-gossip --without-mingle "
      "--without-heartbeat`, Celery's defaults otherwise: JSON, acks on receipt, prefetch "
      "multiplier 4, no publisher confirms) and a task `add` that returns at once. The task "
      "queue is durable, behind a direct exchange (on hopper: a Kafka topic and consumer "
      "group, so every task makes a Kafka round trip); the result comes back through the "
      "rpc:// backend, the client's non-durable auto-delete queue (in memory on hopper). Round "
      "trip = apply_async until result.get() returns, %s in a row after a few unmeasured ones "
      "(`first task s`: the wait for the first result, the worker starting); then %s tasks "
      "with %s in flight (a new one sent as the oldest returns): tasks/s over that run.\n"
      % (cel[0]["workers"], cel[0]["workers"], num(c0.get("seq")), num(c0.get("total")),
         num(c0.get("conc"))))
    for r in cel:
        if r["client"].get("error"):
            w("**%s: the Celery run failed**: %s. Worker log (last lines): `%s`. %s\n"
              % (r["target"], r["client"]["error"], " / ".join(r.get("worker_log", [])[-5:]),
                 ("hopper's log on queue %s (last lines): `%s`" % (
                     r["queue"], " / ".join(r.get("hopper_log", [])[-8:])))
                 if r.get("hopper_log") is not None else ""))
    h = [r for r in cel if r["target"] == "hopper" and not r["client"].get("error")]
    b = [r for r in cel if r["target"] == "rabbit" and not r["client"].get("error")]
    if h and b:
        hc, bc = h[0]["client"], b[0]["client"]
        w("hopper's Celery round trip p95 is x%.2f RabbitMQ's (%s against %s ms), its "
          "tasks/s x%.2f (%s against %s).\n"
          % (hc["rtt_ms"]["p95"] / bc["rtt_ms"]["p95"], ms(hc["rtt_ms"]["p95"]),
             ms(bc["rtt_ms"]["p95"]), hc["tasks_per_s"] / bc["tasks_per_s"],
             num(hc["tasks_per_s"]), num(bc["tasks_per_s"])))
    return "".join(x.strip("\n") + "\n\n" for x in L)


def render_partial(res, rawpath):
    """The report of a partial run (bench.py --only): its consuming sections
    alone."""
    f = res.get("facts", {})
    return ("# hopper benchmark, partial run\n\nWritten by `tests/bench/bench.py %s --only %s` "
            "on %s (hopper %s, load average at start %s, %s s); raw numbers in `%s`. Only "
            "the parts named ran; RESULTS.md is the whole benchmark's.\n\n%s"
            % (res.get("mode"), ",".join(res.get("only", [])), res.get("started"),
               f.get("git", "?"), " / ".join(f.get("load_avg_start", [])), res.get("elapsed_s"),
               rawpath, consume_sections(res)))


def consume_targets(res):
    rows = []
    for rate, h, b in transient_p95(res):
        hp, bp = h["e2e"]["e2e"]["p95"], b["e2e"]["e2e"]["p95"]
        what = ("in-memory deliver p95 at most RabbitMQ transient's at %s msg/s (hopper "
                "transient queue)" % num(rate))
        if not complete(h):
            rows.append([what, "%s of %s delivered" % (num(h["e2e"]["measured"]),
                                                       num(h["pub"]["measured_sent"])),
                         "missed (not every message delivered)"])
        elif hp and bp:
            rows.append([what, "%s vs %s ms, x%.2f" % (ms(hp), ms(bp), hp / bp),
                         verdict(hp <= bp, hp, bp, "ms")])
    deliver = [r for r in res.get("deliver", []) if r["target"] == "hopper"]
    if deliver:
        worst = max(deliver, key=lambda r: r["e2e"]["e2e"]["p95"])
        v = worst["e2e"]["e2e"]["p95"]
        rates = sorted({r["rate"] for r in deliver})
        lost = [r for r in deliver if r["e2e"]["measured"] < r["pub"]["measured_sent"]]
        rows.append(["deliver p95 < 100 ms at %s msg/s (hopper, prefetch %d, acks)"
                     % (" and ".join(num(x) for x in rates), worst["prefetch"]),
                     "; ".join("%s msg/s: p95 %s ms%s" % (
                         num(r["rate"]), ms(r["e2e"]["e2e"]["p95"]),
                         " (%s of %s delivered)" % (num(r["e2e"]["measured"]),
                                                   num(r["pub"]["measured_sent"]))
                         if r in lost else "")
                               for r in sorted(deliver, key=lambda r: r["rate"])),
                     "missed (not every message delivered)" if lost
                     else verdict(v < 100, v, 100, "ms")])
    rr = drain_ratio(res, "hopper", "rabbit-quorum", 100)
    h, q = drain_median(res, "hopper", 100), drain_median(res, "rabbit-quorum", 100)
    what = "consume throughput at prefetch 100 above RabbitMQ quorum's (1 KiB, acks)"
    hs = [r for r in drain_of(res, "hopper", 100) if not drained(r)]
    if hs:
        rows.append([what, "hopper's consumer stalled in %d of %d rounds (after %s of %s "
                     "messages)" % (len(hs), len(drain_of(res, "hopper", 100)),
                                    ", ".join(num(r["consume"]["of_run"]) for r in hs),
                                    num(hs[0]["n"])), "missed (stall)"])
    elif rr and h and q:
        rows.append([what, "%s vs %s msg/s (medians); per-round ratio x%.2f"
                     % (num(h["consume"]["msgs_per_s"]), num(q["consume"]["msgs_per_s"]), rr),
                     verdict(rr > 1, rr, 1, "x", higher=True)])
    ic = res.get("idle_consumers") or {}
    if ic.get("counts"):
        n = ic["counts"][-1]
        v = ic["per_consumer_kib_%d" % n]
        rows.append(["< 16 KiB of hopper memory per idle consumer (%s on one queue, a connection "
                     "each)" % num(n), "%.2f KiB" % v, verdict(v < 16, v, 16, "KiB")])
    return rows


def verdict(ok, value, bound, unit, higher=False):
    if ok:
        return "met"
    if higher:
        return "missed by %.2f %s" % (bound - value, unit) if unit != "%" else \
            "missed by %.0f points" % (bound - value)
    return "missed by %s %s (x%.1f)" % (ms(value - bound), unit, value / bound if bound else 0)


# ---- message contracts (bench.py contract_phase) ----

CONTRACT_NAMES = {
    "hopper": "no contract",
    "hopper-json": "JSON Schema",
    "hopper-avro": "Avro",
}


def contract_runs_of(c, target, rate):
    return [r for r in c.get("runs", []) if r["target"] == target and r["rate"] == rate]


def cpu_us(r):
    """hopper's CPU per confirmed message in run r, in microseconds."""
    acked = r["pub"]["acked"]
    if not acked or r.get("hopper_cpu_s") is None:
        return None
    return 1e6 * r["hopper_cpu_s"] / acked


def contract_share(c, target):
    """Median over rounds of target's max msg/s / no contract's in the same
    round."""
    by_round = {}
    for t in (target, "hopper"):
        for r in contract_runs_of(c, t, 0):
            by_round.setdefault(r.get("round", 0), {})[t] = r["pub"]["msgs_per_s"]
    return median([x[target] / x["hopper"] for x in by_round.values()
                   if x.get(target) and x.get("hopper")])


def contract_p95s(c, target):
    return [r["e2e"]["e2e"]["p95"] for r in contract_runs_of(c, target, c["rate"])]


def contract_short(r):
    """True if the end-to-end timer saw fewer messages than were sent in the
    measured window (or anything was nacked)."""
    return r["e2e"]["measured"] < r["pub"]["measured_sent"] or r["pub"]["nacked"] > 0


def contracts_table(c):
    rate = c["rate"]
    skipped = {s["target"]: s for s in c.get("skipped", [])}
    rows = []
    for t in c.get("targets", []):
        if t in skipped:
            rows.append([CONTRACT_NAMES.get(t, t), "`%s`" % t, "skipped"] + ["-"] * 8)
            continue
        mx = contract_runs_of(c, t, 0)
        fx = contract_runs_of(c, t, rate)
        rates = [r["pub"]["msgs_per_s"] for r in mx]
        share = contract_share(c, t) if t != "hopper" else None
        p95 = contract_p95s(c, t)
        mid = sorted(fx, key=lambda r: r["e2e"]["e2e"]["p95"])[len(fx) // 2] if fx else None
        seen = sum(r["e2e"]["measured"] for r in fx)
        sent = sum(r["pub"]["measured_sent"] for r in fx)
        rows.append([
            CONTRACT_NAMES.get(t, t), "`%s`" % t,
            num(median(rates)),
            "%s-%s" % (num(min(rates)), num(max(rates))) if len(rates) > 1 else "-",
            "%.0f %%" % (100 * share) if share else "-",
            ms(mid["e2e"]["e2e"]["p50"]) if mid else "-",
            ms(median(p95)) if p95 else "-",
            ms(max(p95)) if p95 else "-",
            "%s/%s" % (num(seen), num(sent)) if fx else "-",
            _f1(median([cpu_us(r) for r in mx if cpu_us(r) is not None])),
            _f1(median([cpu_us(r) for r in fx if cpu_us(r) is not None])),
        ])
    return table(["contract", "target", "max msg/s (median)", "range over rounds",
                  "of no contract's max", "e2e p50 at %s msg/s" % num(rate),
                  "e2e p95 (median)", "e2e p95 (worst round)", "e2e seen/sent",
                  "hopper CPU µs/msg at max", "at %s msg/s" % num(rate)], rows)


def contract_verdicts(c):
    rate, share_min, p95_max = c["rate"], c.get("min_share", 0.7), c.get("p95_ms", 100)
    skipped = {s["target"]: s for s in c.get("skipped", [])}
    rows = []
    for t in c.get("targets", []):
        if t == "hopper":
            continue
        name = CONTRACT_NAMES.get(t, t)
        if t in skipped:
            rows.append(["%s contract: throughput and e2e p95" % name,
                         "not run: %s" % skipped[t]["why"], "not measured"])
            continue
        share = contract_share(c, t)
        h = median([r["pub"]["msgs_per_s"] for r in contract_runs_of(c, "hopper", 0)])
        x = median([r["pub"]["msgs_per_s"] for r in contract_runs_of(c, t, 0)])
        rows.append(["%s contract: max throughput >= %.0f %% of no contract's" % (name,
                                                                             100 * share_min),
                     "%.0f %% (per-round median; %s vs %s msg/s medians)" % (
                         100 * share, num(x), num(h)) if share else "-",
                     verdict(share >= share_min, 100 * share, 100 * share_min, "%", higher=True)
                     if share else "not measured"])
        fx = contract_runs_of(c, t, rate)
        p95 = contract_p95s(c, t)
        short = [r for r in fx if contract_short(r)]
        what = "%s contract: e2e p95 < %s ms at %s msg/s" % (name, num(p95_max), num(rate))
        if not fx:
            rows.append([what, "-", "not measured"])
        elif short:
            rows.append([what, "worst round %s ms; %d of %d round(s) lost or nacked messages"
                         % (ms(max(p95)), len(short), len(fx)), "missed (not every message)"])
        else:
            base = contract_p95s(c, "hopper")
            rows.append([what, "worst round %s ms (median %s ms, %d round(s))%s"
                         % (ms(max(p95)), ms(median(p95)), len(fx),
                            "; no contract: worst %s ms, median %s ms" % (
                                ms(max(base)), ms(median(base))) if base else ""),
                         verdict(max(p95) < p95_max, max(p95), p95_max, "ms")])
    return table(["target", "measured", "verdict"], rows)


def contracts_section(res):
    c = res.get("contracts")
    L = ["## Message contracts\n"]
    w = L.append
    if not c:
        w("Not measured in this run; `bench.py contracts` (`make bench-contracts`) measures "
          "them alone, into tests/bench/CONTRACTS.md.\n")
        return "".join(x.strip("\n") + "\n\n" for x in L)
    if c.get("failure"):
        w("The contract runs failed: `%s`\n" % c["failure"])
    if not c.get("runs"):
        return "".join(x.strip("\n") + "\n\n" for x in L)
    some = c["runs"][0]["pub"]
    nround = max(r.get("round", 0) for r in c["runs"] if r["rate"] == 0) + 1
    nfixed = max([r.get("round", 0) for r in c["runs"] if r["rate"] == c["rate"]] or [0]) + 1
    w("The same %s JSON bodies (`bench_amqp publish --json`: `{\"stamp\":\"<64 hex>\","
      "\"seq\":N,\"pad\":\"...\"}`) from %d connections x %d channels (window %d per "
      "channel, persistent, confirms) to three exchanges of one hopper: `bench` (route without "
      "a contract), `bench-json` (route with `contract: %s`, a draft-07 JSON Schema with "
      "required `stamp`/`seq`/`pad`, types, `pattern` `^[0-9a-f]{64}$` on `stamp` and "
      "`additionalProperties: false`; records Confluent-framed) and `bench-avro` (route with "
      "`contract: %s`, an Avro record of `stamp` string, `seq` long, `pad` string), each to a "
      "topic of its own (3 partitions, rf 3, min ISR 2), the schemas in a private Apicurio "
      "registry (its Confluent API). Max runs: %d round(s) of %s s, the targets back to back "
      "in rotating order; then %d round(s) of %s s at %s msg/s the same way. `of no "
      "contract's max` is the median over rounds of the target's msg/s divided by the "
      "uncontracted msg/s of the same round. e2e = a librdkafka consumer's receive time - "
      "scheduled send time (the stamp found in the JSON text, behind the Confluent frame, or in "
      "Avro binary); `e2e p50` is from the round with the median p95. hopper CPU = "
      "utime+stime of the hopper process over the generator's life / confirmed messages.\n"
      % (SIZE_NAMES.get(c["size"], c["size"]), some["conns"], some["chans"], some["window"],
         c["contracts"]["hopper-json"], c["contracts"]["hopper-avro"], nround,
         _fmt_s(c, 0), nfixed, _fmt_s(c, c["rate"]), num(c["rate"])))
    w(contracts_table(c))
    w("Targets (the issue's): a contract keeps at least %.0f %% of the uncontracted maximum "
      "throughput, and e2e p95 under %s ms at %s msg/s (judged on the worst round).\n"
      % (100 * c.get("min_share", 0.7), num(c.get("p95_ms", 100)), num(c["rate"])))
    w(contract_verdicts(c))
    for s in c.get("skipped", []):
        w("- `%s` not run: hopper exited (%s) at start with the Avro contract: `%s`. "
          "The same code runs it once hopper checks Avro.\n"
          % (s["target"], s.get("hopper_exit"), s["why"]))
    return "".join(x.strip("\n") + "\n\n" for x in L)


def _f1(v):
    return "-" if v is None else "%.1f" % v


def _fmt_s(c, rate):
    d = {r["pub"]["duration"] for r in c["runs"] if r["rate"] == rate}
    return "/".join("%g" % x for x in sorted(d)) or "-"


def render_contracts(res, rawpath):
    """CONTRACTS.md: bench.py contracts' report."""
    f = res.get("facts", {})
    c = res.get("contracts") or {}
    la = [r["load_avg"] for r in c.get("runs", [])]
    L = []
    w = L.append
    w("# hopper benchmark: message contracts\n")
    w("Written by `make bench-contracts` (tests/bench/bench.py contracts) on %s; raw numbers in "
      "`%s`. Every number comes from this one run: the ratios compare targets measured seconds "
      "apart under the same conditions; absolute numbers move with the machine's load. "
      "Regenerate with `make bench-contracts`; do not edit by hand.\n" % (res.get("started"),
                                                                      rawpath))
    w("## Machine and versions\n")
    w(table(["what", "value"], machine_rows(f, la) + [
        ["hopper", f.get("hopper")],
        ["hopper source (git)", f.get("git", "-")],
        ["Kafka (3 KRaft nodes)", "%s at %s" % (f.get("kafka"), f.get("kafka_brokers", "?"))],
        ["librdkafka (hopper, end-to-end timer)", f.get("librdkafka")],
        ["schema registry", f.get("registry", "-")],
        ["rabbitmq-c (load generator)", f.get("rabbitmq_c")],
        ["total time", "%s s" % res.get("elapsed_s")],
    ]))
    w("The machine is shared: other work ran at the same time (the load averages above).\n")
    w(contracts_section(res).replace("## Message contracts", "## Results", 1))
    w("## Exact commands\n")
    w("`tests/bench/bench.py contracts` ran these, in this order (paths relative to the "
      "repository root; `build/bench/work-contracts/hopper` is a copy of `build/hopper`, "
      "`build/bench/work-contracts/hopper-*.yaml` the configs it writes; the schemas are "
      "`contracts.schemas` in the raw JSON):\n\n")
    w("```\n" + "\n".join(res.get("commands", [])) + "\n```\n")
    return "".join(x.strip("\n") + "\n\n" for x in L if x.strip()).rstrip("\n") + "\n"
