/*
 * libFuzzer harness for the C ABI (include/polylock.h), built with
 * -fsanitize=fuzzer,address by bindings-c/tests/fuzz/run.sh.
 *
 * Each input is decoded into a sequence of at most MAX_OPS calls on
 * memory:// clients and lock handles: connecting with valid and invalid
 * URLs, lock handles with names, values, limits and TTLs taken from the
 * bytes (non-UTF-8, empty, huge), try_acquire / acquire with tiny timeouts
 * (a negative one only with a wait-started hook that cancels), release
 * twice, renew, queries, capabilities, lost-callback registration and
 * clearing, the name registry, and frees in any order; every handle
 * argument may instead be NULL, a handle freed already, a handle of the
 * other kind, the address of a local or a random integer.
 *
 * Checked on every call (a failed check aborts, which libFuzzer reports):
 * - the status is a known one, never POLYLOCK_PANIC, and a failure leaves a
 *   non-empty polylock_last_error();
 * - a handle that cannot be live gives POLYLOCK_INVALID_HANDLE (when every
 *   other argument is valid);
 * - a second release after a successful one gives POLYLOCK_NOT_HELD;
 * - strings the API hands out are freed with polylock_string_free;
 * - at the end of each input every handle is freed, and every lost-callback
 *   user_data given to polylock has been freed through user_data_free
 *   exactly once (the freeing function checks it is called once).
 * LeakSanitizer then finds no leak for the input.
 *
 * Network schemes are kept out of the bytes-derived URLs (they would wait
 * for servers that are not there): their scheme is rewritten, so such a
 * URL tests the parser's "unknown scheme" path instead.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "polylock.h"

#define MAX_OPS 64
#define NCLIENTS 3
#define NLOCKS 6
#define HANDLE_TAG (UINT64_C(0xA5) << 56)

/* ---- the input, read as a stream of bytes (zeros once it runs out) ---- */

typedef struct {
  const uint8_t *data;
  size_t left;
} reader;

static uint8_t u8(reader *r) {
  if (r->left == 0) return 0;
  r->left--;
  return *r->data++;
}

static uint64_t u64(reader *r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | u8(r);
  return v;
}

/* ---- checks ---- */

static void fail(const char *what, const char *call, int status) {
  fprintf(stderr, "fuzz_calls: %s: %s gave %d (%s), last error: %s\n", what, call,
          status, polylock_status_name(status), polylock_last_error());
  abort();
}

/* Every status must be known and never a caught panic; a failure must
 * describe itself. */
static int trace = -1; /* POLYLOCK_FUZZ_TRACE=1: print every call's status */

static polylock_status check(polylock_status status, const char *call) {
  int s = (int)status;
  if (trace < 0) trace = getenv("POLYLOCK_FUZZ_TRACE") != NULL;
  if (trace) fprintf(stderr, "  %s -> %s\n", call, polylock_status_name(s));
  if (s < POLYLOCK_OK || s > POLYLOCK_CANCELLED) fail("unknown status", call, s);
  if (status == POLYLOCK_PANIC) fail("panic crossed into a status", call, s);
  const char *name = polylock_status_name(s);
  if (name == NULL || strcmp(name, "unknown") == 0) fail("no status name", call, s);
  if (status != POLYLOCK_OK) {
    const char *message = polylock_last_error();
    if (message == NULL || message[0] == '\0') fail("no last error", call, s);
  }
  return status;
}

/* A call given a handle that cannot be live (and valid other arguments). */
static void expect_invalid(polylock_status status, bool bad, const char *call) {
  if (bad && status != POLYLOCK_INVALID_HANDLE) fail("dead handle accepted", call, status);
}

#define CALL(expr) check((expr), #expr)

/* ---- lost-callback user_data: freed exactly once ---- */

#define UD_LIVE 0x6c697665u
#define UD_DEAD 0x64656164u

struct user_data {
  uint32_t magic;
  atomic_int calls;
};

static atomic_long outstanding_user_data;
static atomic_long lost_calls;

static struct user_data *user_data_new(void) {
  struct user_data *ud = malloc(sizeof *ud);
  if (ud == NULL) abort();
  ud->magic = UD_LIVE;
  atomic_init(&ud->calls, 0);
  atomic_fetch_add(&outstanding_user_data, 1);
  return ud;
}

static void user_data_free(void *p) {
  struct user_data *ud = p;
  if (ud == NULL || ud->magic != UD_LIVE) {
    fprintf(stderr, "fuzz_calls: user_data_free called twice or on a stranger\n");
    abort();
  }
  ud->magic = UD_DEAD;
  free(ud);
  atomic_fetch_sub(&outstanding_user_data, 1);
}

/* Registered without a user_data_free: polylock must never touch it. */
static void ignore_free(void *p) { (void)p; }

static void on_lost(void *p, const polylock_lost_event *event) {
  if (event == NULL || event->name == NULL || event->holder == NULL || event->reason == NULL) {
    fprintf(stderr, "fuzz_calls: lost event with NULL fields\n");
    abort();
  }
  (void)strlen(event->name);
  (void)strlen(event->holder);
  (void)strlen(event->reason);
  struct user_data *ud = p;
  if (ud != NULL && ud->magic == UD_LIVE) atomic_fetch_add(&ud->calls, 1);
  atomic_fetch_add(&lost_calls, 1);
}

static void on_lost_opaque(void *p, const polylock_lost_event *event) {
  (void)p;
  (void)event;
  atomic_fetch_add(&lost_calls, 1);
}

/* ---- the state of one input ---- */

static polylock_client *clients[NCLIENTS];
static bool client_live[NCLIENTS];
static polylock_lock *locks[NLOCKS];
static bool lock_live[NLOCKS];

/* Forgets `ptr` wherever it is live (it was freed through some alias). */
static void forget_lock(polylock_lock *ptr) {
  for (int i = 0; i < NLOCKS; i++)
    if (locks[i] == ptr) lock_live[i] = false;
}

static void forget_client(polylock_client *ptr) {
  for (int i = 0; i < NCLIENTS; i++)
    if (clients[i] == ptr) client_live[i] = false;
}

/* A handle argument. `*bad` is true when it cannot be a live handle of the
 * expected kind; `*slot` is the slot it came from (-1 otherwise). */
enum { WANT_CLIENT, WANT_LOCK };

static void *pick_handle(reader *r, int want, bool *bad, int *slot, void *local) {
  uint8_t mode = u8(r);
  *slot = -1;
  *bad = true;
  switch (mode % 10) {
  case 0:
    return NULL;
  case 1:
    return local; /* the address of a local: never a handle */
  case 2: {
    /* A random integer that is not tagged as a handle. */
    uint64_t v = u64(r);
    if ((v >> 56) == 0xA5) v ^= UINT64_C(1) << 60;
    return (void *)(uintptr_t)v;
  }
  case 3: {
    /* Tagged like a handle, with a small sequence number: perhaps one freed
     * earlier in the run, perhaps (rarely) a live one; so not judged. */
    *bad = false;
    return (void *)(uintptr_t)(HANDLE_TAG | u8(r));
  }
  case 4: {
    /* A handle of the other kind (live or not: never valid here). */
    uint8_t i = u8(r);
    return want == WANT_LOCK ? (void *)clients[i % NCLIENTS] : (void *)locks[i % NLOCKS];
  }
  default: {
    uint8_t i = u8(r);
    if (want == WANT_CLIENT) {
      *slot = i % NCLIENTS;
      *bad = !client_live[*slot];
      return clients[*slot];
    }
    *slot = i % NLOCKS;
    *bad = !lock_live[*slot];
    return locks[*slot];
  }
  }
}

#define PICK_LOCK(r, bad, slot, local) ((polylock_lock *)pick_handle(r, WANT_LOCK, bad, slot, local))
#define PICK_CLIENT(r, bad, slot, local) \
  ((polylock_client *)pick_handle(r, WANT_CLIENT, bad, slot, local))

/* ---- strings from the bytes ---- */

static const char *const valid_names[] = {"a", "b", "fuzz/lock", "x:y@z=1+2.3_4-5"};
static const char *const valid_values[] = {"v", "host-1:42", "", "\xc3\xa9t\xc3\xa9"};

/* A malloc'd NUL-terminated string, or NULL; free() it after the call. */
static char *pick_text(reader *r, const char *const *fixed, size_t nfixed) {
  uint8_t mode = u8(r);
  switch (mode % 8) {
  case 0:
    return NULL;
  case 1:
  case 2:
    return strdup(fixed[u8(r) % nfixed]);
  case 3: {
    /* Raw bytes (an embedded NUL ends the string early). */
    size_t len = u8(r) % 48;
    char *s = malloc(len + 1);
    if (s == NULL) abort();
    for (size_t i = 0; i < len; i++) s[i] = (char)u8(r);
    s[len] = '\0';
    return s;
  }
  case 4: {
    /* Not UTF-8: a valid name with a stray byte from the top half. */
    const char *base = fixed[u8(r) % nfixed];
    size_t len = strlen(base);
    char *s = malloc(len + 3);
    if (s == NULL) abort();
    memcpy(s, base, len);
    s[len] = (char)(0x80 | u8(r));
    s[len + 1] = (u8(r) & 1) ? (char)0xc3 : 'a'; /* perhaps a truncated sequence */
    s[len + 2] = '\0';
    return s;
  }
  case 5: {
    /* Long and huge: one byte repeated. */
    static const size_t lengths[] = {255, 256, 257, 1024, 65536, 1 << 20};
    size_t len = lengths[u8(r) % (sizeof lengths / sizeof *lengths)];
    char c = (char)u8(r);
    if (c == '\0') c = 'a';
    char *s = malloc(len + 1);
    if (s == NULL) abort();
    memset(s, c, len);
    s[len] = '\0';
    return s;
  }
  case 6:
    return strdup("");
  default: {
    /* A fixed one with a suffix of printable bytes. */
    const char *base = fixed[u8(r) % nfixed];
    size_t extra = u8(r) % 8, len = strlen(base);
    char *s = malloc(len + extra + 1);
    if (s == NULL) abort();
    memcpy(s, base, len);
    for (size_t i = 0; i < extra; i++) s[len + i] = (char)(0x20 + u8(r) % 0x5f);
    s[len + extra] = '\0';
    return s;
  }
  }
}

static const char *const fixed_urls[] = {
    "memory://",          "memory://",           "memory://fuzz",     "memory://other",
    "memory://?x=1",      "memory:///path",      "memory://a/b",      "memory://%ff",
    "MEMORY://",          "memory:",             "memory",            "",
    "http://x",           "mongodb://",          "ldlm://",           "postgresql://u@/x",
    "consul://host:99999", "memory://user:pw@h", " memory://",        "memory://[::1]",
};

static const char *const network_schemes[] = {
    "consul", "consul+https", "mongodb", "mongodb+srv", "ldlm", "ldlms", "postgres", "postgresql",
};

/* Keeps a bytes-derived URL off the network: a network scheme (as the URL
 * parser would read it: after leading blanks, case-insensitive) gets its
 * first letter replaced, so it is an unknown scheme. */
static void defuse_url(char *url) {
  char *start = url;
  while (*start != '\0' && (unsigned char)*start <= 0x20) start++;
  char *colon = strchr(start, ':');
  if (colon == NULL) return;
  size_t len = (size_t)(colon - start);
  for (size_t i = 0; i < sizeof network_schemes / sizeof *network_schemes; i++) {
    /* The parser also drops tabs and newlines inside a URL: compare the
     * scheme without them. */
    char scheme[32];
    size_t n = 0;
    for (size_t j = 0; j < len && n < sizeof scheme - 1; j++)
      if (start[j] != '\t' && start[j] != '\n' && start[j] != '\r') scheme[n++] = start[j];
    scheme[n] = '\0';
    if (strcasecmp(scheme, network_schemes[i]) == 0) {
      start[0] = 'x';
      return;
    }
  }
}

static char *pick_url(reader *r) {
  uint8_t mode = u8(r);
  if (mode % 4 == 3) {
    /* A memory:// URL with a bytes suffix, or raw bytes. */
    size_t len = u8(r) % 32;
    bool prefixed = u8(r) & 1;
    const char *prefix = prefixed ? "memory://" : "";
    size_t plen = strlen(prefix);
    char *s = malloc(plen + len + 1);
    if (s == NULL) abort();
    memcpy(s, prefix, plen);
    for (size_t i = 0; i < len; i++) s[plen + i] = (char)u8(r);
    s[plen + len] = '\0';
    defuse_url(s);
    return s;
  }
  if (mode % 16 == 15) return NULL;
  return strdup(fixed_urls[u8(r) % (sizeof fixed_urls / sizeof *fixed_urls)]);
}

static uint64_t pick_ttl(reader *r) {
  static const uint64_t ttls[] = {0, 1, 999, 1000, 1001, 15000, 86400000, 86400001, UINT64_MAX};
  uint8_t mode = u8(r);
  if (mode % 4 == 3) return u64(r);
  return ttls[mode % (sizeof ttls / sizeof *ttls)];
}

static uint32_t pick_limit(reader *r) {
  static const uint32_t limits[] = {1, 1, 2, 3, 0, 1000, UINT32_MAX};
  uint8_t mode = u8(r);
  if (mode % 4 == 3) return (uint32_t)u64(r);
  return limits[mode % (sizeof limits / sizeof *limits)];
}

/* ---- the wait-started hook ---- */

enum { HOOK_COUNT, HOOK_CANCEL, HOOK_BLOCKING_CALL, HOOK_CANCEL_OTHER, HOOK_FREE_CLIENT, HOOK_FREE_LOCK, HOOK_MODES };

struct hook {
  int mode;
  polylock_lock *lock;  /* the acquiring handle */
  polylock_lock *other; /* any handle value */
  polylock_client *client;
  int fired;
  polylock_status inner;
};

static void on_wait_started(void *p) {
  struct hook *h = p;
  h->fired++;
  switch (h->mode) {
  case HOOK_CANCEL:
    h->inner = CALL(polylock_acquire_cancel(h->lock));
    break;
  case HOOK_BLOCKING_CALL:
    /* Refused inside the acquisition (POLYLOCK_USAGE), or for the
     * handle's state: any status but a panic. */
    h->inner = CALL(polylock_release(h->other));
    h->inner = CALL(polylock_renew(h->lock));
    break;
  case HOOK_CANCEL_OTHER:
    h->inner = CALL(polylock_acquire_cancel(h->other));
    break;
  case HOOK_FREE_CLIENT:
    h->inner = CALL(polylock_client_free(h->client));
    break;
  case HOOK_FREE_LOCK:
    /* Freeing blocks (it releases a held lease): refused here, or done. */
    h->inner = CALL(polylock_lock_free(h->other));
    break;
  default:
    break;
  }
}

/* ---- one input ---- */

static void release_twice(polylock_lock *lock, bool bad) {
  polylock_status first = CALL(polylock_release(lock));
  expect_invalid(first, bad, "polylock_release");
  polylock_status second = CALL(polylock_release(lock));
  if (first == POLYLOCK_OK && second != POLYLOCK_NOT_HELD)
    fail("second release", "polylock_release", second);
}

static void run_ops(reader *r) {
  int local = 0;
  for (int op = 0; op < MAX_OPS && r->left > 0; op++) {
    bool bad;
    int slot;
    uint8_t code = u8(r);
    switch (code % 24) {
    case 0: { /* connect */
      int i = u8(r) % NCLIENTS;
      char *url = pick_url(r);
      if (client_live[i]) CALL(polylock_client_free(clients[i]));
      client_live[i] = false;
      polylock_client *c = NULL;
      bool null_out = (u8(r) % 8) == 0;
      polylock_status s = CALL(polylock_client_new(url, null_out ? NULL : &c));
      if (s == POLYLOCK_OK) {
        if (c == NULL) fail("no client written", "polylock_client_new", s);
        clients[i] = c;
        client_live[i] = true;
      } else if (c != NULL) {
        fail("out written on failure", "polylock_client_new", s);
      }
      free(url);
      break;
    }
    case 1: { /* free a client */
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      polylock_status s = CALL(polylock_client_free(c));
      expect_invalid(s, bad, "polylock_client_free");
      if (s == POLYLOCK_OK) forget_client(c);
      break;
    }
    case 2: { /* capabilities */
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      polylock_capabilities caps;
      bool null_out = (u8(r) % 8) == 0;
      polylock_status s = CALL(polylock_client_capabilities(c, null_out ? NULL : &caps));
      if (!null_out) expect_invalid(s, bad, "polylock_client_capabilities");
      if (s == POLYLOCK_OK && !(caps.fencing && caps.semaphores))
        fail("memory:// capabilities", "polylock_client_capabilities", s);
      break;
    }
    case 3:
    case 4: { /* a lock handle */
      int i = u8(r) % NLOCKS;
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      char *name = pick_text(r, valid_names, 4);
      char *value = pick_text(r, valid_values, 4);
      uint32_t limit = pick_limit(r);
      uint64_t ttl = pick_ttl(r);
      bool null_out = (u8(r) % 16) == 0;
      if (lock_live[i]) CALL(polylock_lock_free(locks[i]));
      lock_live[i] = false;
      polylock_lock *l = NULL;
      polylock_status s = CALL(polylock_lock_new(c, name, limit, ttl, value, null_out ? NULL : &l));
      if (!null_out) expect_invalid(s, bad, "polylock_lock_new");
      if (s == POLYLOCK_OK) {
        if (l == NULL) fail("no lock written", "polylock_lock_new", s);
        locks[i] = l;
        lock_live[i] = true;
      }
      free(name);
      free(value);
      break;
    }
    case 5: { /* free a lock */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      polylock_status s = CALL(polylock_lock_free(l));
      expect_invalid(s, bad, "polylock_lock_free");
      if (s == POLYLOCK_OK) forget_lock(l);
      break;
    }
    case 6:
    case 7: { /* try_acquire */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      bool acquired = false, null_out = (u8(r) % 16) == 0;
      polylock_status s = CALL(polylock_try_acquire(l, null_out ? NULL : &acquired));
      if (!null_out) expect_invalid(s, bad, "polylock_try_acquire");
      if (s == POLYLOCK_OK && acquired && !polylock_is_held(l))
        fail("acquired but not held", "polylock_try_acquire", s);
      if (s == POLYLOCK_OK && acquired) {
        polylock_status again = CALL(polylock_try_acquire(l, &acquired));
        if (again != POLYLOCK_USAGE) fail("second acquisition", "polylock_try_acquire", again);
      }
      break;
    }
    case 8: { /* acquire with a tiny timeout */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      int64_t timeout = u8(r) % 4;
      polylock_status s = CALL(polylock_acquire(l, timeout));
      expect_invalid(s, bad, "polylock_acquire");
      break;
    }
    case 9: { /* acquire with a hook */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      struct hook h = {.mode = u8(r) % HOOK_MODES, .lock = l};
      bool b2;
      int s2;
      h.other = PICK_LOCK(r, &b2, &s2, &local);
      h.client = PICK_CLIENT(r, &b2, &s2, &local);
      /* Negative (wait forever) only when the hook cancels the wait. */
      int64_t timeout = h.mode == HOOK_CANCEL && (u8(r) & 1) ? -1 : (int64_t)(u8(r) % 4);
      bool no_hook = h.mode == HOOK_COUNT && (u8(r) & 1);
      polylock_status s = CALL(polylock_acquire_with(l, timeout, no_hook ? NULL : on_wait_started,
                                                     no_hook ? (void *)&local : &h));
      expect_invalid(s, bad, "polylock_acquire_with");
      if (h.fired > 1) fail("wait-started hook ran twice", "polylock_acquire_with", s);
      if (h.mode == HOOK_FREE_CLIENT && h.fired && h.inner == POLYLOCK_OK) forget_client(h.client);
      if (h.mode == HOOK_FREE_LOCK && h.fired && h.inner == POLYLOCK_OK) forget_lock(h.other);
      if (h.mode == HOOK_CANCEL && h.fired && s != POLYLOCK_CANCELLED && s != POLYLOCK_OK)
        fail("cancelled wait", "polylock_acquire_with", s);
      break;
    }
    case 10: { /* cancel with nothing pending */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      polylock_status s = CALL(polylock_acquire_cancel(l));
      expect_invalid(s, bad, "polylock_acquire_cancel");
      if (!bad && slot >= 0 && s != POLYLOCK_OK) fail("idle cancel", "polylock_acquire_cancel", s);
      break;
    }
    case 11: { /* auto renew */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      polylock_status s = CALL(polylock_lock_set_auto_renew(l, u8(r) & 1));
      expect_invalid(s, bad, "polylock_lock_set_auto_renew");
      break;
    }
    case 12: { /* renew */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      polylock_status s = CALL(polylock_renew(l));
      expect_invalid(s, bad, "polylock_renew");
      break;
    }
    case 13:
    case 14: { /* release, twice */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      release_twice(l, bad);
      break;
    }
    case 15: { /* queries */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      bool held = polylock_is_held(l);
      bool due = polylock_needs_renew(l);
      uint64_t left = polylock_time_to_expiration_ms(l);
      if (bad && (held || due || left != 0)) fail("dead handle answered", "queries", 0);
      if (!held && left != 0) fail("time left without a lease", "queries", 0);
      break;
    }
    case 16: { /* fencing token */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      bool has = false;
      uint64_t token = 0;
      uint8_t nulls = u8(r) % 8;
      polylock_status s = CALL(polylock_fencing_token(l, nulls == 1 ? NULL : &has,
                                                      nulls == 2 ? NULL : &token));
      if (nulls != 1 && nulls != 2) expect_invalid(s, bad, "polylock_fencing_token");
      if (s == POLYLOCK_OK && !has) fail("memory:// lease without a token", "polylock_fencing_token", s);
      break;
    }
    case 17: { /* holder: caller-owned string */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      char *holder = NULL;
      bool null_out = (u8(r) % 8) == 0;
      polylock_status s = CALL(polylock_holder(l, null_out ? NULL : &holder));
      if (!null_out) expect_invalid(s, bad, "polylock_holder");
      if (s == POLYLOCK_OK) {
        if (holder == NULL) fail("no holder written", "polylock_holder", s);
        (void)strlen(holder);
      }
      polylock_string_free(holder);
      break;
    }
    case 18:
    case 19: { /* lost callbacks: register, replace, clear */
      polylock_lock *l = PICK_LOCK(r, &bad, &slot, &local);
      uint8_t how = u8(r) % 6;
      polylock_status s;
      switch (how) {
      case 0: /* clear */
        s = CALL(polylock_on_lost(l, NULL, NULL, NULL));
        break;
      case 1: /* clear, handing over a user_data to free */
        s = CALL(polylock_on_lost(l, NULL, user_data_new(), user_data_free));
        break;
      case 2: /* a user_data polylock must not touch */
        s = CALL(polylock_on_lost(l, on_lost_opaque, (void *)(uintptr_t)u64(r),
                                  (u8(r) & 1) ? NULL : ignore_free));
        break;
      default:
        s = CALL(polylock_on_lost(l, on_lost, user_data_new(), user_data_free));
        break;
      }
      expect_invalid(s, bad, "polylock_on_lost");
      break;
    }
    case 20: { /* register / unregister */
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      static const char *const namespaces[] = {"ns", "fuzz", "a/b"};
      char *ns = pick_text(r, namespaces, 3);
      char *name = pick_text(r, valid_names, 4);
      char *value = pick_text(r, valid_values, 4);
      polylock_status s = CALL(polylock_register(c, ns, name, value));
      expect_invalid(s, bad, "polylock_register");
      if (u8(r) & 1) CALL(polylock_unregister(c, ns, name));
      free(ns);
      free(name);
      free(value);
      break;
    }
    case 21: { /* whereis, list: caller-owned strings */
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      static const char *const namespaces[] = {"ns", "fuzz", "a/b"};
      char *ns = pick_text(r, namespaces, 3);
      char *name = pick_text(r, valid_names, 4);
      bool null_out = (u8(r) % 8) == 0;
      char *value = NULL, *json = NULL;
      polylock_status s = CALL(polylock_whereis(c, ns, name, null_out ? NULL : &value));
      if (!null_out) expect_invalid(s, bad, "polylock_whereis");
      if (value != NULL) (void)strlen(value);
      polylock_string_free(value);
      s = CALL(polylock_registry_list(c, ns, null_out ? NULL : &json));
      if (!null_out) expect_invalid(s, bad, "polylock_registry_list");
      if (s == POLYLOCK_OK && (json == NULL || json[0] != '{'))
        fail("registry list", "polylock_registry_list", s);
      polylock_string_free(json);
      free(ns);
      free(name);
      break;
    }
    case 22: { /* unregister alone */
      polylock_client *c = PICK_CLIENT(r, &bad, &slot, &local);
      char *name = pick_text(r, valid_names, 4);
      polylock_status s = CALL(polylock_unregister(c, "ns", name));
      expect_invalid(s, bad, "polylock_unregister");
      free(name);
      break;
    }
    default: { /* static strings */
      int32_t status = (int32_t)u64(r);
      const char *name = polylock_status_name(status);
      if (name == NULL) fail("NULL status name", "polylock_status_name", status);
      (void)strlen(name);
      const char *version = polylock_version();
      if (version == NULL || version[0] == '\0') fail("no version", "polylock_version", 0);
      (void)strlen(polylock_last_error());
      polylock_string_free(NULL);
      break;
    }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader r = {data, size};
  memset(clients, 0, sizeof clients);
  memset(client_live, 0, sizeof client_live);
  memset(locks, 0, sizeof locks);
  memset(lock_live, 0, sizeof lock_live);

  run_ops(&r);

  /* Free everything, in an order the input picks: locks first or clients
   * first (a lock handle keeps its client's connection alive). */
  bool clients_first = size > 0 && (data[size - 1] & 1);
  for (int pass = 0; pass < 2; pass++) {
    if ((pass == 0) == clients_first) {
      for (int i = 0; i < NCLIENTS; i++)
        if (client_live[i]) {
          polylock_status s = CALL(polylock_client_free(clients[i]));
          if (s != POLYLOCK_OK) fail("freeing a live client", "polylock_client_free", s);
          client_live[i] = false;
        }
    } else {
      for (int i = 0; i < NLOCKS; i++)
        if (lock_live[i]) {
          polylock_status s = CALL(polylock_lock_free(locks[i]));
          if (s != POLYLOCK_OK) fail("freeing a live lock", "polylock_lock_free", s);
          forget_lock(locks[i]);
        }
    }
  }
  /* Freed already: every one is invalid now. */
  for (int i = 0; i < NLOCKS; i++)
    if (locks[i] != NULL) expect_invalid(CALL(polylock_lock_free(locks[i])), true, "lock_free again");
  for (int i = 0; i < NCLIENTS; i++)
    if (clients[i] != NULL)
      expect_invalid(CALL(polylock_client_free(clients[i])), true, "client_free again");

  long left = atomic_load(&outstanding_user_data);
  if (left != 0) {
    fprintf(stderr, "fuzz_calls: %ld lost-callback user_data never freed\n", left);
    abort();
  }
  return 0;
}
