// poll_oneoff with descriptors: stdin (an in-memory pipe holding data) is
// ready at once, stdout is writable at once, a closed descriptor reports
// badf in its event, and a clock alone fires after its timeout.
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

static __wasi_subscription_t fd_sub(__wasi_userdata_t ud, __wasi_eventtype_t type, __wasi_fd_t fd) {
  __wasi_subscription_t s;
  memset(&s, 0, sizeof s);
  s.userdata = ud;
  s.u.tag = type;
  s.u.u.fd_read.file_descriptor = fd;
  return s;
}

static __wasi_subscription_t clock_sub(__wasi_userdata_t ud, __wasi_timestamp_t timeout) {
  __wasi_subscription_t s;
  memset(&s, 0, sizeof s);
  s.userdata = ud;
  s.u.tag = __WASI_EVENTTYPE_CLOCK;
  s.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
  s.u.u.clock.timeout = timeout;
  return s;
}

static void show(const char *what, __wasi_event_t *ev, __wasi_size_t n) {
  printf("%s:", what);
  for (__wasi_size_t i = 0; i < n; i++)
    printf(" [ud=%llu type=%d err=%d nbytes=%llu]", (unsigned long long)ev[i].userdata, ev[i].type, ev[i].error,
           (unsigned long long)ev[i].fd_readwrite.nbytes);
  printf("\n");
}

int main(void) {
  __wasi_event_t ev[4];
  __wasi_size_t n;

  __wasi_subscription_t subs[3] = {fd_sub(1, __WASI_EVENTTYPE_FD_READ, 0), clock_sub(2, 10000000000ULL),
                                   fd_sub(3, __WASI_EVENTTYPE_FD_WRITE, 1)};
  printf("rc=%d\n", __wasi_poll_oneoff(subs, ev, 3, &n));
  show("stdin+clock+stdout", ev, n);

  __wasi_subscription_t bad[2] = {fd_sub(4, __WASI_EVENTTYPE_FD_READ, 99), clock_sub(5, 10000000000ULL)};
  printf("rc=%d\n", __wasi_poll_oneoff(bad, ev, 2, &n));
  show("closed_fd", ev, n);

  __wasi_timestamp_t t0, t1;
  (void)!__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t0);
  __wasi_subscription_t clocks[2] = {clock_sub(6, 40000000), clock_sub(7, 5000000000ULL)};
  printf("rc=%d\n", __wasi_poll_oneoff(clocks, ev, 2, &n));
  (void)!__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t1);
  show("two_clocks", ev, n);
  printf("waited_40ms=%d\n", t1 - t0 >= 40000000 && t1 - t0 < 4000000000ULL);
  return 0;
}
