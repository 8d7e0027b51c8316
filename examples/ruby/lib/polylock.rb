# frozen_string_literal: true

# Ruby bindings for polylock over its C ABI (include/polylock.h), with
# Debian's ruby-ffi. Polylock::Mutex follows Lusnoc's shape:
#
#   Polylock::Mutex.new("jobs/nightly", ttl: 20, url: "consul://127.0.0.1:8500")
#     .synchronize(timeout: 10) do |mx|
#       mx.time_to_expiration  # seconds the lease is still proven held
#       mx.need_renew?         # past a third of its TTL without a renewal
#       mx.renew               # renew now (polylock also renews on its own)
#       mx.locked?
#     end
#
# The library is found through POLYLOCK_LIB, else target/release or
# target/debug of this repository.
require "ffi"

module Polylock
  # The C ABI, one-to-one.
  module Native
    extend FFI::Library

    def self.library_path
      return ENV["POLYLOCK_LIB"] if ENV["POLYLOCK_LIB"] && !ENV["POLYLOCK_LIB"].empty?

      root = File.expand_path("../../..", __dir__)
      %w[release debug].map { |profile| File.join(root, "target", profile, "libpolylock.so") }
                       .find { |path| File.exist?(path) } || "polylock"
    end

    ffi_lib library_path

    STATUS = enum(:status, %i[ok timeout lost not_held limit_mismatch conflict connection auth
                              invalid_argument backend usage invalid_handle panic cancelled])

    # The event a lost callback receives (valid during the callback only).
    class LostEvent < FFI::Struct
      layout :name, :string,
             :holder, :string,
             :has_fencing_token, :bool,
             :fencing_token, :uint64,
             :reason, :string
    end

    callback :lost_callback, %i[pointer pointer], :void
    callback :user_data_free, [:pointer], :void

    attach_function :polylock_version, [], :string
    attach_function :polylock_last_error, [], :string
    attach_function :polylock_status_name, [:int32], :string
    # Calls that may block release the interpreter lock while they do.
    attach_function :polylock_client_new, %i[string pointer], :status, blocking: true
    attach_function :polylock_client_free, [:pointer], :status
    attach_function :polylock_lock_new, %i[pointer string uint32 uint64 string pointer], :status
    attach_function :polylock_lock_free, [:pointer], :status, blocking: true
    attach_function :polylock_try_acquire, %i[pointer pointer], :status, blocking: true
    attach_function :polylock_acquire, %i[pointer int64], :status, blocking: true
    attach_function :polylock_renew, [:pointer], :status, blocking: true
    attach_function :polylock_release, [:pointer], :status, blocking: true
    attach_function :polylock_is_held, [:pointer], :bool
    attach_function :polylock_needs_renew, [:pointer], :bool
    attach_function :polylock_time_to_expiration_ms, [:pointer], :uint64
    attach_function :polylock_fencing_token, %i[pointer pointer pointer], :status
    attach_function :polylock_holder, %i[pointer pointer], :status
    attach_function :polylock_string_free, [:pointer], :void
    attach_function :polylock_on_lost, %i[pointer lost_callback pointer user_data_free], :status
  end

  # Every polylock failure; `code` is the stable status name (:timeout, …).
  class Error < StandardError
    attr_reader :code

    def initialize(message, code)
      super(message)
      @code = code
    end
  end
  class TimeoutError < Error; end
  class ExpiredError < Error; end # the lease was lost (Lusnoc's name)
  class NotHeldError < Error; end
  class LimitMismatchError < Error; end
  class ConnectionError < Error; end
  class AuthError < Error; end
  class InvalidArgumentError < Error; end
  class UsageError < Error; end
  class CancelledError < Error; end # a pending acquisition was cancelled

  ERRORS = {
    timeout: TimeoutError, lost: ExpiredError, not_held: NotHeldError,
    limit_mismatch: LimitMismatchError, connection: ConnectionError, auth: AuthError,
    invalid_argument: InvalidArgumentError, usage: UsageError, cancelled: CancelledError
  }.freeze

  # Raises the Error for a status other than :ok.
  def self.check(status)
    return if status == :ok

    raise ERRORS.fetch(status, Error).new(Native.polylock_last_error, status)
  end

  # A backend connection (on Consul: one session renewing all its leases).
  class Client
    attr_reader :pointer

    def initialize(url = ENV.fetch("POLYLOCK_URL", "memory://"))
      out = FFI::MemoryPointer.new(:pointer)
      Polylock.check(Native.polylock_client_new(url.to_s, out))
      @pointer = out.read_pointer
      ObjectSpace.define_finalizer(self, self.class.finalizer(@pointer))
    end

    def self.finalizer(pointer)
      proc { Native.polylock_client_free(pointer) }
    end
  end

  # A distributed mutex (or, with limit:, a counting semaphore) holding at
  # most one lease at a time.
  class Mutex
    attr_reader :name, :ttl

    def initialize(name, ttl: 15, url: nil, client: nil, value: nil, limit: 1)
      @name = name
      @ttl = ttl
      @client = client || Client.new(url || ENV.fetch("POLYLOCK_URL", "memory://"))
      ttl_ms = (ttl * 1000).round
      raise InvalidArgumentError.new("ttl must be positive", :invalid_argument) unless ttl_ms.positive?

      out = FFI::MemoryPointer.new(:pointer)
      Polylock.check(Native.polylock_lock_new(@client.pointer, name.to_s, limit, ttl_ms, value, out))
      @pointer = out.read_pointer
      @lost_handlers = []
      @lost_callback = nil
      ObjectSpace.define_finalizer(self, self.class.finalizer(@pointer))
    end

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
      ms = timeout.nil? ? -1 : (timeout * 1000).round
      Polylock.check(Native.polylock_acquire(@pointer, ms))
      self
    end

    # Takes the lock if it is free now; true if taken.
    def try_lock
      acquired = FFI::MemoryPointer.new(:bool)
      Polylock.check(Native.polylock_try_acquire(@pointer, acquired))
      acquired.read(:bool)
    end

    # Releases the lease (ExpiredError if it was lost, NotHeldError if none).
    def unlock
      Polylock.check(Native.polylock_release(@pointer))
    end

    # Renews the lease now.
    def renew
      Polylock.check(Native.polylock_renew(@pointer))
    end

    def locked?
      Native.polylock_is_held(@pointer)
    end

    # Seconds the lease is still proven held (0.0 when not held).
    def time_to_expiration
      Native.polylock_time_to_expiration_ms(@pointer) / 1000.0
    end

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

    # The backend's id of the lease (the Consul session id, …).
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

    # Runs the block (with self and the reason) once for every lease of
    # this mutex that is lost, on a background thread.
    def on_mutex_lost(&handler)
      raise ArgumentError, "on_mutex_lost needs a block" unless handler

      @lost_handlers << handler
      return if @lost_callback

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
    end
  end
end
