/* A C contender for the mixed-client run (tests/mixed/run.sh): takes the
 * lock NAME on URL ROUNDS times through the C ABI and, inside each hold,
 * appends "start c TOKEN" and "end c TOKEN" lines to LOG.
 *
 *   contend URL NAME ROUNDS LOG
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "polylock.h"

static int fail(const char *what, polylock_status status) {
  fprintf(stderr, "contend (c): %s: %s: %s\n", what, polylock_status_name(status),
          polylock_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: contend URL NAME ROUNDS LOG\n");
    return 2;
  }
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
    FILE *out = fopen(argv[4], "a");
    if (out == NULL) return 1;
    fprintf(out, "start c %" PRIu64 "\n", token);
    fflush(out);
    fprintf(out, "end c %" PRIu64 "\n", token);
    fclose(out);
    status = polylock_release(lock);
    if (status != POLYLOCK_OK) return fail("release", status);
  }
  polylock_lock_free(lock);
  polylock_client_free(client);
  return 0;
}
