/*
 * test.h - the project's minimal test harness.
 *
 * A test binary calls RUN(fn) for each test function and ends with
 * return test_summary(argv[0]);  each test counts as passed when none of its
 * CHECKs failed.  The summary line "NAME: N passed, N failed" is summed by
 * tests/run.sh.
 */
#ifndef _UMEM_TEST_H
#define	_UMEM_TEST_H

#define	_GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int test_passed, test_failed, test_cur_failed;
static const char *test_cur_name;

#define	CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "  FAIL %s: %s:%d: %s\n", test_cur_name,	\
		    __FILE__, __LINE__, #cond);				\
		test_cur_failed++;					\
	}								\
} while (0)

/* CHECK with a printf-style explanation on failure. */
#define	CHECKF(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "  FAIL %s: %s:%d: %s: ", test_cur_name,	\
		    __FILE__, __LINE__, #cond);				\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		test_cur_failed++;					\
	}								\
} while (0)

#define	RUN(fn) do {							\
	test_cur_name = #fn;						\
	test_cur_failed = 0;						\
	fn();								\
	if (test_cur_failed == 0) {					\
		test_passed++;						\
		if (getenv("TEST_VERBOSE") != NULL)			\
			fprintf(stderr, "  ok   %s\n", #fn);		\
	} else {							\
		test_failed++;						\
	}								\
} while (0)

static inline int
test_summary(const char *argv0)
{
	const char *name = strrchr(argv0, '/');

	printf("%s: %d passed, %d failed\n", name ? name + 1 : argv0,
	    test_passed, test_failed);
	fflush(stdout);
	return (test_failed == 0 ? 0 : 1);
}

/*
 * Run fn(arg) in a forked child with stderr captured.  Returns the child's
 * wait status; the captured text (NUL-terminated, truncated) is put in out.
 */
static inline int
test_in_child(void (*fn)(void *), void *arg, char *out, size_t outlen)
{
	int fds[2], status = 0;
	pid_t pid;
	size_t n = 0;

	if (pipe(fds) != 0)
		return (-1);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return (-1);
	if (pid == 0) {
		signal(SIGABRT, SIG_DFL);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn(arg);
		_exit(0);
	}
	close(fds[1]);
	for (;;) {
		ssize_t r = read(fds[0], out + n, outlen - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == outlen - 1) {
			char sink[256];
			while (read(fds[0], sink, sizeof (sink)) > 0)
				;
			break;
		}
	}
	out[n] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return (status);
}

#define	CHILD_ABORTED(st)	(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT)

/* Deterministic PRNG for reproducible randomized tests (xorshift64*). */
static inline unsigned long long
test_rand(unsigned long long *s)
{
	unsigned long long x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (x * 2685821657736338717ull);
}

#endif /* _UMEM_TEST_H */
