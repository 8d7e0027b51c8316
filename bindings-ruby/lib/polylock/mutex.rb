# frozen_string_literal: true

require "json"

module Polylock
  # A distributed mutex (or, with limit:, a counting semaphore) holding at
  # most one lease at a time, with Lusnoc's surface:
  #
  #   Polylock::Mutex.new("jobs/nightly", ttl: 20, url: "consul://127.0.0.1:8500")
  #     .synchronize(timeout: 10) do |mx|
  #       mx.time_to_expiration  # seconds the lease is still proven held
  #       mx.need_renew?         # past a third of its TTL without a renewal
  #       mx.renew               # renew now (polylock also renews on its own)
  #       mx.owned?              # held, and by Thread.current
  #     end
  #
  # The lease is renewed in the background unless `auto_renew: false`: then
  # it ends at its TTL after the grant or the last #renew (reported lost).
  class Mutex
    # Shortest and longest TTL in seconds.
    TTL_RANGE = (1..86_400).freeze

    # The lock's key (name) and its TTL in seconds.
    attr_reader :name, :ttl
    alias key name

    # `key`: 1–256 characters of `A-Z a-z 0-9 - _ . : @ = + /`.
    # `ttl`: seconds, 1 to 86 400. `value`: stored with the lease (a String
    # as is; anything else JSON-encoded; nil: host name and process id).
    # `url`: the backend (default: Polylock.default_url); or share a
    # `client:`. `limit`: N for a counting semaphore. `auto_renew`: false
    # for leases the caller renews with #renew.
    def initialize(key, ttl: 15, url: nil, client: nil, value: nil, limit: 1, auto_renew: true)
      @name = self.class.check_key(key)
      @ttl = self.class.check_ttl(ttl)
      Polylock.invalid!("limit must be an Integer from 1 to 4294967295, got #{limit.inspect}") unless limit.is_a?(Integer) && limit.between?(1, 0xffff_ffff)
      @client = client || Client.new(url || Polylock.default_url)
      out = FFI::MemoryPointer.new(:pointer)
      Polylock.check(Native.polylock_lock_new(@client.pointer, @name, limit, (@ttl * 1000).round,
                                              self.class.encode_value(value), out))
      @pointer = out.read_pointer
      ObjectSpace.define_finalizer(self, self.class.finalizer(@pointer))
      self.auto_renew = auto_renew
      @lost_handlers = []
      @lost_callback = nil
      @owner = nil
      @taken = false
      @loss_reported = false
    end

    # The key as a String, or InvalidArgumentError.
    def self.check_key(key)
      Polylock.invalid!("key must be a String, got #{key.inspect}") unless key.is_a?(String) || key.is_a?(Symbol)
      key.to_s
    end

    # The TTL in seconds, or InvalidArgumentError.
    def self.check_ttl(ttl)
      unless ttl.is_a?(Numeric) && ttl.real? && ttl >= TTL_RANGE.min && ttl <= TTL_RANGE.max
        Polylock.invalid!("ttl must be #{TTL_RANGE.min} to #{TTL_RANGE.max} seconds, got #{ttl.inspect}")
      end
      ttl
    end

    # The value as the library stores it: a String as is, nil for the
    # default, anything else as JSON.
    def self.encode_value(value)
      case value
      when nil, String then value
      else JSON.generate(value)
      end
    rescue JSON::GeneratorError, NoMethodError => e
      Polylock.invalid!("value cannot be JSON-encoded: #{e.message}")
    end

    # Frees the C handle once the mutex is collected.
    def self.finalizer(pointer)
      proc { Native.polylock_lock_free(pointer) }
    end

    # Takes the lock (waiting at most `timeout` seconds; nil: forever),
    # yields self, and releases it however the block ends. Raises
    # TimeoutError when the wait runs out, ExpiredError when the lease was
    # lost before the release.
    def synchronize(timeout: nil)
      lock(timeout: timeout)
      begin
        yield self
      ensure
        unlock
      end
    end

    # Takes the lock, waiting at most `timeout` seconds (nil: forever).
    def lock(timeout: nil)
      unless timeout.nil? || (timeout.is_a?(Numeric) && timeout.real? && timeout >= 0)
        Polylock.invalid!("timeout must be nil or seconds >= 0, got #{timeout.inspect}")
      end
      ms = timeout.nil? ? -1 : (timeout * 1000).round
      Polylock.check(Native.polylock_acquire(@pointer, ms))
      taken!
      self
    end

    # Takes the lock if it is free now; true if taken.
    def try_lock
      acquired = FFI::MemoryPointer.new(:bool)
      Polylock.check(Native.polylock_try_acquire(@pointer, acquired))
      acquired.read(:bool).tap { |yes| taken! if yes }
    end

    # Releases the lease (ExpiredError if it was lost, NotHeldError if none).
    # A lease whose loss #renew reported (the library then forgets it)
    # still gives ExpiredError here once, as any lost lease does.
    def unlock
      Polylock.check(Native.polylock_release(@pointer))
      released!
    rescue ExpiredError
      released!
      raise
    rescue NotHeldError
      lost = @loss_reported
      released!
      raise unless lost

      raise ExpiredError.new("the lease of #{name} was lost before the release (#renew reported it)", :lost)
    end

    # Renews the lease now: ExpiredError if it was lost already (revoked, or
    # not renewed within its TTL), NotHeldError without one.
    def renew
      Polylock.check(Native.polylock_renew(@pointer))
      self
    rescue ExpiredError
      @loss_reported = true
      raise
    end

    # True while the lease is proven held (not lost, not past its TTL).
    def locked?
      Native.polylock_is_held(@pointer)
    end

    # True while the lease is held and the thread that took it is Thread.current.
    def owned?
      locked? && @owner.equal?(Thread.current)
    end

    # Lusnoc's name for #locked?: the lease (Consul: its session) is live.
    def live?
      locked?
    end

    # Raises unless the lease is live: ExpiredError when it was lost or ran
    # out, NotHeldError when none was taken (or it was released).
    def live!
      return self if live?
      raise ExpiredError.new("the lease of #{name} is no longer held", :lost) if @taken

      raise NotHeldError.new("#{name} is not held", :not_held)
    end

    # True when the lease this mutex took ended without #unlock (lost or
    # not renewed in time); false while it is held, before any lease and
    # after a release.
    def expired?
      @taken && !locked?
    end

    # Seconds the lease is still proven held (0.0 when not held).
    def time_to_expiration
      Native.polylock_time_to_expiration_ms(@pointer) / 1000.0
    end

    # True when the held lease is due for renewal (past a third of its TTL
    # without one).
    def need_renew?
      Native.polylock_needs_renew(@pointer)
    end

    # The lease's fencing token (nil where the backend gives none).
    def fencing_token
      has = FFI::MemoryPointer.new(:bool)
      token = FFI::MemoryPointer.new(:uint64)
      Polylock.check(Native.polylock_fencing_token(@pointer, has, token))
      has.read(:bool) ? token.read(:uint64) : nil
    end

    # The backend's id of the current (or last) lease (the Consul session
    # id, …); NotHeldError when there is none.
    def holder
      out = FFI::MemoryPointer.new(:pointer)
      Polylock.check(Native.polylock_holder(@pointer, out))
      text = out.read_pointer
      begin
        text.read_string.force_encoding(Encoding::UTF_8)
      ensure
        Native.polylock_string_free(text)
      end
    end

    # The lease's holder id (on Consul the session id), nil without a lease.
    def session_id
      holder
    rescue NotHeldError
      nil
    end

    # Runs the block (with self and the reason) once for every lease of
    # this mutex that is lost, on polylock's notifier thread.
    def on_mutex_lost(&handler)
      raise ArgumentError, "on_mutex_lost needs a block" unless handler

      @lost_handlers << handler
      return self if @lost_callback

      handlers = @lost_handlers
      mutex = self
      # Kept referenced by @lost_callback for as long as the handle lives.
      @lost_callback = FFI::Function.new(:void, %i[pointer pointer]) do |_data, event|
        reason = Native::LostEvent.new(event)[:reason].to_s
        handlers.each do |each|
          each.call(mutex, reason)
        rescue StandardError => e
          warn "polylock: on_mutex_lost handler raised #{e.class}: #{e.message}"
        end
      end
      Polylock.check(Native.polylock_on_lost(@pointer, @lost_callback, nil, nil))
      self
    end

    # The key, TTL and state (never the URL or value).
    def inspect
      "#<#{self.class.name} #{name} ttl=#{ttl} locked=#{locked?}>"
    end

    private

    # Background renewal on (default) or off (the caller renews).
    def auto_renew=(on)
      Polylock.invalid!("auto_renew must be true or false, got #{on.inspect}") unless [true, false].include?(on)
      Polylock.check(Native.polylock_lock_set_auto_renew(@pointer, on))
    end

    def taken!
      @owner = Thread.current
      @taken = true
      @loss_reported = false
    end

    def released!
      @owner = nil
      @taken = false
      @loss_reported = false
    end
  end
end
