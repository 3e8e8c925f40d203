/*
 * plot.h - a small SVG line-plot writer for the benchmarks, so that
 * `make bench` draws its figures with nothing but the C compiler (no
 * python, no gnuplot).  Header-only: include it from one *_bench.c.
 *
 * Each axis is linear or log10.  Points whose y is not finite, or not
 * positive on a log axis, are left out and break the line.  Several plots
 * can be stacked as panels of one figure.
 */
#ifndef _BENCH_PLOT_H
#define	_BENCH_PLOT_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#define	PLOT_UNUSED	__attribute__((unused))

typedef struct plot_series {
	const char	*ps_label;
	const char	*ps_color;	/* NULL: next colour of the palette */
	int		ps_dashed;
	size_t		ps_n;
	const double	*ps_x;
	const double	*ps_y;
} plot_series_t;

typedef struct plot {
	const char		*pl_title;
	const char		*pl_subtitle;	/* may be NULL */
	const char		*pl_xlabel;
	const char		*pl_ylabel;
	int			pl_logx;
	int			pl_logy;
	int			pl_yzero;	/* linear y axis starts at 0 */
	int			pl_legend_below; /* legend under the x */
						/* axis, not inside */
	int			pl_width;	/* 0: 800 */
	int			pl_height;	/* 0: 520 */
	const plot_series_t	*pl_series;
	size_t			pl_nseries;
} plot_t;

/* Colour-blind-safe palette (Okabe-Ito). */
static const char *const plot_palette[] = {
	"#0072B2", "#D55E00", "#009E73", "#CC79A7",
	"#E69F00", "#56B4E9", "#000000", "#F0E442"
};

/* Geometry of the drawing area, and how data maps onto it. */
typedef struct plot_axis {
	int	pa_log;
	double	pa_lo, pa_hi;		/* in axis units (log10 if pa_log) */
	double	pa_plo, pa_phi;		/* pixel positions of lo and hi */
} plot_axis_t;

static PLOT_UNUSED void
plot_escape(FILE *fp, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '&': fputs("&amp;", fp); break;
		case '<': fputs("&lt;", fp); break;
		case '>': fputs("&gt;", fp); break;
		case '"': fputs("&quot;", fp); break;
		default: fputc(*s, fp); break;
		}
	}
}

static PLOT_UNUSED int
plot_usable(const plot_axis_t *a, double v)
{
	return (isfinite(v) && (!a->pa_log || v > 0));
}

static PLOT_UNUSED double
plot_map(const plot_axis_t *a, double v)
{
	double u = a->pa_log ? log10(v) : v;

	return (a->pa_plo + (u - a->pa_lo) / (a->pa_hi - a->pa_lo) *
	    (a->pa_phi - a->pa_plo));
}

/* Data range [lo, hi] to axis range: whole decades, or a 1-2-5 step. */
static PLOT_UNUSED double
plot_range(plot_axis_t *a, double lo, double hi, int zero)
{
	double span, step, mag;

	if (a->pa_log) {
		a->pa_lo = floor(log10(lo));
		a->pa_hi = ceil(log10(hi));
		if (a->pa_hi <= a->pa_lo)
			a->pa_hi = a->pa_lo + 1;
		return (1);
	}
	if (lo > 0 && (zero || lo < hi / 3))
		lo = 0;			/* show the origin when it is near */
	if (hi <= lo)
		hi = lo + 1;
	hi += (hi - lo) * 0.04;		/* keep lines off the frame */
	span = hi - lo;
	mag = pow(10, floor(log10(span / 5)));
	step = mag;
	if (span / step > 10)
		step = 2 * mag;
	if (span / step > 10)
		step = 5 * mag;
	if (span / step > 10)
		step = 10 * mag;
	a->pa_lo = floor(lo / step) * step;
	a->pa_hi = ceil(hi / step) * step;
	return (step);
}

/* A tick label: 10^n as a superscript on log axes, %g otherwise. */
static PLOT_UNUSED void
plot_ticklabel(FILE *fp, const plot_axis_t *a, double u)
{
	if (a->pa_log) {
		int e = (int)lrint(u);

		if (e >= 0 && e <= 3)
			fprintf(fp, "%.0f", pow(10, e));
		else
			fprintf(fp, "10<tspan dy=\"-6\" font-size=\"9\">%d"
			    "</tspan>", e);
	} else {
		fprintf(fp, "%g", u);
	}
}

/* One panel, drawn in the box [0, w) x [0, h) of the current group. */
static PLOT_UNUSED void
plot_panel(const plot_t *p, FILE *fp, int w, int h)
{
	double left = 80, right = w - 20, top = p->pl_subtitle ? 62 : 44;
	double bottom = h - 56 - (p->pl_legend_below ?
	    18 * (double)p->pl_nseries + 20 : 0);
	double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
	double xstep, ystep, u;
	plot_axis_t ax = { p->pl_logx, 0, 0, left, right };
	plot_axis_t ay = { p->pl_logy, 0, 0, bottom, top };
	size_t s, i, npal = sizeof (plot_palette) / sizeof (plot_palette[0]);

	for (s = 0; s < p->pl_nseries; s++) {
		const plot_series_t *ps = &p->pl_series[s];

		for (i = 0; i < ps->ps_n; i++) {
			if (!plot_usable(&ax, ps->ps_x[i]) ||
			    !plot_usable(&ay, ps->ps_y[i]))
				continue;
			xlo = fmin(xlo, ps->ps_x[i]);
			xhi = fmax(xhi, ps->ps_x[i]);
			ylo = fmin(ylo, ps->ps_y[i]);
			yhi = fmax(yhi, ps->ps_y[i]);
		}
	}
	if (!(xlo <= xhi) || !(ylo <= yhi)) {
		xlo = ylo = 1;
		xhi = yhi = 10;
	}
	xstep = plot_range(&ax, xlo, xhi, 0);
	ystep = plot_range(&ay, ylo, yhi, p->pl_yzero);

	fprintf(fp, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" "
	    "font-size=\"15\" font-weight=\"bold\">", w / 2);
	plot_escape(fp, p->pl_title);
	fputs("</text>\n", fp);
	if (p->pl_subtitle != NULL) {
		fprintf(fp, "<text x=\"%d\" y=\"42\" text-anchor=\"middle\" "
		    "fill=\"#444\">", w / 2);
		plot_escape(fp, p->pl_subtitle);
		fputs("</text>\n", fp);
	}

	/* Grid (minor decades on log axes), ticks and labels. */
	fputs("<g stroke=\"#ddd\" stroke-width=\"1\">\n", fp);
	for (u = ax.pa_lo; u <= ax.pa_hi + 1e-9; u += xstep) {
		int m;

		fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
		    "y2=\"%.1f\"/>\n", plot_map(&ax, ax.pa_log ? pow(10, u) :
		    u), top, plot_map(&ax, ax.pa_log ? pow(10, u) : u), bottom);
		for (m = 2; ax.pa_log && m <= 9 && u < ax.pa_hi - 1e-9; m++) {
			double x = plot_map(&ax, m * pow(10, u));

			fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
			    "y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n", x, top, x,
			    bottom);
		}
	}
	for (u = ay.pa_lo; u <= ay.pa_hi + 1e-9; u += ystep) {
		int m;
		double y = plot_map(&ay, ay.pa_log ? pow(10, u) : u);

		fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
		    "y2=\"%.1f\"/>\n", left, y, right, y);
		for (m = 2; ay.pa_log && m <= 9 && u < ay.pa_hi - 1e-9; m++) {
			y = plot_map(&ay, m * pow(10, u));
			fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
			    "y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n", left, y,
			    right, y);
		}
	}
	fputs("</g>\n", fp);
	fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
	    "height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", left, top,
	    right - left, bottom - top);
	for (u = ax.pa_lo; u <= ax.pa_hi + 1e-9; u += xstep) {
		fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
		    plot_map(&ax, ax.pa_log ? pow(10, u) : u), bottom + 18);
		plot_ticklabel(fp, &ax, u);
		fputs("</text>\n", fp);
	}
	for (u = ay.pa_lo; u <= ay.pa_hi + 1e-9; u += ystep) {
		fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
		    left - 6, plot_map(&ay, ay.pa_log ? pow(10, u) : u) + 4);
		plot_ticklabel(fp, &ay, u);
		fputs("</text>\n", fp);
	}
	fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
	    (left + right) / 2, bottom + 40);
	plot_escape(fp, p->pl_xlabel);
	fprintf(fp, "</text>\n<text transform=\"translate(18,%.1f) "
	    "rotate(-90)\" text-anchor=\"middle\">", (top + bottom) / 2);
	plot_escape(fp, p->pl_ylabel);
	fputs("</text>\n", fp);

	/* Series: a polyline per unbroken run, a marker per point. */
	for (s = 0; s < p->pl_nseries; s++) {
		const plot_series_t *ps = &p->pl_series[s];
		const char *col = ps->ps_color ? ps->ps_color :
		    plot_palette[s % npal];
		int open = 0;

		for (i = 0; i < ps->ps_n; i++) {
			if (!plot_usable(&ax, ps->ps_x[i]) ||
			    !plot_usable(&ay, ps->ps_y[i])) {
				if (open)
					fputs("\"/>\n", fp);
				open = 0;
				continue;
			}
			if (!open)
				fprintf(fp, "<polyline fill=\"none\" "
				    "stroke=\"%s\" stroke-width=\"2\"%s "
				    "points=\"", col, ps->ps_dashed ?
				    " stroke-dasharray=\"6,4\"" : "");
			open = 1;
			fprintf(fp, "%.1f,%.1f ", plot_map(&ax, ps->ps_x[i]),
			    plot_map(&ay, ps->ps_y[i]));
		}
		if (open)
			fputs("\"/>\n", fp);
		for (i = 0; i < ps->ps_n; i++) {
			if (plot_usable(&ax, ps->ps_x[i]) &&
			    plot_usable(&ay, ps->ps_y[i]))
				fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" "
				    "r=\"3.5\" fill=\"%s\"/>\n",
				    plot_map(&ax, ps->ps_x[i]),
				    plot_map(&ay, ps->ps_y[i]), col);
		}
	}

	/* Legend at the top left inside the frame, or under the x axis */
	/* label; ~7 px per character. */
	for (s = 0, i = 0; s < p->pl_nseries; s++) {
		const char *l = p->pl_series[s].ps_label;

		if (l != NULL && strlen(l) > i)
			i = strlen(l);
	}
	if (p->pl_legend_below)
		top = bottom + 44;
	fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%zu\" "
	    "height=\"%zu\" fill=\"white\" fill-opacity=\"0.85\" "
	    "stroke=\"#999\"/>\n", left + 10, top + 10, 56 + 7 * i,
	    p->pl_nseries * 18 + 8);
	for (s = 0; s < p->pl_nseries; s++) {
		const plot_series_t *ps = &p->pl_series[s];
		const char *col = ps->ps_color ? ps->ps_color :
		    plot_palette[s % npal];
		double y = top + 24 + 18 * (double)s;

		fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
		    "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
		    left + 18, y - 4, left + 48, y - 4, col, ps->ps_dashed ?
		    " stroke-dasharray=\"6,4\"" : "");
		fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
		    "fill=\"%s\"/>\n<text x=\"%.1f\" y=\"%.1f\">",
		    left + 33, y - 4, col, left + 56, y);
		plot_escape(fp, ps->ps_label);
		fputs("</text>\n", fp);
	}
}

/* A figure of n panels, one above the other; 0, or -1 on a write error. */
static PLOT_UNUSED int
plot_svg(const plot_t *p, size_t n, FILE *fp)
{
	int w = 0, h = 0, y = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int pw = p[i].pl_width > 0 ? p[i].pl_width : 800;

		w = pw > w ? pw : w;
		h += p[i].pl_height > 0 ? p[i].pl_height : 520;
	}
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
	    "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
	    "font-size=\"12\">\n"
	    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
	    w, h, w, h);
	for (i = 0; i < n; i++) {
		int ph = p[i].pl_height > 0 ? p[i].pl_height : 520;

		fprintf(fp, "<g transform=\"translate(0,%d)\">\n", y);
		plot_panel(&p[i], fp, w, ph);
		fputs("</g>\n", fp);
		y += ph;
	}
	fputs("</svg>\n", fp);
	return (ferror(fp) ? -1 : 0);
}

/* Write the figure to path; 0, or -1 with errno set. */
static PLOT_UNUSED int
plot_svg_file(const plot_t *p, size_t n, const char *path)
{
	FILE *fp = fopen(path, "w");
	int rc;

	if (fp == NULL)
		return (-1);
	rc = plot_svg(p, n, fp);
	if (fclose(fp) != 0)
		rc = -1;
	return (rc);
}

#endif /* _BENCH_PLOT_H */
