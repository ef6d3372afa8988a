// Prints its arguments and environment, then exits with the status given
// as its first argument (0 when there is none).
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
  printf("argc=%d\n", argc);
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env %s\n", *e);
  const char *home = getenv("KILN_TEST_VAR");
  printf("KILN_TEST_VAR=%s\n", home ? home : "(unset)");
  fflush(stdout);
  if (argc > 1) exit(atoi(argv[1]));
  return 0;
}
