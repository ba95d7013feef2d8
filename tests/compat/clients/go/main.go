// The compat scenario for amqp091-go. See tests/compat/README.md for the
// steps and the output contract; the values come from ../scenario.json.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type spec struct {
	Count           int                    `json:"count"`
	RoutingKey      string                 `json:"routing_key"`
	Binding         string                 `json:"binding"`
	Body            string                 `json:"body"`
	NorouteExchange string                 `json:"noroute_exchange"`
	NorouteKey      string                 `json:"noroute_key"`
	BigKey          string                 `json:"big_key"`
	BigSize         int                    `json:"big_size"`
	PropsKey        string                 `json:"props_key"`
	PropsBody       string                 `json:"props_body"`
	Props           map[string]interface{} `json:"props"`
	Headers         map[string]interface{} `json:"headers"`
}

var (
	client  = os.Getenv("COMPAT_CLIENT")
	run     = os.Getenv("COMPAT_RUN")
	timeout = 30 * time.Second
)

func step(name string, ok bool, format string, args ...interface{}) {
	status := "ok"
	if !ok {
		status = "FAIL"
	}
	fmt.Printf("STEP %s %s %s\n", name, status, fmt.Sprintf(format, args...))
}

// JSON numbers arrive as float64; integral ones go on the wire as int32,
// as an application would send them.
func toAMQP(v interface{}) interface{} {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) {
			return int32(x)
		}
		return x
	case map[string]interface{}:
		t := amqp.Table{}
		for k, e := range x {
			t[k] = toAMQP(e)
		}
		return t
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = toAMQP(e)
		}
		return out
	}
	return v
}

func clientVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/rabbitmq/amqp091-go" {
				return d.Version
			}
		}
	}
	return "?"
}

func main() { os.Exit(scenario()) }

func scenario() int {
	if t, err := strconv.ParseFloat(os.Getenv("COMPAT_TIMEOUT"), 64); err == nil {
		timeout = time.Duration(t * float64(time.Second))
	}
	exe, _ := os.Executable()
	specPath := os.Getenv("COMPAT_SPEC")
	if specPath == "" {
		specPath = filepath.Join(filepath.Dir(exe), "scenario.json")
	}
	raw, err := os.ReadFile(specPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var sp spec
	if err := json.Unmarshal(raw, &sp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	exchange := fmt.Sprintf("compat.%s.%s", client, run)
	queue := exchange + ".q"

	// ---- connect (amqp.Dial: PLAIN)
	conn, err := amqp.DialConfig(os.Getenv("COMPAT_URL"), amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US"})
	if err != nil {
		step("connect", false, "error=%q", err.Error())
		return 1
	}
	step("connect", true, "mechanism=PLAIN _version=%s", clientVersion())
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))

	type chanState struct {
		ch      *amqp.Channel
		returns chan amqp.Return
		closed  chan *amqp.Error
	}
	open := func() (*chanState, error) {
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		if err := ch.Confirm(false); err != nil {
			return nil, err
		}
		return &chanState{ch, ch.NotifyReturn(make(chan amqp.Return, 4)), ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
	}

	// ---- declare
	var c1, c2 *chanState
	var q amqp.Queue
	err = func() error {
		if c1, err = open(); err != nil {
			return err
		}
		if c2, err = open(); err != nil {
			return err
		}
		if err := c1.ch.ExchangeDeclare(exchange, "topic", false, false, false, false, nil); err != nil {
			return err
		}
		if q, err = c1.ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			return err
		}
		if err := c1.ch.QueueBind(queue, sp.Binding, exchange, false, nil); err != nil {
			return err
		}
		return c1.ch.ExchangeDeclare(sp.NorouteExchange, "topic", true, false, false, false, nil)
	}()
	if err != nil {
		step("declare", false, "error=%q", err.Error())
		return 1
	}
	step("declare", true, "queue_messages=%d", q.Messages)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// ---- publish: deferred confirms, all 1000 in flight
	t0 := time.Now()
	var confirms []*amqp.DeferredConfirmation
	var perr error
	for i := 0; i < sp.Count && perr == nil; i++ {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		var dc *amqp.DeferredConfirmation
		dc, perr = c.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, fmt.Sprintf(sp.RoutingKey, i%10), false, false,
			amqp.Publishing{Body: []byte(fmt.Sprintf(sp.Body, run, i))})
		confirms = append(confirms, dc)
	}
	acks, nacks := 0, 0
	for _, dc := range confirms {
		if perr != nil || dc == nil {
			break
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			perr = err
			break
		}
		if ok {
			acks++
		} else {
			nacks++
		}
	}
	if perr != nil {
		step("publish", false, "acks=%d nacks=%d error=%q", acks, nacks, perr.Error())
		return 1
	}
	step("publish", acks == sp.Count && nacks == 0, "acks=%d nacks=%d returns=%d _max_in_flight=%d _ms=%d",
		acks, nacks, len(c1.returns)+len(c2.returns), sp.Count, time.Since(t0).Milliseconds())

	publishOne := func(c *chanState, ex, key string, mandatory bool, msg amqp.Publishing) (bool, error) {
		dc, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, ex, key, mandatory, false, msg)
		if err != nil {
			return false, err
		}
		return dc.WaitContext(ctx)
	}

	// ---- mandatory, unroutable
	ack, err := publishOne(c1, sp.NorouteExchange, sp.NorouteKey, true, amqp.Publishing{Body: []byte("unroutable")})
	if err != nil {
		step("mandatory", false, "error=%q", err.Error())
		return 1
	}
	// amqp091-go delivers the return on its own goroutine; the ack may win.
	var ret *amqp.Return
	select {
	case r := <-c1.returns:
		ret = &r
	case <-time.After(timeout):
	}
	if ret != nil {
		step("mandatory", ack && ret.ReplyCode == 312, "acked=%t returned=1 reply_code=%d reply_text=%s", ack, ret.ReplyCode, ret.ReplyText)
	} else {
		step("mandatory", false, "acked=%t returned=0 reply_code=- reply_text=-", ack)
	}

	// ---- 1 MiB
	big := make([]byte, sp.BigSize)
	for i := range big {
		big[i] = byte(i % 251)
	}
	ack, err = publishOne(c1, exchange, sp.BigKey, false, amqp.Publishing{Body: big})
	if err != nil {
		step("big", false, "error=%q", err.Error())
		return 1
	}
	step("big", ack, "acked=%t size=%d", ack, sp.BigSize)

	// ---- every property, nested headers
	p := sp.Props
	str := func(k string) string { return p[k].(string) }
	withArg := func(k, arg string) string { return strings.Replace(str(k), "%s", arg, 1) }
	msg := amqp.Publishing{
		Headers:         toAMQP(sp.Headers).(amqp.Table),
		ContentType:     str("content_type"),
		ContentEncoding: str("content_encoding"),
		DeliveryMode:    uint8(p["delivery_mode"].(float64)),
		Priority:        uint8(p["priority"].(float64)),
		CorrelationId:   withArg("correlation_id", run),
		ReplyTo:         withArg("reply_to", run),
		Expiration:      str("expiration"),
		MessageId:       withArg("message_id", run),
		Timestamp:       time.Unix(int64(p["timestamp"].(float64)), 0),
		Type:            str("type"),
		UserId:          str("user_id"),
		AppId:           withArg("app_id", client),
		Body:            []byte(sp.PropsBody),
	}
	ack, err = publishOne(c1, exchange, sp.PropsKey, false, msg)
	if err != nil {
		step("props", false, "error=%q", err.Error())
		return 1
	}
	step("props", ack, "acked=%t", ack)

	// ---- close
	e1, e2 := c2.ch.Close(), c1.ch.Close()
	e3 := conn.Close()
	select {
	case e := <-connClosed:
		if e != nil && e3 == nil {
			e3 = e
		}
	case <-time.After(timeout):
	}
	if e1 != nil || e2 != nil || e3 != nil {
		step("close", false, "error=%q", fmt.Sprint(e1, e2, e3))
		return 1
	}
	step("close", true, "reply_code=200")
	return consume(sp, queue, big)
}

// tally is the consume step's bookkeeping: which of the 1002 messages came,
// how often, redelivered or not.
type tally struct {
	deliveries, redelivered, bad int
	small                        map[int]bool
	big                          []byte
	props                        map[string]interface{}
	nacked, back                 bool
}

func (t *tally) count() int {
	n := len(t.small)
	if t.big != nil {
		n++
	}
	if t.props != nil {
		n++
	}
	return n
}

func (t *tally) done(sp *spec) bool { return t.count() == sp.Count+2 && t.back }

// plain turns decoded AMQP values into what encoding/json writes as the
// runner expects: byte arrays as text, timestamps as seconds.
func plain(v interface{}) interface{} {
	switch x := v.(type) {
	case amqp.Table:
		out := map[string]interface{}{}
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case []byte:
		return string(x)
	case time.Time:
		return x.Unix()
	}
	return v
}

func delivered(d amqp.Delivery) map[string]interface{} {
	out := map[string]interface{}{}
	set := func(k string, v interface{}, present bool) {
		if present {
			out[k] = plain(v)
		}
	}
	set("content_type", d.ContentType, d.ContentType != "")
	set("content_encoding", d.ContentEncoding, d.ContentEncoding != "")
	set("headers", d.Headers, d.Headers != nil)
	set("delivery_mode", d.DeliveryMode, d.DeliveryMode != 0)
	set("priority", d.Priority, d.Priority != 0)
	set("correlation_id", d.CorrelationId, d.CorrelationId != "")
	set("reply_to", d.ReplyTo, d.ReplyTo != "")
	set("expiration", d.Expiration, d.Expiration != "")
	set("message_id", d.MessageId, d.MessageId != "")
	set("timestamp", d.Timestamp, !d.Timestamp.IsZero())
	set("type", d.Type, d.Type != "")
	set("user_id", d.UserId, d.UserId != "")
	set("app_id", d.AppId, d.AppId != "")
	return out
}

// consume reads the queue with manual acks and prefetch 100 until all 1002
// came, the nacked one (body <run>:0) again; then, on a new connection,
// basic.get.
func consume(sp spec, queue string, big []byte) int {
	t := &tally{small: map[int]bool{}}
	first := fmt.Sprintf(sp.Body, run, 0)
	t0 := time.Now()
	get := "not-run"
	err := func() error {
		conn, err := amqp.DialConfig(os.Getenv("COMPAT_URL"), amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US"})
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if err := ch.Qos(100, 0, false); err != nil {
			return err
		}
		deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		deadline := time.After(timeout)
		for !t.done(&sp) {
			var d amqp.Delivery
			var ok bool
			select {
			case d, ok = <-deliveries:
				if !ok {
					return fmt.Errorf("deliveries closed: %v", conn.IsClosed())
				}
			case <-deadline:
				return fmt.Errorf("%d of %d messages within %s", t.count(), sp.Count+2, timeout)
			}
			t.deliveries++
			if d.Redelivered {
				t.redelivered++
			}
			nack := false
			switch d.RoutingKey {
			case sp.BigKey:
				t.big = d.Body
			case sp.PropsKey:
				t.props = delivered(d)
			default:
				body := string(d.Body)
				var i int
				if n, _ := fmt.Sscanf(strings.TrimPrefix(body, run+":"), "%d", &i); n == 1 && body == fmt.Sprintf(sp.Body, run, i) && i >= 0 && i < sp.Count {
					t.small[i] = true
				} else {
					t.bad++
				}
				if body == first {
					if !t.nacked {
						nack, t.nacked = true, true
					} else if d.Redelivered {
						t.back = true
					}
				}
			}
			if nack {
				err = d.Nack(false, true)
			} else {
				err = d.Ack(false)
			}
			if err != nil {
				return err
			}
		}
		return conn.Close()
	}()
	ms := time.Since(t0).Milliseconds()
	if err == nil {
		err = func() error {
			if os.Getenv("COMPAT_TARGET") == "hopper" {
				time.Sleep(time.Second) // a commit interval is 200 ms
			}
			conn, err := amqp.DialConfig(os.Getenv("COMPAT_URL"), amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US"})
			if err != nil {
				return err
			}
			ch, err := conn.Channel()
			if err != nil {
				conn.Close()
				return err
			}
			_, ok, err := ch.Get(queue, false)
			if err != nil {
				conn.Close()
				return err
			}
			get = map[bool]string{true: "message", false: "empty"}[ok]
			return conn.Close()
		}()
	}
	if t.props != nil {
		js, _ := json.Marshal(t.props)
		fmt.Printf("DELIVERED %s\n", js)
	}
	bodies, bigOk, propsSeen := "WRONG", "missing", "missing"
	if len(t.small) == sp.Count && t.bad == 0 {
		bodies = "ok"
	}
	if t.big != nil {
		bigOk = map[bool]string{true: "ok", false: "WRONG"}[bytes.Equal(t.big, big)]
	}
	if t.props != nil {
		propsSeen = "yes"
	}
	ok := t.done(&sp) && t.redelivered == 1 && t.deliveries == sp.Count+3 && bodies == "ok" && bigOk == "ok" && get == "empty" && err == nil
	detail := fmt.Sprintf("count=%d redelivered=%d deliveries=%d back=%t bodies=%s big=%s props=%s get=%s _ms=%d",
		t.count(), t.redelivered, t.deliveries, t.back, bodies, bigOk, propsSeen, get, ms)
	if err != nil {
		detail += fmt.Sprintf(" error=%q", err.Error())
	}
	step("consume", ok, "%s", detail)
	if !ok {
		return 1
	}
	return 0
}
