// Clocks and sleeping: prints the wall-clock time (the host compares it
// with its own), checks that the monotonic clock never goes back, that
// sleeps and poll timeouts last at least as long as asked, and that the
// CPU-time clock advances while computing.
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static int64_t ns(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(void) {
  printf("realtime=%lld\n", (long long)(ns(CLOCK_REALTIME) / 1000000000));
  struct timespec res;
  printf("monotonic_res_ok=%d\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0);
  printf("realtime_res_ok=%d\n", clock_getres(CLOCK_REALTIME, &res) == 0 && res.tv_nsec > 0);

  int64_t prev = ns(CLOCK_MONOTONIC), back = 0;
  for (int i = 0; i < 10000; i++) {
    int64_t now = ns(CLOCK_MONOTONIC);
    if (now < prev) back++;
    prev = now;
  }
  printf("monotonic_went_back=%lld\n", (long long)back);

  int64_t t0 = ns(CLOCK_MONOTONIC);
  struct timespec req = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
  nanosleep(&req, NULL);
  int64_t slept = ns(CLOCK_MONOTONIC) - t0;
  printf("nanosleep_100ms_ok=%d\n", slept >= 100000000 && slept < 5000000000LL);

  t0 = ns(CLOCK_MONOTONIC);
  poll(NULL, 0, 50);
  slept = ns(CLOCK_MONOTONIC) - t0;
  printf("poll_50ms_ok=%d\n", slept >= 50000000 && slept < 5000000000LL);

  // An absolute deadline on the monotonic clock, 30 ms ahead.
  __wasi_timestamp_t now;
  (void)!__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &now);
  __wasi_subscription_t sub = {.userdata = 7, .u = {.tag = __WASI_EVENTTYPE_CLOCK}};
  sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
  sub.u.u.clock.timeout = now + 30000000;
  sub.u.u.clock.flags = __WASI_SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME;
  __wasi_event_t ev;
  __wasi_size_t nev = 0;
  int err = __wasi_poll_oneoff(&sub, &ev, 1, &nev);
  __wasi_timestamp_t after;
  (void)!__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &after);
  printf("abstime_ok=%d\n", err == 0 && nev == 1 && ev.userdata == 7 && ev.type == __WASI_EVENTTYPE_CLOCK &&
                                after >= now + 30000000);

  int64_t c0 = ns(CLOCK_PROCESS_CPUTIME_ID);
  volatile uint64_t x = 1;
  for (int i = 0; i < 20000000; i++) x = x * 6364136223846793005ULL + 1;
  printf("cputime_advanced=%d\n", ns(CLOCK_PROCESS_CPUTIME_ID) > c0);
  return 0;
}
