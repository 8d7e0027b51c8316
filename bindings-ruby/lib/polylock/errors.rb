# frozen_string_literal: true

module Polylock
  # Every polylock failure; `code` is the stable status name (:timeout, …).
  class Error < StandardError
    attr_reader :code

    # A failure with its message and status name.
    def initialize(message, code)
      super(message)
      @code = code
    end
  end

  # Not acquired within the timeout.
  class TimeoutError < Error; end
  # The lease was lost (revoked, or not renewed in time; Lusnoc's name).
  class ExpiredError < Error; end
  # The mutex holds no lease.
  class NotHeldError < Error; end
  # The name is held with another limit.
  class LimitMismatchError < Error; end
  # The backend could not be reached.
  class ConnectionError < Error; end
  # The backend refused the credentials.
  class AuthError < Error; end
  # A key, TTL, value, URL or option is invalid.
  class InvalidArgumentError < Error; end
  # A call out of order (acquiring while holding, …).
  class UsageError < Error; end
  # A pending acquisition was cancelled.
  class CancelledError < Error; end

  # Status name → error class.
  ERRORS = {
    timeout: TimeoutError, lost: ExpiredError, not_held: NotHeldError,
    limit_mismatch: LimitMismatchError, connection: ConnectionError, auth: AuthError,
    invalid_argument: InvalidArgumentError, usage: UsageError, cancelled: CancelledError
  }.freeze

  # Raises the Error for a status other than :ok.
  def self.check(status)
    return if status == :ok

    raise ERRORS.fetch(status, Error).new(Native.polylock_last_error, status)
  end

  # Raises InvalidArgumentError with `message`.
  def self.invalid!(message)
    raise InvalidArgumentError.new(message, :invalid_argument)
  end
end
