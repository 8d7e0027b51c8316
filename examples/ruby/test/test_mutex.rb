# frozen_string_literal: true

# Polylock::Mutex against memory:// and, when POLYLOCK_TEST_CONSUL_URL is
# set (tests/with-servers.sh sets it), a real Consul agent. In CI a missing
# Consul URL is a failure, not a skip.
require "minitest/autorun"
require "net/http"
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
      assert_kind_of Integer, mx.fencing_token
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
    second.synchronize(timeout: 10) { |mx| assert_operator mx.fencing_token, :>, token }
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

class MemoryMutexTest < Minitest::Test
  include MutexBehaviour

  def url
    "memory://ruby-#{Process.pid}"
  end
end

class ConsulMutexTest < Minitest::Test
  include MutexBehaviour

  attr_reader :url

  def setup
    @url = ENV.fetch("POLYLOCK_TEST_CONSUL_URL", "")
    return unless @url.empty?

    flunk "POLYLOCK_TEST_CONSUL_URL is not set" if ENV["CI"] == "true"
    skip "POLYLOCK_TEST_CONSUL_URL is not set"
  end

  def test_on_mutex_lost_fires_once_when_the_session_is_destroyed
    mx = mutex(unique("lost"))
    lost = Queue.new
    mx.on_mutex_lost { |m, reason| lost << [m, reason] }
    mx.synchronize(timeout: 10) do
      address = url.delete_prefix("consul://")
      response = Net::HTTP.start(*address.split(":").then { |h, p| [h, p.to_i] }) do |http|
        http.request(Net::HTTP::Put.new("/v1/session/destroy/#{mx.holder}", "Content-Type" => "application/json"))
      end
      assert_equal "200", response.code
      who, reason = Timeout.timeout(60) { lost.pop }
      assert_same mx, who
      refute_empty reason
      refute mx.locked?
    end
    flunk "unlock after loss must raise"
  rescue Polylock::ExpiredError => e
    assert_equal :lost, e.code
    assert_equal 0, lost.size, "fired once"
    assert_raises(Polylock::NotHeldError) { mx.unlock }
  end
end
