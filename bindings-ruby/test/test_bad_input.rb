# frozen_string_literal: true

# The bad-input matrix, Ruby column: every case gets a typed error (a
# Polylock::Error subclass, or the documented accepted outcome) and loses
# nothing, on memory://. With POLYLOCK_BAD_INPUT_RECORDS set, each case
# appends one JSON line {"case", "lang": "ruby", "error"} to that file for
# tests/bad-input/table.py (README "Bad input").
require "minitest/autorun"
require "json"
require "securerandom"
require "stringio"
require "timeout"
require "polylock"

class BadInputTest < Minitest::Test
  URL = "memory://ruby-bad-#{Process.pid}"

  def record(id, error)
    path = ENV.fetch("POLYLOCK_BAD_INPUT_RECORDS", "")
    return if path.empty?

    File.open(path, "a") { |file| file.puts(JSON.generate({ case: id, lang: "ruby", error: error })) }
  end

  def unique(base)
    "ruby-bad/#{base}/#{SecureRandom.hex(8)}"
  end

  def expect(id, klass)
    error = assert_raises(klass) { yield }
    assert_equal klass, error.class, "#{id}: #{error.message}"
    record(id, error.class.name)
    error
  end

  def setup
    @client = Polylock::Client.new(URL)
    @held = Polylock::Mutex.new(unique("held"), client: @client)
    assert @held.try_lock
  end

  def teardown
    witness
    @held.unlock
  end

  # The held lease is still held, and a fresh mutex of the client works.
  def witness
    assert @held.locked?, "the held lease was lost"
    other = Polylock::Mutex.new(unique("after"), client: @client)
    assert other.try_lock
    other.unlock
  end

  def test_bad_names
    [
      ["name-empty", ""],
      ["name-too-long", "a" * 257],
      ["name-control-char", "bad\nname"],
      ["name-control-char", "bad\0name"],
      ["name-non-utf8", "bad\xff\xfename".b],
      ["name-null", nil],
      ["value-huge", "n" * (10 << 20)]
    ].each do |id, name|
      expect(id, Polylock::InvalidArgumentError) { Polylock::Mutex.new(name, client: @client) }
      witness
    end
    expect("value-huge", Polylock::InvalidArgumentError) do
      Polylock::Mutex.new(unique("v"), client: @client, value: "v" * (10 << 20))
    end
  end

  def test_bad_urls
    [
      ["url-null", nil],
      ["url-invalid", "not a url"],
      ["url-invalid", "memory://\0x"],
      ["url-unknown-scheme", "nosuch://host"]
    ].each do |id, url|
      expect(id, Polylock::InvalidArgumentError) { Polylock::Client.new(url) }
      witness
    end
  end

  def test_bad_ttls_limits_timeouts
    [
      ["ttl-zero", { ttl: 0 }],
      ["ttl-too-large", { ttl: 1e12 }],
      ["ttl-too-large", { ttl: Float::INFINITY }],
      ["limit-zero", { limit: 0 }],
      ["limit-negative", { limit: -1 }],
      ["limit-huge", { limit: 2**32 }]
    ].each do |id, options|
      expect(id, Polylock::InvalidArgumentError) { Polylock::Mutex.new(unique("opt"), client: @client, **options) }
      witness
    end
    mutex = Polylock::Mutex.new(unique("timeout"), client: @client)
    expect("timeout-negative", Polylock::InvalidArgumentError) { mutex.lock(timeout: -1) }
    mutex.lock(timeout: 1)
    mutex.unlock
  end

  def test_double_release_and_release_after_loss
    mutex = Polylock::Mutex.new(unique("double"), client: @client)
    mutex.lock(timeout: 1)
    mutex.unlock
    expect("double-release", Polylock::NotHeldError) { mutex.unlock }
    assert mutex.try_lock
    mutex.unlock

    # No operator view in the C ABI: a lease the caller renews expires.
    # Proven-held ends a safety margin before the loss is reported: wait for the report.
    expiring = Polylock::Mutex.new(unique("expired"), client: @client, ttl: 1, auto_renew: false)
    lost = Queue.new
    expiring.on_mutex_lost { |_mutex, reason| lost << reason }
    expiring.lock(timeout: 1)
    Timeout.timeout(10) { lost.pop }
    expect("release-after-loss", Polylock::ExpiredError) { expiring.unlock }
    # Lost is declared a safety margin before the backend's expiry.
    expiring.lock(timeout: 2)
    expiring.unlock
  end

  def test_use_after_close
    mutex = Polylock::Mutex.new(unique("closed"), url: URL)
    GC.start
    # The mutex keeps its own client (there is no close): it still works.
    mutex.lock(timeout: 1)
    assert mutex.locked?
    mutex.unlock
    record("use-after-close", "ok (the lock keeps its client)")
  end

  def test_handler_raises
    called = Queue.new
    mutex = Polylock::Mutex.new(unique("raises"), client: @client, ttl: 1, auto_renew: false)
    mutex.on_mutex_lost { raise "a lost handler raises" }
    mutex.on_mutex_lost { |_mutex, reason| called << reason }
    stderr = $stderr
    captured = StringIO.new
    $stderr = captured
    begin
      2.times do
        mutex.lock(timeout: 2)
        Timeout.timeout(10) { called.pop }
        assert_raises(Polylock::ExpiredError) { mutex.unlock }
      end
    ensure
      $stderr = stderr
    end
    assert_equal 2, captured.string.scan("on_mutex_lost handler raised RuntimeError").size, captured.string
    record("callback-throws", "rescued, warned (others still called)")
  end

  def test_threads_one_handle
    mutex = Polylock::Mutex.new(unique("threads"), client: @client)
    outcomes = Queue.new
    threads = Array.new(16) do
      Thread.new do
        mutex.lock(timeout: 0.2)
        outcomes << :held
      rescue Polylock::Error => e
        outcomes << e
      end
    end
    threads.each(&:join)
    results = Array.new(outcomes.size) { outcomes.pop }
    assert_equal 1, results.count(:held), results.inspect
    refused = results.reject { |each| each == :held }
    assert(refused.all? { |each| each.instance_of?(Polylock::UsageError) }, refused.inspect)
    assert mutex.locked?
    mutex.unlock
    record("threads-one-handle", refused.first.class.name)
  end
end
