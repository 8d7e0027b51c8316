# frozen_string_literal: true

module Polylock
  # The gem's version: the Cargo workspace's (polylock.gemspec refuses to
  # build when the two differ).
  VERSION = "0.1.0"
end
