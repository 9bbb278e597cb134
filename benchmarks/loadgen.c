/*
 * loadgen.c - small memcached text-protocol load generator for the pymc
 * benchmarks.
 *
 * Single-threaded, epoll driven.  Opens N TCP connections to HOST:PORT and
 * keeps D requests in flight on each (D=1 means one request at a time, i.e.
 * not pipelined).  Replies are parsed properly (VALUE/END, STORED, error
 * lines, partial reads) so that completions and errors are counted exactly.
 * Prints a single line of JSON on stdout when done.
 *
 * Workloads:
 *   get       get of one random key from [0, keys)      (all hits if preloaded)
 *   mix       90% get / 10% set (100-byte values) of random keys
 *   multiget  "get k1 ... kM" with M random keys per request (--multi, 100)
 *   fill      sets of unique keys key_offset .. key_offset+count-1, as fast
 *             as possible; finishes when all of them were answered
 *
 * --preload K first sets keys [0, K) (pipelined) before measuring.
 *
 * Build: cc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define KEY_LEN 12           /* "key:%08d" */
#define MAX_KEY 100000000u   /* 8 decimal digits */
#define PRELOAD_DEPTH 64
#define PRELOAD_MAX_CONNS 8
#define MAX_LINE 4096        /* a reply line longer than this is a protocol error */
#define READ_CHUNK 65536

enum { REQ_GET = 1, REQ_SET = 2, REQ_MGET = 3 };
enum { WL_GET, WL_MIX, WL_MGET, WL_FILL };

static const char *wl_names[] = {"get", "mix", "multiget", "fill"};

/* ---------------------------------------------------------------- options */
static const char *opt_host = "127.0.0.1";
static int opt_port = 0;
static int opt_conns = 50;
static int opt_depth = 1;
static double opt_duration = 5.0;
static double opt_warmup = 1.0;
static int opt_workload = WL_GET;
static long opt_keys = -1;       /* key space for get/mix/multiget */
static long opt_preload = 0;
static long opt_count = 100000;  /* fill */
static long opt_key_offset = 0;  /* fill */
static int opt_value_size = 100;
static int opt_multi = 100;
static int opt_set_pct = 10;
static double opt_timeout = 300.0; /* bound for preload / fill phases */
static uint64_t opt_seed = 0x9e3779b97f4a7c15ull;

/* ---------------------------------------------------------------- helpers */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state;
static inline uint64_t rng_next(void) {
    /* xorshift64* */
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}
static inline uint32_t rng_below(uint32_t n) {
    return (uint32_t)(((rng_next() >> 32) * (uint64_t)n) >> 32);
}

static inline char *put_key(char *p, uint32_t k) {
    memcpy(p, "key:", 4);
    for (int i = KEY_LEN - 1; i >= 4; i--) {
        p[i] = (char)('0' + k % 10);
        k /= 10;
    }
    return p + KEY_LEN;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    printf("{\"error\": \"%s\"}\n", "fatal, see stderr");
    exit(1);
}

/* ---------------------------------------------------------------- latency
 * Log-linear histogram over nanoseconds: exact below 2048 ns, then 1024
 * sub-buckets per power of two (relative error < 0.1%). */
#define H_SUB_BITS 10
#define H_SUB (1u << H_SUB_BITS)
#define H_OCTAVES 32
#define H_BUCKETS (2 * H_SUB + H_OCTAVES * H_SUB)
static uint64_t hist[H_BUCKETS];
static uint64_t hist_n;

static inline void hist_add(uint64_t v) {
    unsigned b;
    if (v < 2 * H_SUB) {
        b = (unsigned)v;
    } else {
        int msb = 63 - __builtin_clzll(v);    /* >= H_SUB_BITS + 1 */
        int shift = msb - H_SUB_BITS;         /* >= 1 */
        unsigned sub = (unsigned)(v >> shift) - H_SUB; /* [0, H_SUB) */
        if (shift > H_OCTAVES) { shift = H_OCTAVES; sub = H_SUB - 1; }
        b = 2 * H_SUB + (unsigned)(shift - 1) * H_SUB + sub;
    }
    hist[b]++;
    hist_n++;
}

static double hist_bucket_value(unsigned b) {
    if (b < 2 * H_SUB) return (double)b;
    unsigned shift = (b - 2 * H_SUB) / H_SUB + 1;
    unsigned sub = (b - 2 * H_SUB) % H_SUB;
    return (double)(((uint64_t)(H_SUB + sub)) << shift);
}

static double hist_quantile(double q) {
    if (hist_n == 0) return -1;
    uint64_t target = (uint64_t)(q * (double)hist_n);
    if (target >= hist_n) target = hist_n - 1;
    uint64_t acc = 0;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
        acc += hist[b];
        if (acc > target) return hist_bucket_value(b);
    }
    return hist_bucket_value(H_BUCKETS - 1);
}

/* ---------------------------------------------------------------- buffers */
typedef struct {
    char *p;
    size_t off, len, cap; /* valid data is p[off .. len) */
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    if (b->off > 0) { /* compact first */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap) return;
    }
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + extra) ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (!np) die("%s", "out of memory");
    b->p = np;
    b->cap = ncap;
}

/* ---------------------------------------------------------------- stats */
typedef struct {
    uint64_t ops, gets, sets, mgets;
    uint64_t hits, keys_requested;
    uint64_t errors;       /* ERROR / CLIENT_ERROR / SERVER_ERROR replies */
    uint64_t unexpected;   /* any other reply that does not fit the request */
    uint64_t conn_errors;  /* connections lost */
} stats_t;
static stats_t st;

/* ---------------------------------------------------------------- conns */
typedef struct {
    int fd;
    int alive;
    int want_out;
    buf_t in, out;
    /* ring of requests in flight */
    uint8_t *qtype;
    uint64_t *qstart;
    int qhead, qlen, qcap;
    /* reply parser state for the request at the head of the ring */
    int in_data;        /* inside a VALUE data block */
    size_t data_need;   /* bytes of the data block incl. trailing \r\n */
    uint32_t hits_cur;  /* VALUE lines seen for the head request */
} conn_t;

static conn_t *conns;
static int nconns;
static int epfd;

/* phase control */
static int ph_kind;          /* WL_* */
static int ph_depth;
static int ph_nconns;        /* only connections [0, ph_nconns) issue */
static int ph_issuing;       /* issue new requests while set */
static int ph_measuring;     /* record latency while set */
static long ph_count;        /* fill: total requests to issue */
static long ph_issued;
static long ph_done;
static long ph_offset;
static uint32_t ph_keys;     /* key space for random keys */
static char *value_buf;      /* value bytes followed by \r\n */

static void conn_kill(conn_t *c) {
    if (!c->alive) return;
    c->alive = 0;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    st.conn_errors++;
    fprintf(stderr, "loadgen: connection lost (%d requests in flight)\n", c->qlen);
}

static void set_out_interest(conn_t *c, int want) {
    if (c->want_out == want) return;
    struct epoll_event ev;
    ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
    ev.data.u32 = (uint32_t)(c - conns);
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

static void conn_flush(conn_t *c) {
    while (c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->out.off, c->out.len - c->out.off);
        if (n > 0) {
            c->out.off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out_interest(c, 1);
            return;
        }
        conn_kill(c);
        return;
    }
    c->out.off = c->out.len = 0;
    set_out_interest(c, 0);
}

static void append_set(conn_t *c, uint32_t key) {
    size_t need = 64 + (size_t)opt_value_size;
    buf_reserve(&c->out, need);
    char *p = c->out.p + c->out.len;
    memcpy(p, "set ", 4);
    p = put_key(p + 4, key);
    p += sprintf(p, " 0 0 %d\r\n", opt_value_size);
    memcpy(p, value_buf, (size_t)opt_value_size + 2);
    p += opt_value_size + 2;
    c->out.len = (size_t)(p - c->out.p);
}

static void append_get(conn_t *c, int nkeys) {
    buf_reserve(&c->out, 8 + (size_t)nkeys * (KEY_LEN + 1));
    char *p = c->out.p + c->out.len;
    memcpy(p, "get", 3);
    p += 3;
    for (int i = 0; i < nkeys; i++) {
        *p++ = ' ';
        p = put_key(p, rng_below(ph_keys));
    }
    *p++ = '\r';
    *p++ = '\n';
    c->out.len = (size_t)(p - c->out.p);
}

/* Queue one new request on c; returns 0 if the phase has nothing to issue. */
static int issue(conn_t *c, uint64_t now) {
    int type;
    switch (ph_kind) {
    case WL_GET:
        append_get(c, 1);
        type = REQ_GET;
        break;
    case WL_MIX:
        if ((int)rng_below(100) < opt_set_pct) {
            append_set(c, rng_below(ph_keys));
            type = REQ_SET;
        } else {
            append_get(c, 1);
            type = REQ_GET;
        }
        break;
    case WL_MGET:
        append_get(c, opt_multi);
        type = REQ_MGET;
        break;
    default: /* WL_FILL (also used for preload) */
        if (ph_issued >= ph_count) return 0;
        append_set(c, (uint32_t)(ph_offset + ph_issued));
        ph_issued++;
        type = REQ_SET;
        break;
    }
    int slot = (c->qhead + c->qlen) % c->qcap;
    c->qtype[slot] = (uint8_t)type;
    c->qstart[slot] = now;
    c->qlen++;
    return 1;
}

static void fill_pipeline(conn_t *c, uint64_t now) {
    if (!c->alive || !ph_issuing || (c - conns) >= ph_nconns) return;
    while (c->qlen < ph_depth && issue(c, now)) {
    }
}

/* The request at the head of c's ring got its complete reply. */
static void complete(conn_t *c, int is_error, int is_unexpected, uint64_t now) {
    int type = c->qtype[c->qhead];
    uint64_t start = c->qstart[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    ph_done++;
    st.ops++;
    if (is_error) st.errors++;
    if (is_unexpected) st.unexpected++;
    if (type == REQ_GET) {
        st.gets++;
        st.keys_requested += 1;
    } else if (type == REQ_MGET) {
        st.mgets++;
        st.keys_requested += (uint64_t)opt_multi;
    } else {
        st.sets++;
    }
    st.hits += c->hits_cur;
    c->hits_cur = 0;
    c->in_data = 0;
    if (ph_measuring) hist_add(now - start);
}

static int starts_with(const char *p, size_t len, const char *lit) {
    size_t l = strlen(lit);
    return len >= l && memcmp(p, lit, l) == 0;
}

/* Parse as many complete replies as are buffered.  Returns -1 on a protocol
 * error that makes the stream unusable. */
static int parse_replies(conn_t *c, uint64_t now) {
    buf_t *b = &c->in;
    while (b->off < b->len) {
        char *base = b->p + b->off;
        size_t avail = b->len - b->off;
        if (c->in_data) {
            if (avail < c->data_need) break;
            if (base[c->data_need - 2] != '\r' || base[c->data_need - 1] != '\n') {
                fprintf(stderr, "loadgen: value block not terminated by CRLF\n");
                return -1;
            }
            b->off += c->data_need;
            c->in_data = 0;
            continue;
        }
        char *nl = memchr(base, '\n', avail < MAX_LINE ? avail : MAX_LINE);
        if (!nl) {
            if (avail >= MAX_LINE) {
                fprintf(stderr, "loadgen: reply line too long\n");
                return -1;
            }
            break;
        }
        size_t linelen = (size_t)(nl - base) + 1;
        if (c->qlen == 0) {
            fprintf(stderr, "loadgen: reply with no request in flight: %.*s\n",
                    (int)(linelen > 80 ? 80 : linelen), base);
            return -1;
        }
        int type = c->qtype[c->qhead];
        b->off += linelen;
        /* strip CRLF (tolerate bare LF) */
        size_t l = linelen - 1;
        if (l > 0 && base[l - 1] == '\r') l--;

        if (type != REQ_SET && starts_with(base, l, "VALUE ")) {
            /* VALUE <key> <flags> <bytes> [<cas>] */
            const char *p = base + 6, *e = base + l;
            int field = 0;
            long bytes = -1;
            while (p < e && field < 3) {
                while (p < e && *p == ' ') p++;
                const char *s = p;
                while (p < e && *p != ' ') p++;
                if (p == s) break;
                field++;
                if (field == 3) {
                    char *endp;
                    bytes = strtol(s, &endp, 10);
                    if (endp != p) bytes = -1;
                }
            }
            if (bytes < 0) {
                fprintf(stderr, "loadgen: malformed VALUE line: %.*s\n", (int)(l > 80 ? 80 : l), base);
                return -1;
            }
            c->hits_cur++;
            c->in_data = 1;
            c->data_need = (size_t)bytes + 2;
            continue;
        }
        if (type != REQ_SET && l == 3 && memcmp(base, "END", 3) == 0) {
            complete(c, 0, 0, now);
        } else if (type == REQ_SET && l == 6 && memcmp(base, "STORED", 6) == 0) {
            complete(c, 0, 0, now);
        } else if (starts_with(base, l, "ERROR") || starts_with(base, l, "CLIENT_ERROR") ||
                   starts_with(base, l, "SERVER_ERROR")) {
            static int shown;
            if (shown++ < 5)
                fprintf(stderr, "loadgen: server replied: %.*s\n", (int)(l > 120 ? 120 : l), base);
            complete(c, 1, 0, now);
        } else {
            static int shown_u;
            if (shown_u++ < 5)
                fprintf(stderr, "loadgen: unexpected reply: %.*s\n", (int)(l > 120 ? 120 : l), base);
            complete(c, 1, 1, now);
        }
    }
    if (b->off == b->len) b->off = b->len = 0;
    return 0;
}

static void conn_read(conn_t *c, uint64_t now) {
    for (int rounds = 0; rounds < 4 && c->alive; rounds++) {
        buf_reserve(&c->in, READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.p + c->in.len, room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (parse_replies(c, now) < 0) {
                conn_kill(c);
                return;
            }
            if ((size_t)n < room) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n == 0) fprintf(stderr, "loadgen: server closed the connection\n");
        else perror("loadgen: read");
        conn_kill(c);
        return;
    }
}

static int alive_issuers(void) {
    int n = 0;
    for (int i = 0; i < ph_nconns; i++) n += conns[i].alive;
    return n;
}

static void open_conns(void) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)opt_port);
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) die("bad host address %s", opt_host);
    epfd = epoll_create1(0);
    if (epfd < 0) die("%s", "epoll_create1 failed");
    nconns = opt_conns;
    conns = calloc((size_t)nconns, sizeof *conns);
    int qcap = opt_depth > PRELOAD_DEPTH ? opt_depth : PRELOAD_DEPTH;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("%s", "socket() failed");
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("loadgen: connect");
            die("cannot connect to %s", opt_host);
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->alive = 1;
        c->qcap = qcap;
        c->qtype = calloc((size_t)qcap, 1);
        c->qstart = calloc((size_t)qcap, sizeof(uint64_t));
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("%s", "epoll_ctl failed");
    }
}

/* Run the event loop until the phase ends.
 *   count phase (fill/preload): until ph_done == ph_count, or deadline.
 *   timed phase: warm-up, then measure for opt_duration seconds.
 * Returns the measured wall time in seconds (negative on timeout/failure). */
static double run_phase(int timed, double *cpu_used) {
    struct epoll_event evs[256];
    uint64_t t0 = now_ns();
    uint64_t warm_end = t0 + (uint64_t)(opt_warmup * 1e9);
    uint64_t deadline = t0 + (uint64_t)(opt_timeout * 1e9);
    uint64_t meas_start = t0, meas_end = 0;
    double cpu0 = cpu_seconds();
    int timed_out = 0;

    ph_issuing = 1;
    ph_measuring = !timed;
    if (timed && opt_warmup <= 0) {
        ph_measuring = 1;
        meas_start = t0;
        meas_end = t0 + (uint64_t)(opt_duration * 1e9);
    }
    for (int i = 0; i < ph_nconns; i++) {
        fill_pipeline(&conns[i], t0);
        if (conns[i].alive) conn_flush(&conns[i]);
    }
    for (;;) {
        uint64_t now = now_ns();
        if (timed) {
            if (!ph_measuring && now >= warm_end) {
                memset(&st, 0, sizeof st);
                memset(hist, 0, sizeof hist);
                hist_n = 0;
                ph_measuring = 1;
                meas_start = now;
                meas_end = now + (uint64_t)(opt_duration * 1e9);
                cpu0 = cpu_seconds();
            }
            if (ph_measuring && now >= meas_end) break;
        } else {
            if (ph_done >= ph_count) break;
            if (now >= deadline) {
                timed_out = 1;
                break;
            }
        }
        if (alive_issuers() == 0) {
            timed_out = 1;
            break;
        }
        int n = epoll_wait(epfd, evs, 256, 5);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("%s", "epoll_wait failed");
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            conn_t *c = &conns[evs[i].data.u32];
            if (!c->alive) continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c, now);
            if (!c->alive) continue;
            fill_pipeline(c, now);
            if (c->out.off < c->out.len) conn_flush(c);
        }
    }
    ph_issuing = 0;
    uint64_t tend = now_ns();
    *cpu_used = cpu_seconds() - cpu0;
    double wall = (double)(tend - meas_start) / 1e9;
    return timed_out ? -wall : wall;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port PORT [options]\n"
            "  --host ADDR        server address (127.0.0.1)\n"
            "  --port PORT        server port (required)\n"
            "  --workload W       get | mix | multiget | fill (get)\n"
            "  --conns N          connections (50)\n"
            "  --depth D          requests in flight per connection (1)\n"
            "  --duration T       measured seconds (5)\n"
            "  --warmup W         warm-up seconds before measuring (1)\n"
            "  --preload K        first set keys [0,K) with values (0)\n"
            "  --keys K           key space for random keys (default: preload, or 10000)\n"
            "  --count N          fill: number of sets (100000)\n"
            "  --key-offset O     fill: first key number (0)\n"
            "  --value-size B     value size in bytes (100)\n"
            "  --multi M          multiget: keys per request (100)\n"
            "  --set-pct P        mix: percentage of sets (10)\n"
            "  --timeout S        bound for preload and fill phases (300)\n"
            "  --seed S           random seed\n");
    exit(2);
}

int main(int argc, char **argv) {
    static struct option lopts[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"workload", required_argument, 0, 'W'}, {"conns", required_argument, 0, 'c'},
        {"depth", required_argument, 0, 'd'},    {"duration", required_argument, 0, 't'},
        {"warmup", required_argument, 0, 'w'},   {"preload", required_argument, 0, 'P'},
        {"keys", required_argument, 0, 'k'},     {"count", required_argument, 0, 'n'},
        {"key-offset", required_argument, 0, 'o'}, {"value-size", required_argument, 0, 'v'},
        {"multi", required_argument, 0, 'm'},    {"set-pct", required_argument, 0, 's'},
        {"timeout", required_argument, 0, 'T'},  {"seed", required_argument, 0, 'S'},
        {"help", no_argument, 0, '?'},           {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:W:c:d:t:w:P:k:n:o:v:m:s:T:S:", lopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'W': {
            int found = 0;
            for (int i = 0; i < 4; i++)
                if (strcmp(optarg, wl_names[i]) == 0) { opt_workload = i; found = 1; }
            if (!found) usage();
            break;
        }
        case 'c': opt_conns = atoi(optarg); break;
        case 'd': opt_depth = atoi(optarg); break;
        case 't': opt_duration = atof(optarg); break;
        case 'w': opt_warmup = atof(optarg); break;
        case 'P': opt_preload = atol(optarg); break;
        case 'k': opt_keys = atol(optarg); break;
        case 'n': opt_count = atol(optarg); break;
        case 'o': opt_key_offset = atol(optarg); break;
        case 'v': opt_value_size = atoi(optarg); break;
        case 'm': opt_multi = atoi(optarg); break;
        case 's': opt_set_pct = atoi(optarg); break;
        case 'T': opt_timeout = atof(optarg); break;
        case 'S': opt_seed = strtoull(optarg, NULL, 0); break;
        default: usage();
        }
    }
    if (opt_port <= 0 || opt_port > 65535 || opt_conns < 1 || opt_depth < 1 || opt_multi < 1 ||
        opt_value_size < 0 || opt_value_size > 1000000 || opt_duration <= 0)
        usage();
    if (opt_keys < 0) opt_keys = opt_preload > 0 ? opt_preload : 10000;
    if (opt_keys < 1 || opt_keys > (long)MAX_KEY || opt_preload > (long)MAX_KEY ||
        opt_key_offset < 0 || opt_count < 0 || opt_key_offset + opt_count > (long)MAX_KEY) {
        fprintf(stderr, "loadgen: key numbers must stay below %u\n", MAX_KEY);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rng_state = opt_seed ? opt_seed : 1;
    value_buf = malloc((size_t)opt_value_size + 2);
    for (int i = 0; i < opt_value_size; i++) value_buf[i] = (char)('a' + i % 26);
    value_buf[opt_value_size] = '\r';
    value_buf[opt_value_size + 1] = '\n';

    open_conns();

    /* ---- preload */
    double preload_sec = 0, cpu_used = 0;
    uint64_t preload_errors = 0;
    int preload_ok = 1;
    if (opt_preload > 0) {
        ph_kind = WL_FILL;
        ph_depth = PRELOAD_DEPTH;
        ph_nconns = nconns < PRELOAD_MAX_CONNS ? nconns : PRELOAD_MAX_CONNS;
        ph_count = opt_preload;
        ph_offset = 0;
        ph_issued = ph_done = 0;
        double w = run_phase(0, &cpu_used);
        preload_ok = w >= 0;
        preload_sec = w < 0 ? -w : w;
        preload_errors = st.errors + st.unexpected + st.conn_errors;
        if (!preload_ok)
            fprintf(stderr, "loadgen: preload did not finish (%ld of %ld answered)\n", ph_done, ph_count);
        memset(&st, 0, sizeof st);
    }

    /* ---- measured phase */
    double wall = 0;
    int ok = preload_ok;
    if (ok) {
        ph_kind = opt_workload;
        ph_depth = opt_depth;
        ph_nconns = nconns;
        ph_keys = (uint32_t)opt_keys;
        ph_issued = ph_done = 0;
        if (opt_workload == WL_FILL) {
            ph_count = opt_count;
            ph_offset = opt_key_offset;
            memset(hist, 0, sizeof hist);
            hist_n = 0;
            wall = run_phase(0, &cpu_used);
        } else {
            wall = run_phase(1, &cpu_used);
        }
        if (wall < 0) {
            ok = 0;
            wall = -wall;
        }
    }
    if (wall <= 0) wall = 1e-9;

    uint64_t misses = st.keys_requested > st.hits ? st.keys_requested - st.hits : 0;
    printf("{\"workload\": \"%s\", \"conns\": %d, \"depth\": %d, \"ok\": %s, "
           "\"seconds\": %.3f, \"ops\": %llu, \"ops_per_sec\": %.1f, "
           "\"gets\": %llu, \"sets\": %llu, \"multigets\": %llu, "
           "\"hits\": %llu, \"misses\": %llu, \"keys_per_sec\": %.1f, "
           "\"errors\": %llu, \"unexpected\": %llu, \"conn_errors\": %llu, ",
           wl_names[opt_workload], nconns, opt_depth, ok ? "true" : "false", wall,
           (unsigned long long)st.ops, st.ops / wall, (unsigned long long)st.gets,
           (unsigned long long)st.sets, (unsigned long long)st.mgets,
           (unsigned long long)st.hits, (unsigned long long)misses, st.hits / wall,
           (unsigned long long)(st.errors + st.unexpected + st.conn_errors),
           (unsigned long long)st.unexpected, (unsigned long long)st.conn_errors);
    if (opt_workload == WL_FILL)
        printf("\"fill_done\": %ld, \"fill_count\": %ld, ", ph_done, opt_count);
    if (hist_n > 0)
        printf("\"p50_us\": %.1f, \"p99_us\": %.1f, ", hist_quantile(0.50) / 1000.0,
               hist_quantile(0.99) / 1000.0);
    printf("\"client_cpu\": %.3f, \"preload_keys\": %ld, \"preload_sec\": %.3f, "
           "\"preload_errors\": %llu}\n",
           cpu_used / wall, opt_preload, preload_sec, (unsigned long long)preload_errors);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (conns[i].alive) close(conns[i].fd);
    return ok ? 0 : 1;
}
