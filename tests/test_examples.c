/*
 * test_examples.c - run every program in $BUILD/examples (default
 * build/examples) and check that it exits 0 and prints the lines we expect.
 *
 * The examples check themselves; the expected lines here are worked out
 * from the documented semantics (e.g. next-fit must hand out every free ID
 * once before reusing any), so a wrong demo cannot pass by agreeing with
 * itself.
 */
#include "test.h"

#include <dirent.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <time.h>

#define	EXAMPLE_TIMEOUT_MS	120000	/* sanitizer builds are slow */
#define	OUTMAX			65536

typedef struct example {
	const char	*ex_name;
	const char	*ex_lines[8];	/* exact lines, NULL-terminated */
} example_t;

static const example_t examples[] = {
	{ "pid_alloc", {
		"pid_alloc: first 10 IDs: 1 2 3 4 5 6 7 8 9 10",
		"pid_alloc: freed 3..7, next ID: 11",
		"pid_alloc: 32761 short-lived processes got 32761 distinct "
		    "IDs: 12..32767, then wrapped to 3..7",
		"pid_alloc: after a full cycle the first reused ID is 12",
		"pid_alloc: table full after 32761 more IDs (ENOMEM)",
		"pid_alloc: all checks passed",
		NULL } },
	{ "addrspace", {
		"addrspace: 256 KiB BAR from the top of the MMIO arena: "
		    "0xfffc0000",
		"addrspace: constrained request on the empty child: NULL, "
		    "ENOMEM (no import)",
		"addrspace: all checks passed",
		NULL } },
};
#define	NEXAMPLES	(sizeof (examples) / sizeof (examples[0]))

static char exdir[1024];

/*
 * Run path with stdout and stderr into out; returns the wait status, or -1
 * if it could not be started or ran past the timeout (then it is killed).
 */
static int
run_capture(const char *path, char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	char *argv[2] = { (char *)path, NULL };
	struct timespec t0, t1;
	int fds[2], status = 0, timedout = 0;
	size_t n = 0;
	pid_t pid;

	out[0] = '\0';
	if (pipe(fds) != 0)
		return (-1);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	/* Its own process group, so a timeout kills all it started. */
	posix_spawnattr_init(&sa);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&sa, 0);
	fflush(NULL);
	if (posix_spawn(&pid, path, &fa, &sa, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&sa);
		close(fds[0]);
		close(fds[1]);
		return (-1);
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	close(fds[1]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		long ms;
		ssize_t r;
		int pr;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= EXAMPLE_TIMEOUT_MS) {
			timedout = 1;
			kill(-pid, SIGKILL);
			break;
		}
		pr = poll(&pfd, 1, (int)(EXAMPLE_TIMEOUT_MS - ms));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		r = tu_read_more(fds[0], out, outlen, &n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
	}
	out[n] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return (timedout ? -1 : status);
}

/* True if text has line as one whole line. */
static int
has_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') &&
		    (p[len] == '\n' || p[len] == '\0'))
			return (1);
		p++;
	}
	return (0);
}

static void
run_example(const char *name, const char *const *lines)
{
	char path[1536], *out;
	struct stat sb;
	int st, i, failed_before = test_cur_failed;

	snprintf(path, sizeof (path), "%s/%s", exdir, name);
	CHECKF(stat(path, &sb) == 0, "%s is missing", path);
	if (stat(path, &sb) != 0)
		return;
	out = malloc(OUTMAX);
	CHECK(out != NULL);
	if (out == NULL)
		return;
	st = run_capture(path, out, OUTMAX);
	CHECKF(st != -1, "%s could not run or timed out", path);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "%s: wait status %#x", path, st);
	for (i = 0; lines != NULL && lines[i] != NULL; i++)
		CHECKF(has_line(out, lines[i]), "%s did not print \"%s\"",
		    name, lines[i]);
	CHECKF(strstr(out, "FAILED") == NULL && strstr(out, "leaked") == NULL,
	    "%s reported a problem", name);
	if (test_cur_failed != failed_before)
		fprintf(stderr, "  --- %s printed:\n%s  ---\n", name, out);
	free(out);
}

static const example_t *
find_example(const char *name)
{
	size_t i;

	for (i = 0; i < NEXAMPLES; i++)
		if (strcmp(examples[i].ex_name, name) == 0)
			return (&examples[i]);
	return (NULL);
}

static void
test_pid_alloc(void)
{
	run_example("pid_alloc", find_example("pid_alloc")->ex_lines);
}

static void
test_addrspace(void)
{
	run_example("addrspace", find_example("addrspace")->ex_lines);
}

/* Examples added later without expected lines must at least exit 0. */
static void
test_other_examples(void)
{
	struct dirent *de;
	struct stat sb;
	char path[1536];
	DIR *d;
	int n = 0;

	d = opendir(exdir);
	CHECKF(d != NULL, "cannot open %s", exdir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || find_example(de->d_name) != NULL)
			continue;
		snprintf(path, sizeof (path), "%s/%s", exdir, de->d_name);
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
		    (sb.st_mode & S_IXUSR) == 0)
			continue;
		run_example(de->d_name, NULL);
		n++;
	}
	closedir(d);
	if (getenv("TEST_VERBOSE") != NULL)
		fprintf(stderr, "  %d other example(s)\n", n);
}

int
main(int argc, char **argv)
{
	const char *build = getenv("BUILD");

	(void) argc;
	snprintf(exdir, sizeof (exdir), "%s/examples",
	    build != NULL && build[0] != '\0' ? build : "build");
	RUN(test_pid_alloc);
	RUN(test_addrspace);
	RUN(test_other_examples);
	return (test_summary(argv[0]));
}
