/*
 * test.h - the project's minimal test harness.
 *
 * A test binary calls RUN(fn) for each test function and ends with
 * return test_summary(argv[0]);  each test counts as passed when none of its
 * CHECKs failed.  The summary line "NAME: N passed, N failed" is summed by
 * tests/run.sh.
 *
 * Nothing here uses libumem: the malloc tests, which are never linked with
 * it (they run under LD_PRELOAD), include this file too.
 */
#ifndef _UMEM_TEST_H
#define	_UMEM_TEST_H

#define	_GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define	TU_UNUSED	__attribute__((unused))

/* Sanitizer builds: TU_SAN (ASan or TSan), TU_TSAN (TSan). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define	TU_SAN	1
#endif
#if defined(__SANITIZE_THREAD__)
#define	TU_TSAN	1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(TU_SAN)
#define	TU_SAN	1
#endif
#if __has_feature(thread_sanitizer)
#ifndef TU_SAN
#define	TU_SAN	1
#endif
#ifndef TU_TSAN
#define	TU_TSAN	1
#endif
#endif
#endif

/* Hide a value from the optimiser so that it cannot fold calls on it. */
static TU_UNUSED size_t
tu_opaque(size_t v)
{
	__asm__ __volatile__("" : "+r" (v));
	return (v);
}

/*
 * Hide a pointer and make it escape, so that the compiler can neither
 * drop an allocation nor track a pointer across free().
 */
static TU_UNUSED void *
tu_launder(void *p)
{
	__asm__ __volatile__("" : "+r" (p) : : "memory");
	return (p);
}

/* Overwrite the dead stack below the caller, where addresses linger. */
static TU_UNUSED __attribute__((noinline)) void
tu_clobber_stack(void)
{
	volatile char pad[32768];

	memset((char *)pad, 0, sizeof (pad));
	__asm__ __volatile__("" : : "r" (pad) : "memory");
}

/*
 * The child side of a case run with tu_run_self(): tu_say() writes with
 * write(2), so nothing is lost when the case aborts, and CCHECK counts
 * failures in tu_child_failed, which the child reports at its end.
 */
static TU_UNUSED int tu_child_failed;

static TU_UNUSED __attribute__((format(printf, 1, 2))) void
tu_say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof (line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n < sizeof (line) ?
	    (size_t)n : sizeof (line) - 1) < 0)
		_exit(5);
}

#define	CCHECK(cond, ...) do {						\
	if (!(cond)) {							\
		tu_say("CHILD-FAIL line %d: %s: ", __LINE__, #cond);	\
		tu_say(__VA_ARGS__);					\
		tu_say("\n");						\
		tu_child_failed++;					\
	}								\
} while (0)

/* Lines of /proc/self/maps: the process's mappings, or -1. */
static TU_UNUSED long
tu_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	if (f == NULL)
		return (-1);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return (n);
}

/*
 * Does the environment name this libumem option (UMEM_OPTIONS)?  Tests of
 * a default (magazine sizes, per-CPU mode, page faults saved) skip those
 * checks when the suite runs under another mode (make test-modes).
 */
static TU_UNUSED int
tu_option_given(const char *name)
{
	const char *o = getenv("UMEM_OPTIONS");

	return (o != NULL && strstr(o, name) != NULL);
}

/*
 * A stress test's volume: n, or a quarter of it under TEST_LIGHT (make
 * test-modes, which runs the suite four more times: the modes need the
 * paths, not the volume).
 */
static TU_UNUSED long
tu_volume(long n)
{
	const char *l = getenv("TEST_LIGHT");

	return (l != NULL && *l != '\0' && *l != '0' && n >= 4 ? n / 4 : n);
}

/* A check of a default that the environment changed: say so. */
#define	TU_SKIP_IF_OPTION(name, why) do {				\
	if (tu_option_given(name)) {					\
		fprintf(stderr, "  skip %s: UMEM_OPTIONS=%s: %s\n",	\
		    __func__, (name), (why));				\
		return;							\
	}								\
} while (0)

extern char **environ;

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

/*
 * Children: running this binary again with another environment (the
 * library reads its own once, at initialisation) and reading what it
 * printed.  A binary that uses tu_run_self() starts main() with
 *	if (argc >= 3 && strcmp(argv[1], "--child") == 0)
 *		return (child_main(argv[2]));
 */

/* A wait status in words: "exit 1", "signal 6 (Aborted)", ... */
static TU_UNUSED const char *
tu_status_str(int st, char *buf, size_t len)
{
	if (st == -1)
		snprintf(buf, len, "could not start");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(st),
		    strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ?
		    " = timeout, hung?" : "");
	else
		snprintf(buf, len, "status %#x", st);
	return (buf);
}

/*
 * One read(2) from fd into out + *n, advancing *n; once outlen - 1 bytes
 * are in, what comes is read and dropped.  Returns what read returned.
 */
static TU_UNUSED ssize_t
tu_read_more(int fd, char *out, size_t outlen, size_t *n)
{
	char sink[512];
	ssize_t r;

	if (*n < outlen - 1)
		r = read(fd, out + *n, outlen - 1 - *n);
	else
		r = read(fd, sink, sizeof (sink));
	if (r > 0 && *n < outlen - 1)
		*n += (size_t)r;
	return (r);
}

/* Read everything from fd into out (NUL-terminated, truncated). */
static TU_UNUSED void
tu_slurp(int fd, char *out, size_t outlen)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = tu_read_more(fd, out, outlen, &n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
	}
	out[n] = '\0';
}

/*
 * Run this binary again as "argv0 --child what" with the environment
 * variables in envset ("NAME=value" strings, NULL-terminated) replacing
 * any of the same name; NAME= alone removes the variable.  The child is
 * killed by SIGALRM after timeout_s seconds.  Its stdout and stderr go to
 * out.  Returns the wait status (-1 if it could not be started).
 */
static TU_UNUSED int
tu_run_self(const char *what, const char *const *envset, unsigned timeout_s,
    char *out, size_t outlen)
{
	static char self[4096];
	char *argv[4];
	char **envp;
	size_t ne = 0, i, j, k = 0;
	int fds[2], status = -1;
	pid_t pid;
	ssize_t len;

	len = readlink("/proc/self/exe", self, sizeof (self) - 1);
	if (len <= 0)
		return (-1);
	self[len] = '\0';
	argv[0] = self;
	argv[1] = (char *)"--child";
	argv[2] = (char *)what;
	argv[3] = NULL;

	while (environ[ne] != NULL)
		ne++;
	for (j = 0; envset[j] != NULL; j++)
		;
	envp = calloc(ne + j + 1, sizeof (char *));
	if (envp == NULL)
		return (-1);
	for (i = 0; i < ne; i++) {
		int skip = 0;

		for (j = 0; envset[j] != NULL; j++) {
			size_t nl = strcspn(envset[j], "=");

			if (strncmp(environ[i], envset[j], nl) == 0 &&
			    environ[i][nl] == '=')
				skip = 1;
		}
		if (!skip)
			envp[k++] = environ[i];
	}
	for (j = 0; envset[j] != NULL; j++) {
		const char *eq = strchr(envset[j], '=');

		if (eq != NULL && eq[1] != '\0')
			envp[k++] = (char *)envset[j];
	}
	envp[k] = NULL;

	if (pipe(fds) != 0) {
		free(envp);
		return (-1);
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		free(envp);
		return (-1);
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		signal(SIGALRM, SIG_DFL);
		alarm(timeout_s);	/* survives execve */
		execve(self, argv, envp);
		_exit(127);
	}
	close(fds[1]);
	free(envp);
	tu_slurp(fds[0], out, outlen);
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return (status);
}

/*
 * Run writer(fd) (umem_findleaks, say) on a fresh memory file and read what
 * it wrote into out (NUL-terminated, truncated; shown on stderr with
 * TEST_VERBOSE).  Returns what writer returned, -2 if there was no memory
 * file (out is then left alone).
 */
static TU_UNUSED int
tu_write_read(int (*writer)(int), const char *name, char *out, size_t outlen)
{
	int fd = memfd_create(name, 0);
	int rv;

	if (fd < 0)
		return (-2);
	rv = writer(fd);
	(void) lseek(fd, 0, SEEK_SET);
	tu_slurp(fd, out, outlen);
	close(fd);
	if (getenv("TEST_VERBOSE") != NULL)
		fputs(out, stderr);
	return (rv);
}

/* tu_status_str into a static buffer, for one use at a time (a message). */
static TU_UNUSED const char *
tu_status(int st)
{
	static char buf[96];

	return (tu_status_str(st, buf, sizeof (buf)));
}

/* The rest of the line after key in text (at most len - 1 bytes), or NULL. */
static TU_UNUSED const char *
tu_field(const char *text, const char *key, char *val, size_t len)
{
	const char *s = strstr(text, key);
	size_t n;

	if (s == NULL)
		return (NULL);
	s += strlen(key);
	n = strcspn(s, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(val, s, n);
	val[n] = '\0';
	return (val);
}

/* Does some line of text start with prefix and contain needle? */
static TU_UNUSED int
tu_line_has(const char *text, const char *prefix, const char *needle)
{
	for (const char *s = text; s != NULL && *s != '\0'; ) {
		const char *e = strchr(s, '\n');
		size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
		size_t pl = strlen(prefix);

		if (n >= pl && strncmp(s, prefix, pl) == 0) {
			char line[1024];

			if (n >= sizeof (line))
				n = sizeof (line) - 1;
			memcpy(line, s, n);
			line[n] = '\0';
			if (strstr(line, needle) != NULL)
				return (1);
		}
		s = e != NULL ? e + 1 : NULL;
	}
	return (0);
}

#endif /* _UMEM_TEST_H */
