# frozen_string_literal: true

# For code that did `require "lusnoc/mutex"`: see polylock/lusnoc.rb.
require_relative "../lusnoc"
