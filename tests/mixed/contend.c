/* The C contender of the mixed-client fault suite (tests/mixed/run.sh has
 * the whole protocol; tests/mixed/contenders.sh compiles it against the
 * static libpolylock).
 *
 *   contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP
 *   contend clock                 print "c NS" (the clock probe)
 *
 * One client on URL; one lock handle per name of NAMES ("NAME=LIMIT,...":
 * limit 1 a mutex, more a semaphore), made when first picked (and made
 * anew after a release failed twice: freeing the old one releases its lease
 * in the background). Each round (until the file STOP exists, then a "done"
 * line): pick a name with splitmix64 seeded by SEED; acquire (20 s
 * timeout); send "WRITE NAME TOKEN ID" to the fenced store on the Unix
 * socket STORE; hold HOLD_MS; write again; release. The handle's lost
 * callback (polylock_on_lost, once per lease) finds the round of the lost
 * lease by its holder id and token. Every step is one line
 * "WHAT c PID ID NAME TOKEN T0 T1 RESULT" appended to LOG in one write(2);
 * T0/T1 are clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "polylock.h"

#define ACQUIRE_TIMEOUT_MS 20000
#define CONNECT_FOR_NS (30ull * 1000000000ull)
#define STORE_TRIES 5
#define STORE_TIMEOUT_S 5
#define RING 16
#define MAX_NAMES 64

static int log_fd = -1;
static long pid;

/* CLOCK_MONOTONIC in nanoseconds; exits if the clock cannot be read. */
static uint64_t monotonic_ns(void) {
  struct timespec now;
  if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
    perror("contend (c): clock_gettime(CLOCK_MONOTONIC)");
    exit(1);
  }
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void sleep_ms(long ms) {
  struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
  }
}

/* Appends "WHAT c PID ID NAME TOKEN T0 T1 RESULT" to the log in one write. */
static void record(const char *what, const char *id, const char *name, const char *token,
                   uint64_t t0, uint64_t t1, const char *result) {
  char line[512];
  int n = snprintf(line, sizeof line, "%s c %ld %s %s %s %" PRIu64 " %" PRIu64 " %s\n", what,
                   pid, id, name, token, t0, t1, result);
  if (n < 0 || (size_t)n >= sizeof line) {
    fprintf(stderr, "contend (c): log line too long\n");
    return;
  }
  ssize_t written = write(log_fd, line, (size_t)n);
  if (written != n) fprintf(stderr, "contend (c): short log write (%zd of %d)\n", written, n);
}

/* splitmix64, the PRNG every contender uses to pick names. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- the fenced store ---- */

static const char *store_path;
static int store_fd = -1;

/* Up to STORE_TRIES connection attempts, 50 ms apart. */
static void store_reconnect(void) {
  if (store_fd >= 0) close(store_fd);
  store_fd = -1;
  for (int attempt = 0; attempt < STORE_TRIES; attempt++) {
    if (attempt > 0) sleep_ms(50);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", store_path);
    struct timeval timeout = {STORE_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
      store_fd = fd;
      return;
    }
    close(fd);
  }
}

/* One write: "ok", "stale" or "error" (then reconnected). */
static const char *store_write(const char *name, const char *token, const char *id) {
  if (store_fd < 0) store_reconnect();
  if (store_fd < 0) return "error";
  char request[512];
  int n = snprintf(request, sizeof request, "WRITE %s %s %s\n", name, token, id);
  int sent = 0;
  while (sent < n) {
    ssize_t k = send(store_fd, request + sent, (size_t)(n - sent), MSG_NOSIGNAL);
    if (k <= 0) {
      store_reconnect();
      return "error";
    }
    sent += (int)k;
  }
  char reply[128];
  size_t got = 0;
  while (got == 0 || reply[got - 1] != '\n') {
    if (got == sizeof reply - 1) {
      store_reconnect();
      return "error";
    }
    ssize_t k = recv(store_fd, reply + got, sizeof reply - 1 - got, 0);
    if (k <= 0) {
      store_reconnect();
      return "error";
    }
    got += (size_t)k;
  }
  reply[got] = '\0';
  if (strcmp(reply, "OK\n") == 0) return "ok";
  if (strncmp(reply, "STALE", 5) == 0) return "stale";
  store_reconnect();
  return "error";
}

/* ---- lock handles and their leases ---- */

/* One lease of a handle, as its lost callback matches it. */
typedef struct {
  bool used;
  bool ended; /* released normally, or its loss logged */
  char holder[256];
  char token[24];
  char id[64];
} lease_rec;

/* A name's handle (made lazily) and its recent leases. */
typedef struct {
  char name[257];
  uint32_t limit;
  polylock_lock *lock;
  pthread_mutex_t mu;
  lease_rec ring[RING];
  unsigned next;
} handle;

/* The lost callback: logs the lost lease's round, once. */
static void on_lost(void *user_data, const polylock_lost_event *event) {
  handle *h = user_data;
  char token[24] = "-";
  if (event->has_fencing_token) snprintf(token, sizeof token, "%" PRIu64, event->fencing_token);
  /* The loss may be reported before the round recorded its lease: wait
   * for it a little (blocking is allowed on the notifier thread). */
  for (int tries = 0; tries < 200; tries++) {
    pthread_mutex_lock(&h->mu);
    for (unsigned i = 0; i < RING; i++) {
      lease_rec *rec = &h->ring[(h->next + RING - 1 - i) % RING];
      if (!rec->used || strcmp(rec->holder, event->holder) != 0 || strcmp(rec->token, token) != 0)
        continue;
      if (rec->ended) {
        pthread_mutex_unlock(&h->mu);
        return;
      }
      rec->ended = true;
      char id[64];
      memcpy(id, rec->id, sizeof id);
      pthread_mutex_unlock(&h->mu);
      uint64_t t = monotonic_ns();
      record("lost", id, h->name, token, t, t, "-");
      return;
    }
    pthread_mutex_unlock(&h->mu);
    sleep_ms(10);
  }
  fprintf(stderr, "contend (c): a lost lease of %s (holder %s, token %s) matched no round\n",
          h->name, event->holder, token);
}

static const char *kind(polylock_status status) { return polylock_status_name(status); }

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "clock") == 0) {
    printf("c %" PRIu64 "\n", monotonic_ns());
    return 0;
  }
  if (argc != 10 || strcmp(argv[1], "run") != 0) {
    fprintf(stderr,
            "usage: contend run URL LOG STORE NAMES TTL_MS HOLD_MS SEED STOP | contend clock\n");
    return 2;
  }
  const char *url = argv[2], *stop = argv[9];
  store_path = argv[4];
  uint64_t ttl_ms = strtoull(argv[6], NULL, 10);
  long hold_ms = atol(argv[7]);
  uint64_t rng = strtoull(argv[8], NULL, 10);
  pid = (long)getpid();
  log_fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    perror("contend (c): opening the log");
    return 1;
  }

  static handle handles[MAX_NAMES];
  size_t count = 0;
  char *names = strdup(argv[5]);
  for (char *save = NULL, *entry = strtok_r(names, ",", &save); entry != NULL;
       entry = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(entry, '=');
    if (eq == NULL || count == MAX_NAMES || (size_t)(eq - entry) >= sizeof handles[0].name) {
      fprintf(stderr, "contend (c): bad NAMES entry %s\n", entry);
      return 2;
    }
    handle *h = &handles[count++];
    memcpy(h->name, entry, (size_t)(eq - entry));
    h->limit = (uint32_t)strtoul(eq + 1, NULL, 10);
    pthread_mutex_init(&h->mu, NULL);
  }
  free(names);
  if (count == 0) {
    fprintf(stderr, "contend (c): NAMES is empty\n");
    return 2;
  }

  polylock_client *client = NULL;
  uint64_t started = monotonic_ns();
  for (;;) {
    polylock_status status = polylock_client_new(url, &client);
    if (status == POLYLOCK_OK) break;
    if (status != POLYLOCK_CONNECTION || monotonic_ns() - started >= CONNECT_FOR_NS) {
      fprintf(stderr, "contend (c): connecting: %s: %s\n", kind(status), polylock_last_error());
      return 1;
    }
    sleep_ms(500);
  }
  store_reconnect();

  for (uint64_t seq = 1;; seq++) {
    if (access(stop, F_OK) == 0) {
      uint64_t t = monotonic_ns();
      record("done", "-", "-", "-", t, t, "-");
      return 0;
    }
    handle *h = &handles[splitmix64(&rng) % count];
    char id[64], token[24] = "-", result[64];
    snprintf(id, sizeof id, "c-%ld-%" PRIu64, pid, seq);
    if (h->lock == NULL) {
      polylock_status status = polylock_lock_new(client, h->name, h->limit, ttl_ms, NULL, &h->lock);
      if (status == POLYLOCK_OK) status = polylock_on_lost(h->lock, on_lost, h, NULL);
      if (status != POLYLOCK_OK) {
        fprintf(stderr, "contend (c): lock %s: %s: %s\n", h->name, kind(status),
                polylock_last_error());
        return 1;
      }
    }

    uint64_t t0 = monotonic_ns();
    polylock_status status = polylock_acquire(h->lock, ACQUIRE_TIMEOUT_MS);
    uint64_t t1 = monotonic_ns();
    if (status != POLYLOCK_OK) {
      snprintf(result, sizeof result, status == POLYLOCK_TIMEOUT ? "timeout" : "error:%s",
               kind(status));
      record("acquire", id, h->name, "-", t0, t1, result);
      if (status != POLYLOCK_TIMEOUT) sleep_ms(100);
      continue;
    }
    bool has_token = false;
    uint64_t fencing = 0;
    char *holder = NULL;
    if (polylock_fencing_token(h->lock, &has_token, &fencing) == POLYLOCK_OK && has_token)
      snprintf(token, sizeof token, "%" PRIu64, fencing);
    record("acquire", id, h->name, token, t0, t1, "ok");
    /* Noted for the lost callback (registered with the handle). */
    pthread_mutex_lock(&h->mu);
    lease_rec *rec = &h->ring[h->next++ % RING];
    *rec = (lease_rec){.used = true};
    if (polylock_holder(h->lock, &holder) == POLYLOCK_OK) {
      snprintf(rec->holder, sizeof rec->holder, "%s", holder);
      polylock_string_free(holder);
    }
    snprintf(rec->token, sizeof rec->token, "%s", token);
    snprintf(rec->id, sizeof rec->id, "%s", id);
    pthread_mutex_unlock(&h->mu);

    for (int i = 0; i < 2; i++) {
      t0 = monotonic_ns();
      const char *written = store_write(h->name, token, id);
      record("write", id, h->name, token, t0, monotonic_ns(), written);
      if (i == 0) sleep_ms(hold_ms);
    }

    bool released = false;
    for (int i = 0; i < 2 && !released; i++) {
      t0 = monotonic_ns();
      status = polylock_release(h->lock);
      t1 = monotonic_ns();
      if (status == POLYLOCK_OK) {
        pthread_mutex_lock(&h->mu);
        rec->ended = true;
        pthread_mutex_unlock(&h->mu);
        record("release", id, h->name, token, t0, t1, "ok");
        released = true;
      } else if (status == POLYLOCK_LOST) {
        record("release", id, h->name, token, t0, t1, "lost");
        released = true;
      } else {
        snprintf(result, sizeof result, "error:%s", kind(status));
        record("release", id, h->name, token, t0, t1, result);
      }
    }
    if (!released) {
      /* Still held: a new handle next time; freeing this one releases
       * the lease (retried in the background). */
      polylock_lock_free(h->lock);
      h->lock = NULL;
    }
  }
}
