# frozen_string_literal: true

# For code that did `require "luscon/mutex"` (Lusnoc's README): see polylock/lusnoc.rb.
require_relative "../lusnoc"
