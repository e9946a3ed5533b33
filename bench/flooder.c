/* A handshake flooder for tests and benchmarks (issue 10 item 2), compiled at run time by bench/flooder.py.
 *
 *   flooder DST_IP DST_PORT SECONDS RATE MSGFILE [SRC_IP ...]
 *
 * Sends 148-byte messages to DST_IP:DST_PORT with sendmmsg, 64 per call, for SECONDS (or until SIGTERM /
 * SIGINT), paced to RATE datagrams per second (0: as fast as it can).  MSGFILE "-" means junk: type-1
 * initiations with random bodies (no key needed); otherwise the file holds whole 148-byte messages, sent
 * round robin (e.g. initiations with a valid mac1).  With SRC_IPs, one socket is bound to each and the
 * batches rotate over them.  IPv4 only.  Prints one JSON line: sent, seconds, rate, errors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 148
#define BATCH 64
#define POOL 4096
#define MAX_SRC 64

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sockaddr_in dst = {.sin_family = AF_INET};
    static unsigned char pool[POOL][MSG];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    int socks[MAX_SRC], nsocks = 0;
    size_t npool = 0;
    unsigned long long sent = 0, errors = 0;
    double seconds, rate, start, t;
    if (argc < 6) {
        fprintf(stderr, "usage: %s DST_IP DST_PORT SECONDS RATE MSGFILE|- [SRC_IP ...]\n", argv[0]);
        return 2;
    }
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad destination %s\n", argv[1]);
        return 2;
    }
    dst.sin_port = htons((unsigned short)atoi(argv[2]));
    seconds = atof(argv[3]);
    rate = atof(argv[4]);
    if (strcmp(argv[5], "-") == 0) {
        for (npool = 0; npool < POOL; npool++) {
            if (getrandom(pool[npool], MSG, 0) != MSG)
                return 1;
            memcpy(pool[npool], "\x01\x00\x00\x00", 4);
        }
    } else {
        FILE *f = fopen(argv[5], "rb");
        if (!f) {
            perror(argv[5]);
            return 2;
        }
        while (npool < POOL && fread(pool[npool], MSG, 1, f) == 1)
            npool++;
        fclose(f);
        if (!npool) {
            fprintf(stderr, "no messages in %s\n", argv[5]);
            return 2;
        }
    }
    for (int i = 6; i < argc || (i == 6 && nsocks == 0); i++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0 || nsocks >= MAX_SRC) {
            perror("socket");
            return 1;
        }
        if (i < argc) {
            struct sockaddr_in src = {.sin_family = AF_INET};
            if (inet_pton(AF_INET, argv[i], &src.sin_addr) != 1 || bind(s, (struct sockaddr *)&src, sizeof(src))) {
                fprintf(stderr, "cannot bind %s: %s\n", argv[i], strerror(errno));
                return 1;
            }
        }
        if (connect(s, (struct sockaddr *)&dst, sizeof(dst))) {
            perror("connect");
            return 1;
        }
        socks[nsocks++] = s;
        if (i >= argc)
            break;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    memset(mm, 0, sizeof(mm));
    start = now();
    for (size_t k = 0; !stop; k++) {
        int n;
        t = now() - start;
        if (t >= seconds)
            break;
        if (rate > 0 && sent > rate * t) {
            struct timespec ts = {0, (long)((sent - rate * t) / rate * 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = pool[(sent + i) % npool];
            iov[i].iov_len = MSG;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        n = sendmmsg(socks[k % nsocks], mm, BATCH, 0);
        if (n < 0) {
            errors++;
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
                break;
            continue;
        }
        sent += (unsigned)n;
    }
    t = now() - start;
    printf("{\"sent\": %llu, \"seconds\": %.3f, \"rate\": %.0f, \"errors\": %llu}\n", sent, t,
           t > 0 ? sent / t : 0.0, errors);
    return 0;
}
