# The compat scenario for Bunny (Debian's ruby-bunny): publishes of a step are
# all sent before wait_for_confirms. Output contract: tests/compat/README.md.
require 'bunny'
require 'json'
require 'timeout'

SPEC = JSON.parse(File.read(ENV.fetch('COMPAT_SPEC')))
CLIENT = ENV.fetch('COMPAT_CLIENT')
RUN = ENV.fetch('COMPAT_RUN')
TIMEOUT = Float(ENV.fetch('COMPAT_TIMEOUT', '30'))
EXCHANGE = "compat.#{CLIENT}.#{RUN}"
QUEUE = "#{EXCHANGE}.q"

def step(name, ok, detail)
  puts "STEP #{name} #{ok ? 'ok' : 'FAIL'} #{detail}"
  $stdout.flush
end

def err(e)
  "error=#{"#{e.class}: #{e.message}".to_json}"
end

def confirmed(ch)
  Timeout.timeout(TIMEOUT) { ch.wait_for_confirms }
end

begin
  conn = Bunny.new(ENV.fetch('COMPAT_URL'), connection_timeout: TIMEOUT, read_timeout: TIMEOUT,
                                            continuation_timeout: (TIMEOUT * 1000).to_i, logger: Logger.new(nil))
  conn.start
rescue StandardError => e
  step('connect', false, err(e))
  exit 1
end
step('connect', true, "mechanism=#{conn.mechanism} _version=#{Bunny::VERSION}")

returns = []
begin
  ch1 = conn.create_channel
  ch2 = conn.create_channel
  [ch1, ch2].each(&:confirm_select)
  x1 = ch1.topic(EXCHANGE, durable: false)
  x2 = ch2.topic(EXCHANGE, durable: false)
  q = ch1.queue(QUEUE, durable: true)
  q.bind(x1, routing_key: SPEC['binding'])
  noroute = ch1.topic(SPEC['noroute_exchange'], durable: true)
  [x1, x2, noroute].each { |x| x.on_return { |info, _props, _body| returns << info } }
  step('declare', true, "queue_messages=#{q.message_count}")
rescue StandardError => e
  step('declare', false, err(e))
  exit 1
end

t0 = Time.now
begin
  SPEC['count'].times do |i|
    x = i.even? ? x1 : x2
    x.publish(format(SPEC['body'], RUN, i), routing_key: format(SPEC['routing_key'], i % 10))
  end
  ok1 = confirmed(ch1)
  ok2 = confirmed(ch2)
  nacks = ch1.nacked_set.size + ch2.nacked_set.size
  acks = SPEC['count'] - nacks - ch1.unconfirmed_set.size - ch2.unconfirmed_set.size
  step('publish', ok1 && ok2 && acks == SPEC['count'],
       format('acks=%d nacks=%d returns=%d _max_in_flight=%d _ms=%d', acks, nacks, returns.size, SPEC['count'],
              (Time.now - t0) * 1000))
rescue StandardError, Timeout::Error => e
  step('publish', false, err(e))
  exit 1
end

begin
  nacked_before = ch1.nacked_set.size
  noroute.publish('unroutable', routing_key: SPEC['noroute_key'], mandatory: true)
  acked = confirmed(ch1) && ch1.nacked_set.size == nacked_before
  deadline = Time.now + TIMEOUT
  sleep 0.01 while returns.empty? && Time.now < deadline # the return arrives on Bunny's reader thread
  r = returns.first
  step('mandatory', acked && r && r.reply_code == 312,
       "acked=#{acked} returned=#{returns.size} reply_code=#{r ? r.reply_code : '-'} reply_text=#{r ? r.reply_text : '-'}")
rescue StandardError, Timeout::Error => e
  step('mandatory', false, err(e))
  exit 1
end

begin
  big = (0...SPEC['big_size']).map { |i| i % 251 }.pack('C*')
  x1.publish(big, routing_key: SPEC['big_key'])
  acked = confirmed(ch1)
  step('big', acked, "acked=#{acked} size=#{big.bytesize}")
rescue StandardError, Timeout::Error => e
  step('big', false, err(e))
  exit 1
end

begin
  p = SPEC['props']
  x1.publish(SPEC['props_body'],
             routing_key: SPEC['props_key'],
             content_type: p['content_type'],
             content_encoding: p['content_encoding'],
             headers: SPEC['headers'],
             delivery_mode: p['delivery_mode'],
             priority: p['priority'],
             correlation_id: format(p['correlation_id'], RUN),
             reply_to: format(p['reply_to'], RUN),
             expiration: p['expiration'],
             message_id: format(p['message_id'], RUN),
             timestamp: p['timestamp'],
             type: p['type'],
             user_id: p['user_id'],
             app_id: format(p['app_id'], CLIENT))
  acked = confirmed(ch1)
  step('props', acked, "acked=#{acked}")
rescue StandardError, Timeout::Error => e
  step('props', false, err(e))
  exit 1
end

begin
  ch2.close
  ch1.close
  conn.close
  step('close', true, 'reply_code=200')
rescue StandardError => e
  step('close', false, err(e))
  exit 1
end

# ---- consume with manual acks and prefetch 100 until all 1002 came, the
# nacked one (body <run>:0) again; then, on a new connection, basic.get.
def connect_again
  c = Bunny.new(ENV.fetch('COMPAT_URL'), connection_timeout: TIMEOUT, read_timeout: TIMEOUT,
                                         continuation_timeout: (TIMEOUT * 1000).to_i, logger: Logger.new(nil))
  c.start
  c
end

def plain(v)
  case v
  when Hash then v.to_h { |k, x| [k.to_s, plain(x)] }
  when Array then v.map { |x| plain(x) }
  when Time then v.to_i
  else v
  end
end

# Bunny's property names are the AMQP ones; the timestamp is a Time.
def delivered(props)
  props.to_hash.each_with_object({}) { |(k, v), out| out[k.to_s] = plain(v) unless v.nil? }
end

tally = { deliveries: 0, settled: 0, redelivered: 0, small: {}, bad: 0, big: nil, props: nil, nacked: false,
          back: false }
lock = Mutex.new
all_came = ConditionVariable.new
first = format(SPEC['body'], RUN, 0)
count = -> { tally[:small].size + (tally[:big] ? 1 : 0) + (tally[:props] ? 1 : 0) }
# Done once the last ack went out: closing before it would requeue that message.
done = -> { count.call == SPEC['count'] + 2 && tally[:back] && tally[:settled] == tally[:deliveries] }
t0 = Time.now
get = 'not-run'
error = nil
begin
  cconn = connect_again
  cch = cconn.create_channel
  cch.prefetch(100)
  cch.queue(QUEUE, durable: true).subscribe(manual_ack: true) do |info, props, body|
    nack = false
    lock.synchronize do
      tally[:deliveries] += 1
      tally[:redelivered] += 1 if info.redelivered?
      case info.routing_key
      when SPEC['big_key'] then tally[:big] = body
      when SPEC['props_key'] then tally[:props] = delivered(props)
      else
        rid, _, i = body.rpartition(':')
        if rid == RUN && i.match?(/\A\d+\z/) && i.to_i < SPEC['count']
          tally[:small][i.to_i] = true
        else
          tally[:bad] += 1
        end
        if body == first
          if !tally[:nacked]
            nack = tally[:nacked] = true
          elsif info.redelivered?
            tally[:back] = true
          end
        end
      end
    end
    nack ? cch.nack(info.delivery_tag, false, true) : cch.ack(info.delivery_tag)
    lock.synchronize do
      tally[:settled] += 1
      all_came.signal if done.call
    end
  end
  deadline = t0 + TIMEOUT
  lock.synchronize do
    all_came.wait(lock, [deadline - Time.now, 0.01].max) while !done.call && Time.now < deadline
  end
  ms = (Time.now - t0) * 1000
  cconn.close
  if lock.synchronize { done.call }
    sleep 1 if ENV['COMPAT_TARGET'] == 'hopper' # a commit interval is 200 ms
    gconn = connect_again
    info, = gconn.create_channel.basic_get(QUEUE, manual_ack: true)
    get = info.nil? ? 'empty' : 'message'
    gconn.close
  end
rescue StandardError, Timeout::Error => e
  error = e
  ms = (Time.now - t0) * 1000
end
lock.synchronize do
  puts "DELIVERED #{tally[:props].to_json}" if tally[:props]
  bodies = tally[:small].size == SPEC['count'] && tally[:bad].zero? ? 'ok' : 'WRONG'
  want = (0...SPEC['big_size']).map { |i| i % 251 }.pack('C*')
  big = if tally[:big].nil? then 'missing' elsif tally[:big].b == want then 'ok' else 'WRONG' end
  ok = done.call && tally[:redelivered] == 1 && tally[:deliveries] == SPEC['count'] + 3 && bodies == 'ok' &&
       big == 'ok' && get == 'empty' && error.nil?
  step('consume', ok,
       format('count=%d redelivered=%d deliveries=%d back=%s bodies=%s big=%s props=%s get=%s _ms=%d%s', count.call,
              tally[:redelivered], tally[:deliveries], tally[:back], bodies, big, tally[:props] ? 'yes' : 'missing',
              get, ms, error ? " #{err(error)}" : ''))
  exit(ok ? 0 : 1)
end
