# frozen_string_literal: true

module Polylock
  # The backend URL when none is given: $POLYLOCK_URL, else consul:// when
  # $CONSUL_HTTP_ADDR is set (the agent's address is taken from it), else
  # `fallback`.
  def self.default_url(fallback = "memory://")
    url = ENV.fetch("POLYLOCK_URL", "")
    return url unless url.empty?
    return "consul://" unless ENV.fetch("CONSUL_HTTP_ADDR", "").empty?

    fallback
  end

  # A backend connection (on Consul: one session renewing all its leases).
  class Client
    # The C handle.
    attr_reader :pointer

    # Connects to `url` (memory://, consul://, mongodb://, ldlm://, …).
    def initialize(url = Polylock.default_url)
      Polylock.invalid!("url must be a String, got #{url.class}") unless url.is_a?(String)
      out = FFI::MemoryPointer.new(:pointer)
      Polylock.check(Native.polylock_client_new(url, out))
      @pointer = out.read_pointer
      ObjectSpace.define_finalizer(self, self.class.finalizer(@pointer))
    end

    # Frees the C handle once the client is collected.
    def self.finalizer(pointer)
      proc { Native.polylock_client_free(pointer) }
    end

    # No URL (it may hold a password or token).
    def inspect
      "#<#{self.class.name}>"
    end
  end
end
