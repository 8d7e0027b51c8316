/*
 * The C ABI test program: the API, the bad-input matrix, lost callbacks and
 * threads, against the backend URL in argv[1] (default memory://).
 * Run by bindings-c/tests/run-c-tests.sh, under valgrind.
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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  test_lost_callbacks(c);
  test_threads();
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
