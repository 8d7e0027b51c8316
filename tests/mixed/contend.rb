# frozen_string_literal: true

# The Ruby contender of the mixed-client fault suite (tests/mixed/run.sh has
# the whole protocol; tests/mixed/contenders.sh writes the environment it
# needs: the gem's lib/ on RUBYLIB, POLYLOCK_LIB naming the C library).
#
#   ruby contend.rb run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
#   ruby contend.rb clock        print "ruby NS" (the clock probe)
#
# One Polylock::Client on URL; one Polylock::Mutex per name of NAMES
# ("NAME=LIMIT,...": limit 1 a mutex, more a semaphore), made when first
# picked (and made anew after a release failed twice; the old one is
# released in the background). Each round (until the file STOP exists,
# then a "done" line): pick a name with splitmix64 seeded by SEED; lock
# (20 s timeout); send "WRITE NAME TOKEN ID" to the fenced store on the
# Unix socket STORE; hold HOLD_MS; write again; unlock. The handle's lost
# callback (polylock_on_lost through the gem's Native module, for the
# event's holder id and token: once per lease) finds the round of the lost
# lease by them. Every step is one line
# "WHAT ruby PID ID NAME TOKEN T0 T1 RESULT" appended to LOG in one
# write(2) (IO#syswrite on an O_APPEND file); T0/T1 are
# Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond).

require "socket"

LANG = "ruby"
ACQUIRE_TIMEOUT_S = 20
CONNECT_FOR_S = 30
STORE_TRIES = 5
STORE_TIMEOUT_S = 5
MASK = (1 << 64) - 1

def now_ns
  Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
end

# splitmix64, the PRNG every contender uses to pick names.
class SplitMix64
  def initialize(seed)
    @state = seed & MASK
  end

  def next
    @state = (@state + 0x9E3779B97F4A7C15) & MASK
    z = @state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^ (z >> 31)
  end
end

# The history file, opened O_APPEND; each line is one write(2).
class History
  def initialize(path)
    @file = File.open(path, File::WRONLY | File::APPEND | File::CREAT, 0o644)
  end

  def line(what, id, name, token, t0, t1, result)
    text = "#{what} #{LANG} #{Process.pid} #{id} #{name} #{token} #{t0} #{t1} #{result}\n"
    written = @file.syswrite(text)
    warn "contend (ruby): short log write (#{written} of #{text.bytesize})" if written != text.bytesize
  end
end

# A connection to the fenced store, reconnected when it fails.
class Store
  def initialize(path)
    @path = path
    @sock = nil
    @buffer = +""
    reconnect
  end

  # Up to STORE_TRIES connection attempts, 50 ms apart.
  def reconnect
    @sock&.close
    @sock = nil
    @buffer = +""
    STORE_TRIES.times do |attempt|
      sleep 0.05 if attempt.positive?
      begin
        @sock = UNIXSocket.new(@path)
        return
      rescue SystemCallError
        next
      end
    end
  end

  # One write: "ok", "stale" or "error" (then reconnected).
  def write(name, token, id)
    reconnect if @sock.nil?
    return "error" if @sock.nil?

    reply = exchange("WRITE #{name} #{token} #{id}\n")
    return "ok" if reply == "OK"
    return "stale" if reply&.start_with?("STALE")

    reconnect
    "error"
  end

  private

  # Sends `request`, returns the reply line (nil on failure or timeout).
  def exchange(request)
    deadline = now_ns + (STORE_TIMEOUT_S * 1_000_000_000)
    @sock.write(request)
    until (at = @buffer.index("\n"))
      left = (deadline - now_ns) / 1e9
      return nil if left <= 0 || @sock.wait_readable(left).nil?

      @buffer << @sock.read_nonblock(4096)
    end
    line = @buffer[0, at]
    @buffer = @buffer[(at + 1)..]
    line
  rescue SystemCallError, IOError, EOFError
    nil
  end
end

# One name's handle and its recent leases (for the lost callback).
class Handle
  RING = 16
  attr_reader :mutex

  def initialize(client, name, limit, ttl_s, log)
    @name = name
    @log = log
    @leases = [] # [holder, token, id, ended], newest last
    @guard = Thread::Mutex.new
    @mutex = Polylock::Mutex.new(name, ttl: ttl_s, client: client, limit: limit)
    # Kept referenced for as long as the handle lives.
    @callback = FFI::Function.new(:void, %i[pointer pointer]) do |_data, event|
      lost(Polylock::Native::LostEvent.new(event))
    end
    Polylock.check(Polylock::Native.polylock_on_lost(@mutex.instance_variable_get(:@pointer), @callback, nil, nil))
  end

  # Notes a granted lease.
  def granted(holder, token, id)
    @guard.synchronize do
      @leases << [holder, token, id, false]
      @leases.shift while @leases.size > RING
    end
  end

  # Marks the lease of round `id` released normally.
  def released(id)
    @guard.synchronize { @leases.each { |lease| lease[3] = true if lease[2] == id } }
  end

  private

  # Logs the lost lease's round, once; waits a little for a round that has
  # not noted its lease yet.
  def lost(event)
    holder = event[:holder].to_s
    token = event[:has_fencing_token] ? event[:fencing_token].to_s : "-"
    200.times do
      found = @guard.synchronize do
        lease = @leases.reverse.find { |h, t, _, _| h == holder && t == token }
        if lease.nil? then nil
        elsif lease[3] then :ended
        else
          lease[3] = true
          lease[2]
        end
      end
      return if found == :ended
      if found
        t = now_ns
        @log.line("lost", found, @name, token, t, t, "-")
        return
      end
      sleep 0.01
    end
    warn "contend (ruby): a lost lease of #{@name} (holder #{holder}, token #{token}) matched no round"
  rescue StandardError => e
    warn "contend (ruby): lost callback: #{e.class}: #{e.message}"
  end
end

def kind(error)
  error.respond_to?(:code) && error.code ? error.code.to_s : error.class.name.downcase.gsub(/[^a-z0-9_]/, "_")
end

def connect(url)
  deadline = now_ns + (CONNECT_FOR_S * 1_000_000_000)
  begin
    Polylock::Client.new(url)
  rescue Polylock::ConnectionError
    raise if now_ns >= deadline

    sleep 0.5
    retry
  end
end

def run(url, log_path, store_path, names_text, ttl_ms, hold_ms, seed, stop)
  require "polylock"
  log = History.new(log_path)
  names = names_text.split(",").map do |entry|
    name, limit = entry.split("=", 2)
    [name, Integer(limit)]
  end
  ttl_s = Integer(ttl_ms) / 1000.0
  hold_s = Integer(hold_ms) / 1000.0
  rng = SplitMix64.new(Integer(seed))
  client = connect(url)
  store = Store.new(store_path)
  handles = {}
  seq = 0
  loop do
    if File.exist?(stop)
      t = now_ns
      log.line("done", "-", "-", "-", t, t, "-")
      return
    end
    seq += 1
    name, limit = names[rng.next % names.size]
    id = "#{LANG}-#{Process.pid}-#{seq}"
    handle = (handles[name] ||= Handle.new(client, name, limit, ttl_s, log))
    mutex = handle.mutex

    t0 = now_ns
    begin
      mutex.lock(timeout: ACQUIRE_TIMEOUT_S)
    rescue Polylock::TimeoutError
      log.line("acquire", id, name, "-", t0, now_ns, "timeout")
      next
    rescue StandardError => e
      log.line("acquire", id, name, "-", t0, now_ns, "error:#{kind(e)}")
      sleep 0.1
      next
    end
    t1 = now_ns
    token = mutex.fencing_token&.to_s || "-"
    log.line("acquire", id, name, token, t0, t1, "ok")
    handle.granted(mutex.holder, token, id)

    [hold_s, nil].each do |pause|
      t0 = now_ns
      result = store.write(name, token, id)
      log.line("write", id, name, token, t0, now_ns, result)
      sleep pause if pause
    end

    released = false
    2.times do
      t0 = now_ns
      begin
        mutex.unlock
        t1 = now_ns
        handle.released(id)
        log.line("release", id, name, token, t0, t1, "ok")
        released = true
      rescue Polylock::ExpiredError
        log.line("release", id, name, token, t0, now_ns, "lost")
        released = true
      rescue StandardError => e
        log.line("release", id, name, token, t0, now_ns, "error:#{kind(e)}")
      end
      break if released
    end
    next if released

    # Still held: a new handle next time; this one is released in the
    # background (not logged).
    handles.delete(name)
    Thread.new(handle) do |old|
      30.times do
        sleep 1
        old.mutex.unlock
        break
      rescue Polylock::ConnectionError
        next
      rescue StandardError
        break
      end
    end
  end
end

def main(args)
  if args == ["clock"]
    puts "#{LANG} #{now_ns}"
    return
  end
  unless args.size == 9 && args[0] == "run"
    warn "usage: contend.rb run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | contend.rb clock"
    exit 2
  end
  # SIGTERM ends the process at once, even inside a blocking C call.
  trap("TERM", "SYSTEM_DEFAULT")
  run(*args[1..])
end

main(ARGV)
