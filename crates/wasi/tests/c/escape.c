// Tries every way out of the preopened directory it can think of, with
// raw WASI calls so that the runtime (not libc) decides. fd 3 is the
// writable sandbox, fd 4 a read-only preopen; argv[1] is the host's
// absolute path of a file outside the sandbox. Prints one line per
// attempt: "NAME: opened" / "NAME: ok" when it succeeded, else
// "NAME: errno N".
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

#define SANDBOX 3
#define READONLY 4
#define FOLLOW __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW
#define ALL_RIGHTS ((__wasi_rights_t)0x1fffffff)

static void report(const char *name, int err, const char *success) {
  if (err == 0)
    printf("%s: %s\n", name, success);
  else
    printf("%s: errno %d\n", name, err);
}

static void try_open(const char *name, int dirfd, int dirflags, const char *path, int oflags, __wasi_rights_t rights) {
  __wasi_fd_t fd;
  int err = __wasi_path_open(dirfd, dirflags, path, oflags, rights, ALL_RIGHTS, 0, &fd);
  report(name, err, "opened");
  if (err == 0) (void)!__wasi_fd_close(fd);
}

static void try_call(const char *name, int err) { report(name, err, "ok"); }

int main(int argc, char **argv) {
  const char *outside_abs = argc > 1 ? argv[1] : "/etc/passwd";
  __wasi_rights_t rd = __WASI_RIGHTS_FD_READ;

  try_open("dotdot", SANDBOX, FOLLOW, "../secret.txt", 0, rd);
  try_open("dotdot_deep", SANDBOX, FOLLOW, "sub/../../secret.txt", 0, rd);
  try_open("dotdot_dir", SANDBOX, FOLLOW, "..", __WASI_OFLAGS_DIRECTORY, rd);
  try_open("absolute_etc", SANDBOX, FOLLOW, "/etc/passwd", 0, rd);
  try_open("absolute_host_path", SANDBOX, FOLLOW, outside_abs, 0, rd);
  try_open("symlink_to_etc", SANDBOX, FOLLOW, "link_etc/passwd", 0, rd);
  try_open("symlink_to_parent", SANDBOX, FOLLOW, "link_up/secret.txt", 0, rd);
  try_open("symlink_absolute_file", SANDBOX, FOLLOW, "link_abs_secret", 0, rd);
  try_open("symlink_relative_escape", SANDBOX, FOLLOW, "link_rel_secret", 0, rd);
  try_open("symlink_nested_escape", SANDBOX, FOLLOW, "sub/link_deep", 0, rd);
  try_open("symlink_nofollow", SANDBOX, 0, "link_rel_secret", 0, rd);
  try_open("create_through_symlink", SANDBOX, FOLLOW, "link_up/created.txt", __WASI_OFLAGS_CREAT, rd);
  try_open("create_dangling_symlink", SANDBOX, FOLLOW, "link_dangling_out", __WASI_OFLAGS_CREAT, rd);

  try_call("guest_symlink_absolute", __wasi_path_symlink("/etc/passwd", SANDBOX, "g_abs"));
  try_open("follow_guest_symlink_absolute", SANDBOX, FOLLOW, "g_abs", 0, rd);
  try_call("guest_symlink_relative", __wasi_path_symlink("../secret.txt", SANDBOX, "g_rel"));
  try_open("follow_guest_symlink_relative", SANDBOX, FOLLOW, "g_rel", 0, rd);

  try_call("mkdir_outside", __wasi_path_create_directory(SANDBOX, "../newdir"));
  try_call("rename_out", __wasi_path_rename(SANDBOX, "inside.txt", SANDBOX, "../moved.txt"));
  try_call("rename_in", __wasi_path_rename(SANDBOX, "link_up/secret.txt", SANDBOX, "stolen.txt"));
  try_call("hardlink_out", __wasi_path_link(SANDBOX, 0, "inside.txt", SANDBOX, "../hardlink.txt"));
  try_call("hardlink_in", __wasi_path_link(SANDBOX, 0, "../secret.txt", SANDBOX, "stolen2.txt"));
  try_call("unlink_outside", __wasi_path_unlink_file(SANDBOX, "../secret.txt"));
  try_call("unlink_through_symlink", __wasi_path_unlink_file(SANDBOX, "link_up/secret.txt"));
  try_call("rmdir_outside", __wasi_path_remove_directory(SANDBOX, "../outside"));
  __wasi_filestat_t st;
  try_call("stat_outside", __wasi_path_filestat_get(SANDBOX, FOLLOW, "../secret.txt", &st));
  try_call("stat_through_symlink", __wasi_path_filestat_get(SANDBOX, FOLLOW, "link_etc/passwd", &st));
  try_call("set_times_outside", __wasi_path_filestat_set_times(SANDBOX, FOLLOW, "link_up/secret.txt", 0, 0,
                                                                __WASI_FSTFLAGS_MTIM_NOW));
  uint8_t buf[64];
  __wasi_size_t used;
  try_call("readlink_outside", __wasi_path_readlink(SANDBOX, "link_up/outlink", buf, sizeof buf, &used));

  // Through libc's own path handling too.
  FILE *f = fopen("/sandbox/../secret.txt", "r");
  report("libc_dotdot", f ? 0 : errno, "opened");
  f = fopen("/etc/passwd", "r");
  report("libc_absolute", f ? 0 : errno, "opened");

  // The read-only preopen: reading works, changing anything is refused.
  try_open("ro_read", READONLY, FOLLOW, "existing.txt", 0, rd);
  try_open("ro_create", READONLY, FOLLOW, "new.txt", __WASI_OFLAGS_CREAT, rd);
  try_open("ro_write", READONLY, FOLLOW, "existing.txt", 0, rd | __WASI_RIGHTS_FD_WRITE);
  try_open("ro_truncate", READONLY, FOLLOW, "existing.txt", __WASI_OFLAGS_TRUNC, rd);
  try_call("ro_mkdir", __wasi_path_create_directory(READONLY, "newdir"));
  try_call("ro_unlink", __wasi_path_unlink_file(READONLY, "existing.txt"));
  try_call("ro_rename", __wasi_path_rename(READONLY, "existing.txt", READONLY, "renamed.txt"));
  try_call("ro_symlink", __wasi_path_symlink("existing.txt", READONLY, "sym"));
  try_call("ro_set_times", __wasi_path_filestat_set_times(READONLY, FOLLOW, "existing.txt", 0, 0,
                                                           __WASI_FSTFLAGS_MTIM_NOW));
  try_call("ro_rename_into_rw", __wasi_path_rename(READONLY, "existing.txt", SANDBOX, "taken.txt"));
  __wasi_fd_t sub;
  __wasi_rights_t dir_rights = ALL_RIGHTS & ~(__wasi_rights_t)(__WASI_RIGHTS_FD_WRITE | __WASI_RIGHTS_FD_READ);
  int err = __wasi_path_open(READONLY, FOLLOW, "sub", __WASI_OFLAGS_DIRECTORY, dir_rights, ALL_RIGHTS, 0, &sub);
  report("ro_open_subdir", err, "opened");
  try_open("ro_subdir_create", sub, FOLLOW, "new.txt", __WASI_OFLAGS_CREAT, rd);
  return 0;
}
