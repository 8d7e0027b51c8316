/*
 * The C ABI test program: the API, the bad-input matrix, lost callbacks and
 * threads, handles never reused, cancelling a pending acquire (after its
 * wait-started hook, and racing a grant), freeing a client and its lock in
 * either order, against the backend URL in argv[1] (default memory://).
 * Run by bindings-c/tests/run-c-tests.sh, under valgrind.
 *
 * On consul://, a release that fails while the connection is cut is
 * retried: the client talks to Consul through tests/support/cut_proxy.py
 * ($POLYLOCK_CUT_PROXY, which the runner sets), spawned with pipes on its
 * stdin and stdout.
 *
 * Loss is caused behind the client's back where the test can: on Consul by
 * destroying the session through the HTTP API (curl); on LDLM by releasing
 * the lease by its key with the polylock CLI (`polylock --url URL release
 * NAME --holder KEY`; the binary is $POLYLOCK_CLI, which the runner sets).
 *
 * What a backend cannot do is gated on its capabilities, as the core
 * declares them (polylock_client_capabilities).
 *
 * On ldlm://, the password and mTLS servers of tests/with-servers.sh are
 * checked too when their variables are set (POLYLOCK_TEST_LDLM_PASSWORD_URL,
 * POLYLOCK_TEST_LDLM_PASSWORD, POLYLOCK_TEST_LDLM_MTLS_URL,
 * POLYLOCK_TEST_LDLM_MTLS_CERTS).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "polylock.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                         \
  do {                                                                      \
    checks++;                                                               \
    if (!(cond)) {                                                          \
      failures++;                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",         \
              __FILE__, __LINE__, #cond, polylock_last_error());            \
    }                                                                       \
  } while (0)

#define CHECK_STATUS(call, expected)                                        \
  do {                                                                      \
    polylock_status got_ = (call);                                          \
    checks++;                                                               \
    if (got_ != (expected)) {                                               \
      failures++;                                                           \
      fprintf(stderr, "%s:%d: %s gave %s, expected %s (last error: %s)\n", \
              __FILE__, __LINE__, #call, polylock_status_name(got_),        \
              polylock_status_name(expected), polylock_last_error());       \
    }                                                                       \
  } while (0)

static const char *url;
static char prefix[64];

/* What the backend of `url` can do (polylock_client_capabilities). */
static polylock_capabilities caps;

static bool has_scheme(const char *text, const char *scheme) {
  return strncmp(text, scheme, strlen(scheme)) == 0;
}

static bool is_ldlm(void) {
  return has_scheme(url, "ldlm://") || has_scheme(url, "ldlms://");
}

/* How far a mutex's fencing token moves from one holder to the next when
 * nobody took it in between (the first released, the next acquired on
 * another client), or 0 where that is not fixed. memory:// counts grants:
 * 1. MongoDB's token is the generation, and a release inserts the next
 * generation as its marker: 2. Consul's is the lock key's ModifyIndex, a
 * cluster-wide Raft index that any write moves: it only increases. */
static uint64_t token_step(void) {
  if (has_scheme(url, "memory://")) {
    return 1;
  }
  if (has_scheme(url, "mongodb://") || has_scheme(url, "mongodb+srv://")) {
    return 2;
  }
  return 0;
}

static void lock_name(char *buf, size_t len, const char *base) {
  snprintf(buf, len, "%s/%s", prefix, base);
}

static polylock_client *connect_client(void) {
  polylock_client *client = NULL;
  CHECK_STATUS(polylock_client_new(url, &client), POLYLOCK_OK);
  return client;
}

static polylock_lock *new_lock(polylock_client *client, const char *base,
                               uint32_t limit) {
  char name[128];
  lock_name(name, sizeof name, base);
  polylock_lock *lock = NULL;
  CHECK_STATUS(polylock_lock_new(client, name, limit, 15000, NULL, &lock),
               POLYLOCK_OK);
  return lock;
}

static void test_static_strings(void) {
  CHECK(strlen(polylock_version()) > 0);
  CHECK(strcmp(polylock_status_name(POLYLOCK_TIMEOUT), "timeout") == 0);
  CHECK(strcmp(polylock_status_name(POLYLOCK_INVALID_HANDLE),
               "invalid_handle") == 0);
  CHECK(strcmp(polylock_status_name(POLYLOCK_CANCELLED), "cancelled") == 0);
  CHECK(POLYLOCK_CANCELLED == POLYLOCK_PANIC + 1);
  CHECK(strcmp(polylock_status_name(9999), "unknown") == 0);
  CHECK(polylock_last_error() != NULL);
}

static void test_bad_input(polylock_client *client) {
  polylock_client *other = NULL;
  polylock_lock *lock = NULL;
  bool flag = false;
  uint64_t token = 0;

  /* Clients. */
  CHECK_STATUS(polylock_client_new(NULL, &other), POLYLOCK_INVALID_ARGUMENT);
  CHECK(strstr(polylock_last_error(), "url") != NULL);
  CHECK_STATUS(polylock_client_new(url, NULL), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_client_new("memory://\xff\xfe", &other),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK(strstr(polylock_last_error(), "UTF-8") != NULL);
  CHECK_STATUS(polylock_client_new("nope://x", &other),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK(other == NULL);
  CHECK_STATUS(polylock_client_free(NULL), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_client_free((polylock_client *)&flag),
               POLYLOCK_INVALID_HANDLE);

  /* Lock handles. */
  CHECK_STATUS(polylock_lock_new(NULL, "a", 1, 0, NULL, &lock),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_new(client, NULL, 1, 0, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "bad name!", 1, 0, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "", 1, 0, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "caf\xc3", 1, 0, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "ok", 0, 0, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "ok", 1, 10, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "ok", 1, 90000000, NULL, &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "ok", 1, 0, "\xff", &lock),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_lock_new(client, "ok", 1, 0, NULL, NULL),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK(lock == NULL);

  /* Calls on NULL handles. */
  CHECK_STATUS(polylock_try_acquire(NULL, &flag), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_acquire(NULL, 10), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_acquire_with(NULL, 10, NULL, NULL),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_acquire_cancel(NULL), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_renew(NULL), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_release(NULL), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_fencing_token(NULL, &flag, &token),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_free(NULL), POLYLOCK_INVALID_HANDLE);
  CHECK(!polylock_is_held(NULL));
  CHECK(!polylock_needs_renew(NULL));
  CHECK(polylock_time_to_expiration_ms(NULL) == 0);
  polylock_string_free(NULL);

  /* NULL out-pointers on a live handle. */
  lock = new_lock(client, "bad-outs", 1);
  CHECK_STATUS(polylock_try_acquire(lock, NULL), POLYLOCK_INVALID_ARGUMENT);
  CHECK(!polylock_is_held(lock));
  CHECK_STATUS(polylock_fencing_token(lock, NULL, &token),
               POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_holder(lock, NULL), POLYLOCK_INVALID_ARGUMENT);

  /* Nothing held yet. */
  CHECK_STATUS(polylock_release(lock), POLYLOCK_NOT_HELD);
  CHECK_STATUS(polylock_renew(lock), POLYLOCK_NOT_HELD);
  CHECK_STATUS(polylock_fencing_token(lock, &flag, &token), POLYLOCK_NOT_HELD);

  /* Double free and use after free of a lock handle. */
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_try_acquire(lock, &flag), POLYLOCK_INVALID_HANDLE);
  CHECK(strstr(polylock_last_error(), "not a live handle") != NULL);

  /* A freed client. */
  other = connect_client();
  CHECK_STATUS(polylock_client_free(other), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(other), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_new(other, "ok", 1, 0, NULL, &lock),
               POLYLOCK_INVALID_HANDLE);
}

static void test_mutex(polylock_client *a, polylock_client *b) {
  polylock_lock *mine = new_lock(a, "mutex", 1);
  polylock_lock *theirs = new_lock(b, "mutex", 1);
  bool acquired = false, has_token = false;
  uint64_t first = 0, second = 0;

  CHECK_STATUS(polylock_try_acquire(mine, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK(polylock_is_held(mine));
  CHECK(polylock_time_to_expiration_ms(mine) > 0);
  CHECK(polylock_time_to_expiration_ms(mine) <= 15000);
  CHECK_STATUS(polylock_fencing_token(mine, &has_token, &first), POLYLOCK_OK);
  CHECK(has_token == caps.fencing);
  char *holder = NULL;
  CHECK_STATUS(polylock_holder(mine, &holder), POLYLOCK_OK);
  CHECK(holder != NULL && strlen(holder) > 0);
  polylock_string_free(holder);

  /* One handle, one lease. */
  CHECK_STATUS(polylock_try_acquire(mine, &acquired), POLYLOCK_USAGE);

  CHECK_STATUS(polylock_try_acquire(theirs, &acquired), POLYLOCK_OK);
  CHECK(!acquired);
  CHECK(!polylock_is_held(theirs));
  CHECK_STATUS(polylock_acquire(theirs, 200), POLYLOCK_TIMEOUT);
  CHECK_STATUS(polylock_renew(mine), POLYLOCK_OK);
  CHECK_STATUS(polylock_release(mine), POLYLOCK_OK);
  CHECK(!polylock_is_held(mine));
  CHECK_STATUS(polylock_release(mine), POLYLOCK_NOT_HELD);

  CHECK_STATUS(polylock_acquire(theirs, 10000), POLYLOCK_OK);
  CHECK_STATUS(polylock_fencing_token(theirs, &has_token, &second),
               POLYLOCK_OK);
  CHECK(has_token == caps.fencing);
  if (caps.fencing) {
    CHECK(second > first);
  }
  /* Freeing a handle that holds its lease releases it. */
  CHECK_STATUS(polylock_lock_free(theirs), POLYLOCK_OK);
  CHECK_STATUS(polylock_acquire(mine, 10000), POLYLOCK_OK);
  CHECK_STATUS(polylock_release(mine), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(mine), POLYLOCK_OK);
}

static void test_semaphore(polylock_client *a, polylock_client *b,
                           polylock_client *c) {
  polylock_lock *one = new_lock(a, "semaphore", 2);
  polylock_lock *two = new_lock(b, "semaphore", 2);
  polylock_lock *three = new_lock(c, "semaphore", 2);
  polylock_lock *other_limit = new_lock(c, "semaphore", 3);
  bool acquired = false;
  CHECK_STATUS(polylock_try_acquire(one, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_try_acquire(two, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_try_acquire(three, &acquired), POLYLOCK_OK);
  CHECK(!acquired);
  CHECK_STATUS(polylock_try_acquire(other_limit, &acquired),
               POLYLOCK_LIMIT_MISMATCH);
  CHECK_STATUS(polylock_release(one), POLYLOCK_OK);
  CHECK_STATUS(polylock_acquire(three, 10000), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(one), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(two), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(three), POLYLOCK_OK);
  /* Idle now: most backends let it take another limit at once; LDLM keeps
   * the limit until its garbage collection forgets the idle lock (minutes
   * with the server's defaults). */
  if (caps.idle_limit_resets) {
    CHECK_STATUS(polylock_try_acquire(other_limit, &acquired), POLYLOCK_OK);
    CHECK(acquired);
    CHECK_STATUS(polylock_release(other_limit), POLYLOCK_OK);
  } else {
    CHECK_STATUS(polylock_try_acquire(other_limit, &acquired),
                 POLYLOCK_LIMIT_MISMATCH);
    CHECK(!polylock_is_held(other_limit));
  }
  CHECK_STATUS(polylock_lock_free(other_limit), POLYLOCK_OK);
}

/* ---- lost callbacks ---- */

struct lost_record {
  pthread_mutex_t mutex;
  pthread_cond_t changed;
  int calls;
  int frees;
  bool has_token;
  char name[160];
  char holder[160];
  char reason[256];
  polylock_lock *free_me; /* freed from inside the callback when set */
  polylock_status free_status;
};

static struct lost_record *record_new(void) {
  struct lost_record *record = calloc(1, sizeof *record);
  pthread_mutex_init(&record->mutex, NULL);
  pthread_cond_init(&record->changed, NULL);
  return record;
}

static void record_destroy(struct lost_record *record) {
  pthread_mutex_destroy(&record->mutex);
  pthread_cond_destroy(&record->changed);
  free(record);
}

static void on_lost(void *user_data, const polylock_lost_event *event) {
  struct lost_record *record = user_data;
  polylock_status freed = POLYLOCK_OK;
  if (record->free_me) {
    freed = polylock_lock_free(record->free_me);
  }
  pthread_mutex_lock(&record->mutex);
  record->calls++;
  record->free_status = freed;
  record->has_token = event->has_fencing_token;
  snprintf(record->name, sizeof record->name, "%s", event->name);
  snprintf(record->holder, sizeof record->holder, "%s", event->holder);
  snprintf(record->reason, sizeof record->reason, "%s", event->reason);
  pthread_cond_broadcast(&record->changed);
  pthread_mutex_unlock(&record->mutex);
}

static void on_free(void *user_data) {
  struct lost_record *record = user_data;
  pthread_mutex_lock(&record->mutex);
  record->frees++;
  pthread_cond_broadcast(&record->changed);
  pthread_mutex_unlock(&record->mutex);
}

/* Waits (at most 60 s) until `*counter` (a field of `record`) reaches `n`. */
static bool await_count(struct lost_record *record, const int *counter, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 60;
  pthread_mutex_lock(&record->mutex);
  while (*counter < n) {
    if (pthread_cond_timedwait(&record->changed, &record->mutex, &deadline) ==
        ETIMEDOUT) {
      break;
    }
  }
  bool reached = *counter >= n;
  pthread_mutex_unlock(&record->mutex);
  return reached;
}

/* Destroys a Consul session behind its client's back. */
static bool destroy_consul_session(const char *session) {
  char command[512];
  snprintf(command, sizeof command,
           "curl -sf -o /dev/null -X PUT http://%s/v1/session/destroy/%s",
           url + strlen("consul://"), session);
  return system(command) == 0;
}

/* Releases an LDLM lease by its key behind its client's back, with the
 * polylock CLI (exit 0: released). Names, keys and the test URLs are made of
 * characters that need no quoting beyond single quotes. */
static bool revoke_ldlm_lease(const char *name, const char *key) {
  const char *cli = getenv("POLYLOCK_CLI");
  if (cli == NULL || *cli == '\0') {
    fprintf(stderr, "POLYLOCK_CLI (the polylock binary) is not set\n");
    return false;
  }
  char command[1024];
  snprintf(command, sizeof command,
           "'%s' --url '%s' release '%s' --holder '%s' >/dev/null", cli, url,
           name, key);
  int status = system(command);
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Takes the lease of `lock` away from its client: true if done. */
static bool revoke(polylock_lock *lock, const char *base) {
  char *holder = NULL;
  if (polylock_holder(lock, &holder) != POLYLOCK_OK) {
    return false;
  }
  char name[160];
  lock_name(name, sizeof name, base);
  bool done = has_scheme(url, "consul://") ? destroy_consul_session(holder)
                                           : revoke_ldlm_lease(name, holder);
  polylock_string_free(holder);
  return done;
}

static void test_lost_callbacks(polylock_client *client) {
  if (!has_scheme(url, "consul://") && !is_ldlm()) {
    printf("# lost callbacks: skipped (needs a backend the test can revoke "
           "on: consul://, ldlm://)\n");
    return;
  }
  polylock_lock *watched = new_lock(client, "lost-watched", 1);
  polylock_lock *self_freeing = new_lock(client, "lost-self-freeing", 1);
  struct lost_record *first = record_new();
  struct lost_record *second = record_new();
  struct lost_record *replaced = record_new();
  bool acquired = false;

  /* A registration replaced before any loss is freed at once, unused. */
  CHECK_STATUS(polylock_on_lost(watched, on_lost, replaced, on_free),
               POLYLOCK_OK);
  CHECK_STATUS(polylock_on_lost(watched, on_lost, first, on_free),
               POLYLOCK_OK);
  CHECK(replaced->frees == 1 && replaced->calls == 0);
  record_destroy(replaced);

  second->free_me = self_freeing;
  CHECK_STATUS(polylock_on_lost(self_freeing, on_lost, second, on_free),
               POLYLOCK_OK);
  CHECK_STATUS(polylock_try_acquire(watched, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_try_acquire(self_freeing, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  char *watched_holder = NULL;
  CHECK_STATUS(polylock_holder(watched, &watched_holder), POLYLOCK_OK);

  if (has_scheme(url, "consul://")) {
    /* Both leases share the client's session: destroying it loses both. */
    CHECK(revoke(watched, "lost-watched"));
  } else {
    /* LDLM: every lease has its own key; the keeper's next renewal finds
     * it gone. */
    CHECK(revoke(watched, "lost-watched"));
    CHECK(revoke(self_freeing, "lost-self-freeing"));
  }

  CHECK(await_count(first, &first->calls, 1));
  CHECK(await_count(second, &second->calls, 1));
  char expected[160];
  lock_name(expected, sizeof expected, "lost-watched");
  CHECK(strcmp(first->name, expected) == 0);
  CHECK(watched_holder != NULL && strcmp(first->holder, watched_holder) == 0);
  polylock_string_free(watched_holder);
  CHECK(first->has_token == caps.fencing);
  CHECK(strlen(first->reason) > 0);
  CHECK(!polylock_is_held(watched));
  CHECK(polylock_time_to_expiration_ms(watched) == 0);

  /* The handle freed from its own callback: its user_data is freed once,
   * right after the callback returns; then the handle is gone. */
  CHECK(await_count(second, &second->frees, 1));
  CHECK(second->free_status == POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(self_freeing), POLYLOCK_INVALID_HANDLE);

  /* Release after loss, then double release. */
  CHECK_STATUS(polylock_release(watched), POLYLOCK_LOST);
  CHECK_STATUS(polylock_release(watched), POLYLOCK_NOT_HELD);

  /* Freeing the handle frees the registration exactly once; no more calls. */
  CHECK(first->frees == 0);
  CHECK_STATUS(polylock_lock_free(watched), POLYLOCK_OK);
  CHECK(first->frees == 1);
  CHECK(first->calls == 1);
  CHECK(second->calls == 1);
  record_destroy(first);
  record_destroy(second);
}

/* ---- threads ---- */

struct contender {
  polylock_client *client;
  atomic_int *inside;
  atomic_int *overlaps;
  int rounds;
};

static void *contend(void *arg) {
  struct contender *c = arg;
  polylock_lock *lock = new_lock(c->client, "threads", 1);
  for (int i = 0; i < c->rounds; i++) {
    if (polylock_acquire(lock, 60000) != POLYLOCK_OK) {
      atomic_fetch_add(c->overlaps, 1000);
      break;
    }
    if (atomic_fetch_add(c->inside, 1) != 0) {
      atomic_fetch_add(c->overlaps, 1);
    }
    atomic_fetch_sub(c->inside, 1);
    if (polylock_release(lock) != POLYLOCK_OK) {
      atomic_fetch_add(c->overlaps, 1000);
    }
  }
  polylock_lock_free(lock);
  return NULL;
}

static void test_threads(void) {
  enum { THREADS = 4, ROUNDS = 10 };
  atomic_int inside = 0, overlaps = 0;
  pthread_t threads[THREADS];
  struct contender contenders[THREADS];
  for (int i = 0; i < THREADS; i++) {
    contenders[i] = (struct contender){connect_client(), &inside, &overlaps,
                                       ROUNDS};
    pthread_create(&threads[i], NULL, contend, &contenders[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK_STATUS(polylock_client_free(contenders[i].client), POLYLOCK_OK);
  }
  CHECK(atomic_load(&overlaps) == 0);
}

static void test_registry(polylock_client *a, polylock_client *b) {
  char ns[128];
  lock_name(ns, sizeof ns, "registry");
  CHECK_STATUS(polylock_register(a, ns, "db", "10.0.0.5:5432"), POLYLOCK_OK);
  char *value = NULL;
  char *json = NULL;
  if (caps.inspection) {
    CHECK_STATUS(polylock_whereis(b, ns, "db", &value), POLYLOCK_OK);
    CHECK(value != NULL && strcmp(value, "10.0.0.5:5432") == 0);
    polylock_string_free(value);
    value = (char *)1;
    CHECK_STATUS(polylock_whereis(b, ns, "nobody", &value), POLYLOCK_OK);
    CHECK(value == NULL);
    CHECK_STATUS(polylock_register(b, ns, "db", "elsewhere"),
                 POLYLOCK_CONFLICT);
    CHECK(strstr(polylock_last_error(), "10.0.0.5:5432") != NULL);
    CHECK_STATUS(polylock_registry_list(b, ns, &json), POLYLOCK_OK);
    CHECK(json != NULL && strcmp(json, "{\"db\":\"10.0.0.5:5432\"}") == 0);
    polylock_string_free(json);
  } else {
    /* No inspection (LDLM): registering and the conflict work, looking a
     * name up or listing is refused, and nothing is written out. */
    value = (char *)1;
    CHECK_STATUS(polylock_whereis(b, ns, "db", &value),
                 POLYLOCK_INVALID_ARGUMENT);
    CHECK(value == (char *)1);
    CHECK_STATUS(polylock_register(b, ns, "db", "elsewhere"),
                 POLYLOCK_CONFLICT);
    CHECK(strstr(polylock_last_error(), "another client") != NULL);
    CHECK_STATUS(polylock_registry_list(b, ns, &json),
                 POLYLOCK_INVALID_ARGUMENT);
    CHECK(json == NULL);
  }
  CHECK_STATUS(polylock_unregister(b, ns, "db"), POLYLOCK_NOT_HELD);
  CHECK_STATUS(polylock_unregister(a, ns, "db"), POLYLOCK_OK);
  if (caps.inspection) {
    CHECK_STATUS(polylock_whereis(b, ns, "db", &value), POLYLOCK_OK);
    CHECK(value == NULL);
  }
  /* Unregistered: the name is free for another client. */
  CHECK_STATUS(polylock_register(b, ns, "db", "elsewhere"), POLYLOCK_OK);
  CHECK_STATUS(polylock_unregister(b, ns, "db"), POLYLOCK_OK);
  /* Bad input: NULLs, bad names, non-UTF-8. */
  CHECK_STATUS(polylock_register(a, NULL, "db", "x"), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_register(a, ns, "a//b", "x"), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_register(a, ns, "db", "\xff"), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_whereis(a, ns, "db", NULL), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_registry_list(NULL, ns, &json), POLYLOCK_INVALID_HANDLE);
}

/* A client freed while it holds a registration: the registration stays
 * (held until the end of the process), and the client is kept reachable,
 * not leaked (valgrind's leak check fails this program otherwise; found by
 * bindings-c/tests/fuzz). */
static void test_registry_outlives_client(polylock_client *b) {
  char ns[128];
  lock_name(ns, sizeof ns, "registry-kept");
  polylock_client *a = connect_client();
  CHECK_STATUS(polylock_register(a, ns, "svc", "kept"), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(a), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(a), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_register(b, ns, "svc", "elsewhere"), POLYLOCK_CONFLICT);
  /* Registered and unregistered: nothing is kept. */
  polylock_client *c = connect_client();
  CHECK_STATUS(polylock_register(c, ns, "gone", "x"), POLYLOCK_OK);
  CHECK_STATUS(polylock_unregister(c, ns, "gone"), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(c), POLYLOCK_OK);
  CHECK_STATUS(polylock_register(b, ns, "gone", "y"), POLYLOCK_OK);
  CHECK_STATUS(polylock_unregister(b, ns, "gone"), POLYLOCK_OK);
}

/* ---- signals between threads (no sleeps) ---- */

/* A one-shot event another thread raises; waited for with a bound. */
struct signal {
  pthread_mutex_t mutex;
  pthread_cond_t raised_cond;
  bool raised;
};

static void signal_init(struct signal *s) {
  pthread_mutex_init(&s->mutex, NULL);
  pthread_cond_init(&s->raised_cond, NULL);
  s->raised = false;
}

static void signal_destroy(struct signal *s) {
  pthread_mutex_destroy(&s->mutex);
  pthread_cond_destroy(&s->raised_cond);
}

static void signal_raise(struct signal *s) {
  pthread_mutex_lock(&s->mutex);
  s->raised = true;
  pthread_cond_broadcast(&s->raised_cond);
  pthread_mutex_unlock(&s->mutex);
}

/* Waits (at most 60 s) for the signal: true if it was raised. */
static bool signal_wait(struct signal *s) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 60;
  pthread_mutex_lock(&s->mutex);
  while (!s->raised) {
    if (pthread_cond_timedwait(&s->raised_cond, &s->mutex, &deadline) ==
        ETIMEDOUT) {
      break;
    }
  }
  bool raised = s->raised;
  pthread_mutex_unlock(&s->mutex);
  return raised;
}

/* A polylock_acquire_with running in its own thread. */
struct waiter {
  polylock_lock *lock;
  int64_t timeout_ms;
  pthread_t thread;
  struct signal parked;   /* the wait-started hook ran */
  struct signal finished; /* the call returned */
  atomic_bool done;
  polylock_status status;
  char message[256]; /* the call's polylock_last_error(), on its thread */
  bool cancel_in_hook; /* the hook cancels the acquisition it reports */
  polylock_status hook_status;
};

static void on_wait_started(void *user_data) {
  struct waiter *w = user_data;
  if (w->cancel_in_hook) {
    w->hook_status = polylock_acquire_cancel(w->lock);
  }
  signal_raise(&w->parked);
}

static void *run_waiter(void *arg) {
  struct waiter *w = arg;
  w->status = polylock_acquire_with(w->lock, w->timeout_ms, on_wait_started, w);
  snprintf(w->message, sizeof w->message, "%s", polylock_last_error());
  atomic_store(&w->done, true);
  signal_raise(&w->finished);
  return NULL;
}

static void waiter_start_hooked(struct waiter *w, polylock_lock *lock,
                                int64_t timeout_ms, bool cancel_in_hook) {
  w->lock = lock;
  w->timeout_ms = timeout_ms;
  w->status = POLYLOCK_PANIC;
  w->cancel_in_hook = cancel_in_hook;
  w->hook_status = POLYLOCK_PANIC;
  atomic_init(&w->done, false);
  signal_init(&w->parked);
  signal_init(&w->finished);
  pthread_create(&w->thread, NULL, run_waiter, w);
}

static void waiter_start(struct waiter *w, polylock_lock *lock,
                         int64_t timeout_ms) {
  waiter_start_hooked(w, lock, timeout_ms, false);
}

/* Waits (bounded) for the waiter's call to return: its status, or
 * POLYLOCK_PANIC (and the thread left running) if it did not. */
static polylock_status waiter_finish(struct waiter *w) {
  if (!signal_wait(&w->finished)) {
    fprintf(stderr, "%s:%d: an acquire did not return within 60 s\n",
            __FILE__, __LINE__);
    pthread_detach(w->thread);
    return POLYLOCK_PANIC;
  }
  pthread_join(w->thread, NULL);
  signal_destroy(&w->parked);
  signal_destroy(&w->finished);
  return w->status;
}

/* ---- handles are never reused ---- */

static void test_handles_never_reused(polylock_client *client) {
  enum { HANDLES = 100000, CLIENTS = 200 };
  char name[128];
  lock_name(name, sizeof name, "reuse");
  polylock_lock *stale = new_lock(client, "reuse", 1);
  CHECK_STATUS(polylock_lock_free(stale), POLYLOCK_OK);
  polylock_client *stale_client = connect_client();
  CHECK_STATUS(polylock_client_free(stale_client), POLYLOCK_OK);

  /* Many handles made and freed after them: none gets their value, as an
   * allocator's address would be handed out again. */
  int failed = 0, reused = 0;
  for (int i = 0; i < HANDLES; i++) {
    polylock_lock *lock = NULL;
    if (polylock_lock_new(client, name, 1, 15000, NULL, &lock) != POLYLOCK_OK) {
      failed++;
      continue;
    }
    reused += (void *)lock == (void *)stale || (void *)lock == (void *)stale_client;
    failed += polylock_lock_free(lock) != POLYLOCK_OK;
  }
  for (int i = 0; i < CLIENTS; i++) {
    polylock_client *other = NULL;
    if (polylock_client_new("memory://", &other) != POLYLOCK_OK) {
      failed++;
      continue;
    }
    reused += (void *)other == (void *)stale || (void *)other == (void *)stale_client;
    failed += polylock_client_free(other) != POLYLOCK_OK;
  }
  CHECK(failed == 0);
  CHECK(reused == 0);

  /* The stale pointers name nothing, with live handles of both kinds. */
  polylock_lock *live = new_lock(client, "reuse", 1);
  polylock_client *live_client = connect_client();
  polylock_lock *other = NULL;
  polylock_capabilities unused;
  bool flag = false;
  CHECK_STATUS(polylock_try_acquire(stale, &flag), POLYLOCK_INVALID_HANDLE);
  CHECK(strstr(polylock_last_error(), "freed already") != NULL);
  CHECK_STATUS(polylock_acquire(stale, 0), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_acquire_cancel(stale), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_release(stale), POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_free(stale), POLYLOCK_INVALID_HANDLE);
  CHECK(!polylock_is_held(stale));
  CHECK_STATUS(polylock_lock_new(stale_client, name, 1, 0, NULL, &other),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_client_capabilities(stale_client, &unused),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_client_free(stale_client), POLYLOCK_INVALID_HANDLE);
  CHECK(other == NULL);

  /* A handle of one kind is not a handle of another. */
  CHECK_STATUS(polylock_try_acquire((polylock_lock *)live_client, &flag),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_free((polylock_lock *)live_client),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_client_free((polylock_client *)live),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_new((polylock_client *)live, name, 1, 0, NULL,
                                 &other),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_try_acquire(live, &flag), POLYLOCK_OK);
  CHECK(flag);
  CHECK_STATUS(polylock_lock_free(live), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(live_client), POLYLOCK_OK);
}

/* ---- cancelling a pending acquisition ---- */

static void test_cancel_parked_wait(polylock_client *a, polylock_client *b,
                                    polylock_client *c) {
  polylock_lock *holder = new_lock(a, "cancel", 1);
  polylock_lock *waiting = new_lock(b, "cancel", 1);
  polylock_lock *next = new_lock(c, "cancel", 1);
  bool acquired = false, has_token = false;
  uint64_t held = 0, after = 0;
  CHECK_STATUS(polylock_try_acquire(holder, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_fencing_token(holder, &has_token, &held), POLYLOCK_OK);

  /* Nothing pending: a no-op. */
  CHECK_STATUS(polylock_acquire_cancel(waiting), POLYLOCK_OK);

  struct waiter w;
  waiter_start(&w, waiting, -1);
  /* The hook says the wait is parked; then cancel it. */
  CHECK(signal_wait(&w.parked));
  CHECK_STATUS(polylock_acquire_cancel(waiting), POLYLOCK_OK);
  CHECK_STATUS(waiter_finish(&w), POLYLOCK_CANCELLED);
  CHECK(strstr(w.message, "cancelled") != NULL);
  CHECK(!polylock_is_held(waiting));
  CHECK_STATUS(polylock_fencing_token(waiting, &has_token, &after),
               POLYLOCK_NOT_HELD);
  CHECK_STATUS(polylock_acquire_cancel(waiting), POLYLOCK_OK);

  /* The cancelled wait took nothing: the next grant follows the holder's. */
  CHECK_STATUS(polylock_release(holder), POLYLOCK_OK);
  CHECK_STATUS(polylock_acquire(next, 60000), POLYLOCK_OK);
  CHECK_STATUS(polylock_fencing_token(next, &has_token, &after), POLYLOCK_OK);
  CHECK(has_token == caps.fencing);
  if (caps.fencing) {
    CHECK(after > held);
  }
  if (caps.fencing && token_step() != 0) {
    CHECK(after == held + token_step());
    if (after != held + token_step()) {
      fprintf(stderr, "  holder's token %llu, next %llu\n",
              (unsigned long long)held, (unsigned long long)after);
    }
  }
  CHECK_STATUS(polylock_release(next), POLYLOCK_OK);

  /* The cancelled handle is idle: it acquires again. */
  CHECK_STATUS(polylock_acquire(waiting, 60000), POLYLOCK_OK);
  CHECK(polylock_is_held(waiting));
  CHECK_STATUS(polylock_release(waiting), POLYLOCK_OK);

  /* Cancelled from inside its own wait-started hook (for a canceller that
   * came before the acquisition began): the same outcome. */
  CHECK_STATUS(polylock_try_acquire(holder, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  waiter_start_hooked(&w, waiting, -1, true);
  CHECK_STATUS(waiter_finish(&w), POLYLOCK_CANCELLED);
  CHECK_STATUS(w.hook_status, POLYLOCK_OK);
  CHECK(!polylock_is_held(waiting));
  CHECK_STATUS(polylock_release(holder), POLYLOCK_OK);

  /* Freeing a handle ends its pending acquisition the same way. */
  CHECK_STATUS(polylock_try_acquire(holder, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  waiter_start(&w, waiting, -1);
  CHECK(signal_wait(&w.parked));
  CHECK_STATUS(polylock_lock_free(waiting), POLYLOCK_OK);
  CHECK_STATUS(waiter_finish(&w), POLYLOCK_CANCELLED);
  CHECK_STATUS(polylock_lock_free(holder), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(next), POLYLOCK_OK);
}

static void test_cancel_racing_grant(polylock_client *a, polylock_client *b) {
  /* LDLM's server-side wait costs a round trip and a lock timer per
   * cancelled call at worst: fewer rounds there. */
  int rounds = is_ldlm() ? 20 : 60;
  polylock_lock *lock = new_lock(a, "cancel-race", 1);
  polylock_lock *probe = new_lock(b, "cancel-race", 1);
  int granted = 0, cancelled = 0, other = 0;
  for (int round = 0; round < rounds; round++) {
    struct waiter w;
    waiter_start(&w, lock, -1);
    if (round % 2 == 0) {
      /* One cancel, at once: it may come before the acquisition began. */
      CHECK_STATUS(polylock_acquire_cancel(lock), POLYLOCK_OK);
    } else {
      /* Cancels until the call returns: one lands while it is pending. */
      for (long i = 0; i < 1000000 && !atomic_load(&w.done); i++) {
        polylock_acquire_cancel(lock);
      }
    }
    polylock_status status = waiter_finish(&w);
    if (status == POLYLOCK_OK) {
      granted++;
      CHECK(polylock_is_held(lock));
      CHECK_STATUS(polylock_release(lock), POLYLOCK_OK);
    } else if (status == POLYLOCK_CANCELLED) {
      cancelled++;
      CHECK(!polylock_is_held(lock));
    } else {
      other++;
      fprintf(stderr, "  round %d: %s (%s)\n", round,
              polylock_status_name(status), polylock_last_error());
    }
    /* Either way the lock is free again (a late grant is released). */
    CHECK_STATUS(polylock_acquire(probe, 60000), POLYLOCK_OK);
    CHECK_STATUS(polylock_release(probe), POLYLOCK_OK);
  }
  CHECK(other == 0);
  printf("# cancel racing a grant: %d rounds, %d granted, %d cancelled\n",
         rounds, granted, cancelled);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(probe), POLYLOCK_OK);
}

/* ---- a release that failed transiently is retried (Consul, cut proxy) ---- */

/* tests/support/cut_proxy.py in a child process: commands on its stdin,
 * answers on its stdout. */
struct proxy {
  pid_t pid;
  int to;   /* its stdin */
  int from; /* its stdout */
  char address[64];
};

/* Reads one line (without its newline) from `fd`, waiting at most 30 s. */
static bool read_line(int fd, char *buf, size_t len) {
  size_t used = 0;
  while (used + 1 < len) {
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    if (poll(&ready, 1, 30000) != 1) {
      return false;
    }
    char ch;
    ssize_t got = read(fd, &ch, 1);
    if (got != 1) {
      return false;
    }
    if (ch == '\n') {
      break;
    }
    buf[used++] = ch;
  }
  buf[used] = '\0';
  return true;
}

static bool proxy_start(struct proxy *p, const char *target) {
  const char *script = getenv("POLYLOCK_CUT_PROXY");
  if (script == NULL || *script == '\0') {
    fprintf(stderr, "POLYLOCK_CUT_PROXY (tests/support/cut_proxy.py) is not "
                    "set\n");
    return false;
  }
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) {
    return false;
  }
  p->pid = fork();
  if (p->pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execlp("python3", "python3", script, target, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  p->to = in[1];
  p->from = out[0];
  if (p->pid < 0) {
    return false;
  }
  char line[128];
  if (!read_line(p->from, line, sizeof line) ||
      strncmp(line, "listening ", strlen("listening ")) != 0) {
    return false;
  }
  snprintf(p->address, sizeof p->address, "%s", line + strlen("listening "));
  return true;
}

/* Sends `command` and waits for its `ok` answer. */
static bool proxy_command(struct proxy *p, const char *command) {
  char line[128], expected[128];
  snprintf(line, sizeof line, "%s\n", command);
  if (write(p->to, line, strlen(line)) != (ssize_t)strlen(line)) {
    return false;
  }
  snprintf(expected, sizeof expected, "ok %s", command);
  return read_line(p->from, line, sizeof line) && strcmp(line, expected) == 0;
}

/* Ends the proxy: end of stdin stops it. */
static void proxy_stop(struct proxy *p) {
  close(p->to);
  close(p->from);
  if (p->pid > 0) {
    waitpid(p->pid, NULL, 0);
  }
}

static void test_release_retry(void) {
  if (!has_scheme(url, "consul://")) {
    return;
  }
  /* consul://HOST:PORT[?...] → HOST:PORT */
  char target[128];
  snprintf(target, sizeof target, "%s", url + strlen("consul://"));
  target[strcspn(target, "/?")] = '\0';
  struct proxy p = {.pid = -1, .to = -1, .from = -1};
  bool started = proxy_start(&p, target);
  CHECK(started);
  if (!started) {
    proxy_stop(&p);
    return;
  }
  char through[160];
  snprintf(through, sizeof through, "consul://%s", p.address);
  polylock_client *client = NULL;
  CHECK_STATUS(polylock_client_new(through, &client), POLYLOCK_OK);
  char name[128];
  lock_name(name, sizeof name, "release-retry");
  polylock_lock *lock = NULL;
  CHECK_STATUS(polylock_lock_new(client, name, 1, 15000, NULL, &lock),
               POLYLOCK_OK);
  bool acquired = false;
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
  CHECK(acquired);

  CHECK(proxy_command(&p, "cut"));
  CHECK_STATUS(polylock_release(lock), POLYLOCK_CONNECTION);
  /* The lease stays in the handle, held (and renewed): retry works. */
  CHECK(polylock_is_held(lock));
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_USAGE);
  CHECK(proxy_command(&p, "restore"));
  CHECK_STATUS(polylock_release(lock), POLYLOCK_OK);
  CHECK(!polylock_is_held(lock));
  CHECK_STATUS(polylock_release(lock), POLYLOCK_NOT_HELD);

  /* Released for real: a client straight to Consul takes it at once. */
  polylock_client *direct = connect_client();
  polylock_lock *other = new_lock(direct, "release-retry", 1);
  CHECK_STATUS(polylock_try_acquire(other, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_lock_free(other), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(direct), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
  proxy_stop(&p);
}

/* ---- one lost callback per handle, for every lease ---- */

static void test_lost_once_per_lease(polylock_client *client) {
  if (!has_scheme(url, "consul://") && !is_ldlm()) {
    printf("# lost once per lease: skipped (needs a backend the test can "
           "revoke on: consul://, ldlm://)\n");
    return;
  }
  char name[128];
  lock_name(name, sizeof name, "lost-once");
  polylock_lock *lock = NULL;
  /* A short TTL: on LDLM the keeper's next renewal (a third of it) finds a
   * revoked lease gone. */
  uint64_t ttl_ms = is_ldlm() ? 3000 : 15000;
  CHECK_STATUS(polylock_lock_new(client, name, 1, ttl_ms, NULL, &lock),
               POLYLOCK_OK);
  struct lost_record *first = record_new();
  struct lost_record *second = record_new();
  bool acquired = false;
  CHECK_STATUS(polylock_on_lost(lock, on_lost, first, on_free), POLYLOCK_OK);
  /* Registered once, told of each of the handle's leases once. */
  for (int lease = 1; lease <= 3; lease++) {
    CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
    CHECK(acquired);
    CHECK(revoke(lock, "lost-once"));
    CHECK(await_count(first, &first->calls, lease));
    CHECK(!polylock_is_held(lock));
    CHECK_STATUS(polylock_release(lock), POLYLOCK_LOST);
    CHECK(first->calls == lease);
  }
  /* Replaced: the old registration's user_data is freed once, and only the
   * new one hears of the next loss. */
  CHECK_STATUS(polylock_on_lost(lock, on_lost, second, on_free), POLYLOCK_OK);
  CHECK(first->frees == 1);
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK(revoke(lock, "lost-once"));
  CHECK(await_count(second, &second->calls, 1));
  CHECK_STATUS(polylock_release(lock), POLYLOCK_LOST);
  /* Cleared: freed once; freeing the handle frees nothing more. */
  CHECK_STATUS(polylock_on_lost(lock, NULL, NULL, NULL), POLYLOCK_OK);
  CHECK(second->frees == 1);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK(first->calls == 3 && first->frees == 1);
  CHECK(second->calls == 1 && second->frees == 1);
  record_destroy(first);
  record_destroy(second);
}

/* ---- leases the caller renews (polylock_lock_set_auto_renew) ---- */

static void test_caller_renews(polylock_client *a, polylock_client *b) {
  char name[128];
  lock_name(name, sizeof name, "caller-renews");
  polylock_lock *lock = NULL;
  polylock_lock *other = NULL;
  CHECK_STATUS(polylock_lock_new(a, name, 1, 2000, NULL, &lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_new(b, name, 1, 2000, NULL, &other), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_set_auto_renew(NULL, false),
               POLYLOCK_INVALID_HANDLE);
  CHECK_STATUS(polylock_lock_set_auto_renew(lock, false), POLYLOCK_OK);
  struct lost_record *record = record_new();
  CHECK_STATUS(polylock_on_lost(lock, on_lost, record, on_free), POLYLOCK_OK);
  bool acquired = false;
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_renew(lock), POLYLOCK_OK);
  /* Not renewed again: the lease ends at its TTL, is reported lost and is
   * released, so the other client can take it. */
  CHECK(await_count(record, &record->calls, 1));
  CHECK(strstr(record->reason, "not renewed") != NULL);
  CHECK(!polylock_is_held(lock));
  CHECK_STATUS(polylock_acquire(other, 60000), POLYLOCK_OK);
  CHECK_STATUS(polylock_release(lock), POLYLOCK_LOST);
  CHECK_STATUS(polylock_release(other), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(other), POLYLOCK_OK);
  CHECK(record->frees == 1);
  record_destroy(record);
}

/* ---- freeing a client and its lock handle in either order ---- */

static void test_free_orders(void) {
  for (int lock_first = 0; lock_first < 2; lock_first++) {
    polylock_client *client = connect_client();
    polylock_lock *lock = new_lock(client, "free-order", 1);
    struct lost_record *record = record_new();
    bool acquired = false;
    CHECK_STATUS(polylock_on_lost(lock, on_lost, record, on_free),
                 POLYLOCK_OK);
    CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
    CHECK(acquired);
    if (lock_first) {
      CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
      CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
    } else {
      /* The lock handle keeps its client's connection: still usable. */
      CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
      CHECK(polylock_is_held(lock));
      CHECK_STATUS(polylock_renew(lock), POLYLOCK_OK);
      CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
    }
    CHECK(record->frees == 1);
    CHECK(record->calls == 0);
    record_destroy(record);
  }
  /* Released by the frees: the lock is free now. */
  polylock_client *client = connect_client();
  polylock_lock *lock = new_lock(client, "free-order", 1);
  CHECK_STATUS(polylock_acquire(lock, 60000), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
}

/* ---- LDLM credentials: password and client certificates ---- */

/* `ldlm://:PASSWORD@HOST:PORT` from `base` (`ldlm://HOST:PORT`). */
static void with_password(char *buf, size_t len, const char *base,
                          const char *password) {
  const char *rest = base + strlen("ldlm://");
  snprintf(buf, len, "ldlm://:%s@%s", password, rest);
}

static void test_ldlm_password(void) {
  const char *base = getenv("POLYLOCK_TEST_LDLM_PASSWORD_URL");
  const char *password = getenv("POLYLOCK_TEST_LDLM_PASSWORD");
  if (base == NULL || *base == '\0' || password == NULL || *password == '\0') {
    printf("# ldlm password: skipped (POLYLOCK_TEST_LDLM_PASSWORD_URL or "
           "POLYLOCK_TEST_LDLM_PASSWORD is not set)\n");
    return;
  }
  const char *wrong = "not-the-password-7f3a9c";
  char wrong_url[512], right_url[512];
  with_password(wrong_url, sizeof wrong_url, base, wrong);
  with_password(right_url, sizeof right_url, base, password);
  polylock_client *client = NULL;

  /* A wrong password, and none: refused at connect, the secrets unsaid. */
  CHECK_STATUS(polylock_client_new(wrong_url, &client), POLYLOCK_AUTH);
  CHECK(client == NULL);
  CHECK(strlen(polylock_last_error()) > 0);
  CHECK(strstr(polylock_last_error(), wrong) == NULL);
  CHECK(strstr(polylock_last_error(), password) == NULL);
  CHECK_STATUS(polylock_client_new(base, &client), POLYLOCK_AUTH);
  CHECK(client == NULL);
  CHECK(strstr(polylock_last_error(), password) == NULL);

  /* The right one: a lock works. */
  CHECK_STATUS(polylock_client_new(right_url, &client), POLYLOCK_OK);
  if (client == NULL) {
    return;
  }
  char name[128];
  lock_name(name, sizeof name, "password");
  polylock_lock *lock = NULL;
  bool acquired = false;
  CHECK_STATUS(polylock_lock_new(client, name, 1, 15000, NULL, &lock),
               POLYLOCK_OK);
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_renew(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_release(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
}

static void test_ldlm_mtls(void) {
  const char *base = getenv("POLYLOCK_TEST_LDLM_MTLS_URL");
  const char *certs = getenv("POLYLOCK_TEST_LDLM_MTLS_CERTS");
  if (base == NULL || *base == '\0' || certs == NULL || *certs == '\0') {
    printf("# ldlm mtls: skipped (POLYLOCK_TEST_LDLM_MTLS_URL or "
           "POLYLOCK_TEST_LDLM_MTLS_CERTS is not set)\n");
    return;
  }
  char no_cert[1024], with_cert[1024];
  snprintf(no_cert, sizeof no_cert, "%s?ca=%s/ca.pem", base, certs);
  snprintf(with_cert, sizeof with_cert,
           "%s?ca=%s/ca.pem&cert=%s/client.pem&key=%s/client-key.pem", base,
           certs, certs, certs);
  polylock_client *client = NULL;

  /* The server requires a client certificate. It closes the refused
   * connection at once, so polylock's writes meet a closed socket: with
   * SIGPIPE at its default action (see main), this host survives only
   * because the core blocks SIGPIPE in its own threads. */
  for (int i = 0; i < 20; i++) {
    polylock_status refused = polylock_client_new(no_cert, &client);
    checks++;
    if (refused != POLYLOCK_AUTH) {
      failures++;
      fprintf(stderr, "%s:%d: mTLS without a client certificate gave %s "
              "(last error: %s)\n", __FILE__, __LINE__,
              polylock_status_name(refused), polylock_last_error());
    }
    CHECK(client == NULL);
  }

  CHECK_STATUS(polylock_client_new(with_cert, &client), POLYLOCK_OK);
  if (client == NULL) {
    return;
  }
  char name[128];
  lock_name(name, sizeof name, "mtls");
  polylock_lock *lock = NULL;
  bool acquired = false;
  CHECK_STATUS(polylock_lock_new(client, name, 1, 15000, NULL, &lock),
               POLYLOCK_OK);
  CHECK_STATUS(polylock_try_acquire(lock, &acquired), POLYLOCK_OK);
  CHECK(acquired);
  CHECK_STATUS(polylock_release(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_lock_free(lock), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(client), POLYLOCK_OK);
}

int main(int argc, char **argv) {
  /* A C host leaves SIGPIPE at its default action (killing the process):
   * polylock must not raise it in its threads (test_ldlm_mtls). */
  signal(SIGPIPE, SIG_DFL);
  url = argc > 1 ? argv[1] : "memory://";
  snprintf(prefix, sizeof prefix, "c-test/%ld", (long)getpid());

  test_static_strings();
  polylock_client *a = connect_client();
  CHECK_STATUS(polylock_client_capabilities(a, &caps), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_capabilities(a, NULL), POLYLOCK_INVALID_ARGUMENT);
  CHECK_STATUS(polylock_client_capabilities(NULL, &caps), POLYLOCK_INVALID_HANDLE);
  CHECK(caps.semaphores);
  CHECK(caps.fencing == !is_ldlm());
  CHECK(caps.outlives_connection == !is_ldlm());
  polylock_client *b = connect_client();
  polylock_client *c = connect_client();
  test_bad_input(a);
  test_mutex(a, b);
  test_semaphore(a, b, c);
  test_registry(a, b);
  test_registry_outlives_client(b);
  test_lost_callbacks(c);
  test_lost_once_per_lease(c);
  test_threads();
  test_handles_never_reused(a);
  test_cancel_parked_wait(a, b, c);
  test_cancel_racing_grant(a, b);
  test_release_retry();
  test_caller_renews(a, b);
  test_free_orders();
  if (is_ldlm()) {
    test_ldlm_password();
    test_ldlm_mtls();
  }
  CHECK_STATUS(polylock_client_free(a), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(b), POLYLOCK_OK);
  CHECK_STATUS(polylock_client_free(c), POLYLOCK_OK);

  printf("# C ABI on %s: %d checks, %d failed\n", url, checks, failures);
  return failures == 0 ? 0 : 1;
}
