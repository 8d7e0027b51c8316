# frozen_string_literal: true

# Lusnoc's README usage, written as tests, against a real Consul agent
# (POLYLOCK_TEST_CONSUL_URL, given to the code as Lusnoc's users give it:
# CONSUL_HTTP_ADDR). The README's code is used as it stands; only its
# `require 'luscon/mutex'` became `require "polylock/luscon/mutex"`.
require "minitest/autorun"
require "base64"
require "json"
require "net/http"
require "open3"
require "socket"
require "timeout"
require "polylock/luscon/mutex"

class LusnocReadmeTest < Minitest::Test
  def setup
    url = ENV.fetch("POLYLOCK_TEST_CONSUL_URL", "")
    if url.empty?
      flunk "POLYLOCK_TEST_CONSUL_URL is not set" if ENV["CI"] == "true"
      skip "POLYLOCK_TEST_CONSUL_URL is not set"
    end
    @address = url.delete_prefix("consul://").split("?").first
    @saved = ENV.to_h.slice("CONSUL_HTTP_ADDR", "POLYLOCK_URL")
    ENV.delete("POLYLOCK_URL")
    ENV["CONSUL_HTTP_ADDR"] = @address
  end

  def teardown
    return unless @saved

    %w[CONSUL_HTTP_ADDR POLYLOCK_URL].each { |name| @saved.key?(name) ? ENV[name] = @saved[name] : ENV.delete(name) }
  end

  # The KV entry of `key` as Consul has it ({"Session" => …, "Value" => …}).
  def kv(key)
    host, port = @address.split(":")
    response = Net::HTTP.get_response(host, "/v1/kv/#{key}", port.to_i)
    return nil if response.code == "404"

    entry = JSON.parse(response.body).first
    entry.merge("Value" => entry["Value"] && Base64.decode64(entry["Value"]))
  end

  def destroy_session(id)
    host, port = @address.split(":")
    response = Net::HTTP.start(host, port.to_i) { |http| http.request(Net::HTTP::Put.new("/v1/session/destroy/#{id}", "Content-Type" => "application/json")) }
    assert_equal "200", response.code
  end

  def test_readme_mutex_new_and_synchronize_hold_the_key_with_the_host_name
    mutex = Luscon::Mutex.new('/locks/mx1', ttl: 20)
    entry = nil
    assert_output("We are exclusively owns resource\n") do
      mutex.synchronize(timeout: 10) do |mx|
        puts "We are exclusively owns resource"
        entry = kv("locks/mx1")
        assert_equal mx.session_id, entry["Session"]
      end
    end
    assert_equal Socket.gethostname, entry["Value"], "the value defaults to the host name"
    assert_equal 20, mutex.ttl
    assert_nil kv("locks/mx1")&.fetch("Session", nil), "released"
  end

  def test_readme_timeout_raises_lusnoc_timeout_error
    holder = Luscon::Mutex.new('/locks/mx1', ttl: 20)
    holder.synchronize(timeout: 10) do
      mutex = Luscon::Mutex.new('/locks/mx1', ttl: 20)
      error = assert_raises(Lusnoc::TimeoutError) do
        mutex.synchronize(timeout: 1) { flunk "must not run" }
      end
      assert_equal :timeout, error.code
      refute mutex.locked?
    end
  end

  def test_readme_value_hash_is_stored_as_json
    seen = nil
    time = Time.now
    Consul::Mutex.new('/some/key', value: {time: time}).synchronize do |mx|
      seen = JSON.parse(kv("some/key")["Value"])
      assert mx.locked?
    end
    assert_equal({ "time" => time.to_s }, seen)
  end

  def test_readme_session_block_every_method
    lost = Queue.new
    results = nil
    Consul::Mutex.new('/some/key').synchronize do |mx|
      results = {
        time_to_expiration: mx.time_to_expiration, # seconds to session expiration in consul.
        ttl: mx.ttl,                               # session ttl.
        need_renew?: mx.need_renew?,               # true when time_to_expiration less than half of ttl
        locked?: mx.locked?,
        owned?: mx.owned?,
        session_id: mx.session_id,
        expired?: mx.expired?,
        live?: mx.live?
      }
      mx.on_mutex_lost do |mutex|
        lost << mutex # this callback will be called from other(guard) thread
      end
      mx.live!      # ensures session live or raise exception
      mx.renew      # renew session or raise exception if session already expired
      results[:kv_session] = kv("some/key")["Session"]
      results[:owned_elsewhere] = Thread.new { mx.owned? }.value
    end
    assert_operator results[:time_to_expiration], :>, 10
    assert_operator results[:time_to_expiration], :<=, 20
    assert_equal 20, results[:ttl]
    refute results[:need_renew?]
    assert results[:locked?]
    assert results[:owned?]
    refute results[:owned_elsewhere]
    assert_equal results[:kv_session], results[:session_id]
    refute results[:expired?]
    assert results[:live?]
    assert_equal 0, lost.size, "a clean release is not a loss"
  end

  def test_readme_on_mutex_lost_runs_on_the_guard_thread_and_the_session_is_expired
    lost = Queue.new
    caller = Thread.current
    mutex = Consul::Mutex.new('/some/key')
    error = assert_raises(Lusnoc::ExpiredError) do
      mutex.synchronize do |mx|
        mx.on_mutex_lost { |m| lost << [m, Thread.current] }
        destroy_session(mx.session_id) # the session invalidated by an admin
        who, thread = Timeout.timeout(60) { lost.pop }
        assert_same mx, who
        refute_same caller, thread, "called from another (guard) thread"
        refute mx.locked?
        refute mx.owned?
        refute mx.live?
        assert mx.expired?
        assert_raises(Lusnoc::ExpiredError) { mx.live! }
        assert_raises(Lusnoc::ExpiredError) { mx.renew }
      end
    end
    assert_equal :lost, error.code
    refute mutex.expired?, "the loss was reported; the mutex is free for a new lease"
  end

  def test_manual_renewal_the_lease_ends_at_its_ttl_unless_renewed
    lost = Queue.new
    mutex = Lusnoc::Mutex.new('/locks/manual', ttl: 10)
    mutex.on_mutex_lost { |m, reason| lost << [m, reason] }
    assert_raises(Lusnoc::ExpiredError) do
      mutex.synchronize(timeout: 10) do |mx|
        mx.renew
        _, reason = Timeout.timeout(90) { lost.pop }
        assert_match(/renew/i, reason)
        assert mx.expired?
        assert_raises(Lusnoc::ExpiredError) { mx.renew }
      end
    end
  end

  def test_need_renew_follows_lusnoc_s_half_ttl_rule
    mx = Lusnoc::Mutex.new('/locks/rule', ttl: 20)
    refute mx.need_renew?, "not held"
    mx.synchronize(timeout: 10) do
      assert_equal mx.time_to_expiration < 10, mx.need_renew?
    end
  end

  def test_constants_and_bad_input
    assert_same Lusnoc, Luscon
    assert_same Lusnoc::Mutex, Consul::Mutex
    assert_same Polylock::TimeoutError, Lusnoc::TimeoutError
    assert_same Polylock::ExpiredError, Consul::ExpiredError
    assert_operator Lusnoc::Mutex, :<, Polylock::Mutex
    assert_raises(Lusnoc::Error) { Lusnoc::Mutex.new(nil) }
    assert_raises(Polylock::InvalidArgumentError) { Lusnoc::Mutex.new('/bad key') }
    assert_raises(Polylock::InvalidArgumentError) { Lusnoc::Mutex.new('/k', ttl: 0) }
    assert_raises(Polylock::InvalidArgumentError) { Lusnoc::Mutex.new('/k', ttl: 100_000) }
  end

  def test_an_existing_consul_module_is_left_alone
    script = 'module Consul; end; require "polylock/luscon/mutex"; ' \
             'print [defined?(Consul::Mutex).inspect, Lusnoc::Mutex.name, Luscon.name].join(" ")'
    out, status = Open3.capture2e(RbConfig.ruby, *$LOAD_PATH.grep(/bindings-ruby/).map { |d| "-I#{d}" }, "-e", script)
    assert status.success?, out
    assert_equal "nil Lusnoc::Mutex Lusnoc", out
  end
end
