/* A C contender for the mixed-client run (tests/mixed/run.sh): takes the
 * lock NAME on URL ROUNDS times through the C ABI and, inside each hold,
 * appends "start c TOKEN NS", holds it HOLD_MS milliseconds (the workload),
 * then appends "end c TOKEN NS" to LOG. TOKEN is the fencing token, "-"
 * when the backend has none (LDLM); NS is clock_gettime(CLOCK_MONOTONIC)
 * in nanoseconds, the clock every contender reads (tests/mixed/check.py).
 *
 *   contend URL NAME ROUNDS LOG HOLD_MS
 *   contend clock                 print "c NS" (the clock probe)
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polylock.h"

static int fail(const char *what, polylock_status status) {
  fprintf(stderr, "contend (c): %s: %s: %s\n", what, polylock_status_name(status),
          polylock_last_error());
  return 1;
}

/* CLOCK_MONOTONIC in nanoseconds; exits if the clock cannot be read. */
static uint64_t monotonic_ns(void) {
  struct timespec now;
  if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
    perror("contend (c): clock_gettime(CLOCK_MONOTONIC)");
    exit(1);
  }
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Appends "WHAT c TOKEN NS" to LOG in one write; 0 on success. */
static int record(const char *log, const char *what, bool has_token, uint64_t token) {
  char token_text[24] = "-";
  uint64_t ns = monotonic_ns();
  if (has_token) snprintf(token_text, sizeof token_text, "%" PRIu64, token);
  FILE *out = fopen(log, "a");
  if (out == NULL) {
    perror("contend (c): opening the log");
    return 1;
  }
  fprintf(out, "%s c %s %" PRIu64 "\n", what, token_text, ns);
  return fclose(out) == 0 ? 0 : 1;
}

/* Sleeps `ms` milliseconds: the hold's workload. */
static void hold_for(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0) {
  }
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "clock") == 0) {
    printf("c %" PRIu64 "\n", monotonic_ns());
    return 0;
  }
  if (argc != 6) {
    fprintf(stderr, "usage: contend URL NAME ROUNDS LOG HOLD_MS | contend clock\n");
    return 2;
  }
  const char *log = argv[4];
  long hold_ms = atol(argv[5]);
  polylock_client *client = NULL;
  polylock_lock *lock = NULL;
  polylock_status status = polylock_client_new(argv[1], &client);
  if (status != POLYLOCK_OK) return fail("client", status);
  status = polylock_lock_new(client, argv[2], 1, 0, NULL, &lock);
  if (status != POLYLOCK_OK) return fail("lock", status);
  int rounds = atoi(argv[3]);
  for (int i = 0; i < rounds; i++) {
    status = polylock_acquire(lock, 120000);
    if (status != POLYLOCK_OK) return fail("acquire", status);
    bool has_token = false;
    uint64_t token = 0;
    status = polylock_fencing_token(lock, &has_token, &token);
    if (status != POLYLOCK_OK) return fail("fencing token", status);
    if (record(log, "start", has_token, token) != 0) return 1;
    hold_for(hold_ms);
    if (record(log, "end", has_token, token) != 0) return 1;
    status = polylock_release(lock);
    if (status != POLYLOCK_OK) return fail("release", status);
  }
  polylock_lock_free(lock);
  polylock_client_free(client);
  return 0;
}
