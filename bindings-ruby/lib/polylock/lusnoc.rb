# frozen_string_literal: true

# Lusnoc's constants over polylock, so that code written for the lusnoc gem
# runs with only its `require` changed:
#
#   require "polylock/lusnoc"          # for require "lusnoc"
#   require "polylock/lusnoc/mutex"    # for require "lusnoc/mutex"
#   require "polylock/luscon/mutex"    # for require "luscon/mutex" (Lusnoc's README)
#
# each define Lusnoc::Mutex, Lusnoc::TimeoutError, Lusnoc::ExpiredError and
# Lusnoc::Error, plus the spellings Lusnoc's README also uses, Luscon::…
# and Consul::Mutex / Consul::TimeoutError, where those constants are free
# (an existing Luscon or Consul, e.g. the consul-mutex gem's, is left alone).
require "socket"
require_relative "../polylock"

if defined?(::Lusnoc::Mutex) && !(::Lusnoc::Mutex <= Polylock::Mutex)
  raise LoadError, "the lusnoc gem is loaded already; require polylock/lusnoc instead of it, not beside it"
end

# Lusnoc's namespace, served by polylock.
module Lusnoc
  # Lusnoc's mutex: a Polylock::Mutex with Lusnoc's defaults. The backend is
  # `url:`, else $POLYLOCK_URL, else the Consul agent at $CONSUL_HTTP_ADDR
  # (default 127.0.0.1:8500). The key may start with "/" (Consul's KV key is
  # the same without it). The value defaults to the host name; a non-String
  # value (Lusnoc's `{time: Time.now}`) is stored as JSON. The TTL defaults
  # to 20 s. As in Lusnoc the caller renews: the lease ends at its TTL after
  # the grant or the last #renew (reported to #on_mutex_lost) unless renewed
  # (pass auto_renew: true to have polylock renew it in the background).
  class Mutex < Polylock::Mutex
    # Lusnoc's keyword arguments, plus polylock's (url:, client:, limit:, auto_renew:).
    def initialize(key, value: Socket.gethostname, ttl: 20, url: nil, auto_renew: false, **options)
      key = key.delete_prefix("/") if key.is_a?(String)
      super(key, value: value, ttl: ttl, url: url || (options[:client] ? nil : Polylock.default_url("consul://")),
                 auto_renew: auto_renew, **options)
    end

    # Lusnoc's rule: true when time_to_expiration is less than half the TTL.
    def need_renew?
      locked? && time_to_expiration < ttl / 2.0
    end
  end

  # Lusnoc's errors are polylock's (rescue either name).
  Error = Polylock::Error
  TimeoutError = Polylock::TimeoutError
  ExpiredError = Polylock::ExpiredError
end

# Lusnoc's README also spells it Luscon.
Luscon = Lusnoc unless defined?(::Luscon)

# Lusnoc's README also writes Consul::Mutex: defined only when no Consul
# module exists (never added to someone else's).
unless defined?(::Consul)
  # Consul::Mutex as in Lusnoc's README.
  module Consul
    Mutex = Lusnoc::Mutex
    TimeoutError = Lusnoc::TimeoutError
    ExpiredError = Lusnoc::ExpiredError
  end
end
