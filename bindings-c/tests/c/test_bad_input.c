/*
 * The bad-input matrix, C column: every case gets a status (or the
 * documented accepted outcome) and loses nothing, on memory://. With
 * POLYLOCK_BAD_INPUT_RECORDS set, each case appends one JSON line
 * {"case", "lang": "c", "error"} to that file for tests/bad-input/table.py
 * (README "Bad input"). Run by bindings-c/tests/run-c-tests.sh, under
 * valgrind.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "polylock.h"

static int failures = 0;
static int checks = 0;
static char url[128];

#define CHECK(cond)                                                            \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, polylock_last_error());                         \
    }                                                                          \
  } while (0)

/* "POLYLOCK_" and the status's name in capitals. */
static void status_text(polylock_status status, char *out, size_t size) {
  const char *name = polylock_status_name((int32_t)status);
  size_t at = (size_t)snprintf(out, size, "POLYLOCK_");
  for (; *name && at + 1 < size; name++) out[at++] = (char)toupper((unsigned char)*name);
  out[at] = '\0';
}

static void record(const char *id, const char *error) {
  const char *path = getenv("POLYLOCK_BAD_INPUT_RECORDS");
  if (!path || !*path) return;
  FILE *file = fopen(path, "a");
  if (!file) {
    failures++;
    fprintf(stderr, "cannot open %s\n", path);
    return;
  }
  /* The texts are ours: no quote or backslash to escape. */
  fprintf(file, "{\"case\": \"%s\", \"lang\": \"c\", \"error\": \"%s\"}\n", id, error);
  fclose(file);
}

/* Checks that `got` is `expected` and records it under `id`. */
static void expect(const char *id, polylock_status got, polylock_status expected, int line) {
  checks++;
  if (got != expected) {
    failures++;
    fprintf(stderr, "%s:%d: %s: got %s, expected %s (last error: %s)\n", __FILE__, line, id,
            polylock_status_name((int32_t)got), polylock_status_name((int32_t)expected),
            polylock_last_error());
    return;
  }
  char text[64];
  status_text(got, text, sizeof text);
  record(id, text);
}
#define EXPECT(id, call, expected) expect((id), (call), (expected), __LINE__)

static unsigned next_name = 0;
static void unique(char *out, size_t size, const char *base) {
  snprintf(out, size, "c-bad/%d/%s/%u", (int)getpid(), base, next_name++);
}

static void sleep_ms(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* A lock handle on a fresh name, or NULL (a failed check). */
static polylock_lock *new_lock(polylock_client *client, const char *base, uint32_t limit,
                               uint64_t ttl_ms) {
  char name[128];
  unique(name, sizeof name, base);
  polylock_lock *lock = NULL;
  polylock_status status = polylock_lock_new(client, name, limit, ttl_ms, NULL, &lock);
  CHECK(status == POLYLOCK_OK);
  return status == POLYLOCK_OK ? lock : NULL;
}

/* A held lease and its client: `witness_check` proves it is still held and
 * that a fresh lock of the client still works. */
static polylock_client *witness_client;
static polylock_lock *witness_lock;

static void witness_check(void) {
  CHECK(polylock_is_held(witness_lock));
  polylock_lock *lock = new_lock(witness_client, "after", 1, 0);
  bool acquired = false;
  CHECK(polylock_try_acquire(lock, &acquired) == POLYLOCK_OK && acquired);
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
}

static void test_names(void) {
  char too_long[258];
  memset(too_long, 'a', 257);
  too_long[257] = '\0';
  const struct {
    const char *id;
    const char *name;
  } cases[] = {
      {"name-empty", ""},
      {"name-too-long", too_long},
      {"name-control-char", "bad\nname"},
      {"name-non-utf8", "bad\xff\xfename"},
      {"name-null", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    polylock_lock *lock = (polylock_lock *)0x1;
    EXPECT(cases[i].id, polylock_lock_new(witness_client, cases[i].name, 1, 0, NULL, &lock),
           POLYLOCK_INVALID_ARGUMENT);
    CHECK(lock == (polylock_lock *)0x1); /* *out left unchanged */
    witness_check();
  }
  /* A 10 MB name, and a 10 MB holder value. */
  size_t huge = 10u << 20;
  char *text = malloc(huge + 1);
  memset(text, 'v', huge);
  text[huge] = '\0';
  polylock_lock *lock = NULL;
  EXPECT("value-huge", polylock_lock_new(witness_client, text, 1, 0, NULL, &lock),
         POLYLOCK_INVALID_ARGUMENT);
  EXPECT("value-huge", polylock_lock_new(witness_client, "c-bad/huge-value", 1, 0, text, &lock),
         POLYLOCK_INVALID_ARGUMENT);
  free(text);
  /* A NULL out-pointer. */
  EXPECT("out-null", polylock_lock_new(witness_client, "c-bad/out-null", 1, 0, NULL, NULL),
         POLYLOCK_INVALID_ARGUMENT);
  witness_check();
}

static void test_urls(void) {
  const struct {
    const char *id;
    const char *url;
  } cases[] = {
      {"url-null", NULL},
      {"url-invalid", "not a url"},
      {"url-invalid", "memory://\xff\xfe"},
      {"url-unknown-scheme", "nosuch://host"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    polylock_client *client = NULL;
    EXPECT(cases[i].id, polylock_client_new(cases[i].url, &client), POLYLOCK_INVALID_ARGUMENT);
    CHECK(client == NULL);
    witness_check();
  }
  EXPECT("out-null", polylock_client_new("memory://", NULL), POLYLOCK_INVALID_ARGUMENT);
}

static void test_ttls_limits_timeouts(void) {
  polylock_lock *lock = NULL;
  EXPECT("ttl-too-large", polylock_lock_new(witness_client, "c-bad/ttl", 1, UINT64_MAX, NULL, &lock),
         POLYLOCK_INVALID_ARGUMENT);
  EXPECT("ttl-too-large", polylock_lock_new(witness_client, "c-bad/ttl", 1, 86400001, NULL, &lock),
         POLYLOCK_INVALID_ARGUMENT);
  EXPECT("limit-zero", polylock_lock_new(witness_client, "c-bad/limit", 0, 0, NULL, &lock),
         POLYLOCK_INVALID_ARGUMENT);
  witness_check();

  /* ttl_ms 0 is documented as the default TTL: accepted. */
  lock = new_lock(witness_client, "ttl-zero", 1, 0);
  CHECK(polylock_acquire(lock, 1000) == POLYLOCK_OK);
  CHECK(polylock_time_to_expiration_ms(lock) > 10000);
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
  record("ttl-zero", "ok (0 = the default TTL)");

  /* The largest limit is a valid semaphore. */
  lock = new_lock(witness_client, "limit-huge", UINT32_MAX, 0);
  bool acquired = false;
  CHECK(polylock_try_acquire(lock, &acquired) == POLYLOCK_OK && acquired);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
  record("limit-huge", "ok (a semaphore of 4294967295)");

  /* A negative timeout is documented as "no limit": accepted. */
  lock = new_lock(witness_client, "timeout", 1, 0);
  CHECK(polylock_acquire(lock, -1) == POLYLOCK_OK);
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  CHECK(polylock_acquire(lock, INT64_MIN) == POLYLOCK_OK);
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
  record("timeout-negative", "ok (negative = no limit)");
  witness_check();
}

static void on_lost(void *user_data, const polylock_lost_event *event) {
  (void)event;
  atomic_fetch_add((atomic_int *)user_data, 1);
}

static void test_releases(void) {
  polylock_lock *lock = new_lock(witness_client, "double", 1, 0);
  CHECK(polylock_acquire(lock, 1000) == POLYLOCK_OK);
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  EXPECT("double-release", polylock_release(lock), POLYLOCK_NOT_HELD);
  bool acquired = false;
  CHECK(polylock_try_acquire(lock, &acquired) == POLYLOCK_OK && acquired);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);

  /* No operator view in the C ABI: a lease the caller renews expires. */
  lock = new_lock(witness_client, "expired", 1, 1000);
  CHECK(polylock_lock_set_auto_renew(lock, false) == POLYLOCK_OK);
  /* Proven-held ends a safety margin before the loss is reported: wait for
   * the report (the lost callback). */
  atomic_int lost = 0;
  CHECK(polylock_on_lost(lock, on_lost, &lost, NULL) == POLYLOCK_OK);
  CHECK(polylock_acquire(lock, 1000) == POLYLOCK_OK);
  for (int i = 0; i < 500 && atomic_load(&lost) == 0; i++) sleep_ms(20);
  CHECK(atomic_load(&lost) == 1);
  CHECK(!polylock_is_held(lock));
  EXPECT("release-after-loss", polylock_release(lock), POLYLOCK_LOST);
  /* Lost is declared a safety margin before the backend's expiry. */
  CHECK(polylock_acquire(lock, 2000) == POLYLOCK_OK);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
  witness_check();
}

static void test_handles(void) {
  polylock_client *client = NULL;
  CHECK(polylock_client_new(url, &client) == POLYLOCK_OK);
  polylock_lock *lock = new_lock(client, "closed", 1, 0);
  CHECK(polylock_client_free(client) == POLYLOCK_OK);
  /* The lock keeps the client's connection (documented). */
  CHECK(polylock_acquire(lock, 1000) == POLYLOCK_OK);
  CHECK(polylock_is_held(lock));
  CHECK(polylock_release(lock) == POLYLOCK_OK);
  record("use-after-close", "ok (the lock keeps its client)");
  polylock_lock *other = NULL;
  EXPECT("handle-freed", polylock_lock_new(client, "c-bad/freed", 1, 0, NULL, &other),
         POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-freed", polylock_client_free(client), POLYLOCK_INVALID_HANDLE);
  CHECK(polylock_lock_free(lock) == POLYLOCK_OK);
  EXPECT("handle-freed", polylock_acquire(lock, 0), POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-freed", polylock_release(lock), POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-freed", polylock_lock_free(lock), POLYLOCK_INVALID_HANDLE);
  CHECK(!polylock_is_held(lock));

  /* Pointers polylock never handed out, and one kind's handle as another. */
  int local = 0;
  polylock_lock *foreign[] = {(polylock_lock *)&local, (polylock_lock *)(uintptr_t)0x1234,
                              (polylock_lock *)(uintptr_t)UINTPTR_MAX,
                              (polylock_lock *)witness_client};
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    bool acquired = false;
    EXPECT("handle-foreign", polylock_try_acquire(foreign[i], &acquired), POLYLOCK_INVALID_HANDLE);
    EXPECT("handle-foreign", polylock_release(foreign[i]), POLYLOCK_INVALID_HANDLE);
    EXPECT("handle-foreign", polylock_lock_free(foreign[i]), POLYLOCK_INVALID_HANDLE);
  }
  EXPECT("handle-foreign", polylock_client_free((polylock_client *)witness_lock),
         POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-foreign", polylock_client_free((polylock_client *)&local), POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-null", polylock_release(NULL), POLYLOCK_INVALID_HANDLE);
  EXPECT("handle-null", polylock_client_free(NULL), POLYLOCK_INVALID_HANDLE);
  witness_check();
}

static polylock_lock *shared_lock;
static atomic_int held_count;
static atomic_int usage_count;
static atomic_int other_count;

static void *contend(void *arg) {
  (void)arg;
  polylock_status status = polylock_acquire(shared_lock, 200);
  if (status == POLYLOCK_OK)
    atomic_fetch_add(&held_count, 1);
  else if (status == POLYLOCK_USAGE)
    atomic_fetch_add(&usage_count, 1);
  else
    atomic_fetch_add(&other_count, 1);
  return NULL;
}

static void test_threads(void) {
  shared_lock = new_lock(witness_client, "threads", 1, 0);
  enum { THREADS = 16 };
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, contend, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  CHECK(atomic_load(&held_count) == 1);
  CHECK(atomic_load(&usage_count) == THREADS - 1);
  CHECK(atomic_load(&other_count) == 0);
  CHECK(polylock_is_held(shared_lock));
  CHECK(polylock_release(shared_lock) == POLYLOCK_OK);
  CHECK(polylock_lock_free(shared_lock) == POLYLOCK_OK);
  if (atomic_load(&usage_count) == THREADS - 1) record("threads-one-handle", "POLYLOCK_USAGE");
  witness_check();
}

int main(void) {
  snprintf(url, sizeof url, "memory://c-bad-%d", (int)getpid());
  CHECK(polylock_client_new(url, &witness_client) == POLYLOCK_OK);
  witness_lock = new_lock(witness_client, "held", 1, 0);
  bool acquired = false;
  CHECK(polylock_try_acquire(witness_lock, &acquired) == POLYLOCK_OK && acquired);

  test_names();
  test_urls();
  test_ttls_limits_timeouts();
  test_releases();
  test_handles();
  test_threads();

  CHECK(polylock_release(witness_lock) == POLYLOCK_OK);
  CHECK(polylock_lock_free(witness_lock) == POLYLOCK_OK);
  CHECK(polylock_client_free(witness_client) == POLYLOCK_OK);
  printf("# C ABI on %s (bad input): %d checks, %d failed\n", url, checks, failures);
  return failures == 0 ? 0 : 1;
}
