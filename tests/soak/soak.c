/* The C load process of the soak test (tests/soak/run.sh): drives every
 * backend given on the command line through the C ABI (one pthread per
 * worker) until STOP_FILE exists or MAX_SECONDS pass, and appends its
 * counters to STATS_FILE every few seconds. The workload and the stats line
 * format are the same in every language (tests/soak/README.md). The C ABI
 * has no lock-event stream, so there is no watcher here.
 *
 *   soak-c STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "polylock.h"

#define LANG "c"
#define WAIT_MS 60000
#define LEASE_TTL_MS 3000
#define LEASE_HOLD_MS 8000
#define SEM_LIMIT 3
#define MAX_ERROR_LINES 50
#define MAX_BACKENDS 8
#define NAME_MAX_LEN 300

typedef struct {
  char name[64];
  const char *url;
  const char *run;
  polylock_client *client;
  atomic_uint_fast64_t ops, lost, lost_after_release, errors, waits, long_holds, connects;
} backend;

typedef struct {
  backend *b;
  int worker;
} job;

static atomic_bool stopped;
static atomic_int error_lines;
static long pause_ms = 1000;

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void sleep_ms(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0) {
  }
}

/* Sleeps `ms` in short steps; false when told to stop meanwhile. */
static bool pause_for(long ms) {
  uint64_t end = now_ms() + (uint64_t)ms;
  while (!atomic_load(&stopped)) {
    uint64_t now = now_ms();
    if (now >= end) return true;
    uint64_t left = end - now;
    sleep_ms(left < 250 ? (long)left : 250);
  }
  return false;
}

static long jitter(long n, unsigned *seed) { return n > 0 ? rand_r(seed) % n : 0; }

static void report(backend *b, const char *what, polylock_status status) {
  atomic_fetch_add(&b->errors, 1);
  if (atomic_fetch_add(&error_lines, 1) < MAX_ERROR_LINES) {
    fprintf(stderr, "soak (c): %s: %s: %s: %s\n", b->name, what, polylock_status_name(status),
            polylock_last_error());
  }
}

/* What a handle's lost callback saw: a loss of the lease held now, or a
 * loss reported for a lease whose release had begun (or an earlier one): a
 * release that succeeds means that lease was not lost, the report is
 * spurious (lost_after_release). */
typedef struct {
  pthread_mutex_t mu;
  backend *b;
  bool releasing, lost;
  char holder[128];
} loss;

static void loss_init(loss *l, backend *b) {
  pthread_mutex_init(&l->mu, NULL);
  l->b = b;
  l->releasing = true;
  l->lost = false;
  l->holder[0] = '\0';
}

static void on_lost(void *user_data, const polylock_lost_event *event) {
  loss *l = user_data;
  pthread_mutex_lock(&l->mu);
  bool late = l->releasing || strcmp(event->holder, l->holder) != 0;
  if (late)
    atomic_fetch_add(&l->b->lost_after_release, 1);
  else
    l->lost = true;
  pthread_mutex_unlock(&l->mu);
  fprintf(stderr, "soak (c): %s: lost callback%s: %s holder %s: %s\n", l->b->name,
          late ? " after release began" : "", event->name, event->holder, event->reason);
}

/* The handle holds a new lease: the callback now judges against it. */
static void held(loss *l, polylock_lock *lock) {
  char *holder = NULL;
  polylock_status status = polylock_holder(lock, &holder);
  if (status != POLYLOCK_OK) report(l->b, "holder", status);
  pthread_mutex_lock(&l->mu);
  snprintf(l->holder, sizeof l->holder, "%s", holder != NULL ? holder : "");
  l->releasing = false;
  l->lost = false;
  pthread_mutex_unlock(&l->mu);
  polylock_string_free(holder);
}

static void set_lost(loss *l) {
  pthread_mutex_lock(&l->mu);
  l->lost = true;
  pthread_mutex_unlock(&l->mu);
}

/* A lock handle whose lost callback reports to *l. NULL on failure (counted). */
static polylock_lock *new_lock(backend *b, polylock_client *client, const char *name,
                               uint32_t limit, uint64_t ttl_ms, loss *l) {
  polylock_lock *lock = NULL;
  loss_init(l, b);
  polylock_status status = polylock_lock_new(client, name, limit, ttl_ms, NULL, &lock);
  if (status != POLYLOCK_OK) {
    report(b, "lock_new", status);
    return NULL;
  }
  status = polylock_on_lost(lock, on_lost, l, NULL);
  if (status != POLYLOCK_OK) report(b, "on_lost", status);
  return lock;
}

/* Releases the held lease, counting a loss (seen while held, or by the
 * release) once. */
static void release(backend *b, polylock_lock *lock, const char *name, loss *l) {
  pthread_mutex_lock(&l->mu);
  l->releasing = true;
  pthread_mutex_unlock(&l->mu);
  polylock_status status = polylock_release(lock);
  if (status == POLYLOCK_OK) {
    atomic_fetch_add(&b->ops, 2);
  } else if (status == POLYLOCK_LOST) {
    fprintf(stderr, "soak (c): %s: release of %s: lost: %s\n", b->name, name,
            polylock_last_error());
    set_lost(l);
  } else {
    report(b, "release", status);
  }
  pthread_mutex_lock(&l->mu);
  bool lost = l->lost;
  pthread_mutex_unlock(&l->mu);
  if (lost) {
    atomic_fetch_add(&b->lost, 1);
    fprintf(stderr, "soak (c): %s: lease on %s lost\n", b->name, name);
  }
}

static void hold_shared(backend *b, polylock_lock *lock, const char *name, loss *l,
                        long hold_ms) {
  uint64_t began = now_ms();
  polylock_status status = polylock_acquire(lock, WAIT_MS);
  if (status != POLYLOCK_OK) {
    report(b, "acquire", status);
    return;
  }
  held(l, lock);
  if (now_ms() - began >= 10) atomic_fetch_add(&b->waits, 1);
  sleep_ms(hold_ms);
  release(b, lock, name, l);
}

static void connect_cycle(backend *b) {
  polylock_client *client = NULL;
  polylock_status status = polylock_client_new(b->url, &client);
  if (status != POLYLOCK_OK) {
    report(b, "connect", status);
    return;
  }
  char name[NAME_MAX_LEN];
  snprintf(name, sizeof name, "soak/%s/%s/connect", b->run, LANG);
  loss l;
  polylock_lock *lock = new_lock(b, client, name, 1, 0, &l);
  if (lock != NULL) {
    bool acquired = false;
    status = polylock_try_acquire(lock, &acquired);
    if (status != POLYLOCK_OK)
      report(b, "connect try_acquire", status);
    else if (!acquired)
      report(b, "connect try_acquire (busy)", POLYLOCK_OK);
    else {
      held(&l, lock);
      release(b, lock, name, &l);
    }
    polylock_lock_free(lock);
  }
  pthread_mutex_destroy(&l.mu);
  polylock_client_free(client);
  atomic_fetch_add(&b->connects, 1);
}

static void *cycles(void *arg) {
  job *j = arg;
  backend *b = j->b;
  unsigned seed = (unsigned)(now_ms() + (uint64_t)j->worker * 7919u);
  char own_name[NAME_MAX_LEN], mutex_name[NAME_MAX_LEN], sem_name[NAME_MAX_LEN];
  snprintf(own_name, sizeof own_name, "soak/%s/%s/w%d/u", b->run, LANG, j->worker);
  snprintf(mutex_name, sizeof mutex_name, "soak/%s/mutex", b->run);
  snprintf(sem_name, sizeof sem_name, "soak/%s/sem", b->run);
  loss own_lost, mutex_lost, sem_lost;
  polylock_lock *own = new_lock(b, b->client, own_name, 1, 0, &own_lost);
  polylock_lock *mutex = new_lock(b, b->client, mutex_name, 1, 0, &mutex_lost);
  polylock_lock *sem = new_lock(b, b->client, sem_name, SEM_LIMIT, 0, &sem_lost);
  if (own == NULL || mutex == NULL || sem == NULL) return NULL;
  for (long round = 1; !atomic_load(&stopped); round++) {
    for (int i = 0; i < 3; i++) {
      bool acquired = false;
      polylock_status status = polylock_try_acquire(own, &acquired);
      if (status != POLYLOCK_OK) {
        report(b, "try_acquire", status);
      } else if (!acquired) {
        report(b, "try_acquire (busy)", POLYLOCK_OK);
      } else {
        held(&own_lost, own);
        release(b, own, own_name, &own_lost);
      }
    }
    hold_shared(b, mutex, mutex_name, &mutex_lost, 20 + jitter(60, &seed));
    hold_shared(b, sem, sem_name, &sem_lost, 50 + jitter(100, &seed));
    if (j->worker == 0 && round % 3 == 0) connect_cycle(b);
    pause_for(pause_ms + jitter(pause_ms / 2 + 1, &seed));
  }
  polylock_lock_free(own);
  polylock_lock_free(mutex);
  polylock_lock_free(sem);
  return NULL;
}

static void *long_leases(void *arg) {
  job *j = arg;
  backend *b = j->b;
  char name[NAME_MAX_LEN];
  snprintf(name, sizeof name, "soak/%s/%s/lease", b->run, LANG);
  loss l;
  polylock_lock *lock = new_lock(b, b->client, name, 1, LEASE_TTL_MS, &l);
  if (lock == NULL) return NULL;
  while (!atomic_load(&stopped)) {
    polylock_status status = polylock_acquire(lock, WAIT_MS);
    if (status != POLYLOCK_OK) {
      report(b, "acquire lease", status);
      pause_for(1000);
      continue;
    }
    held(&l, lock);
    bool full = pause_for(LEASE_HOLD_MS);
    if (!polylock_is_held(lock)) {
      fprintf(stderr, "soak (c): %s: %s not held at the end\n", b->name, name);
      set_lost(&l);
    }
    release(b, lock, name, &l);
    if (full) atomic_fetch_add(&b->long_holds, 1);
    pause_for(1000);
  }
  polylock_lock_free(lock);
  return NULL;
}

static int write_stats(const char *path, backend *backends, int n) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  FILE *out = fopen(path, "a");
  if (out == NULL) {
    perror("soak (c): opening the stats file");
    return 1;
  }
  for (int i = 0; i < n; i++) {
    backend *b = &backends[i];
    fprintf(out,
            "%" PRId64 ".%03ld\t%s\tops=%" PRIuFAST64 "\tlost=%" PRIuFAST64
            "\tlost_after_release=%" PRIuFAST64 "\terrors=%" PRIuFAST64
            "\twaits=%" PRIuFAST64 "\tlong_holds=%" PRIuFAST64 "\tconnects=%" PRIuFAST64
            "\twatch_events=0\n",
            (int64_t)t.tv_sec, t.tv_nsec / 1000000L, b->name, atomic_load(&b->ops),
            atomic_load(&b->lost), atomic_load(&b->lost_after_release), atomic_load(&b->errors), atomic_load(&b->waits),
            atomic_load(&b->long_holds), atomic_load(&b->connects));
  }
  return fclose(out) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc < 6 || argc - 5 > MAX_BACKENDS) {
    fprintf(stderr, "usage: soak-c STATS_FILE STOP_FILE RUN_ID MAX_SECONDS BACKEND=URL...\n");
    return 2;
  }
  const char *stats = argv[1], *stop_file = argv[2], *run = argv[3];
  uint64_t max_ms = (uint64_t)atol(argv[4]) * 1000u;
  const char *pause_env = getenv("POLYLOCK_SOAK_PAUSE_MS");
  if (pause_env != NULL) pause_ms = atol(pause_env);
  static backend backends[MAX_BACKENDS];
  static job jobs[MAX_BACKENDS * 3];
  pthread_t threads[MAX_BACKENDS * 3];
  int n = argc - 5, nthreads = 0;
  for (int i = 0; i < n; i++) {
    backend *b = &backends[i];
    const char *spec = argv[5 + i];
    const char *eq = strchr(spec, '=');
    if (eq == NULL || (size_t)(eq - spec) >= sizeof b->name) {
      fprintf(stderr, "soak (c): BACKEND=URL expected, not %s\n", spec);
      return 2;
    }
    memcpy(b->name, spec, (size_t)(eq - spec));
    b->url = eq + 1;
    b->run = run;
    polylock_status status = polylock_client_new(b->url, &b->client);
    if (status != POLYLOCK_OK) {
      fprintf(stderr, "soak (c): %s: connect: %s\n", b->name, polylock_last_error());
      return 1;
    }
    for (int k = 0; k < 3; k++) {
      job *j = &jobs[nthreads];
      j->b = b;
      j->worker = k;
      if (pthread_create(&threads[nthreads], NULL, k < 2 ? cycles : long_leases, j) != 0) {
        perror("soak (c): pthread_create");
        return 1;
      }
      nthreads++;
    }
  }
  uint64_t started = now_ms();
  struct stat seen;
  while (stat(stop_file, &seen) != 0 && now_ms() - started < max_ms) {
    if (write_stats(stats, backends, n) != 0) return 1;
    sleep_ms(5000);
  }
  atomic_store(&stopped, true);
  for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < n; i++) polylock_client_free(backends[i].client);
  return write_stats(stats, backends, n);
}
