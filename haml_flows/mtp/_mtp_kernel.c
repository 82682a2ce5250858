/*
 * MTP site energies, forces, virial and, on request, the derivatives of every
 * site energy with respect to all MTP parameters, in one pass over the
 * neighbourhoods.
 *
 * The definitions are MLIP's (and motep's): Chebyshev radial basis times
 * scaling * (max_dist - r)^2, radial functions f_mu = sum_q c[ti, tj, mu, q] Q_q,
 * basic moments sum_j f_mu(r_ij) u_x^a u_y^b u_z^c over unit vectors, the
 * contraction list alpha_index_times, and E_i = species_coeffs[ti] +
 * sum_alpha moment_coeffs[alpha] B_alpha.
 *
 * The gradient of E_i with respect to the moments (dE/dM) is needed for the
 * forces anyway; the derivative with respect to a radial coefficient
 * c[ti, tj, mu, q] is then sum_{j of type tj} Q_q(r_ij) sum_{b with mu_b = mu}
 * dE/dM_b u^b, a few multiply-adds per neighbour on top of the force call.
 *
 * Row layout ("local row" of atom i, length n_scalar + spc * rfc * rbs):
 *   [B_alpha for alpha < n_scalar] [dE_i/dc[ti, tj, mu, q] for tj, mu, q]
 * The species coefficient's derivative is 1 at ti; the caller adds it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POWER 16

/* powers 0..MAX_POWER-1 of a unit vector's components */
static inline void unit_powers(const double *u, double *px, double *py, double *pz)
{
    px[0] = py[0] = pz[0] = 1.0;
    for (int p = 1; p < MAX_POWER; p++) {
        px[p] = px[p - 1] * u[0];
        py[p] = py[p - 1] * u[1];
        pz[p] = pz[p - 1] * u[2];
    }
}

typedef struct {
    int n_atoms, n_nb, spc, rfc, rbs, n_moments, n_scalar, n_basic, n_times;
    double scaling, min_dist, max_dist;
    const int *js, *itypes, *mapping, *basic, *times;
    const double *rs, *radial_coeffs, *species_coeffs, *moment_coeffs;
    double *energies, *forces, *virial, *rows;
} Kernel;

static int run_kernel(const Kernel *k)
{
    const int n_nb = k->n_nb, rbs = k->rbs, rfc = k->rfc, spc = k->spc;
    const int n_basic = k->n_basic, n_moments = k->n_moments;
    const int n_local = k->n_scalar + spc * rfc * rbs;
    const double span = k->max_dist - k->min_dist;
    const double dxdr = 2.0 / span;

    size_t nb = n_nb > 0 ? (size_t)n_nb : 1;
    double *r_abs = malloc(nb * sizeof(double));
    double *unit = malloc(nb * 3 * sizeof(double));
    double *q = malloc(nb * rbs * sizeof(double));
    double *dq = malloc(nb * rbs * sizeof(double));
    double *f = malloc(nb * rfc * sizeof(double));
    double *df = malloc(nb * rfc * sizeof(double));
    double *moments = malloc((size_t)n_moments * sizeof(double));
    double *dedm = malloc((size_t)n_moments * sizeof(double));
    double *w = malloc((size_t)rfc * sizeof(double));
    int *jt = malloc(nb * sizeof(int));
    if (!r_abs || !unit || !q || !dq || !f || !df || !moments || !dedm || !w || !jt) {
        free(r_abs); free(unit); free(q); free(dq); free(f); free(df);
        free(moments); free(dedm); free(w); free(jt);
        return -1;
    }

    memset(k->forces, 0, (size_t)k->n_atoms * 3 * sizeof(double));
    memset(k->virial, 0, 9 * sizeof(double));
    if (k->rows)
        memset(k->rows, 0, (size_t)k->n_atoms * n_local * sizeof(double));

    for (int i = 0; i < k->n_atoms; i++) {
        const int ti = k->itypes[i];
        const int *js = k->js + (size_t)i * n_nb;
        const double *rs = k->rs + (size_t)i * n_nb * 3;
        int count = 0;

        /* neighbours inside the cutoff, their radial basis and radial functions */
        for (int s = 0; s < n_nb; s++) {
            int j = js[s];
            if (j < 0)
                continue;
            double x = rs[3 * s], y = rs[3 * s + 1], z = rs[3 * s + 2];
            double r = sqrt(x * x + y * y + z * z);
            if (r >= k->max_dist || r <= 0.0)
                continue;
            int c = count++;
            jt[c] = s; /* slot, for the gradient */
            r_abs[c] = r;
            unit[3 * c] = x / r;
            unit[3 * c + 1] = y / r;
            unit[3 * c + 2] = z / r;
            double t = 2.0 * (r - k->min_dist) / span - 1.0;
            double diff = k->max_dist - r;
            double *qc = q + (size_t)c * rbs, *dqc = dq + (size_t)c * rbs;
            qc[0] = k->scaling * diff * diff;
            dqc[0] = -2.0 * k->scaling * diff;
            if (rbs > 1) {
                qc[1] = t * qc[0];
                dqc[1] = dxdr * qc[0] + t * dqc[0];
            }
            for (int n = 2; n < rbs; n++) {
                qc[n] = 2.0 * t * qc[n - 1] - qc[n - 2];
                dqc[n] = 2.0 * dxdr * qc[n - 1] + 2.0 * t * dqc[n - 1] - dqc[n - 2];
            }
            int tj = k->itypes[j];
            const double *coeffs = k->radial_coeffs + ((size_t)ti * spc + tj) * rfc * rbs;
            for (int mu = 0; mu < rfc; mu++) {
                const double *cm = coeffs + (size_t)mu * rbs;
                double sv = 0.0, sd = 0.0;
                for (int n = 0; n < rbs; n++) {
                    sv += cm[n] * qc[n];
                    sd += cm[n] * dqc[n];
                }
                f[(size_t)c * rfc + mu] = sv;
                df[(size_t)c * rfc + mu] = sd;
            }
        }

        /* basic moments, then the contractions */
        memset(moments, 0, (size_t)n_moments * sizeof(double));
        for (int c = 0; c < count; c++) {
            double px[MAX_POWER], py[MAX_POWER], pz[MAX_POWER];
            unit_powers(unit + 3 * c, px, py, pz);
            const double *fc = f + (size_t)c * rfc;
            for (int b = 0; b < n_basic; b++) {
                const int *ab = k->basic + 4 * b;
                moments[b] += fc[ab[0]] * px[ab[1]] * py[ab[2]] * pz[ab[3]];
            }
        }
        for (int it = 0; it < k->n_times; it++) {
            const int *at = k->times + 4 * it;
            moments[at[3]] += at[2] * moments[at[0]] * moments[at[1]];
        }
        double energy = k->species_coeffs[ti];
        memset(dedm, 0, (size_t)n_moments * sizeof(double));
        for (int a = 0; a < k->n_scalar; a++) {
            energy += k->moment_coeffs[a] * moments[k->mapping[a]];
            dedm[k->mapping[a]] += k->moment_coeffs[a];
        }
        k->energies[i] = energy;
        for (int it = k->n_times - 1; it >= 0; it--) {
            const int *at = k->times + 4 * it;
            double g = at[2] * dedm[at[3]];
            dedm[at[0]] += g * moments[at[1]];
            dedm[at[1]] += g * moments[at[0]];
        }

        double *row = k->rows ? k->rows + (size_t)i * n_local : NULL;
        if (row)
            for (int a = 0; a < k->n_scalar; a++)
                row[a] = moments[k->mapping[a]];

        /* gradient of E_i with respect to each neighbour vector */
        for (int c = 0; c < count; c++) {
            double ux = unit[3 * c], uy = unit[3 * c + 1], uz = unit[3 * c + 2];
            double r = r_abs[c];
            double px[MAX_POWER], py[MAX_POWER], pz[MAX_POWER];
            unit_powers(unit + 3 * c, px, py, pz);
            const double *fc = f + (size_t)c * rfc, *dfc = df + (size_t)c * rfc;
            double gr = 0.0, gx = 0.0, gy = 0.0, gz = 0.0;
            for (int mu = 0; mu < rfc; mu++)
                w[mu] = 0.0;
            for (int b = 0; b < n_basic; b++) {
                double s = dedm[b];
                if (s == 0.0)
                    continue;
                const int *ab = k->basic + 4 * b;
                int mu = ab[0], ex = ab[1], ey = ab[2], ez = ab[3];
                double ang = px[ex] * py[ey] * pz[ez];
                double sa = s * ang;
                w[mu] += sa;
                gr += sa * (dfc[mu] - (ex + ey + ez) * fc[mu] / r);
                double sf = s * fc[mu] / r;
                if (ex > 0)
                    gx += sf * ex * px[ex - 1] * py[ey] * pz[ez];
                if (ey > 0)
                    gy += sf * ey * px[ex] * py[ey - 1] * pz[ez];
                if (ez > 0)
                    gz += sf * ez * px[ex] * py[ey] * pz[ez - 1];
            }
            gx += gr * ux;
            gy += gr * uy;
            gz += gr * uz;
            int slot = jt[c];
            int j = js[slot];
            const double *v = rs + 3 * slot;
            k->forces[3 * i] += gx;
            k->forces[3 * i + 1] += gy;
            k->forces[3 * i + 2] += gz;
            k->forces[3 * j] -= gx;
            k->forces[3 * j + 1] -= gy;
            k->forces[3 * j + 2] -= gz;
            double g3[3] = {gx, gy, gz};
            for (int l = 0; l < 3; l++)
                for (int m = 0; m < 3; m++)
                    k->virial[3 * l + m] += v[m] * g3[l];
            if (row) {
                int tj = k->itypes[j];
                double *rc = row + k->n_scalar + (size_t)tj * rfc * rbs;
                const double *qc = q + (size_t)c * rbs;
                for (int mu = 0; mu < rfc; mu++) {
                    double wm = w[mu];
                    if (wm == 0.0)
                        continue;
                    for (int n = 0; n < rbs; n++)
                        rc[mu * rbs + n] += wm * qc[n];
                }
            }
        }
    }
    free(r_abs); free(unit); free(q); free(dq); free(f); free(df);
    free(moments); free(dedm); free(w); free(jt);
    return 0;
}

static int check_size(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name)
{
    if (buf->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name,
                     buf->len, items * itemsize);
        return -1;
    }
    return 0;
}

static PyObject *evaluate(PyObject *self, PyObject *args)
{
    Kernel k;
    Py_buffer js, rs, itypes, radial, species, mapping, basic, times, moment;
    Py_buffer energies, forces, virial, rows;
    PyObject *rows_obj;
    if (!PyArg_ParseTuple(args, "iiy*y*y*dddiiiy*y*iy*y*y*y*w*w*w*O",
                          &k.n_atoms, &k.n_nb, &js, &rs, &itypes,
                          &k.scaling, &k.min_dist, &k.max_dist,
                          &k.spc, &k.rfc, &k.rbs, &radial, &species,
                          &k.n_moments, &mapping, &basic, &times, &moment,
                          &energies, &forces, &virial, &rows_obj))
        return NULL;
    Py_buffer *held[] = {&js, &rs, &itypes, &radial, &species, &mapping, &basic,
                         &times, &moment, &energies, &forces, &virial};
    int n_held = 12, have_rows = 0, status = -1;
    k.n_scalar = (int)(mapping.len / sizeof(int));
    k.n_basic = (int)(basic.len / (4 * sizeof(int)));
    k.n_times = (int)(times.len / (4 * sizeof(int)));
    if (rows_obj != Py_None) {
        if (PyObject_GetBuffer(rows_obj, &rows, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        have_rows = 1;
    }
    Py_ssize_t n_local = k.n_scalar + (Py_ssize_t)k.spc * k.rfc * k.rbs;
    if (check_size(&js, (Py_ssize_t)k.n_atoms * k.n_nb, sizeof(int), "js") ||
        check_size(&rs, (Py_ssize_t)k.n_atoms * k.n_nb * 3, sizeof(double), "rs") ||
        check_size(&itypes, k.n_atoms, sizeof(int), "itypes") ||
        check_size(&radial, (Py_ssize_t)k.spc * k.spc * k.rfc * k.rbs, sizeof(double),
                   "radial_coeffs") ||
        check_size(&species, k.spc, sizeof(double), "species_coeffs") ||
        check_size(&moment, k.n_scalar, sizeof(double), "moment_coeffs") ||
        check_size(&energies, k.n_atoms, sizeof(double), "energies") ||
        check_size(&forces, (Py_ssize_t)k.n_atoms * 3, sizeof(double), "forces") ||
        check_size(&virial, 9, sizeof(double), "virial") ||
        (have_rows && check_size(&rows, k.n_atoms * n_local, sizeof(double), "rows")))
        goto done;
    if (k.n_basic > k.n_moments || k.n_moments < 1) {
        PyErr_SetString(PyExc_ValueError, "alpha_index_basic longer than the moment count");
        goto done;
    }
    k.js = js.buf;
    k.rs = rs.buf;
    k.itypes = itypes.buf;
    k.radial_coeffs = radial.buf;
    k.species_coeffs = species.buf;
    k.mapping = mapping.buf;
    k.basic = basic.buf;
    k.times = times.buf;
    k.moment_coeffs = moment.buf;
    k.energies = energies.buf;
    k.forces = forces.buf;
    k.virial = virial.buf;
    k.rows = have_rows ? rows.buf : NULL;
    for (int b = 0; b < k.n_basic; b++)
        for (int e = 1; e < 4; e++)
            if (k.basic[4 * b + e] < 0 || k.basic[4 * b + e] >= MAX_POWER) {
                PyErr_Format(PyExc_ValueError, "moment power %d out of range", k.basic[4 * b + e]);
                goto done;
            }
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = run_kernel(&k);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    status = 0;
done:
    for (int h = 0; h < n_held; h++)
        PyBuffer_Release(held[h]);
    if (have_rows)
        PyBuffer_Release(&rows);
    if (status)
        return NULL;
    Py_RETURN_NONE;
}


/*
 * MLIP's MaxVol selection (as motep's FindMethod.MLIP runs it): start from
 * A = 1e-6 I, so c = 1e6 * matrix; while the largest |c| exceeds 1 + 1e-3,
 * put its row into the slot of its column (a rank-one update of c), then
 * swap that row of c with the slot's row. The argmax is the first in
 * row-major order, as numpy's; one pass per swap updates c and finds the
 * next argmax.
 */
static long mlip_maxvol_run(const double *matrix, long n, long p, double *c, long *slots,
                            long *order, double *col, double *row, long maxiter, long *nit_out)
{
    const double threshold = 1e-3;
    for (long r = 0; r < n * p; r++)
        c[r] = matrix[r] * 1e6;
    for (long s = 0; s < p; s++)
        slots[s] = -1;
    for (long r = 0; r < n; r++)
        order[r] = r;
    long bi = 0, bj = 0;
    double best = -1.0;
    for (long r = 0; r < n * p; r++) {
        double v = fabs(c[r]);
        if (v > best) {
            best = v;
            bi = r / p;
            bj = r % p;
        }
    }
    long nit = 0;
    for (; nit < maxiter; nit++) {
        long i = bi, j = bj;
        double cmax = fabs(c[i * p + j]);
        if (cmax - 1.0 < threshold)
            break;
        long k = order[i];
        int already = 0;
        for (long s = 0; s < p; s++)
            if (slots[s] == k) {
                already = 1;
                break;
            }
        if (already)
            break;
        slots[j] = k;
        double piv = c[i * p + j];
        for (long s = 0; s < p; s++)
            row[s] = c[i * p + s];
        row[j] -= 1.0;
        for (long r = 0; r < n; r++)
            col[r] = c[r * p + j];
        /* update, and find the next argmax (first in row-major order after the
           swap of rows i and j) in the same pass */
        best = -1.0;
        long best_r = 0, best_rank = 0;
        for (long r = 0; r < n; r++) {
            double *cr = c + r * p;
            double scale = col[r] / piv;
            double m = 0.0;
            for (long s = 0; s < p; s++) {
                double v = cr[s] - scale * row[s];
                cr[s] = v;
                double a = fabs(v);
                m = a > m ? a : m;
            }
            long rank = (r == i) ? j : (r == j) ? i : r; /* row index after the swap */
            if (m > best || (m == best && rank < best_rank)) {
                best = m;
                best_r = r;
                best_rank = rank;
            }
        }
        long best_s = 0;
        for (long s = 0; s < p; s++)
            if (fabs(c[best_r * p + s]) == best) {
                best_s = s;
                break;
            }
        long best_pos = best_rank * p + best_s;
        if (i != j) {
            for (long s = 0; s < p; s++) {
                double t = c[i * p + s];
                c[i * p + s] = c[j * p + s];
                c[j * p + s] = t;
            }
            long t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        bi = best_pos / p;
        bj = best_pos % p;
    }
    *nit_out = nit;
    return 0;
}

static PyObject *mlip_maxvol(PyObject *self, PyObject *args)
{
    Py_buffer matrix, slots;
    long n, p, maxiter;
    if (!PyArg_ParseTuple(args, "lly*w*l", &n, &p, &matrix, &slots, &maxiter))
        return NULL;
    PyObject *result = NULL;
    if (matrix.len != n * p * (Py_ssize_t)sizeof(double) ||
        slots.len != p * (Py_ssize_t)sizeof(long) || n < p || p < 1) {
        PyErr_SetString(PyExc_ValueError, "mlip_maxvol: matrix must be (n, p) with n >= p >= 1, slots (p,)");
        goto done;
    }
    double *c = malloc((size_t)n * p * sizeof(double));
    long *order = malloc((size_t)n * sizeof(long));
    double *col = malloc((size_t)n * sizeof(double));
    double *row = malloc((size_t)p * sizeof(double));
    if (!c || !order || !col || !row) {
        free(c); free(order); free(col); free(row);
        PyErr_NoMemory();
        goto done;
    }
    long nit = 0;
    Py_BEGIN_ALLOW_THREADS
    mlip_maxvol_run(matrix.buf, n, p, c, slots.buf, order, col, row, maxiter, &nit);
    Py_END_ALLOW_THREADS
    free(c); free(order); free(col); free(row);
    result = PyLong_FromLong(nit);
done:
    PyBuffer_Release(&matrix);
    PyBuffer_Release(&slots);
    return result;
}

static PyMethodDef methods[] = {
    {"evaluate", evaluate, METH_VARARGS,
     "evaluate(n_atoms, n_nb, js, rs, itypes, scaling, min_dist, max_dist, spc, rfc, rbs,"
     " radial_coeffs, species_coeffs, n_moments, mapping, basic, times, moment_coeffs,"
     " energies, forces, virial, rows_or_None)"},
    {"mlip_maxvol", mlip_maxvol, METH_VARARGS,
     "mlip_maxvol(n, p, matrix, slots_out, maxiter) -> iterations; slots[j] = row or -1"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mtp_kernel",
    "MTP energies, forces, virial and site-energy parameter derivatives.", -1, methods,
};

PyMODINIT_FUNC PyInit__mtp_kernel(void) { return PyModule_Create(&module); }
