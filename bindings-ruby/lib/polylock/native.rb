# frozen_string_literal: true

require "ffi"

module Polylock
  # The C ABI (include/polylock.h), one-to-one, over Debian's ruby-ffi.
  #
  # The library loaded is, in this order: $POLYLOCK_LIB; the one inside this
  # gem (lib/polylock/native/libpolylock.so, in the platform gem); from a
  # source checkout, target/release or target/debug (of $CARGO_TARGET_DIR or
  # the repository's target/); else the system's libpolylock.so.
  module Native
    extend FFI::Library

    # The library candidates in the order they are tried (the first that
    # exists wins; the last, "polylock", is looked up by the system loader).
    def self.candidates
      env = ENV.fetch("POLYLOCK_LIB", "")
      return [env] unless env.empty?

      found = [File.join(__dir__, "native", "libpolylock.so")]
      root = File.expand_path("../../..", __dir__)
      if File.exist?(File.join(root, "Cargo.toml"))
        targets = [ENV.fetch("CARGO_TARGET_DIR", ""), File.join(root, "target")].reject(&:empty?)
        targets.each do |target|
          target = File.expand_path(target, root)
          %w[release debug].each { |profile| found << File.join(target, profile, "libpolylock.so") }
        end
      end
      found
    end

    # The path of the library to load ("polylock" when only the system's is left).
    def self.library_path
      list = candidates
      return list.first if list.size == 1

      list.find { |path| File.exist?(path) } || "polylock"
    end

    # The library this process loaded.
    LIBRARY_PATH = library_path
    ffi_lib LIBRARY_PATH

    STATUS = enum(:status, %i[ok timeout lost not_held limit_mismatch conflict connection auth
                              invalid_argument backend usage invalid_handle panic cancelled])

    # A NUL-terminated string argument. A String holding a NUL byte, which C
    # would cut there, is an InvalidArgumentError like any other bad
    # argument (ruby-ffi's own :string raises ArgumentError).
    module CString
      extend FFI::DataConverter
      native_type FFI::Type::STRING

      def self.to_native(value, _context)
        Polylock.invalid!("a string passed to polylock contains a NUL byte") if value.is_a?(String) && value.include?("\0")
        value
      end

      def self.from_native(value, _context)
        value
      end
    end
    typedef CString, :c_string

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
    attach_function :polylock_client_new, %i[c_string pointer], :status, blocking: true
    attach_function :polylock_client_free, [:pointer], :status
    attach_function :polylock_lock_new, %i[pointer c_string uint32 uint64 c_string pointer], :status
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

    attach_function :polylock_lock_set_auto_renew, %i[pointer bool], :status
  end
end
