/*
 * qpv_noyau: DuckDB extension (C API) that assigns points to QPV with the project's grid index.
 *
 * The grid is built in Python (geo/points.py, _build_grid) and written to a binary file
 * (geo/noyau.py, write_index_file). This extension reads it and runs, per DuckDB vector of
 * 2,048 rows and in DuckDB's own threads, what the SQL path of geo/points.py does with a hash
 * join and list lambdas: coordinate check, cell lookup level by level, crossing-number test on
 * the clipped edges of the cell's candidate polygons. The arithmetic is the SQL path's, in the
 * same order (compile with -ffp-contract=off), so that the two paths give the same answers.
 *
 * The index is read when the extension is loaded, from the file named by the environment
 * variable QPV_NOYAU_INDEX; GEOS, for the exact re-test of points near an edge, from the
 * library named by QPV_NOYAU_GEOS. Each DuckDB database the extension is loaded in gets its
 * own functions, whose ENUM types carry that index's QPV codes:
 *   qpv_affecter(x DOUBLE, y DOUBLE) -> STRUCT(statut, code_qpv, nb_qpv, proche, etat,
 *       code_qpv_apres_inversion)   WGS84 coordinate check, then assignment
 *   qpv_compte(i INTEGER) -> BIGINT   rows answered so far by qpv_affecter in this database:
 *       i = 0 in a QPV, 1 outside, 2 invalid, 3 swapped, 4 in several QPV
 *
 * Internal result of the assignment of one point (int64): bit 2 "near an edge, answered by
 * GEOS"; bit 3 outside every QPV; bits 8-15 number of distinct QPV containing the point;
 * bits 16-31 index + 1 of the smallest QPV code containing it (0: none).
 */
#define DUCKDB_EXTENSION_NAME qpv_noyau
#include "duckdb_extension.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

DUCKDB_EXTENSION_EXTERN

#define MAX_LEVELS 8
#define OUTSIDE INT32_MIN

/*
 * Index layout (written by geo/noyau.py, write_index_file). Values (int32) at every level:
 * >= 0 the cell is inside exactly one QPV (code index); OUTSIDE it touches none; otherwise
 * -1 - v is, below the last level, the block of its children at the next level and, at the
 * last level, the offset (in 8-byte units) of its record. The first level is a hash table of
 * cell keys; the next ones are blocks of (2**dk)**2 children. A record: int32 number of
 * candidates, int32 padding; per candidate (sorted by code): int32 code, int32 part, int32
 * full, int32 number of edges, then per edge 5 doubles x1, y1, y2, k (dx / dy, or dx when
 * dy = 0), tx
 * (horizontal tolerance). Everything a point needs is in one contiguous record.
 */
typedef struct {
	int64_t k;
	int64_t bits;          /* first level: table of 2**bits entries */
	const uint64_t *slots; /* first level only: hash table */
	const int32_t *vals;   /* next levels: blocks */
} level_t;

typedef struct {
	char *blob;
	int64_t n_levels;
	level_t levels[MAX_LEVELS];
	int64_t n_boxes;
	const double *boxes; /* lon min, lat min, lon max, lat max; the first is the metropole */
	double tol;
	const double *records;
	int64_t n_codes;
	const char *codes; /* n_codes NUL-terminated strings, one after the other */
	int64_t n_parts;
	const int64_t *wkb_off; /* n_parts + 1 offsets into wkb */
	const unsigned char *wkb;
	const struct GEOSPrepGeom_t **prepared; /* built on first use, under geos_lock */
} grid_t;

/* Grids already loaded in this process (one per index file), shared by the databases. */
typedef struct loaded {
	char *path;
	grid_t *grid;
	struct loaded *next;
} loaded_t;
static loaded_t *loaded_grids;
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Exact re-test of the points near an edge: GEOS's prepared "intersects" on the original
 * (repaired) polygon, as geopandas.sjoin and shapely do. The GEOS C library is the one shipped
 * with shapely, opened with dlopen (path in QPV_NOYAU_GEOS); calls are rare and serialised.
 */
typedef void *GEOSContextHandle_t;
typedef struct GEOSGeom_t GEOSGeometry;
typedef struct GEOSPrepGeom_t GEOSPreparedGeometry;
static GEOSContextHandle_t (*geos_init)(void);
static GEOSGeometry *(*geos_from_wkb)(GEOSContextHandle_t, const unsigned char *, size_t);
static const GEOSPreparedGeometry *(*geos_prepare)(GEOSContextHandle_t, const GEOSGeometry *);
static char (*geos_prepared_intersects)(GEOSContextHandle_t, const GEOSPreparedGeometry *,
                                        const GEOSGeometry *);
static GEOSGeometry *(*geos_point)(GEOSContextHandle_t, double, double);
static void (*geos_destroy)(GEOSContextHandle_t, GEOSGeometry *);
static GEOSContextHandle_t geos_ctx;
static pthread_mutex_t geos_lock = PTHREAD_MUTEX_INITIALIZER;

static int open_geos(const char *path, char *err, size_t errlen) {
	if (geos_ctx) {
		return 1;
	}
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "qpv_noyau: GEOS introuvable (%s)", dlerror());
		return 0;
	}
	geos_init = (GEOSContextHandle_t(*)(void))dlsym(lib, "GEOS_init_r");
	geos_from_wkb = (GEOSGeometry * (*)(GEOSContextHandle_t, const unsigned char *, size_t))
	    dlsym(lib, "GEOSGeomFromWKB_buf_r");
	geos_prepare = (const GEOSPreparedGeometry *(*)(GEOSContextHandle_t, const GEOSGeometry *))
	    dlsym(lib, "GEOSPrepare_r");
	geos_prepared_intersects =
	    (char (*)(GEOSContextHandle_t, const GEOSPreparedGeometry *, const GEOSGeometry *))
	        dlsym(lib, "GEOSPreparedIntersects_r");
	geos_point = (GEOSGeometry * (*)(GEOSContextHandle_t, double, double))
	    dlsym(lib, "GEOSGeom_createPointFromXY_r");
	geos_destroy = (void (*)(GEOSContextHandle_t, GEOSGeometry *))dlsym(lib, "GEOSGeom_destroy_r");
	if (!geos_init || !geos_from_wkb || !geos_prepare || !geos_prepared_intersects || !geos_point ||
	    !geos_destroy) {
		snprintf(err, errlen, "qpv_noyau: fonctions GEOS absentes de %s (GEOS >= 3.12 requis)", path);
		return 0;
	}
	geos_ctx = geos_init();
	return geos_ctx != NULL;
}

/* Header: magic, then 64 int64 values (see geo/noyau.py). */
#define MAGIC "QPVNOY04"
enum {
	H_N_LEVELS = 0,
	H_N_BOXES,
	H_N_CELLS,
	H_N_CANDS,
	H_N_EDGES,
	H_TOL_BITS,
	H_OFF_BOXES,
	H_OFF_RECORDS,
	H_TOTAL,
	H_N_CODES,
	H_OFF_CODES,
	H_N_PARTS,
	H_OFF_WKB_OFF,
	H_OFF_WKB,
	H_LEVELS = 24 /* then per level: k, bits, off_keys, off_vals */
};
#define H_COUNT 64

static grid_t *load_grid(const char *path, char *err, size_t errlen) {
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "qpv_charger: fichier illisible %s", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fseek(f, 0, SEEK_SET);
	size_t head = 8 + H_COUNT * 8;
	if (size < (long)head) {
		fclose(f);
		snprintf(err, errlen, "qpv_charger: fichier trop court %s", path);
		return NULL;
	}
	/* 2 MiB-aligned and backed by transparent huge pages where the system allows it: the
	 * lookups jump around tens of MiB, and 4 KiB pages would cost a TLB miss on most. */
	char *blob = NULL;
	size_t huge = (size_t)2 << 20;
	size_t rounded = ((size_t)size + huge - 1) / huge * huge;
	if (posix_memalign((void **)&blob, huge, rounded) != 0) {
		blob = NULL;
	}
#ifdef MADV_HUGEPAGE
	if (blob) {
		madvise(blob, rounded, MADV_HUGEPAGE);
	}
#endif
	if (!blob || fread(blob, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		free(blob);
		snprintf(err, errlen, "qpv_charger: lecture impossible %s", path);
		return NULL;
	}
	fclose(f);
	if (memcmp(blob, MAGIC, 8) != 0) {
		free(blob);
		snprintf(err, errlen, "qpv_charger: %s n'est pas un index QPV (%s)", path, MAGIC);
		return NULL;
	}
	const int64_t *h = (const int64_t *)(blob + 8);
	if (h[H_TOTAL] != size || h[H_N_LEVELS] < 1 || h[H_N_LEVELS] > MAX_LEVELS) {
		free(blob);
		snprintf(err, errlen, "qpv_charger: en-tête incohérent dans %s", path);
		return NULL;
	}
	grid_t *g = calloc(1, sizeof(grid_t));
	g->blob = blob;
	g->n_levels = h[H_N_LEVELS];
	for (int64_t i = 0; i < g->n_levels; i++) {
		const int64_t *lv = h + H_LEVELS + 4 * i;
		g->levels[i].k = lv[0];
		g->levels[i].bits = lv[1];
		g->levels[i].slots = (const uint64_t *)(blob + lv[2]);
		g->levels[i].vals = (const int32_t *)(blob + lv[3]);
	}
	g->n_boxes = h[H_N_BOXES];
	g->boxes = (const double *)(blob + h[H_OFF_BOXES]);
	memcpy(&g->tol, &h[H_TOL_BITS], sizeof(double));
	g->records = (const double *)(blob + h[H_OFF_RECORDS]);
	g->n_codes = h[H_N_CODES];
	g->codes = blob + h[H_OFF_CODES];
	g->n_parts = h[H_N_PARTS];
	g->wkb_off = (const int64_t *)(blob + h[H_OFF_WKB_OFF]);
	g->wkb = (const unsigned char *)(blob + h[H_OFF_WKB]);
	g->prepared = calloc((size_t)(g->n_parts ? g->n_parts : 1), sizeof(void *));
	if (g->n_codes < 1 || g->n_codes > 65535) {
		free(blob);
		free(g);
		snprintf(err, errlen, "qpv_noyau: nombre de codes QPV invalide dans %s", path);
		return NULL;
	}
	return g;
}

/* floor() for finite |x| < 2**62, without a libm call. */
static inline int64_t floor_int(double x) {
	int64_t t = (int64_t)x;
	return t - (x < (double)t);
}

/* First level: open addressing, linear probing; a slot is (key + 1) << 32 | value, 0 empty. */
static inline int32_t lookup(const level_t *lv, int64_t key) {
	uint64_t mask = ((uint64_t)1 << lv->bits) - 1;
	uint64_t want = (uint64_t)(key + 1);
	uint64_t i = ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> (64 - lv->bits);
	for (;;) {
		uint64_t slot = lv->slots[i];
		if ((slot >> 32) == want) {
			return (int32_t)(uint32_t)slot;
		}
		if (slot == 0) {
			return OUTSIDE;
		}
		i = (i + 1) & mask;
	}
}

static inline int32_t rec_int(const double *unit, int half) {
	int32_t out;
	memcpy(&out, (const char *)unit + 4 * half, 4);
	return out;
}

/* Exact answer for a point near an edge: GEOS prepared intersects on each candidate part. */
static int64_t exact_record(const grid_t *g, const double *rec, double lon, double lat) {
	int ncand = rec_int(rec, 0);
	const double *cand = rec + 1;
	int32_t best = -1, prev = -1;
	int n = 0;
	pthread_mutex_lock(&geos_lock);
	GEOSGeometry *point = geos_point(geos_ctx, lon, lat);
	for (int c = 0; c < ncand; c++) {
		int32_t code = rec_int(cand, 0);
		int32_t part = rec_int(cand, 1);
		cand += 2 + 5 * rec_int(cand + 1, 1);
		if (code == prev || part < 0 || part >= g->n_parts) {
			continue; /* this code already counted (candidates are sorted by code) */
		}
		const GEOSPreparedGeometry *pg = g->prepared[part];
		if (!pg) {
			GEOSGeometry *geom = geos_from_wkb(geos_ctx, g->wkb + g->wkb_off[part],
			                                   (size_t)(g->wkb_off[part + 1] - g->wkb_off[part]));
			pg = geom ? geos_prepare(geos_ctx, geom) : NULL; /* geom kept alive with pg */
			g->prepared[part] = pg;
		}
		if (pg && geos_prepared_intersects(geos_ctx, pg, point) == 1) {
			if (best < 0) {
				best = code;
			}
			n++;
			prev = code;
		}
	}
	geos_destroy(geos_ctx, point);
	pthread_mutex_unlock(&geos_lock);
	return best >= 0 ? (((int64_t)best + 1) << 16) | ((int64_t)n << 8) : 1 << 3;
}

/* Crossing-number test of a point in its cell's record; the packed result without state bits. */
static inline int64_t test_record(const grid_t *g, const double *rec, double lon, double lat) {
	const double tol = g->tol;
	int ncand = rec_int(rec, 0);
	const double *cand = rec + 1;
	uint64_t mask = 0;
	int near = 0;
	int32_t codes[64];
	for (int c = 0; c < ncand; c++) {
		uint64_t bit = (uint64_t)1 << c;
		codes[c] = rec_int(cand, 0);
		int full = rec_int(cand + 1, 0);
		int ne = rec_int(cand + 1, 1);
		const double *e = cand + 2;
		cand = e + 5 * ne;
		if (full) {
			mask |= bit;
			continue;
		}
		for (; e < cand; e += 5) {
			double y1 = e[1], y2 = e[2];
			/* An end within the tolerance in latitude matters only if the edge also comes
			 * within the tolerance in longitude: otherwise the exact comparisons (y > lat) of
			 * the half-open rule give the right parity (an edge wholly to the right is
			 * crossed, one wholly to the left is not) and the point is far from the edge. */
			int near_end = 0;
			if (fabs(lat - y1) < tol || fabs(lat - y2) < tol) {
				/* k is dx / dy, or dx for a horizontal edge (see geo/noyau.py, _records) */
				double x2 = y2 == y1 ? e[0] + e[3] : e[0] + (y2 - y1) * e[3];
				near_end = lon >= fmin(e[0], x2) - tol && lon <= fmax(e[0], x2) + tol;
			}
			if ((y1 > lat) == (y2 > lat)) {
				if (near_end) {
					near = 1;
				}
				continue;
			}
			if (near_end) {
				near = 1;
				continue;
			}
			double xe = e[0] + (lat - y1) * e[3];
			if (fabs(xe - lon) < e[4]) {
				near = 1;
				continue;
			}
			if (lon < xe) {
				mask ^= bit;
			}
		}
	}
	if (near) {
		return exact_record(g, rec, lon, lat) | 4;
	}
	if (!mask) {
		return 1 << 3;
	}
	int32_t best = codes[__builtin_ctzll(mask)];
	int n = 0;
	int32_t prev = -1;
	/* Candidates are sorted by code: count distinct codes among the set bits. */
	for (int c = 0; c < ncand; c++) {
		if (((mask >> c) & 1) && codes[c] != prev) {
			n++;
			prev = codes[c];
		}
	}
	return (((int64_t)best + 1) << 16) | ((int64_t)n << 8);
}

#define BATCH 2048

/*
 * Assign n usable points (n <= BATCH) level by level: each stage does one independent load
 * per point, so that the CPU overlaps the cache misses of many points (one point's lookups
 * depend on each other; different points' do not).
 */
static void assign_batch(const grid_t *g, const double *lon, const double *lat, idx_t n, int64_t *out) {
	int32_t v[BATCH];
	int64_t ix[BATCH], iy[BATCH];
	const level_t *last = &g->levels[g->n_levels - 1];
	const double f = (double)((int64_t)1 << last->k);
	const level_t *l0 = &g->levels[0];
	const int64_t s0 = last->k - l0->k;
	int64_t key[BATCH];
	idx_t pending[BATCH];
	idx_t n_pending = 0;
	/* Simple loops, which the compiler vectorises: cells, then first-level keys. */
	for (idx_t i = 0; i < n; i++) {
		ix[i] = floor_int(lon[i] * f);
		iy[i] = floor_int(lat[i] * f);
	}
	for (idx_t i = 0; i < n; i++) {
		int64_t cx = ix[i] >> s0, cy = iy[i] >> s0;
		key[i] = (cx + ((int64_t)180 << l0->k)) * ((int64_t)1 << (l0->k + 9)) + (cy + ((int64_t)90 << l0->k));
	}
	/* First level, branch-free on the home slot, which settles most points (the table is at
	 * most one eighth full): the key found, or an empty slot (outside every QPV). The others
	 * (home slot taken by another key) probe on afterwards. */
	const int shift0 = 64 - (int)l0->bits;
	for (idx_t i = 0; i < n; i++) {
		uint64_t slot = l0->slots[((uint64_t)key[i] * 0x9E3779B97F4A7C15ULL) >> shift0];
		int hit = (slot >> 32) == (uint64_t)(key[i] + 1);
		v[i] = hit ? (int32_t)(uint32_t)slot : OUTSIDE;
		pending[n_pending] = i;
		n_pending += !hit & (slot != 0);
	}
	for (idx_t j = 0; j < n_pending; j++) {
		v[pending[j]] = lookup(l0, key[pending[j]]);
	}
	for (int64_t li = 1; li < g->n_levels; li++) {
		const level_t *lv = &g->levels[li];
		const int64_t r = (int64_t)1 << (lv->k - g->levels[li - 1].k);
		const int64_t s = last->k - lv->k;
		/* Branch-free: every point loads (block 0 when it does not descend), so that the
		 * loads of different points are independent and overlap. */
		for (idx_t i = 0; i < n; i++) {
			int32_t vi = v[i];
			int descend = (vi < 0) & (vi != OUTSIDE);
			int64_t block = descend ? -1 - (int64_t)vi : 0;
			int32_t next = lv->vals[block * r * r + ((ix[i] >> s) & (r - 1)) * r + ((iy[i] >> s) & (r - 1))];
			v[i] = descend ? next : vi;
		}
	}
	for (idx_t i = 0; i < n; i++) {
		if (v[i] < 0 && v[i] != OUTSIDE) {
			const char *rec = (const char *)(g->records + (-1 - (int64_t)v[i]));
			__builtin_prefetch(rec);
			__builtin_prefetch(rec + 64);
			__builtin_prefetch(rec + 128);
			__builtin_prefetch(rec + 192);
		}
	}
	for (idx_t i = 0; i < n; i++) {
		if (v[i] == OUTSIDE) {
			out[i] = 1 << 3;
		} else if (v[i] >= 0) {
			out[i] = (((int64_t)v[i] + 1) << 16) | (1 << 8);
		} else {
			out[i] = test_record(g, g->records + (-1 - (int64_t)v[i]), lon[i], lat[i]);
		}
	}
}

static inline int in_box(const double *b, double x, double y) {
	return x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
}

/* The SQL path's _etat_sql for WGS84, in the same order. */
static inline int wgs84_state(const grid_t *g, double x, double y) {
	if (g->n_boxes > 0 && in_box(g->boxes, x, y)) {
		return 0;
	}
	if (isnan(x) || isnan(y) || isinf(x) || isinf(y)) {
		return 2;
	}
	for (int64_t b = 0; b < g->n_boxes; b++) {
		if (in_box(g->boxes + 4 * b, x, y)) {
			return 0;
		}
	}
	if (x == 0 && y == 0) {
		return 2;
	}
	for (int64_t b = 0; b < g->n_boxes; b++) {
		if (in_box(g->boxes + 4 * b, y, x)) {
			return 1;
		}
	}
	if (fabs(x) > 180 || fabs(y) > 90) {
		return 2;
	}
	return 0;
}

static inline int row_valid(uint64_t *validity, idx_t row) {
	return !validity || duckdb_validity_row_is_valid(validity, row);
}

typedef struct {
	const grid_t *grid;
	int code_width; /* bytes of the ENUM of the codes: 1 or 2 */
	/* rows answered in this database, per status (dans, hors, invalides, inverses), then the
	 * rows in several QPV: read back with qpv_compte(i) */
	int64_t counts[5];
} bound_t;

static inline void set_null(uint64_t *validity, idx_t row) {
	validity[row >> 6] &= ~((uint64_t)1 << (row & 63));
}

static uint64_t *writable_validity(duckdb_vector v) {
	duckdb_vector_ensure_validity_writable(v);
	return duckdb_vector_get_validity(v);
}

static inline void put_code(void *data, int width, idx_t row, uint32_t code) {
	if (width == 1) {
		((uint8_t *)data)[row] = (uint8_t)code;
	} else {
		((uint16_t *)data)[row] = (uint16_t)code;
	}
}

/* Struct children, in the order of the return type. */
enum { C_STATUT = 0, C_CODE, C_NB, C_PROCHE, C_ETAT, C_APRES, C_COUNT };

static void fn_affecter(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
	const bound_t *b = duckdb_scalar_function_get_extra_info(info);
	const grid_t *g = b->grid;
	idx_t n = duckdb_data_chunk_get_size(input);
	duckdb_vector vx = duckdb_data_chunk_get_vector(input, 0);
	duckdb_vector vy = duckdb_data_chunk_get_vector(input, 1);
	double *xs = duckdb_vector_get_data(vx);
	double *ys = duckdb_vector_get_data(vy);
	uint64_t *mx = duckdb_vector_get_validity(vx);
	uint64_t *my = duckdb_vector_get_validity(vy);
	duckdb_vector child[C_COUNT];
	for (int c = 0; c < C_COUNT; c++) {
		child[c] = duckdb_struct_vector_get_child(output, c);
	}
	uint8_t *statut = duckdb_vector_get_data(child[C_STATUT]);
	void *code = duckdb_vector_get_data(child[C_CODE]);
	uint8_t *nb = duckdb_vector_get_data(child[C_NB]);
	bool *proche = duckdb_vector_get_data(child[C_PROCHE]);
	uint8_t *etat = duckdb_vector_get_data(child[C_ETAT]);
	void *apres = duckdb_vector_get_data(child[C_APRES]);
	uint64_t *null_code = writable_validity(child[C_CODE]);
	uint64_t *null_nb = writable_validity(child[C_NB]);
	uint64_t *null_apres = writable_validity(child[C_APRES]);
	double lon[BATCH], lat[BATCH];
	int64_t res[BATCH];
	idx_t rows[BATCH];
	uint8_t state[BATCH];
	int64_t counted[5] = {0, 0, 0, 0, 0};
	for (idx_t base = 0; base < n; base += BATCH) {
		idx_t end = base + BATCH < n ? base + BATCH : n;
		idx_t m = 0;
		for (idx_t i = base; i < end; i++) {
			int st = 2;
			if (row_valid(mx, i) && row_valid(my, i)) {
				st = wgs84_state(g, xs[i], ys[i]);
			}
			if (st == 2) {
				counted[2]++;
				statut[i] = 2;
				etat[i] = 2;
				proche[i] = false;
				set_null(null_code, i);
				set_null(null_nb, i);
				set_null(null_apres, i);
				continue;
			}
			lon[m] = st == 1 ? ys[i] : xs[i];
			lat[m] = st == 1 ? xs[i] : ys[i];
			state[m] = (uint8_t)st;
			rows[m++] = i;
		}
		if (m) {
			assign_batch(g, lon, lat, m, res);
		}
		for (idx_t j = 0; j < m; j++) {
			idx_t i = rows[j];
			int64_t r = res[j];
			uint32_t found = (uint32_t)((r >> 16) & 0xFFFF);
			etat[i] = state[j];
			proche[i] = (r & 4) != 0;
			if (state[j] == 0) {
				statut[i] = found ? 0 : 1;
				nb[i] = (uint8_t)((r >> 8) & 255);
				counted[found ? 0 : 1]++;
				counted[4] += nb[i] > 1;
				if (found) {
					put_code(code, b->code_width, i, found - 1);
				} else {
					set_null(null_code, i);
				}
				set_null(null_apres, i);
			} else {
				counted[3]++;
				statut[i] = 3;
				set_null(null_code, i);
				set_null(null_nb, i);
				if (found) {
					put_code(apres, b->code_width, i, found - 1);
				} else {
					set_null(null_apres, i);
				}
			}
		}
	}
	bound_t *counts_of = (bound_t *)b;
	for (int c = 0; c < 5; c++) {
		__atomic_add_fetch(&counts_of->counts[c], counted[c], __ATOMIC_RELAXED);
	}
}

static void fn_compte(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
	bound_t *b = duckdb_scalar_function_get_extra_info(info);
	idx_t n = duckdb_data_chunk_get_size(input);
	int32_t *which = duckdb_vector_get_data(duckdb_data_chunk_get_vector(input, 0));
	int64_t *out = duckdb_vector_get_data(output);
	for (idx_t i = 0; i < n; i++) {
		out[i] = which[i] >= 0 && which[i] < 5 ? __atomic_load_n(&b->counts[which[i]], __ATOMIC_RELAXED) : -1;
	}
}

static grid_t *grid_for(const char *path, char *err, size_t errlen) {
	pthread_mutex_lock(&loaded_lock);
	for (loaded_t *l = loaded_grids; l; l = l->next) {
		if (strcmp(l->path, path) == 0) {
			pthread_mutex_unlock(&loaded_lock);
			return l->grid;
		}
	}
	grid_t *g = load_grid(path, err, errlen);
	if (g) {
		loaded_t *l = malloc(sizeof(loaded_t));
		l->path = strdup(path);
		l->grid = g;
		l->next = loaded_grids;
		loaded_grids = l;
	}
	pthread_mutex_unlock(&loaded_lock);
	return g;
}

static bool register_function(duckdb_connection con, const char *name, duckdb_logical_type ret,
                              duckdb_scalar_function_t fn, bound_t *bound) {
	duckdb_scalar_function f = duckdb_create_scalar_function();
	duckdb_scalar_function_set_name(f, name);
	int counter = fn == fn_compte;
	duckdb_logical_type param = duckdb_create_logical_type(counter ? DUCKDB_TYPE_INTEGER : DUCKDB_TYPE_DOUBLE);
	duckdb_scalar_function_add_parameter(f, param);
	if (!counter) {
		duckdb_scalar_function_add_parameter(f, param);
	} else {
		duckdb_scalar_function_set_volatile(f);
	}
	duckdb_destroy_logical_type(&param);
	duckdb_scalar_function_set_return_type(f, ret);
	duckdb_scalar_function_set_function(f, fn);
	duckdb_scalar_function_set_extra_info(f, bound, NULL);
	/* NULL coordinates are an answer ("coordonnees_invalides"), not a NULL result. */
	duckdb_scalar_function_set_special_handling(f);
	duckdb_state st = duckdb_register_scalar_function(con, f);
	duckdb_destroy_scalar_function(&f);
	return st == DuckDBSuccess;
}

DUCKDB_EXTENSION_ENTRYPOINT(duckdb_connection connection, duckdb_extension_info info,
                            struct duckdb_extension_access *access) {
	const char *path = getenv("QPV_NOYAU_INDEX");
	if (!path || !*path) {
		access->set_error(info, "qpv_noyau: variable QPV_NOYAU_INDEX absente (fichier d'index QPV)");
		return false;
	}
	char err[1024];
	const char *geos = getenv("QPV_NOYAU_GEOS");
	if (!geos || !*geos) {
		access->set_error(info, "qpv_noyau: variable QPV_NOYAU_GEOS absente (bibliothèque GEOS)");
		return false;
	}
	pthread_mutex_lock(&geos_lock);
	int geos_ok = open_geos(geos, err, sizeof(err));
	pthread_mutex_unlock(&geos_lock);
	if (!geos_ok) {
		access->set_error(info, err);
		return false;
	}
	grid_t *g = grid_for(path, err, sizeof(err));
	if (!g) {
		access->set_error(info, err);
		return false;
	}
	const char **names = malloc(sizeof(char *) * (size_t)g->n_codes);
	const char *p = g->codes;
	for (int64_t i = 0; i < g->n_codes; i++) {
		names[i] = p;
		p += strlen(p) + 1;
	}
	const char *statuts[4] = {"dans_qpv", "hors_qpv", "coordonnees_invalides", "lon_lat_inverses"};
	duckdb_logical_type t_statut = duckdb_create_enum_type(statuts, 4);
	duckdb_logical_type t_code = duckdb_create_enum_type(names, (idx_t)g->n_codes);
	free(names);
	duckdb_logical_type t_u8 = duckdb_create_logical_type(DUCKDB_TYPE_UTINYINT);
	duckdb_logical_type t_bool = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
	duckdb_logical_type members[C_COUNT] = {t_statut, t_code, t_u8, t_bool, t_u8, t_code};
	const char *member_names[C_COUNT] = {"statut", "code_qpv", "nb_qpv", "proche", "etat",
	                                     "code_qpv_apres_inversion"};
	duckdb_logical_type t_struct = duckdb_create_struct_type(members, member_names, C_COUNT);
	duckdb_logical_type t_i64 = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
	bound_t *bound = calloc(1, sizeof(bound_t));
	bound->grid = g;
	bound->code_width = duckdb_enum_internal_type(t_code) == DUCKDB_TYPE_UTINYINT ? 1 : 2;
	bool ok = register_function(connection, "qpv_affecter", t_struct, fn_affecter, bound) &&
	          register_function(connection, "qpv_compte", t_i64, fn_compte, bound);
	duckdb_destroy_logical_type(&t_statut);
	duckdb_destroy_logical_type(&t_code);
	duckdb_destroy_logical_type(&t_u8);
	duckdb_destroy_logical_type(&t_bool);
	duckdb_destroy_logical_type(&t_struct);
	duckdb_destroy_logical_type(&t_i64);
	if (!ok) {
		access->set_error(info, "qpv_noyau: enregistrement des fonctions impossible");
	}
	return ok;
}
