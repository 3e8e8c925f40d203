/*
 * mallocreport - the tables and figure of bench/malloc_bench.sh.
 *
 *	mallocreport [--svg FILE] RAWFILE
 *
 * RAWFILE holds one line per run of mallocbench ("alloc=A rep=R rc=N"
 * followed by the RESULT fields), and "# " lines that name the
 * allocators, the workloads, the allocators that could not run (n/a, with
 * why), the failed runs and facts about the machine.  For each workload
 * and allocator it takes the median over the repetitions of the time per
 * operation and of the peak RSS (VmHWM); the best peer of a row (every
 * allocator but libumem is a peer) is the one with the lowest median.
 * Time ratios are the median of the per-repetition ratios to that peer's
 * run of the same repetition; peak RSS ratios divide the medians (RSS
 * hardly varies between runs).  It prints the ratios with a
 * geometric mean per allocator, the fragmentation replay's RSS at each
 * step, and the goals for libumem as measured yes/no.
 *
 * Exit status: 0, or 1 if any run failed (a crash, a failed content
 * check, a timeout, or an LD_PRELOAD that did not take).
 */
#define	_GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

#define	MAXA		8
#define	MAXW		32
#define	MAXR		64
#define	MAXERR		64
#define	CANDIDATE	"libumem"	/* everything else is a peer */

/* The fragmentation replay's steps: RESULT keys and what they mean. */
#define	NFRAG		7
#define	FRAG_IDLE	5	/* the step after idling */
static const char *const frag_rss_key[NFRAG] = {
	"rss0_kb", "rss1_kb", "rss2_kb", "rss3_kb", "rss4_kb", "rss5_kb",
	"rss6_kb"
};
static const char *const frag_live_key[NFRAG] = {
	NULL, "live1_kb", "live2_kb", "live3_kb", "live4_kb", "live4_kb", NULL
};
static const char *const frag_step[NFRAG] = {
	"at start",
	"1. after burst A (objects of 16 B..4 KiB)",
	"2. after freeing 7 of every 8 of A",
	"3. after burst B (1/4 as many, 1.5x + 8 B)",
	"4. after freeing B",
	"5. after idling (no calls)",
	"6. after freeing the rest (no idling)",
};

static char alloc[MAXA][32];
static int nalloc;
static char na_reason[MAXA][256];	/* "" = ran */
static char wl[MAXW][32];
static int nwl;
static char meta[32][256];
static int nmeta;
static char errs[MAXERR][512];
static int nerr, nerr_dropped;
static long idle_ms = -1;

/* Per allocator, workload, repetition; NAN = no run yet. */
static double t_ns[MAXA][MAXW][MAXR];
static double hwm[MAXA][MAXW][MAXR];
static double cpus[MAXA][MAXW][MAXR];	/* CPU time / wall time */
static int failed[MAXA][MAXW];
static double frag_rss[MAXA][NFRAG][MAXR];
static double frag_live[NFRAG];
static int nrep;

/* Medians and ratios. */
static double med_t[MAXA][MAXW], med_m[MAXA][MAXW];
static double rat_t[MAXA][MAXW], rat_m[MAXA][MAXW];
static int best_t[MAXW], best_m[MAXW];
static double gm_t[MAXA], gm_m[MAXA], worst_t[MAXA];
static int worst_w[MAXA];

/* Copy, cut to fit. */
static void
scopy(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static int
find(char names[][32], int n, const char *s)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (i);
	return (-1);
}

static int
is_peer(int a)
{
	return (strcmp(alloc[a], CANDIDATE) != 0);
}

static int
ran(int a)
{
	return (na_reason[a][0] == '\0');
}

static int
cmp_dbl(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a < b ? -1 : a > b);
}

/* Median of the finite values of v[0..n), n <= MAXA * MAXW; NAN if none. */
static double
median(const double *v, int n)
{
	double s[MAXA * MAXW];
	int i, k = 0;

	for (i = 0; i < n && i < MAXA * MAXW; i++)
		if (isfinite(v[i]))
			s[k++] = v[i];
	if (k == 0)
		return (NAN);
	qsort(s, (size_t)k, sizeof (double), cmp_dbl);
	return (k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2);
}

/* "pair-64" belongs to "pair": the geometric means weigh workloads, */
/* not table rows, so seven sizes of pairs count as one workload. */
static void
wl_class(const char *w, char *out, size_t len)
{
	size_t n = strcspn(w, "-");

	snprintf(out, len, "%.*s", (int)n, w);
}

/* The space-separated words of s, appended to out. */
static void
words(char *s, char out[][32], int *n, int max)
{
	char *save = NULL, *tok;

	for (tok = strtok_r(s, " \t\n", &save); tok != NULL && *n < max;
	    tok = strtok_r(NULL, " \t\n", &save))
		scopy(out[(*n)++], 32, tok);
}

/* The value of " key=value" in a RESULT line (or "key=value" first). */
static const char *
field(const char *line, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key), n;
	const char *p;

	for (p = line; (p = strstr(p, key)) != NULL; p += kl) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=')
			break;
	}
	if (p == NULL)
		return (NULL);
	p += kl + 1;
	n = strcspn(p, " \t\n");
	snprintf(buf, len, "%.*s", (int)n, p);
	return (buf);
}

static int
parse(const char *path)
{
	FILE *fp = fopen(path, "r");
	char line[4096], v[256], w[256], c[256];
	int a, i, k, r;

	if (fp == NULL) {
		perror(path);
		return (-1);
	}
	for (a = 0; a < MAXA; a++)
		for (i = 0; i < MAXW; i++)
			for (r = 0; r < MAXR; r++)
				t_ns[a][i][r] = hwm[a][i][r] =
				    cpus[a][i][r] = NAN;
	for (a = 0; a < MAXA; a++)
		for (k = 0; k < NFRAG; k++)
			for (r = 0; r < MAXR; r++)
				frag_rss[a][k][r] = NAN;
	for (k = 0; k < NFRAG; k++)
		frag_live[k] = NAN;
	frag_live[NFRAG - 1] = 0;
	while (fgets(line, sizeof (line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "# allocs ", 9) == 0) {
			words(line + 9, alloc, &nalloc, MAXA);
		} else if (strncmp(line, "# workloads ", 12) == 0) {
			words(line + 12, wl, &nwl, MAXW);
		} else if (strncmp(line, "# na ", 5) == 0) {
			char name[32];
			const char *why;

			if (sscanf(line + 5, "%31s", name) == 1 &&
			    (a = find(alloc, nalloc, name)) >= 0) {
				why = line + 5 + strlen(name);
				why += strspn(why, " ");
				scopy(na_reason[a], sizeof (na_reason[a]),
				    *why != '\0' ? why : "not run");
			}
		} else if (strncmp(line, "# meta ", 7) == 0) {
			if (nmeta < 32)
				scopy(meta[nmeta++], sizeof (meta[0]),
				    line + 7);
		} else if (strncmp(line, "# error ", 8) == 0) {
			if (nerr < MAXERR)
				scopy(errs[nerr++], sizeof (errs[0]),
				    line + 8);
			else
				nerr_dropped++;
		} else if (line[0] != '#' && line[0] != '\0') {
			if (field(line, "alloc", v, sizeof (v)) == NULL ||
			    (a = find(alloc, nalloc, v)) < 0 ||
			    field(line, "wl", w, sizeof (w)) == NULL ||
			    (i = find(wl, nwl, w)) < 0 ||
			    field(line, "rep", v, sizeof (v)) == NULL ||
			    (r = atoi(v) - 1) < 0 || r >= MAXR) {
				fprintf(stderr, "mallocreport: bad line: %s\n",
				    line);
				continue;
			}
			if (r + 1 > nrep)
				nrep = r + 1;
			if (field(line, "rc", v, sizeof (v)) == NULL ||
			    atoi(v) != 0 ||
			    field(line, "ns_per_op", v, sizeof (v)) == NULL) {
				failed[a][i] = 1;
				continue;
			}
			t_ns[a][i][r] = strtod(v, NULL);
			if (field(line, "hwm_kb", v, sizeof (v)) != NULL)
				hwm[a][i][r] = strtod(v, NULL) / 1024;
			if (field(line, "secs", v, sizeof (v)) != NULL &&
			    field(line, "cpu_secs", c, sizeof (c)) != NULL &&
			    strtod(v, NULL) > 0)
				cpus[a][i][r] = strtod(c, NULL) /
				    strtod(v, NULL);
			if (strcmp(w, "frag") != 0)
				continue;
			for (k = 0; k < NFRAG; k++) {
				if (field(line, frag_rss_key[k], v,
				    sizeof (v)) != NULL)
					frag_rss[a][k][r] = strtod(v, NULL) /
					    1024;
				if (frag_live_key[k] != NULL &&
				    field(line, frag_live_key[k], v,
				    sizeof (v)) != NULL)
					frag_live[k] = strtod(v, NULL) / 1024;
			}
			if (field(line, "idle_ms", v, sizeof (v)) != NULL)
				idle_ms = atol(v);
		}
	}
	fclose(fp);
	if (nalloc == 0 || nwl == 0) {
		fprintf(stderr, "mallocreport: %s names no allocators or "
		    "workloads\n", path);
		return (-1);
	}
	return (0);
}

static void
compute(void)
{
	char cls[MAXW][32];
	int a, i, c, j;

	for (i = 0; i < nwl; i++)
		wl_class(wl[i], cls[i], sizeof (cls[i]));
	for (i = 0; i < nwl; i++) {
		best_t[i] = best_m[i] = -1;
		for (a = 0; a < nalloc; a++) {
			med_t[a][i] = failed[a][i] ? NAN :
			    median(t_ns[a][i], nrep);
			med_m[a][i] = failed[a][i] ? NAN :
			    median(hwm[a][i], nrep);
			if (!is_peer(a))
				continue;
			if (isfinite(med_t[a][i]) && (best_t[i] < 0 ||
			    med_t[a][i] < med_t[best_t[i]][i]))
				best_t[i] = a;
			if (isfinite(med_m[a][i]) && (best_m[i] < 0 ||
			    med_m[a][i] < med_m[best_m[i]][i]))
				best_m[i] = a;
		}
		for (a = 0; a < nalloc; a++) {
			double q[MAXR];
			int r;

			/*
			 * Time: the median of the per-repetition ratios to the
			 * best peer.  A repetition runs the allocators of a
			 * workload one after the other, so a slow spell of the
			 * machine (which moves single runs by 20-50% here)
			 * mostly hits both sides of a ratio.
			 */
			for (r = 0; r < nrep; r++)
				q[r] = best_t[i] < 0 ? NAN :
				    t_ns[a][i][r] / t_ns[best_t[i]][i][r];
			rat_t[a][i] = failed[a][i] ? NAN : median(q, nrep);
			rat_m[a][i] = best_m[i] < 0 ? NAN :
			    med_m[a][i] / med_m[best_m[i]][i];
		}
	}
	/* Geometric means: mean log ratio per workload class, then the */
	/* mean over classes.  NAN if any row is missing (failed runs). */
	for (a = 0; a < nalloc; a++) {
		double st = 0, sm = 0;
		int ncls = 0, done[MAXW] = { 0 };

		worst_t[a] = NAN;
		worst_w[a] = -1;
		for (i = 0; i < nwl; i++) {
			double ct = 0, cm = 0;
			int n = 0;

			if (isfinite(rat_t[a][i]) && !(worst_t[a] >=
			    rat_t[a][i])) {
				worst_t[a] = rat_t[a][i];
				worst_w[a] = i;
			}
			if (done[i])
				continue;
			for (j = i; j < nwl; j++) {
				if (strcmp(cls[j], cls[i]) != 0)
					continue;
				done[j] = 1;
				ct += log(rat_t[a][j]);
				cm += log(rat_m[a][j]);
				n++;
			}
			st += ct / n;
			sm += cm / n;
			ncls++;
		}
		gm_t[a] = exp(st / ncls);
		gm_m[a] = exp(sm / ncls);
		for (c = 0; c < nwl; c++)
			if (failed[a][c] || !isfinite(rat_t[a][c]))
				worst_t[a] = NAN;	/* unknown */
	}
}

static void
cell(double v, int a, int i, const char *fmt)
{
	if (!ran(a))
		printf(" %8s", "n/a");
	else if (i >= 0 && failed[a][i])
		printf(" %8s", "FAIL");
	else if (!isfinite(v))
		printf(" %8s", "-");
	else
		printf(fmt, v);
}

static void
header(const char *first, const char *second)
{
	int a;

	printf("%-11s %-19s", first, second);
	for (a = 0; a < nalloc; a++)
		printf(" %8s", alloc[a]);
	printf("\n");
}

/*
 * Run-to-run spread of the times per cell: the range of the middle runs
 * (the fastest and slowest quarter dropped, as a busy spell of the
 * machine hits a few runs hard) over the median.
 */
static void
spread(void)
{
	double all[MAXA * MAXW], worst = 0;
	int a, i, r, n = 0, wa = -1, wi = -1, over = 0;

	for (a = 0; a < nalloc; a++) {
		for (i = 0; i < nwl; i++) {
			double v[MAXR], s;
			int k = 0, q;

			for (r = 0; r < nrep; r++)
				if (isfinite(t_ns[a][i][r]))
					v[k++] = t_ns[a][i][r];
			if (k < 2)
				continue;
			qsort(v, (size_t)k, sizeof (double), cmp_dbl);
			q = k / 4;
			s = (v[k - 1 - q] - v[q]) / median(v, k);
			all[n++] = s;
			over += s > 0.10;
			if (s > worst) {
				worst = s;
				wa = a;
				wi = i;
			}
		}
	}
	if (n == 0 || wa < 0)
		return;
	printf("\nRun-to-run spread of the times (range of the middle runs, "
	    "the fastest and\nslowest quarter dropped, over the median): "
	    "median cell %.0f%%, %d of %d cells\nover 10%%, widest %.0f%% "
	    "(%s, %s).\n", 100 * median(all, n), over, n, 100 * worst,
	    alloc[wa], wl[wi]);
}

/*
 * How much of the machine the runs had: the 2-thread scaling runs keep
 * two threads busy, so CPU time / wall time near the number of CPUs
 * says nothing else ran.  Less: the wall-clock rows (larson, mixed,
 * prodcons, grow, scale) measured the machine's other load as much as the
 * allocators.
 */
static void
busy(void)
{
	double all[MAXA * MAXR];
	int a, r, n = 0, i = find(wl, nwl, "scale-2");

	if (i < 0)
		return;
	for (a = 0; a < nalloc; a++)
		for (r = 0; r < nrep; r++)
			if (isfinite(cpus[a][i][r]) && n < MAXA * MAXR)
				all[n++] = cpus[a][i][r];
	if (n == 0)
		return;
	printf("The scale-2 runs kept %.2f CPUs busy (median of CPU time / "
	    "wall time).\n", median(all, n));
	if (median(all, n) < 1.8)
		printf("Fewer than 2: other programs were running, so the "
		    "wall-clock rows (larson,\nmixed, prodcons, grow, scale) measured them "
		    "too; their ratios are less reliable.\n");
}

static const char *
yesno(int c)
{
	return (c ? "yes" : "NO");
}

static void
goals(void)
{
	int a = find(alloc, nalloc, CANDIDATE), i, i64, anyfail = 0;

	printf("\nGoals of issue 4 for libumem, measured in this run:\n");
	if (a < 0 || !ran(a)) {
		const char *why = a < 0 ? "not in this run" : na_reason[a];

		printf("  geomean time <= 1.00x best peer:       n/a\n"
		    "  no workload worse than 1.25x:          n/a\n"
		    "  peak RSS geomean <= 1.10x best peer:   n/a\n"
		    "  malloc+free 64 B (pair-64) <= fastest: n/a\n"
		    "  (libumem: %s)\n", why);
		return;
	}
	for (i = 0; i < nwl; i++)
		anyfail |= failed[a][i];
	i64 = find(wl, nwl, "pair-64");
	if (anyfail) {
		printf("  none can be judged: libumem failed");
		for (i = 0; i < nwl; i++)
			if (failed[a][i])
				printf(" %s", wl[i]);
		printf("\n");
		return;
	}
	/* Three decimals: a goal missed by rounding must read as missed. */
	printf("  geomean time <= 1.00x best peer:       %s (%.3fx)\n",
	    yesno(gm_t[a] <= 1.0), gm_t[a]);
	printf("  no workload worse than 1.25x:          %s (worst %.3fx, "
	    "%s)\n", yesno(worst_t[a] <= 1.25), worst_t[a],
	    worst_w[a] >= 0 ? wl[worst_w[a]] : "?");
	printf("  peak RSS geomean <= 1.10x best peer:   %s (%.3fx)\n",
	    yesno(gm_m[a] <= 1.10), gm_m[a]);
	if (i64 >= 0)
		printf("  malloc+free 64 B (pair-64) <= fastest: %s (%.3fx "
		    "%s)\n", yesno(rat_t[a][i64] <= 1.0), rat_t[a][i64],
		    best_t[i64] >= 0 ? alloc[best_t[i64]] : "?");
}

static void
tables(void)
{
	int a, i, k;

	printf("mallocbench: allocator workloads under LD_PRELOAD "
	    "(issue 4, part 4)\n");
	for (i = 0; i < nmeta; i++)
		printf("  %s\n", meta[i]);
	printf("  %d repetitions, each run a fresh process; within a "
	    "repetition the\n  allocators take turns per workload in "
	    "rotating order.  Ratios are to the best\n  peer of the row "
	    "(peers: every allocator but libumem; best: lowest median);\n"
	    "  lower is better.  Time: median of the per-repetition ratios "
	    "(paired runs,\n  so that the machine's slow spells cancel).  "
	    "Peak RSS: ratio of the medians.\n", nrep);
	printf("  Geometric means weigh each workload the same: pair-16.."
	    "pair-65536 share one\n  weight, scale-1/2/4 another.\n");
	for (a = 0; a < nalloc; a++)
		if (!ran(a))
			printf("  %s: n/a: %s\n", alloc[a], na_reason[a]);

	printf("\nTable 1. Time per operation, ratio to the best peer.\n");
	header("workload", "best peer");
	for (i = 0; i < nwl; i++) {
		char b[64];

		if (best_t[i] >= 0)
			snprintf(b, sizeof (b), "%.1f ns %s",
			    med_t[best_t[i]][i], alloc[best_t[i]]);
		else
			snprintf(b, sizeof (b), "-");
		printf("%-11s %-19s", wl[i], b);
		for (a = 0; a < nalloc; a++)
			cell(rat_t[a][i], a, i, " %8.2f");
		printf("\n");
	}
	printf("%-11s %-19s", "geomean", "");
	for (a = 0; a < nalloc; a++)
		cell(gm_t[a], a, -1, " %8.2f");
	printf("\n%-11s %-19s", "worst", "");
	for (a = 0; a < nalloc; a++)
		cell(worst_t[a], a, -1, " %8.2f");
	printf("\n  Clock: the process's CPU time (user + system) for the "
	    "one-thread workloads,\n  so that time slices given to other "
	    "programs do not count; wall time for\n  larson, mixed, prodcons, "
	    "grow and scale-T.  Per op: pair, batch, burst, scale:\n  a "
	    "malloc+free pair (scale: wall ns per pair, all threads\n  "
	    "together); larson, mixed: a free+malloc replacement; prodcons:\n"
	    "  an object passed; realloc, grow: a realloc call; frag: an "
	    "object (all\n  steps but the idle).\n");

	printf("\nTable 2. Peak RSS (VmHWM of the process), ratio to the best "
	    "peer.\n");
	header("workload", "best peer");
	for (i = 0; i < nwl; i++) {
		char b[64];

		if (best_m[i] >= 0)
			snprintf(b, sizeof (b), "%.1f MB %s",
			    med_m[best_m[i]][i], alloc[best_m[i]]);
		else
			snprintf(b, sizeof (b), "-");
		printf("%-11s %-19s", wl[i], b);
		for (a = 0; a < nalloc; a++)
			cell(rat_m[a][i], a, i, " %8.2f");
		printf("\n");
	}
	printf("%-11s %-19s", "geomean", "");
	for (a = 0; a < nalloc; a++)
		cell(gm_m[a], a, -1, " %8.2f");
	printf("\n  The small workloads' peaks are mostly the process itself "
	    "plus the\n  allocator's start-up footprint.\n");

	printf("\nTable 3. Median time per operation, ns.\n");
	header("workload", "");
	for (i = 0; i < nwl; i++) {
		printf("%-11s %-19s", wl[i], "");
		for (a = 0; a < nalloc; a++)
			cell(med_t[a][i], a, i, med_t[a][i] < 100 ?
			    " %8.2f" : " %8.1f");
		printf("\n");
	}

	i = find(wl, nwl, "frag");
	if (i >= 0) {
		printf("\nTable 4. Fragmentation replay: RSS (VmRSS) after each "
		    "step, MB (median).\n");
		printf("%-46s %6s", "step", "live");
		for (a = 0; a < nalloc; a++)
			printf(" %8s", alloc[a]);
		printf("\n");
		for (k = 0; k < NFRAG; k++) {
			char st[64];

			if (k == FRAG_IDLE && idle_ms >= 0)
				snprintf(st, sizeof (st), "5. after idling %ld "
				    "ms (no calls)", idle_ms);
			else
				snprintf(st, sizeof (st), "%s", frag_step[k]);
			printf("%-46s", st);
			if (isfinite(frag_live[k]))
				printf(" %6.1f", frag_live[k]);
			else
				printf(" %6s", "");
			for (a = 0; a < nalloc; a++)
				cell(median(frag_rss[a][k], nrep), a, i,
				    " %8.1f");
			printf("\n");
		}
		printf("%-46s %6s", "peak (VmHWM)", "");
		for (a = 0; a < nalloc; a++)
			cell(med_m[a][i], a, i, " %8.1f");
		printf("\n%-46s %6s", "RSS after idling / live", "");
		for (a = 0; a < nalloc; a++)
			cell(median(frag_rss[a][FRAG_IDLE], nrep) /
			    frag_live[FRAG_IDLE], a, i, " %8.2f");
		printf("\n  live: bytes the program holds (requested sizes), "
		    "in MB.\n");
	}
	spread();
	busy();
	if (nerr > 0) {
		printf("\nFailed runs (%d):\n", nerr + nerr_dropped);
		for (k = 0; k < nerr; k++)
			printf("  %s\n", errs[k]);
		if (nerr_dropped > 0)
			printf("  ... and %d more\n", nerr_dropped);
	}
	goals();
}

/*
 * ------------------------------------------------------------------------
 * The figure: two grouped-bar panels (time and peak RSS ratios, drawn
 * here) and two line panels drawn by plot.h (pair latency against size,
 * throughput against threads).
 * ------------------------------------------------------------------------
 */
#define	FIG_W	1100
#define	BAR_H	380
#define	BAR_CAP	4.0	/* taller bars are cut and labelled */

static const char *
color(int a)
{
	if (strcmp(alloc[a], CANDIDATE) == 0)
		return ("#000000");
	return (plot_palette[a % 6]);
}

static void
bars(FILE *fp, const char *title, double rat[MAXA][MAXW], double goal,
    const char *goal_label)
{
	double left = 60, right = FIG_W - 20, top = 70, bottom = BAR_H - 70;
	double ymax = 1.5, gw, bw, y;
	int a, i, n = 0, idx;

	for (a = 0; a < nalloc; a++) {
		if (!ran(a))
			continue;
		n++;
		for (i = 0; i < nwl; i++)
			if (isfinite(rat[a][i]) && rat[a][i] > ymax)
				ymax = rat[a][i];
	}
	ymax = ymax > BAR_CAP ? BAR_CAP : ceil(ymax * 2) / 2;
	if (n == 0)
		n = 1;
	gw = (right - left) / nwl;
	bw = gw * 0.84 / n;

#define	YPX(v)	(bottom - (v) / ymax * (bottom - top))
	fprintf(fp, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" "
	    "font-size=\"15\" font-weight=\"bold\">", FIG_W / 2);
	plot_escape(fp, title);
	fputs("</text>\n", fp);
	for (y = 0; y <= ymax + 1e-9; y += 0.5) {
		fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
		    "y2=\"%.1f\" stroke=\"#ddd\"/>\n<text x=\"%.1f\" "
		    "y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", left,
		    YPX(y), right, YPX(y), left - 6, YPX(y) + 4, y);
	}
	fprintf(fp, "<text transform=\"translate(18,%.1f) rotate(-90)\" "
	    "text-anchor=\"middle\">ratio to best peer</text>\n",
	    (top + bottom) / 2);
	for (i = 0; i < nwl; i++) {
		double x0 = left + gw * i + gw * 0.08;

		for (a = 0, idx = 0; a < nalloc; a++) {
			double v, x = x0 + bw * idx;

			if (!ran(a))
				continue;
			idx++;
			if (failed[a][i]) {
				fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" "
				    "font-size=\"9\" fill=\"#c00\" "
				    "transform=\"rotate(-90 %.1f %.1f)\">FAIL"
				    "</text>\n", x + bw / 2 + 3, bottom - 4,
				    x + bw / 2 + 3, bottom - 4);
				continue;
			}
			v = rat[a][i];
			if (!isfinite(v))
				continue;
			fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			    "height=\"%.1f\" fill=\"%s\"><title>%s %s: %.2f"
			    "</title></rect>\n", x, YPX(fmin(v, ymax)),
			    bw * 0.92, bottom - YPX(fmin(v, ymax)), color(a),
			    alloc[a], wl[i], v);
			if (v > ymax)
				fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" "
				    "font-size=\"9\" text-anchor=\"middle\">"
				    "%.1f</text>\n", x + bw / 2,
				    top - 4 - 10 * (idx % 2), v);
		}
		fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
		    "transform=\"rotate(-35 %.1f %.1f)\">%s</text>\n",
		    left + gw * (i + 0.5), bottom + 14, left + gw * (i + 0.5),
		    bottom + 14, wl[i]);
	}
	fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
	    "stroke=\"#333\"/>\n", left, YPX(1.0), right, YPX(1.0));
	/* The goal: a dashed line, labelled after the legend. */
	if (goal > 0 && goal < ymax) {
		double lx = left + 110 * nalloc;

		fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
		    "y2=\"%.1f\" stroke=\"#c00\" stroke-dasharray=\"6,4\"/>\n"
		    "<line x1=\"%.1f\" y1=\"42\" x2=\"%.1f\" y2=\"42\" "
		    "stroke=\"#c00\" stroke-dasharray=\"6,4\"/>\n"
		    "<text x=\"%.1f\" y=\"46\" fill=\"#c00\">", left,
		    YPX(goal), right, YPX(goal), lx, lx + 30, lx + 36);
		plot_escape(fp, goal_label);
		fputs("</text>\n", fp);
	}
	fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
	    "height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", left, top,
	    right - left, bottom - top);
	/* Legend along the top. */
	for (a = 0, idx = 0; a < nalloc; a++) {
		double x = left + 110 * idx++;

		fprintf(fp, "<rect x=\"%.1f\" y=\"36\" width=\"12\" "
		    "height=\"12\" fill=\"%s\"/>\n<text x=\"%.1f\" y=\"46\">",
		    x, ran(a) ? color(a) : "#ccc", x + 16);
		plot_escape(fp, alloc[a]);
		fputs(ran(a) ? "" : " (n/a)", fp);
		fputs("</text>\n", fp);
	}
#undef	YPX
}

static int
figure(const char *path)
{
	static double px[MAXA][MAXW], py[MAXA][MAXW];
	static double sx[MAXA][MAXW], sy[MAXA][MAXW];
	plot_series_t ps[MAXA], ss[MAXA];
	plot_t pp, sp;
	char sub[256];
	FILE *fp;
	int a, i, n = 0, y = 0;

	for (a = 0; a < nalloc; a++) {
		int np = 0, nt = 0;

		if (!ran(a))
			continue;
		for (i = 0; i < nwl; i++) {
			if (strncmp(wl[i], "pair-", 5) == 0) {
				px[a][np] = atof(wl[i] + 5);
				py[a][np++] = med_t[a][i];
			} else if (strncmp(wl[i], "scale-", 6) == 0) {
				/* pairs per microsecond, all threads */
				sx[a][nt] = atof(wl[i] + 6);
				sy[a][nt++] = 1e3 / med_t[a][i];
			}
		}
		ps[n] = (plot_series_t){ alloc[a], color(a), 0, (size_t)np,
		    px[a], py[a] };
		ss[n++] = (plot_series_t){ alloc[a], color(a), 0, (size_t)nt,
		    sx[a], sy[a] };
	}
	snprintf(sub, sizeof (sub), "median of %d runs", nrep);
	pp = (plot_t){ "malloc+free pair, one thread", sub,
	    "block size, bytes", "ns per pair", 1, 1, 0, 0, FIG_W, 420, ps,
	    (size_t)n };
	sp = (plot_t){ "Scaling: threads of 64-byte pairs, nothing shared",
	    sub, "threads (2 CPUs)", "million pairs per second, all threads",
	    0, 0, 1, 0, FIG_W, 420, ss, (size_t)n };

	if ((fp = fopen(path, "w")) == NULL)
		return (-1);
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	    "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
	    "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
	    "fill=\"white\"/>\n", FIG_W, 2 * BAR_H + 840, FIG_W,
	    2 * BAR_H + 840);
	fprintf(fp, "<g transform=\"translate(0,%d)\">\n", y);
	bars(fp, "Time per operation, ratio to the best peer (median of the "
	    "per-repetition ratios; lower is better)", rat_t, 1.25,
	    "libumem goal: no workload > 1.25x");
	fputs("</g>\n", fp);
	y += BAR_H;
	fprintf(fp, "<g transform=\"translate(0,%d)\">\n", y);
	bars(fp, "Peak RSS (VmHWM), ratio to the best peer (median; lower is "
	    "better)", rat_m, 1.10, "libumem goal: geomean <= 1.10x");
	fputs("</g>\n", fp);
	y += BAR_H;
	fprintf(fp, "<g transform=\"translate(0,%d)\">\n", y);
	plot_panel(&pp, fp, FIG_W, 420);
	fputs("</g>\n", fp);
	y += 420;
	fprintf(fp, "<g transform=\"translate(0,%d)\">\n", y);
	plot_panel(&sp, fp, FIG_W, 420);
	fputs("</g>\n</svg>\n", fp);
	if (ferror(fp)) {
		fclose(fp);
		return (-1);
	}
	return (fclose(fp) == 0 ? 0 : -1);
}

int
main(int argc, char **argv)
{
	const char *svg = NULL;
	int a, i, anyfail = 0;

	if (argc == 4 && strcmp(argv[1], "--svg") == 0)
		svg = argv[2];
	else if (argc != 2) {
		fprintf(stderr, "usage: mallocreport [--svg FILE] RAWFILE\n");
		return (2);
	}
	if (parse(argv[argc - 1]) != 0)
		return (2);
	compute();
	tables();
	if (svg != NULL && figure(svg) != 0) {
		perror(svg);
		return (2);
	}
	for (a = 0; a < nalloc; a++)
		for (i = 0; i < nwl; i++)
			anyfail |= failed[a][i];
	return (anyfail || nerr > 0);
}
