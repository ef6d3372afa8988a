// File and directory operations beneath the preopened directory named by
// argv[1]: create, write, append, seek, pread/pwrite, truncate, rename,
// symlink/readlink, hard link, readdir (sorted), set times, unlink and
// rmdir. Prints one line per step; leaves only "result.txt" behind.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static char path_buf[8][256];
static int path_next;

// `root/rel`, in one of a few rotating buffers.
static const char *at(const char *root, const char *rel) {
  char *p = path_buf[path_next++ % 8];
  snprintf(p, 256, "%s/%s", root, rel);
  return p;
}

static void check(int ok, const char *what) {
  printf("%s: %s\n", what, ok ? "ok" : strerror(errno));
}

// Lists a directory with raw fd_readdir calls into a buffer of `size`
// bytes, resuming from the last whole entry's cookie; returns the count.
static int count_raw(int dirfd, size_t size) {
  uint8_t buf[256];
  __wasi_dircookie_t cookie = 0;
  int count = 0;
  for (;;) {
    __wasi_size_t used;
    if (__wasi_fd_readdir(dirfd, buf, size, cookie, &used) != 0) return -1;
    size_t off = 0;
    int whole = 0;
    while (off + sizeof(__wasi_dirent_t) <= used) {
      __wasi_dirent_t d;
      memcpy(&d, buf + off, sizeof d);
      if (off + sizeof d + d.d_namlen > used) break;
      off += sizeof d + d.d_namlen;
      cookie = d.d_next;
      count++;
      whole++;
    }
    if (used < size) return count;
    if (whole == 0) return -2;  // buffer too small for one entry
  }
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *root = argv[1];
  char buf[64];
  struct stat st;

  int made = mkdir(at(root, "d"), 0755) == 0;
  check(made, "mkdir d");
  if (!made) return 1;
  int fd = open(at(root, "d/a.txt"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  check(fd >= 0, "create d/a.txt");
  check(write(fd, "hello world\n", 12) == 12, "write");
  close(fd);

  fd = open(at(root, "d/a.txt"), O_WRONLY | O_APPEND);
  check(write(fd, "more\n", 5) == 5, "append");
  close(fd);
  check(stat(at(root, "d/a.txt"), &st) == 0 && st.st_size == 17, "size after append is 17");

  fd = open(at(root, "d/a.txt"), O_RDWR);
  check(lseek(fd, 6, SEEK_SET) == 6, "lseek 6");
  memset(buf, 0, sizeof buf);
  check(read(fd, buf, 5) == 5 && strcmp(buf, "world") == 0, "read 'world'");
  check(lseek(fd, 0, SEEK_CUR) == 11, "tell 11");
  check(lseek(fd, -5, SEEK_END) == 12, "lseek -5 from end");
  check(pwrite(fd, "HELLO", 5, 0) == 5, "pwrite at 0");
  check(lseek(fd, 0, SEEK_CUR) == 12, "pwrite leaves the offset");
  memset(buf, 0, sizeof buf);
  check(pread(fd, buf, 11, 0) == 11 && strcmp(buf, "HELLO world") == 0, "pread 'HELLO world'");
  check(ftruncate(fd, 5) == 0, "ftruncate 5");
  check(fstat(fd, &st) == 0 && st.st_size == 5 && S_ISREG(st.st_mode), "fstat size 5, regular");
  check(lseek(fd, -1, SEEK_SET) == -1 && errno == EINVAL, "lseek before start is EINVAL");
  close(fd);

  check(rename(at(root, "d/a.txt"), at(root, "d/b.txt")) == 0, "rename a -> b");
  check(access(at(root, "d/a.txt"), F_OK) == -1 && errno == ENOENT, "a is gone");
  check(symlink("b.txt", at(root, "d/link")) == 0, "symlink link -> b.txt");
  memset(buf, 0, sizeof buf);
  check(readlink(at(root, "d/link"), buf, sizeof buf) == 5 && strcmp(buf, "b.txt") == 0, "readlink 'b.txt'");
  check(lstat(at(root, "d/link"), &st) == 0 && S_ISLNK(st.st_mode), "lstat: symlink");
  check(stat(at(root, "d/link"), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 5, "stat through link");
  fd = open(at(root, "d/link"), O_RDONLY);
  memset(buf, 0, sizeof buf);
  check(fd >= 0 && read(fd, buf, sizeof buf) == 5 && strcmp(buf, "HELLO") == 0, "read through link");
  close(fd);
  check(open(at(root, "d/link"), O_RDONLY | O_NOFOLLOW) == -1 && errno == ELOOP, "O_NOFOLLOW on a link is ELOOP");
  check(link(at(root, "d/b.txt"), at(root, "d/hard")) == 0, "hard link");
  check(stat(at(root, "d/b.txt"), &st) == 0 && st.st_nlink == 2, "nlink 2");
  check(mkdir(at(root, "d/sub"), 0755) == 0, "mkdir d/sub");
  check(mkdir(at(root, "d/sub"), 0755) == -1 && errno == EEXIST, "mkdir again is EEXIST");

  DIR *dir = opendir(at(root, "d"));
  check(dir != NULL, "opendir d");
  char *names[16];
  int count = 0;
  struct dirent *e;
  while (dir && (e = readdir(dir)) != NULL && count < 16) names[count++] = strdup(e->d_name);
  qsort(names, count, sizeof names[0], cmp);
  printf("entries:");
  for (int i = 0; i < count; i++) printf(" %s", names[i]);
  printf("\n");
  rewinddir(dir);
  int again = 0;
  while ((e = readdir(dir)) != NULL) again++;
  check(again == count, "rewinddir lists them again");
  closedir(dir);

  check(mkdir(at(root, "many"), 0755) == 0, "mkdir many");
  for (int i = 0; i < 300; i++) {
    char name[32];
    snprintf(name, sizeof name, "many/file_with_a_long_name_%03d", i);
    int m = open(at(root, name), O_CREAT | O_WRONLY, 0644);
    close(m);
  }
  dir = opendir(at(root, "many"));
  int listed = 0, sum = 0;
  while ((e = readdir(dir)) != NULL) {
    listed++;
    if (strncmp(e->d_name, "file_with_a_long_name_", 22) == 0) sum += atoi(e->d_name + 22);
  }
  printf("many: %d entries, sum %d\n", listed, sum);
  int dfd = dirfd(dir);
  printf("raw readdir, 100-byte buffer: %d entries\n", count_raw(dfd, 100));
  printf("raw readdir, 256-byte buffer: %d entries\n", count_raw(dfd, 256));
  printf("raw readdir, 10-byte buffer: %d\n", count_raw(dfd, 10));
  closedir(dir);
  for (int i = 0; i < 300; i++) {
    char name[32];
    snprintf(name, sizeof name, "many/file_with_a_long_name_%03d", i);
    unlink(at(root, name));
  }
  check(rmdir(at(root, "many")) == 0, "rmdir many");

  struct timespec times[2] = {{.tv_sec = 1000000000, .tv_nsec = 0}, {.tv_sec = 1234567890, .tv_nsec = 500}};
  check(utimensat(AT_FDCWD, at(root, "d/b.txt"), times, 0) == 0, "utimensat");
  check(stat(at(root, "d/b.txt"), &st) == 0 && st.st_mtim.tv_sec == 1234567890 && st.st_atim.tv_sec == 1000000000,
        "times were set");

  check(unlink(at(root, "d/link")) == 0, "unlink link");
  check(unlink(at(root, "d/hard")) == 0, "unlink hard");
  check(rmdir(at(root, "d")) == -1 && errno == ENOTEMPTY, "rmdir non-empty is ENOTEMPTY");
  check(unlink(at(root, "d/sub")) == -1, "unlink on a directory fails");
  check(rmdir(at(root, "d/sub")) == 0, "rmdir d/sub");
  check(unlink(at(root, "d/b.txt")) == 0, "unlink b");
  check(rmdir(at(root, "d")) == 0, "rmdir d");
  check(open(at(root, "missing"), O_RDONLY) == -1 && errno == ENOENT, "open missing is ENOENT");

  FILE *f = fopen(at(root, "result.txt"), "w");
  check(f != NULL, "fopen result.txt");
  fprintf(f, "done\n");
  fclose(f);
  return 0;
}
