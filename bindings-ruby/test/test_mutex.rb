# frozen_string_literal: true

# Polylock::Mutex against memory:// and, when their URLs are set
# (tests/with-servers.sh sets them), a real Consul agent
# (POLYLOCK_TEST_CONSUL_URL) and a real LDLM server (POLYLOCK_TEST_LDLM_URL,
# with POLYLOCK_TEST_LDLM_PASSWORD_URL and POLYLOCK_TEST_LDLM_PASSWORD for
# the password check). In CI a missing URL is a failure, not a skip, except
# LDLM's when POLYLOCK_TEST_LDLM_SKIPPED=1 (no LDLM server binary).
#
# A lease is lost behind its holder's back by destroying its Consul session
# over HTTP, or, on LDLM, by releasing it by its key with the polylock CLI
# ($POLYLOCK_CLI, which run-tests.sh builds and sets). The C ABI has no
# capabilities call, so what a backend lacks (LDLM: fencing tokens) is
# declared by each test class.
require "minitest/autorun"
require "net/http"
require "open3"
require "timeout"
require "polylock"

# The behaviours every backend shares; `url` comes from the including class.
module MutexBehaviour
  def unique(base)
    "ruby-test/#{Process.pid}/#{base}/#{rand(1 << 30)}"
  end

  def mutex(name, **options)
    Polylock::Mutex.new(name, url: url, ttl: 15, **options)
  end

  def test_synchronize_holds_the_lock_and_releases_it
    name = unique("sync")
    held = nil
    result = mutex(name).synchronize(timeout: 10) do |mx|
      held = mx
      assert mx.locked?
      assert_operator mx.time_to_expiration, :>, 0
      assert_operator mx.time_to_expiration, :<=, 15
      refute mx.need_renew?
      if fencing?
        assert_kind_of Integer, mx.fencing_token
      else
        assert_nil mx.fencing_token
      end
      mx.renew
      :body_result
    end
    assert_equal :body_result, result
    refute held.locked?
    assert_equal 0.0, held.time_to_expiration
  end

  def test_others_wait_and_time_out
    name = unique("exclusion")
    first = mutex(name)
    second = mutex(name)
    assert first.try_lock
    refute second.try_lock
    error = assert_raises(Polylock::TimeoutError) { second.lock(timeout: 0.2) }
    assert_equal :timeout, error.code
    token = first.fencing_token
    first.unlock
    second.synchronize(timeout: 10) do |mx|
      if fencing?
        assert_operator mx.fencing_token, :>, token
      else
        assert_nil mx.fencing_token
      end
    end
  end

  def test_limit_makes_a_semaphore
    name = unique("semaphore")
    one = mutex(name, limit: 2)
    two = mutex(name, limit: 2)
    assert one.try_lock
    assert two.try_lock
    refute mutex(name, limit: 2).try_lock
    error = assert_raises(Polylock::LimitMismatchError) { mutex(name, limit: 3).try_lock }
    assert_equal :limit_mismatch, error.code
    one.unlock
    mutex(name, limit: 2).synchronize(timeout: 10) { |mx| assert mx.locked? }
    two.unlock
  end

  def test_the_block_raising_still_releases
    name = unique("raise")
    assert_raises(RuntimeError) { mutex(name).synchronize(timeout: 5) { raise "boom" } }
    assert mutex(name).try_lock
  end

  def test_double_unlock_and_bad_input_raise_typed_errors
    mx = mutex(unique("errors"))
    assert_raises(Polylock::NotHeldError) { mx.unlock }
    assert mx.try_lock
    assert_raises(Polylock::UsageError) { mx.try_lock }
    mx.unlock
    assert_raises(Polylock::NotHeldError) { mx.unlock }
    assert_raises(Polylock::InvalidArgumentError) { mutex("bad name!") }
    assert_raises(Polylock::InvalidArgumentError) { mutex("caf\xC3".b) }
    assert_raises(Polylock::InvalidArgumentError) { Polylock::Mutex.new("x", url: url, ttl: 0.01) }
    assert_raises(Polylock::InvalidArgumentError) { Polylock::Client.new("nope://") }
  end

  def test_lusnoc_surface_before_during_and_after_a_lease
    mx = mutex(unique("surface"))
    assert_equal 15, mx.ttl
    assert_equal mx.name, mx.key
    refute mx.locked?
    refute mx.owned?
    refute mx.live?
    refute mx.expired?
    assert_nil mx.session_id
    assert_raises(Polylock::NotHeldError) { mx.live! }
    assert_raises(Polylock::NotHeldError) { mx.renew }
    mx.synchronize(timeout: 10) do |held|
      assert_same mx, held
      assert held.owned?
      refute Thread.new { held.owned? }.value, "another thread does not own it"
      assert Thread.new { held.locked? }.value, "but sees it locked"
      assert held.live?
      refute held.expired?
      assert_same held, held.live!
      assert_equal held.holder, held.session_id
      refute_empty held.session_id
      assert_same held, held.renew
      assert_operator held.time_to_expiration, :>, 0
    end
    refute mx.owned?
    refute mx.expired?, "a released lease did not expire"
    assert_raises(Polylock::NotHeldError) { mx.live! }
    assert_equal 0.0, mx.time_to_expiration
  end

  def test_bad_keys_ttls_values_and_timeouts_raise_typed_errors
    [nil, 42, "", "/leading", "a//b", "x" * 300].each do |key|
      error = assert_raises(Polylock::InvalidArgumentError, key.inspect) { mutex(key) }
      assert_equal :invalid_argument, error.code
    end
    [0, 0.5, -1, 86_401, "20", nil, Float::NAN].each do |ttl|
      assert_raises(Polylock::InvalidArgumentError, ttl.inspect) { Polylock::Mutex.new("x", url: url, ttl: ttl) }
    end
    assert_raises(Polylock::InvalidArgumentError) { mutex(unique("v"), value: Float::NAN) }
    assert_raises(Polylock::InvalidArgumentError) { mutex(unique("v"), limit: 0) }
    assert_raises(Polylock::InvalidArgumentError) { mutex(unique("v"), auto_renew: "yes") }
    assert_raises(Polylock::InvalidArgumentError) { mutex(unique("t")).lock(timeout: -1) }
    assert_raises(Polylock::InvalidArgumentError) { Polylock::Client.new(nil) }
    assert mutex(unique("v"), value: { "time" => "now" }).try_lock, "a Hash value is JSON-encoded"
  end

  def test_threads_never_overlap
    name = unique("threads")
    inside = 0
    overlaps = 0
    guard = ::Mutex.new
    threads = Array.new(4) do
      Thread.new do
        mx = mutex(name)
        5.times do
          mx.synchronize(timeout: 60) do
            guard.synchronize { inside += 1; overlaps += 1 if inside > 1 }
            Thread.pass
            guard.synchronize { inside -= 1 }
          end
        end
      end
    end
    threads.each(&:join)
    assert_equal 0, overlaps
  end
end

# The lost callback, on backends where the test can take a lease away
# (`revoke` comes from the including class).
module LostBehaviour
  def test_on_mutex_lost_fires_once_when_the_lease_is_taken_away
    mx = mutex(unique("lost"))
    lost = Queue.new
    mx.on_mutex_lost { |m, reason| lost << [m, reason] }
    mx.synchronize(timeout: 10) do
      revoke(mx)
      who, reason = Timeout.timeout(60) { lost.pop }
      assert_same mx, who
      refute_empty reason
      refute mx.locked?
      refute mx.owned?
      refute mx.live?
      assert mx.expired?
      assert_raises(Polylock::ExpiredError) { mx.live! }
      assert_raises(Polylock::ExpiredError) { mx.renew }
    end
    flunk "unlock after loss must raise"
  rescue Polylock::ExpiredError => e
    assert_equal :lost, e.code
    assert_equal 0, lost.size, "fired once"
    assert_raises(Polylock::NotHeldError) { mx.unlock }
  end
end

# `url` from the environment variable `name`: skips without it, fails in CI.
module ServerURL
  def server_url(name, skipped: false)
    url = ENV.fetch(name, "")
    return url unless url.empty?

    skip "#{name} is not set (POLYLOCK_TEST_LDLM_SKIPPED=1: no LDLM server binary)" if skipped
    flunk "#{name} is not set" if ENV["CI"] == "true"
    skip "#{name} is not set"
  end
end

# The status enum mirrors the C library's codes, in order.
class StatusTest < Minitest::Test
  def test_every_status_has_the_library_s_name
    Polylock::Native::STATUS.symbols.each do |code|
      assert_equal code.to_s, Polylock::Native.polylock_status_name(Polylock::Native::STATUS[code])
    end
    assert_equal "unknown", Polylock::Native.polylock_status_name(Polylock::Native::STATUS.symbols.size)
    assert_equal Polylock::CancelledError, Polylock::ERRORS.fetch(:cancelled)
  end
end

# The backend URL when none is given.
class DefaultUrlTest < Minitest::Test
  def with_env(vars)
    saved = ENV.to_h.slice(*vars.keys)
    vars.each { |k, v| v.nil? ? ENV.delete(k) : ENV[k] = v }
    yield
  ensure
    vars.each_key { |k| saved.key?(k) ? ENV[k] = saved[k] : ENV.delete(k) }
  end

  def test_polylock_url_then_consul_http_addr_then_the_fallback
    with_env("POLYLOCK_URL" => nil, "CONSUL_HTTP_ADDR" => nil) do
      assert_equal "memory://", Polylock.default_url
      assert_equal "consul://", Polylock.default_url("consul://")
    end
    with_env("POLYLOCK_URL" => nil, "CONSUL_HTTP_ADDR" => "127.0.0.1:1") do
      assert_equal "consul://", Polylock.default_url
    end
    with_env("POLYLOCK_URL" => "memory://x", "CONSUL_HTTP_ADDR" => "127.0.0.1:1") do
      assert_equal "memory://x", Polylock.default_url
      assert Polylock::Mutex.new("default-url").try_lock
    end
  end

  def test_inspect_shows_no_url
    client = Polylock::Client.new("memory://user:s3cret@x")
    refute_includes client.inspect, "s3cret"
    refute_includes Polylock::Mutex.new("inspect", client: client).inspect, "s3cret"
  end
end

class MemoryMutexTest < Minitest::Test
  include MutexBehaviour

  def url
    "memory://ruby-#{Process.pid}"
  end

  def fencing?
    true
  end

  # auto_renew: false: the caller renews; unrenewed, the lease ends at its TTL.
  def test_auto_renew_false_leases_end_at_their_ttl_unless_renewed
    mx = Polylock::Mutex.new(unique("manual"), url: url, ttl: 1, auto_renew: false)
    lost = Queue.new
    mx.on_mutex_lost { |_, reason| lost << reason }
    assert mx.try_lock
    mx.renew
    assert_match(/renew/i, Timeout.timeout(30) { lost.pop })
    assert mx.expired?
    assert_raises(Polylock::ExpiredError) { mx.unlock }
  end
end

class ConsulMutexTest < Minitest::Test
  include MutexBehaviour
  include LostBehaviour
  include ServerURL

  attr_reader :url

  def setup
    @url = server_url("POLYLOCK_TEST_CONSUL_URL")
  end

  def fencing?
    true
  end

  # Destroys the lease's session over Consul's HTTP API.
  def revoke(mx)
    host, port = url.delete_prefix("consul://").split(":")
    response = Net::HTTP.start(host, port.to_i) do |http|
      http.request(Net::HTTP::Put.new("/v1/session/destroy/#{mx.holder}", "Content-Type" => "application/json"))
    end
    assert_equal "200", response.code
  end
end

# Takes a lease away from outside: releases it by its holder id with the
# polylock CLI ($POLYLOCK_CLI), as an operator would.
module CliRevoke
  def revoke(mx)
    cli = ENV.fetch("POLYLOCK_CLI", "")
    flunk "POLYLOCK_CLI (the polylock binary) is not set" if cli.empty?
    out, status = Open3.capture2e(cli, "--url", url, "release", mx.name, "--holder", mx.holder)
    assert status.success?, "polylock release: #{out}"
  end
end

class PostgresMutexTest < Minitest::Test
  include MutexBehaviour
  include LostBehaviour
  include ServerURL
  include CliRevoke

  attr_reader :url

  def setup
    @url = server_url("POLYLOCK_TEST_POSTGRES_URL")
  end

  def fencing?
    true
  end
end

class LdlmMutexTest < Minitest::Test
  include MutexBehaviour
  include LostBehaviour
  include ServerURL
  include CliRevoke

  attr_reader :url

  def setup
    @url = server_url("POLYLOCK_TEST_LDLM_URL", skipped: ENV["POLYLOCK_TEST_LDLM_SKIPPED"] == "1")
  end

  # LDLM gives no fencing token.
  def fencing?
    false
  end

  def test_a_wrong_password_is_refused_without_showing_it
    base = server_url("POLYLOCK_TEST_LDLM_PASSWORD_URL", skipped: ENV["POLYLOCK_TEST_LDLM_SKIPPED"] == "1")
    password = ENV.fetch("POLYLOCK_TEST_LDLM_PASSWORD")
    wrong = "not-the-password-5be1d0"
    with = ->(secret) { base.sub("ldlm://", "ldlm://:#{secret}@") }
    error = assert_raises(Polylock::AuthError) { Polylock::Client.new(with.call(wrong)) }
    assert_equal :auth, error.code
    refute_includes error.message, wrong
    refute_includes error.message, password
    Polylock::Mutex.new(unique("password"), url: with.call(password)).synchronize(timeout: 10) do |mx|
      assert mx.locked?
    end
  end
end
