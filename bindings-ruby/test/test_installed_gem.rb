# frozen_string_literal: true

# The gem as installed: run-tests.sh installs it into a fresh GEM_HOME and
# sets POLYLOCK_TEST_INSTALLED_GEM to it; then `require "polylock"` must
# come from that gem, and so must the library (POLYLOCK_LIB unset), unless
# POLYLOCK_LIB names another one.
require "minitest/autorun"
require "open3"
require "fileutils"
require "tmpdir"
require "polylock"

class InstalledGemTest < Minitest::Test
  def setup
    @gem_home = ENV.fetch("POLYLOCK_TEST_INSTALLED_GEM", "")
    return unless @gem_home.empty?

    flunk "POLYLOCK_TEST_INSTALLED_GEM is not set (run bindings-ruby/run-tests.sh)" if ENV["CI"] == "true"
    skip "POLYLOCK_TEST_INSTALLED_GEM is not set (run bindings-ruby/run-tests.sh)"
  end

  def spec
    Gem.loaded_specs.fetch("polylock")
  end

  def test_the_code_and_the_library_come_from_the_installed_gem
    assert_nil ENV["POLYLOCK_LIB"], "run-tests.sh unsets POLYLOCK_LIB"
    gem_dir = spec.full_gem_path
    assert gem_dir.start_with?(File.join(@gem_home, "gems") + "/"), gem_dir
    assert_equal File.join(gem_dir, "lib/polylock/native/libpolylock.so"), Polylock::Native::LIBRARY_PATH
    loaded = $LOADED_FEATURES.grep(%r{/polylock/mutex\.rb\z})
    assert_equal [File.join(gem_dir, "lib/polylock/mutex.rb")], loaded
    assert_equal Polylock::VERSION, spec.version.to_s
    assert_equal "x86_64-linux", spec.platform.to_s
    assert_equal %w[MIT Apache-2.0], spec.licenses
    assert_equal Polylock::VERSION, Polylock::Native.polylock_version
  end

  def test_polylock_lib_wins_over_the_gem_s_library
    Dir.mktmpdir do |dir|
      copy = File.join(dir, "libpolylock.so")
      FileUtils.cp(Polylock::Native::LIBRARY_PATH, copy)
      out, status = Open3.capture2e({ "POLYLOCK_LIB" => copy }, RbConfig.ruby, "-e",
                                    'require "polylock"; print Polylock::Native::LIBRARY_PATH')
      assert status.success?, out
      assert_equal copy, out
    end
  end
end
