# frozen_string_literal: true

# Ruby bindings for polylock over its C ABI (include/polylock.h), with
# ruby-ffi. Polylock::Mutex follows Lusnoc's shape (see polylock/mutex.rb);
# `require "polylock/lusnoc"` gives Lusnoc's own constants.
require_relative "polylock/version"
require_relative "polylock/native"
require_relative "polylock/errors"
require_relative "polylock/client"
require_relative "polylock/mutex"
