// SPDX-License-Identifier: MIT
/* End-to-end benchmark, "C AF_XDP" row: a minimal single-threaded AF_XDP forwarder in C doing the same full NAT as
 * zonlb-afxdp's bench services, with everything else stripped: no connection table, no backend choice, no route
 * lookup, addresses and MACs given on the command line. It answers one question: on this machine, in this
 * topology, what does the kernel's copy-mode AF_XDP path leave for a userspace forwarder, and how close to it
 * does the engine get?
 *
 * Same ring handling as the engine's worker: one UMEM shared by both interfaces' sockets (queue 0 each, copy
 * mode, need_wakeup), RX batches of 64, the TX ring kicked again while copy mode takes 32 frames per sendto(),
 * completions recycled into the fill rings, poll() when a round found nothing.
 *
 * Per frame: client side (to VIP) -> destination BACKEND, source LB_ADDR, out of the backend side; backend side
 * (BACKEND -> LB_ADDR) -> source VIP, destination CLIENT, out of the client side. Ports are kept. TTL - 1, the
 * IPv4 header checksum recomputed, the TCP/UDP checksum updated for the two addresses, or computed in full when
 * the sender left it partial (CHECKSUM_PARTIAL over veth: the field holds the pseudo-header sum), as the engine
 * does.
 *
 * Usage: xskfwd [--frags] PROG.o CLIENT_IF BACKEND_IF VIP CLIENT LB_ADDR BACKEND CLIENT_MAC BACKEND_MAC
 * (PROG.o: xskfwd.bpf.c compiled with the same addresses; attached to both interfaces here, detached on exit.)
 * --frags: multi-buffer, for frames larger than one UMEM chunk (MTU 9000): PROG.o must be compiled with -DFRAGS
 * (an xdp.frags program), the sockets bind with XDP_USE_SG, the chunks are 4 KiB, and a frame may span several
 * descriptors (XDP_PKT_CONTD on all but its last), which are forwarded together, the NAT done in the first.
 * Stops on SIGTERM or SIGINT and prints its counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define FRAMES 16384 /* the engine's defaults: frame_count, frame_size (2048; 4096 with --frags), ring_size, batch */
#ifndef XDP_USE_SG /* Linux 6.6; the distribution's headers may be older than the kernel */
#define XDP_USE_SG (1 << 4)
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)
#endif
#define MAX_DESCS 18 /* descriptors of one frame: MAX_SKB_FRAGS + 1 */
#define RING 2048
#define BATCH 64
#define MAX_KICKS 8

struct port {
	const char *name;
	int ifindex;
	struct bpf_object *obj;
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	unsigned pending;      /* TX descriptors written, not yet submitted */
	unsigned long inflight; /* submitted, not yet completed */
	uint8_t src_mac[6], dst_mac[6]; /* for frames sent out of this port */
};

static struct port ports[2];
static uint8_t *area;
static uint32_t frame_size = 2048;
static int frags;
static uint64_t free_addrs[FRAMES];
static unsigned nfree;
static uint32_t vip, client, lb_addr, backend; /* network order */
static unsigned long rx_frames, tx_frames, dropped, kicks; /* frames, descriptors, frames, sendto calls */
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void die(const char *what, int err)
{
	fprintf(stderr, "xskfwd: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void parse_mac(const char *s, uint8_t mac[6])
{
	if (sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6) {
		fprintf(stderr, "xskfwd: not a MAC address: %s\n", s);
		exit(2);
	}
}

static uint32_t parse_ip(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1) {
		fprintf(stderr, "xskfwd: not an IPv4 address: %s\n", s);
		exit(2);
	}
	return a.s_addr;
}

static uint16_t fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

/* big-endian 16-bit words of p (a trailing odd byte padded with zero), summed; for headers */
static uint64_t sum_bytes(const uint8_t *p, size_t n)
{
	uint64_t sum = 0;
	for (; n >= 2; p += 2, n -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (n)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint64_t sum_addrs(uint32_t a, uint32_t b)
{
	return sum_bytes((const uint8_t *)&a, 4) + sum_bytes((const uint8_t *)&b, 4);
}

/* The ones' complement sum of p in the machine's byte order, folded (RFC 1071: summing little-endian words and
 * swapping the result gives the big-endian sum); 32-bit loads, which the compiler vectorizes. */
static uint16_t sum_native(const uint8_t *p, size_t n)
{
	uint64_t sum = 0;
	for (; n >= 4; p += 4, n -= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
	}
	for (; n >= 2; p += 2, n -= 2)
		sum += (uint32_t)(p[0] | p[1] << 8);
	if (n)
		sum += p[0];
	return fold(sum);
}

static uint16_t swap16(uint16_t v) { return (uint16_t)(v << 8 | v >> 8); }

/* The big-endian sum of a byte run split over segments: a segment that starts at an odd offset of the run has its
 * bytes in the other halves of the words */
struct seg { const uint8_t *p; size_t n; };

static uint64_t sum_segments(const struct seg *segs, int count)
{
	uint64_t sum = 0;
	size_t at = 0;
	for (int i = 0; i < count; i++) {
		uint16_t s = sum_native(segs[i].p, segs[i].n);
		sum += (at & 1) ? s : swap16(s);
		at += segs[i].n;
	}
	return sum;
}

/* Rewrites one frame in place: its first buffer f (len bytes) and, multi-buffer, the rest in more[0..nmore);
 * returns the port to send it from, or -1 to drop it. */
static int nat(int in, uint8_t *f, uint32_t len, const struct seg *more, int nmore)
{
	uint32_t whole = len;
	for (int i = 0; i < nmore; i++)
		whole += (uint32_t)more[i].n;
	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00)
		return -1;
	uint8_t *ip = f + 14;
	unsigned ihl = (ip[0] & 0x0F) * 4u, total = (unsigned)(ip[2] << 8 | ip[3]);
	if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > whole || ip[8] <= 1)
		return -1;
	uint8_t proto = ip[9];
	unsigned csum_at = proto == 6 ? 16 : proto == 17 ? 6 : 0;
	/* the transport header's checksum field within the datagram and within the first buffer */
	if (!csum_at || total < ihl + csum_at + 2 || 14 + ihl + csum_at + 2 > len)
		return -1;
	uint32_t osrc, odst, nsrc, ndst;
	memcpy(&osrc, ip + 12, 4);
	memcpy(&odst, ip + 16, 4);
	int out;
	if (in == 0 && odst == vip) {
		nsrc = lb_addr; ndst = backend; out = 1;
	} else if (in == 1 && osrc == backend && odst == lb_addr) {
		nsrc = vip; ndst = client; out = 0;
	} else {
		return -1;
	}
	uint8_t *l4 = ip + ihl;
	unsigned l4len = total - ihl;
	uint16_t field = (uint16_t)(l4[csum_at] << 8 | l4[csum_at + 1]);
	uint64_t pseudo_rest = proto + l4len;
	if (field == fold(sum_addrs(osrc, odst) + pseudo_rest)) {
		/* partial: the sender's stack left the pseudo-header sum for the device to complete */
		l4[csum_at] = l4[csum_at + 1] = 0;
		struct seg segs[MAX_DESCS];
		int nsegs = 0;
		size_t left = l4len, first = len - 14 - ihl;
		segs[nsegs++] = (struct seg){ l4, first < left ? first : left };
		left -= segs[0].n;
		for (int i = 0; i < nmore && left; i++) {
			segs[nsegs] = (struct seg){ more[i].p, more[i].n < left ? more[i].n : left };
			left -= segs[nsegs++].n;
		}
		field = (uint16_t)~fold(sum_addrs(nsrc, ndst) + pseudo_rest + sum_segments(segs, nsegs));
		if (proto == 17 && field == 0)
			field = 0xFFFF;
	} else if (proto == 6 || field != 0) {
		/* RFC 1624: HC' = ~(~HC + ~m + m') over the four address words */
		uint64_t s = (uint16_t)~field;
		s += 4 * 0xFFFFull - sum_addrs(osrc, odst) + sum_addrs(nsrc, ndst);
		field = (uint16_t)~fold(s);
		if (proto == 17 && field == 0)
			field = 0xFFFF;
	}
	l4[csum_at] = (uint8_t)(field >> 8);
	l4[csum_at + 1] = (uint8_t)field;
	memcpy(ip + 12, &nsrc, 4);
	memcpy(ip + 16, &ndst, 4);
	ip[8]--;
	ip[10] = ip[11] = 0;
	uint16_t hc = (uint16_t)~fold(sum_bytes(ip, ihl));
	ip[10] = (uint8_t)(hc >> 8);
	ip[11] = (uint8_t)hc;
	memcpy(f, ports[out].dst_mac, 6);
	memcpy(f + 6, ports[out].src_mac, 6);
	return out;
}

static void reap(struct port *p)
{
	uint32_t idx, n = xsk_ring_cons__peek(&p->comp, RING, &idx);
	for (uint32_t i = 0; i < n; i++)
		free_addrs[nfree++] = *xsk_ring_cons__comp_addr(&p->comp, idx + i);
	xsk_ring_cons__release(&p->comp, n);
	p->inflight -= n;
}

static void refill(struct port *p)
{
	uint32_t idx, want = xsk_prod_nb_free(&p->fill, RING);
	if (want > nfree)
		want = nfree;
	if (want == 0 || xsk_ring_prod__reserve(&p->fill, want, &idx) != want)
		return;
	for (uint32_t i = 0; i < want; i++)
		*xsk_ring_prod__fill_addr(&p->fill, idx + i) = free_addrs[--nfree];
	xsk_ring_prod__submit(&p->fill, want);
	if (xsk_ring_prod__needs_wakeup(&p->fill))
		recvfrom(xsk_socket__fd(p->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

static unsigned receive(int in)
{
	struct port *p = &ports[in];
	uint32_t idx, n = xsk_ring_cons__peek(&p->rx, BATCH, &idx), i = 0;
	while (i < n) {
		/* one frame: its descriptors up to the first without XDP_PKT_CONTD */
		uint32_t c = 1;
		while (xsk_ring_cons__rx_desc(&p->rx, idx + i + c - 1)->options & XDP_PKT_CONTD) {
			if (i + c == n || c == MAX_DESCS)
				break;
			c++;
		}
		if (xsk_ring_cons__rx_desc(&p->rx, idx + i + c - 1)->options & XDP_PKT_CONTD) {
			if (c < MAX_DESCS)
				break; /* its last descriptor is not in this batch yet: next round */
			/* longer than any frame can be: drop what there is of it */
			for (uint32_t k = 0; k < c; k++)
				free_addrs[nfree++] = xsk_ring_cons__rx_desc(&p->rx, idx + i + k)->addr;
			dropped++;
			i += c;
			continue;
		}
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&p->rx, idx + i);
		struct seg more[MAX_DESCS];
		for (uint32_t k = 1; k < c; k++) {
			const struct xdp_desc *dk = xsk_ring_cons__rx_desc(&p->rx, idx + i + k);
			more[k - 1] = (struct seg){ xsk_umem__get_data(area, dk->addr), dk->len };
		}
		int out = nat(in, xsk_umem__get_data(area, d->addr), d->len, more, (int)c - 1);
		uint32_t t;
		if (out < 0 || xsk_ring_prod__reserve(&ports[out].tx, c, &t) != c) {
			for (uint32_t k = 0; k < c; k++)
				free_addrs[nfree++] = xsk_ring_cons__rx_desc(&p->rx, idx + i + k)->addr;
			dropped++;
			i += c;
			continue;
		}
		for (uint32_t k = 0; k < c; k++) {
			const struct xdp_desc *dk = xsk_ring_cons__rx_desc(&p->rx, idx + i + k);
			struct xdp_desc *o = xsk_ring_prod__tx_desc(&ports[out].tx, t + k);
			o->addr = dk->addr;
			o->len = dk->len;
			o->options = k + 1 < c ? XDP_PKT_CONTD : 0;
		}
		ports[out].pending += c;
		rx_frames++;
		i += c;
	}
	xsk_ring_cons__cancel(&p->rx, n - i);
	xsk_ring_cons__release(&p->rx, i);
	return i;
}

/* the TX ring's descriptors the kernel has not taken yet */
static uint32_t untaken(struct port *p)
{
	return *p->tx.producer - __atomic_load_n(p->tx.consumer, __ATOMIC_ACQUIRE);
}

static void flush(struct port *p)
{
	if (p->pending) {
		xsk_ring_prod__submit(&p->tx, p->pending);
		p->inflight += p->pending;
		tx_frames += p->pending;
		p->pending = 0;
	}
	for (int k = 0; k < MAX_KICKS && untaken(p) > 0; k++) {
		uint32_t before = untaken(p);
		sendto(xsk_socket__fd(p->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0);
		kicks++;
		if (untaken(p) == before)
			break;
	}
}

static void attach(struct port *p, const char *prog_path)
{
	p->obj = bpf_object__open_file(prog_path, NULL);
	int err = libbpf_get_error(p->obj);
	if (err)
		die(prog_path, err);
	if ((err = bpf_object__load(p->obj)))
		die("loading the XDP program", err);
	struct bpf_program *prog = bpf_object__find_program_by_name(p->obj, "zonlb_bench_xskfwd");
	int map = bpf_object__find_map_fd_by_name(p->obj, "xsks");
	if (!prog || map < 0)
		die("the XDP program lacks zonlb_bench_xskfwd or its xsks map", ENOENT);
	if ((err = xsk_socket__update_xskmap(p->xsk, map)))
		die("adding the socket to the xsks map", err);
	if ((err = bpf_xdp_attach(p->ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL)))
		die(p->name, err);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--frags") == 0) {
		frags = 1;
		frame_size = 4096;
		argv++;
		argc--;
	}
	if (argc != 10) {
		fprintf(stderr, "usage: xskfwd [--frags] PROG.o CLIENT_IF BACKEND_IF VIP CLIENT LB_ADDR BACKEND CLIENT_MAC BACKEND_MAC\n");
		return 2;
	}
	ports[0].name = argv[2];
	ports[1].name = argv[3];
	vip = parse_ip(argv[4]);
	client = parse_ip(argv[5]);
	lb_addr = parse_ip(argv[6]);
	backend = parse_ip(argv[7]);
	parse_mac(argv[8], ports[0].dst_mac);
	parse_mac(argv[9], ports[1].dst_mac);
	for (int i = 0; i < 2; i++) {
		if (!(ports[i].ifindex = (int)if_nametoindex(ports[i].name)))
			die(ports[i].name, errno);
		char path[64];
		snprintf(path, sizeof path, "/sys/class/net/%s/address", ports[i].name);
		FILE *f = fopen(path, "r");
		char mac[32] = "";
		if (!f || !fgets(mac, sizeof mac, f))
			die(path, errno);
		fclose(f);
		parse_mac(mac, ports[i].src_mac);
	}

	size_t bytes = (size_t)FRAMES * frame_size;
	area = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap of the UMEM", errno);
	struct xsk_umem *umem;
	struct xsk_umem_config ucfg = { .fill_size = RING, .comp_size = RING, .frame_size = frame_size };
	int err = xsk_umem__create(&umem, area, bytes, &ports[0].fill, &ports[0].comp, &ucfg);
	if (err)
		die("xsk_umem__create", err);
	struct xsk_socket_config cfg = {
		.rx_size = RING, .tx_size = RING,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP | (frags ? XDP_USE_SG : 0),
	};
	/* EBUSY: the previous row's socket on this queue is still being released (the kernel frees it after
	 * close() returns); try again for up to 2 s */
	for (int tries = 0;; tries++) {
		err = xsk_socket__create(&ports[0].xsk, ports[0].name, 0, umem, &ports[0].rx, &ports[0].tx, &cfg);
		if (err != -EBUSY || tries == 20)
			break;
		usleep(100 * 1000);
	}
	if (err)
		die(ports[0].name, err);
	for (int tries = 0;; tries++) {
		err = xsk_socket__create_shared(&ports[1].xsk, ports[1].name, 0, umem, &ports[1].rx, &ports[1].tx,
						&ports[1].fill, &ports[1].comp, &cfg);
		if (err != -EBUSY || tries == 20)
			break;
		usleep(100 * 1000);
	}
	if (err)
		die(ports[1].name, err);
	for (uint64_t i = 0; i < FRAMES; i++)
		free_addrs[nfree++] = i * frame_size;
	for (int i = 0; i < 2; i++)
		refill(&ports[i]);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (int i = 0; i < 2; i++)
		attach(&ports[i], argv[1]);
	fprintf(stderr, "xskfwd: forwarding %s <-> %s%s\n", ports[0].name, ports[1].name, frags ? " (multi-buffer)" : "");

	struct pollfd fds[2] = {
		{ .fd = xsk_socket__fd(ports[0].xsk), .events = POLLIN },
		{ .fd = xsk_socket__fd(ports[1].xsk), .events = POLLIN },
	};
	while (!stopping) {
		unsigned work = 0;
		for (int i = 0; i < 2; i++) {
			reap(&ports[i]);
			work += receive(i);
			refill(&ports[i]);
		}
		for (int i = 0; i < 2; i++)
			flush(&ports[i]);
		if (work == 0)
			poll(fds, 2, ports[0].inflight || ports[1].inflight ? 1 : 50);
	}

	for (int i = 0; i < 2; i++) {
		bpf_xdp_detach(ports[i].ifindex, XDP_FLAGS_DRV_MODE, NULL);
		xsk_socket__delete(ports[i].xsk);
		bpf_object__close(ports[i].obj);
	}
	xsk_umem__delete(umem);
	fprintf(stderr, "xskfwd: %lu received, %lu sent, %lu dropped, %lu kicks\n", rx_frames, tx_frames, dropped, kicks);
	return 0;
}
