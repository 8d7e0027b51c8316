# frozen_string_literal: true

# The polylock gem: the Ruby bindings (lib/) and, in the platform gem that
# package.sh builds, the C library at lib/polylock/native/libpolylock.so.
# Without that file this builds a pure-Ruby gem that loads $POLYLOCK_LIB or
# the system's libpolylock.so. The version is the Cargo workspace's.
require_relative "lib/polylock/version"

workspace_toml = ENV.fetch("POLYLOCK_WORKSPACE_TOML", File.expand_path("../Cargo.toml", __dir__))
if File.exist?(workspace_toml)
  in_section = false
  cargo_version = File.foreach(workspace_toml).each do |line|
    in_section = line.strip == "[workspace.package]" if line.start_with?("[")
    break Regexp.last_match(1) if in_section && line =~ /\Aversion\s*=\s*"([^"]+)"/
  end
  if cargo_version.is_a?(String) && cargo_version != Polylock::VERSION
    raise "lib/polylock/version.rb says #{Polylock::VERSION}, Cargo.toml's workspace #{cargo_version}: make them agree"
  end
end

native = File.join(__dir__, "lib/polylock/native/libpolylock.so")

Gem::Specification.new do |spec|
  spec.name = "polylock"
  spec.version = Polylock::VERSION
  spec.summary = "Distributed locks and semaphores over Consul, MongoDB, LDLM and memory (Lusnoc-compatible)"
  spec.description = "Ruby bindings for polylock's C library: Polylock::Mutex and a drop-in Lusnoc::Mutex."
  spec.authors = ["polylock contributors"]
  # The workspace's "MIT OR Apache-2.0", in RubyGems' spelling (a list of
  # SPDX ids, any of which applies; it rejects the OR expression).
  spec.licenses = ["MIT", "Apache-2.0"]
  spec.required_ruby_version = ">= 2.7"
  spec.files = Dir.chdir(__dir__) { Dir["lib/**/*.rb"] }
  if File.exist?(native)
    spec.files << "lib/polylock/native/libpolylock.so"
    spec.platform = Gem::Platform.new("x86_64-linux")
  end
  spec.require_paths = ["lib"]
  spec.add_runtime_dependency "ffi", "~> 1.15"
  spec.metadata["rubygems_mfa_required"] = "true"
end
