/*
 * bench_plot.c - the SVG of `labyrinth bench --plot`, written by hand (no
 * external tool): ns per pair per candidate (immediate and batch), aggregate
 * throughput by thread count, and the alloc and free latency percentiles of
 * each candidate, all on log scales with labelled grid lines.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_common.h"

#define W 1180       /* image width                      */
#define LM 170       /* left margin: candidate names     */
#define RM 120       /* right margin: value labels       */
#define ROW 30       /* height of a candidate's row      */
#define PW (W - LM - RM)

static const char *const pcol[5] = {"#2ca02c", "#1f77b4", "#ff7f0e", "#d62728", "#555555"};
static const char *const pname[5] = {"p50", "p99", "p99.9", "p99.99", "max"};
static const char *const tcol[8] = {"#4c72b0", "#dd8452", "#55a868", "#c44e52",
                                    "#8172b3", "#937860", "#da8bc3", "#8c8c8c"};

struct axis {
	double lo, hi; /* powers of ten */
};

static struct axis log_axis(double mn, double mx)
{
	struct axis a = {1, 10};
	if (!(mn > 0) || !isfinite(mn) || !isfinite(mx))
		return a;
	a.lo = pow(10, floor(log10(mn)));
	a.hi = pow(10, ceil(log10(mx)));
	if (a.hi <= a.lo)
		a.hi = a.lo * 10;
	return a;
}

static double xpos(struct axis a, double v)
{
	if (v < a.lo)
		v = a.lo;
	return LM + PW * (log10(v) - log10(a.lo)) / (log10(a.hi) - log10(a.lo));
}

static void fmtv(char *b, size_t n, double v)
{
	if (!isfinite(v))
		snprintf(b, n, "n/a");
	else if (v >= 1e6)
		snprintf(b, n, "%.1fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(b, n, "%.0fk", v / 1e3);
	else if (v >= 100)
		snprintf(b, n, "%.0f", v);
	else if (v >= 10)
		snprintf(b, n, "%.1f", v);
	else
		snprintf(b, n, "%.2f", v);
}

static void text(FILE *f, double x, double y, const char *anchor, const char *style, const char *s)
{
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" %s>", x, y, anchor, style);
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
	fputs("</text>\n", f);
}

/* Grid lines at 1, 2, 5 x 10^k with labels, and the panel's frame. */
static void grid(FILE *f, struct axis a, double y0, double h, const char *unit)
{
	fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#bbbbbb\"/>\n", LM, y0,
	        PW, h);
	for (double d = a.lo; d <= a.hi * 1.0001; d *= 10)
		for (int m = 1; m <= 5; m += (m == 1 ? 1 : 3)) {
			double v = d * m;
			if (v > a.hi * 1.0001)
				break;
			double x = xpos(a, v);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\"/>\n", x,
			        y0, x, y0 + h, m == 1 ? "#cccccc" : "#ebebeb");
			char b[32];
			if (v >= 1e6)
				snprintf(b, sizeof b, "%gM", v / 1e6);
			else if (v >= 1e4)
				snprintf(b, sizeof b, "%gk", v / 1e3);
			else
				snprintf(b, sizeof b, "%g", v);
			text(f, x, y0 + h + 14, "middle", m == 1 ? "font-size=\"11\" fill=\"#333\"" : "font-size=\"10\" fill=\"#888\"",
			     b);
		}
	text(f, LM + PW / 2.0, y0 + h + 30, "middle", "font-size=\"11\" fill=\"#333\"", unit);
}

/* A panel's title, 40 px above its plot; its legend row goes 14 px above. */
static void title(FILE *f, double y, const char *s)
{
	text(f, 16, y - 40, "start", "font-size=\"14\" font-weight=\"bold\" fill=\"#222\"", s);
}

static void legend_box(FILE *f, double x, double y, const char *col, const char *label, int marker)
{
	if (marker < 0)
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n", x, y - 9, col);
	else
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", x + 7, y - 4, col);
	text(f, x + 19, y, "start", "font-size=\"11\" fill=\"#333\"", label);
}

static void marker(FILE *f, int k, double x, double y)
{
	const char *c = pcol[k];
	switch (k) {
	case 0:
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", x, y, c);
		break;
	case 1:
		fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\"/>\n", x - 4.5, y - 4.5, c);
		break;
	case 2:
		fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\"/>\n", x, y - 6, x + 6, y + 5, x - 6, y + 5, c);
		break;
	case 3:
		fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"%s\"/>\n", x, y - 6, x + 6, y, x, y + 6,
		        x - 6, y, c);
		break;
	default:
		fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"2.2\"/>\n", x - 5,
		        y - 5, x + 5, y + 5, x - 5, y + 5, x + 5, y - 5, c);
	}
}

static void names(FILE *f, const struct plot_row *r, int n, double y0)
{
	for (int i = 0; i < n; i++) {
		double y = y0 + ROW * i;
		if (i % 2)
			fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"#f0f0f0\"/>\n", LM, y, PW, ROW);
		text(f, LM - 8, y + ROW / 2.0 + 4, "end", "font-size=\"12\" fill=\"#222\"", r[i].name);
	}
}

int bench_plot_svg(FILE *f, const struct plot_row *r, int n, unsigned maxt, const char *ttl, double timer_ns)
{
	unsigned nt = maxt > 8 ? 8 : maxt;
	double ph = ROW * n;        /* a panel's plot height */
	double gap = 100;           /* title and legend above, axis labels below */
	double H = 40 + 4 * (ph + gap) + 10;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
	           "font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n",
	        W, H, W, H);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	text(f, W / 2.0, 24, "middle", "font-size=\"16\" font-weight=\"bold\" fill=\"#111\"", ttl);

	/* panel 1: ns per pair */
	double y = 40 + 56;
	double mn = INFINITY, mx = 0;
	for (int i = 0; i < n; i++) {
		double v[4] = {r[i].imm_lo, r[i].imm, r[i].bat_lo, r[i].bat};
		for (int k = 0; k < 4; k++)
			if (isfinite(v[k]) && v[k] > 0)
				mn = fmin(mn, v[k]), mx = fmax(mx, v[k]);
	}
	struct axis a = log_axis(mn, mx);
	title(f, y, "ns per order-0 alloc+free pair, 1 thread (median; whisker: min..max of rounds; lower is better)");
	legend_box(f, LM, y - 12, tcol[0], "immediate (alloc, then free at once)", -1);
	legend_box(f, LM + 260, y - 12, tcol[1], "batch (64 Ki allocations, then the frees in random order)", -1);
	grid(f, a, y, ph, "ns per pair (log scale)");
	names(f, r, n, y);
	for (int i = 0; i < n; i++) {
		double yy = y + ROW * i;
		double v[2] = {r[i].imm, r[i].bat}, lo[2] = {r[i].imm_lo, r[i].bat_lo}, hi[2] = {r[i].imm_hi, r[i].bat_hi};
		for (int k = 0; k < 2; k++) {
			double by = yy + 5 + k * 10;
			if (!isfinite(v[k]))
				continue;
			double x = xpos(a, v[k]);
			fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"9\" fill=\"%s\"/>\n", LM, by, x - LM, tcol[k]);
			double xh = fmin(xpos(a, hi[k]), LM + PW); /* beyond the axis: clipped, with an arrow */
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" stroke-width=\"1\"/>\n",
			        xpos(a, lo[k]), by + 4.5, xh, by + 4.5);
			if (hi[k] > a.hi)
				fprintf(f, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1f\" stroke=\"#222\" fill=\"none\"/>\n", xh - 5,
				        by + 1, xh, by + 4.5, xh - 5, by + 8);
			char b[64], h[32];
			fmtv(b, sizeof b, v[k]);
			if (hi[k] > a.hi) {
				fmtv(h, sizeof h, hi[k]);
				snprintf(b + strlen(b), sizeof b - strlen(b), " (max %s)", h);
			}
			text(f, fmin(fmax(x, xh) + 4, (double)(LM + PW + 4)), by + 8.5, "start", "font-size=\"10\" fill=\"#333\"", b);
		}
	}

	/* panel 2: throughput by threads */
	y += ph + gap;
	mn = INFINITY, mx = 0;
	for (int i = 0; i < n; i++)
		for (unsigned t = 1; t <= nt; t++)
			if (isfinite(r[i].mps[t]) && r[i].mps[t] > 0)
				mn = fmin(mn, r[i].mps[t]), mx = fmax(mx, r[i].mps[t]);
	a = log_axis(mn, mx);
	title(f, y, "throughput, immediate pairs, all threads together (median; higher is better)");
	for (unsigned t = 1; t <= nt; t++) {
		char b[32];
		snprintf(b, sizeof b, "%u thread%s", t, t > 1 ? "s" : "");
		legend_box(f, LM + 100.0 * (t - 1), y - 12, tcol[(t - 1) % 8], b, -1);
	}
	grid(f, a, y, ph, "million pairs per second (log scale)");
	names(f, r, n, y);
	double bh = (ROW - 8.0) / nt;
	for (int i = 0; i < n; i++)
		for (unsigned t = 1; t <= nt; t++) {
			double v = r[i].mps[t];
			if (!isfinite(v))
				continue;
			double by = y + ROW * i + 4 + bh * (t - 1), x = xpos(a, v);
			fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", LM, by, x - LM,
			        bh - 1, tcol[(t - 1) % 8]);
			char b[32];
			fmtv(b, sizeof b, v);
			text(f, x + 4, by + bh - 2, "start", "font-size=\"9\" fill=\"#333\"", b);
		}

	/* panels 3 and 4: latency percentiles */
	for (int op = 0; op < 2; op++) {
		y += ph + gap;
		mn = INFINITY, mx = 0;
		for (int i = 0; i < n; i++)
			for (int k = 0; k < 5; k++) {
				double v = op ? r[i].lf[k] : r[i].la[k];
				if (isfinite(v) && v > 0)
					mn = fmin(mn, v), mx = fmax(mx, v);
			}
		a = log_axis(mn, mx);
		char t[200];
		snprintf(t, sizeof t, "%s latency, steady pattern, each call timed alone (ns; includes the timer's %.0f ns)",
		         op ? "free" : "alloc", timer_ns);
		title(f, y, t);
		for (int k = 0; k < 5; k++) {
			double lx = LM + 70.0 * k;
			marker(f, k, lx + 6, y - 16);
			text(f, lx + 15, y - 12, "start", "font-size=\"11\" fill=\"#333\"", pname[k]);
		}
		text(f, LM + 370, y - 12, "start", "font-size=\"11\" fill=\"#555\"",
		     "(p50..p99.99: median of rounds; max: largest of any round; label: p50 / p99.9)");
		grid(f, a, y, ph, "ns per call (log scale)");
		names(f, r, n, y);
		for (int i = 0; i < n; i++) {
			const double *v = op ? r[i].lf : r[i].la;
			double yy = y + ROW * i + ROW / 2.0;
			if (!isfinite(v[0]))
				continue;
			double xe = isfinite(v[4]) ? xpos(a, v[4]) : xpos(a, v[3]);
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-width=\"1.5\"/>\n",
			        xpos(a, v[0]), yy, xe, yy);
			for (int k = 0; k < 5; k++)
				if (isfinite(v[k]))
					marker(f, k, xpos(a, v[k]), yy);
			char b[96], p50[16], p999[16];
			fmtv(p50, sizeof p50, v[0]);
			fmtv(p999, sizeof p999, v[2]);
			snprintf(b, sizeof b, "%s / %s", p50, p999);
			text(f, xe + 10, yy + 4, "start", "font-size=\"10\" fill=\"#333\"", b);
		}
	}
	fprintf(f, "</svg>\n");
	return 0;
}
